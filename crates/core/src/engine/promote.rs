//! `promote`: production receives exactly the tested migrations, all or nothing.
//!
//! Order of steps (each recorded in the promotion lock before it runs, so recovery knows what
//! may have happened): lock → fingerprint check → snapshot → apply (one transaction) → flip the
//! active release and release the lock (one state transaction).
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::{BackendError, Obstacle, SnapshotRef};
use crate::fault;
use crate::model::{Failure, Release, ReleaseState, Verdict, now};
use crate::store::{LockOperation, LockStep, holder_alive_row};
use crate::workspace::Migration;

#[derive(Debug, Clone, Serialize)]
pub struct PromoteOutcome {
    pub id: String,
    pub state: ReleaseState,
    pub previous: Option<String>,
    pub applied: Vec<String>,
    pub snapshot: Option<i64>,
    /// The code steps that made the release's code live, in config order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<super::code::CodeStepResult>,
    pub duration_ms: f64,
}

impl Engine {
    /// Why `rel` may not be promoted right now, if anything (gate, approvals, staleness).
    pub fn promotion_blocker(&self, rel: &Release) -> Result<Option<String>> {
        let required = self.ws.config.policy.required_approvals;
        let approvals = crate::model::distinct_approvers(&self.store.approvals(&rel.id)?) as u32;
        let why = match rel.state {
            ReleaseState::Approved => None,
            ReleaseState::Ready if approvals >= required => None,
            ReleaseState::Ready => Some(format!(
                "release {} needs {required} approval(s) and has {approvals}",
                rel.id
            )),
            other => Some(format!(
                "release {} is {other}; only an approved release can be promoted",
                rel.id
            )),
        };
        if why.is_some() {
            return Ok(why);
        }
        if rel.verdict != Some(Verdict::Ready) {
            return Ok(Some(format!(
                "release {}'s gate verdict is not ready",
                rel.id
            )));
        }
        if approvals < required {
            return Ok(Some(format!(
                "release {} needs {required} approval(s) and has {approvals}",
                rel.id
            )));
        }
        // A worker rollout still rolling must end (continue or abort) before another
        // release's code can ship.
        if let Some(why) = self.rollout_blocker()? {
            return Ok(Some(why));
        }
        // Production's ledger must agree with d1ops' record (engine/ledger.rs).
        if let Some(why) = self.ledger_refusal()? {
            return Ok(Some(why));
        }
        let now_fp = self.production_fingerprint()?;
        if rel.base_fingerprint.as_deref() != Some(now_fp.as_str()) {
            return Ok(Some(format!(
                "production changed since release {}'s preview was made (different applied migrations or schema); deploy again to re-validate",
                rel.id
            )));
        }
        Ok(None)
    }

    /// Promotes an approved release to production.
    pub fn promote(&mut self, id: &str) -> Result<PromoteOutcome> {
        self.ensure_writable("promote")?;
        let started = std::time::Instant::now();
        let rel = self.resolve(id)?;
        if let Some(why) = self.promotion_blocker(&rel)? {
            return Err(EngineError::Refused(why));
        }
        let previous = self.store.production()?.active_release;
        let heartbeat =
            self.acquire_lock(&rel.id, previous.as_deref(), LockOperation::Promote, None)?;
        fault::point("promote.after_lock");
        // Re-check under the lock: another promotion may have finished while we waited.
        let fresh = self.resolve(&rel.id)?;
        if let Some(why) = self.promotion_blocker(&fresh)? {
            self.store.delete_lock()?;
            return Err(EngineError::Refused(why));
        }
        let pending = self.pending_migrations(&rel.id)?;
        // The environment before anything is written: a read-only file or folder, or a disk
        // without room for the recovery point and the apply, is a refusal, not a failure.
        if !pending.is_empty()
            && let Some(db) = self.production_db()?
            && let Err(e) = self.backend.preflight_write(&db)
        {
            if e.obstacle().is_some() {
                return self.abort_promotion(&rel.id, "preflight", &e, false);
            }
            self.store.delete_lock()?;
            return Err(e.into());
        }
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.set_release_state(&rel.id, ReleaseState::Promoting)?;
            s.audit(&actor, "promotion.started", Some(&rel.id), Some(PRODUCTION),
                &json!({"pending": pending.iter().map(|m| &m.name).collect::<Vec<_>>(), "previous": previous}))?;
            Ok(())
        })?;

        let mut snapshot_id = None;
        let mut created_database = false;
        if !pending.is_empty() {
            let db = match self.production_db()? {
                Some(db) => db,
                None => {
                    // Lazy provisioning: the first promotion with migrations creates production.
                    // Recorded first, so a crash right after creating it removes it again.
                    self.store.set_lock_step(LockStep::Locked, None, true)?;
                    match self.backend.create_database(PRODUCTION) {
                        Ok(db) => {
                            created_database = true;
                            db
                        }
                        Err(BackendError::Exists(_)) => {
                            // Someone else's file: use it, and never delete it on failure.
                            self.store.set_lock_step(LockStep::Locked, None, false)?;
                            self.backend.production_ref()
                        }
                        Err(e) => return self.backend_failure(&rel.id, "provision", e, true),
                    }
                }
            };
            // The recovery point of a database this promotion created is "no database".
            let (location, size) = if created_database {
                (None, 0)
            } else {
                match self.backend.snapshot(&db, &rel.id.to_lowercase()) {
                    Ok(snap) => (snap.location, snap.size_bytes),
                    Err(e) => {
                        return self.backend_failure(&rel.id, "snapshot", e, created_database);
                    }
                }
            };
            let sid = self.store.atomically(|s| -> Result<i64> {
                let sid = s.insert_snapshot(
                    Some(&rel.id),
                    PRODUCTION,
                    location.as_deref(),
                    size,
                    "pre-promote",
                    previous.as_deref(),
                )?;
                s.set_lock_step(LockStep::Snapshotted, Some(sid), created_database)?;
                Ok(sid)
            })?;
            snapshot_id = Some(sid);
            fault::point("promote.after_snapshot");
            if !self.store.set_lock_step_if_held(
                heartbeat.lease(),
                LockStep::Applying,
                None,
                created_database,
            )? {
                return Err(lease_lost("promotion", &rel.id));
            }
            fault::point("promote.before_apply");
            let table = self.ws.config.migrations_table.clone();
            match self.backend.apply_migrations(&db, &pending, &table) {
                Ok(report) => {
                    tracing::info!(release = %rel.id, ms = report.duration_ms, "applied to production")
                }
                Err(e) => return self.backend_failure(&rel.id, "apply", e, created_database),
            }
            fault::point("promote.after_commit");
        }
        // The code, only now that the migrations succeeded: each target in config order.
        let code = self.shipped_code(&rel.id)?;
        let mut shipped = Vec::new();
        if !code.is_empty() {
            if !self.store.set_lock_step_if_held(
                heartbeat.lease(),
                LockStep::Code,
                None,
                created_database,
            )? {
                return Err(lease_lost("promotion", &rel.id));
            }
            fault::point("promote.before_code");
            let db = self
                .production_db()?
                .unwrap_or_else(|| self.backend.production_ref());
            match self.ship_code(&rel.id, &code, &db)? {
                Ok(done) => shipped = done,
                Err(failed) => {
                    let failure = failed.failure(None);
                    let e = self.fail_code_promotion(
                        &rel.id,
                        &pending,
                        snapshot_id,
                        created_database,
                        previous.as_deref(),
                        failure,
                    )?;
                    return Err(e);
                }
            }
            fault::point("promote.after_code");
        }
        if let Err(e) =
            self.finish_promotion(&rel.id, &pending, snapshot_id, previous.as_deref(), None)
        {
            if pending.is_empty() {
                return Err(e);
            }
            // The apply committed: production has the migrations. The lock stays at
            // `applying`, and recovery rolls it forward from production's ledger.
            return Err(EngineError::Unfinished(format!(
                "production already has release {}'s migrations ({}): they were committed, but recording the promotion failed: {e}; nothing is lost and nothing will be applied twice: once the state can be written again (free space if the disk is full), the next d1ops command (e.g. `d1ops releases`) completes the promotion from production's ledger",
                rel.id,
                pending
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(PromoteOutcome {
            id: rel.id,
            state: ReleaseState::Live,
            previous,
            applied: pending.iter().map(|m| m.name.clone()).collect(),
            snapshot: snapshot_id,
            code: shipped,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The release's pending migrations, rebuilt from the SQL pinned in the release (never
    /// from the files on disk, which may have changed since the gate ran).
    pub fn pending_migrations(&self, id: &str) -> Result<Vec<Migration>> {
        let drizzle = self.ws.is_drizzle();
        self.store
            .release_migrations(id)?
            .into_iter()
            .filter(|m| m.pending)
            .map(|m| Migration::from_sql(&m.name, &m.path, m.sql, drizzle).map_err(Into::into))
            .collect()
    }

    /// Takes the production lock for `operation` on `release`; a lock whose holder died is
    /// recovered first. A live holder is named in the refusal. The returned heartbeat keeps
    /// the lock's lease fresh until it is dropped (keep it for as long as the operation runs).
    pub(super) fn acquire_lock(
        &mut self,
        release: &str,
        previous: Option<&str>,
        operation: LockOperation,
        fingerprint_before: Option<&str>,
    ) -> Result<crate::store::Heartbeat> {
        for attempt in 0..2 {
            let actor = self.actor.clone();
            let held = self.store.atomically(
                |s| -> Result<Result<crate::store::LockRow, crate::store::LockRow>> {
                    if let Some(held) = s.lock()? {
                        return Ok(Err(held));
                    }
                    Ok(Ok(s.insert_lock(
                        release,
                        &actor,
                        previous,
                        operation,
                        fingerprint_before,
                    )?))
                },
            )?;
            match held {
                Ok(mine) => {
                    let lease = mine.lease.unwrap_or_default();
                    return match self.store.lock_heartbeat(&lease) {
                        Ok(beat) => Ok(beat),
                        Err(e) => {
                            self.store.delete_lock()?;
                            Err(e.into())
                        }
                    };
                }
                // Its holder is gone (process exited, or lease expired): recover, then try
                // once more.
                Err(held) if attempt == 0 && !holder_alive_row(&held) => {
                    self.recovered = self.recover()?;
                }
                Err(held) => return Err(in_progress(&held)),
            }
        }
        Err(EngineError::Refused(
            "could not take the production lock".into(),
        ))
    }

    /// Success: release live, previous superseded, production points at it, lock released —
    /// one state transaction.
    pub(super) fn finish_promotion(
        &mut self,
        id: &str,
        applied: &[Migration],
        snapshot: Option<i64>,
        previous: Option<&str>,
        promoter: Option<&str>,
    ) -> Result<()> {
        // Who promoted stays who promoted: a recovery that completes someone else's
        // promotion records that operator (from the lock) and itself as the settler.
        let settler = self.actor.clone();
        let actor = promoter.map_or_else(|| settler.clone(), str::to_string);
        let settled_by = promoter.is_some().then_some(settler);
        // Read the ledger from the database itself: a database this promotion provisioned is
        // not yet recorded on the production environment.
        let ledger = if applied.is_empty() {
            self.production_ledger()?
        } else {
            self.backend.ledger(
                &self.backend.production_ref(),
                &self.ws.config.migrations_table,
            )?
        };
        let carried = self.store.release_migrations(id)?;
        let existing = self.store.applied_checksums(PRODUCTION)?;
        // Production's own id (D1: its uuid), not the local backend's file name.
        let prod_id = self.backend.production_ref().id;
        let db_id = if applied.is_empty() {
            None
        } else {
            Some(prod_id.as_str())
        };
        // The watch window starts now; its verdict is evaluated lazily (engine/capacity).
        let watch = super::capacity::watch_started(&self.ws.config.watch, id);
        self.store.atomically(|s| -> Result<()> {
            if let Some(db) = db_id {
                s.set_env_database(PRODUCTION, Some(db))?;
            }
            // Pin the checksum of every applied migration this release carries (including ones
            // applied outside d1ops, which are pinned the first time d1ops sees them).
            for m in &carried {
                let is_applied = ledger.iter().any(|r| r.name == m.name);
                if is_applied && (!existing.contains_key(&m.name) || applied.iter().any(|a| a.name == m.name)) {
                    s.record_applied(PRODUCTION, &m.name, &m.sha256, &m.sha256_normalized,
                        applied.iter().any(|a| a.name == m.name).then_some(id))?;
                }
            }
            if let Some(prev) = previous
                && prev != id
            {
                s.set_release_state(prev, ReleaseState::Superseded)?;
            }
            s.set_release_promoted(id, &actor, snapshot)?;
            s.set_release_watch(id, &watch)?;
            s.set_env_active(PRODUCTION, Some(id))?;
            s.delete_lock()?;
            s.audit(&actor, "promotion.succeeded", Some(id), Some(PRODUCTION),
                &json!({"applied": applied.iter().map(|m| &m.name).collect::<Vec<_>>(), "previous": previous, "snapshot": snapshot, "settled_by": settled_by}))?;
            Ok(())
        })?;
        Ok(())
    }

    /// An obstacle in the environment (production locked by another process, a read-only
    /// file or folder, a full disk): nothing was changed — an apply that started rolled back —
    /// so the release stays approved, the lock and any recovery point taken for this attempt
    /// are released, and the refusal (`promotion.refused`, exit 4) names the obstacle.
    fn abort_promotion<T>(
        &mut self,
        id: &str,
        stage: &str,
        error: &BackendError,
        created_database: bool,
    ) -> Result<T> {
        if created_database {
            let _ = self.backend.delete_database(&self.backend.production_ref());
        }
        let obstacle = error.obstacle().unwrap_or(Obstacle::Io);
        let reason = format!(
            "{error}; nothing was changed (production is as it was and the release stays approved), {}",
            obstacle.remedy().replace("try again", "promote again")
        );
        // This attempt's recovery point is a copy of an unchanged production: remove it.
        let snapshot = self
            .store
            .lock()
            .ok()
            .flatten()
            .and_then(|l| l.snapshot_id)
            .and_then(|sid| self.store.snapshot(sid).ok().flatten());
        let actor = self.actor.clone();
        let recorded = self.store.atomically(|s| -> Result<()> {
            if s.release(id)?
                .is_some_and(|r| r.state == ReleaseState::Promoting)
            {
                s.set_release_state(id, ReleaseState::Approved)?;
            }
            if let Some(snap) = &snapshot {
                s.mark_snapshot_deleted(snap.id)?;
            }
            s.delete_lock()?;
            s.audit(
                &actor,
                "promotion.refused",
                Some(id),
                Some(PRODUCTION),
                &json!({"obstacle": obstacle.as_str(), "stage": stage, "reason": reason}),
            )?;
            Ok(())
        });
        let mut sentence = format!("promotion of {id} refused: {reason}");
        match recorded {
            // Recorded as deleted: now the file may go (never before: recovery of a lock
            // left behind would still need it).
            Ok(()) => {
                if let Some(snap) = &snapshot
                    && snap.location.is_some()
                    && let Err(e) = self.backend.delete_snapshot(&SnapshotRef {
                        location: snap.location.clone(),
                        size_bytes: snap.size_bytes,
                    })
                {
                    tracing::warn!(error = %e, "recovery point of a refused promotion not removed");
                }
            }
            // The lock stays; its holder (this process) ends, so the next command rolls the
            // attempt back from the lock's step.
            Err(e) => sentence.push_str(&format!(
                " (recording the refusal failed too: {e}; the next d1ops command releases the lock)"
            )),
        }
        Err(EngineError::Refused(sentence))
    }

    /// Routes a backend error: an obstacle in the environment (a lock, a read-only path, a
    /// full disk) is a refusal (nothing changed); anything else fails the release with the
    /// cause.
    fn backend_failure<T>(
        &mut self,
        id: &str,
        stage: &str,
        e: BackendError,
        created_database: bool,
    ) -> Result<T> {
        match e {
            BackendError::Locked { .. } | BackendError::Environment { .. } => {
                self.abort_promotion(id, stage, &e, created_database)
            }
            // Neither failed nor done: the lock stays at `applying`, and the next d1ops
            // process recovers it from production's ledger (roll forward or back).
            BackendError::Ambiguous(_) => Err(e.into()),
            BackendError::Apply(f) => {
                let failure = Failure {
                    stage: stage.into(),
                    migration: f.migration,
                    line: f.line,
                    statement: f.statement,
                    error: f.error,
                    at: now(),
                    target: None,
                    output_tail: None,
                    outcome: None,
                };
                self.record_failure(id, failure, created_database)
            }
            e => self.fail_promotion(id, stage, None, e.to_string(), created_database),
        }
    }

    fn fail_promotion<T>(
        &mut self,
        id: &str,
        stage: &str,
        migration: Option<String>,
        error: String,
        created_database: bool,
    ) -> Result<T> {
        let failure = Failure {
            stage: stage.into(),
            migration,
            line: None,
            statement: None,
            error,
            at: now(),
            target: None,
            output_tail: None,
            outcome: None,
        };
        self.record_failure(id, failure, created_database)
    }

    /// Failure: production is as before (the apply rolled back; a database this promotion
    /// created is removed), the release is `failed` with the cause, the lock is released.
    fn record_failure<T>(
        &mut self,
        id: &str,
        failure: Failure,
        created_database: bool,
    ) -> Result<T> {
        if created_database {
            let _ = self.backend.delete_database(&self.backend.production_ref());
        }
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.set_release_failure(id, &failure)?;
            s.delete_lock()?;
            s.audit(
                &actor,
                "promotion.failed",
                Some(id),
                Some(PRODUCTION),
                &json!(failure),
            )?;
            Ok(())
        })?;
        Err(EngineError::PromotionFailed {
            release: id.to_string(),
            failure: Box::new(failure),
        })
    }
}

/// The lock of a running operation was recovered by another process (its lease expired while
/// this one was paused): it stops before touching production.
pub(super) fn lease_lost(what: &str, release: &str) -> EngineError {
    EngineError::Refused(format!(
        "{what} of {release} stopped before touching production: its lock's heartbeat lease expired while this process was paused and another d1ops recovered it; nothing was changed, run it again"
    ))
}

fn in_progress(held: &crate::store::LockRow) -> EngineError {
    let what = match held.operation {
        LockOperation::Restore => "restore",
        LockOperation::Rollback => "rollback",
        LockOperation::LedgerRepair => "ledger repair",
        LockOperation::Promote => "promotion",
    };
    let beat = match &held.heartbeat_at {
        Some(t) => format!(", last heartbeat {t}"),
        None if held.host != crate::store::hostname() => {
            "; it records no heartbeat, so if that host is gone `d1ops unlock --reason T` releases it".to_string()
        }
        None => String::new(),
    };
    EngineError::Refused(format!(
        "{what} of {} in progress by {} since {} (pid {} on {}{beat}); try again when it finishes",
        held.release_id, held.holder, held.since, held.pid, held.host
    ))
}
