//! The embedded backend's D1-style executor: runs a batch on one connection the way D1's
//! `/query` does (items split on `;` into statements, more than one statement → one
//! transaction, any failure rolls the batch back) and measures D1's `meta` for every
//! statement. Batches that may write take turns on a per-database queue within the process
//! (see [`writer_queue`]). It knows nothing of environments, releases or metrics recording.
//!
//! # How `rows_read` and `rows_written` are measured
//!
//! D1 counts with a patched SQLite (libSQL's `ROWS_READ` / `ROWS_WRITTEN` statement
//! counters): a row is *read* each time a cursor lands on a table or index entry — every
//! `Rewind`/`Last`/`Seek*`/`SeekRowid`/`NotExists`/`Sort` that positions a cursor, every
//! `Next`/`Prev`/sorter step that lands on a row, and every entry a bare `count(*)` counts;
//! a row is *written* for every table row and index entry inserted, every row deleted.
//! Stock SQLite has no such counters, so d1ops adds up what it can observe:
//!
//! - **cursor steps, exact**: `sqlite3_stmt_status` of the statement after it ran —
//!   `SQLITE_STMTSTATUS_FULLSCAN_STEP` (full-scan steps), `SQLITE_STMTSTATUS_AUTOINDEX`
//!   (automatic-index steps) and counter slot 0, where SQLite tallies every other
//!   `Next`/`Prev`/`SorterNext` that landed on a row (index range scans, rowid ranges,
//!   sorters). Slot 0 is not a documented counter; the test
//!   `rows_read_follows_d1_on_the_common_shapes` pins its behaviour on the bundled SQLite.
//! - **cursor positionings, estimated from the bytecode** (`EXPLAIN`, cached per SQL text and
//!   schema version): each `Rewind`, `Last`, `SeekGE/GT/LE/LT`, `Sort`/`SorterSort` counts
//!   once; each `SeekRowid`/`NotExists` counts once in a read, and once per changed row in a
//!   write (where they run per row).
//! - **bare `count(*)`**: SQLite answers it from the b-tree (`OP_Count`) without stepping;
//!   D1 bills every entry, so the table's row count is added (one extra count, outside the
//!   timed duration).
//! - **rows written** = rows changed (the `sqlite3_total_changes` delta: triggers and
//!   foreign-key actions included) × (1 + index entries the statement inserts per row, from
//!   the `IdxInsert` ops on real indexes in its bytecode). Deletes count rows only, as D1
//!   does.
//!
//! Known gaps: a loop entered many times (the inner side of a join, a correlated subquery)
//! counts its positioning once, though its steps are exact; virtual tables (`json_each`,
//! FTS) read 0; `CREATE INDEX` writes 0.
use std::collections::{HashMap, HashSet};
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use d1ops_sql::splitter::batch_statements;
use rusqlite::Connection;

use super::exec::{
    BatchOutcome, ExecMeta, ExecOptions, ExecStatement, FailureKind, StatementFailure,
    StatementResult,
};
use super::local_exec_raw::{RawError, code_name, run_raw};
use super::sandbox;

/// Cached bytecode analyses kept per connection before the cache starts over.
const PROGRAM_CACHE: usize = 512;
/// VM instructions between two looks at the statement clock.
const CLOCK_OPS: c_int = 10_000;

/// One connection that runs batches and measures them. Keep one per thread; a pool of them
/// serves concurrent clients.
pub struct LocalSession {
    conn: Connection,
    programs: HashMap<String, (i64, Program)>,
    page_size: Option<u64>,
    clock: Clock,
    /// This database's writer queue (none for in-memory databases).
    writers: Option<Arc<Mutex<()>>>,
}

/// One writer queue per database file in this process. SQLite lets one connection write at a
/// time; connections that find the lock taken poll it with growing sleeps, and under steady
/// write load a poller can lose every race until its busy timeout expires. Batches that may
/// write queue here first, so writers of one process take turns instead (other processes
/// still meet SQLite's busy timeout).
fn writer_queue(path: &str) -> Arc<Mutex<()>> {
    static QUEUES: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut queues = QUEUES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    queues.entry(path.to_string()).or_default().clone()
}

/// Interrupts a statement that runs past its limit (D1 stops queries after 30 s).
struct Clock {
    base: Instant,
    /// Milliseconds since `base` after which the running statement is interrupted.
    deadline_ms: Arc<AtomicU64>,
    limit: Duration,
}

impl Clock {
    fn arm(&self) {
        let at = self.base.elapsed() + self.limit;
        self.deadline_ms
            .store(at.as_millis() as u64, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
    }
}

impl LocalSession {
    /// Wraps an open connection (see [`LocalBackend::open`](super::LocalBackend::open));
    /// statements running longer than `statement_timeout` are interrupted.
    pub fn new(mut conn: Connection, statement_timeout: Duration) -> rusqlite::Result<Self> {
        let base = Instant::now();
        let deadline_ms = Arc::new(AtomicU64::new(u64::MAX));
        let deadline = deadline_ms.clone();
        conn.progress_handler(
            CLOCK_OPS,
            Some(move || base.elapsed().as_millis() as u64 > deadline.load(Ordering::Relaxed)),
        )?;
        let writers = conn.path().filter(|p| !p.is_empty()).map(writer_queue);
        Ok(LocalSession {
            conn,
            writers,
            programs: HashMap::new(),
            page_size: None,
            clock: Clock {
                base,
                deadline_ms,
                limit: statement_timeout,
            },
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs a batch: every item split into statements, all of them in one transaction when
    /// there is more than one (or `opts.rollback`), stopping at the first failure, which rolls
    /// the batch back.
    pub fn execute(&mut self, batch: &[ExecStatement], opts: ExecOptions) -> BatchOutcome {
        let pieces = match split_batch(batch) {
            Ok(p) => p,
            Err(f) => return BatchOutcome::failed(f),
        };
        let may_write = opts.allow_writes && pieces.iter().any(|(sql, _)| may_write(sql));
        let queue = self.writers.clone().filter(|_| may_write);
        let _turn = queue
            .as_ref()
            .map(|q| q.lock().unwrap_or_else(|p| p.into_inner()));
        let in_transaction = pieces.len() > 1 || opts.rollback;
        if in_transaction {
            let begin = if opts.allow_writes && !opts.rollback {
                // A batch that writes takes the write lock up front: upgrading a read lock
                // later can fail at once with SQLITE_BUSY instead of waiting.
                "BEGIN IMMEDIATE"
            } else {
                "BEGIN"
            };
            if let Err(f) = self.control(begin, 0) {
                return BatchOutcome::failed(f);
            }
        }
        let mut out = BatchOutcome::default();
        for (i, (sql, params)) in pieces.iter().enumerate() {
            match self.run_one(i, sql, params, opts) {
                Ok(Some(r)) => out.results.push(r),
                Ok(None) => {}
                Err(f) => {
                    out.failure = Some(f);
                    break;
                }
            }
        }
        if in_transaction {
            let end = if out.failure.is_some() || opts.rollback {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            if let Err(f) = self.control(end, pieces.len()) {
                out.failure.get_or_insert(f);
            }
        }
        if !self.conn.is_autocommit() {
            // A failed COMMIT leaves the transaction open: nothing of it may stay.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let size = self.size_bytes();
        for r in &mut out.results {
            r.meta.size_after = size;
        }
        out
    }

    /// Runs BEGIN / COMMIT / ROLLBACK, as a failure of statement `index` when it fails.
    fn control(&self, sql: &str, index: usize) -> Result<(), StatementFailure> {
        self.conn.execute_batch(sql).map_err(|e| {
            let (code, message) = match &e {
                rusqlite::Error::SqliteFailure(err, msg) => (
                    code_name(err.extended_code),
                    msg.clone().unwrap_or_else(|| e.to_string()),
                ),
                other => ("SQLITE_ERROR".to_string(), other.to_string()),
            };
            StatementFailure {
                kind: FailureKind::Sql,
                index,
                sql: sql.to_string(),
                code,
                message,
                offset: None,
                duration_ms: 0.0,
            }
        })
    }

    /// Runs one statement; `Ok(None)` when the text holds no statement (only comments).
    fn run_one(
        &mut self,
        index: usize,
        sql: &str,
        params: &[serde_json::Value],
        opts: ExecOptions,
    ) -> Result<Option<StatementResult>, StatementFailure> {
        let fail = |code: String, message: String, offset: Option<usize>, started: Instant| {
            StatementFailure {
                kind: FailureKind::Sql,
                index,
                sql: sql.to_string(),
                code,
                message,
                offset,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            }
        };
        if let Some(word) = forbidden(sql) {
            return Err(fail(
                "SQLITE_AUTH".into(),
                format!(
                    "{word} is not allowed: each batch already runs in its own transaction (as on D1)"
                ),
                None,
                Instant::now(),
            ));
        }
        let program = self.program(sql);
        // SAFETY: the handle stays valid while `self.conn` lives; every raw statement below
        // is finalized (dropped) before this function returns.
        let db = unsafe { self.conn.handle() };
        let started = Instant::now();
        self.clock.arm();
        let outcome = run_raw(db, sql, params, opts.allow_writes);
        self.clock.disarm();
        let ran = match outcome {
            Ok(Some(ran)) => ran,
            Ok(None) => return Ok(None),
            Err(RawError::Refused) => {
                return Err(StatementFailure {
                    kind: FailureKind::Refused,
                    index,
                    sql: sql.to_string(),
                    code: "SQLITE_READONLY".into(),
                    message: "the statement changes the database and writes are not allowed here"
                        .into(),
                    offset: None,
                    duration_ms: 0.0,
                });
            }
            Err(RawError::Sql {
                code,
                message,
                offset,
            }) => {
                let message = if let Some(reason) = sandbox::refusal_of_code(&code, &message) {
                    format!("refused: {reason}")
                } else if code == "SQLITE_INTERRUPT" {
                    format!(
                        "statement ran longer than {} s and was stopped (D1 stops queries after 30 s; see statement_timeout in d1ops.toml)",
                        self.clock.limit.as_secs()
                    )
                } else {
                    message
                };
                return Err(fail(code, message, offset, started));
            }
        };
        let changes = ran.changes;
        let mut rows_read = ran.steps + program.positionings(ran.readonly, changes);
        if let Some(root) = program.count_root {
            rows_read += self.count_rows(root);
        }
        let rows_written = if ran.readonly {
            0
        } else {
            changes * (1 + program.index_writes)
        };
        Ok(Some(StatementResult {
            sql: sql.to_string(),
            columns: ran.columns,
            rows: ran.rows,
            meta: ExecMeta {
                duration_ms: ran.duration_ms,
                rows_read,
                rows_written,
                changes,
                last_row_id: self.conn.last_insert_rowid(),
                changed_db: !ran.readonly && (changes > 0 || is_ddl(sql)),
                size_after: 0,
            },
            readonly: ran.readonly,
        }))
    }

    /// The bytecode analysis of `sql`, cached per text while the schema stays the same.
    fn program(&mut self, sql: &str) -> Program {
        let version = self
            .conn
            .prepare_cached("PRAGMA schema_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .unwrap_or(-1);
        if let Some((v, p)) = self.programs.get(sql)
            && *v == version
        {
            return p.clone();
        }
        let program = analyse(&self.conn, sql).unwrap_or_default();
        if self.programs.len() >= PROGRAM_CACHE {
            self.programs.clear();
        }
        self.programs
            .insert(sql.to_string(), (version, program.clone()));
        program
    }

    /// Entries in the table whose b-tree starts at page `root` (0 when unknown).
    fn count_rows(&self, root: i64) -> u64 {
        let table: Option<String> = self
            .conn
            .query_row(
                "SELECT tbl_name FROM sqlite_schema WHERE rootpage = ?1",
                [root],
                |r| r.get(0),
            )
            .ok();
        table
            .and_then(|t| {
                let sql = format!(
                    "SELECT count(*) FROM main.{}",
                    crate::schema::quote_ident(&t)
                );
                self.conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).ok()
            })
            .map_or(0, |n| n.max(0) as u64)
    }

    fn size_bytes(&mut self) -> u64 {
        if self.page_size.is_none() {
            self.page_size = self
                .conn
                .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                .ok()
                .map(|n| n.max(0) as u64);
        }
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(0);
        pages.max(0) as u64 * self.page_size.unwrap_or(0)
    }
}

/// The batch's statements with the parameters each binds.
fn split_batch(
    batch: &[ExecStatement],
) -> Result<Vec<(&str, &[serde_json::Value])>, StatementFailure> {
    let mut pieces = Vec::new();
    for item in batch {
        let parts = batch_statements(&item.sql);
        let fail = |message: &str| StatementFailure {
            kind: FailureKind::Sql,
            index: pieces.len(),
            sql: item.sql.clone(),
            code: "SQLITE_MISUSE".into(),
            message: message.to_string(),
            offset: None,
            duration_ms: 0.0,
        };
        if parts.is_empty() {
            return Err(fail("no SQL statement to run"));
        }
        if parts.len() > 1 && !item.params.is_empty() {
            return Err(fail(
                "params were given for SQL holding several statements; send each statement as its own batch item with its own params",
            ));
        }
        pieces.extend(parts.into_iter().map(|p| (p, item.params.as_slice())));
    }
    Ok(pieces)
}

/// The first keyword, upper-cased, skipping leading comments.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map_or("", |(_, after)| after)
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map_or("", |(_, after)| after)
                .trim_start();
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Statements a batch may not contain: transaction control (the batch owns the
/// transaction). What D1 refuses for isolation (ATTACH, VACUUM INTO, dangerous pragmas) is
/// the connection's sandbox's job, not this word list's.
fn forbidden(sql: &str) -> Option<String> {
    let word = first_keyword(sql);
    matches!(
        word.as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
    .then_some(word)
}

/// Whether a statement might write, judged by its first keyword (anything but a plain query
/// counts: a `WITH` may end in an `INSERT`, a `PRAGMA` may set something).
fn may_write(sql: &str) -> bool {
    !matches!(first_keyword(sql).as_str(), "SELECT" | "VALUES" | "EXPLAIN")
}

fn is_ddl(sql: &str) -> bool {
    matches!(
        first_keyword(sql).as_str(),
        "CREATE" | "DROP" | "ALTER" | "REINDEX" | "ANALYZE" | "VACUUM"
    )
}

/// What a statement's bytecode says about the cursor work it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Program {
    /// `Rewind`, `Last`, `Seek*`, `Sort` ops: each counts one row read.
    positionings: u64,
    /// `SeekRowid` / `NotExists` ops: one row read each, per changed row in a write.
    rowid_lookups: u64,
    /// `IdxInsert` ops on real (not ephemeral) indexes: index entries written per row.
    index_writes: u64,
    /// The root page a bare `count(*)` counts (`OP_Count` on the main database).
    count_root: Option<i64>,
}

impl Program {
    fn positionings(&self, readonly: bool, changes: u64) -> u64 {
        let per_row = if readonly { 1 } else { changes.max(1) };
        self.positionings + self.rowid_lookups * per_row
    }
}

/// Reads `EXPLAIN sql`; `None` when it does not prepare (DDL on objects not there yet, …).
fn analyse(conn: &Connection, sql: &str) -> Option<Program> {
    if first_keyword(sql) == "EXPLAIN" {
        return Some(Program::default());
    }
    let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).ok()?;
    // EXPLAIN does not run the statement: its parameters stay unbound.
    let mut rows = stmt.raw_query();
    let mut ops: Vec<(String, i64, i64, i64)> = Vec::new();
    while let Some(r) = rows.next().ok()? {
        ops.push((
            r.get(1).ok()?,
            r.get(2).ok()?,
            r.get(3).ok()?,
            r.get(4).ok()?,
        ));
    }
    let mut ephemeral = HashSet::new();
    let mut opened = HashMap::new();
    for (op, p1, p2, p3) in &ops {
        match op.as_str() {
            "OpenEphemeral" | "OpenAutoindex" | "SorterOpen" | "OpenPseudo" => {
                ephemeral.insert(*p1);
            }
            "OpenDup" if ephemeral.contains(p2) => {
                ephemeral.insert(*p1);
            }
            "OpenRead" | "OpenWrite" => {
                opened.insert(*p1, (*p2, *p3));
            }
            _ => {}
        }
    }
    let mut p = Program::default();
    for (op, p1, _, p3) in &ops {
        match op.as_str() {
            "Rewind" | "Last" | "SeekGE" | "SeekGT" | "SeekLE" | "SeekLT" | "Sort"
            | "SorterSort" => p.positionings += 1,
            "SeekRowid" | "NotExists" => p.rowid_lookups += 1,
            "IdxInsert" if !ephemeral.contains(p1) => p.index_writes += 1,
            "Count" if *p3 == 0 => {
                p.count_root = opened
                    .get(p1)
                    .filter(|(_, db)| *db == 0)
                    .map(|(root, _)| *root);
            }
            _ => {}
        }
    }
    Some(p)
}

#[cfg(test)]
#[path = "local_exec_tests.rs"]
mod tests;
