//! Reading a D1 database's state for the lifecycle: the migrations ledger and its trusted
//! repair, row counts, the foreign-key check, and what a restore to a Time Travel bookmark
//! would lose.
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    BOOKMARK_PREFIX, CloudflareBackend, DatabaseRef, FkViolation, LedgerRow, LossReport, Result,
    SnapshotRef, TableLoss, to_backend,
};
use crate::cloudflare::d1::Statement;
use crate::schema;

impl CloudflareBackend {
    /// `Backend::ledger`.
    pub(super) fn read_ledger(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
    ) -> Result<Vec<LedgerRow>> {
        let exists = self.read_one(
            db,
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![json!(ledger_table)],
        )?;
        let n = exists
            .results
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let r = self.read_one(
            db,
            &format!(
                "SELECT id, name, applied_at FROM {} ORDER BY id",
                schema::quote_ident(ledger_table)
            ),
            vec![],
        )?;
        Ok(r.results
            .rows
            .into_iter()
            .map(|row| LedgerRow {
                id: row.first().and_then(Value::as_i64).unwrap_or(0),
                name: row
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                applied_at: row
                    .get(2)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect())
    }

    /// `Backend::repair_ledger`.
    pub(super) fn edit_ledger(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        // One /query batch: D1 runs it as one transaction.
        let table = schema::quote_ident(ledger_table);
        let mut batch = vec![Statement::new(crate::backend::local::ledger_ddl(
            ledger_table,
        ))];
        batch.extend(remove.iter().map(|name| {
            Statement::with(
                format!("DELETE FROM {table} WHERE name = ?"),
                vec![json!(name)],
            )
        }));
        batch.extend(add.iter().map(|name| {
            Statement::with(
                format!("INSERT INTO {table}(name) VALUES (?)"),
                vec![json!(name)],
            )
        }));
        self.client
            .query(&db.id, &batch, false)
            .map(|_| ())
            .map_err(|e| to_backend(e, db))
    }

    /// `Backend::row_counts`.
    pub(super) fn count_rows(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
    ) -> Result<BTreeMap<String, u64>> {
        let tables = self.table_names(db, ledger_table)?;
        let mut out = BTreeMap::new();
        for chunk in tables.chunks(self.max_batch_statements.max(1)) {
            let statements: Vec<Statement> = chunk
                .iter()
                .map(|t| Statement::new(format!("SELECT count(*) FROM {}", schema::quote_ident(t))))
                .collect();
            for (t, r) in chunk.iter().zip(self.read(db, &statements)?) {
                let n = r
                    .results
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                out.insert(t.clone(), n);
            }
        }
        Ok(out)
    }

    /// `Backend::production_figures`: production's size from D1's metadata and, per table,
    /// its row count read by a bounded `count(*)` (at most `limit + 1` rows read per table,
    /// so a large table costs no full scan; `None` beyond the limit).
    pub(super) fn figures(
        &self,
        ledger_table: &str,
        limit: u64,
    ) -> Result<super::super::ProductionFigures> {
        let db = self.production_ref_here();
        let size_bytes = self
            .client
            .get_database(&db.id)
            .map_err(|e| to_backend(e, &db))?
            .file_size;
        let tables = self.table_names(&db, ledger_table)?;
        let mut rows = BTreeMap::new();
        for chunk in tables.chunks(self.max_batch_statements.max(1)) {
            let statements: Vec<Statement> = chunk
                .iter()
                .map(|t| {
                    Statement::new(format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {})",
                        schema::quote_ident(t),
                        limit.saturating_add(1)
                    ))
                })
                .collect();
            for (t, r) in chunk.iter().zip(self.read(&db, &statements)?) {
                let n = r
                    .results
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_u64);
                rows.insert(t.clone(), n.filter(|n| *n <= limit));
            }
        }
        Ok(super::super::ProductionFigures {
            size_bytes,
            rows,
            row_limit: limit,
        })
    }

    /// `Backend::foreign_key_check`.
    pub(super) fn check_foreign_keys(&self, db: &DatabaseRef) -> Result<Vec<FkViolation>> {
        let r = self.read_one(db, "PRAGMA foreign_key_check", vec![])?;
        Ok(r.results
            .rows
            .into_iter()
            .map(|row| FkViolation {
                table: row
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                rowid: row.get(1).and_then(Value::as_i64),
                parent: row
                    .get(2)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                fk_index: row.get(3).and_then(Value::as_i64).unwrap_or(0),
            })
            .filter(|v| !v.table.starts_with("_cf_"))
            .collect())
    }

    /// `Backend::loss_since`: what a restore to the bookmark would lose.
    pub(super) fn loss_since_bookmark(
        &self,
        db: &DatabaseRef,
        snapshot: &SnapshotRef,
        ledger_table: &str,
    ) -> Result<LossReport> {
        // D1 cannot read a bookmark's rows without restoring it, so the loss is stated, not
        // counted: every table's changes since the bookmark are undone.
        let when = snapshot
            .location
            .as_deref()
            .and_then(|l| l.strip_prefix(BOOKMARK_PREFIX))
            .unwrap_or("the recovery point");
        Ok(LossReport {
            tables: self
                .table_names(db, ledger_table)?
                .into_iter()
                .map(|table| TableLoss {
                    table,
                    inserted: 0,
                    updated: None,
                    deleted: 0,
                    note: Some(format!(
                        "not countable on D1: every change since bookmark {when} is undone"
                    )),
                })
                .collect(),
        })
    }
}
