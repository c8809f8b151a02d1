//! One statement through SQLite's C API for the D1-style executor (`local_exec`): prepare,
//! refuse a write where writes are not allowed, bind JSON parameters, step every row, and
//! read the statement counters `rows_read` is built from (slot 0 above all, reachable only
//! through the raw handle). Every raw statement is finalized before its connection goes.
use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::time::Instant;

use rusqlite::{Connection, ffi};

/// Counter slot 0 of `sqlite3_stmt_status`: loop steps that were not full-scan or
/// automatic-index steps (see the module docs).
const OTHER_STEPS: c_int = 0;

/// What one raw execution produced.
pub(super) struct Ran {
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<Vec<serde_json::Value>>,
    pub(super) readonly: bool,
    pub(super) duration_ms: f64,
    /// Cursor steps from the statement counters.
    pub(super) steps: u64,
    pub(super) changes: u64,
}

pub(super) enum RawError {
    Refused,
    Sql {
        code: String,
        message: String,
        offset: Option<usize>,
    },
}

/// A prepared statement, finalized on drop; it must not outlive its connection.
struct Raw<'c> {
    stmt: *mut ffi::sqlite3_stmt,
    _conn: PhantomData<&'c Connection>,
}

impl Drop for Raw<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from sqlite3_prepare_v2 and is finalized exactly once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// Prepares, checks, binds and steps one statement on `db`, reading every row and the
/// statement counters. Runs through the C API because the counters (slot 0 above all) are
/// only reachable through the raw statement handle.
pub(super) fn run_raw(
    db: *mut ffi::sqlite3,
    sql: &str,
    params: &[serde_json::Value],
    allow_writes: bool,
) -> Result<Option<Ran>, RawError> {
    let started = Instant::now();
    let err = |rc: c_int| {
        // SAFETY: `db` is a valid handle; the message is copied before the next call.
        let (message, offset) = unsafe {
            let msg = ffi::sqlite3_errmsg(db);
            let message = if msg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            };
            (message, usize::try_from(ffi::sqlite3_error_offset(db)).ok())
        };
        RawError::Sql {
            code: code_name(rc),
            message,
            offset,
        }
    };
    let mut stmt = std::ptr::null_mut();
    let mut tail = std::ptr::null();
    let len = c_int::try_from(sql.len()).map_err(|_| RawError::Sql {
        code: "SQLITE_TOOBIG".into(),
        message: "statement too long".into(),
        offset: None,
    })?;
    // SAFETY: `sql` is valid for `len` bytes (no NUL terminator needed when a length is
    // given); `stmt` and `tail` are out-pointers.
    let rc = unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut stmt, &mut tail) };
    if rc != ffi::SQLITE_OK {
        return Err(err(rc));
    }
    if stmt.is_null() {
        return Ok(None);
    }
    let raw = Raw {
        stmt,
        _conn: PhantomData,
    };
    // SAFETY (all calls below): `raw.stmt` is a live prepared statement of `db`.
    let readonly = unsafe { ffi::sqlite3_stmt_readonly(raw.stmt) != 0 };
    if !readonly && !allow_writes {
        return Err(RawError::Refused);
    }
    let wanted = unsafe { ffi::sqlite3_bind_parameter_count(raw.stmt) } as usize;
    if wanted != params.len() {
        return Err(RawError::Sql {
            code: "SQLITE_RANGE".into(),
            message: format!(
                "wrong number of parameters: the statement takes {wanted}, {} given",
                params.len()
            ),
            offset: None,
        });
    }
    for (i, value) in params.iter().enumerate() {
        let rc = unsafe { bind(raw.stmt, i as c_int + 1, value) };
        if rc != ffi::SQLITE_OK {
            return Err(err(rc));
        }
    }
    let before = unsafe { ffi::sqlite3_total_changes64(db) };
    let width = unsafe { ffi::sqlite3_column_count(raw.stmt) };
    let columns: Vec<String> = (0..width)
        .map(|i| unsafe {
            let name = ffi::sqlite3_column_name(raw.stmt, i);
            if name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(name).to_string_lossy().into_owned()
            }
        })
        .collect();
    let mut rows = Vec::new();
    loop {
        match unsafe { ffi::sqlite3_step(raw.stmt) } {
            ffi::SQLITE_ROW => {
                rows.push((0..width).map(|i| unsafe { column(raw.stmt, i) }).collect())
            }
            ffi::SQLITE_DONE => break,
            rc => return Err(err(rc)),
        }
    }
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = |op| unsafe { ffi::sqlite3_stmt_status(raw.stmt, op, 0) }.max(0) as u64;
    let steps = status(OTHER_STEPS)
        + status(ffi::SQLITE_STMTSTATUS_FULLSCAN_STEP)
        + status(ffi::SQLITE_STMTSTATUS_AUTOINDEX);
    drop(raw);
    let changes = (unsafe { ffi::sqlite3_total_changes64(db) } - before).max(0) as u64;
    Ok(Some(Ran {
        columns,
        rows,
        readonly,
        duration_ms,
        steps,
        changes,
    }))
}

/// Binds a JSON value: numbers as INTEGER or REAL, booleans as 0/1, strings as TEXT, arrays
/// and objects as their JSON text.
///
/// # Safety
/// `stmt` must be a live prepared statement and `i` within its parameters.
unsafe fn bind(stmt: *mut ffi::sqlite3_stmt, i: c_int, value: &serde_json::Value) -> c_int {
    use serde_json::Value;
    let text = |s: &str| unsafe {
        ffi::sqlite3_bind_text64(
            stmt,
            i,
            s.as_ptr().cast(),
            s.len() as u64,
            ffi::SQLITE_TRANSIENT(),
            ffi::SQLITE_UTF8 as u8,
        )
    };
    unsafe {
        match value {
            Value::Null => ffi::sqlite3_bind_null(stmt, i),
            Value::Bool(b) => ffi::sqlite3_bind_int64(stmt, i, i64::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(v) => ffi::sqlite3_bind_int64(stmt, i, v),
                None => ffi::sqlite3_bind_double(stmt, i, n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => text(s),
            other => text(&other.to_string()),
        }
    }
}

/// Column `i` of the current row as JSON (blobs as arrays of bytes, like D1).
///
/// # Safety
/// `stmt` must be a live prepared statement positioned on a row.
unsafe fn column(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> serde_json::Value {
    use serde_json::Value;
    unsafe {
        match ffi::sqlite3_column_type(stmt, i) {
            ffi::SQLITE_INTEGER => Value::from(ffi::sqlite3_column_int64(stmt, i)),
            ffi::SQLITE_FLOAT => serde_json::Number::from_f64(ffi::sqlite3_column_double(stmt, i))
                .map_or(Value::Null, Value::Number),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_column_text(stmt, i);
                let n = ffi::sqlite3_column_bytes(stmt, i).max(0) as usize;
                if p.is_null() {
                    Value::from("")
                } else {
                    let bytes = std::slice::from_raw_parts(p, n);
                    Value::from(String::from_utf8_lossy(bytes).into_owned())
                }
            }
            ffi::SQLITE_BLOB => {
                let p = ffi::sqlite3_column_blob(stmt, i).cast::<u8>();
                let n = ffi::sqlite3_column_bytes(stmt, i).max(0) as usize;
                if p.is_null() {
                    Value::Array(Vec::new())
                } else {
                    std::slice::from_raw_parts(p, n)
                        .iter()
                        .map(|b| Value::from(*b))
                        .collect()
                }
            }
            _ => Value::Null,
        }
    }
}

/// The primary result code's name, as D1 reports it (`SQLITE_CONSTRAINT`, not the extended
/// `SQLITE_CONSTRAINT_UNIQUE`).
pub(super) fn code_name(rc: c_int) -> String {
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
