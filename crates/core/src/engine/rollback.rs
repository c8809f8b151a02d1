//! `rollback`: production's active release — its app/bot/api artifacts — goes back to a
//! known-good release instantly; the schema stays (D1 schema is forward-only).
//!
//! Before switching, the target's probes run against a fresh copy of production's current
//! schema and data (never production itself): if any fails, the old code would break on the
//! new schema, so rollback refuses unless forced with a reason. The switch itself is one
//! state transaction; a crash before it leaves nothing to undo but the lock and the copy.
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::fault;
use crate::model::{Release, ReleaseState};
use crate::store::LockOperation;

/// What a rollback checked and did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    pub from: String,
    pub to: String,
    /// Probes of the target that were run on a copy of production, with failures.
    pub probes_run: usize,
    pub probe_failures: Vec<ProbeFailure>,
    pub forced: bool,
    pub reason: Option<String>,
    /// Per target: the code step that put the release's code back (or why none ran).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<super::code::CodeStepResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeFailure {
    pub probe: String,
    pub problem: String,
}

/// The local name of the throwaway copy a rollback probes.
fn check_copy(target: &str) -> String {
    format!("rollback-check-{}", target.to_lowercase())
}

impl Engine {
    /// The release a bare `rollback` goes back to: the newest one that was live before the
    /// current one.
    pub fn rollback_target(&self) -> Result<Release> {
        let live = self.store.production()?.active_release;
        let Some(live) = live else {
            return Err(EngineError::Refused(
                "no release is live; nothing to roll back".into(),
            ));
        };
        let current = self.resolve(&live)?;
        self.store
            .releases()?
            .into_iter()
            .filter(|r| r.id != current.id && r.state == ReleaseState::Superseded)
            .filter(|r| r.promoted_at.is_some() && r.promoted_at <= current.promoted_at)
            .max_by(|a, b| a.promoted_at.cmp(&b.promoted_at))
            .ok_or_else(|| {
                EngineError::Refused(format!(
                    "no release was live before {}; nothing to roll back to",
                    current.id
                ))
            })
    }

    /// Runs `target`'s probes once each on a fresh copy of production.
    pub fn rollback_check(&self, target: &Release) -> Result<(usize, Vec<ProbeFailure>)> {
        let probes = self.store.release_probes(&target.id)?;
        let Some(prod) = self.production_db()? else {
            return Ok((0, Vec::new()));
        };
        if probes.is_empty() {
            return Ok((0, Vec::new()));
        }
        let name = check_copy(&target.id);
        if let Ok(Some(stale)) = self.backend.lookup(&name) {
            let _ = self.backend.delete_database(&stale);
        }
        let copy = self.backend.clone_database(&prod, &name)?;
        fault::point("rollback.after_copy");
        let failures = crate::gate::probes::failing_probes(self.backend.as_ref(), &copy, &probes);
        let _ = self.backend.delete_database(&copy);
        Ok((
            probes.len(),
            failures
                .into_iter()
                .map(|(probe, problem)| ProbeFailure { probe, problem })
                .collect(),
        ))
    }

    /// Switches production's active release to `target` (default: the previous one).
    pub fn rollback(
        &mut self,
        target: Option<&str>,
        force: bool,
        reason: Option<&str>,
    ) -> Result<RollbackOutcome> {
        self.ensure_writable("rollback")?;
        if force && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(EngineError::Input(
                "--force needs --reason: say why the failing probes are acceptable".into(),
            ));
        }
        let target = match target {
            Some(id) => self.resolve(id)?,
            None => self.rollback_target()?,
        };
        let live = self.store.production()?.active_release;
        let Some(from) = live else {
            return Err(EngineError::Refused(
                "no release is live; nothing to roll back".into(),
            ));
        };
        if target.id == from {
            return Err(EngineError::Refused(format!(
                "release {} is already live",
                target.id
            )));
        }
        if target.promoted_at.is_none()
            || !matches!(
                target.state,
                ReleaseState::Superseded | ReleaseState::RolledBack
            )
        {
            return Err(EngineError::Refused(format!(
                "release {} is {} and was never live (or was reverted); rollback goes back to a release production ran before",
                target.id, target.state
            )));
        }
        let heartbeat =
            self.acquire_lock(&target.id, Some(&from), LockOperation::Rollback, None)?;
        let checked = self.rollback_check(&target);
        let (probes_run, failures) = match checked {
            Ok(v) => v,
            Err(e) => {
                self.store.delete_lock()?;
                return Err(e);
            }
        };
        if !failures.is_empty() && !force {
            self.store.delete_lock()?;
            let list: Vec<String> = failures
                .iter()
                .map(|f| format!("{}: {}", f.probe, f.problem))
                .collect();
            return Err(EngineError::Refused(format!(
                "rollback to {} refused: {} of its {} probe(s) fail on production's current schema, so its code would break ({}); pass --force --reason T to override",
                target.id,
                failures.len(),
                probes_run,
                list.join("; ")
            )));
        }
        // The code of the release to go back to, target by target; a failure puts the
        // targets switched so far back and leaves `from` active.
        let code = match self.rollback_code(&target) {
            Ok(Ok(done)) => done,
            Ok(Err(failed)) => {
                let failure = failed.failure(Some(format!("release {from} stays live")));
                let actor = self.actor.clone();
                self.store.atomically(|s| -> Result<()> {
                    s.delete_lock()?;
                    s.audit(
                        &actor,
                        "rollback.failed",
                        Some(&target.id),
                        Some(PRODUCTION),
                        &json!({"from": from, "to": target.id, "failure": failure}),
                    )?;
                    Ok(())
                })?;
                return Err(EngineError::CodeFailed {
                    operation: "rollback",
                    release: target.id.clone(),
                    failure: Box::new(failure),
                });
            }
            Err(e) => {
                self.store.delete_lock()?;
                return Err(e);
            }
        };
        fault::point("rollback.before_switch");
        let actor = self.actor.clone();
        let forced = force && !failures.is_empty();
        self.store.atomically(|s| -> Result<()> {
            if !s.lock_held(heartbeat.lease())? {
                return Err(super::promote::lease_lost("rollback", &target.id));
            }
            s.set_release_state(&from, ReleaseState::RolledBack)?;
            s.set_release_state(&target.id, ReleaseState::Live)?;
            s.set_env_active(PRODUCTION, Some(&target.id))?;
            s.delete_lock()?;
            s.audit(&actor, "release.rolled_back", Some(&from), Some(PRODUCTION), &json!({
                "from": from, "to": target.id, "reason": reason, "forced": forced,
                "probes_run": probes_run,
                "probe_failures": failures.iter().map(|f| json!({"probe": f.probe, "problem": f.problem})).collect::<Vec<_>>(),
            }))?;
            Ok(())
        })?;
        Ok(RollbackOutcome {
            from,
            to: target.id,
            probes_run,
            probe_failures: failures,
            forced,
            reason: reason.map(str::to_string),
            code,
        })
    }

    /// Crash recovery for a rollback: the switch is one transaction, so an interrupted
    /// rollback changed nothing; drop the lock and the throwaway copy.
    pub(super) fn recover_rollback(
        &mut self,
        lock: &crate::store::LockRow,
    ) -> Result<&'static str> {
        if let Ok(Some(copy)) = self.backend.lookup(&check_copy(&lock.release_id)) {
            let _ = self.backend.delete_database(&copy);
        }
        // Code it had started shipping goes back to the code of the release it rolled back
        // from (the switch itself never happened).
        let reverted = self.recover_rollback_code(lock)?;
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.delete_lock()?;
            s.audit(
                &actor,
                "rollback.recovered",
                Some(&lock.release_id),
                Some(PRODUCTION),
                &json!({"outcome": "rolled_back", "holder": lock.holder, "code_reverted": reverted}),
            )?;
            Ok(())
        })?;
        Ok("rolled_back")
    }
}
