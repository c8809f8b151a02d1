//! The Cloudflare D1 backend: databases are D1 databases of one account, reached through the
//! REST API ([`crate::cloudflare`]). A preview is a new D1 database seeded from production
//! by export → import (or schema only); a recovery point is a Time Travel bookmark; a
//! promotion is one `/query` batch (D1 runs a batch as one transaction), or, when a release is
//! larger than one request may be, migration by migration with the bookmark restored on any
//! failure (see `cloudflare_apply.rs`).
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Backend, BackendError, BatchOutcome, DatabaseRef, ExecMeta, ExecOptions, ExecStatement,
    FailureKind, FkViolation, LedgerRow, LossReport, ProbeRun, ProbeSpec, QueryResult, Result,
    SnapshotRef, StatementFailure, StatementResult, TableLoss,
};
use crate::cloudflare::d1::{DumpOptions, RawResult, Statement};
use crate::cloudflare::{Client, CloudflareError};
use crate::schema::{self, Schema};
use crate::workspace::Migration;
use crate::workspace::config::PreviewSeed;

/// Bookmarks are recorded as `d1-bookmark:<bookmark>` recovery points.
const BOOKMARK_PREFIX: &str = "d1-bookmark:";

/// D1 databases of one Cloudflare account.
pub struct CloudflareBackend {
    pub(super) client: Client,
    /// Production's database id.
    production: String,
    /// Prefix of the D1 names of databases d1ops creates (previews, check copies).
    name_prefix: String,
    seed: PreviewSeed,
    /// The migrations ledger (its rows travel with a schema-only preview).
    ledger_table: String,
    pub(super) max_batch_statements: usize,
    pub(super) max_batch_bytes: usize,
    /// The longest D1 runs a query (30 s); after an unanswered write, this long after it was
    /// sent its outcome is final and production's ledger tells which it was.
    pub(super) query_limit: std::time::Duration,
}

impl CloudflareBackend {
    pub fn new(
        client: Client,
        production_id: &str,
        name_prefix: &str,
        seed: PreviewSeed,
        ledger_table: &str,
        max_batch_statements: usize,
        max_batch_bytes: usize,
    ) -> CloudflareBackend {
        CloudflareBackend {
            client,
            production: production_id.to_string(),
            name_prefix: d1_name(name_prefix),
            seed,
            ledger_table: ledger_table.to_string(),
            max_batch_statements,
            max_batch_bytes,
            query_limit: std::time::Duration::from_secs(30),
        }
    }

    /// Sets how long D1 may run one query (`statement_timeout`).
    pub fn with_query_limit(mut self, limit: std::time::Duration) -> CloudflareBackend {
        self.query_limit = limit;
        self
    }

    pub fn account_id(&self) -> &str {
        self.client.account_id()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The D1 name of a database d1ops calls `name`.
    pub fn d1_name_of(&self, name: &str) -> String {
        format!("{}-{}", self.name_prefix, d1_name(name))
    }

    pub(super) fn is_production(&self, db: &DatabaseRef) -> bool {
        db.id == self.production
    }

    /// Read-only statements through `/raw`.
    pub(super) fn read(
        &self,
        db: &DatabaseRef,
        statements: &[Statement],
    ) -> Result<Vec<RawResult>> {
        self.client
            .raw(&db.id, statements, true)
            .map_err(|e| to_backend(e, db))
    }

    fn read_one(&self, db: &DatabaseRef, sql: &str, params: Vec<Value>) -> Result<RawResult> {
        self.read(db, &[Statement::with(sql, params)])?
            .into_iter()
            .next()
            .ok_or_else(|| BackendError::Other(format!("D1 returned no result for: {sql}")))
    }

    /// The user schema's DDL (`sqlite_master`), `_cf_*` and SQLite-internal objects left out,
    /// in an order that can be replayed: tables, views, indexes, triggers.
    fn ddl(&self, db: &DatabaseRef) -> Result<Vec<(String, String, String)>> {
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

    fn table_names(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Vec<String>> {
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
}

/// A D1-friendly database name: lowercase letters, digits and `-`.
fn d1_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_string()
}

/// Maps a client error to the backend's vocabulary.
pub(super) fn to_backend(e: CloudflareError, db: &DatabaseRef) -> BackendError {
    match e {
        CloudflareError::NotFound { .. } => BackendError::NotFound(db.id.clone()),
        CloudflareError::Sql { message, statement } => BackendError::Sql {
            context: statement
                .map(|s| format!("D1 database {} ({})", db.id, super::one_line(&s, 120)))
                .unwrap_or_else(|| format!("D1 database {}", db.id)),
            message,
        },
        other => BackendError::Other(other.to_string()),
    }
}

/// Splits D1's `message: SQLITE_CODE` into (message, code).
pub(super) fn split_d1_message(text: &str) -> (String, String) {
    match text.rsplit_once(": SQLITE_") {
        Some((msg, code)) => (msg.to_string(), format!("SQLITE_{code}")),
        None => (text.to_string(), "SQLITE_ERROR".to_string()),
    }
}

fn meta_of(m: &crate::cloudflare::d1::Meta) -> ExecMeta {
    ExecMeta {
        duration_ms: m.sql_ms(),
        rows_read: m.rows_read,
        rows_written: m.rows_written,
        changes: m.changes,
        last_row_id: m.last_row_id,
        changed_db: m.changed_db,
        size_after: m.size_after,
    }
}

/// Whether a statement only reads (first keyword SELECT / EXPLAIN / VALUES, a WITH that
/// does not write, a PRAGMA without `=`). D1 offers no remote prepare, so this is decided
/// from the text; anything unrecognised counts as a write.
pub(super) fn reads_only(sql: &str) -> bool {
    let tokens = schema::sqltext::tokenize(sql);
    let Some(first) = tokens.iter().find(|t| t.is_name()) else {
        return false;
    };
    let writes = |ts: &[schema::sqltext::Token]| {
        ts.iter().any(|t| {
            [
                "insert", "update", "delete", "replace", "create", "drop", "alter",
            ]
            .iter()
            .any(|w| t.is_word(w))
        })
    };
    if first.is_word("select") || first.is_word("values") || first.is_word("explain") {
        return !writes(&tokens) || first.is_word("explain");
    }
    if first.is_word("with") {
        return !writes(&tokens);
    }
    if first.is_word("pragma") {
        return !tokens.iter().any(|t| t.is_punct("="));
    }
    false
}

impl Backend for CloudflareBackend {
    fn kind(&self) -> &'static str {
        "cloudflare"
    }

    fn describe(&self, db: &DatabaseRef) -> String {
        format!(
            "D1 database {} (account {})",
            db.id,
            self.client.account_id()
        )
    }

    fn production_ref(&self) -> DatabaseRef {
        DatabaseRef::new(self.production.clone())
    }

    fn lookup(&self, name: &str) -> Result<Option<DatabaseRef>> {
        Ok(self
            .client
            .find_database(&self.d1_name_of(name))
            .map_err(|e| BackendError::Other(e.to_string()))?
            .map(|d| DatabaseRef::new(d.uuid)))
    }

    fn create_database(&self, name: &str) -> Result<DatabaseRef> {
        let d1 = self.d1_name_of(name);
        if name == crate::engine::PRODUCTION {
            return Err(BackendError::Other(
                "production must already exist on Cloudflare: set [cloudflare].database_id (or wrangler's database_id)".into(),
            ));
        }
        match self.client.create_database(&d1) {
            Ok(d) => Ok(DatabaseRef::new(d.uuid)),
            Err(CloudflareError::Api { message, .. }) if message.contains("already exists") => {
                Err(BackendError::Exists(d1))
            }
            Err(e) => Err(BackendError::Other(e.to_string())),
        }
    }

    fn delete_database(&self, db: &DatabaseRef) -> Result<()> {
        if self.is_production(db) {
            return Err(BackendError::Other(
                "d1ops never deletes the production database on Cloudflare".into(),
            ));
        }
        match self.client.delete_database(&db.id) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(to_backend(e, db)),
        }
    }

    fn exists(&self, db: &DatabaseRef) -> Result<bool> {
        match self.client.get_database(&db.id) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(to_backend(e, db)),
        }
    }

    fn clone_database(&self, from: &DatabaseRef, name: &str) -> Result<DatabaseRef> {
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

    fn apply_migrations(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
    ) -> Result<super::ApplyReport> {
        self.apply(db, migrations, ledger_table)
    }

    fn snapshot(&self, db: &DatabaseRef, _label: &str) -> Result<SnapshotRef> {
        let bookmark = self
            .client
            .bookmark(&db.id, None)
            .map_err(|e| to_backend(e, db))?;
        let size_bytes = self.size_bytes(db).unwrap_or(0);
        Ok(SnapshotRef {
            location: Some(format!("{BOOKMARK_PREFIX}{bookmark}")),
            size_bytes,
        })
    }

    fn restore(&self, db: &DatabaseRef, snapshot: &SnapshotRef) -> Result<()> {
        let Some(location) = &snapshot.location else {
            return self.delete_database(db);
        };
        let bookmark = location.strip_prefix(BOOKMARK_PREFIX).ok_or_else(|| {
            BackendError::Other(format!(
                "recovery point {location} is not a D1 Time Travel bookmark"
            ))
        })?;
        self.client
            .restore_bookmark(&db.id, bookmark)
            .map(|_| ())
            .map_err(|e| to_backend(e, db))
    }

    fn delete_snapshot(&self, _snapshot: &SnapshotRef) -> Result<()> {
        // A bookmark is a point in D1's Time Travel history; it expires with the account's
        // Time Travel retention and holds no storage of its own.
        Ok(())
    }

    fn recovery_points_use_storage(&self) -> bool {
        false
    }

    fn size_bytes(&self, db: &DatabaseRef) -> Result<u64> {
        self.client
            .get_database(&db.id)
            .map(|d| d.file_size.unwrap_or(0))
            .map_err(|e| to_backend(e, db))
    }

    fn schema(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Schema> {
        let ddl = self.ddl(db)?;
        let conn = rusqlite::Connection::open_in_memory()
            .map_err(|e| BackendError::Other(e.to_string()))?;
        for (_, name, sql) in &ddl {
            if let Err(e) = conn.execute_batch(sql) {
                // fts5 shadow tables are created by their virtual table; anything else is a
                // schema this build's SQLite cannot read.
                if !e.to_string().contains("already exists") {
                    return Err(BackendError::Sql {
                        context: format!("reading the schema of D1 database {} ({name})", db.id),
                        message: e.to_string(),
                    });
                }
            }
        }
        schema::read_schema(&conn, ledger_table).map_err(|e| BackendError::Sql {
            context: format!("reading the schema of D1 database {}", db.id),
            message: e.to_string(),
        })
    }

    fn ledger(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Vec<LedgerRow>> {
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

    fn repair_ledger(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        // One /query batch: D1 runs it as one transaction.
        let table = schema::quote_ident(ledger_table);
        let mut batch = vec![Statement::new(super::local::ledger_ddl(ledger_table))];
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

    fn row_counts(&self, db: &DatabaseRef, ledger_table: &str) -> Result<BTreeMap<String, u64>> {
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

    fn foreign_key_check(&self, db: &DatabaseRef) -> Result<Vec<FkViolation>> {
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

    fn loss_since(
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

    fn run_probe(&self, db: &DatabaseRef, probe: &ProbeSpec) -> Result<ProbeRun> {
        self.probe(db, probe)
    }

    fn execute(
        &self,
        db: &DatabaseRef,
        batch: &[ExecStatement],
        opts: ExecOptions,
    ) -> Result<BatchOutcome> {
        // One entry per statement, as D1 answers them.
        let mut pieces: Vec<(String, Vec<Value>)> = Vec::new();
        for item in batch {
            let parts = super::split_statements(&item.sql);
            let single = parts.len() == 1;
            for p in parts {
                pieces.push((
                    p.to_string(),
                    if single {
                        item.params.clone()
                    } else {
                        Vec::new()
                    },
                ));
            }
        }
        if opts.rollback {
            return Err(BackendError::Other(
                "D1 cannot run statements and roll them back; replay writes on the local backend"
                    .into(),
            ));
        }
        if !opts.allow_writes
            && let Some((i, (sql, _))) =
                pieces.iter().enumerate().find(|(_, (s, _))| !reads_only(s))
        {
            return Ok(BatchOutcome::failed(StatementFailure {
                kind: FailureKind::Refused,
                index: i,
                sql: sql.clone(),
                code: "SQLITE_READONLY".into(),
                message: "this statement writes; writes need --yes".into(),
                offset: None,
                duration_ms: 0.0,
            }));
        }
        let read_only = pieces.iter().all(|(s, _)| reads_only(s));
        let statements: Vec<Statement> = pieces
            .iter()
            .map(|(s, p)| Statement::with(s.clone(), p.clone()))
            .collect();
        match self.client.raw(&db.id, &statements, read_only) {
            Ok(results) => Ok(BatchOutcome {
                results: pieces
                    .iter()
                    .zip(results)
                    .map(|((sql, _), r)| StatementResult {
                        sql: sql.clone(),
                        columns: r.results.columns,
                        rows: r.results.rows,
                        meta: meta_of(&r.meta),
                        readonly: reads_only(sql),
                    })
                    .collect(),
                failure: None,
            }),
            Err(CloudflareError::Sql { message, .. }) => {
                let index = if statements.len() > 1 {
                    self.locate_failure(db, &statements)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                } else {
                    0
                };
                let (message, code) = split_d1_message(&message);
                Ok(BatchOutcome::failed(StatementFailure {
                    kind: FailureKind::Sql,
                    index,
                    sql: pieces.get(index).map(|p| p.0.clone()).unwrap_or_default(),
                    code,
                    message,
                    offset: None,
                    duration_ms: 0.0,
                }))
            }
            Err(e) => Err(to_backend(e, db)),
        }
    }

    fn query(&self, db: &DatabaseRef, sql: &str, params: &[Value]) -> Result<QueryResult> {
        let read_only = reads_only(sql);
        let started = std::time::Instant::now();
        let r = self
            .client
            .raw(&db.id, &[Statement::with(sql, params.to_vec())], read_only)
            .map_err(|e| to_backend(e, db))?
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok(QueryResult {
            columns: r.results.columns,
            rows: r.results.rows,
            changes: r.meta.changes,
            last_row_id: r.meta.last_row_id,
            duration_ms: if r.meta.duration > 0.0 {
                r.meta.sql_ms()
            } else {
                started.elapsed().as_secs_f64() * 1000.0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages() {
        assert_eq!(d1_name("Preview-01JABC_x"), "preview-01jabc-x");
        assert_eq!(
            split_d1_message("UNIQUE constraint failed: users.username: SQLITE_CONSTRAINT"),
            (
                "UNIQUE constraint failed: users.username".into(),
                "SQLITE_CONSTRAINT".into()
            )
        );
        assert!(reads_only("SELECT * FROM t WHERE a = 'insert'"));
        assert!(reads_only("with x as (select 1) select * from x"));
        assert!(!reads_only(
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"
        ));
        assert!(!reads_only("PRAGMA foreign_keys = off"));
        assert!(reads_only("PRAGMA table_info(t)"));
        assert!(!reads_only("UPDATE t SET a = 1"));
    }
}
