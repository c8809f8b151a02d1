//! Cloudflare's D1 REST shapes: the v4 envelope (`success`, `errors`, `messages`, `result`),
//! a `/query` result (rows as objects), a `/raw` result (`{columns, rows}`) and `meta`.
//! The documented examples these follow are checked in under `tests/fixtures/cloudflare/`;
//! `tests/serve.rs` compares field names and JSON types with them.
//!
//! Error codes: Cloudflare reports every SQL error as code 7500 with the message
//! `<SQLite message>[ at offset N]: <SQLITE_CODE>` and HTTP 400, and a missing database as
//! 7404 with HTTP 404, and a missing or wrong token as 10000 `Authentication error`. d1ops
//! adds 7400 (malformed request, HTTP 400), 7403 (refused, HTTP 403: a write to production,
//! or a request from a `Host` or `Origin` serve does not accept), 7413 (body too large, HTTP
//! 413) and 7415 (body not declared `application/json`, HTTP 415).
use serde_json::{Map, Value, json};

use crate::backend::{ExecMeta, StatementResult};

/// An SQL error (HTTP 400).
pub const SQL_ERROR: u32 = 7500;
/// No such database (HTTP 404).
pub const NOT_FOUND: u32 = 7404;
/// The request body is not a query (HTTP 400).
pub const BAD_REQUEST: u32 = 7400;
/// A write to production without `--allow-production-writes`, or a request from a `Host`
/// or `Origin` the server does not accept (HTTP 403).
pub const REFUSED: u32 = 7403;
/// A missing or wrong bearer token (HTTP 401), Cloudflare's code for it.
pub const AUTH_ERROR: u32 = 10000;
/// The request body is larger than serve accepts (HTTP 413).
pub const TOO_LARGE: u32 = 7413;
/// The request body is not declared `Content-Type: application/json` (HTTP 415).
pub const UNSUPPORTED_MEDIA_TYPE: u32 = 7415;

/// What `meta.served_by` says.
pub const SERVED_BY: &str = "d1ops-local";

/// A statement's `meta`, field for field as D1 returns it (less the region and colo, which a
/// local server has not got).
pub fn meta(m: &ExecMeta) -> Value {
    json!({
        "served_by": SERVED_BY,
        "served_by_primary": true,
        "timings": { "sql_duration_ms": m.duration_ms },
        "duration": m.duration_ms,
        "changes": m.changes,
        "last_row_id": m.last_row_id,
        "changed_db": m.changed_db,
        "size_after": m.size_after,
        "rows_read": m.rows_read,
        "rows_written": m.rows_written,
        "total_attempts": 1,
    })
}

/// A `/query` result: rows as objects keyed by column name (a repeated name keeps the last
/// value, as in D1).
pub fn query_result(r: &StatementResult) -> Value {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            let mut obj = Map::with_capacity(r.columns.len());
            for (name, v) in r.columns.iter().zip(row) {
                obj.insert(name.clone(), v.clone());
            }
            Value::Object(obj)
        })
        .collect();
    json!({ "results": rows, "success": true, "meta": meta(&r.meta) })
}

/// A `/raw` result: `{columns, rows}` with rows as arrays.
pub fn raw_result(r: &StatementResult) -> Value {
    json!({
        "results": { "columns": r.columns, "rows": r.rows },
        "success": true,
        "meta": meta(&r.meta),
    })
}

/// The success envelope.
pub fn success(result: Vec<Value>) -> Value {
    json!({ "result": result, "errors": [], "messages": [], "success": true })
}

/// The failure envelope: an SQL error carries `result: []`, other failures `result: null`,
/// as Cloudflare answers.
pub fn failure(code: u32, message: &str) -> Value {
    let result = if code == SQL_ERROR {
        json!([])
    } else {
        Value::Null
    };
    json!({
        "result": result,
        "errors": [{ "code": code, "message": message }],
        "messages": [],
        "success": false,
    })
}
