//! Naming the migration behind a foreign-key failure on a local apply. The apply's check
//! (or its COMMIT) only says that violations remain; which statement left them is found by
//! replaying the rolled-back transaction statement by statement on the same connection,
//! checking after each, then rolling the replay back too — as the D1 batch locator replays
//! prefixes. The violating rows exist only inside the failed transaction, so their sample is
//! read during the replay.
use std::collections::BTreeSet;

use rusqlite::Connection;

use super::{StatementClock, deferred_fk_violations, fk_check};
use crate::backend::{ApplyFailure, FkViolation};
use crate::schema;
use crate::workspace::Migration;

/// Violating rows shown in a failure's sentence.
const SAMPLE: usize = 3;

/// Whether `f` is a foreign-key failure this module can place: violations found before
/// commit, or a COMMIT refused by the deferred foreign-key counter.
pub(super) fn is_fk_failure(f: &ApplyFailure) -> bool {
    f.migration.is_none()
        && (!f.fk_violations.is_empty()
            || (f.error.starts_with("commit failed") && f.error.contains("FOREIGN KEY")))
}

/// Fills in the migration, line and statement that left `f`'s violations, and a sample of
/// the rows. Best effort: a replay that cannot run leaves `f` as it was. `conn` must be
/// outside any transaction (the failed apply rolled back).
pub(super) fn locate(
    conn: &Connection,
    clock: &StatementClock,
    migrations: &[Migration],
    f: &mut ApplyFailure,
) {
    let tables: BTreeSet<String> = f.fk_violations.iter().map(|v| v.table.clone()).collect();
    // Violations foreign_key_check can see are checked on their tables; a COMMIT refused
    // with a clean check is SQLite's deferred counter (a parent dropped in a rebuild).
    let bad = |conn: &Connection| -> bool {
        if tables.is_empty() {
            deferred_fk_violations(conn)
        } else {
            tables
                .iter()
                .any(|t| fk_check(conn, Some(t)).is_ok_and(|v| !v.is_empty()))
        }
    };
    if conn.execute_batch("BEGIN IMMEDIATE").is_err() {
        return;
    }
    let mut culprit: Option<(&Migration, usize, &str)> = None;
    let mut was_bad = false;
    let _ = conn.execute_batch("PRAGMA defer_foreign_keys = ON");
    'replay: for m in migrations {
        for st in &m.statements {
            clock.start();
            if conn.execute_batch(&st.sql).is_err() {
                break 'replay;
            }
            let now_bad = bad(conn);
            if now_bad && !was_bad {
                culprit = Some((m, st.line, st.sql.as_str()));
            } else if !now_bad {
                culprit = None;
            }
            was_bad = now_bad;
        }
    }
    // The rows exist only in this transaction: read the sample before rolling it back.
    let sample: Vec<String> = f
        .fk_violations
        .iter()
        .take(SAMPLE)
        .map(|v| describe_row(conn, v))
        .collect();
    let _ = conn.execute_batch("ROLLBACK");
    let Some((m, line, sql)) = culprit else {
        return;
    };
    f.migration = Some(m.name.clone());
    f.path = Some(m.path.clone());
    f.line = Some(line);
    f.statement = Some(sql.to_string());
    let sample = if sample.is_empty() {
        // The counter's rows: the children of the table the statement dropped, as they are
        // outside the transaction (the drop's implicit DELETE is what counted them).
        crate::backend::dropped_table(sql)
            .map(|parent| children_referencing(conn, &parent))
            .unwrap_or_default()
    } else {
        sample
    };
    if !sample.is_empty() {
        f.error = format!("{}; violating rows: {}", f.error, sample.join(", "));
    }
}

/// `posts row 3 (user_id = 9) references missing users`.
fn describe_row(conn: &Connection, v: &FkViolation) -> String {
    let cols = fk_columns(conn, &v.table, v.fk_index);
    let values = match (v.rowid, cols.is_empty()) {
        (Some(rowid), false) => row_values(conn, &v.table, &cols, rowid),
        _ => String::new(),
    };
    format!(
        "{} row {}{} references missing {}",
        v.table,
        v.rowid.map_or("?".into(), |r| r.to_string()),
        if values.is_empty() {
            String::new()
        } else {
            format!(" ({values})")
        },
        v.parent
    )
}

/// The child columns of foreign key `id` of `table`.
fn fk_columns(conn: &Connection, table: &str, id: i64) -> Vec<String> {
    let sql = format!("PRAGMA foreign_key_list({})", schema::quote_ident(table));
    let Ok(mut stmt) = conn.prepare(&sql) else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(3)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map(|rows| {
            rows.into_iter()
                .filter(|(i, _)| *i == id)
                .map(|(_, c)| c)
                .collect()
        })
        .unwrap_or_default()
}

/// `user_id = 9, org = 'x'` for one row.
fn row_values(conn: &Connection, table: &str, cols: &[String], rowid: i64) -> String {
    let select: Vec<String> = cols.iter().map(|c| schema::quote_ident(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE rowid = ?1",
        select.join(", "),
        schema::quote_ident(table)
    );
    conn.query_row(&sql, [rowid], |r| {
        (0..cols.len())
            .map(|i| r.get::<_, rusqlite::types::Value>(i))
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map(|vals| {
        cols.iter()
            .zip(vals)
            .map(|(c, v)| format!("{c} = {}", shown(&v)))
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

fn shown(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => format!("'{}'", crate::backend::one_line(t, 40)),
        Value::Blob(b) => format!("blob of {} bytes", b.len()),
    }
}

/// Up to [`SAMPLE`] rows of tables whose foreign keys point at `parent` (their key set).
fn children_referencing(conn: &Connection, parent: &str) -> Vec<String> {
    let Ok(tables) = schema::read_schema(conn, "") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tables.tables.values() {
        for fk in t.foreign_keys.iter() {
            if !fk.table.eq_ignore_ascii_case(parent) || fk.from.is_empty() {
                continue;
            }
            let not_null: Vec<String> = fk
                .from
                .iter()
                .map(|c| format!("{} IS NOT NULL", schema::quote_ident(c)))
                .collect();
            let sql = format!(
                "SELECT rowid FROM {} WHERE {} LIMIT {SAMPLE}",
                schema::quote_ident(&t.name),
                not_null.join(" AND ")
            );
            let rowids: Vec<i64> = conn
                .prepare(&sql)
                .and_then(|mut s| {
                    s.query_map([], |r| r.get(0))
                        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
                })
                .unwrap_or_default();
            for rowid in rowids {
                let values = row_values(conn, &t.name, &fk.from, rowid);
                out.push(format!(
                    "{} row {rowid} ({values}) references {parent}, which the statement dropped",
                    t.name
                ));
                if out.len() >= SAMPLE {
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::backend::{ProductionFigures, dropped_table};

    #[test]
    fn the_table_a_drop_names() {
        assert_eq!(dropped_table("DROP TABLE users").as_deref(), Some("users"));
        assert_eq!(
            dropped_table("drop table if exists \"Users\"").as_deref(),
            Some("Users")
        );
        assert_eq!(
            dropped_table("DROP TABLE main.users").as_deref(),
            Some("users")
        );
        assert_eq!(dropped_table("DROP INDEX users"), None);
        assert_eq!(dropped_table("CREATE TABLE users (id)"), None);
    }

    #[test]
    fn figures_past_the_count_are_unknown_and_count_as_large() {
        let f = ProductionFigures {
            size_bytes: Some(1),
            rows: [("a".to_string(), Some(2)), ("b".to_string(), None)].into(),
            row_limit: 100,
        };
        assert_eq!(f.counts_at_least()["b"], 101);
        assert_eq!(
            f.rows_summary(),
            "production has 2 row(s) in 1 counted table(s), 1 table(s) above 100 rows not counted (unknown)"
        );
        assert_eq!(
            ProductionFigures::default().rows_summary(),
            "production's row counts are unknown"
        );
    }
}
