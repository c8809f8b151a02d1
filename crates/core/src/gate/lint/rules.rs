//! Per-statement rules: D1 compatibility (`d1.*`) and risky statements (`risk.*`). Row counts
//! and build times, when the gate provides them, sharpen the messages and enable the rules
//! that only make sense on data.
//!
//! Pure over the statement text, its [`Kind`] and the numbers passed in; no database.
use super::sql::Kind;
use super::{Drafts, LintInput};
use crate::gate::thousands;
use crate::workspace::Migration;

/// D1's limit on one SQL statement.
pub(super) const MAX_STATEMENT_BYTES: usize = 100_000;

/// Row count of a table before the migrations, when known (`None` outside the gate).
pub(super) type Rows<'a> = dyn Fn(&str) -> Option<u64> + 'a;

fn rows_note(rows: Option<u64>) -> String {
    match rows {
        Some(n) => format!(" ({} rows on the preview)", thousands(n)),
        None => String::new(),
    }
}

fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// Every rule that looks at one statement at a time.
pub(super) fn statement_rules(
    m: &Migration,
    kinds: &[Kind],
    rows: &Rows<'_>,
    input: &LintInput<'_>,
    out: &mut Drafts<'_>,
) {
    for (si, (st, kind)) in m.statements.iter().zip(kinds).enumerate() {
        let at = Some(si);
        if st.sql.len() > MAX_STATEMENT_BYTES {
            out.push(
                "d1.statement-size",
                at,
                format!(
                    "statement is {} bytes; D1 rejects statements over {} bytes",
                    thousands(st.sql.len() as u64),
                    thousands(MAX_STATEMENT_BYTES as u64)
                ),
            );
        }
        match kind {
            Kind::Transaction(kw) => out.push(
                "d1.transaction",
                at,
                format!("{kw} is transaction control, which D1 rejects in a migration (each migration already runs in a transaction; d1ops applies the release as one unit)"),
            ),
            Kind::Pragma(name) if name.eq_ignore_ascii_case("foreign_keys") => out.push(
                "d1.pragma-foreign-keys",
                at,
                "PRAGMA foreign_keys is ignored on D1: foreign keys are always enforced there".into(),
            ),
            Kind::CreateTrigger {
                name,
                body_offset: Some(body),
            } if st.sql.get(*body..).is_some_and(|b| b.contains('\r')) => out.push(
                "d1.crlf-in-trigger",
                at,
                format!("the body of trigger {name} has CRLF line endings, which D1 fails to parse"),
            ),
            Kind::AddColumn {
                table,
                column,
                not_null_without_default: true,
            } => out.push(
                "risk.add-not-null-column",
                at,
                format!(
                    "adds NOT NULL column {table}.{column} without a DEFAULT: SQLite refuses it once {table} has rows (\"Cannot add a NOT NULL column with default value NULL\"){}",
                    rows_note(rows(table))
                ),
            ),
            Kind::CreateIndex {
                name,
                table,
                unique,
            } => index_rules(m, si, name, table, *unique, rows(table), input, out),
            Kind::Update {
                table,
                has_where: false,
            } => out.push(
                "risk.update-without-where",
                at,
                format!("UPDATE without WHERE changes every row of {table}{}", rows_note(rows(table))),
            ),
            Kind::Delete {
                table,
                has_where: false,
            } => out.push(
                "risk.delete-without-where",
                at,
                format!("DELETE without WHERE removes every row of {table}{}", rows_note(rows(table))),
            ),
            _ => {}
        }
    }
}

/// `risk.unique-index-existing-data` and `risk.index-large-table` (gate only: both need the
/// preview's row counts).
#[allow(clippy::too_many_arguments)]
fn index_rules(
    m: &Migration,
    si: usize,
    name: &str,
    table: &str,
    unique: bool,
    rows: Option<u64>,
    input: &LintInput<'_>,
    out: &mut Drafts<'_>,
) {
    let Some(rows) = rows else { return };
    if unique && rows > 0 {
        out.push(
            "risk.unique-index-existing-data",
            Some(si),
            format!(
                "unique index {name} on {table}, which has {} rows: a single duplicate makes the build fail, on production too, where rows keep arriving after the preview was cloned",
                thousands(rows)
            ),
        );
    }
    if rows > input.gate.index_rows_warn {
        let line = m.statements[si].line;
        let measured = input.timings.map(|t| {
            t.iter()
                .find(|t| t.path == m.path && t.line == line)
                .map_or(0.0, |t| t.ms)
        });
        let built = match measured {
            Some(ms) if ms >= crate::backend::SLOW_STATEMENT_MS => {
                format!("built in {} on the preview", duration(ms))
            }
            Some(_) => "built in under 1 ms on the preview".to_string(),
            None => "build time not measured (the preview apply did not complete)".to_string(),
        };
        out.push(
            "risk.index-large-table",
            Some(si),
            format!(
                "index {name} on {table} ({} rows, above gate.index_rows_warn = {}): {built}; writes to {table} wait for the build on production",
                thousands(rows),
                thousands(input.gate.index_rows_warn)
            ),
        );
    }
}

/// `risk.cascade-rebuild`: `DROP TABLE parent` while children reference it with a
/// row-changing `ON DELETE` action. `children` are (table, action) at that point.
pub(super) fn cascade(
    parent: &str,
    si: usize,
    children: &[(String, String)],
    rows: &Rows<'_>,
    out: &mut Drafts<'_>,
) {
    if children.is_empty() {
        return;
    }
    let list: Vec<String> = children
        .iter()
        .map(|(child, action)| match rows(child) {
            Some(n) => format!("{child} (ON DELETE {action}, {} rows)", thousands(n)),
            None => format!("{child} (ON DELETE {action})"),
        })
        .collect();
    out.push(
        "risk.cascade-rebuild",
        Some(si),
        format!(
            "DROP TABLE {parent} deletes its rows first, and the ON DELETE actions of {} follow, even with defer_foreign_keys (D1 always enforces foreign keys)",
            list.join(", ")
        ),
    );
}
