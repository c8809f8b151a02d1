//! The embedded backend: each database is a SQLite file under `.d1ops/db/`, snapshots are
//! files under `.d1ops/snapshots/`. Connections behave like D1's: foreign keys are enforced on
//! every connection. Copies use SQLite's online backup API, never a raw file copy, so a copy
//! of a database in use is still consistent.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, types::ValueRef};

use super::sandbox::{self as guard, Sandbox};
use super::{
    ApplyFailure, ApplyReport, Backend, BackendError, DatabaseRef, FkViolation, LedgerRow,
    PlanStep, ProbeRun, ProbeSpec, QueryResult, Result, SnapshotRef,
};
use crate::schema::{self, Schema};
use crate::workspace::Migration;

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

    /// Copies a database with the online backup API into `to` (via a temporary file renamed into
    /// place). `durable` fsyncs the copy first: recovery points need it, previews do not.
    fn copy(&self, from: &Path, to: &Path, durable: bool) -> Result<u64> {
        let io = |what: String| move |source| BackendError::Io { what, source };
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        let tmp = to.with_extension("sqlite.tmp");
        let _ = std::fs::remove_file(&tmp);
        // Opened read-write so that SQLite rolls back a hot journal a crashed writer left.
        let src = open_path(
            from,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mode: String = src
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sql(from))?;
        if mode.eq_ignore_ascii_case("wal") {
            // WAL: committed pages may live in the -wal file; only the backup API sees them.
            copy_with_backup_api(&src, from, &tmp)?;
        } else {
            // Rollback journal: while we hold a read transaction (SHARED lock) no writer can
            // change the database file, so the file itself is a consistent copy — the same
            // guarantee the backup API gives, at the speed of an in-kernel file copy.
            src.execute_batch("BEGIN")
                .and_then(|()| src.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
                .map_err(sql(from))?;
            let copied = std::fs::copy(from, &tmp);
            let _ = src.execute_batch("COMMIT");
            if copied.is_err() {
                let _ = std::fs::remove_file(&tmp);
                copy_with_backup_api(&src, from, &tmp)?;
            }
        }
        if durable {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io(tmp.display().to_string()))?;
        }
        std::fs::rename(&tmp, to).map_err(io(to.display().to_string()))?;
        Ok(file_size(to))
    }
}

/// A fresh database at `tmp` filled from `src` with SQLite's online backup API.
fn copy_with_backup_api(src: &Connection, from: &Path, tmp: &Path) -> Result<()> {
    let mut dst = open_path(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The copy is private until renamed into place: no journal, no fsync per page.
    dst.pragma_update(None, "journal_mode", "OFF")
        .map_err(sql(tmp))?;
    dst.pragma_update(None, "synchronous", "OFF")
        .map_err(sql(tmp))?;
    backup_all(src, &mut dst, from)?;
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql(tmp))?;
    Ok(())
}

/// Copies every page from `src` into `dst` with the online backup API, waiting out busy
/// writers instead of failing.
fn backup_all(src: &Connection, dst: &mut Connection, shown: &Path) -> Result<()> {
    let backup = Backup::new(src, dst).map_err(sql(shown))?;
    let started = Instant::now();
    loop {
        match backup.step(-1).map_err(sql(shown))? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if started.elapsed() > BUSY_TIMEOUT {
                    return Err(BackendError::Locked {
                        db: shown.display().to_string(),
                        seconds: BUSY_TIMEOUT.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {}
        }
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
    move |e| map_sql_error(&path.display().to_string(), e)
}

fn map_sql_error(context: &str, e: rusqlite::Error) -> BackendError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            BackendError::Locked {
                db: context.to_string(),
                seconds: BUSY_TIMEOUT.as_secs(),
            }
        }
        _ => BackendError::Sql {
            context: context.to_string(),
            message: sqlite_message(&e),
        },
    }
}

/// SQLite's own message, without rusqlite's wrapping.
pub fn sqlite_message(e: &rusqlite::Error) -> String {
    if let Some(reason) = guard::refusal_of(e) {
        return format!("refused: {reason} (SQLITE_AUTH)");
    }
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg)) => {
            format!("{msg} ({})", sqlite_code_name(err))
        }
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

fn sqlite_code_name(err: &rusqlite::ffi::Error) -> String {
    // The extended code says most (D1 reports the same names).
    match err.extended_code {
        2067 => "SQLITE_CONSTRAINT_UNIQUE".into(),
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY".into(),
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY".into(),
        1299 => "SQLITE_CONSTRAINT_NOTNULL".into(),
        275 => "SQLITE_CONSTRAINT_CHECK".into(),
        1 => "SQLITE_ERROR".into(),
        _ => format!("SQLITE_{:?}", err.code).to_uppercase(),
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

/// Explains a failed COMMIT. With foreign_key_check clean, a FOREIGN KEY failure here is the
/// deferred-violation counter left by DROP TABLE on a parent during a table rebuild.
fn commit_error(e: &rusqlite::Error) -> String {
    let msg = sqlite_message(e);
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
        && msg.contains("FOREIGN KEY")
    {
        format!(
            "commit failed: {msg}; deferred foreign-key violations remain (typically DROP TABLE of a parent in a table rebuild: its implicit DELETE counts violations that renaming the new table does not clear); use ALTER TABLE ... DROP/RENAME COLUMN instead of a rebuild"
        )
    } else {
        format!("commit failed: {msg}")
    }
}

/// Statements that would end or nest our transaction; D1 rejects them too.
fn transaction_control(sql: &str) -> bool {
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
}

/// wrangler's ledger DDL, verbatim apart from the table name.
pub fn ledger_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(\n\tid INTEGER PRIMARY KEY AUTOINCREMENT,\n\tname TEXT UNIQUE,\n\tapplied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n)",
        schema::quote_ident(table)
    )
}

/// Interrupts any statement that runs longer than a limit (via SQLite's progress handler).
struct StatementClock {
    base: Instant,
    started_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limit: Duration,
}

impl StatementClock {
    fn install(conn: &mut Connection, limit: Duration) -> rusqlite::Result<StatementClock> {
        let base = Instant::now();
        let started_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = started_ms.clone();
        let limit_ms = limit.as_millis() as u64;
        conn.progress_handler(
            20_000,
            Some(move || {
                let now = base.elapsed().as_millis() as u64;
                now.saturating_sub(started.load(std::sync::atomic::Ordering::Relaxed)) > limit_ms
            }),
        )?;
        Ok(StatementClock {
            base,
            started_ms,
            limit,
        })
    }

    fn start(&self) {
        self.started_ms.store(
            self.base.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn explain(&self, e: &rusqlite::Error) -> String {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) {
            format!(
                "statement ran longer than {} s and was stopped (D1 stops queries after 30 s; see statement_timeout in d1ops.toml)",
                self.limit.as_secs()
            )
        } else {
            sqlite_message(e)
        }
    }
}

fn apply_in_transaction(
    conn: &Connection,
    sandbox: &Sandbox,
    clock: &StatementClock,
    migrations: &[Migration],
    ledger_table: &str,
) -> std::result::Result<(usize, Vec<super::StatementTiming>), Box<ApplyFailure>> {
    let fail = |m: Option<&Migration>, line: Option<usize>, stmt: Option<&str>, error: String| {
        Box::new(ApplyFailure {
            migration: m.map(|m| m.name.clone()),
            path: m.map(|m| m.path.clone()),
            line,
            statement: stmt.map(str::to_string),
            error,
            fk_violations: Vec::new(),
        })
    };
    conn.execute_batch("PRAGMA defer_foreign_keys = ON")
        .map_err(|e| fail(None, None, None, sqlite_message(&e)))?;
    (sandbox.trusted(|| conn.execute_batch(&ledger_ddl(ledger_table)))).map_err(|e| {
        fail(
            None,
            None,
            None,
            format!("creating the ledger table: {}", sqlite_message(&e)),
        )
    })?;
    let insert = format!(
        "INSERT INTO {}(name) VALUES (?1)",
        schema::quote_ident(ledger_table)
    );
    let schema_before = schema::read_schema(conn, ledger_table)
        .map_err(|e| fail(None, None, None, format!("reading the schema: {e}")))?;
    let mut statements = 0usize;
    let mut slow = Vec::new();
    for (i, m) in migrations.iter().enumerate() {
        for st in &m.statements {
            clock.start();
            let started = Instant::now();
            conn.execute_batch(&st.sql)
                .map_err(|e| fail(Some(m), Some(st.line), Some(&st.sql), clock.explain(&e)))?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if ms >= super::SLOW_STATEMENT_MS {
                slow.push(super::StatementTiming {
                    migration: m.name.clone(),
                    path: m.path.clone(),
                    line: st.line,
                    ms,
                });
            }
            statements += 1;
        }
        (sandbox.trusted(|| conn.execute(&insert, [&m.name]))).map_err(|e| {
            fail(
                Some(m),
                None,
                None,
                format!(
                    "recording {} in {ledger_table}: {}",
                    m.name,
                    sqlite_message(&e)
                ),
            )
        })?;
        if i == 0 {
            crate::fault::point("apply.after_first_migration");
        }
    }
    let schema_after = schema::read_schema(conn, ledger_table)
        .map_err(|e| fail(None, None, None, format!("reading the schema: {e}")))?;
    let violations = if deferred_fk_violations(conn) {
        // Something this transaction did left violations: find every row, to report them.
        fk_check(conn, None)
    } else {
        // Statement-level enforcement saw no violation; what it cannot see is a table whose
        // definition changed (new constraints over old rows), so check exactly those tables.
        touched_tables(&schema_before, &schema_after)
            .iter()
            .try_fold(Vec::new(), |mut all, t| {
                all.extend(fk_check(conn, Some(t))?);
                Ok(all)
            })
    }
    .map_err(|e: BackendError| fail(None, None, None, e.to_string()))?;
    if !violations.is_empty() {
        let first = &violations[0];
        let mut f = fail(
            None,
            None,
            None,
            format!(
                "foreign_key_check found {} violation(s), first: {} row {} references missing {}",
                violations.len(),
                first.table,
                first.rowid.map_or("?".into(), |r| r.to_string()),
                first.parent
            ),
        );
        f.fk_violations = violations;
        return Err(f);
    }
    crate::fault::point("apply.before_commit");
    Ok((statements, slow))
}

/// Whether the open transaction holds unresolved deferred foreign-key violations (SQLite's
/// own counter; unknown counts as yes).
fn deferred_fk_violations(conn: &Connection) -> bool {
    let (mut current, mut high) = (0, 0);
    // SAFETY: the handle is valid while `conn` lives; sqlite3_db_status only writes the two
    // integers we pass.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
            &mut current,
            &mut high,
            0,
        )
    };
    rc != rusqlite::ffi::SQLITE_OK || current > 0
}

/// Tables whose definition changed (or that are new), plus the tables whose foreign keys
/// point at them.
fn touched_tables(before: &Schema, after: &Schema) -> Vec<String> {
    let changed: std::collections::BTreeSet<&str> = after
        .tables
        .values()
        .filter(|t| before.tables.get(&t.name).is_none_or(|b| b.sql != t.sql))
        .map(|t| t.name.as_str())
        .collect();
    after
        .tables
        .values()
        .filter(|t| {
            changed.contains(t.name.as_str())
                || t.foreign_keys.iter().any(|fk| {
                    changed.iter().any(|c| c.eq_ignore_ascii_case(&fk.table))
                        || !after
                            .tables
                            .keys()
                            .any(|k| k.eq_ignore_ascii_case(&fk.table))
                })
        })
        .map(|t| t.name.clone())
        .collect()
}

/// `PRAGMA foreign_key_check`, for one table or all of them.
fn fk_check(conn: &Connection, table: Option<&str>) -> Result<Vec<FkViolation>> {
    let sql = match table {
        Some(t) => format!("PRAGMA foreign_key_check({})", schema::quote_ident(t)),
        None => "PRAGMA foreign_key_check".to_string(),
    };
    let mut stmt = conn
        .prepare(&sql)
        .map_err(|e| map_sql_error("foreign_key_check", e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(FkViolation {
                table: r.get(0)?,
                rowid: r.get(1)?,
                parent: r.get(2)?,
                fk_index: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| map_sql_error("foreign_key_check", e))?;
    Ok(rows)
}

fn json_param(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .unwrap_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

fn json_value(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
    }
}

/// Runs one statement on an open connection and collects its rows.
pub fn run_query(
    conn: &Connection,
    sql: &str,
    params: &[serde_json::Value],
) -> Result<QueryResult> {
    let started = Instant::now();
    let mut stmt = conn.prepare(sql).map_err(|e| map_sql_error("query", e))?;
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let values: Vec<rusqlite::types::Value> = params.iter().map(json_param).collect();
    let mut rows_out = Vec::new();
    {
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values.iter()))
            .map_err(|e| map_sql_error("query", e))?;
        while let Some(row) = rows.next().map_err(|e| map_sql_error("query", e))? {
            let mut out = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                out.push(json_value(
                    row.get_ref(i).map_err(|e| map_sql_error("query", e))?,
                ));
            }
            rows_out.push(out);
        }
    }
    Ok(QueryResult {
        columns,
        rows: rows_out,
        changes: conn.changes(),
        last_row_id: conn.last_insert_rowid(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// `EXPLAIN QUERY PLAN` of one statement, as (id, parent, detail) rows.
fn explain_plan(
    conn: &Connection,
    sql: &str,
    values: &[rusqlite::types::Value],
) -> rusqlite::Result<Vec<PlanStep>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    // A statement with fewer placeholders than parameters fails the run below, not here.
    let bound = values.len().min(stmt.parameter_count());
    let rows = stmt.query_map(rusqlite::params_from_iter(&values[..bound]), |r| {
        Ok(PlanStep {
            id: r.get(0)?,
            parent: r.get(1)?,
            detail: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Executes a prepared statement once, stepping every row; returns the row count.
fn step_all(
    stmt: &mut rusqlite::Statement<'_>,
    values: &[rusqlite::types::Value],
) -> rusqlite::Result<u64> {
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Times one probe execution by the time the thread spent on a CPU running it (user and
/// system), so a run that waits for a CPU on a busy machine is not charged for the wait —
/// like D1's `meta.duration`, the statement's own time. Falls back to wall-clock time where
/// the thread clock is unavailable.
struct RunClock {
    cpu: Option<f64>,
    wall: Instant,
}

impl RunClock {
    fn start() -> RunClock {
        RunClock {
            cpu: thread_cpu_ms(),
            wall: Instant::now(),
        }
    }

    fn ms(&self) -> f64 {
        match (self.cpu, thread_cpu_ms()) {
            (Some(a), Some(b)) if b >= a => b - a,
            _ => self.wall.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

/// The calling thread's CPU time in milliseconds.
#[cfg(unix)]
fn thread_cpu_ms() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6)
}

#[cfg(not(unix))]
fn thread_cpu_ms() -> Option<f64> {
    None
}

/// A probe on an open connection (see [`Backend::run_probe`]).
fn probe_on(conn: &Connection, clock: &StatementClock, probe: &ProbeSpec) -> ProbeRun {
    let values: Vec<rusqlite::types::Value> = probe.params.iter().map(json_param).collect();
    let mut out = ProbeRun::default();
    clock.start();
    match explain_plan(conn, &probe.sql, &values) {
        Ok(plan) => out.plan = plan,
        Err(e) => {
            out.error = Some(clock.explain(&e));
            return out;
        }
    }
    let mut stmt = match conn.prepare(&probe.sql) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(clock.explain(&e));
            return out;
        }
    };
    if !probe.write && !stmt.readonly() {
        out.error = Some(
            "the statement writes but the probe is kind = \"read\"; declare kind = \"write\" so it runs in a rolled-back savepoint".into(),
        );
        return out;
    }
    // One outer transaction for all runs: each run's savepoint is nested in it, so no run
    // commits (or syncs a journal), and the final ROLLBACK drops anything left.
    if probe.write
        && let Err(e) = conn.execute_batch("BEGIN")
    {
        out.error = Some(sqlite_message(&e));
        return out;
    }
    let started = Instant::now();
    // Run 0 warms the connection's page cache and is not timed (a new connection's first
    // run measures page faults, not the query); its rows and changes are the ones reported.
    for i in 0..=probe.runs.max(1) {
        if i > 1 && started.elapsed().as_secs_f64() * 1000.0 > probe.time_budget_ms {
            break;
        }
        if probe.write
            && let Err(e) = conn.execute_batch("SAVEPOINT d1ops_probe")
        {
            out.error = Some(sqlite_message(&e));
            break;
        }
        clock.start();
        let run = RunClock::start();
        let result = step_all(&mut stmt, &values);
        let ms = run.ms();
        let changes = conn.changes();
        if probe.write
            && let Err(e) = conn.execute_batch("ROLLBACK TO d1ops_probe; RELEASE d1ops_probe")
        {
            out.error = Some(format!("rolling back the probe: {}", sqlite_message(&e)));
            break;
        }
        match result {
            Ok(rows) if i == 0 => {
                out.rows = Some(rows);
                out.changes = probe.write.then_some(changes);
            }
            Ok(_) => out.timings_ms.push(ms),
            Err(e) => {
                out.error = Some(clock.explain(&e));
                break;
            }
        }
    }
    out
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
        let src = self.path(from)?;
        if !src.is_file() {
            return Err(BackendError::NotFound(from.id.clone()));
        }
        let to = DatabaseRef::new(name);
        let dst = self.path(&to)?;
        if dst.exists() {
            return Err(BackendError::Exists(name.to_string()));
        }
        self.copy(&src, &dst, false)?;
        Ok(to)
    }

    fn apply_migrations(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
    ) -> Result<ApplyReport> {
        for m in migrations {
            if let Some(st) = m.statements.iter().find(|s| transaction_control(&s.sql)) {
                return Err(BackendError::Apply(Box::new(ApplyFailure {
                    migration: Some(m.name.clone()),
                    path: Some(m.path.clone()),
                    line: Some(st.line),
                    statement: Some(st.sql.clone()),
                    error: "transaction control statements (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) are not allowed in a migration; d1ops (and D1) already run it in one transaction".into(),
                    fk_violations: Vec::new(),
                })));
            }
        }
        let (mut conn, sandbox) = self.open_guarded(db)?;
        let clock = StatementClock::install(&mut conn, self.statement_timeout)
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let started = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let outcome = apply_in_transaction(&conn, &sandbox, &clock, migrations, ledger_table);
        let outcome = match outcome {
            Ok(statements) => conn
                .execute_batch("COMMIT")
                .map(|()| statements)
                .map_err(|e| {
                    Box::new(ApplyFailure {
                        migration: None,
                        path: None,
                        line: None,
                        statement: None,
                        error: commit_error(&e),
                        fk_violations: Vec::new(),
                    })
                }),
            Err(f) => Err(f),
        };
        match outcome {
            Ok((statements, slow_statements)) => Ok(ApplyReport {
                migrations: migrations.len(),
                statements,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                slow_statements,
                transactions: 1,
            }),
            Err(failure) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(BackendError::Apply(failure))
            }
        }
    }

    fn snapshot(&self, db: &DatabaseRef, label: &str) -> Result<SnapshotRef> {
        let src = self.path(db)?;
        if !src.is_file() {
            return Ok(SnapshotRef {
                location: None,
                size_bytes: 0,
            });
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
        let location = format!("{}-{label}-{stamp}.sqlite", db.id);
        let path = self.snapshot_path(&location)?;
        let size_bytes = self.copy(&src, &path, true)?;
        Ok(SnapshotRef {
            location: Some(location),
            size_bytes,
        })
    }

    fn restore(&self, db: &DatabaseRef, snapshot: &SnapshotRef) -> Result<()> {
        let Some(location) = &snapshot.location else {
            return self.delete_database(db);
        };
        let snap = self.snapshot_path(location)?;
        if !snap.is_file() {
            return Err(BackendError::NotFound(format!("snapshot {location}")));
        }
        let dst_path = self.path(db)?;
        if !dst_path.is_file() {
            self.copy(&snap, &dst_path, true)?;
            return Ok(());
        }
        let src = open_path(
            &snap,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut dst = self.open(db)?;
        // Backing up INTO the live file is one write transaction: readers see before or after.
        backup_all(&src, &mut dst, &snap)
    }

    fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        if let Some(location) = &snapshot.location {
            let path = self.snapshot_path(location)?;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(BackendError::Io {
                        what: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
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
