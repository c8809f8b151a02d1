//! Seeding a preview on D1 from production: the full copy (export → import) or the schema
//! and migrations ledger only, with the reads it needs (the DDL, the table names).
use serde_json::Value;

use super::{Backend, BackendError, CloudflareBackend, DatabaseRef, Result, to_backend};
use crate::cloudflare::d1::{DumpOptions, RawResult, Statement};
use crate::schema;
use crate::workspace::config::PreviewSeed;

impl CloudflareBackend {
    pub(super) fn read_one(
        &self,
        db: &DatabaseRef,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<RawResult> {
        self.read(db, &[Statement::with(sql, params)])?
            .into_iter()
            .next()
            .ok_or_else(|| BackendError::Other(format!("D1 returned no result for: {sql}")))
    }

    /// The user schema's DDL (`sqlite_master`), `_cf_*` and SQLite-internal objects left out,
    /// in an order that can be replayed: tables, views, indexes, triggers.
    pub(super) fn ddl(&self, db: &DatabaseRef) -> Result<Vec<(String, String, String)>> {
        let r = self.read_one(
            db,
            "SELECT type, name, sql FROM sqlite_master \
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, rowid",
            vec![],
        )?;
        Ok(r.results
            .rows
            .into_iter()
            .filter_map(|row| {
                let s = |i: usize| row.get(i).and_then(Value::as_str).map(str::to_string);
                Some((s(0)?, s(1)?, s(2)?))
            })
            .collect())
    }

    pub(super) fn table_names(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Vec<String>> {
        Ok(self
            .ddl(db)?
            .into_iter()
            .filter(|(ty, name, sql)| {
                ty == "table"
                    && !name.eq_ignore_ascii_case(ledger_table)
                    && !sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL")
            })
            .map(|(_, name, _)| name)
            .collect())
    }

    /// Seeds `to` with `from`'s schema and ledger rows only.
    fn seed_schema(&self, from: &DatabaseRef, to: &DatabaseRef) -> Result<()> {
        let ddl = self.ddl(from)?;
        let mut statements: Vec<Statement> = ddl
            .iter()
            .map(|(_, _, sql)| Statement::new(sql.clone()))
            .collect();
        // The ledger's rows travel too: a preview must know what production has applied.
        let ledger_names: Vec<String> = ddl
            .iter()
            .filter(|(ty, name, _)| ty == "table" && name.eq_ignore_ascii_case(&self.ledger_table))
            .map(|(_, n, _)| n.clone())
            .collect();
        for table in ledger_names {
            let rows = self.read_one(
                from,
                &format!(
                    "SELECT id, name, applied_at FROM {}",
                    schema::quote_ident(&table)
                ),
                vec![],
            )?;
            for row in rows.results.rows {
                statements.push(Statement::with(
                    format!(
                        "INSERT INTO {}(id, name, applied_at) VALUES (?, ?, ?)",
                        schema::quote_ident(&table)
                    ),
                    row,
                ));
            }
        }
        if statements.is_empty() {
            return Ok(());
        }
        for chunk in statements.chunks(self.max_batch_statements.max(1)) {
            self.client
                .query(&to.id, chunk, false)
                .map_err(|e| to_backend(e, to))?;
        }
        Ok(())
    }

    /// `Backend::clone_database`: a new D1 database seeded from `from`.
    pub(super) fn clone_preview(&self, from: &DatabaseRef, name: &str) -> Result<DatabaseRef> {
        let to = self.create_database(name)?;
        let seeded = match self.seed {
            PreviewSeed::Schema => self.seed_schema(from, &to),
            PreviewSeed::Full => self
                .client
                .export_sql(&from.id, &DumpOptions::default())
                .and_then(|sql| {
                    if sql.trim().is_empty() {
                        Ok(Default::default())
                    } else {
                        self.client.import_sql(&to.id, &sql)
                    }
                })
                .map(|_| ())
                .map_err(|e| to_backend(e, from)),
        };
        if let Err(e) = seeded {
            // Never leave a half-seeded preview behind.
            let _ = self.client.delete_database(&to.id);
            return Err(e);
        }
        Ok(to)
    }
}
