//! The lint rules' stable ids, the gate check each belongs to, default severities and fix
//! hints, and how `[gate] severity` overrides resolve. Data only: no SQL, no I/O.
use std::collections::BTreeMap;

use super::Severity;

pub const CHECK_D1: &str = "lint.d1";
pub const CHECK_DESTRUCTIVE: &str = "lint.destructive";
pub const CHECK_RISK: &str = "lint.risk";
/// A statement the sandbox refuses: never suppressed or re-graded (it could not run anyway).
pub const REFUSED: &str = "d1.refused";
/// A double-quoted name that resolves to no column, so SQLite reads it as a string.
pub const DQS: &str = "lint.dqs";

/// One lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable finding id, e.g. `destructive.drop-column`.
    pub id: &'static str,
    /// The gate check reporting it: `lint.d1`, `lint.destructive` or `lint.risk`.
    pub check: &'static str,
    pub severity: Severity,
    /// The one-line fix.
    pub hint: &'static str,
    /// Needs the preview's row counts or timings, so only the gate applies it.
    pub gate_only: bool,
}

const fn rule(
    id: &'static str,
    check: &'static str,
    severity: Severity,
    hint: &'static str,
) -> Rule {
    Rule {
        id,
        check,
        severity,
        hint,
        gate_only: false,
    }
}

const EXPAND_CONTRACT: &str =
    "expand/contract: add the new, migrate readers, drop the old in a later release";

/// Every rule, in report order.
pub const RULES: &[Rule] = &[
    rule(
        "d1.transaction",
        CHECK_D1,
        Severity::Fail,
        "remove it: D1 and d1ops already run the migration inside one transaction",
    ),
    rule(
        "d1.pragma-foreign-keys",
        CHECK_D1,
        Severity::Fail,
        "use `PRAGMA defer_foreign_keys = on` to defer foreign key checks to the end of the migration",
    ),
    rule(
        "d1.statement-size",
        CHECK_D1,
        Severity::Fail,
        "split it into statements under 100,000 bytes (e.g. INSERT in batches of rows)",
    ),
    rule(
        "d1.too-many-columns",
        CHECK_D1,
        Severity::Fail,
        "move rarely used columns to a side table keyed by the same id, or into one JSON column",
    ),
    rule(
        "d1.crlf-in-trigger",
        CHECK_D1,
        Severity::Fail,
        "save the file with LF line endings (and add `*.sql text eol=lf` to .gitattributes)",
    ),
    rule(
        REFUSED,
        CHECK_D1,
        Severity::Fail,
        "remove it: a migration may change only its own database's tables, as on D1 (no ATTACH, VACUUM INTO, load_extension, pragmas outside D1's list, or writes to the ledger, _cf_ or sqlite_ tables)",
    ),
    rule(
        DQS,
        CHECK_D1,
        Severity::Fail,
        "write strings in single quotes ('text'); a double-quoted name must be a column that exists at this point (a rebuild copying a column the old table lacks writes this text into every row)",
    ),
    rule(
        "lint.apply-failed",
        CHECK_D1,
        Severity::Fail,
        "fix the statement so it applies after the migrations before it (deploy would fail at mig.apply)",
    ),
    rule(
        "lint.suppression-without-reason",
        CHECK_D1,
        Severity::Fail,
        "write why after the id: `-- d1ops:allow <id> <reason>`",
    ),
    rule(
        "lint.suppression-unknown-id",
        CHECK_D1,
        Severity::Warn,
        "use a finding id or check id that `d1ops lint` reports, e.g. destructive.drop-column",
    ),
    rule(
        "destructive.drop-table",
        CHECK_DESTRUCTIVE,
        Severity::Fail,
        "ship code that no longer uses the table first, drop it in a later release (suppress with the reason)",
    ),
    rule(
        "destructive.drop-column",
        CHECK_DESTRUCTIVE,
        Severity::Fail,
        "ship code that no longer uses the column first, drop it in a later release (suppress with the reason)",
    ),
    rule(
        "destructive.alter-column",
        CHECK_DESTRUCTIVE,
        Severity::Fail,
        "add a new column with the new definition, backfill it, switch readers, drop the old one later",
    ),
    rule(
        "destructive.rename-table",
        CHECK_DESTRUCTIVE,
        Severity::Fail,
        EXPAND_CONTRACT,
    ),
    rule(
        "destructive.rename-column",
        CHECK_DESTRUCTIVE,
        Severity::Fail,
        EXPAND_CONTRACT,
    ),
    rule(
        "risk.add-not-null-column",
        CHECK_RISK,
        Severity::Fail,
        "give the column a DEFAULT, or add it nullable, backfill it, and enforce NOT NULL later",
    ),
    Rule {
        gate_only: true,
        ..rule(
            "risk.unique-index-existing-data",
            CHECK_RISK,
            Severity::Warn,
            "de-duplicate in an earlier statement of this release, and expect production to have rows the preview lacks",
        )
    },
    rule(
        "risk.update-without-where",
        CHECK_RISK,
        Severity::Warn,
        "add a WHERE clause; if every row is meant, suppress with the reason",
    ),
    rule(
        "risk.delete-without-where",
        CHECK_RISK,
        Severity::Warn,
        "add a WHERE clause; if emptying the table is meant, suppress with the reason and declare `-- d1ops:allow-data-loss <table>`",
    ),
    rule(
        "risk.cascade-rebuild",
        CHECK_RISK,
        Severity::Warn,
        "use ALTER TABLE ... ADD/DROP/RENAME COLUMN instead of a rebuild, or copy the child rows out and back",
    ),
    Rule {
        gate_only: true,
        ..rule(
            "risk.index-large-table",
            CHECK_RISK,
            Severity::Warn,
            "expect the same pause for writers on production; keep it well under D1's 30 s statement limit",
        )
    },
];

/// The rule with this id.
pub fn rule_of(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Whether `id` names a rule or a lint check (what `-- d1ops:allow` accepts).
pub fn is_known(id: &str) -> bool {
    rule_of(id).is_some() || [CHECK_D1, CHECK_DESTRUCTIVE, CHECK_RISK].contains(&id)
}

/// The effective severity of `rule` under `[gate] severity`: a finding-id key wins over a
/// check-id key, which wins over the default. `None` means `off` (the finding is dropped).
pub fn effective_severity(rule: &Rule, overrides: &BTreeMap<String, String>) -> Option<Severity> {
    let chosen = overrides
        .get(rule.id)
        .or_else(|| overrides.get(rule.check))
        .map(String::as_str);
    match chosen {
        Some("off") => None,
        Some("warn") => Some(Severity::Warn),
        Some("fail") => Some(Severity::Fail),
        _ => Some(rule.severity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_checks_known() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(RULES[i + 1..].iter().all(|o| o.id != r.id), "{}", r.id);
            assert!([CHECK_D1, CHECK_DESTRUCTIVE, CHECK_RISK].contains(&r.check));
        }
    }

    #[test]
    fn finding_override_beats_check_override() {
        let rule = rule_of("risk.update-without-where").unwrap();
        let mut o = BTreeMap::new();
        assert_eq!(effective_severity(rule, &o), Some(Severity::Warn));
        o.insert("lint.risk".to_string(), "off".to_string());
        assert_eq!(effective_severity(rule, &o), None);
        o.insert(rule.id.to_string(), "fail".to_string());
        assert_eq!(effective_severity(rule, &o), Some(Severity::Fail));
    }
}
