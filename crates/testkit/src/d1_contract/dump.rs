//! The SQL text of an export, following D1's own `dumpSql` (mirrored in miniflare's
//! `packages/miniflare/src/workers/d1/dumpSql.ts`): `PRAGMA defer_foreign_keys=TRUE;`, every
//! table's `CREATE` followed by its rows as `INSERT INTO "t" ("a","b") VALUES(…);`, D1's
//! `_cf_*` tables left out, then indexes, triggers and views. One deviation: REAL values keep
//! a decimal point (`2.0`, not JavaScript's `2`), so an export imports back unchanged.
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

/// `dump_options` of an export.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    pub no_data: bool,
    pub no_schema: bool,
    pub tables: Vec<String>,
}

/// Dumps the database file at `path`.
pub fn dump(path: &Path, opts: &DumpOptions) -> Result<String, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    let mut out = vec!["PRAGMA defer_foreign_keys=TRUE;".to_string()];
    let wanted = |name: &str| opts.tables.is_empty() || opts.tables.iter().any(|t| t == name);
    let tables: Vec<(String, String)> = rows(
        &conn,
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql NOT NULL \
         ORDER BY tbl_name = 'sqlite_sequence', rowid",
    )?;
    for (table, sql) in &tables {
        if !wanted(table) {
            continue;
        }
        if table == "sqlite_sequence" {
            if !opts.no_schema {
                out.push("DELETE FROM sqlite_sequence;".into());
            }
        } else if table.starts_with("sqlite_stat") {
            if !opts.no_schema {
                out.push("ANALYZE sqlite_schema;".into());
            }
        } else if sql.starts_with("CREATE VIRTUAL TABLE") {
            return Err(
                "D1 Export error: cannot export databases with Virtual Tables (fts5)".into(),
            );
        } else if table.starts_with("_cf_") || table.starts_with("sqlite_") {
            continue;
        } else if !opts.no_schema {
            let quoted = sql.starts_with("CREATE TABLE '") || sql.starts_with("CREATE TABLE \"");
            out.push(if quoted {
                format!("CREATE TABLE IF NOT EXISTS {};", &sql[13..])
            } else {
                format!("{sql};")
            });
        }
        if !opts.no_data {
            insert_rows(&conn, table, &mut out)?;
        }
    }
    if !opts.no_schema {
        let rest: Vec<(String, String)> = rows(
            &conn,
            "SELECT name, sql FROM sqlite_schema WHERE sql NOT NULL \
             AND type IN ('index', 'trigger', 'view') ORDER BY type COLLATE NOCASE",
        )?;
        // D1 filters these by their own name too (so `tables` drops a table's indexes).
        out.extend(
            rest.into_iter()
                .filter(|(name, _)| wanted(name))
                .map(|(_, sql)| format!("{sql};")),
        );
    }
    Ok(out.join("\n"))
}

fn rows(conn: &Connection, sql: &str) -> Result<Vec<(String, String)>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| e.to_string())?
    {
        out.push(row.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn quote_id(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

fn insert_rows(conn: &Connection, table: &str, out: &mut Vec<String>) -> Result<(), String> {
    let mut columns: Vec<String> = Vec::new();
    {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info={}", quote_id(table)))
            .map_err(|e| e.to_string())?;
        for name in stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(|e| e.to_string())?
        {
            columns.push(name.map_err(|e| e.to_string())?);
        }
    }
    let list: Vec<String> = columns.iter().map(|c| quote_id(c)).collect();
    let select = format!("SELECT {} FROM {};", list.join(", "), quote_id(table));
    let mut stmt = conn.prepare(&select).map_err(|e| e.to_string())?;
    let mut cursor = stmt.raw_query();
    while let Some(row) = cursor.next().map_err(|e| e.to_string())? {
        let mut cells = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            cells.push(literal(row.get_ref(i).map_err(|e| e.to_string())?));
        }
        out.push(format!(
            "INSERT INTO {} ({}) VALUES({});",
            quote_id(table),
            list.join(","),
            cells.join(",")
        ));
    }
    Ok(())
}

/// A value as an SQL literal (strings with newlines as SQLite's shell writes them).
fn literal(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) if f.is_infinite() => if f > 0.0 { "1e999" } else { "-1e999" }.into(),
        ValueRef::Real(f) => {
            let s = format!("{f:?}");
            if s.contains(['.', 'e', 'E']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        ValueRef::Text(t) => quoted_string(&String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("X'{}'", hex::encode(b)),
    }
}

fn quoted_string(value: &str) -> String {
    let (nl, cr) = (value.contains('\n'), value.contains('\r'));
    if !nl && !cr {
        return format!("'{}'", value.replace('\'', "''"));
    }
    let nl_mark = unused(value, "\\n", "\\012");
    let cr_mark = unused(value, "\\r", "\\015");
    let escaped = value
        .replace('\'', "''")
        .replace('\n', &nl_mark)
        .replace('\r', &cr_mark);
    let mut out = format!("'{escaped}'");
    if cr {
        out = format!("replace({out},'{cr_mark}',char(13))");
    }
    if nl {
        out = format!("replace({out},'{nl_mark}',char(10))");
    }
    out
}

fn unused(value: &str, primary: &str, secondary: &str) -> String {
    if !value.contains(primary) {
        return primary.into();
    }
    if !value.contains(secondary) {
        return secondary.into();
    }
    (0..)
        .map(|n| format!("({primary}{n})"))
        .find(|c| !value.contains(c.as_str()))
        .unwrap_or_default()
}
