//! `deploy`: a deploy payload becomes an immutable release with its own preview database,
//! its pending migrations applied there, and a gate verdict.
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::DatabaseRef;
use crate::gate::{self, GateContext};
use crate::model::{
    Artifact, CheckResult, CheckStatus, GateReport, Release, ReleaseMigration, ReleaseState,
    Verdict,
};

/// What to deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    pub label: Option<String>,
    pub commit: Option<String>,
    /// `NAME=PATH` pairs already split.
    pub artifacts: Vec<(String, PathBuf)>,
    /// The release this one replaces (a fix is a new release naming the old one).
    pub supersedes: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub id: String,
    pub state: ReleaseState,
    pub verdict: Verdict,
    pub checks: Vec<CheckResult>,
    pub preview: Option<String>,
    pub pending: Vec<String>,
    pub total_ms: f64,
}

/// The preview environment (and local database) name of a release.
pub fn preview_name(release_id: &str) -> String {
    format!("preview-{}", release_id.to_lowercase())
}

/// Where deploy pins artifacts, under the state folder: `.d1ops/artifacts/<sha256>`.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// The pinned copy's path as recorded on the artifact (relative to the workspace root).
pub fn pinned_name(sha256: &str) -> String {
    format!("{}/{ARTIFACTS_DIR}/{sha256}", crate::workspace::STATE_DIR)
}

/// Pinned copies this deploy created, removed again unless the release recording them was
/// committed ([`FreshPins::keep`]); a copy that already existed is never touched.
struct FreshPins(Vec<std::path::PathBuf>);

impl FreshPins {
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for FreshPins {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The temporary file a pin is streamed into (`.pin-<pid>-<nanos>.tmp` in the pin folder),
/// removed on drop unless it was renamed into place (its path then cleared).
struct PinTemp {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl PinTemp {
    fn create(dir: &std::path::Path) -> std::io::Result<PinTemp> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(".pin-{}-{nanos}.tmp", std::process::id()));
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(PinTemp { file, path })
    }
}

impl Drop for PinTemp {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Pins one `--artifact NAME=PATH`: a regular file (after symlinks) of at most
/// [`files::ARTIFACT_LIMIT`], streamed once into a temporary file in `dir` while it is
/// hashed, fsynced, then renamed to `dir/<sha256>` (content-addressed: a copy already there
/// is kept and shared). A device, FIFO, directory or dangling link is refused before it is
/// opened for reading; a file the disk has no room for (size + margin) before it is copied.
fn pin_artifact(
    name: &str,
    path: &std::path::Path,
    dir: &std::path::Path,
    fresh: &mut FreshPins,
) -> Result<Artifact> {
    use crate::backend::space;
    use crate::workspace::files;
    use std::io::{Read, Write};
    if name.is_empty() {
        return Err(EngineError::Input(format!(
            "--artifact {}: give it as NAME=PATH (e.g. app=dist/app.js)",
            path.display()
        )));
    }
    let shown = path.display().to_string();
    let refused = |e: files::FileError| EngineError::Input(format!("artifact {name}: {e}"));
    let (file, len) =
        files::open_regular(path, &shown, "an artifact", files::ARTIFACT_LIMIT).map_err(refused)?;
    let store_err = |what: &str, e: std::io::Error| {
        EngineError::Environment(format!(
            "artifact {name}: cannot {what} {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| store_err("create", e))?;
    let needed = len.saturating_add(space::MARGIN_BYTES);
    if let Some(why) = space::shortfall(dir, needed, &format!("pinning artifact {name}")) {
        return Err(EngineError::Environment(why));
    }
    let mut tmp = PinTemp::create(dir).map_err(|e| store_err("write in", e))?;
    let mut reader = file.take(files::ARTIFACT_LIMIT + 1);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(EngineError::Input(format!(
                    "artifact {name}: cannot read {shown}: {e}"
                )));
            }
        };
        size += n as u64;
        if size > files::ARTIFACT_LIMIT {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.file
            .write_all(&buf[..n])
            .map_err(|e| store_err("write in", e))?;
    }
    if size > files::ARTIFACT_LIMIT {
        return Err(refused(files::FileError::TooLarge {
            path: shown,
            what: "an artifact",
            limit: files::human_bytes(files::ARTIFACT_LIMIT),
        }));
    }
    let sha256 = hex::encode(hasher.finalize());
    let target = dir.join(&sha256);
    if target.is_file() {
        // Already pinned (by this or an earlier release): the same bytes, kept as they are;
        // its time is refreshed so `cleanup` never takes it while this deploy records it.
        drop(tmp);
        if let Ok(f) = std::fs::File::options().write(true).open(&target) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    } else {
        tmp.file.sync_all().map_err(|e| store_err("write in", e))?;
        std::fs::rename(&tmp.path, &target).map_err(|e| store_err("write in", e))?;
        tmp.path.clear();
        fresh.0.push(target);
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(Artifact {
        name: name.to_string(),
        path: path.display().to_string(),
        pinned: Some(pinned_name(&sha256)),
        sha256,
        size_bytes: size,
    })
}

impl Engine {
    /// Creates a release from the workspace's migrations and runs the gate on its preview.
    ///
    /// The deploy is recorded as running (holder, pid, host, heartbeat) in the transaction
    /// that records its release, until its verdict is saved. One that stops with an error in
    /// between is settled at once (release `blocked`, "deploy interrupted", preview removed);
    /// one whose process dies is settled by the next command (`Engine::open`).
    pub fn deploy(&mut self, req: DeployRequest) -> Result<DeployOutcome> {
        let started = crate::model::now();
        let out = self.deploy_gated(req);
        if let Err(e) = &out {
            self.settle_own_deploys(&started, &e.to_string());
        }
        out
    }

    fn deploy_gated(&mut self, req: DeployRequest) -> Result<DeployOutcome> {
        self.ensure_writable("deploy")?;
        // Everything that can be wrong with the input is found before anything is written.
        let migrations = self.ws.migrations()?;
        let pin_dir = self.ws.state_dir().join(ARTIFACTS_DIR);
        let mut fresh = FreshPins(Vec::new());
        let artifacts = req
            .artifacts
            .iter()
            .map(|(n, p)| self.pin_source(n, p, &pin_dir, &mut fresh))
            .collect::<Result<Vec<_>>>()?;
        let supersedes = match &req.supersedes {
            Some(s) => Some(self.resolve(s)?.id),
            None => None,
        };
        let production = self.production_db()?;
        let ledger = self.production_ledger()?;
        let applied: std::collections::BTreeSet<&str> =
            ledger.iter().map(|r| r.name.as_str()).collect();
        let carried: Vec<ReleaseMigration> = migrations
            .iter()
            .enumerate()
            .map(|(i, m)| ReleaseMigration {
                position: i as u32,
                name: m.name.clone(),
                path: m.path.clone(),
                sha256: m.sha256.clone(),
                sha256_normalized: m.sha256_normalized.clone(),
                pending: !applied.contains(m.name.as_str()),
                sql: m.sql.clone(),
            })
            .collect();
        let pending: Vec<String> = carried
            .iter()
            .filter(|m| m.pending)
            .map(|m| m.name.clone())
            .collect();
        let at = crate::model::now_utc();
        let id = crate::model::new_release_id(at);
        let created = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let fingerprint = self.production_fingerprint()?;
        let release = Release {
            id: id.clone(),
            state: ReleaseState::Previewing,
            author: self.actor.clone(),
            label: req.label.clone(),
            commit: req.commit.clone(),
            supersedes,
            created_at: created.clone(),
            updated_at: created,
            verdict: None,
            preview_env: None,
            base_fingerprint: Some(fingerprint.clone()),
            failure: None,
            root_cause: None,
            guardrail: None,
            promoted_at: None,
            promoted_by: None,
            recovery_snapshot: None,
            pending_count: pending.len() as u32,
        };
        let probes = self.ws.config.probes.clone();
        // The targets are pinned with the release: its deploys, reverts and rollbacks run
        // what was reviewed, whatever d1ops.toml says later.
        let targets = serde_json::to_string(&self.ws.config.targets)
            .map_err(|e| EngineError::Input(format!("[[target]] cannot be recorded: {e}")))?;
        let ships_code = self
            .ws
            .config
            .targets
            .iter()
            .any(|t| artifacts.iter().any(|a| a.name == t.artifact_name()));
        let run = self.store.atomically(|s| -> Result<crate::store::DeployRun> {
            s.insert_release(&release, &carried, &artifacts)?;
            s.set_release_probes(&id, &probes)?;
            s.set_release_targets(&id, &targets)?;
            let run = s.insert_deploy_run(&id, &self.actor)?;
            s.audit(
                &self.actor,
                "release.deployed",
                Some(&id),
                None,
                &json!({
                    "label": req.label, "commit": req.commit, "pending": pending,
                    "artifacts": artifacts.iter().map(|a| json!({"name": a.name, "sha256": a.sha256, "pinned": a.pinned})).collect::<Vec<_>>(),
                }),
            )?;
            Ok(run)
        })?;
        // The release now records its pinned copies: they stay.
        fresh.keep();
        tracing::info!(release = %id, pending = pending.len(), "deployed");
        // Keeps the run's lease fresh until the deploy returns (the verdict deletes the row).
        let _heartbeat = self.store.deploy_heartbeat(&run)?;
        crate::fault::point("deploy.before_clone");

        // A release that ships code gets a preview even without migrations: its code's
        // preview step runs against a copy of production, never production itself.
        let preview = if pending.is_empty() && !ships_code {
            None
        } else {
            let name = preview_name(&id);
            let made = match &production {
                Some(prod) => self.backend.clone_database(prod, &name),
                None => self.backend.create_database(&name),
            };
            match made {
                Ok(db) => {
                    crate::fault::point("deploy.after_clone");
                    self.store.atomically(|s| -> Result<()> {
                        s.insert_preview(&name, &id, Some(&db.id), &fingerprint)?;
                        s.set_release_preview(&id, &name, &fingerprint)?;
                        s.audit(&self.actor, "preview.created", Some(&id), Some(&name),
                            &json!({"cloned_from": if production.is_some() { PRODUCTION } else { "(empty)" }}))?;
                        Ok(())
                    })?;
                    Some(db)
                }
                Err(e) => {
                    // A full disk or a read-only folder is the environment's, not the
                    // migrations': say so, and leave nothing behind (the release is blocked
                    // with the reason; the backend removed any partial copy).
                    let prefix = if e.obstacle().is_some() {
                        "environment: "
                    } else {
                        ""
                    };
                    let report = infrastructure_failure(format!(
                        "{prefix}could not create the preview database: {e}"
                    ));
                    self.finish_gate(&id, &report)?;
                    return Err(e.into());
                }
            }
        };
        crate::fault::point("deploy.before_gate");
        let mut report = self.run_gate(&id, &migrations, &ledger, preview.clone())?;
        if ships_code {
            // The code's preview step, only once the schema's gate passed.
            let check = match &preview {
                Some(db) if report.verdict == Verdict::Ready => {
                    self.preview_code(&id, db, &preview_name(&id))?
                }
                _ => Some(CheckResult {
                    id: "code.preview".into(),
                    status: CheckStatus::Skip,
                    reason: "not run: the gate's other checks did not pass".into(),
                    details: serde_json::Value::Null,
                    duration_ms: 0.0,
                }),
            };
            if let Some(check) = check {
                if check.status == CheckStatus::Fail {
                    report.verdict = Verdict::Blocked;
                }
                report.total_ms += check.duration_ms;
                report.checks.push(check);
            }
        }
        crate::fault::point("deploy.before_verdict");
        self.finish_gate(&id, &report)?;
        let state = if report.verdict == Verdict::Ready {
            ReleaseState::Ready
        } else {
            ReleaseState::Blocked
        };
        Ok(DeployOutcome {
            id,
            state,
            verdict: report.verdict,
            checks: report.checks,
            preview: preview.map(|_| preview_name(&release.id)),
            pending,
            total_ms: report.total_ms,
        })
    }

    /// Pins one `--artifact`: a file as it is; a directory only for a `worker` target, as
    /// its bundle of modules written as one file (`WorkerBundle::to_archive`), so the
    /// pinned copy is still one content-addressed file.
    fn pin_source(
        &self,
        name: &str,
        path: &std::path::Path,
        dir: &std::path::Path,
        fresh: &mut FreshPins,
    ) -> Result<Artifact> {
        if !path.is_dir() {
            return pin_artifact(name, path, dir, fresh);
        }
        let worker = self.ws.config.targets.iter().find(|t| {
            t.kind == crate::workspace::config::TargetKind::Worker && t.artifact_name() == name
        });
        let Some(target) = worker else {
            return Err(EngineError::Input(format!(
                "artifact {name}: {} is a directory; only a worker target's artifact may be a directory of modules (pack anything else into one file)",
                path.display()
            )));
        };
        self.pin_worker_dir(name, path, target, dir, fresh)
    }

    #[cfg(feature = "d1")]
    fn pin_worker_dir(
        &self,
        name: &str,
        path: &std::path::Path,
        target: &crate::workspace::config::TargetConfig,
        dir: &std::path::Path,
        fresh: &mut FreshPins,
    ) -> Result<Artifact> {
        use crate::cloudflare::workers::WorkerBundle;
        let bundle = WorkerBundle::read(path, target.main.as_deref())
            .map_err(|e| EngineError::Input(format!("artifact {name}: {e}")))?;
        let store_err = |e: std::io::Error| {
            EngineError::Environment(format!(
                "artifact {name}: cannot write in {}: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(store_err)?;
        // Named like pin_artifact's own temporary files, so recovery and cleanup remove one
        // a killed deploy left behind.
        let tmp = dir.join(format!(
            ".pin-bundle-{}-{}.tmp",
            std::process::id(),
            crate::model::now_utc()
                .timestamp_nanos_opt()
                .unwrap_or_default()
        ));
        std::fs::write(&tmp, bundle.to_archive()).map_err(store_err)?;
        let pinned = pin_artifact(name, &tmp, dir, fresh);
        let _ = std::fs::remove_file(&tmp);
        let mut artifact = pinned?;
        artifact.path = path.display().to_string();
        Ok(artifact)
    }

    #[cfg(not(feature = "d1"))]
    fn pin_worker_dir(
        &self,
        name: &str,
        _path: &std::path::Path,
        _target: &crate::workspace::config::TargetConfig,
        _dir: &std::path::Path,
        _fresh: &mut FreshPins,
    ) -> Result<Artifact> {
        Err(EngineError::Input(format!(
            "artifact {name}: worker targets need the Cloudflare backend, which this build leaves out"
        )))
    }

    fn run_gate(
        &self,
        id: &str,
        migrations: &[crate::workspace::Migration],
        ledger: &[crate::backend::LedgerRow],
        preview: Option<DatabaseRef>,
    ) -> Result<GateReport> {
        let checksums = self.store.applied_checksums(PRODUCTION)?;
        let mut ctx = GateContext::new(
            &self.ws.config,
            self.backend.as_ref(),
            preview,
            migrations,
            ledger,
            &checksums,
        );
        ctx.live_probes = match self.store.production()?.active_release {
            Some(live) => {
                let probes = self.store.release_probes(&live)?;
                Some((live, probes))
            }
            None => None,
        };
        if ctx.preview.is_some() && !self.backend.previews_hold_rows() {
            ctx.production_figures = Some(self.schema_only_figures());
        }
        let checks = gate::default_checks();
        let report = gate::run(&checks, &mut ctx);
        self.record_probe_events(id, &ctx.probe_runs);
        if let Some(obstacle) = ctx.obstacle.take() {
            // The preview apply was stopped by the machine, not by a migration: no verdict.
            // `deploy` settles the release as blocked ("deploy interrupted: environment: …")
            // and removes its preview, so nothing stays stuck; exit 1.
            return Err(EngineError::Environment(format!(
                "environment: the preview of release {id} could not be migrated, and no migration is at fault: {obstacle}; deploy again once that is fixed"
            )));
        }
        Ok(report)
    }

    /// Records the gate's probe executions as query events of the preview environment, as
    /// d1ops' own statements (`monitor --include-d1ops` shows what the gate ran). Best
    /// effort: metrics never block a deploy.
    fn record_probe_events(&self, id: &str, runs: &gate::probes::ProbeRuns) {
        if self.uses_d1_analytics() {
            // D1's analytics count these statements; the sync brings them in once.
            return;
        }
        // The gate's probes are d1ops' own statements: recorded apart (`<preview>@d1ops`),
        // so the preview's Monitor shows app traffic only unless d1ops' are asked for.
        let env = crate::metrics::source::d1ops_env(&preview_name(id));
        let mut events = Vec::new();
        for (sql, run) in runs.measurements() {
            let event = |ms: f64| {
                let mut e = crate::metrics::QueryEvent::for_sql(&env, sql, ms);
                e.release = Some(id.to_string());
                e.rows_returned = run.rows.unwrap_or(0);
                e.rows_written = run.changes.unwrap_or(0);
                e
            };
            events.extend(run.timings_ms.iter().map(|ms| event(*ms)));
            if let Some(message) = &run.error {
                let mut e = event(0.0);
                e.error = Some(crate::metrics::QueryError {
                    code: "SQLITE_ERROR".into(),
                    message: message.clone(),
                });
                events.push(e);
            }
        }
        if events.is_empty() {
            return;
        }
        let recorded =
            super::capacity::open_metrics(&self.ws).and_then(|mut m| Ok(m.record(&events)?));
        if let Err(e) = recorded {
            tracing::warn!(release = %id, error = %e, "probe runs not recorded as query events");
        }
    }

    fn finish_gate(&mut self, id: &str, report: &GateReport) -> Result<()> {
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.save_gate_report(id, report)?;
            // The verdict is saved: the deploy is no longer in progress.
            s.delete_deploy_run(id)?;
            let failing: Vec<&str> = report
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| c.id.as_str())
                .collect();
            s.audit(
                &actor,
                "gate.completed",
                Some(id),
                None,
                &json!({"verdict": report.verdict.as_str(), "failing": failing, "total_ms": report.total_ms.round()}),
            )?;
            Ok(())
        })
    }
}

fn infrastructure_failure(reason: String) -> GateReport {
    GateReport {
        verdict: Verdict::Blocked,
        checks: vec![CheckResult {
            id: "mig.apply".into(),
            status: CheckStatus::Fail,
            reason,
            details: serde_json::Value::Null,
            duration_ms: 0.0,
        }],
        total_ms: 0.0,
    }
}
