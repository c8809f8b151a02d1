//! `d1ops ledger repair`: the repair of a ledger difference under the policy in `ledger.rs`,
//! proven on a throwaway copy of production, then applied to production in one transaction
//! under the production lock and audited as `ledger.repaired`.
use serde_json::json;

use super::{
    LedgerError, REPAIR_COPY, REPAIR_LOCK_LABEL, RepairDecisions, RepairOutcome, RepairPlan, names,
};
use crate::backend::{DatabaseRef, LedgerRow};
use crate::engine::{Engine, EngineError, PRODUCTION, RecoveryReport, Result};
use crate::fault;
use crate::gate::ledger_diff::{LedgerDiff, RecordEntry};
use crate::store::{AppliedChecksum, LockOperation};

impl Engine {
    /// The repair of `diff` under the policy in this module's documentation.
    pub(super) fn plan_repair(
        &self,
        ledger: &[LedgerRow],
        record: &[RecordEntry],
        diff: &LedgerDiff,
        decisions: &RepairDecisions,
    ) -> Result<RepairPlan> {
        let files: Vec<String> = self.ws.migrations()?.into_iter().map(|m| m.name).collect();
        for (flag, list) in [("adopt", &decisions.adopt), ("forget", &decisions.forget)] {
            for name in list {
                if !diff.unrecorded.contains(name) || !files.contains(name) {
                    return Err(LedgerError::NotUndecided {
                        flag,
                        name: name.clone(),
                    }
                    .into());
                }
            }
        }
        if let Some(name) = decisions
            .adopt
            .iter()
            .find(|n| decisions.forget.contains(n))
        {
            return Err(LedgerError::BothDecisions { name: name.clone() }.into());
        }
        let mut plan = RepairPlan {
            reinsert: diff.missing.clone(),
            reorder: diff.out_of_order.clone(),
            ..RepairPlan::default()
        };
        for name in &diff.unrecorded {
            if !files.contains(name) {
                plan.remove.push(name.clone());
            } else if decisions.adopt.contains(name) {
                plan.adopt.push(name.clone());
            } else if decisions.forget.contains(name) {
                plan.forget.push(name.clone());
            } else {
                plan.undecided.push(name.clone());
            }
        }
        // The target: every recorded name and every adopted one (placed with the record
        // entry before it in the ledger), in record order.
        let mut keyed: Vec<(String, String)> = record
            .iter()
            .map(|r| (r.applied_at.clone(), r.name.clone()))
            .collect();
        for name in plan.adopt.iter().chain(&plan.undecided) {
            keyed.push((adopted_time(ledger, record, name), name.clone()));
        }
        keyed.sort();
        plan.target = keyed.into_iter().map(|(_, n)| n).collect();
        let current = names(ledger);
        let same = current
            .iter()
            .zip(&plan.target)
            .take_while(|(a, b)| a == b)
            .count();
        plan.ledger_remove = current[same..].to_vec();
        plan.ledger_add = plan.target[same..].to_vec();
        Ok(plan)
    }

    /// Reconciles production's ledger with d1ops' record (see the module documentation):
    /// proven on a throwaway copy first, then one transaction on production under the
    /// production lock; audited as `ledger.repaired`.
    pub fn repair_ledger(&mut self, decisions: &RepairDecisions) -> Result<RepairOutcome> {
        self.ensure_writable("ledger repair")?;
        let Some(db) = self.production_db()? else {
            return Err(LedgerError::NoDatabase.into());
        };
        if !self.backend.exists(&db)? {
            return Err(LedgerError::NoDatabase.into());
        }
        let table = self.ws.config.migrations_table.clone();
        let previous = self.store.production()?.active_release;
        let heartbeat = self.acquire_lock(
            REPAIR_LOCK_LABEL,
            previous.as_deref(),
            LockOperation::LedgerRepair,
            None,
        )?;
        let result = self.repair_locked(&db, &table, decisions);
        let released = match &result {
            Ok(outcome) if outcome.repaired => Ok(()), // released with the audit event
            _ => self.store.delete_lock().map_err(EngineError::from),
        };
        drop(heartbeat);
        let outcome = result?;
        released?;
        Ok(outcome)
    }

    fn repair_locked(
        &mut self,
        db: &DatabaseRef,
        table: &str,
        decisions: &RepairDecisions,
    ) -> Result<RepairOutcome> {
        let ledger = self.backend.ledger(db, table)?;
        let record = self.record_now()?;
        let diff = LedgerDiff::compare(&ledger, &record);
        let plan = self.plan_repair(&ledger, &record, &diff, decisions)?;
        if !plan.undecided.is_empty() {
            return Err(LedgerError::Undecided {
                names: plan.undecided.clone(),
            }
            .into());
        }
        if diff.agrees() || plan.is_empty() {
            return Ok(RepairOutcome {
                repaired: false,
                plan,
                proven_on: None,
                ledger: names(&ledger),
            });
        }
        let proven_on = self.prove_on_copy(db, table, &plan)?;
        fault::point("ledger.before_production");
        // Production under the lock: it must still be what the plan was made from.
        let before = names(&self.backend.ledger(db, table)?);
        if before != names(&ledger) {
            return Err(LedgerError::Moved.into());
        }
        if let Err(e) = self
            .backend
            .repair_ledger(db, table, &plan.ledger_add, &plan.ledger_remove)
        {
            // An unanswered write (D1): the ledger tells whether it landed.
            let after = self.backend.ledger(db, table).map(|l| names(&l));
            match after {
                Ok(after) if after == plan.target => {
                    tracing::warn!(error = %e, "ledger repair answer lost, but production holds the repaired ledger");
                }
                Ok(after) if after == before => {
                    return Err(LedgerError::ProductionFailed(e.to_string()).into());
                }
                _ => return Err(LedgerError::ProductionUnclear(e.to_string()).into()),
            }
        }
        let after = names(&self.backend.ledger(db, table)?);
        if after != plan.target {
            return Err(LedgerError::ProductionUnclear(format!(
                "it holds {}, intended {}",
                after.join(", "),
                plan.target.join(", ")
            ))
            .into());
        }
        let adopted = self.adopted_entries(&ledger, &record, &plan.adopt)?;
        let actor = self.actor.clone();
        let proven = proven_on.clone();
        self.store.atomically(|s| -> Result<()> {
            if !adopted.is_empty() {
                let mut all: Vec<AppliedChecksum> =
                    s.applied_checksums(PRODUCTION)?.into_values().collect();
                all.extend(adopted.iter().cloned());
                s.replace_applied(PRODUCTION, &all)?;
            }
            s.delete_lock()?;
            s.audit(
                &actor,
                "ledger.repaired",
                None,
                Some(PRODUCTION),
                &json!({
                    "table": table,
                    "differences": diff,
                    "reinserted": plan.reinsert,
                    "removed": plan.remove,
                    "adopted": plan.adopt,
                    "forgotten": plan.forget,
                    "reordered": plan.reorder,
                    "ledger_removed": plan.ledger_remove,
                    "ledger_added": plan.ledger_add,
                    "ledger_before": names(&ledger),
                    "ledger_after": after,
                    "proven_on": proven,
                }),
            )?;
            Ok(())
        })?;
        Ok(RepairOutcome {
            repaired: true,
            plan,
            proven_on,
            ledger: after,
        })
    }

    /// Clones production to a throwaway database, repairs the copy, checks its ledger is the
    /// target, and deletes it (whatever happened). Production is untouched.
    fn prove_on_copy(
        &self,
        db: &DatabaseRef,
        table: &str,
        plan: &RepairPlan,
    ) -> Result<Option<String>> {
        if let Ok(Some(stale)) = self.backend.lookup(REPAIR_COPY) {
            self.backend.delete_database(&stale)?;
        }
        let copy = self
            .backend
            .clone_database(db, REPAIR_COPY)
            .map_err(|e| LedgerError::CopyFailed(format!("cloning production: {e}")))?;
        let described = self.backend.describe(&copy);
        let proven = self
            .backend
            .repair_ledger(&copy, table, &plan.ledger_add, &plan.ledger_remove)
            .map_err(|e| LedgerError::CopyFailed(e.to_string()))
            .and_then(|()| {
                let got = self
                    .backend
                    .ledger(&copy, table)
                    .map_err(|e| LedgerError::CopyFailed(e.to_string()))?;
                let got = names(&got);
                if got == plan.target {
                    Ok(())
                } else {
                    Err(LedgerError::CopyMismatch(format!(
                        "it holds {}, intended {}",
                        got.join(", "),
                        plan.target.join(", ")
                    )))
                }
            });
        fault::point("ledger.after_copy");
        let deleted = self.backend.delete_database(&copy);
        proven?;
        if let Err(e) = deleted {
            tracing::warn!(copy = %described, error = %e, "the ledger repair's throwaway copy was not deleted");
        }
        Ok(Some(described))
    }

    /// Record entries for adopted names: the workspace file's checksums, placed in time with
    /// the record entry before them in the ledger.
    fn adopted_entries(
        &self,
        ledger: &[LedgerRow],
        record: &[RecordEntry],
        adopt: &[String],
    ) -> Result<Vec<AppliedChecksum>> {
        if adopt.is_empty() {
            return Ok(Vec::new());
        }
        let files = self.ws.migrations()?;
        let mut out = Vec::new();
        for name in adopt {
            let Some(file) = files.iter().find(|m| &m.name == name) else {
                return Err(LedgerError::NotUndecided {
                    flag: "adopt",
                    name: name.clone(),
                }
                .into());
            };
            out.push(AppliedChecksum {
                name: name.clone(),
                sha256: file.sha256.clone(),
                sha256_normalized: file.sha256_normalized.clone(),
                release_id: None,
                applied_at: adopted_time(ledger, record, name),
            });
        }
        Ok(out)
    }

    /// Recovery of a repair whose process died: the production edit is one transaction
    /// (it landed whole or not at all, and `d1ops ledger` shows which); the throwaway copy
    /// is removed and the lock released.
    pub(in crate::engine) fn recover_ledger_repair(
        &mut self,
        lock: &crate::store::LockRow,
    ) -> Result<RecoveryReport> {
        if let Ok(Some(copy)) = self.backend.lookup(REPAIR_COPY) {
            let _ = self.backend.delete_database(&copy);
        }
        // What production's ledger holds now (the edit landed whole or not at all), for the
        // audit trail; best effort, the lock is released either way.
        let ledger = self
            .ledger_now()
            .ok()
            .flatten()
            .map(|(_, rows)| names(&rows));
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.delete_lock()?;
            s.audit(
                &actor,
                "ledger.repair_recovered",
                None,
                Some(PRODUCTION),
                &json!({"holder": lock.holder, "step": lock.step.as_str(), "ledger": ledger}),
            )?;
            Ok(())
        })?;
        Ok(RecoveryReport {
            release: lock.release_id.clone(),
            operation: lock.operation,
            outcome: "released".into(),
            step: lock.step.as_str().into(),
            holder: lock.holder.clone(),
        })
    }
}

/// The recorded time an adopted name takes: that of the last recorded row before it in the
/// ledger (so the ledger's order stays consistent with the record), else the earliest
/// recorded time, else now.
pub(super) fn adopted_time(ledger: &[LedgerRow], record: &[RecordEntry], name: &str) -> String {
    let before = ledger
        .iter()
        .take_while(|r| r.name != name)
        .filter_map(|r| record.iter().find(|e| e.name == r.name))
        .map(|e| e.applied_at.clone())
        .max();
    before
        .or_else(|| record.first().map(|e| e.applied_at.clone()))
        .unwrap_or_else(crate::model::now)
}
