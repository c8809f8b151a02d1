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
//!
//! This file owns the comparison and the report; the repair itself (planning it, proving it
//! on a copy, applying it under the lock) is `ledger_repair.rs`.
use serde::Serialize;

use super::{Engine, PRODUCTION, Result};
use crate::backend::{DatabaseRef, LedgerRow};
pub use crate::gate::ledger_diff::{LedgerDiff, RecordEntry, record_order};

#[path = "ledger_repair.rs"]
mod ledger_repair;

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
    /// Whether this is a refusal: nothing was changed because of what production is or what
    /// the operator has yet to decide (a face treats it like [`EngineError::Refused`]); the
    /// rest are failures.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            LedgerError::NoDatabase
                | LedgerError::Undecided { .. }
                | LedgerError::Moved
                | LedgerError::CopyFailed(_)
                | LedgerError::CopyMismatch(_)
        )
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
}

#[cfg(test)]
mod tests {
    use super::ledger_repair::adopted_time;
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
