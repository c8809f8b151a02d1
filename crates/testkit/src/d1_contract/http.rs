//! The HTTP side: one axum fallback handler hands every request, body read, to a
//! synchronous `handle` on tokio's blocking pool (SQLite work blocks). `handle` plays
//! faults, checks the token, the account and the permission, routes, and answers in
//! Cloudflare's envelope; it also records the request. Handlers never panic on bad input:
//! they answer an error envelope (500 for the server's own failures).
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use serde_json::{Value, json};

use super::sql::SqlError;
use super::state::State;
use super::{Fault, Permission, Recorded, graphql, rest, workers};

/// What to answer.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(status: u16, body: &Value) -> Resp {
        Resp {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn xml(status: u16, code: &str, message: &str) -> Resp {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        );
        Resp {
            status,
            headers: vec![("content-type".into(), "application/xml".into())],
            body: body.into_bytes(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A refusal in Cloudflare's envelope.
#[derive(Debug)]
pub struct Reject {
    pub status: u16,
    pub code: u32,
    pub message: String,
    /// SQL errors answer `result: []`, everything else `result: null`.
    pub sql: bool,
}

impl Reject {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Reject {
        Reject {
            status,
            code,
            message: message.into(),
            sql: false,
        }
    }

    /// A malformed or impossible request (HTTP 400, code 7400).
    pub fn bad(message: impl Into<String>) -> Reject {
        Reject::new(400, 7400, message)
    }

    /// The server's own failure (HTTP 500, code 10002).
    pub fn internal(message: impl std::fmt::Display) -> Reject {
        Reject::new(500, 10002, format!("Internal server error: {message}"))
    }

    pub fn sql(e: &SqlError) -> Reject {
        Reject {
            sql: true,
            ..Reject::new(400, 7500, e.d1_message())
        }
    }

    fn into_resp(self) -> Resp {
        Resp::json(
            self.status,
            &json!({
                "result": if self.sql { json!([]) } else { Value::Null },
                "success": false,
                "errors": [{ "code": self.code, "message": self.message }],
                "messages": [],
            }),
        )
    }
}

/// The success envelope.
pub fn success(result: Value) -> Value {
    json!({ "result": result, "success": true, "errors": [], "messages": [] })
}

/// One request, body read.
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub auth: Option<String>,
    pub body: Vec<u8>,
}

impl Req {
    /// The query string's value for `key`, percent-decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == key).then(|| decode(v))
        })
    }

    pub fn json(&self) -> Result<Value, Reject> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Reject::bad(format!("The request body is not valid JSON: {e}")))
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn router(core: Arc<Mutex<State>>) -> Router {
    Router::new().fallback(move |req: Request| serve(core.clone(), req))
}

fn lock(core: &Mutex<State>) -> MutexGuard<'_, State> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve(core: Arc<Mutex<State>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 30)
        .await
        .unwrap_or_default();
    let req = Req {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        auth: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.to_vec(),
    };
    let delay = take_fault(&mut lock(&core).faults, &req.path, |f| match f {
        Fault::Delay { millis, .. } => Some(*millis),
        _ => None,
    });
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let answer_delay = take_fault(&mut lock(&core).faults, &req.path, |f| match f {
        Fault::DelayAnswer { millis, .. } => Some(*millis),
        _ => None,
    });
    let work = core.clone();
    let (record, resp) = tokio::task::spawn_blocking(move || {
        let mut st = lock(&work);
        let resp = handle(&mut st, &req);
        (record(&req, resp.status), resp)
    })
    .await
    .unwrap_or_else(|e| {
        let resp = Reject::internal(format!("the handler failed: {e}")).into_resp();
        let rec = Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            status: 500,
            authorization: parts.headers.contains_key("authorization"),
            body: String::new(),
        };
        (rec, resp)
    });
    lock(&core).requests.push(record);
    if let Some(ms) = answer_delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from(resp.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn record(req: &Req, status: u16) -> Recorded {
    Recorded {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        status,
        authorization: req.auth.is_some(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
    }
}

/// Takes one use of the first queued fault that `pick` accepts for `path`.
fn take_fault<T>(
    faults: &mut Vec<Fault>,
    path: &str,
    pick: impl Fn(&Fault) -> Option<T>,
) -> Option<T> {
    let i = faults.iter().position(|f| {
        let (needle, times) = match f {
            Fault::Status {
                path_contains,
                times,
                ..
            }
            | Fault::Delay {
                path_contains,
                times,
                ..
            }
            | Fault::DelayAnswer {
                path_contains,
                times,
                ..
            } => (path_contains, *times),
            Fault::FailStatement { .. } => return false,
        };
        times > 0 && path.contains(needle.as_str()) && pick(f).is_some()
    })?;
    let out = pick(&faults[i]);
    if let Fault::Status { times, .. }
    | Fault::Delay { times, .. }
    | Fault::DelayAnswer { times, .. } = &mut faults[i]
    {
        *times -= 1;
        if *times == 0 {
            faults.remove(i);
        }
    }
    out
}

fn status_fault(st: &mut State, path: &str) -> Option<Resp> {
    let (status, retry) = take_fault(&mut st.faults, path, |f| match f {
        Fault::Status {
            status,
            retry_after_secs,
            ..
        } => Some((*status, *retry_after_secs)),
        _ => None,
    })?;
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let resp = if path.starts_with("/r2/") {
        let code = if status == 429 || status == 503 {
            "SlowDown"
        } else {
            "InternalError"
        };
        Resp::xml(status, code, reason)
    } else if path.ends_with("/graphql") {
        let message = if status == 429 {
            "rate limiter budget depleted, try again after 5 minutes"
        } else {
            "unable to execute query, please try again later"
        };
        Resp::json(status, &graphql::error_body(message, json!([])))
    } else if status == 429 {
        Reject::new(
            429,
            971,
            "Please wait and consider throttling your request speed",
        )
        .into_resp()
    } else {
        Reject::new(status, u32::from(status), reason).into_resp()
    };
    Some(match retry {
        Some(secs) => resp.header("retry-after", &secs.to_string()),
        None => resp,
    })
}

/// Answers one request.
pub fn handle(st: &mut State, req: &Req) -> Resp {
    if let Some(resp) = status_fault(st, &req.path) {
        return resp;
    }
    if req.path.starts_with("/r2/") {
        return st.r2(req);
    }
    let Some(rest) = req.path.strip_prefix("/client/v4/") else {
        return Reject::new(404, 7000, "No route for that URI").into_resp();
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segs == ["graphql"] {
        return graphql::request(st, req);
    }
    if req.auth.as_deref() != Some(format!("Bearer {}", st.token).as_str()) {
        return Reject::new(401, 10000, "Authentication error").into_resp();
    }
    let result = match segs.as_slice() {
        ["accounts", account, "d1", "database", rest @ ..] => d1(st, req, account, rest),
        ["accounts", account, "workers", rest @ ..] => workers::route(st, req, account, rest),
        _ => Err(Reject::new(404, 7000, "No route for that URI")),
    };
    result.unwrap_or_else(Reject::into_resp)
}

#[derive(Clone, Copy, PartialEq)]
enum Need {
    Read,
    Edit,
}

fn d1(st: &mut State, req: &Req, account: &str, rest: &[&str]) -> Result<Resp, Reject> {
    if account.len() != 32 || !account.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reject::new(
            404,
            7003,
            format!(
                "Could not route to /client/v4/accounts/{account}/d1/database, perhaps your object identifier is invalid?"
            ),
        ));
    }
    if account != st.account {
        return Err(Reject::new(
            403,
            7403,
            "The given account is not valid or is not authorized to access this service",
        ));
    }
    let m = req.method.as_str();
    let need = match (m, rest) {
        ("GET", []) | ("GET", [_]) | ("GET", [_, "time_travel", "bookmark"]) => Need::Read,
        ("POST", [])
        | ("DELETE", [_])
        | ("POST", [_, "query" | "raw" | "export" | "import"])
        | ("POST", [_, "time_travel", "restore"]) => Need::Edit,
        (
            _,
            []
            | [_]
            | [_, "query" | "raw" | "export" | "import"]
            | [_, "time_travel", "bookmark" | "restore"],
        ) => return Err(Reject::new(405, 7001, "Method not allowed")),
        _ => return Err(Reject::new(404, 7000, "No route for that URI")),
    };
    let perms = &st.settings.permissions;
    let allowed = perms.contains(&Permission::D1Edit)
        || (need == Need::Read && perms.contains(&Permission::D1Read));
    if !allowed {
        return Err(Reject::new(403, 10000, "Authentication error"));
    }
    let Some((id, tail)) = rest.split_first() else {
        return if m == "GET" {
            Ok(rest::list(st, req))
        } else {
            rest::create(st, req)
        };
    };
    if st.find(id).is_none() {
        return Err(Reject::new(
            404,
            7404,
            format!("The database {id} could not be found"),
        ));
    }
    match (m, tail) {
        ("GET", []) => {
            let db = st.find(id).ok_or_else(|| Reject::internal("vanished"))?;
            let obj = st.database_json(db).map_err(Reject::internal)?;
            Ok(Resp::json(200, &success(obj)))
        }
        ("DELETE", []) => {
            st.delete_database(id);
            Ok(Resp::json(200, &success(Value::Null)))
        }
        (_, ["query"]) => rest::query(st, req, id, false),
        (_, ["raw"]) => rest::query(st, req, id, true),
        (_, ["export"]) => st.export(id, &req.json()?),
        (_, ["import"]) => st.import(id, &req.json()?),
        (_, ["time_travel", "bookmark"]) => {
            let bookmark = st.bookmark_at(id, req.param("timestamp").as_deref())?;
            Ok(Resp::json(200, &success(json!({ "bookmark": bookmark }))))
        }
        _ => st.restore(
            id,
            req.param("bookmark").as_deref(),
            req.param("timestamp").as_deref(),
        ),
    }
}
