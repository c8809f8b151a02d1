//! The embedded backend: each database is a SQLite file under `.d1ops/db/`, snapshots are
//! files under `.d1ops/snapshots/`. Connections behave like D1's: foreign keys are enforced on
//! every connection. Copies use SQLite's online backup API, never a raw file copy, so a copy
//! of a database in use is still consistent.
//!
//! This file owns [`LocalBackend`] itself — its folders, opening a connection, the database
//! file's name — and the [`Backend`] impl, which hands the longer operations to its siblings:
//! `local_copy` (copies, recovery points, restores, room checks), `local_apply` (a migration
//! apply in one transaction), `local_ledger` (the migrations ledger), `local_probe` (queries,
//! probes and plans) and `local_errors` (SQLite and file-system errors as sentences).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sandbox::Sandbox;
use super::{
    ApplyReport, Backend, BackendError, DatabaseRef, FkViolation, LedgerRow, ProbeRun, ProbeSpec,
    QueryResult, Result, SnapshotRef,
};
use crate::schema::{self, Schema};
use crate::workspace::Migration;

#[path = "local_apply.rs"]
mod local_apply;
#[path = "local_copy.rs"]
mod local_copy;
#[path = "local_errors.rs"]
mod local_errors;
#[path = "local_ledger.rs"]
mod local_ledger;
#[path = "local_probe.rs"]
mod local_probe;

use local_apply::{StatementClock, fk_check};
use local_copy::source_bytes;
pub use local_errors::sqlite_message;
use local_errors::{environment_error, map_sql_error, obstacle_of};
pub use local_ledger::ledger_ddl;
use local_probe::probe_on;
pub use local_probe::run_query;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite files in one folder.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    db_dir: PathBuf,
    snapshot_dir: PathBuf,
    /// A migration statement running longer than this is interrupted (D1 stops a query
    /// after 30 s; a statement that slow on a preview would fail on D1 too).
    statement_timeout: Duration,
    /// The migrations ledger no user statement may write (see [`sandbox`](super::sandbox)).
    ledger_table: String,
}

impl LocalBackend {
    /// A backend keeping databases in `state_dir/db` and snapshots in `state_dir/snapshots`.
    pub fn new(state_dir: &Path) -> LocalBackend {
        LocalBackend {
            db_dir: state_dir.join("db"),
            snapshot_dir: state_dir.join("snapshots"),
            statement_timeout: Duration::from_secs(30),
            ledger_table: schema::DEFAULT_LEDGER_TABLE.to_string(),
        }
    }

    /// Names the migrations ledger (`migrations_table`) the sandbox protects.
    pub fn with_ledger_table(mut self, table: &str) -> LocalBackend {
        self.ledger_table = table.to_string();
        self
    }

    /// Sets the per-statement time limit for migration applies.
    pub fn with_statement_timeout(mut self, limit: Duration) -> LocalBackend {
        self.statement_timeout = limit;
        self
    }

    /// The per-statement time limit.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// The file behind a database id.
    pub fn path(&self, db: &DatabaseRef) -> Result<PathBuf> {
        valid_name(&db.id)?;
        Ok(self.db_dir.join(format!("{}.sqlite", db.id)))
    }

    fn snapshot_path(&self, location: &str) -> Result<PathBuf> {
        valid_name(location.trim_end_matches(".sqlite"))?;
        Ok(self.snapshot_dir.join(location))
    }

    /// Opens an existing database with D1's connection settings and the sandbox every
    /// connection that may run a user's statement carries: what D1 refuses is refused.
    pub fn open(&self, db: &DatabaseRef) -> Result<Connection> {
        Ok(self.open_guarded(db)?.0)
    }

    /// [`open`](Self::open), with the sandbox's handle for our own statements (the ledger).
    fn open_guarded(&self, db: &DatabaseRef) -> Result<(Connection, Sandbox)> {
        let path = self.path(db)?;
        if !path.is_file() {
            return Err(BackendError::NotFound(db.id.clone()));
        }
        let mut conn = open_path(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let sandbox = Sandbox::install(&mut conn, &self.ledger_table).map_err(sql(&path))?;
        Ok((conn, sandbox))
    }
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        return Err(BackendError::Other(format!(
            "{name:?} is not a valid local database name (letters, digits, - _ .)"
        )));
    }
    Ok(())
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> BackendError + '_ {
    move |e| match obstacle_of(&e) {
        Some(obstacle) => environment_error(path, obstacle, &e, None),
        None => map_sql_error(&path.display().to_string(), e),
    }
}

fn open_path(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags).map_err(sql(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql(path))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql(path))?;
    // A 2 MiB default cache turns whole-table work (foreign_key_check, index builds, rebuilds)
    // into millions of small preads; a larger cache and memory-mapped reads keep it in RAM.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(sql(path))?;
    conn.pragma_update(None, "mmap_size", 268_435_456)
        .map_err(sql(path))?;
    Ok(conn)
}

impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn describe(&self, db: &DatabaseRef) -> String {
        self.path(db)
            .map_or_else(|_| db.id.clone(), |p| p.display().to_string())
    }

    fn create_database(&self, name: &str) -> Result<DatabaseRef> {
        let db = DatabaseRef::new(name);
        let path = self.path(&db)?;
        if path.exists() {
            return Err(BackendError::Exists(name.to_string()));
        }
        std::fs::create_dir_all(&self.db_dir).map_err(|source| BackendError::Io {
            what: self.db_dir.display().to_string(),
            source,
        })?;
        let conn = open_path(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Materialise the file (an untouched SQLite database is zero bytes until written).
        conn.execute_batch("PRAGMA user_version = 0; VACUUM;")
            .map_err(sql(&path))?;
        Ok(db)
    }

    fn delete_database(&self, db: &DatabaseRef) -> Result<()> {
        let path = self.path(db)?;
        for p in [
            path.clone(),
            path.with_extension("sqlite-journal"),
            path.with_extension("sqlite-wal"),
            path.with_extension("sqlite-shm"),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(BackendError::Io {
                        what: p.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn exists(&self, db: &DatabaseRef) -> Result<bool> {
        Ok(self.path(db)?.is_file())
    }

    fn clone_database(&self, from: &DatabaseRef, name: &str) -> Result<DatabaseRef> {
        self.clone_file(from, name)
    }

    fn apply_migrations(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
    ) -> Result<ApplyReport> {
        self.apply_in_one_transaction(db, migrations, ledger_table)
    }

    fn preflight_write(&self, db: &DatabaseRef) -> Result<()> {
        self.preflight_files(db)
    }

    fn snapshot(&self, db: &DatabaseRef, label: &str) -> Result<SnapshotRef> {
        self.snapshot_file(db, label)
    }

    fn restore(&self, db: &DatabaseRef, snapshot: &SnapshotRef) -> Result<()> {
        self.restore_file(db, snapshot)
    }

    fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        self.delete_snapshot_file(snapshot)
    }

    fn size_bytes(&self, db: &DatabaseRef) -> Result<u64> {
        let path = self.path(db)?;
        if !path.is_file() {
            return Err(BackendError::NotFound(db.id.clone()));
        }
        Ok(file_size(&path))
    }

    fn schema(&self, db: &DatabaseRef, ledger_table: &str) -> Result<Schema> {
        let conn = self.open(db)?;
        schema::read_schema(&conn, ledger_table).map_err(|e| BackendError::Sql {
            context: self.describe(db),
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

    fn row_counts(&self, db: &DatabaseRef, ledger_table: &str) -> Result<BTreeMap<String, u64>> {
        let conn = self.open(db)?;
        schema::table_row_counts(&conn, ledger_table).map_err(|e| BackendError::Sql {
            context: self.describe(db),
            message: e.to_string(),
        })
    }

    fn foreign_key_check(&self, db: &DatabaseRef) -> Result<Vec<FkViolation>> {
        fk_check(&self.open(db)?, None)
    }

    fn loss_since(
        &self,
        db: &DatabaseRef,
        snapshot: &SnapshotRef,
        ledger_table: &str,
    ) -> Result<super::LossReport> {
        let current = self.path(db)?;
        let Some(location) = &snapshot.location else {
            // The recovery point is "no database": everything now in it would go.
            let conn = self.open(db)?;
            let counts = schema::table_row_counts(&conn, ledger_table)
                .map_err(|e| BackendError::Other(e.to_string()))?;
            return Ok(super::LossReport {
                tables: counts
                    .into_iter()
                    .map(|(table, n)| super::TableLoss {
                        table,
                        inserted: n,
                        updated: None,
                        deleted: 0,
                        note: Some(
                            "the recovery point has no database; the restore removes it".into(),
                        ),
                    })
                    .collect(),
            });
        };
        let snap = self.snapshot_path(location)?;
        if !snap.is_file() {
            return Err(BackendError::NotFound(format!("snapshot {location}")));
        }
        super::local_loss::loss_report(&current, &snap, ledger_table)
    }

    fn table_sizes(&self, db: &DatabaseRef) -> Result<BTreeMap<String, u64>> {
        let conn = self.open(db)?;
        let mut stmt = conn
            .prepare(
                "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat AS d \
                 LEFT JOIN sqlite_schema AS m ON m.name = d.name GROUP BY 1",
            )
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        Ok(rows
            .into_iter()
            .map(|(t, b)| (t, b.max(0) as u64))
            .collect())
    }

    fn query(
        &self,
        db: &DatabaseRef,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<QueryResult> {
        run_query(&self.open(db)?, sql, params)
    }

    fn execute(
        &self,
        db: &DatabaseRef,
        batch: &[super::ExecStatement],
        opts: super::ExecOptions,
    ) -> Result<super::BatchOutcome> {
        let mut session = super::LocalSession::new(self.open(db)?, self.statement_timeout)
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        Ok(session.execute(batch, opts))
    }

    fn run_probe(&self, db: &DatabaseRef, probe: &ProbeSpec) -> Result<ProbeRun> {
        let mut conn = self.open(db)?;
        let clock = StatementClock::install(&mut conn, self.statement_timeout)
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let run = probe_on(&conn, &clock, probe);
        if !conn.is_autocommit() {
            // A write probe's outer transaction: nothing a probe did is ever committed.
            let _ = conn.execute_batch("ROLLBACK");
        }
        Ok(run)
    }
}

#[cfg(test)]
mod environment_tests {
    use super::local_apply::{Stop, stop};
    use super::*;
    use crate::backend::{ApplyFailure, Obstacle};

    fn failure(e: &rusqlite::Error) -> Box<ApplyFailure> {
        Box::new(ApplyFailure {
            migration: Some("0003_rewrite.sql".into()),
            path: Some("migrations/0003_rewrite.sql".into()),
            line: Some(1),
            statement: None,
            error: sqlite_message(e),
            fk_violations: Vec::new(),
        })
    }

    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("production.sqlite");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)"))
            .expect("create");
        (dir, path)
    }

    #[test]
    fn readonly_is_an_obstacle_not_a_migration_failure() {
        let (_dir, path) = database();
        let ro = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
        let Err(e) = ro.execute_batch("INSERT INTO t VALUES (1)") else {
            panic!("a read-only connection wrote");
        };
        assert_eq!(obstacle_of(&e), Some(Obstacle::ReadOnly));
        let sentence = environment_error(&path, Obstacle::ReadOnly, &e, None).to_string();
        assert!(sentence.starts_with("production ("), "{sentence}");
        assert!(sentence.contains("SQLITE_READONLY"), "{sentence}");
        assert!(matches!(
            stop(e, failure),
            Stop::Obstacle(Obstacle::ReadOnly, _)
        ));
    }

    #[test]
    fn busy_is_an_obstacle_and_a_constraint_is_the_migration() {
        let (_dir, path) = database();
        let holder = Connection::open(&path).expect("open");
        holder.execute_batch("BEGIN IMMEDIATE").expect("hold");
        let writer = Connection::open(&path).expect("open");
        writer.busy_timeout(Duration::ZERO).expect("no wait");
        let Err(e) = writer.execute_batch("BEGIN IMMEDIATE") else {
            panic!("two writers at once");
        };
        assert_eq!(obstacle_of(&e), Some(Obstacle::Locked));
        let sentence = environment_error(&path, Obstacle::Locked, &e, None).to_string();
        // The holder is this very process, which is never named as its own obstacle.
        assert!(
            sentence.contains("is locked by another connection"),
            "{sentence}"
        );
        holder
            .execute_batch("INSERT INTO t VALUES (1)")
            .expect("insert");
        let Err(dup) = holder.execute_batch("INSERT INTO t VALUES (1)") else {
            panic!("duplicate accepted");
        };
        assert_eq!(obstacle_of(&dup), None);
        assert!(matches!(stop(dup, failure), Stop::Failed(_)));
    }
}
