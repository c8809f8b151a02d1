//! Shipping a release's code: each `[[target]]` the release carries an artifact for gets its
//! preview step after the preview's gate passed (gate check `code.preview`), its deploy step
//! after production's migrations committed (in config order), and goes back to the previous
//! release's code when a later target fails or a rollback asks for it.
//!
//! Every step is a `code_steps` row written `running` before it starts and finished with its
//! outcome and one audit event (`code.preview`, `code.deploy`, `code.revert`,
//! `code.rollback`); `code_live` says which release's code each target of an environment
//! runs. A release's targets are pinned at deploy (what was reviewed is what runs); its
//! artifact is the copy pinned under `.d1ops/artifacts/<sha256>`.
//!
//! Invariants: code switches only after the migrations succeeded; a failure puts every
//! target switched in this operation back to the code it ran before; recovery never ships new
//! code, it only finishes a promotion whose every code step succeeded or puts the previous
//! code back (see `recover_code_promotion`).
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::{DatabaseRef, SnapshotRef};
use crate::fault;
use crate::model::{Artifact, CheckResult, CheckStatus, Failure, ReleaseState, now};
use crate::store::{CodeStepEnd, LiveCode, LockRow, NewCodeStep};
use crate::targets::{self, command};
use crate::workspace::Migration;
use crate::workspace::config::{CodeFailurePolicy, TargetConfig, TargetKind};

/// Where step logs go, under the state folder: `.d1ops/code/<release>/<target>.log` (the
/// release the operation is about: its promotion's reverts are in its own log).
pub const CODE_LOG_DIR: &str = "code";

/// What a code step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeAction {
    /// The release's code against its preview (command: `preview`; worker: a version bound
    /// to the preview database, not deployed).
    Preview,
    /// The release's code live in production.
    Deploy,
    /// Back to the code a target ran before this operation.
    Revert,
    /// An earlier release's code, for `rollback`.
    Rollback,
}

impl CodeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeAction::Preview => "preview",
            CodeAction::Deploy => "deploy",
            CodeAction::Revert => "revert",
            CodeAction::Rollback => "rollback",
        }
    }
}

/// What one code step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeStepResult {
    pub target: String,
    pub kind: String,
    pub action: CodeAction,
    pub env: String,
    /// The release whose code the step shipped.
    pub release: String,
    /// `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// One sentence: what happened.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// The step's log, relative to the workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl CodeStepResult {
    pub fn failed(&self) -> bool {
        self.status == "failed"
    }
}

/// The environment a step's code is bound to.
#[derive(Debug, Clone)]
pub(crate) struct CodeEnv {
    pub env: String,
    /// `D1OPS_DATABASE`: the database file locally, the database id on D1.
    pub database: String,
    /// The database id (locally: the id `d1ops serve` accepts).
    pub database_id: String,
    pub database_name: String,
    pub binding: String,
}

/// A failed shipment: the failing step and the reverts that followed it.
#[derive(Debug, Clone)]
pub(super) struct CodeShipFailure {
    pub failed: CodeStepResult,
    pub reverted: Vec<CodeStepResult>,
}

impl CodeShipFailure {
    /// The release's failure record: stage `code`, the target, what failed and what was put
    /// back, the output tail; `outcome` as the operation knows it.
    pub fn failure(&self, outcome: Option<String>) -> Failure {
        Failure {
            stage: "code".into(),
            migration: None,
            line: None,
            statement: None,
            error: format!(
                "{}; {}",
                self.failed.detail,
                describe_reverts(&self.reverted)
            ),
            at: now(),
            target: Some(self.failed.target.clone()),
            output_tail: self.failed.output_tail.clone(),
            outcome,
        }
    }
}

/// The code a target ran while some release was live: that release, its pinned target, its
/// artifact and the Worker version its production deploy made.
pub(super) struct PastCode {
    pub release: String,
    pub target: TargetConfig,
    pub artifact: Artifact,
    pub version: Option<String>,
}

/// The operation a step belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Op<'a> {
    pub release: &'a str,
    pub operation: &'a str,
}

/// A step to run: the target (as pinned by the release whose code it ships), that release,
/// its artifact and, for a worker, the version to deploy again.
pub(super) struct StepPlan<'a> {
    pub target: &'a TargetConfig,
    pub release: &'a str,
    pub artifact: &'a Artifact,
    pub version: Option<&'a str>,
}

impl Engine {
    /// The `[[target]]` list `id` was deployed with (the workspace's current list for
    /// releases deployed before targets were pinned).
    pub fn release_targets(&self, id: &str) -> Result<Vec<TargetConfig>> {
        match self.store.release_targets(id)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                EngineError::Input(format!(
                    "release {id}'s pinned [[target]] configuration cannot be read: {e}"
                ))
            }),
            None => Ok(self.ws.config.targets.clone()),
        }
    }

    /// The targets `id` ships code for (those whose artifact it carries), in config order,
    /// each with its artifact.
    pub fn shipped_code(&self, id: &str) -> Result<Vec<(TargetConfig, Artifact)>> {
        let artifacts = self.store.artifacts(id)?;
        Ok(self
            .release_targets(id)?
            .into_iter()
            .filter_map(|t| {
                artifacts
                    .iter()
                    .find(|a| a.name == t.artifact_name())
                    .cloned()
                    .map(|a| (t, a))
            })
            .collect())
    }

    /// Which release's code each target of production runs.
    pub fn live_code(&self) -> Result<Vec<LiveCode>> {
        Ok(self.store.live_code(PRODUCTION)?)
    }

    /// The code `target` ran while release `id` was live: the newest release promoted at or
    /// before it that shipped code for the target, with that release's pinned target, its
    /// artifact and the Worker version its production deploy made.
    pub(super) fn code_as_of(&self, id: &str, target: &str) -> Result<Option<PastCode>> {
        let rel = self.resolve(id)?;
        let mut candidates: Vec<_> = self
            .store
            .releases()?
            .into_iter()
            .filter(|r| r.promoted_at.is_some() && r.promoted_at <= rel.promoted_at)
            .collect();
        candidates.sort_by(|a, b| b.promoted_at.cmp(&a.promoted_at));
        if rel.promoted_at.is_none() {
            candidates.insert(0, rel);
        }
        for r in candidates {
            if r.state == ReleaseState::Failed {
                continue;
            }
            let shipped = self.shipped_code(&r.id)?;
            if let Some((t, a)) = shipped.into_iter().find(|(t, _)| t.name == target) {
                let version = self
                    .store
                    .last_code_deploy(&r.id, target, PRODUCTION)?
                    .and_then(|s| s.version_id);
                return Ok(Some(PastCode {
                    release: r.id,
                    target: t,
                    artifact: a,
                    version,
                }));
            }
        }
        Ok(None)
    }

    /// The code each of `targets` ran while release `id` was live, as production's live
    /// code would have recorded it (what a revert puts back).
    pub(super) fn code_while_live(&self, id: &str, targets: &[String]) -> Result<Vec<LiveCode>> {
        let mut out = Vec::new();
        for name in targets {
            if let Some(p) = self.code_as_of(id, name)? {
                out.push(LiveCode {
                    env: PRODUCTION.into(),
                    target: name.clone(),
                    release_id: p.release,
                    version_id: p.version,
                    deployed_at: String::new(),
                });
            }
        }
        Ok(out)
    }

    /// What a step in `env` (bound to `db`) is given about its database.
    pub(super) fn code_env(&self, env: &str, db: &DatabaseRef) -> Result<CodeEnv> {
        let binding = self.binding_name();
        if self.backend.kind() == "local" {
            let path = self.local_backend()?.path(db)?;
            return Ok(CodeEnv {
                env: env.to_string(),
                database: path.display().to_string(),
                database_id: db.id.clone(),
                database_name: env.to_string(),
                binding,
            });
        }
        let database_name = if env == PRODUCTION {
            self.ws
                .config
                .database
                .as_ref()
                .and_then(|d| d.database_name.clone())
                .unwrap_or_else(|| PRODUCTION.to_string())
        } else {
            self.backend
                .platform_name(env)
                .unwrap_or_else(|| env.to_string())
        };
        Ok(CodeEnv {
            env: env.to_string(),
            database: db.id.clone(),
            database_id: db.id.clone(),
            database_name,
            binding,
        })
    }

    /// Runs one step: recorded `running`, run, then finished with its outcome, the target's
    /// live code (when it succeeded) and its audit event in one state transaction.
    pub(super) fn run_code_step(
        &mut self,
        plan: &StepPlan<'_>,
        op: Op<'_>,
        action: CodeAction,
        env: &CodeEnv,
    ) -> Result<CodeStepResult> {
        let t = plan.target;
        let log_rel = format!(
            "{}/{CODE_LOG_DIR}/{}/{}.log",
            crate::workspace::STATE_DIR,
            op.release.to_lowercase(),
            t.name
        );
        let step = NewCodeStep {
            release_id: plan.release,
            operation_release: op.release,
            operation: op.operation,
            target: &t.name,
            kind: t.kind.as_str(),
            env: &env.env,
            action: action.as_str(),
            artifact_sha256: Some(&plan.artifact.sha256),
            log_path: Some(&log_rel),
            actor: &self.actor,
        };
        let id = self.store.insert_code_step(&step)?;
        fault::point(&format!("code.before_{}", action.as_str()));
        let end = match t.kind {
            TargetKind::Command => self.run_command_step(plan, op, action, env, &log_rel),
            TargetKind::Worker => self.run_worker_step(plan, op, action, env),
        };
        fault::point(&format!("code.after_{}", action.as_str()));
        let version = end.version_id.clone();
        let result = CodeStepResult {
            target: t.name.clone(),
            kind: t.kind.as_str().into(),
            action,
            env: env.env.clone(),
            release: plan.release.to_string(),
            status: end.status.clone(),
            detail: end.detail.clone().unwrap_or_default(),
            version_id: version.clone().or(plan.version.map(str::to_string)),
            url: end.url.clone(),
            output_tail: end.output_tail.clone().filter(|t| !t.is_empty()),
            log: (t.kind == TargetKind::Command).then_some(log_rel),
        };
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.finish_code_step(id, &end)?;
            if end.status == "succeeded" {
                s.set_live_code(
                    &env.env,
                    &t.name,
                    plan.release,
                    result.version_id.as_deref(),
                )?;
            }
            s.audit(
                &actor,
                &format!("code.{}", action.as_str()),
                Some(op.release),
                Some(&env.env),
                &json!({
                    "target": t.name, "kind": t.kind.as_str(), "release": plan.release,
                    "operation": op.operation, "status": end.status, "detail": end.detail,
                    "version_id": result.version_id, "url": end.url, "exit_code": end.exit_code,
                }),
            )?;
            Ok(())
        })?;
        tracing::info!(target = %t.name, action = action.as_str(), status = %result.status, "code step");
        Ok(result)
    }

    fn run_command_step(
        &self,
        plan: &StepPlan<'_>,
        op: Op<'_>,
        action: CodeAction,
        env: &CodeEnv,
        log_rel: &str,
    ) -> CodeStepEnd {
        let t = plan.target;
        let script = match action {
            CodeAction::Preview => t.preview.clone(),
            CodeAction::Deploy => t.deploy.clone(),
            CodeAction::Revert | CodeAction::Rollback => t.rollback.clone().or(t.deploy.clone()),
        };
        let Some(script) = script.filter(|s| !s.trim().is_empty()) else {
            return CodeStepEnd {
                status: "skipped".into(),
                detail: Some(format!(
                    "target {} has no {} command",
                    t.name,
                    action.as_str()
                )),
                ..Default::default()
            };
        };
        let artifact = self.artifact_path(plan.artifact);
        if !artifact.is_file() {
            return failed_end(format!(
                "release {}'s artifact {} is gone from {} (its pinned copy was removed); deploy a new release",
                plan.release,
                plan.artifact.name,
                artifact.display()
            ));
        }
        let cwd = match &t.cwd {
            Some(c) => self.ws.root.join(c),
            None => self.ws.root.clone(),
        };
        let vars = [
            ("D1OPS_RELEASE_ID", plan.release.to_string()),
            ("D1OPS_OPERATION_RELEASE_ID", op.release.to_string()),
            ("D1OPS_ACTION", action.as_str().to_string()),
            ("D1OPS_ENV", env.env.clone()),
            ("D1OPS_TARGET", t.name.clone()),
            ("D1OPS_ARTIFACT_PATH", artifact.display().to_string()),
            ("D1OPS_ARTIFACT_SHA256", plan.artifact.sha256.clone()),
            ("D1OPS_DATABASE", env.database.clone()),
            ("D1OPS_DATABASE_ID", env.database_id.clone()),
            ("D1OPS_DATABASE_NAME", env.database_name.clone()),
            ("D1OPS_BINDING", env.binding.clone()),
            ("D1OPS_WORKSPACE", self.ws.root.display().to_string()),
        ];
        let step = command::CommandStep {
            script,
            cwd,
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            timeout: t.timeout(),
            log: self.ws.root.join(log_rel),
            header: format!(
                "== {} {} {} of release {} in {} (operation {} of {}) by {}",
                now(),
                t.name,
                action.as_str(),
                plan.release,
                env.env,
                op.operation,
                op.release,
                self.actor
            ),
            secrets: targets::secret_values(&t.secret_env),
        };
        match command::run(&step) {
            Ok(out) => CodeStepEnd {
                status: if out.succeeded() {
                    "succeeded"
                } else {
                    "failed"
                }
                .into(),
                exit_code: out.exit_code.map(i64::from),
                detail: Some(format!(
                    "{} {}",
                    match action {
                        CodeAction::Revert | CodeAction::Rollback if t.rollback.is_none() =>
                            "deploy command (it has no rollback command)".to_string(),
                        CodeAction::Revert | CodeAction::Rollback => "rollback command".into(),
                        a => format!("{} command", a.as_str()),
                    },
                    out.summary(step.timeout)
                )),
                output_tail: Some(out.tail).filter(|t| !t.trim().is_empty()),
                ..Default::default()
            },
            Err(e) => failed_end(e.to_string()),
        }
    }

    /// The pinned copy of an artifact (its original path for releases from before pinning).
    pub(super) fn artifact_path(&self, a: &Artifact) -> PathBuf {
        match &a.pinned {
            Some(p) => self.ws.root.join(p),
            None => PathBuf::from(&a.path),
        }
    }

    #[cfg(not(feature = "d1"))]
    fn run_worker_step(
        &self,
        _plan: &StepPlan<'_>,
        _op: Op<'_>,
        _action: CodeAction,
        _env: &CodeEnv,
    ) -> CodeStepEnd {
        failed_end(format!(
            "worker targets need the Cloudflare backend, which this build leaves out: {}",
            super::connect::NO_D1
        ))
    }

    /// The preview step of every target `id` ships code for, against its preview; the gate
    /// check `code.preview` (`None` when the release ships no code).
    pub(super) fn preview_code(
        &mut self,
        id: &str,
        preview: &DatabaseRef,
        preview_env: &str,
    ) -> Result<Option<CheckResult>> {
        let shipped = self.shipped_code(id)?;
        if shipped.is_empty() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let env = self.code_env(preview_env, preview)?;
        let op = Op {
            release: id,
            operation: "deploy",
        };
        let mut results = Vec::new();
        for (t, a) in &shipped {
            let plan = StepPlan {
                target: t,
                release: id,
                artifact: a,
                version: None,
            };
            let r = self.run_code_step(&plan, op, CodeAction::Preview, &env)?;
            let failed = r.failed();
            results.push(r);
            if failed {
                break;
            }
        }
        let status = if results.iter().any(CodeStepResult::failed) {
            CheckStatus::Fail
        } else if results.iter().all(|r| r.status == "skipped") {
            CheckStatus::Skip
        } else {
            CheckStatus::Pass
        };
        let reason = match results.iter().find(|r| r.failed()) {
            Some(f) => {
                let last = f
                    .output_tail
                    .as_deref()
                    .and_then(|t| t.lines().last())
                    .map(|l| format!(": {}", crate::text::one_line(l, 160)))
                    .unwrap_or_default();
                format!("target {}: {}{last}", f.target, f.detail)
            }
            None => results
                .iter()
                .map(|r| match &r.url {
                    Some(u) => format!("{}: {} ({u})", r.target, r.detail),
                    None => format!("{}: {}", r.target, r.detail),
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        Ok(Some(CheckResult {
            id: "code.preview".into(),
            status,
            reason,
            details: json!({ "targets": results }),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        }))
    }

    /// Each target `id` ships code for, deployed to production in config order. On the first
    /// failure every target switched so far (and the failing one, which may have switched
    /// half-way) goes back to the code it ran before, newest first.
    pub(super) fn ship_code(
        &mut self,
        id: &str,
        shipped: &[(TargetConfig, Artifact)],
        db: &DatabaseRef,
    ) -> Result<std::result::Result<Vec<CodeStepResult>, CodeShipFailure>> {
        if shipped.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let env = self.code_env(PRODUCTION, db)?;
        let before = self.store.live_code(PRODUCTION)?;
        let op = Op {
            release: id,
            operation: "promote",
        };
        let mut done = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        for (t, a) in shipped {
            let plan = StepPlan {
                target: t,
                release: id,
                artifact: a,
                version: None,
            };
            let r = self.run_code_step(&plan, op, CodeAction::Deploy, &env)?;
            touched.push(t.name.clone());
            if r.failed() {
                let reverted = self.revert_code(&touched, &before, op, &env)?;
                return Ok(Err(CodeShipFailure {
                    failed: r,
                    reverted,
                }));
            }
            done.push(r);
        }
        Ok(Ok(done))
    }

    /// Puts `targets` (newest first) back to the code `before` says they ran. A target that
    /// ran no code d1ops knows of is recorded as skipped, with that said.
    pub(super) fn revert_code(
        &mut self,
        targets: &[String],
        before: &[LiveCode],
        op: Op<'_>,
        env: &CodeEnv,
    ) -> Result<Vec<CodeStepResult>> {
        let mut out = Vec::new();
        for name in targets.iter().rev() {
            let previous = before.iter().find(|l| &l.target == name);
            let resolved = match previous {
                Some(live) => self.code_as_of(&live.release_id, name)?.map(|p| {
                    (
                        p.release,
                        p.target,
                        p.artifact,
                        live.version_id.clone().or(p.version),
                    )
                }),
                None => None,
            };
            match resolved {
                Some((rid, t, a, version)) => {
                    let plan = StepPlan {
                        target: &t,
                        release: &rid,
                        artifact: &a,
                        version: version.as_deref(),
                    };
                    out.push(self.run_code_step(&plan, op, CodeAction::Revert, env)?);
                }
                None => {
                    let why = match previous {
                        Some(live) => format!(
                            "release {}'s code for {name} is not recorded, so it cannot be deployed again",
                            live.release_id
                        ),
                        None => format!(
                            "{name} ran no code shipped by d1ops before this {}; nothing to go back to",
                            op.operation
                        ),
                    };
                    out.push(self.record_skipped(name, op, CodeAction::Revert, env, &why)?);
                }
            }
        }
        Ok(out)
    }

    fn record_skipped(
        &mut self,
        target: &str,
        op: Op<'_>,
        action: CodeAction,
        env: &CodeEnv,
        why: &str,
    ) -> Result<CodeStepResult> {
        let kind = self
            .ws
            .config
            .targets
            .iter()
            .find(|t| t.name == target)
            .map_or("command", |t| t.kind.as_str());
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.record_code_step(
                &NewCodeStep {
                    release_id: op.release,
                    operation_release: op.release,
                    operation: op.operation,
                    target,
                    kind,
                    env: &env.env,
                    action: action.as_str(),
                    artifact_sha256: None,
                    log_path: None,
                    actor: &actor,
                },
                &CodeStepEnd {
                    status: "skipped".into(),
                    detail: Some(why.to_string()),
                    ..Default::default()
                },
            )?;
            s.audit(
                &actor,
                &format!("code.{}", action.as_str()),
                Some(op.release),
                Some(&env.env),
                &json!({"target": target, "operation": op.operation, "status": "skipped", "detail": why}),
            )?;
            Ok(())
        })?;
        Ok(CodeStepResult {
            target: target.to_string(),
            kind: kind.to_string(),
            action,
            env: env.env.clone(),
            release: op.release.to_string(),
            status: "skipped".into(),
            detail: why.to_string(),
            version_id: None,
            url: None,
            output_tail: None,
            log: None,
        })
    }

    /// A promotion whose code failed (or was interrupted): the previous release stays
    /// active; the schema stays applied (`keep-schema`, recorded as applied) or production is
    /// restored from the recovery point (`restore-schema`, its loss report in the audit
    /// event); the release is `failed` at stage `code`; the lock is released.
    pub(super) fn fail_code_promotion(
        &mut self,
        id: &str,
        pending: &[Migration],
        snapshot: Option<i64>,
        created_database: bool,
        previous: Option<&str>,
        mut failure: Failure,
    ) -> Result<EngineError> {
        let policy = self.ws.config.policy.on_code_failure;
        let serving = match previous {
            Some(p) => format!("release {p} stays live and its code serves"),
            None => "no release is live".to_string(),
        };
        let mut loss = serde_json::Value::Null;
        let mut restored = false;
        let schema = if pending.is_empty() {
            format!("{serving}; the release had no migrations, so production's schema is unchanged")
        } else if policy == CodeFailurePolicy::RestoreSchema {
            let prod = self.backend.production_ref();
            if created_database {
                self.backend.delete_database(&prod)?;
                restored = true;
                format!(
                    "{serving}; production's database, created by this promotion, was removed (on_code_failure = \"restore-schema\")"
                )
            } else {
                let snap = match snapshot {
                    Some(sid) => self.store.snapshot(sid)?,
                    None => None,
                };
                match snap {
                    Some(snap) => {
                        let r = SnapshotRef {
                            location: snap.location.clone(),
                            size_bytes: snap.size_bytes,
                        };
                        loss = match self.backend.loss_since(
                            &prod,
                            &r,
                            &self.ws.config.migrations_table,
                        ) {
                            Ok(l) => serde_json::to_value(l).unwrap_or_default(),
                            Err(e) => json!({"error": e.to_string()}),
                        };
                        self.backend.restore(&prod, &r)?;
                        restored = true;
                        format!(
                            "{serving}; production was restored from the promotion's recovery point (on_code_failure = \"restore-schema\"), so release {id}'s migrations are no longer applied"
                        )
                    }
                    None => format!(
                        "{serving}; production keeps release {id}'s migrations: on_code_failure = \"restore-schema\" found no recovery point to restore"
                    ),
                }
            }
        } else {
            format!(
                "{serving}; production keeps release {id}'s migrations (they passed compat.live: the previous code runs on them); set [policy] on_code_failure = \"restore-schema\" to restore the recovery point instead"
            )
        };
        failure.outcome = Some(schema.clone());
        let keep = !pending.is_empty() && !restored;
        let ledger = if keep {
            self.backend.ledger(
                &self.backend.production_ref(),
                &self.ws.config.migrations_table,
            )?
        } else {
            Vec::new()
        };
        let carried = self.store.release_migrations(id)?;
        let existing = self.store.applied_checksums(PRODUCTION)?;
        let actor = self.actor.clone();
        let prod_id = self.backend.production_ref().id;
        self.store.atomically(|s| -> Result<()> {
            if keep {
                s.set_env_database(PRODUCTION, Some(&prod_id))?;
                for m in &carried {
                    let ours = pending.iter().any(|a| a.name == m.name);
                    let is_applied = ledger.iter().any(|r| r.name == m.name);
                    if is_applied && (!existing.contains_key(&m.name) || ours) {
                        s.record_applied(
                            PRODUCTION,
                            &m.name,
                            &m.sha256,
                            &m.sha256_normalized,
                            ours.then_some(id),
                        )?;
                    }
                }
            }
            s.set_release_failure(id, &failure)?;
            s.delete_lock()?;
            s.audit(
                &actor,
                "promotion.failed",
                Some(id),
                Some(PRODUCTION),
                &json!({"failure": failure, "schema": if restored { "restored" } else if keep { "kept" } else { "unchanged" }, "loss": loss}),
            )?;
            Ok(())
        })?;
        Ok(EngineError::CodeFailed {
            operation: "promotion",
            release: id.to_string(),
            failure: Box::new(failure),
        })
    }

    /// Recovery of a promotion killed while (or just before) shipping its code. Its
    /// migrations are committed. When every target's deploy step finished successfully, both
    /// halves are live and only the record is missing: the promotion is completed. Otherwise
    /// the outcome of the step whose process died is unknown and nobody saw the promotion
    /// succeed, so recovery does not ship anything new: the targets this promotion touched
    /// go back to the previous release's code and the release fails at stage `code` (the
    /// schema as `on_code_failure` says), exactly as a failing target would have left it.
    pub(super) fn recover_code_promotion(&mut self, lock: &LockRow) -> Result<&'static str> {
        let id = lock.release_id.clone();
        let pending = self.pending_migrations(&id)?;
        let shipped = self.shipped_code(&id)?;
        let steps = self
            .store
            .operation_code_steps(&id, "promote", &lock.since)?;
        let complete = steps
            .iter()
            .all(|s| s.action == "deploy" && s.status == "succeeded")
            && shipped.iter().all(|(t, _)| {
                steps
                    .iter()
                    .any(|s| s.target == t.name && s.status == "succeeded")
            });
        if complete {
            self.finish_promotion(
                &id,
                &pending,
                lock.snapshot_id,
                lock.prev_active.as_deref(),
                Some(&lock.holder),
            )?;
            return Ok("rolled_forward");
        }
        let why = "interrupted: the d1ops process running it is gone";
        self.store.settle_running_code_steps(&id, "promote", why)?;
        let touched: Vec<String> = shipped
            .iter()
            .map(|(t, _)| t.name.clone())
            .filter(|name| steps.iter().any(|s| &s.target == name))
            .collect();
        // What each touched target ran before: the code it had while the previous release
        // was live.
        let before = match lock.prev_active.as_deref() {
            Some(prev) => self.code_while_live(prev, &touched)?,
            None => Vec::new(),
        };
        let db = self.backend.production_ref();
        let env = self.code_env(PRODUCTION, &db)?;
        let op = Op {
            release: &id,
            operation: "promote",
        };
        let reverted = self.revert_code(&touched, &before, op, &env)?;
        let failed_target = steps
            .iter()
            .rev()
            .find(|s| s.status != "succeeded")
            .map(|s| s.target.clone());
        let error = if steps.is_empty() {
            "the promotion was interrupted after its migrations committed and before its code was shipped".to_string()
        } else {
            format!(
                "the promotion was interrupted while shipping its code ({why}); {}",
                describe_reverts(&reverted)
            )
        };
        let failure = Failure {
            stage: "code".into(),
            migration: None,
            line: None,
            statement: None,
            error,
            at: now(),
            target: failed_target,
            output_tail: None,
            outcome: None,
        };
        let _ = self.fail_code_promotion(
            &id,
            &pending,
            lock.snapshot_id,
            lock.created_database,
            lock.prev_active.as_deref(),
            failure,
        )?;
        Ok("rolled_back_code")
    }

    /// Recovery of a rollback killed while shipping code: every target it touched goes back
    /// to the code of the release it rolled back from (the switch itself never happened).
    pub(super) fn recover_rollback_code(&mut self, lock: &LockRow) -> Result<usize> {
        let steps = self
            .store
            .operation_code_steps(&lock.release_id, "rollback", &lock.since)?;
        if steps.is_empty() {
            return Ok(0);
        }
        self.store.settle_running_code_steps(
            &lock.release_id,
            "rollback",
            "interrupted: the d1ops process running it is gone",
        )?;
        let Some(from) = lock.prev_active.clone() else {
            return Ok(0);
        };
        let mut touched: Vec<String> = Vec::new();
        for s in &steps {
            if s.action == "rollback" && !touched.contains(&s.target) {
                touched.push(s.target.clone());
            }
        }
        let before = self.code_while_live(&from, &touched)?;
        let db = self.backend.production_ref();
        let env = self.code_env(PRODUCTION, &db)?;
        let op = Op {
            release: &lock.release_id,
            operation: "rollback",
        };
        Ok(self.revert_code(&touched, &before, op, &env)?.len())
    }
}

impl Engine {
    /// `rollback`'s code half: every target production runs code for (and every target the
    /// release to go back to shipped) gets the code it ran while that release was live, in
    /// config order; a failure puts the targets switched so far back to what they ran.
    pub(super) fn rollback_code(
        &mut self,
        target: &crate::model::Release,
    ) -> Result<std::result::Result<Vec<CodeStepResult>, CodeShipFailure>> {
        let before = self.store.live_code(PRODUCTION)?;
        // Each target once, with the code it ran while `target` was live (resolved once).
        let mut plans: Vec<(String, Option<PastCode>)> = Vec::new();
        let configured = self.ws.config.targets.iter().map(|t| t.name.clone());
        let shipped = self
            .shipped_code(&target.id)?
            .into_iter()
            .map(|(t, _)| t.name);
        let live = before.iter().map(|l| l.target.clone());
        for name in configured.chain(shipped).chain(live) {
            if plans.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let past = self.code_as_of(&target.id, &name)?;
            if past.is_some() || before.iter().any(|l| l.target == name) {
                plans.push((name, past));
            }
        }
        if plans.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let db = self
            .production_db()?
            .unwrap_or_else(|| self.backend.production_ref());
        let env = self.code_env(PRODUCTION, &db)?;
        let op = Op {
            release: &target.id,
            operation: "rollback",
        };
        let mut done = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        for (name, past) in plans {
            let Some(PastCode {
                release: rid,
                target: t,
                artifact: a,
                version,
            }) = past
            else {
                let why = format!(
                    "no release up to {} shipped code for {name}; it keeps the code it runs",
                    target.id
                );
                done.push(self.record_skipped(&name, op, CodeAction::Rollback, &env, &why)?);
                continue;
            };
            if before
                .iter()
                .any(|l| l.target == name && l.release_id == rid)
            {
                let why = format!("{name} already runs release {rid}'s code");
                done.push(self.record_skipped(&name, op, CodeAction::Rollback, &env, &why)?);
                continue;
            }
            let plan = StepPlan {
                target: &t,
                release: &rid,
                artifact: &a,
                version: version.as_deref(),
            };
            let r = self.run_code_step(&plan, op, CodeAction::Rollback, &env)?;
            touched.push(name.clone());
            if r.failed() {
                let reverted = self.revert_code(&touched, &before, op, &env)?;
                return Ok(Err(CodeShipFailure {
                    failed: r,
                    reverted,
                }));
            }
            done.push(r);
        }
        Ok(Ok(done))
    }
}

/// "app went back to release X's code; bot: skipped (…)".
pub(super) fn describe_reverts(reverted: &[CodeStepResult]) -> String {
    if reverted.is_empty() {
        return "no target had been switched".into();
    }
    reverted
        .iter()
        .map(|r| match r.status.as_str() {
            "succeeded" => format!("{} went back to release {}'s code", r.target, r.release),
            "skipped" => format!("{}: {}", r.target, r.detail),
            _ => format!(
                "{} could NOT go back to the previous code ({}); check it by hand",
                r.target, r.detail
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn failed_end(detail: String) -> CodeStepEnd {
    CodeStepEnd {
        status: "failed".into(),
        detail: Some(detail),
        ..Default::default()
    }
}

/// One target of a release, as `release show` and the console's Code view present it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub name: String,
    pub kind: String,
    /// The artifact name it ships.
    pub artifact: String,
    /// `None` when the release carries no such artifact (the target keeps earlier code).
    pub artifact_sha256: Option<String>,
    /// The release's latest preview step for this target.
    pub preview: Option<TargetStepView>,
    /// The latest step that shipped this release's code to production (deploy, revert
    /// back to it, or rollback to it).
    pub production: Option<TargetStepView>,
    /// A worker target's gradual rollout of this release: the current split and step
    /// (`engine/rollout.rs`); absent when it did not roll out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::rollout::RolloutView>,
}

/// The outcome of one step, for views.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStepView {
    pub status: String,
    pub action: String,
    pub version_id: Option<String>,
    pub url: Option<String>,
    /// When the step finished (`None` while running).
    pub deployed_at: Option<String>,
    pub detail: Option<String>,
    pub output_tail: Option<String>,
    pub log: Option<String>,
}

impl From<&crate::store::CodeStep> for TargetStepView {
    fn from(s: &crate::store::CodeStep) -> Self {
        TargetStepView {
            status: s.status.clone(),
            action: s.action.clone(),
            version_id: s.version_id.clone(),
            url: s.url.clone(),
            deployed_at: s.finished_at.clone(),
            detail: s.detail.clone(),
            output_tail: s.output_tail.clone(),
            log: s.log_path.clone(),
        }
    }
}

impl Engine {
    /// The release's targets with their latest preview and production steps.
    pub fn target_views(&self, id: &str) -> Result<Vec<TargetView>> {
        let artifacts = self.store.artifacts(id)?;
        let steps = self.store.code_steps(id)?;
        self.release_targets(id)?
            .into_iter()
            .map(|t| {
                let mine = |s: &&crate::store::CodeStep| s.target == t.name && s.release_id == id;
                let preview = steps
                    .iter()
                    .filter(mine)
                    .rfind(|s| s.action == "preview")
                    .map(TargetStepView::from);
                let production = steps
                    .iter()
                    .filter(mine)
                    .rfind(|s| s.env == PRODUCTION && s.action != "preview")
                    .map(TargetStepView::from);
                Ok(TargetView {
                    kind: t.kind.as_str().into(),
                    artifact: t.artifact_name().into(),
                    artifact_sha256: artifacts
                        .iter()
                        .find(|a| a.name == t.artifact_name())
                        .map(|a| a.sha256.clone()),
                    preview,
                    production,
                    rollout: self.target_rollout(id, &t.name)?,
                    name: t.name,
                })
            })
            .collect()
    }

    /// Every code step of operations about `id` (its preview, promotion, a rollback to it),
    /// oldest first.
    pub fn code_history(&self, id: &str) -> Result<Vec<crate::store::CodeStep>> {
        let rel = self.resolve(id)?;
        Ok(self.store.code_steps(&rel.id)?)
    }
}
