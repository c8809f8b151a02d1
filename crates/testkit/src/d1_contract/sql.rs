//! Runs a request's statements the way D1's `/query` does: every `sql` split into
//! statements, all of them in one transaction on a fresh connection (foreign keys on, D1's
//! statement and parameter limits), the first failure rolling everything back, and a `meta`
//! per statement. Knows nothing of HTTP.
use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, StatementStatus, ffi};
use serde_json::Value;

/// D1's longest statement, in bytes.
pub const MAX_STATEMENT_BYTES: i32 = 100_000;
/// D1's most bound parameters per statement.
pub const MAX_PARAMS: i32 = 100;

/// One statement and what it binds.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Value>,
}

/// What one statement did.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub readonly: bool,
    pub duration_ms: f64,
    pub changes: u64,
    pub last_row_id: i64,
    pub changed_db: bool,
    pub size_after: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// A failed statement, as D1 reports it.
#[derive(Debug, Clone)]
pub struct SqlError {
    /// `SQLITE_ERROR`, `SQLITE_CONSTRAINT`, … (the primary code's name).
    pub code: String,
    pub message: String,
    pub offset: Option<usize>,
    /// The extended code's name when SQLite gave one (`SQLITE_CONSTRAINT_UNIQUE`), which D1
    /// appends as `(extended: …)`.
    pub extended: Option<String>,
}

impl SqlError {
    pub fn new(code: &str, message: impl Into<String>) -> SqlError {
        SqlError {
            code: code.to_string(),
            message: message.into(),
            offset: None,
            extended: None,
        }
    }

    /// `no such column: x at offset 7: SQLITE_ERROR`, or with the extended code as D1 names
    /// it: `UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT (extended:
    /// SQLITE_CONSTRAINT_UNIQUE)`.
    pub fn d1_message(&self) -> String {
        if self.message.contains(": SQLITE_") {
            return self.message.clone();
        }
        let text = match self.offset {
            Some(at) => format!("{} at offset {at}: {}", self.message, self.code),
            None => format!("{}: {}", self.message, self.code),
        };
        match &self.extended {
            Some(ext) => format!("{text} (extended: {ext})"),
            None => text,
        }
    }
}

/// The statements of a request body's items (`{sql, params}` each).
pub fn expand(items: &[(String, Vec<Value>)]) -> Result<Vec<Stmt>, SqlError> {
    let mut out = Vec::new();
    for (sql, params) in items {
        let parts = split(sql);
        if parts.len() > 1 && !params.is_empty() {
            return Err(SqlError::new(
                "SQLITE_RANGE",
                "params were given for SQL holding several statements",
            ));
        }
        out.extend(parts.into_iter().map(|s| Stmt {
            sql: s,
            params: params.clone(),
        }));
    }
    Ok(out)
}

/// Splits SQL at the `;` that end complete statements (`sqlite3_complete`), so semicolons
/// in strings, comments and trigger bodies stay put; drops pieces holding no statement.
pub fn split(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in sql.bytes().enumerate() {
        if b == b';' && complete(&sql[start..=i]) {
            push_piece(&mut out, &sql[start..=i]);
            start = i + 1;
        }
    }
    push_piece(&mut out, &sql[start..]);
    out
}

fn push_piece(out: &mut Vec<String>, piece: &str) {
    let piece = piece.trim().trim_end_matches(';').trim_end();
    if !without_comments(piece).is_empty() {
        out.push(piece.to_string());
    }
}

fn complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: a valid NUL-terminated string that sqlite3_complete only reads.
        Ok(c) => unsafe { ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => true,
    }
}

/// The text after leading comments and whitespace.
fn without_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, a)| a).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, a)| a).trim_start();
        } else {
            return rest;
        }
    }
}

/// The first keyword, upper-cased, after leading comments.
pub fn first_keyword(sql: &str) -> String {
    without_comments(sql)
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Whether a statement only reads, judged by its first keyword (for analytics).
pub fn reads_only(sql: &str) -> bool {
    matches!(
        first_keyword(sql).as_str(),
        "SELECT" | "VALUES" | "EXPLAIN" | "WITH"
    )
}

/// Opens a database file the way every request does.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_STATEMENT_BYTES)?;
    conn.set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, MAX_PARAMS)?;
    Ok(conn)
}

/// Runs `stmts` in one transaction. `fail` lists `(sql_contains, message)` faults.
pub fn run_batch(
    path: &Path,
    stmts: &[Stmt],
    fail: &[(String, String)],
) -> Result<Vec<Ran>, SqlError> {
    let conn = open(path).map_err(from_rusqlite)?;
    conn.execute_batch("BEGIN").map_err(from_rusqlite)?;
    let mut out = Vec::with_capacity(stmts.len());
    for s in stmts {
        match run_one(&conn, s, fail) {
            Ok(r) => out.push(r),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Err(from_rusqlite(e));
    }
    drop(conn);
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    for r in &mut out {
        r.size_after = size;
    }
    Ok(out)
}

/// Transaction control and other databases are D1's to manage.
fn forbidden(sql: &str) -> bool {
    matches!(
        first_keyword(sql).as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "ATTACH" | "DETACH"
    )
}

fn run_one(conn: &Connection, s: &Stmt, fail: &[(String, String)]) -> Result<Ran, SqlError> {
    if forbidden(&s.sql) {
        return Err(SqlError::new("SQLITE_AUTH", "not authorized"));
    }
    if let Some((_, message)) = fail
        .iter()
        .find(|(needle, _)| s.sql.contains(needle.as_str()))
    {
        return Err(SqlError::new("SQLITE_ERROR", message.clone()));
    }
    let started = Instant::now();
    let before = conn.total_changes();
    let mut stmt = conn.prepare(&s.sql).map_err(from_rusqlite)?;
    if stmt.parameter_count() != s.params.len() {
        return Err(SqlError::new(
            "SQLITE_RANGE",
            "Wrong number of parameter bindings for SQL query.",
        ));
    }
    for (i, p) in s.params.iter().enumerate() {
        bind(&mut stmt, i + 1, p).map_err(from_rusqlite)?;
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    {
        let mut cursor = stmt.raw_query();
        while let Some(row) = cursor.next().map_err(from_rusqlite)? {
            let mut out = Vec::with_capacity(width);
            for i in 0..width {
                out.push(to_json(row.get_ref(i).map_err(from_rusqlite)?));
            }
            rows.push(out);
        }
    }
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let readonly = stmt.readonly();
    let steps = stmt.get_status(StatementStatus::FullscanStep).max(0) as u64
        + stmt.get_status(StatementStatus::AutoIndex).max(0) as u64;
    drop(stmt);
    let changes = conn.total_changes().saturating_sub(before);
    let ddl = matches!(first_keyword(&s.sql).as_str(), "CREATE" | "DROP" | "ALTER");
    Ok(Ran {
        rows_read: steps.max(rows.len() as u64).max(changes),
        rows_written: changes,
        columns,
        rows,
        readonly,
        duration_ms,
        changes,
        last_row_id: conn.last_insert_rowid(),
        changed_db: !readonly && (changes > 0 || ddl),
        size_after: 0,
    })
}

fn bind(stmt: &mut rusqlite::Statement<'_>, i: usize, v: &Value) -> rusqlite::Result<()> {
    match v {
        Value::Null => stmt.raw_bind_parameter(i, rusqlite::types::Null),
        Value::Bool(b) => stmt.raw_bind_parameter(i, i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(x) => stmt.raw_bind_parameter(i, x),
            None => stmt.raw_bind_parameter(i, n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => stmt.raw_bind_parameter(i, s.as_str()),
        other => stmt.raw_bind_parameter(i, other.to_string()),
    }
}

/// A column value as D1 answers it (blobs as arrays of bytes).
fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => b.iter().map(|x| Value::from(*x)).collect(),
    }
}

fn from_rusqlite(e: rusqlite::Error) -> SqlError {
    match e {
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => SqlError {
            code: code_name(error.extended_code),
            message: msg,
            offset: usize::try_from(offset).ok(),
            extended: extended_name(error.extended_code),
        },
        rusqlite::Error::SqliteFailure(err, msg) => SqlError {
            code: code_name(err.extended_code),
            message: msg.unwrap_or_else(|| err.to_string()),
            offset: None,
            extended: extended_name(err.extended_code),
        },
        other => SqlError::new("SQLITE_ERROR", other.to_string()),
    }
}

/// The extended result code's name, for the constraint codes D1 reports as `(extended: …)`
/// (`None` for a primary code, or one this server does not name).
fn extended_name(rc: i32) -> Option<String> {
    const CONSTRAINT: [(i32, &str); 12] = [
        (ffi::SQLITE_CONSTRAINT_CHECK, "CHECK"),
        (ffi::SQLITE_CONSTRAINT_COMMITHOOK, "COMMITHOOK"),
        (ffi::SQLITE_CONSTRAINT_FOREIGNKEY, "FOREIGNKEY"),
        (ffi::SQLITE_CONSTRAINT_FUNCTION, "FUNCTION"),
        (ffi::SQLITE_CONSTRAINT_NOTNULL, "NOTNULL"),
        (ffi::SQLITE_CONSTRAINT_PRIMARYKEY, "PRIMARYKEY"),
        (ffi::SQLITE_CONSTRAINT_TRIGGER, "TRIGGER"),
        (ffi::SQLITE_CONSTRAINT_UNIQUE, "UNIQUE"),
        (ffi::SQLITE_CONSTRAINT_VTAB, "VTAB"),
        (ffi::SQLITE_CONSTRAINT_ROWID, "ROWID"),
        (ffi::SQLITE_CONSTRAINT_PINNED, "PINNED"),
        (ffi::SQLITE_CONSTRAINT_DATATYPE, "DATATYPE"),
    ];
    CONSTRAINT
        .iter()
        .find(|(code, _)| *code == rc)
        .map(|(_, name)| format!("SQLITE_CONSTRAINT_{name}"))
}

/// The primary result code's name, as D1 reports it.
fn code_name(rc: i32) -> String {
    const NAMES: [&str; 29] = [
        "SQLITE_OK",
        "SQLITE_ERROR",
        "SQLITE_INTERNAL",
        "SQLITE_PERM",
        "SQLITE_ABORT",
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_NOMEM",
        "SQLITE_READONLY",
        "SQLITE_INTERRUPT",
        "SQLITE_IOERR",
        "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND",
        "SQLITE_FULL",
        "SQLITE_CANTOPEN",
        "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",
        "SQLITE_SCHEMA",
        "SQLITE_TOOBIG",
        "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH",
        "SQLITE_MISUSE",
        "SQLITE_NOLFS",
        "SQLITE_AUTH",
        "SQLITE_FORMAT",
        "SQLITE_RANGE",
        "SQLITE_NOTADB",
        "SQLITE_NOTICE",
        "SQLITE_WARNING",
    ];
    NAMES
        .get((rc & 0xff) as usize)
        .map_or_else(|| format!("SQLITE_{rc}"), |n| (*n).to_string())
}
