//! Production's migrations ledger against d1ops' record of what it applied: the pure
//! comparison `mig.drift` fails on and `d1ops ledger` shows. No I/O; the engine's
//! `ledger` module reads both sides and repairs.
use serde::Serialize;

use crate::backend::LedgerRow;
use crate::store::AppliedChecksum;

/// One name d1ops recorded as applied to production, in record order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordEntry {
    pub name: String,
    /// The release that applied it; `None` when d1ops pinned a migration applied outside it.
    pub release_id: Option<String>,
    pub applied_at: String,
    pub sha256: String,
}

/// d1ops' record for production, in the order it was applied (time, then name).
pub fn record_order<'a>(record: impl IntoIterator<Item = &'a AppliedChecksum>) -> Vec<RecordEntry> {
    let mut out: Vec<RecordEntry> = record
        .into_iter()
        .map(|a| RecordEntry {
            name: a.name.clone(),
            release_id: a.release_id.clone(),
            applied_at: a.applied_at.clone(),
            sha256: a.sha256.clone(),
        })
        .collect();
    out.sort_by(|a, b| (&a.applied_at, &a.name).cmp(&(&b.applied_at, &b.name)));
    out
}

/// Where production's ledger and d1ops' record disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerDiff {
    /// In the ledger, never applied or recorded by d1ops (ledger order).
    pub unrecorded: Vec<String>,
    /// Recorded by d1ops as applied, missing from the ledger (record order).
    pub missing: Vec<String>,
    /// In both, but placed in the ledger after rows d1ops applied later.
    pub out_of_order: Vec<String>,
    /// d1ops has recorded nothing for production while its ledger has rows: a database
    /// d1ops has not promoted migrations to yet. Not a disagreement.
    pub untracked: bool,
}

impl LedgerDiff {
    /// Compares the ledger (in id order) with the record (in record order). Within one
    /// promotion (same recorded time) any order is accepted.
    pub fn compare(ledger: &[LedgerRow], record: &[RecordEntry]) -> LedgerDiff {
        if record.is_empty() {
            return LedgerDiff {
                untracked: !ledger.is_empty(),
                ..LedgerDiff::default()
            };
        }
        let recorded = |name: &str| record.iter().find(|r| r.name == name);
        let unrecorded = ledger
            .iter()
            .filter(|r| recorded(&r.name).is_none())
            .map(|r| r.name.clone())
            .collect();
        let missing = record
            .iter()
            .filter(|r| !ledger.iter().any(|l| l.name == r.name))
            .map(|r| r.name.clone())
            .collect();
        let mut out_of_order = Vec::new();
        let mut latest: Option<&str> = None;
        for row in ledger {
            let Some(rec) = recorded(&row.name) else {
                continue;
            };
            match latest {
                Some(t) if rec.applied_at.as_str() < t => out_of_order.push(row.name.clone()),
                _ => latest = Some(rec.applied_at.as_str()),
            }
        }
        LedgerDiff {
            unrecorded,
            missing,
            out_of_order,
            untracked: false,
        }
    }

    /// Whether the two sides agree (an untracked database counts as agreeing).
    pub fn agrees(&self) -> bool {
        self.unrecorded.is_empty() && self.missing.is_empty() && self.out_of_order.is_empty()
    }

    /// The differences in one sentence (empty when they agree).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.unrecorded.is_empty() {
            parts.push(format!(
                "{} in the ledger but never applied by d1ops",
                self.unrecorded.join(", ")
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} applied by d1ops but missing from the ledger",
                self.missing.join(", ")
            ));
        }
        if !self.out_of_order.is_empty() {
            parts.push(format!(
                "{} out of the order d1ops applied them in",
                self.out_of_order.join(", ")
            ));
        }
        parts.join("; ")
    }

    /// The plain warning every command shows while the sides disagree.
    pub fn warning(&self, table: &str) -> Option<String> {
        (!self.agrees()).then(|| {
            format!(
                "production's ledger {table} disagrees with d1ops' record: {}; `d1ops ledger` shows both sides, `d1ops ledger repair` reconciles them",
                self.describe()
            )
        })
    }
}
