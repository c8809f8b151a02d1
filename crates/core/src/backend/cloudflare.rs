//! The Cloudflare D1 backend: databases are D1 databases of one account, reached through the
//! REST API ([`crate::cloudflare`]). A preview is a new D1 database seeded from production
//! by export → import (or schema only); a recovery point is a Time Travel bookmark; a
//! promotion is one `/query` batch (D1 runs a batch as one transaction), or, when a release is
//! larger than one request may be, migration by migration with the bookmark restored on any
//! failure (see `cloudflare_apply.rs`).
//!
//! This file owns [`CloudflareBackend`] itself, its error and statement vocabulary and the
//! [`Backend`] impl; its siblings own the longer operations: `cloudflare_seed` (seeding a
//! preview from production), `cloudflare_inspect` (the ledger, row counts, foreign keys and
//! loss since a bookmark), `cloudflare_exec` (a console batch) and `cloudflare_probe` (a probe's
//! timed runs), besides `cloudflare_apply.rs` (applying migrations, all or nothing).
use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Backend, BackendError, BatchOutcome, DatabaseRef, ExecMeta, ExecOptions, ExecStatement,
    FailureKind, FkViolation, LedgerRow, LossReport, ProbeRun, ProbeSpec, QueryResult, Result,
    SnapshotRef, StatementFailure, StatementResult, TableLoss,
};
use crate::cloudflare::d1::{RawResult, Statement};
use crate::cloudflare::{Client, CloudflareError};
use crate::schema::{self, Schema};
use crate::workspace::Migration;
use crate::workspace::config::PreviewSeed;

#[path = "cloudflare_exec.rs"]
mod cloudflare_exec;
#[path = "cloudflare_inspect.rs"]
mod cloudflare_inspect;
#[path = "cloudflare_probe.rs"]
mod cloudflare_probe;
#[path = "cloudflare_seed.rs"]
mod cloudflare_seed;

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

    pub(super) fn production_ref_here(&self) -> DatabaseRef {
        DatabaseRef::new(self.production.clone())
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
        other => BackendError::Cloudflare(other),
    }
}

/// Splits D1's `message: SQLITE_CODE` — or `message: SQLITE_CODE (extended:
/// SQLITE_CODE_DETAIL)` — into (message, code), the code being the extended one when D1 names
/// it (as the local executor reports `SQLITE_CONSTRAINT_UNIQUE`). The message is kept whole:
/// only a trailing code, and its extended part, is taken off.
pub(super) fn split_d1_message(text: &str) -> (String, String) {
    let is_code = |c: &str| {
        c.strip_prefix("SQLITE_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        })
    };
    let (head, extended) = match text
        .strip_suffix(')')
        .and_then(|t| t.rsplit_once(" (extended: "))
    {
        Some((head, ext)) if is_code(ext) => (head, Some(ext)),
        _ => (text, None),
    };
    match head.rsplit_once(": ") {
        Some((msg, code)) if is_code(code) => {
            (msg.to_string(), extended.unwrap_or(code).to_string())
        }
        _ => (text.to_string(), "SQLITE_ERROR".to_string()),
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

    fn platform_name(&self, name: &str) -> Option<String> {
        Some(self.d1_name_of(name))
    }

    fn production_ref(&self) -> DatabaseRef {
        DatabaseRef::new(self.production.clone())
    }

    fn lookup(&self, name: &str) -> Result<Option<DatabaseRef>> {
        Ok(self
            .client
            .find_database(&self.d1_name_of(name))
            .map_err(BackendError::Cloudflare)?
            .map(|d| DatabaseRef::new(d.uuid)))
    }

    fn create_database(&self, name: &str) -> Result<DatabaseRef> {
        let d1 = self.d1_name_of(name);
        if name == crate::model::PRODUCTION {
            return Err(BackendError::Other(
                "production must already exist on Cloudflare: set [cloudflare].database_id (or wrangler's database_id)".into(),
            ));
        }
        match self.client.create_database(&d1) {
            Ok(d) => Ok(DatabaseRef::new(d.uuid)),
            Err(CloudflareError::Api { message, .. }) if message.contains("already exists") => {
                Err(BackendError::Exists(d1))
            }
            Err(e) => Err(BackendError::Cloudflare(e)),
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

    fn database_info(&self, db: &DatabaseRef) -> Result<Option<super::DatabaseInfo>> {
        match self.client.get_database(&db.id) {
            Ok(d) => Ok(Some(super::DatabaseInfo {
                size_bytes: d.file_size,
                read_replication: d.read_replication.map(|r| r.mode),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(to_backend(e, db)),
        }
    }

    fn clone_database(&self, from: &DatabaseRef, name: &str) -> Result<DatabaseRef> {
        self.clone_preview(from, name)
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
        self.restore_returning_previous(db, snapshot).map(|_| ())
    }

    fn restore_names_previous(&self) -> bool {
        true
    }

    fn point_at(
        &self,
        db: &DatabaseRef,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<SnapshotRef>> {
        let when = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let bookmark = self
            .client
            .bookmark(&db.id, Some(&when))
            .map_err(|e| to_backend(e, db))?;
        Ok(Some(SnapshotRef {
            location: Some(format!("{BOOKMARK_PREFIX}{bookmark}")),
            size_bytes: 0,
        }))
    }

    /// Time Travel answers the bookmark it replaced (`previous_bookmark`): the exact point to
    /// undo to, where a bookmark read beforehand would miss writes made between the two.
    fn restore_returning_previous(
        &self,
        db: &DatabaseRef,
        snapshot: &SnapshotRef,
    ) -> Result<Option<SnapshotRef>> {
        let Some(location) = &snapshot.location else {
            return self.delete_database(db).map(|()| None);
        };
        let bookmark = location.strip_prefix(BOOKMARK_PREFIX).ok_or_else(|| {
            BackendError::Other(format!(
                "recovery point {location} is not a D1 Time Travel bookmark"
            ))
        })?;
        let answer = self
            .client
            .restore_bookmark(&db.id, bookmark)
            .map_err(|e| to_backend(e, db))?;
        Ok(answer
            .previous_bookmark
            .filter(|b| !b.trim().is_empty())
            .map(|b| SnapshotRef {
                location: Some(format!("{BOOKMARK_PREFIX}{b}")),
                size_bytes: 0,
            }))
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
        self.read_ledger(db, ledger_table)
    }

    fn repair_ledger(
        &self,
        db: &DatabaseRef,
        ledger_table: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        self.edit_ledger(db, ledger_table, add, remove)
    }

    fn previews_hold_rows(&self) -> bool {
        self.seed != PreviewSeed::Schema
    }

    fn production_figures(
        &self,
        ledger_table: &str,
        row_limit: u64,
    ) -> Result<super::ProductionFigures> {
        self.figures(ledger_table, row_limit)
    }

    fn row_counts(&self, db: &DatabaseRef, ledger_table: &str) -> Result<BTreeMap<String, u64>> {
        self.count_rows(db, ledger_table)
    }

    fn foreign_key_check(&self, db: &DatabaseRef) -> Result<Vec<FkViolation>> {
        self.check_foreign_keys(db)
    }

    fn loss_since(
        &self,
        db: &DatabaseRef,
        snapshot: &SnapshotRef,
        ledger_table: &str,
    ) -> Result<LossReport> {
        self.loss_since_bookmark(db, snapshot, ledger_table)
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
        self.execute_batch(db, batch, opts)
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
        // D1 names the extended code too; the sentence stays whole (it was cut at the last
        // ": SQLITE_", leaving "… SQLITE_CONSTRAINT (extended").
        assert_eq!(
            split_d1_message(
                "UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)"
            ),
            (
                "UNIQUE constraint failed: users.email".into(),
                "SQLITE_CONSTRAINT_UNIQUE".into()
            )
        );
        assert_eq!(
            split_d1_message("near \"SELEC\": syntax error at offset 0: SQLITE_ERROR"),
            (
                "near \"SELEC\": syntax error at offset 0".into(),
                "SQLITE_ERROR".into()
            )
        );
        assert_eq!(
            split_d1_message("a message with no code"),
            ("a message with no code".into(), "SQLITE_ERROR".into())
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
