//! Crash recovery: a promotion whose process died is finished or undone on the next start,
//! never left half-way and never applied twice.
//!
//! The promotion lock records the step before it runs. Up to `snapshotted` production was not
//! touched: roll back. At `applying`, SQLite's own journal already undid an uncommitted
//! transaction when production is next opened, so the ledger tells the truth: every pending
//! migration recorded → roll forward; none → roll back.
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::model::ReleaseState;
use crate::store::{LockRow, LockStep, holder_alive_row};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    pub release: String,
    /// `promote`, `restore` or `rollback`.
    pub operation: String,
    /// `rolled_forward` or `rolled_back`.
    pub outcome: String,
    pub step: String,
    pub holder: String,
}

impl Engine {
    /// Recovers an interrupted promotion whose holder is gone; `None` when there is nothing to do.
    pub fn recover(&mut self) -> Result<Option<RecoveryReport>> {
        let Some(lock) = self.store.lock()? else {
            return Ok(None);
        };
        if holder_alive_row(&lock) {
            return Ok(None);
        }
        if lock.operation == "restore" || lock.operation == "rollback" {
            let outcome = if lock.operation == "restore" {
                self.recover_restore(&lock)?
            } else {
                self.recover_rollback(&lock)?
            };
            tracing::warn!(outcome, operation = %lock.operation, "recovered an interrupted operation");
            return Ok(Some(RecoveryReport {
                release: lock.release_id.clone(),
                operation: lock.operation.clone(),
                outcome: outcome.into(),
                step: lock.step.as_str().into(),
                holder: lock.holder.clone(),
            }));
        }
        let pending = self.pending_migrations(&lock.release_id)?;
        let db = match self.production_db()? {
            Some(db) => Some(db),
            None if lock.created_database => {
                let db = self.backend.production_ref();
                self.backend.exists(&db)?.then_some(db)
            }
            None => None,
        };
        let committed = match (lock.step, &db) {
            (LockStep::Applying, Some(db)) if !pending.is_empty() => {
                // Opening production rolls back a hot journal left by the dead process.
                let ledger = self.backend.ledger(db, &self.ws.config.migrations_table)?;
                let present = pending
                    .iter()
                    .filter(|m| ledger.iter().any(|r| r.name == m.name))
                    .count();
                if present != 0 && present != pending.len() {
                    // Only a release applied in several D1 batches can stop half-way: put
                    // production back to the recovery point taken just before the apply.
                    let snapshot = match lock.snapshot_id {
                        Some(sid) => self.store.snapshot(sid)?,
                        None => None,
                    };
                    let Some(snap) = snapshot else {
                        return Err(EngineError::Input(format!(
                            "production's ledger holds {present} of the {} migrations of interrupted release {} and no recovery point was taken; inspect production",
                            pending.len(),
                            lock.release_id
                        )));
                    };
                    self.backend.restore(
                        db,
                        &crate::backend::SnapshotRef {
                            location: snap.location.clone(),
                            size_bytes: snap.size_bytes,
                        },
                    )?;
                    tracing::warn!(release = %lock.release_id, present, "interrupted partial apply undone from its recovery point");
                    self.audit(
                        "promotion.partial_undone",
                        Some(&lock.release_id),
                        Some(PRODUCTION),
                        json!({"present": present, "pending": pending.len(), "snapshot": snap.id}),
                    )?;
                    false
                } else {
                    present == pending.len()
                }
            }
            _ => false,
        };
        let outcome = if committed {
            self.finish_promotion(
                &lock.release_id,
                &pending,
                lock.snapshot_id,
                lock.prev_active.as_deref(),
            )?;
            "rolled_forward"
        } else {
            self.roll_back(&lock)?;
            "rolled_back"
        };
        let report = RecoveryReport {
            release: lock.release_id.clone(),
            operation: lock.operation.clone(),
            outcome: outcome.into(),
            step: lock.step.as_str().into(),
            holder: lock.holder.clone(),
        };
        self.audit(
            "promotion.recovered",
            Some(&lock.release_id),
            Some(PRODUCTION),
            json!({"outcome": outcome, "step": lock.step.as_str(), "holder": lock.holder, "pid": lock.pid}),
        )?;
        tracing::warn!(release = %lock.release_id, outcome, "recovered an interrupted promotion");
        Ok(Some(report))
    }

    fn roll_back(&mut self, lock: &LockRow) -> Result<()> {
        if lock.created_database {
            self.backend
                .delete_database(&self.backend.production_ref())?;
        }
        let state = self.store.release(&lock.release_id)?.map(|r| r.state);
        self.store.atomically(|s| -> Result<()> {
            if state == Some(ReleaseState::Promoting) {
                s.set_release_state(&lock.release_id, ReleaseState::Approved)?;
            }
            if let Some(sid) = lock.snapshot_id {
                // The recovery point of a promotion that never happened is not a recovery point.
                s.mark_snapshot_deleted(sid)?;
            }
            s.delete_lock()?;
            Ok(())
        })?;
        if let Some(sid) = lock.snapshot_id
            && let Some(snap) = self.store.snapshot(sid)?
        {
            let _ = self.backend.delete_snapshot(&crate::backend::SnapshotRef {
                location: snap.location,
                size_bytes: snap.size_bytes,
            });
        }
        Ok(())
    }
}
