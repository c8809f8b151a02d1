//! The local backend's loss report: production compared row by row with a recovery point
//! attached read-only. Tables are matched by name; rows by rowid (or primary key for
//! WITHOUT ROWID tables); "updated" compares the columns both versions have.
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{BackendError, LossReport, Result, TableLoss};
use crate::schema::{self, Schema, Table, quote_ident};

fn sql_err(e: rusqlite::Error) -> BackendError {
    BackendError::Sql {
        context: "comparing with the recovery point".into(),
        message: e.to_string(),
    }
}

fn count(conn: &Connection, sql: &str) -> Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(sql_err)
}

/// Compares the database at `current` with the snapshot file at `snapshot`.
pub(super) fn loss_report(
    current: &Path,
    snapshot: &Path,
    ledger_table: &str,
) -> Result<LossReport> {
    let conn = Connection::open_with_flags(
        current,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err)?;
    // The comparison reads every row of both: a face may cancel it (`cancel::interrupt_reads`).
    let _cancellable = super::cancel::cancellable(&conn);
    let uri = format!("file:{}?mode=ro", snapshot.display());
    conn.execute("ATTACH DATABASE ?1 AS snap", [uri])
        .map_err(sql_err)?;
    let now: Schema =
        schema::read_schema(&conn, ledger_table).map_err(|e| BackendError::Other(e.to_string()))?;
    let then = read_attached_schema(snapshot, ledger_table)?;
    let mut tables = Vec::new();
    for (name, t) in &now.tables {
        let q = quote_ident(name);
        match then.tables.get(name) {
            None => tables.push(TableLoss {
                table: name.clone(),
                inserted: count(&conn, &format!("SELECT count(*) FROM main.{q}"))?,
                updated: None,
                deleted: 0,
                note: Some(
                    "created since the recovery point; the restore removes the table".into(),
                ),
            }),
            Some(old) => tables.push(compare(&conn, t, old)?),
        }
    }
    for name in then.tables.keys().filter(|n| !now.tables.contains_key(*n)) {
        tables.push(TableLoss {
            table: name.clone(),
            inserted: 0,
            updated: None,
            deleted: count(
                &conn,
                &format!("SELECT count(*) FROM snap.{}", quote_ident(name)),
            )?,
            note: Some("dropped since the recovery point; the restore brings it back".into()),
        });
    }
    Ok(LossReport { tables })
}

fn read_attached_schema(snapshot: &Path, ledger_table: &str) -> Result<Schema> {
    let c = Connection::open_with_flags(
        snapshot,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err)?;
    schema::read_schema(&c, ledger_table).map_err(|e| BackendError::Other(e.to_string()))
}

fn compare(conn: &Connection, now: &Table, then: &Table) -> Result<TableLoss> {
    let q = quote_ident(&now.name);
    let keys: Vec<String> = if now.without_rowid || then.without_rowid {
        let mut pk: Vec<&schema::Column> = now.columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        pk.iter().map(|c| quote_ident(&c.name)).collect()
    } else {
        vec!["rowid".into()]
    };
    let join = keys
        .iter()
        .map(|k| format!("b.{k} IS a.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let inserted = count(
        conn,
        &format!(
            "SELECT count(*) FROM main.{q} AS a WHERE NOT EXISTS (SELECT 1 FROM snap.{q} AS b WHERE {join})"
        ),
    )?;
    let deleted = count(
        conn,
        &format!(
            "SELECT count(*) FROM snap.{q} AS a WHERE NOT EXISTS (SELECT 1 FROM main.{q} AS b WHERE {join})"
        ),
    )?;
    let common: Vec<String> = now
        .columns
        .iter()
        .filter(|c| {
            c.hidden == 0
                && then
                    .columns
                    .iter()
                    .any(|o| o.name.eq_ignore_ascii_case(&c.name))
        })
        .map(|c| quote_ident(&c.name))
        .collect();
    let updated = if common.is_empty() {
        None
    } else {
        let differs = common
            .iter()
            .map(|c| format!("a.{c} IS NOT b.{c}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let on = keys
            .iter()
            .map(|k| format!("a.{k} = b.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        Some(count(
            conn,
            &format!(
                "SELECT count(*) FROM main.{q} AS a JOIN snap.{q} AS b ON {on} WHERE {differs}"
            ),
        )?)
    };
    let changed_shape = now.sql != then.sql;
    Ok(TableLoss {
        table: now.name.clone(),
        inserted,
        updated,
        deleted,
        note: changed_shape.then(|| {
            "its definition changed since the recovery point; the restore puts the old one back"
                .into()
        }),
    })
}
