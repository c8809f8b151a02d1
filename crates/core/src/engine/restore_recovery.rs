//! Crash recovery of a restore whose process died: whether its apply landed, decided from
//! what was recorded (the lock step, the recovery point's fingerprint, the ledger) and never
//! by writing production's data; then roll forward or abort the bookkeeping.
use serde_json::json;

use super::snapshot_ref;
use crate::engine::{Engine, PRODUCTION, Result};
use crate::model::Snapshot;
use crate::store::LockStep;

impl Engine {
    /// Crash recovery for a restore whose process died. Decided by what was recorded, never
    /// by guessing from the schema alone, and it never writes production's data: the apply
    /// is atomic (one SQLite write transaction, an atomic rename, or one Time Travel restore),
    /// so production holds either the recovery point or what it held before — plus whatever
    /// was written to it since, which is kept. Only the bookkeeping follows: roll forward
    /// (the restore is `done`, `restore --undo` targets it) or abort (nothing happened).
    pub(in crate::engine) fn recover_restore(
        &mut self,
        lock: &crate::store::LockRow,
    ) -> Result<&'static str> {
        let record = self.store.restores_applying()?.into_iter().next_back();
        let (forward, why) = match (&record, lock.step) {
            (Some(_), LockStep::Applied) => (
                true,
                "the step `applied` was recorded after the apply returned".to_string(),
            ),
            // Undetermined: the request was on its way, so it is taken as landed (an undo
            // puts the pre-restore state back if it did not).
            (Some(rec), LockStep::Applying) => {
                let (landed, why) = self.restore_landed(rec, lock)?;
                (landed.unwrap_or(true), why)
            }
            (Some(_), _) | (None, _) => (
                false,
                "stopped before the apply started; production was not touched".to_string(),
            ),
        };
        match record {
            Some(rec) if forward => {
                // A restore whose process died before it recorded the point D1 named in its
                // answer (`previous_bookmark`): the point production was at when the restore
                // started stands in, so the restore can still be undone.
                if rec.pre_snapshot_id.is_none() && self.backend.restore_names_previous() {
                    let db = self.backend.production_ref();
                    let point = match d1ops_sql::clock::parse_time(&rec.started_at) {
                        Some(at) => self.backend.point_at(&db, at).ok().flatten(),
                        None => None,
                    };
                    match point {
                        Some(p) => {
                            let size = self.backend.size_bytes(&db).unwrap_or(0);
                            let active = rec.previous_active.clone();
                            self.record_previous_point(rec.id, &p, size, active.as_deref())?;
                        }
                        None => tracing::warn!(
                            restore = rec.id,
                            "no undo point could be found for a recovered restore"
                        ),
                    }
                }
                self.finish_restore(rec.id)?;
                self.audit(
                    "restore.recovered",
                    rec.to_release.as_deref(),
                    Some(PRODUCTION),
                    json!({"restore": rec.id, "outcome": "rolled_forward", "step": lock.step.as_str(),
                        "decided_by": why, "holder": lock.holder, "pid": lock.pid, "host": lock.host}),
                )?;
                Ok("rolled_forward")
            }
            rec => {
                let actor = self.actor.clone();
                self.store.atomically(|s| -> Result<()> {
                    if let Some(rec) = &rec {
                        s.set_restore_status(rec.id, "aborted")?;
                    }
                    s.delete_lock()?;
                    s.audit(
                        &actor,
                        "restore.recovered",
                        rec.as_ref().and_then(|r| r.to_release.as_deref()),
                        Some(PRODUCTION),
                        &json!({"restore": rec.as_ref().map(|r| r.id), "outcome": "rolled_back",
                            "step": lock.step.as_str(), "decided_by": why, "production": "untouched by recovery",
                            "holder": lock.holder, "pid": lock.pid, "host": lock.host}),
                    )?;
                    Ok(())
                })?;
                Ok("rolled_back")
            }
        }
    }

    /// Whether an interrupted restore's apply landed (the lock says `applying`, the step
    /// `applied` was not recorded), with the evidence.
    pub(super) fn restore_landed(
        &self,
        rec: &crate::store::RestoreRecord,
        lock: &crate::store::LockRow,
    ) -> Result<(Option<bool>, String)> {
        let db = self.backend.production_ref();
        let exists = self.backend.exists(&db)?;
        let Some(target) = self.store.snapshot(rec.snapshot_id)? else {
            return Ok((
                Some(false),
                format!("recovery point {} is not recorded", rec.snapshot_id),
            ));
        };
        let pre = match rec.pre_snapshot_id {
            Some(id) => self.store.snapshot(id)?,
            None => None,
        };
        if target.location.is_none() {
            // Restoring "no database" deletes production.
            return Ok(if exists {
                (
                    Some(false),
                    "the recovery point has no database and production still has one".into(),
                )
            } else {
                (
                    Some(true),
                    "the recovery point has no database and production has none".into(),
                )
            });
        }
        if pre.as_ref().is_some_and(|p| p.location.is_none()) {
            // Production had no database: the apply creates it with an atomic rename.
            return Ok(if exists {
                (
                    Some(true),
                    "production had no database before the restore and has one now".into(),
                )
            } else {
                (
                    Some(false),
                    "production had no database before the restore and still has none".into(),
                )
            });
        }
        if !exists {
            return Ok((
                Some(false),
                "production has no database, and the apply writes into the existing one".into(),
            ));
        }
        let now_fp = self.production_fingerprint()?;
        let before = rec
            .fingerprint_before
            .as_deref()
            .or(lock.fingerprint_before.as_deref());
        if let (Some(before), Some(after)) = (before, rec.target_fingerprint.as_deref())
            && before != after
        {
            if now_fp == after {
                return Ok((
                    Some(true),
                    "production's applied migrations and schema are the recovery point's".into(),
                ));
            }
            if now_fp == before {
                return Ok((
                    Some(false),
                    "production's applied migrations and schema are still those from before the restore"
                        .into(),
                ));
            }
        }
        // Same applied set and schema on both sides (or not recorded): compare the rows.
        let to_target = self.content_distance(&db, &target)?;
        let to_pre = match &pre {
            Some(p) => self.content_distance(&db, p)?,
            None => None,
        };
        Ok(match (to_target, to_pre) {
            (Some(0), _) => (
                Some(true),
                "production's rows equal the recovery point's".into(),
            ),
            (_, Some(0)) => (
                Some(false),
                "production's rows equal the pre-restore snapshot's: the apply did not land".into(),
            ),
            (Some(a), Some(b)) if a <= b => (
                Some(true),
                format!(
                    "production differs from the recovery point by {a} row(s) written since, and from the pre-restore snapshot by {b}: the apply landed"
                ),
            ),
            (Some(a), Some(b)) => (
                Some(false),
                format!(
                    "production differs from the pre-restore snapshot by {b} row(s) written since, and from the recovery point by {a}: the apply did not land"
                ),
            ),
            _ if before.is_some_and(|b| b != now_fp) => (
                Some(true),
                "production's applied migrations or schema changed from before the restore".into(),
            ),
            // The backend cannot compare rows with a recovery point (D1 bookmarks).
            _ => (
                None,
                "rows cannot be compared with a recovery point on this backend; the restore request was sent"
                    .into(),
            ),
        })
    }

    /// How many rows differ between production and `snapshot` (`None`: this backend cannot
    /// count them).
    fn content_distance(
        &self,
        db: &crate::backend::DatabaseRef,
        snapshot: &Snapshot,
    ) -> Result<Option<u64>> {
        if self.backend.kind() != "local" || snapshot.location.is_none() {
            return Ok(None);
        }
        let report = match self.backend.loss_since(
            db,
            &snapshot_ref(snapshot),
            &self.ws.config.migrations_table,
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, snapshot = snapshot.id, "cannot compare production with a snapshot");
                return Ok(None);
            }
        };
        Ok(Some(
            report
                .tables
                .iter()
                .map(|t| {
                    t.inserted + t.deleted + t.updated.unwrap_or(0) + u64::from(t.note.is_some())
                })
                .sum(),
        ))
    }
}
