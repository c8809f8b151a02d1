//! Naming the migration behind a foreign-key failure on D1. A tripped guard lists the rows
//! but not who left them; the statement is found by replaying prefixes of the batch that end
//! in a probe failing one way when violations are there and another when not, then in the
//! always-failing stop (every replay is rolled back, as `locate_failure`'s are). A COMMIT
//! refused by SQLite's deferred counter leaves no row `foreign_key_check` can see: the
//! statement is then the last `DROP TABLE` of a parent whose children hold rows (a rebuild
//! of a table other tables point at), and those rows are the sample.
use serde_json::Value;

use crate::backend::cloudflare::{CloudflareBackend, to_backend};
use crate::backend::{Backend, DatabaseRef, FkViolation, Result};
use crate::cloudflare::CloudflareError;
use crate::cloudflare::d1::Statement;
use crate::schema;

/// Marks a prefix after which the violations are there.
const BAD_MARK: &str = "d1ops-fk-present";
/// Violating rows named in a failure's sentence.
const SAMPLE: usize = 3;

/// A statement failing with [`BAD_MARK`] when `db` holds more than `before` violations.
fn violations_probe(before: u64) -> String {
    format!(
        "SELECT CASE WHEN (SELECT count(*) FROM pragma_foreign_key_check) > {before} \
         THEN json_extract('{{}}', '{BAD_MARK}') END"
    )
}

/// `posts row 3 references missing users, …` for up to [`SAMPLE`] violations.
pub(super) fn sample(violations: &[FkViolation]) -> String {
    violations
        .iter()
        .take(SAMPLE)
        .map(|v| {
            format!(
                "{} row {} references missing {}",
                v.table,
                v.rowid.map_or("?".into(), |r| r.to_string()),
                v.parent
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl CloudflareBackend {
    /// The index of the statement after which `statements` (an apply batch: setup first,
    /// guard last) holds more than `before` violations, by binary search over prefixes
    /// (clean at `from`, violating before the guard). `None` when that cannot be shown.
    pub(super) fn locate_violations(
        &self,
        db: &DatabaseRef,
        statements: &[Statement],
        from: usize,
        before: u64,
    ) -> Result<Option<usize>> {
        let stop = Statement::new(super::STOP);
        let violating = |n: usize| -> Result<Option<bool>> {
            let mut probe: Vec<Statement> = statements[..n].to_vec();
            probe.push(Statement::new(violations_probe(before)));
            probe.push(stop.clone());
            match self.client.query(&db.id, &probe, false) {
                Ok(_) => Ok(None),
                Err(CloudflareError::Sql { message, .. }) if message.contains(BAD_MARK) => {
                    Ok(Some(true))
                }
                Err(CloudflareError::Sql { message, .. }) if message.contains(super::STOP_MARK) => {
                    Ok(Some(false))
                }
                Err(CloudflareError::Sql { .. }) => Ok(None),
                Err(e) => Err(to_backend(e, db)),
            }
        };
        let end = statements.len().saturating_sub(1);
        if end <= from || violating(end)? != Some(true) || violating(from)? != Some(false) {
            return Ok(None);
        }
        let (mut lo, mut hi) = (from, end);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match violating(mid)? {
                Some(true) => hi = mid,
                Some(false) => lo = mid,
                None => return Ok(None),
            }
        }
        Ok(Some(hi - 1))
    }

    /// For a COMMIT refused by the deferred counter: the index of the last statement that
    /// drops a table other tables' foreign keys point at while they hold rows, and a sample
    /// of those rows (read from `db` as it is, outside the rolled-back batch).
    pub(super) fn dropped_parent(
        &self,
        db: &DatabaseRef,
        statements: &[Statement],
        ledger_table: &str,
    ) -> Option<(usize, String)> {
        let live = Backend::schema(self, db, ledger_table).ok()?;
        for (i, st) in statements.iter().enumerate().rev() {
            let Some(parent) = crate::backend::dropped_table(&st.sql) else {
                continue;
            };
            let mut rows = Vec::new();
            for t in live.tables.values() {
                for fk in t
                    .foreign_keys
                    .iter()
                    .filter(|fk| fk.table.eq_ignore_ascii_case(&parent) && !fk.from.is_empty())
                {
                    rows.extend(self.child_rows(db, &t.name, &fk.from, &parent));
                }
            }
            if !rows.is_empty() {
                rows.truncate(SAMPLE);
                return Some((i, rows.join(", ")));
            }
        }
        None
    }

    /// Up to [`SAMPLE`] rows of `child` whose `columns` are set (they point at `parent`).
    fn child_rows(
        &self,
        db: &DatabaseRef,
        child: &str,
        columns: &[String],
        parent: &str,
    ) -> Vec<String> {
        let cols: Vec<String> = columns.iter().map(|c| schema::quote_ident(c)).collect();
        let set: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT rowid, {} FROM {} WHERE {} LIMIT {SAMPLE}",
            cols.join(", "),
            schema::quote_ident(child),
            set.join(" AND ")
        );
        let Ok(out) = self.read(db, &[Statement::new(sql)]) else {
            return Vec::new();
        };
        out.first()
            .map(|r| {
                r.results
                    .rows
                    .iter()
                    .map(|row| {
                        let values: Vec<String> = columns
                            .iter()
                            .zip(row.iter().skip(1))
                            .map(|(c, v)| format!("{c} = {}", shown(v)))
                            .collect();
                        format!(
                            "{child} row {} ({}) references {parent}, which the statement dropped",
                            row.first().map_or("?".into(), shown),
                            values.join(", ")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", crate::backend::one_line(s, 40)),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}
