//! `restore`: production's database back to the recovery point taken just before a release
//! was promoted, with an explicit loss report first, a snapshot of the current state so the
//! restore can be undone (`restore --undo`), and crash recovery like promote.
//!
//! Steps (each recorded in the lock row before it runs): lock (operation `restore`, with
//! production's fingerprint) → pre-restore snapshot → restore record + `applying` → put the
//! recovery point back (one SQLite write transaction) → one state transaction that sets the
//! release states, the active release and the applied-migration records, and drops the lock.
//!
//! Crash recovery of an interrupted restore (did the apply land?) is `restore_recovery.rs`.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::{LossReport, SnapshotRef};
use crate::fault;
use crate::model::{ReleaseState, Snapshot};
use crate::store::{AppliedChecksum, LockOperation, LockStep};

#[path = "restore_recovery.rs"]
mod restore_recovery;

/// What a restore would do, shown before it is confirmed.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// The release whose pre-promotion recovery point is restored (`None` for an undo).
    pub to_release: Option<String>,
    pub snapshot: Snapshot,
    /// Rows inserted / updated / deleted since the recovery point, per table.
    pub losses: LossReport,
    /// Migrations production has now that the recovery point predates.
    pub migrations_undone: Vec<String>,
    /// Release id → the state it gets.
    pub state_changes: BTreeMap<String, String>,
    /// The release production points at afterwards.
    pub becomes_live: Option<String>,
    /// For an undo: the restore being undone.
    pub undo_of: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub restore_id: i64,
    pub pre_restore_snapshot: Option<i64>,
    pub live: Option<String>,
    pub duration_ms: f64,
}

fn snapshot_ref(s: &Snapshot) -> SnapshotRef {
    SnapshotRef {
        location: s.location.clone(),
        size_bytes: s.size_bytes,
    }
}

impl Engine {
    /// The plan for restoring production to just before `id` was promoted.
    pub fn restore_plan(&self, id: &str) -> Result<RestorePlan> {
        let rel = self.resolve(id)?;
        let Some(snapshot_id) = rel.recovery_snapshot else {
            return Err(EngineError::Refused(format!(
                "release {} has no recovery point (never promoted, or code only); `d1ops rollback` switches code without touching the database",
                rel.id
            )));
        };
        let snapshot = self.live_snapshot(snapshot_id, &rel.id)?;
        let promoted_after: Vec<crate::model::Release> = self
            .store
            .releases()?
            .into_iter()
            .filter(|r| {
                r.promoted_at
                    .as_deref()
                    .is_some_and(|t| t >= snapshot.created_at.as_str())
                    && matches!(
                        r.state,
                        ReleaseState::Live | ReleaseState::Superseded | ReleaseState::RolledBack
                    )
            })
            .collect();
        let mut state_changes: BTreeMap<String, String> = promoted_after
            .iter()
            .map(|r| (r.id.clone(), ReleaseState::Reverted.as_str().to_string()))
            .collect();
        if let Some(prev) = &snapshot.previous_release {
            state_changes.insert(prev.clone(), ReleaseState::Live.as_str().to_string());
        }
        let applied = self.store.applied_checksums(PRODUCTION)?;
        let migrations_undone = applied
            .values()
            .filter(|a| {
                a.release_id
                    .as_ref()
                    .is_some_and(|r| state_changes.get(r).is_some_and(|s| s == "reverted"))
            })
            .map(|a| a.name.clone())
            .collect();
        Ok(RestorePlan {
            losses: self.losses_since(&snapshot)?,
            to_release: Some(rel.id),
            becomes_live: snapshot.previous_release.clone(),
            snapshot,
            migrations_undone,
            state_changes,
            undo_of: None,
        })
    }

    /// The plan for undoing the last restore.
    pub fn undo_plan(&self) -> Result<RestorePlan> {
        let Some(rec) = self.store.last_undoable_restore()? else {
            return Err(EngineError::Refused("there is no restore to undo".into()));
        };
        let Some(pre) = rec.pre_snapshot_id else {
            return Err(EngineError::Refused(format!(
                "restore {} kept no snapshot to undo to",
                rec.id
            )));
        };
        let snapshot = self.live_snapshot(pre, "the last restore")?;
        let state_changes = crate::store::Store::restore_previous_states(&rec)?;
        let undone_applied: Vec<AppliedChecksum> =
            serde_json::from_str(&rec.previous_applied).unwrap_or_default();
        let now: Vec<String> = self
            .store
            .applied_checksums(PRODUCTION)?
            .into_keys()
            .collect();
        let migrations_undone = now
            .into_iter()
            .filter(|n| !undone_applied.iter().any(|a| &a.name == n))
            .collect();
        Ok(RestorePlan {
            losses: self.losses_since(&snapshot)?,
            to_release: None,
            becomes_live: rec.previous_active.clone(),
            snapshot,
            migrations_undone,
            state_changes,
            undo_of: Some(rec.id),
        })
    }

    fn live_snapshot(&self, id: i64, what: &str) -> Result<Snapshot> {
        match self.store.snapshot(id)? {
            Some(s) if s.deleted_at.is_none() => Ok(s),
            Some(s) => Err(EngineError::Refused(format!(
                "the recovery point of {what} (snapshot {id}) was deleted at {} by snapshot retention",
                s.deleted_at.unwrap_or_default()
            ))),
            None => Err(EngineError::Refused(format!(
                "snapshot {id} of {what} is not recorded"
            ))),
        }
    }

    fn losses_since(&self, snapshot: &Snapshot) -> Result<LossReport> {
        match self.production_db()? {
            Some(db) if self.backend.exists(&db)? => Ok(self.backend.loss_since(
                &db,
                &snapshot_ref(snapshot),
                &self.ws.config.migrations_table,
            )?),
            _ => Ok(LossReport::default()),
        }
    }

    /// Carries out a plan from [`Engine::restore_plan`] or [`Engine::undo_plan`].
    pub fn restore(&mut self, plan: &RestorePlan) -> Result<RestoreOutcome> {
        self.ensure_writable("restore")?;
        let started = std::time::Instant::now();
        let production = self.store.production()?;
        let db = self.backend.production_ref();
        let fingerprint = self.production_fingerprint()?;
        let label = plan.to_release.clone().unwrap_or_else(|| "undo".into());
        // The fingerprint production has once the recovery point is back, when it is known:
        // recovery compares production with it and with `fingerprint` to tell whether the
        // apply landed.
        let target_fingerprint = match (&plan.to_release, plan.undo_of) {
            (Some(id), _) => self.store.release(id)?.and_then(|r| r.base_fingerprint),
            (None, Some(undone)) => self
                .store
                .restore_record(undone)?
                .and_then(|r| r.fingerprint_before),
            (None, None) => None,
        };
        let heartbeat = self.acquire_lock(
            &label,
            production.active_release.as_deref(),
            LockOperation::Restore,
            Some(&fingerprint),
        )?;
        fault::point("restore.after_lock");
        // A snapshot of now, so this restore can itself be undone. D1 names that point in
        // the restore's own answer (`previous_bookmark`): it is recorded once the restore
        // returns, exact, with no bookmark read beforehand that later writes would outdate.
        let exists = self.backend.exists(&db)?;
        let deferred_pre = exists && self.backend.restore_names_previous();
        let pre_size = if deferred_pre {
            self.backend.size_bytes(&db).unwrap_or(0)
        } else {
            0
        };
        let pre = if deferred_pre {
            None
        } else if exists {
            match self.backend.snapshot(&db, "pre-restore") {
                Ok(s) => Some(s),
                Err(e) => {
                    self.store.delete_lock()?;
                    return Err(e.into());
                }
            }
        } else {
            Some(SnapshotRef {
                location: None,
                size_bytes: 0,
            })
        };
        let previous_states: BTreeMap<String, String> = plan
            .state_changes
            .keys()
            .filter_map(|id| self.store.release(id).ok().flatten())
            .map(|r| (r.id, r.state.as_str().to_string()))
            .collect();
        let previous_applied: Vec<AppliedChecksum> = self
            .store
            .applied_checksums(PRODUCTION)?
            .into_values()
            .collect();
        let actor = self.actor.clone();
        let restore_id = self.store.atomically(|s| -> Result<i64> {
            let pre_id = match &pre {
                Some(p) => Some(s.insert_snapshot(
                    production.active_release.as_deref(),
                    PRODUCTION,
                    p.location.as_deref(),
                    p.size_bytes,
                    "pre-restore",
                    production.active_release.as_deref(),
                )?),
                None => None,
            };
            let id = s.insert_restore(
                plan.to_release.as_deref(),
                plan.snapshot.id,
                pre_id,
                &actor,
                &serde_json::to_string(&previous_states).unwrap_or_else(|_| "{}".into()),
                production.active_release.as_deref(),
                &serde_json::to_string(&previous_applied).unwrap_or_else(|_| "[]".into()),
                plan.undo_of,
                (Some(fingerprint.as_str()), target_fingerprint.as_deref()),
            )?;
            if !s.set_lock_step_if_held(
                heartbeat.lease(),
                LockStep::Applying,
                Some(plan.snapshot.id),
                false,
            )? {
                return Err(super::promote::lease_lost("restore", &label));
            }
            s.audit(
                &actor,
                "restore.started",
                plan.to_release.as_deref(),
                Some(PRODUCTION),
                &json!({"restore": id, "snapshot": plan.snapshot.id, "undo_of": plan.undo_of}),
            )?;
            Ok(id)
        })?;
        fault::point("restore.before_apply");
        let sent_at = crate::model::now_utc();
        let restored = self
            .backend
            .restore_returning_previous(&db, &snapshot_ref(&plan.snapshot));
        fault::point("restore.before_undo_point");
        if deferred_pre && let Ok(Some(previous)) = &restored {
            let active = production.active_release.as_deref();
            if let Err(e) = self.record_previous_point(restore_id, previous, pre_size, active) {
                tracing::warn!(restore = restore_id, error = %e, "the restore's previous point was not recorded; it cannot be undone");
            }
        }
        if let Err(e) = restored {
            // The restore is one SQLite write transaction (one Time Travel restore on D1): a
            // failure normally changed nothing. An answer lost on its way back may hide a
            // restore that landed, though: production itself decides, as in recovery.
            if let Some(why) = self.restore_landed_despite(restore_id) {
                tracing::warn!(restore = restore_id, error = %e, why, "the restore reported an error but landed");
                // Its answer, and the previous bookmark in it, is lost: the point production
                // was at when the restore was sent stands in as the undo point.
                if deferred_pre {
                    let active = production.active_release.as_deref();
                    let recorded = match self.backend.point_at(&db, sent_at) {
                        Ok(Some(p)) => self.record_previous_point(restore_id, &p, pre_size, active),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e.into()),
                    };
                    if let Err(e) = recorded {
                        tracing::warn!(restore = restore_id, error = %e, "no undo point was recorded for a restore whose answer was lost");
                    }
                }
                self.audit(
                    "restore.answer_lost",
                    plan.to_release.as_deref(),
                    Some(PRODUCTION),
                    json!({"restore": restore_id, "error": e.to_string(), "decided_by": why}),
                )?;
                return self.complete_restore(restore_id, started);
            }
            let actor = self.actor.clone();
            self.store.atomically(|s| -> Result<()> {
                s.set_restore_status(restore_id, "aborted")?;
                s.delete_lock()?;
                s.audit(
                    &actor,
                    "restore.failed",
                    plan.to_release.as_deref(),
                    Some(PRODUCTION),
                    &json!({"error": e.to_string()}),
                )?;
                Ok(())
            })?;
            return Err(e.into());
        }
        fault::point("restore.after_apply");
        self.complete_restore(restore_id, started)
    }

    /// Records the point a restore replaced, as the backend named it in the restore's answer,
    /// as this restore's pre-restore recovery point (what `restore --undo` goes back to).
    fn record_previous_point(
        &mut self,
        restore_id: i64,
        previous: &SnapshotRef,
        size_bytes: u64,
        active: Option<&str>,
    ) -> Result<()> {
        self.store.atomically(|s| -> Result<()> {
            let id = s.insert_snapshot(
                active,
                PRODUCTION,
                previous.location.as_deref(),
                size_bytes,
                "pre-restore",
                active,
            )?;
            s.set_restore_pre_snapshot(restore_id, id)?;
            Ok(())
        })
    }

    /// After the apply landed: record the step `applied`, then the state half.
    fn complete_restore(
        &mut self,
        restore_id: i64,
        started: std::time::Instant,
    ) -> Result<RestoreOutcome> {
        self.store.set_lock_step(LockStep::Applied, None, false)?;
        fault::point("restore.before_finish");
        self.finish_restore(restore_id)?;
        let rec = self.store.restore_record(restore_id)?;
        Ok(RestoreOutcome {
            restore_id,
            pre_restore_snapshot: rec.and_then(|r| r.pre_snapshot_id),
            live: self.store.production()?.active_release,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Why a restore whose apply returned an error landed nonetheless (`None`: it did not,
    /// or that cannot be shown).
    fn restore_landed_despite(&self, restore_id: i64) -> Option<String> {
        let rec = self.store.restore_record(restore_id).ok().flatten()?;
        let lock = self.store.lock().ok().flatten()?;
        match self.restore_landed(&rec, &lock) {
            Ok((Some(true), why)) => Some(why),
            _ => None,
        }
    }

    /// The state half of a restore (also run by crash recovery once the data is back).
    pub(super) fn finish_restore(&mut self, restore_id: i64) -> Result<()> {
        let Some(rec) = self.store.restore_record(restore_id)? else {
            return Err(EngineError::Input(format!(
                "restore {restore_id} is not recorded"
            )));
        };
        let snapshot = self.store.snapshot(rec.snapshot_id)?;
        let (new_states, live, applied) = match rec.undo_of {
            // Undo: everything back as it was before the undone restore.
            Some(undone) => {
                let orig = self.store.restore_record(undone)?.ok_or_else(|| {
                    EngineError::Input(format!("restore {undone} is not recorded"))
                })?;
                let states = crate::store::Store::restore_previous_states(&orig)?;
                let applied: Vec<AppliedChecksum> =
                    serde_json::from_str(&orig.previous_applied).unwrap_or_default();
                (states, orig.previous_active.clone(), applied)
            }
            None => {
                let mut states = BTreeMap::new();
                let prev = snapshot.as_ref().and_then(|s| s.previous_release.clone());
                for id in crate::store::Store::restore_previous_states(&rec)?.keys() {
                    let state = if Some(id) == prev.as_ref() {
                        ReleaseState::Live
                    } else {
                        ReleaseState::Reverted
                    };
                    states.insert(id.clone(), state.as_str().to_string());
                }
                let ledger = self.backend_ledger_now()?;
                let before: Vec<AppliedChecksum> =
                    serde_json::from_str(&rec.previous_applied).unwrap_or_default();
                let applied = before
                    .into_iter()
                    .filter(|a| ledger.contains(&a.name))
                    .collect();
                (states, prev, applied)
            }
        };
        let prod_ref = self.backend.production_ref();
        let exists = self.backend.exists(&prod_ref)?;
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            for (id, state) in &new_states {
                if let Some(st) = ReleaseState::parse(state) {
                    s.set_release_state(id, st)?;
                }
            }
            s.set_env_active(PRODUCTION, live.as_deref())?;
            s.set_env_database(PRODUCTION, exists.then_some(prod_ref.id.as_str()))?;
            s.replace_applied(PRODUCTION, &applied)?;
            s.set_restore_status(restore_id, "done")?;
            if let Some(undone) = rec.undo_of {
                s.set_restore_status(undone, "undone")?;
            }
            s.delete_lock()?;
            s.audit(&actor, if rec.undo_of.is_some() { "restore.undone" } else { "restore.completed" },
                rec.to_release.as_deref(), Some(PRODUCTION),
                &json!({"restore": restore_id, "snapshot": rec.snapshot_id, "states": new_states, "live": live}))?;
            Ok(())
        })
    }

    /// Names in production's ledger right now (empty without a database).
    fn backend_ledger_now(&self) -> Result<std::collections::BTreeSet<String>> {
        let db = self.backend.production_ref();
        if !self.backend.exists(&db)? {
            return Ok(Default::default());
        }
        Ok(self
            .backend
            .ledger(&db, &self.ws.config.migrations_table)?
            .into_iter()
            .map(|r| r.name)
            .collect())
    }
}
