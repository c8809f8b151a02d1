//! The `Backend` abstraction: where environments' databases live and how SQL reaches them.
//!
//! Designed for both local SQLite files and Cloudflare D1, so nothing here assumes a file
//! path: a database is named by an opaque [`DatabaseRef`] id. Backends know nothing of
//! releases, the gate or the console.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::Schema;
use crate::workspace::Migration;

// The D1 backend needs the Cloudflare client: the core's `d1` feature.
pub mod cancel;
#[cfg(feature = "d1")]
pub mod cloudflare;
#[cfg(feature = "d1")]
mod cloudflare_apply;
mod exec;
pub mod local;
mod local_exec;
mod local_exec_raw;
mod local_loss;
pub mod sandbox;
pub mod space;

#[cfg(feature = "d1")]
pub use cloudflare::CloudflareBackend;
pub use exec::{
    BatchOutcome, ExecMeta, ExecOptions, ExecStatement, FailureKind, StatementFailure,
    StatementResult,
};
pub use local::LocalBackend;
pub use local_exec::LocalSession;

/// An opaque handle to one database (local: a file name under `.d1ops/db`; D1: a uuid).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatabaseRef {
    pub id: String,
}

impl DatabaseRef {
    pub fn new(id: impl Into<String>) -> Self {
        DatabaseRef { id: id.into() }
    }
}

/// A recovery point of one database. `location: None` records that the database did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub location: Option<String>,
    pub size_bytes: u64,
}

/// One row of the applied-migrations ledger (`d1_migrations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub id: i64,
    pub name: String,
    pub applied_at: String,
}

/// What a backend reports about one existing database (see [`Backend::database_info`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DatabaseInfo {
    pub size_bytes: Option<u64>,
    /// D1's read-replication mode (`auto`, `disabled`); `None` where there is none (local).
    pub read_replication: Option<String>,
}

/// Production's own figures, for a gate whose preview was seeded without rows
/// (`preview_seed = "schema"`): what the data-dependent checks use instead of the preview's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProductionFigures {
    /// From the database's metadata (D1's `file_size`).
    pub size_bytes: Option<u64>,
    /// Rows per table by a read-only, bounded `count(*)`; `None`: more than `row_limit`
    /// (not counted, unknown).
    pub rows: BTreeMap<String, Option<u64>>,
    pub row_limit: u64,
}

impl ProductionFigures {
    /// Rows per table for rules that need "how many at least": a table past the count
    /// limit counts as `row_limit + 1`.
    pub fn counts_at_least(&self) -> BTreeMap<String, u64> {
        self.rows
            .iter()
            .map(|(t, n)| (t.clone(), n.unwrap_or(self.row_limit.saturating_add(1))))
            .collect()
    }

    /// `production has 1,204 rows in 3 tables` / `…; 2 tables above 100,000 rows not
    /// counted (unknown)` / `production's row counts are unknown`.
    pub fn rows_summary(&self) -> String {
        if self.rows.is_empty() && self.size_bytes.is_none() {
            return "production's row counts are unknown".into();
        }
        let known: u64 = self.rows.values().flatten().sum();
        let counted = self.rows.values().filter(|n| n.is_some()).count();
        let unknown = self.rows.len() - counted;
        let mut s = format!(
            "production has {} row(s) in {counted} counted table(s)",
            d1ops_sql::text::thousands(known)
        );
        if unknown > 0 {
            s.push_str(&format!(
                ", {unknown} table(s) above {} rows not counted (unknown)",
                d1ops_sql::text::thousands(self.row_limit)
            ));
        }
        s
    }
}

/// A `PRAGMA foreign_key_check` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FkViolation {
    pub table: String,
    pub rowid: Option<i64>,
    pub parent: String,
    pub fk_index: i64,
}

/// What an atomic apply did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub migrations: usize,
    pub statements: usize,
    pub duration_ms: f64,
    /// Statements that took at least [`SLOW_STATEMENT_MS`], in order (index builds, rebuilds).
    pub slow_statements: Vec<StatementTiming>,
    /// Transactions the apply took: 1, or (D1, a release too large for one batch) one per
    /// batch after a Time Travel bookmark that any failure restores.
    #[serde(default = "one")]
    pub transactions: usize,
}

fn one() -> usize {
    1
}

/// Statements at least this slow are listed in an [`ApplyReport`].
pub const SLOW_STATEMENT_MS: f64 = 1.0;

/// How long one migration statement took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementTiming {
    pub migration: String,
    pub path: String,
    pub line: usize,
    pub ms: f64,
}

/// Where and why an atomic apply failed (everything was rolled back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyFailure {
    /// The migration whose statement failed, or `None` for a commit-time failure.
    pub migration: Option<String>,
    pub path: Option<String>,
    pub line: Option<usize>,
    pub statement: Option<String>,
    pub error: String,
    /// Foreign-key violations found before commit (the apply was refused because of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fk_violations: Vec<FkViolation>,
}

impl std::fmt::Display for ApplyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{p}:{l}: {}", self.error)?,
            (Some(p), None) => write!(f, "{p}: {}", self.error)?,
            _ => write!(f, "{}", self.error)?,
        }
        if let Some(s) = &self.statement {
            write!(f, " (in: {})", one_line(s, 120))?;
        }
        Ok(())
    }
}

/// The table a `DROP TABLE [IF EXISTS] [schema.]name` drops.
pub(crate) fn dropped_table(sql: &str) -> Option<String> {
    let tokens = crate::schema::sqltext::tokenize(sql);
    let (first, rest) = tokens.split_first()?;
    let (second, mut rest) = rest.split_first()?;
    if !first.is_word("drop") || !second.is_word("table") {
        return None;
    }
    if rest.first()?.is_word("if") {
        rest = rest.get(2..)?;
    }
    let name = match rest {
        [_, dot, n, ..] if dot.is_punct(".") => n,
        [n, ..] => n,
        [] => return None,
    };
    name.is_name()
        .then(|| crate::schema::sqltext::unquote(name.raw))
}

/// Folds whitespace and shortens text, from the one text module.
pub use d1ops_sql::text::one_line;

/// What a restore to a recovery point would undo, per table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LossReport {
    pub tables: Vec<TableLoss>,
}

/// How a loss that cannot be counted begins its note (D1: a bookmark's rows cannot be read
/// without restoring it).
pub const NOT_COUNTABLE: &str = "not countable on D1";

/// One table's changes since a recovery point (all of them lost by restoring it). In JSON,
/// counts that were not measured ([`TableLoss::countable`] false) are `null`, never 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "TableLossJson")]
pub struct TableLoss {
    pub table: String,
    /// Rows added since the snapshot (gone after the restore).
    pub inserted: u64,
    /// Rows changed since the snapshot (their changes are gone); `None` when not detectable.
    pub updated: Option<u64>,
    /// Rows removed since the snapshot (back after the restore).
    pub deleted: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TableLoss {
    /// Whether `inserted`/`updated`/`deleted` were measured (false on D1, where the note says
    /// the loss is stated, not counted: the numbers are then unknown, not 0).
    pub fn countable(&self) -> bool {
        !(self.note.as_deref()).is_some_and(|n| n.starts_with(NOT_COUNTABLE))
    }
}

/// [`TableLoss`] as JSON: unknown counts are `null`.
#[derive(Serialize)]
struct TableLossJson {
    table: String,
    inserted: Option<u64>,
    updated: Option<u64>,
    deleted: Option<u64>,
    countable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

impl From<TableLoss> for TableLossJson {
    fn from(t: TableLoss) -> Self {
        let countable = t.countable();
        TableLossJson {
            table: t.table,
            inserted: countable.then_some(t.inserted),
            updated: t.updated.filter(|_| countable),
            deleted: countable.then_some(t.deleted),
            countable,
            note: t.note,
        }
    }
}

impl LossReport {
    /// Whether the restore would lose or change nothing.
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|t| {
            t.inserted == 0 && t.deleted == 0 && t.updated.unwrap_or(0) == 0 && t.note.is_none()
        })
    }
}

/// The rows and counters of one executed statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub changes: u64,
    pub last_row_id: i64,
    pub duration_ms: f64,
}

/// A probe as a backend runs it: one statement, its positional parameters, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub sql: String,
    pub params: Vec<serde_json::Value>,
    /// Write probes run inside a savepoint that is rolled back after every run, so the
    /// database keeps the data it had.
    pub write: bool,
    /// Timed executions (at least one runs).
    pub runs: u32,
    /// Stop repeating once the runs so far took this long in total (a probe that regressed
    /// to seconds must not hold the gate for minutes); the warm-up and one timed run always
    /// happen.
    pub time_budget_ms: f64,
}

/// One row of `EXPLAIN QUERY PLAN`: `parent` is the `id` of the enclosing step (0: top).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub id: i64,
    pub parent: i64,
    pub detail: String,
}

/// What running a probe measured. An SQL error is a result (`error`), not a backend error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProbeRun {
    /// The query plan; empty when the statement did not prepare.
    pub plan: Vec<PlanStep>,
    /// One time per completed timed run, in order: the statement's own time (local: the
    /// thread's CPU time running it, so waiting for a CPU on a busy machine does not count;
    /// D1: `meta.duration`).
    pub timings_ms: Vec<f64>,
    /// Rows the first (warm-up) execution returned (every row stepped).
    pub rows: Option<u64>,
    /// Rows the first execution changed (write probes).
    pub changes: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("database {0} does not exist")]
    NotFound(String),
    #[error("database {0} already exists")]
    Exists(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database {db} is locked by another process (still busy after {seconds} s)")]
    Locked { db: String, seconds: u64 },
    /// The machine, not the SQL, stopped the operation: a lock another process holds, a
    /// read-only or immutable path, a full disk, an I/O error. Whatever ran was rolled back;
    /// the same operation succeeds once the obstacle is gone. `sentence` names it.
    #[error("{sentence}")]
    Environment {
        obstacle: Obstacle,
        sentence: String,
    },
    #[error("{context}: {message}")]
    Sql { context: String, message: String },
    #[error("{0}")]
    Apply(Box<ApplyFailure>),
    /// A write whose outcome is unknown (no answer, and production could not be read to
    /// tell): the caller must not assume it failed or succeeded.
    #[error("{0}")]
    Ambiguous(String),
    /// Cloudflare's API refused or failed a call (in its own sentence).
    #[cfg(feature = "d1")]
    #[error(transparent)]
    Cloudflare(#[from] crate::cloudflare::CloudflareError),
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// The obstacle in the environment behind this error, when it is one (a lock, a read-only
    /// path, a full disk, an I/O error) rather than a fault of the SQL.
    pub fn obstacle(&self) -> Option<Obstacle> {
        match self {
            BackendError::Locked { .. } => Some(Obstacle::Locked),
            BackendError::Environment { obstacle, .. } => Some(*obstacle),
            _ => None,
        }
    }
}

/// What in the environment stopped an operation (see [`BackendError::Environment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Obstacle {
    /// Another connection holds a lock (SQLITE_BUSY / SQLITE_LOCKED).
    Locked,
    /// A file or its folder cannot be written (SQLITE_READONLY, _CANTOPEN, _PERM; EROFS,
    /// EACCES, EPERM).
    ReadOnly,
    /// Not enough free space (SQLITE_FULL, ENOSPC), or not enough to start safely.
    NoSpace,
    /// The disk failed a read or write (SQLITE_IOERR).
    Io,
}

impl Obstacle {
    pub fn as_str(self) -> &'static str {
        match self {
            Obstacle::Locked => "locked",
            Obstacle::ReadOnly => "read_only",
            Obstacle::NoSpace => "no_space",
            Obstacle::Io => "io",
        }
    }

    /// What the operator does about it before trying again.
    pub fn remedy(self) -> &'static str {
        match self {
            Obstacle::Locked => "try again when it is free",
            Obstacle::ReadOnly => "make it writable, then try again",
            Obstacle::NoSpace => "free space, then try again",
            Obstacle::Io => "check the disk, then try again",
        }
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// A place that holds databases and runs SQL on them.
pub trait Backend: Send + Sync {
    /// `local` or `cloudflare`.
    fn kind(&self) -> &'static str;
    /// How to show a database to a person (local: its file path; D1: its id).
    fn describe(&self, db: &DatabaseRef) -> String;

    /// The name the platform itself gives the database d1ops calls `name` (D1's database
    /// name, with its prefix); `None` where d1ops' name is the name (local files).
    fn platform_name(&self, _name: &str) -> Option<String> {
        None
    }
    /// Production's database (local: `production`; D1: the configured database id).
    fn production_ref(&self) -> DatabaseRef {
        DatabaseRef::new("production")
    }
    /// The database d1ops created as `name`, when it exists (local: the file of that name;
    /// D1: looked up by its name).
    fn lookup(&self, name: &str) -> Result<Option<DatabaseRef>> {
        let db = DatabaseRef::new(name);
        Ok(self.exists(&db)?.then_some(db))
    }
    /// Creates an empty database named `name`.
    fn create_database(&self, name: &str) -> Result<DatabaseRef>;
    fn delete_database(&self, db: &DatabaseRef) -> Result<()>;
    fn exists(&self, db: &DatabaseRef) -> Result<bool>;
    /// What the backend knows of `db` in one read: `None` when it does not exist, `Err` when
    /// the backend could not answer (which is not the same as "no database").
    fn database_info(&self, db: &DatabaseRef) -> Result<Option<DatabaseInfo>> {
        if !self.exists(db)? {
            return Ok(None);
        }
        Ok(Some(DatabaseInfo {
            size_bytes: self.size_bytes(db).ok(),
            read_replication: None,
        }))
    }
    /// A new database `name` holding a consistent copy of `from` (local: online backup API).
    fn clone_database(&self, from: &DatabaseRef, name: &str) -> Result<DatabaseRef>;
    /// Applies `migrations` and their ledger rows in ONE atomic unit with deferred foreign
    /// keys and a `foreign_key_check` before commit. On any failure nothing is kept.
    fn apply_migrations(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
    ) -> Result<ApplyReport>;
    /// Refuses, with [`BackendError::Environment`], when `db` could not take a promotion
    /// right now for a reason outside the SQL: its file or folder is read-only, or there is
    /// not room for a recovery point of it plus the apply. Changes nothing. (D1 manages its
    /// own storage: nothing to check.)
    fn preflight_write(&self, _db: &DatabaseRef) -> Result<()> {
        Ok(())
    }
    /// Takes a recovery point labelled `label`.
    fn snapshot(&self, db: &DatabaseRef, label: &str) -> Result<SnapshotRef>;
    /// Puts a recovery point back (a `location: None` snapshot deletes the database).
    fn restore(&self, db: &DatabaseRef, snapshot: &SnapshotRef) -> Result<()>;
    /// Whether [`Backend::restore_returning_previous`] names the point the restore replaced
    /// (D1: Time Travel's `previous_bookmark`), so no recovery point need be taken first.
    fn restore_names_previous(&self) -> bool {
        false
    }
    /// The recovery point of `db` as it was at `at`, when the backend keeps a history of
    /// points (D1: Time Travel's bookmark at that time); `None` otherwise. For a restore
    /// whose answer (and the previous point in it) was lost.
    fn point_at(
        &self,
        _db: &DatabaseRef,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<SnapshotRef>> {
        Ok(None)
    }
    /// [`Backend::restore`], answering the recovery point of what it replaced when the
    /// backend names one in the same answer (`None` otherwise).
    fn restore_returning_previous(
        &self,
        db: &DatabaseRef,
        snapshot: &SnapshotRef,
    ) -> Result<Option<SnapshotRef>> {
        self.restore(db, snapshot).map(|()| None)
    }
    fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()>;
    /// Whether recovery points hold storage of their own (local: copies of the file; D1:
    /// Time Travel bookmarks, which do not count against the plan).
    fn recovery_points_use_storage(&self) -> bool {
        true
    }
    fn size_bytes(&self, db: &DatabaseRef) -> Result<u64>;
    fn schema(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Schema>;
    /// The ledger rows in apply order; empty when the ledger table does not exist.
    fn ledger(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Vec<LedgerRow>>;
    /// d1ops' own, trusted edit of the ledger (`d1ops ledger repair`): in ONE transaction,
    /// creates the ledger table when missing, deletes the rows named in `remove`, then
    /// inserts `add` in order (new ids, `applied_at` now). Nothing is kept on failure.
    fn repair_ledger(
        &self,
        _db: &DatabaseRef,
        _ledger_table: &str,
        _add: &[String],
        _remove: &[String],
    ) -> Result<()> {
        Err(BackendError::Other(
            "this backend cannot repair a migrations ledger".into(),
        ))
    }
    /// Whether a preview cloned from production holds its rows (`false`: schema only, and
    /// the gate reads [`Backend::production_figures`] for its data-dependent checks).
    fn previews_hold_rows(&self) -> bool {
        true
    }
    /// Production's size and bounded row counts (read only; see [`ProductionFigures`]).
    fn production_figures(
        &self,
        _ledger_table: &str,
        _row_limit: u64,
    ) -> Result<ProductionFigures> {
        Err(BackendError::Other(
            "this backend's previews hold production's rows".into(),
        ))
    }
    /// Exact row counts of every user table.
    fn row_counts(&self, db: &DatabaseRef, ledger_table: &str) -> Result<BTreeMap<String, u64>>;
    fn foreign_key_check(&self, db: &DatabaseRef) -> Result<Vec<FkViolation>>;
    /// What restoring `db` to `snapshot` would lose: per table, rows inserted, updated and
    /// deleted since the snapshot.
    fn loss_since(
        &self,
        _db: &DatabaseRef,
        _snapshot: &SnapshotRef,
        _ledger_table: &str,
    ) -> Result<LossReport> {
        Err(BackendError::Other(
            "this backend cannot compare a database with a recovery point".into(),
        ))
    }
    /// Bytes used by each table, its indexes included; empty when the backend cannot tell.
    fn table_sizes(&self, _db: &DatabaseRef) -> Result<BTreeMap<String, u64>> {
        Ok(BTreeMap::new())
    }
    /// Runs a probe on `db` over one connection: `EXPLAIN QUERY PLAN`, one untimed warm-up
    /// execution (whose rows and changes are reported), then up to `probe.runs` timed ones;
    /// a write probe runs inside `SAVEPOINT d1ops_probe`, rolled back after every execution. `Err` only when the database cannot be reached. (Over D1's
    /// `/query` this is the same EXPLAIN plus N executions timed by `meta.duration`.)
    fn run_probe(&self, db: &DatabaseRef, probe: &ProbeSpec) -> Result<ProbeRun>;
    /// Runs a batch as D1's `/query` does (items split on `;`, one transaction when more than
    /// one statement, a failure rolls it all back) and reports D1's `meta` per statement. An
    /// SQL error is part of the outcome; `Err` only when the database cannot be reached.
    fn execute(
        &self,
        _db: &DatabaseRef,
        _batch: &[ExecStatement],
        _opts: ExecOptions,
    ) -> Result<BatchOutcome> {
        Err(BackendError::Other(
            "this backend cannot run measured statements yet".into(),
        ))
    }
    /// Runs one statement with positional parameters.
    fn query(
        &self,
        db: &DatabaseRef,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<QueryResult>;
}

#[cfg(test)]
mod loss_json_tests {
    use super::*;

    fn loss(note: Option<&str>) -> TableLoss {
        TableLoss {
            table: "users".into(),
            inserted: 0,
            updated: None,
            deleted: 0,
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn a_loss_d1_cannot_count_is_null_not_zero() {
        let d1 = loss(Some(&format!(
            "{NOT_COUNTABLE}: every change since bookmark b is undone"
        )));
        assert!(!d1.countable());
        let json = serde_json::to_value(&d1).unwrap();
        assert!(
            json["inserted"].is_null() && json["deleted"].is_null(),
            "{json}"
        );
        assert_eq!(json["countable"], false);
        let local = TableLoss {
            inserted: 2,
            ..loss(None)
        };
        let json = serde_json::to_value(&local).unwrap();
        assert_eq!(
            (json["inserted"].as_u64(), json["deleted"].as_u64()),
            (Some(2), Some(0))
        );
        assert_eq!(json["countable"], true);
    }
}
