//! The D1 database endpoints behind routing: list (paged), create, and `/query` and `/raw`
//! (statements run by `sql.rs`, answered one `{results, success, meta}` each, recorded for
//! analytics and Time Travel).
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::Fault;
use super::http::{Reject, Req, Resp, success};
use super::sql::{self, Ran, SqlError};
use super::state::State;

pub fn list(st: &State, req: &Req) -> Resp {
    let number = |k: &str, default: usize| {
        req.param(k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let page = number("page", 1).max(1);
    let per_page = number("per_page", 1000).clamp(1, 10_000);
    let name = req.param("name").unwrap_or_default();
    let found: Vec<Value> = st
        .dbs
        .iter()
        .filter(|d| d.name.contains(name.as_str()))
        .map(State::list_item)
        .collect();
    let total = found.len();
    let items: Vec<Value> = found
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut body = success(json!(items));
    body["result_info"] = json!({
        "page": page,
        "per_page": per_page,
        "count": items.len(),
        "total_count": total,
    });
    Resp::json(200, &body)
}

pub fn create(st: &mut State, req: &Req) -> Result<Resp, Reject> {
    let body = req.json()?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Reject::bad("name is required"))?;
    if st.dbs.iter().any(|d| d.name == name) {
        return Err(Reject::new(
            400,
            7502,
            "A database with that name already exists",
        ));
    }
    let uuid = st.create_database(name).map_err(Reject::internal)?;
    let db = st.find(&uuid).ok_or_else(|| Reject::internal("vanished"))?;
    let obj = st.database_json(db).map_err(Reject::internal)?;
    Ok(Resp::json(200, &success(obj)))
}

/// `{sql, params}` or `{batch: [{sql, params}]}` as `(sql, params)` items.
fn items(body: &Value) -> Result<Vec<(String, Vec<Value>)>, Reject> {
    let item = |v: &Value| -> Result<(String, Vec<Value>), Reject> {
        let sql = v
            .get("sql")
            .and_then(Value::as_str)
            .ok_or_else(|| Reject::bad("each query needs sql"))?;
        let params = match v.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(Reject::bad("params must be a list")),
        };
        Ok((sql.to_string(), params))
    };
    match body.get("batch") {
        Some(Value::Array(b)) => b.iter().map(item).collect(),
        Some(_) => Err(Reject::bad("batch must be a list")),
        None => Ok(vec![item(body)?]),
    }
}

fn meta(r: &Ran) -> Value {
    json!({
        "served_by": "v3-prod",
        "served_by_region": "WEUR",
        "served_by_colo": "AMS",
        "served_by_primary": true,
        "timings": { "sql_duration_ms": r.duration_ms },
        "duration": r.duration_ms,
        "changes": r.changes,
        "last_row_id": r.last_row_id,
        "changed_db": r.changed_db,
        "size_after": r.size_after,
        "rows_read": r.rows_read,
        "rows_written": r.rows_written,
        "total_attempts": 1,
    })
}

pub fn query(st: &mut State, req: &Req, id: &str, raw: bool) -> Result<Resp, Reject> {
    let stmts = sql::expand(&items(&req.json()?)?).map_err(|e| Reject::sql(&e))?;
    if stmts.is_empty() {
        return Err(Reject::sql(&SqlError::new(
            "SQLITE_ERROR",
            "No SQL statements detected.",
        )));
    }
    let max = st.settings.max_batch_statements;
    if stmts.len() > max {
        return Err(Reject::sql(&SqlError::new(
            "SQLITE_TOOBIG",
            format!(
                "too many statements in one request: {} (the limit is {max})",
                stmts.len()
            ),
        )));
    }
    let fail: Vec<(String, String)> = st
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::FailStatement {
                sql_contains,
                message,
            } => Some((sql_contains.clone(), message.clone())),
            _ => None,
        })
        .collect();
    let before = st.snapshot(id).map_err(Reject::internal)?;
    let ran = sql::run_batch(&st.db_path(id), &stmts, &fail).map_err(|e| Reject::sql(&e))?;
    let now = Utc::now();
    if st.snapshot(id).map_err(Reject::internal)? != before {
        let size = st.file_size(id);
        st.analytics.record_storage(id, now, size);
    }
    let results: Vec<Value> = ran
        .iter()
        .map(|r| {
            let results = if raw {
                json!({ "columns": r.columns, "rows": r.rows })
            } else {
                Value::Array(
                    r.rows
                        .iter()
                        .map(|row| {
                            let obj: Map<String, Value> =
                                r.columns.iter().cloned().zip(row.iter().cloned()).collect();
                            Value::Object(obj)
                        })
                        .collect(),
                )
            };
            json!({ "results": results, "success": true, "meta": meta(r) })
        })
        .collect();
    let resp = Resp::json(200, &success(Value::Array(results)));
    let pairs: Vec<(String, Ran)> = stmts.into_iter().map(|s| s.sql).zip(ran).collect();
    st.analytics.record_batch(id, now, &pairs, resp.body.len());
    Ok(resp)
}
