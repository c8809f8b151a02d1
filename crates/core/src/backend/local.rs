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
use super::space;
use super::space::human as human_bytes;
use super::{
    ApplyFailure, ApplyReport, Backend, BackendError, DatabaseRef, FkViolation, LedgerRow,
    Obstacle, PlanStep, ProbeRun, ProbeSpec, QueryResult, Result, SnapshotRef,
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
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let tmp = to.with_extension("sqlite.tmp");
        let _ = std::fs::remove_file(&tmp);
        let copied = copy_into(from, &tmp, durable)
            .and_then(|()| std::fs::rename(&tmp, to).map_err(|e| io_error(to, e)));
        if copied.is_err() {
            // A full disk or a read-only folder must not leave a half copy behind.
            let _ = std::fs::remove_file(&tmp);
        }
        copied?;
        Ok(file_size(to))
    }

    /// Refuses when `folder` lacks `needed` bytes for `what` (see [`space::shortfall`]).
    fn ensure_room(&self, folder: &Path, needed: u64, what: &str) -> Result<()> {
        match space::shortfall(folder, needed, what) {
            Some(sentence) => Err(BackendError::Environment {
                obstacle: Obstacle::NoSpace,
                sentence,
            }),
            None => Ok(()),
        }
    }
}

/// Fills `tmp` with a consistent copy of the database at `from`.
fn copy_into(from: &Path, tmp: &Path, durable: bool) -> Result<()> {
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
        copy_with_backup_api(&src, from, tmp)?;
    } else {
        // Rollback journal: while we hold a read transaction (SHARED lock) no writer can
        // change the database file, so the file itself is a consistent copy — the same
        // guarantee the backup API gives, at the speed of an in-kernel file copy.
        src.execute_batch("BEGIN")
            .and_then(|()| src.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
            .map_err(sql(from))?;
        let copied = std::fs::copy(from, tmp);
        let _ = src.execute_batch("COMMIT");
        if let Err(e) = copied {
            let _ = std::fs::remove_file(tmp);
            if io_obstacle(&e).is_some() {
                // A full disk or a read-only folder stops the backup API the same way.
                return Err(io_error(tmp, e));
            }
            copy_with_backup_api(&src, from, tmp)?;
        }
    }
    if durable {
        std::fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(tmp, e))?;
    }
    Ok(())
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
    move |e| match obstacle_of(&e) {
        Some(obstacle) => environment_error(path, obstacle, &e, None),
        None => map_sql_error(&path.display().to_string(), e),
    }
}

/// The obstacle an SQLite error reports when the machine, not the SQL, stopped it: another
/// connection's lock, a read-only file or folder (the journal cannot be created), a full
/// disk, an I/O error.
fn obstacle_of(e: &rusqlite::Error) -> Option<Obstacle> {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code()? {
        C::DatabaseBusy | C::DatabaseLocked => Some(Obstacle::Locked),
        C::ReadOnly | C::CannotOpen | C::PermissionDenied => Some(Obstacle::ReadOnly),
        C::DiskFull => Some(Obstacle::NoSpace),
        C::SystemIoFailure => Some(Obstacle::Io),
        _ => None,
    }
}

/// How a database file is named in a sentence: "production (/w/.d1ops/db/production.sqlite)".
fn shown_db(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_suffix(".sqlite").unwrap_or(&name);
    format!("{name} ({})", path.display())
}

/// " (N free on MOUNT)" for the folder holding `path`, when it can be measured.
fn free_note(path: &Path) -> String {
    let folder = path.parent().unwrap_or(Path::new("."));
    match space::room(folder) {
        Ok(r) => format!(
            "{} free on {}{}",
            human_bytes(r.free),
            r.mount.display(),
            space::folder_note(&r.mount, folder)
        ),
        Err(_) => "free space unknown".into(),
    }
}

/// The sentence for an SQLite error caused by the environment while working on the database
/// at `path`. `free_before`: the bytes free before a write that then filled the disk.
fn environment_error(
    path: &Path,
    obstacle: Obstacle,
    e: &rusqlite::Error,
    free_before: Option<u64>,
) -> BackendError {
    let shown = shown_db(path);
    let cause = sqlite_message(e);
    let sentence = match obstacle {
        Obstacle::Locked => format!(
            "{} (SQLite: {cause}, still busy after {} s)",
            space::locked_sentence(&shown, path),
            BUSY_TIMEOUT.as_secs()
        ),
        Obstacle::ReadOnly => match space::unwritable_sentence(&shown, path) {
            Some(s) => format!("{s} (SQLite: {cause})"),
            None => format!(
                "{shown} cannot be written, or its journal cannot be created next to it (SQLite: {cause})"
            ),
        },
        Obstacle::NoSpace => {
            let folder = path.parent().unwrap_or(Path::new("."));
            let room = space::room(folder).ok();
            let on = room.as_ref().map_or_else(String::new, |r| {
                format!(
                    " on {}{}",
                    r.mount.display(),
                    space::folder_note(&r.mount, folder)
                )
            });
            match free_before.or(room.map(|r| r.free)) {
                Some(free) => format!(
                    "the disk is full: writing {shown} needs more than the {} free{on} (SQLite: {cause})",
                    human_bytes(free)
                ),
                None => format!(
                    "the disk is full: writing {shown} needs more space than is free (SQLite: {cause})"
                ),
            }
        }
        Obstacle::Io => format!(
            "I/O error on {shown}: the disk failed a read or write, {} (SQLite: {cause})",
            free_note(path)
        ),
    };
    BackendError::Environment { obstacle, sentence }
}

/// The obstacle behind a file-system error, when it is one (a full disk, a read-only path).
fn io_obstacle(e: &std::io::Error) -> Option<Obstacle> {
    match e.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some(Obstacle::NoSpace),
        libc::EROFS | libc::EACCES | libc::EPERM => Some(Obstacle::ReadOnly),
        _ => None,
    }
}

/// A file-system error on `path`: a sentence naming the obstacle, or a plain I/O error.
fn io_error(path: &Path, source: std::io::Error) -> BackendError {
    match io_obstacle(&source) {
        Some(Obstacle::NoSpace) => BackendError::Environment {
            obstacle: Obstacle::NoSpace,
            sentence: format!(
                "the disk is full: writing {} failed, {} ({source})",
                path.display(),
                free_note(path)
            ),
        },
        Some(obstacle) => {
            let (target, folder) = if path.exists() {
                (path, path.is_dir())
            } else {
                (path.parent().unwrap_or(Path::new(".")), true)
            };
            let why =
                space::not_writable(target, folder).unwrap_or_else(|| "cannot be written".into());
            BackendError::Environment {
                obstacle,
                sentence: format!(
                    "{} {} {why}, so {} cannot be written ({source})",
                    if folder { "the folder" } else { "the file" },
                    target.display(),
                    path.display()
                ),
            }
        }
        None => BackendError::Io {
            what: path.display().to_string(),
            source,
        },
    }
}

/// Bytes of a database with its `-wal` (what a copy of it holds at most).
fn source_bytes(path: &Path) -> u64 {
    file_size(path).saturating_add(file_size(&path.with_extension("sqlite-wal")))
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
        // SQLite's own names for the codes the environment causes.
        _ => match err.code {
            rusqlite::ErrorCode::DatabaseBusy => "SQLITE_BUSY".into(),
            rusqlite::ErrorCode::DatabaseLocked => "SQLITE_LOCKED".into(),
            rusqlite::ErrorCode::ReadOnly => "SQLITE_READONLY".into(),
            rusqlite::ErrorCode::DiskFull => "SQLITE_FULL".into(),
            rusqlite::ErrorCode::CannotOpen => "SQLITE_CANTOPEN".into(),
            rusqlite::ErrorCode::PermissionDenied => "SQLITE_PERM".into(),
            rusqlite::ErrorCode::SystemIoFailure => {
                format!("SQLITE_IOERR, extended code {}", err.extended_code)
            }
            _ => format!("SQLITE_{:?}", err.code).to_uppercase(),
        },
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

/// Why an apply stopped: the SQL (a migration's failure, with its location), or the machine
/// (another connection's lock, a read-only path, a full disk), which is no migration's fault.
enum Stop {
    Failed(Box<ApplyFailure>),
    Obstacle(Obstacle, rusqlite::Error),
}

impl From<Box<ApplyFailure>> for Stop {
    fn from(f: Box<ApplyFailure>) -> Stop {
        Stop::Failed(f)
    }
}

/// An SQLite error during an apply: an obstacle of the environment, else `failure`.
fn stop(e: rusqlite::Error, failure: impl FnOnce(&rusqlite::Error) -> Box<ApplyFailure>) -> Stop {
    match obstacle_of(&e) {
        Some(obstacle) => Stop::Obstacle(obstacle, e),
        None => Stop::Failed(failure(&e)),
    }
}

fn apply_in_transaction(
    conn: &Connection,
    sandbox: &Sandbox,
    clock: &StatementClock,
    migrations: &[Migration],
    ledger_table: &str,
) -> std::result::Result<(usize, Vec<super::StatementTiming>), Stop> {
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
        .map_err(|e| stop(e, |e| fail(None, None, None, sqlite_message(e))))?;
    (sandbox.trusted(|| conn.execute_batch(&ledger_ddl(ledger_table)))).map_err(|e| {
        stop(e, |e| {
            fail(
                None,
                None,
                None,
                format!("creating the ledger table: {}", sqlite_message(e)),
            )
        })
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
            conn.execute_batch(&st.sql).map_err(|e| {
                stop(e, |e| {
                    fail(Some(m), Some(st.line), Some(&st.sql), clock.explain(e))
                })
            })?;
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
            stop(e, |e| {
                fail(
                    Some(m),
                    None,
                    None,
                    format!(
                        "recording {} in {ledger_table}: {}",
                        m.name,
                        sqlite_message(e)
                    ),
                )
            })
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
        return Err(Stop::Failed(f));
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
        let size = source_bytes(&src);
        self.ensure_room(
            &self.db_dir,
            space::copy_needs(size),
            &format!("the copy of {} ({}) for {name}", from.id, human_bytes(size)),
        )?;
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
        let path = self.path(db)?;
        // The journal and the file's growth need room; a disk too full to start is refused
        // before anything is written, and one that fills up during the apply is reported as
        // the full disk it is, never as a migration's failure.
        let size = source_bytes(&path);
        self.ensure_room(
            &self.db_dir,
            space::apply_needs(size),
            &format!(
                "applying migrations to {} ({})",
                shown_db(&path),
                human_bytes(size)
            ),
        )?;
        let free_before = space::room(&self.db_dir).ok().map(|r| r.free);
        let clock = StatementClock::install(&mut conn, self.statement_timeout)
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let started = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql(&path))?;
        let outcome = apply_in_transaction(&conn, &sandbox, &clock, migrations, ledger_table);
        let outcome = match outcome {
            Ok(statements) => conn
                .execute_batch("COMMIT")
                .map(|()| statements)
                .map_err(|e| {
                    stop(e, |e| {
                        Box::new(ApplyFailure {
                            migration: None,
                            path: None,
                            line: None,
                            statement: None,
                            error: commit_error(e),
                            fk_violations: Vec::new(),
                        })
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
            Err(stopped) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(match stopped {
                    Stop::Failed(failure) => BackendError::Apply(failure),
                    Stop::Obstacle(obstacle, e) => {
                        environment_error(&path, obstacle, &e, free_before)
                    }
                })
            }
        }
    }

    fn preflight_write(&self, db: &DatabaseRef) -> Result<()> {
        let path = self.path(db)?;
        if !path.is_file() {
            return Ok(());
        }
        let read_only = |sentence: String| BackendError::Environment {
            obstacle: Obstacle::ReadOnly,
            sentence,
        };
        if let Some(s) = space::unwritable_sentence(&shown_db(&path), &path) {
            return Err(read_only(s));
        }
        if self.snapshot_dir.is_dir()
            && let Some(why) = space::not_writable(&self.snapshot_dir, true)
        {
            return Err(read_only(format!(
                "the recovery-point folder {} {why}, so no recovery point of {} can be taken",
                self.snapshot_dir.display(),
                db.id
            )));
        }
        // A recovery point (a copy) and then the apply's journal and growth.
        let size = source_bytes(&path);
        let what = format!(
            "a recovery point of {} ({}) and the apply",
            db.id,
            human_bytes(size)
        );
        if space::mount_point(&self.snapshot_dir) == space::mount_point(&self.db_dir) {
            let needed = space::copy_needs(size).saturating_add(size / 10);
            self.ensure_room(&self.db_dir, needed, &what)
        } else {
            self.ensure_room(&self.snapshot_dir, space::copy_needs(size), &what)?;
            self.ensure_room(&self.db_dir, space::apply_needs(size), &what)
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
        let size = source_bytes(&src);
        self.ensure_room(
            &self.snapshot_dir,
            space::copy_needs(size),
            &format!("a recovery point of {} ({})", db.id, human_bytes(size)),
        )?;
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

    fn repair_ledger(
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
    use super::*;

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
