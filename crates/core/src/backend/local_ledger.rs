//! The migrations ledger of a local database: wrangler's DDL for it, reading its rows and
//! the trusted edits `repair` makes (the sandbox refuses ledger writes from user SQL).
use super::local_errors::map_sql_error;
use super::{Backend, DatabaseRef, LedgerRow, LocalBackend, Result};
use crate::schema;

/// wrangler's ledger DDL, verbatim apart from the table name.
pub fn ledger_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(\n\tid INTEGER PRIMARY KEY AUTOINCREMENT,\n\tname TEXT UNIQUE,\n\tapplied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n)",
        schema::ident(table)
    )
}

impl LocalBackend {
    /// `Backend::ledger`: the ledger's rows (none when the table does not exist).
    pub(super) fn read_ledger(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
    ) -> Result<Vec<LedgerRow>> {
        let conn = self.open(db)?;
        let exists: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [ledger_table],
                |r| r.get(0),
            )
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, name, applied_at FROM {} ORDER BY id",
                schema::quote_ident(ledger_table)
            ))
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(LedgerRow {
                    id: r.get(0)?,
                    name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    applied_at: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        Ok(rows)
    }

    /// `Backend::repair_ledger`: our own (trusted) ledger edits in one transaction.
    pub(super) fn edit_ledger(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        // The connection carries the sandbox, which refuses ledger writes from user SQL;
        // these statements are our own and marked trusted.
        let (conn, sandbox) = self.open_guarded(db)?;
        let context = self.describe(db);
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| map_sql_error(&context, e))?;
        let table = schema::quote_ident(ledger_table);
        let edit = sandbox.trusted(|| -> rusqlite::Result<()> {
            conn.execute_batch(&ledger_ddl(ledger_table))?;
            for name in remove {
                conn.execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])?;
            }
            for name in add {
                conn.execute(&format!("INSERT INTO {table}(name) VALUES (?1)"), [name])?;
            }
            Ok(())
        });
        match edit.and_then(|()| conn.execute_batch("COMMIT")) {
            Ok(()) => Ok(()),
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(map_sql_error(&context, e))
            }
        }
    }
}
