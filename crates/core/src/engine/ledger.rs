//! The ledger belongs to d1ops: production's migrations ledger (wrangler's `d1_migrations`)
//! compared with d1ops' own record of what it applied (the applied checksums of production),
//! and `d1ops ledger repair`, which reconciles them.
//!
//! Policy. d1ops' record is the truth for the names it applied or pinned:
//! - a recorded name missing from the ledger is re-inserted (names in record order);
//! - a ledger row d1ops never recorded is removed when no migration file of that name is in
//!   the workspace (nothing can have shipped it through d1ops: a forged or stale row);
//! - a ledger row d1ops never recorded whose file IS in the workspace may be a migration
//!   someone applied by hand (wrangler, sqlite3): the operator decides, `--adopt NAME` keeps
//!   the row and records the file's checksum, `--forget NAME` removes the row (the next
//!   release applies the file again); until every such name is decided nothing is changed;
//! - rows in an order that contradicts the order d1ops applied them in are rewritten from the
//!   first misplaced row on.
//!
//! A repair is proven on a throwaway copy of production first (cloned through the backend,
//! repaired, its ledger compared with the target, deleted), then applied to production in one
//! transaction under the production lock, and audited as `ledger.repaired`.
//!
//! A production whose record is empty (a database d1ops adopted and has not promoted
//! migrations to yet) is "not yet tracked", not a disagreement: the next promotion pins what
//! it finds, as before.
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::{DatabaseRef, LedgerRow};
use crate::fault;
pub use crate::gate::ledger_diff::{LedgerDiff, RecordEntry, record_order};
use crate::store::AppliedChecksum;

/// The lock operation a repair holds production's lock under.
pub const REPAIR_OPERATION: &str = "ledger-repair";
/// What the lock row names as its "release" while a repair holds it.
const REPAIR_LOCK_LABEL: &str = "production-ledger";
/// The throwaway copy a repair is proven on.
const REPAIR_COPY: &str = "ledger-repair-check";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "production has no database yet, so there is no ledger to repair (the first promotion with migrations creates it)"
    )]
    NoDatabase,
    #[error(
        "production's ledger holds {} that d1ops never applied, and a migration file of that name is in the workspace: someone may have applied it by hand. Decide for each: --adopt NAME keeps the row and records the file's checksum, --forget NAME removes the row (the next release applies the file again). Nothing was changed",
        names.join(", ")
    )]
    Undecided { names: Vec<String> },
    #[error(
        "--{flag} {name}: it is not a row of production's ledger that d1ops never applied; `d1ops ledger` lists those"
    )]
    NotUndecided { flag: &'static str, name: String },
    #[error("{name} is named by both --adopt and --forget; choose one")]
    BothDecisions { name: String },
    #[error(
        "the repair failed on a throwaway copy of production, so production was not touched: {0}"
    )]
    CopyFailed(String),
    #[error(
        "the repaired copy of production does not hold the intended ledger ({0}); production was not touched"
    )]
    CopyMismatch(String),
    #[error(
        "production's ledger changed while the repair was prepared; nothing was changed, run `d1ops ledger repair` again"
    )]
    Moved,
    #[error("repairing production's ledger failed; production's ledger is as it was: {0}")]
    ProductionFailed(String),
    #[error(
        "repairing production's ledger left it neither as it was nor as intended ({0}); inspect it with `d1ops ledger`"
    )]
    ProductionUnclear(String),
}

impl LedgerError {
    /// Refusals (nothing was changed because of what production or the operator's input is)
    /// exit 4, like every refusal; failures exit 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            LedgerError::NoDatabase | LedgerError::Undecided { .. } | LedgerError::Moved => 4,
            LedgerError::CopyFailed(_) | LedgerError::CopyMismatch(_) => 4,
            _ => 1,
        }
    }
}

/// What the operator decided for ledger rows d1ops never applied whose file is in the
/// workspace.
#[derive(Debug, Clone, Default)]
pub struct RepairDecisions {
    /// Keep these rows and record the workspace file's checksum.
    pub adopt: Vec<String>,
    /// Remove these rows.
    pub forget: Vec<String>,
}

/// What a repair does, in words and as the exact ledger edit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairPlan {
    /// Recorded names missing from the ledger: re-inserted.
    pub reinsert: Vec<String>,
    /// Rows d1ops never applied and no workspace file carries: removed.
    pub remove: Vec<String>,
    /// Rows d1ops never applied whose file is in the workspace, not yet decided.
    pub undecided: Vec<String>,
    /// Decided: kept and recorded.
    pub adopt: Vec<String>,
    /// Decided: removed.
    pub forget: Vec<String>,
    /// Rows rewritten to restore d1ops' order.
    pub reorder: Vec<String>,
    /// The ledger edit: these rows are deleted, then `ledger_add` inserted in order.
    pub ledger_remove: Vec<String>,
    pub ledger_add: Vec<String>,
    /// The ledger's names after the repair, in order.
    pub target: Vec<String>,
}

impl RepairPlan {
    /// Whether the repair changes anything.
    pub fn is_empty(&self) -> bool {
        self.ledger_remove.is_empty() && self.ledger_add.is_empty() && self.adopt.is_empty()
    }
}

/// Both sides, their differences, and what a repair would do.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerReport {
    /// The ledger table's name (`migrations_table`).
    pub table: String,
    /// Production's database (path or id), when it has one.
    pub database: Option<String>,
    pub ledger: Vec<LedgerRow>,
    pub record: Vec<RecordEntry>,
    pub agrees: bool,
    pub differences: LedgerDiff,
    /// The warning line, when the sides disagree.
    pub warning: Option<String>,
    /// What `d1ops ledger repair` would do without decisions.
    pub repair: RepairPlan,
}

/// What a repair did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    pub repaired: bool,
    pub plan: RepairPlan,
    /// The throwaway copy the repair was proven on.
    pub proven_on: Option<String>,
    pub ledger: Vec<String>,
}

/// The ledger's names.
fn names(ledger: &[LedgerRow]) -> Vec<String> {
    ledger.iter().map(|r| r.name.clone()).collect()
}

impl Engine {
    /// Production's ledger as the backend reads it, or `None` without a database.
    fn ledger_now(&self) -> Result<Option<(DatabaseRef, Vec<LedgerRow>)>> {
        let Some(db) = self.production_db()? else {
            return Ok(None);
        };
        if !self.backend.exists(&db)? {
            return Ok(Some((db, Vec::new())));
        }
        let rows = self.backend.ledger(&db, &self.ws.config.migrations_table)?;
        Ok(Some((db, rows)))
    }

    fn record_now(&self) -> Result<Vec<RecordEntry>> {
        Ok(record_order(
            self.store.applied_checksums(PRODUCTION)?.values(),
        ))
    }

    /// The one-line warning while production's ledger and d1ops' record disagree (one ledger
    /// read); `None` when they agree or production has no database.
    pub fn ledger_warning(&self) -> Result<Option<String>> {
        Ok(self
            .ledger_diff()?
            .warning(&self.ws.config.migrations_table))
    }

    /// Where production's ledger and d1ops' record disagree (one ledger read); agreeing
    /// when production has no database.
    pub fn ledger_diff(&self) -> Result<LedgerDiff> {
        let Some((_, ledger)) = self.ledger_now()? else {
            return Ok(LedgerDiff::default());
        };
        let record = self.record_now()?;
        Ok(LedgerDiff::compare(&ledger, &record))
    }

    /// Why nothing may be promoted while the ledger and the record disagree, if they do.
    pub fn ledger_refusal(&self) -> Result<Option<String>> {
        Ok(self
            .ledger_warning()?
            .map(|w| format!("{w}; promotion is refused until they agree")))
    }

    /// Both sides, their differences and what a repair would do.
    pub fn ledger_report(&self) -> Result<LedgerReport> {
        let table = self.ws.config.migrations_table.clone();
        let now = self.ledger_now()?;
        let database = now.as_ref().map(|(db, _)| self.backend.describe(db));
        let ledger = now.map(|(_, rows)| rows).unwrap_or_default();
        let record = self.record_now()?;
        let diff = LedgerDiff::compare(&ledger, &record);
        let repair = if diff.agrees() {
            RepairPlan::default()
        } else {
            self.plan_repair(&ledger, &record, &diff, &RepairDecisions::default())?
        };
        Ok(LedgerReport {
            warning: diff.warning(&table),
            table,
            database,
            agrees: diff.agrees(),
            differences: diff,
            ledger,
            record,
            repair,
        })
    }

    /// The repair of `diff` under the policy in this module's documentation.
    fn plan_repair(
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
            REPAIR_OPERATION,
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
    pub(super) fn recover_ledger_repair(
        &mut self,
        lock: &crate::store::LockRow,
    ) -> Result<super::RecoveryReport> {
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
        Ok(super::RecoveryReport {
            release: lock.release_id.clone(),
            operation: lock.operation.clone(),
            outcome: "released".into(),
            step: lock.step.as_str().into(),
            holder: lock.holder.clone(),
        })
    }
}

/// The recorded time an adopted name takes: that of the last recorded row before it in the
/// ledger (so the ledger's order stays consistent with the record), else the earliest
/// recorded time, else now.
fn adopted_time(ledger: &[LedgerRow], record: &[RecordEntry], name: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, name: &str) -> LedgerRow {
        LedgerRow {
            id,
            name: name.into(),
            applied_at: "2026-01-01 00:00:00".into(),
        }
    }

    fn rec(name: &str, at: &str) -> RecordEntry {
        RecordEntry {
            name: name.into(),
            release_id: Some("R".into()),
            applied_at: at.into(),
            sha256: String::new(),
        }
    }

    #[test]
    fn agreeing_sides_have_no_differences() {
        let ledger = [row(1, "0001_a.sql"), row(2, "0002_b.sql")];
        let record = [rec("0001_a.sql", "t1"), rec("0002_b.sql", "t2")];
        let d = LedgerDiff::compare(&ledger, &record);
        assert!(d.agrees(), "{d:?}");
        assert_eq!(d.warning("d1_migrations"), None);
    }

    #[test]
    fn an_empty_record_is_untracked_not_a_disagreement() {
        let d = LedgerDiff::compare(&[row(1, "0001_a.sql")], &[]);
        assert!(d.agrees() && d.untracked);
    }

    #[test]
    fn unrecorded_missing_and_misordered_rows_are_named() {
        let ledger = [
            row(2, "0002_b.sql"),
            row(3, "0009_x.sql"),
            row(4, "0001_a.sql"),
        ];
        let record = [
            rec("0001_a.sql", "t1"),
            rec("0002_b.sql", "t2"),
            rec("0003_c.sql", "t3"),
        ];
        let d = LedgerDiff::compare(&ledger, &record);
        assert_eq!(d.unrecorded, ["0009_x.sql"]);
        assert_eq!(d.missing, ["0003_c.sql"]);
        assert_eq!(d.out_of_order, ["0001_a.sql"]);
        let w = d.warning("d1_migrations").unwrap_or_default();
        assert!(w.contains("d1ops ledger repair"), "{w}");
    }

    #[test]
    fn any_order_within_one_promotion_is_accepted() {
        let ledger = [row(1, "0002_b.sql"), row(2, "0001_a.sql")];
        let record = [rec("0001_a.sql", "t1"), rec("0002_b.sql", "t1")];
        assert!(LedgerDiff::compare(&ledger, &record).agrees());
    }

    #[test]
    fn adopted_rows_take_the_time_of_the_recorded_row_before_them() {
        let ledger = [
            row(1, "0001_a.sql"),
            row(2, "0002_b.sql"),
            row(3, "0003_c.sql"),
        ];
        let record = [rec("0001_a.sql", "t1"), rec("0003_c.sql", "t2")];
        assert_eq!(adopted_time(&ledger, &record, "0002_b.sql"), "t1");
    }
}
