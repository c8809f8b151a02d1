//! `d1ops serve`: a local HTTP API shaped like Cloudflare D1's REST API, so an app under
//! local development can point its D1 client at an environment and its traffic shows up in
//! the monitor.
//!
//! `POST /accounts/{account}/d1/database/{env}/query` and `…/raw`, body `{"sql", "params"}`
//! or `{"batch": [{"sql", "params"}, …]}`; `{env}` is an environment name (`production`, a
//! preview) or its database id, `{account}` is ignored. A batch (or SQL holding several
//! statements) runs in one transaction, as on D1. Answers use Cloudflare's envelope
//! ([`d1`]). Writes to production are refused unless the server was started with
//! `--allow-production-writes`. Every statement is recorded through a batching recorder.
//!
//! Before anything runs, [`guard`] refuses what a web page in the developer's browser could
//! send: a `Host` or `Origin` other than the listen address (unless allowed with
//! `--allow-origin`), a body not declared `application/json`, a body over 1 MiB, and (when
//! `D1OPS_SERVE_TOKEN` is set) a request without that bearer token. Bound parameters must be
//! scalars (null, boolean, number, string).
//!
//! The HTTP layer (axum on tokio) only parses and answers; each request's database work runs
//! on tokio's blocking pool over a per-database pool of connections ([`app`]). Logs go to the
//! log file; the only output is the caller's "listening on" line.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use crate::backend::{ExecStatement, LocalBackend};
use crate::engine::Engine;
use crate::engine::observe::Recorder;

mod app;
pub mod d1;
mod guard;

pub use app::{App, Reply};
pub use guard::{Access, AccessError, MAX_BODY, ServeToken, TOKEN_ENV};

/// Most statements one request may carry.
const MAX_BATCH: usize = 10_000;
/// Threads running database work at once (one connection each).
const MAX_BLOCKING: usize = 16;

/// What a server needs: where state lives, how to reach databases, and its write policy.
pub struct ServeConfig {
    pub state_dir: std::path::PathBuf,
    pub backend: LocalBackend,
    /// Let clients write to production (off: writes there are answered 403).
    pub allow_production_writes: bool,
    /// No writes anywhere (`--readonly`).
    pub readonly: bool,
    /// Origins accepted besides the listen address, and the bearer token if one is required.
    pub access: Access,
}

impl ServeConfig {
    pub fn from_engine(
        engine: &Engine,
        allow_production_writes: bool,
        access: Access,
    ) -> anyhow::Result<Self> {
        Ok(ServeConfig {
            state_dir: engine.ws.state_dir(),
            backend: engine.local_backend()?,
            allow_production_writes,
            readonly: engine.readonly,
            access,
        })
    }
}

/// What a server did, once stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServeReport {
    pub requests: u64,
    pub statements: u64,
    pub recorded: u64,
    pub lost: u64,
}

/// A server running on its own thread (tests and benchmarks); [`Serving::stop`] ends it.
pub struct Serving {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<ServeReport>>>,
}

impl Serving {
    /// Stops accepting, finishes requests in flight, flushes the recorder.
    pub fn stop(mut self) -> anyhow::Result<ServeReport> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => anyhow::bail!("the server thread panicked"),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server on `listen` on a background thread and returns once it listens.
pub fn start(config: ServeConfig, listen: &str) -> anyhow::Result<Serving> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listen = listen.to_string();
    let thread = std::thread::Builder::new()
        .name("d1ops-serve".into())
        .spawn(move || {
            run(
                config,
                &listen,
                |addr| {
                    let _ = ready_tx.send(addr);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
        })
        .context("starting the server thread")?;
    match ready_rx.recv() {
        Ok(addr) => Ok(Serving {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e),
            _ => anyhow::bail!("the server stopped before listening"),
        },
    }
}

/// Serves until `shutdown` completes (the CLI passes Ctrl-C / SIGTERM), calling
/// `on_listening` with the bound address first.
pub fn run(
    config: ServeConfig,
    listen: &str,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ServeReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING)
        .thread_name("d1ops-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let recorder = Recorder::start(&config.state_dir)?;
    let access = config.access;
    let app = Arc::new(App::new(
        &config.state_dir,
        config.backend,
        recorder.sink(),
        config.allow_production_writes,
        config.readonly,
    )?);
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(
            %addr,
            origins = ?access.origins(),
            token = access.requires_token(),
            "serve: listening"
        );
        let guard = Arc::new(guard::Guard::new(addr, access));
        on_listening(addr);
        axum::serve(listener, router(app.clone(), guard))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving")
    });
    // Requests still running on the blocking pool finish before the recorder is flushed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    let stats = recorder.finish();
    served?;
    let report = ServeReport {
        requests: app.requests.load(Ordering::Relaxed),
        statements: app.statements.load(Ordering::Relaxed),
        recorded: stats.recorded,
        lost: stats.lost,
    };
    tracing::info!(?report, "serve: stopped");
    Ok(report)
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Whether a listen address stays on this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

fn router(app: Arc<App>, guard: Arc<guard::Guard>) -> Router {
    Router::new()
        .route("/accounts/{account}/d1/database/{env}/query", post(query))
        .route("/accounts/{account}/d1/database/{env}/raw", post(raw))
        .fallback(unknown_route)
        // The guard reads at most MAX_BODY already; the limit stays as a second line.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .with_state(app)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Objects,
    Raw,
}

async fn query(
    State(app): State<Arc<App>>,
    UrlPath((_account, env)): UrlPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(app, env, body, Shape::Objects).await
}

async fn raw(
    State(app): State<Arc<App>>,
    UrlPath((_account, env)): UrlPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(app, env, body, Shape::Raw).await
}

async fn unknown_route() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        d1::failure(
            d1::NOT_FOUND,
            "no such endpoint; d1ops serve answers POST /accounts/{account}/d1/database/{env}/query and /raw",
        ),
    )
}

/// `{sql, params}` or `{batch: [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Batch { batch: Vec<ExecStatement> },
    Single(ExecStatement),
}

fn parse_body(body: &[u8]) -> Result<Vec<ExecStatement>, String> {
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body must be {{\"sql\": \"…\", \"params\": […]}} or {{\"batch\": [{{\"sql\": \"…\", \"params\": […]}}, …]}} ({e})"
        )
    })?;
    let (batch, single) = match parsed {
        Body::Batch { batch } => (batch, false),
        Body::Single(s) => (vec![s], true),
    };
    if batch.is_empty() {
        return Err("the batch is empty".into());
    }
    if batch.len() > MAX_BATCH {
        return Err(format!("a batch holds at most {MAX_BATCH} statements"));
    }
    for (i, statement) in batch.iter().enumerate() {
        for (j, param) in statement.params.iter().enumerate() {
            let kind = match param {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::Object(_) => "an object",
                _ => continue,
            };
            let place = if single {
                format!("params[{j}]")
            } else {
                format!("batch[{i}].params[{j}]")
            };
            return Err(format!(
                "{place} (parameter ?{}) is {kind}; a bound value must be null, a boolean, a number or a string",
                j + 1
            ));
        }
    }
    Ok(batch)
}

async fn handle(
    app: Arc<App>,
    env: String,
    body: Result<Bytes, BytesRejection>,
    shape: Shape,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                d1::failure(d1::TOO_LARGE, &guard::too_large()),
            );
        }
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                d1::failure(
                    d1::BAD_REQUEST,
                    &format!("the request body could not be read: {}", e.body_text()),
                ),
            );
        }
    };
    let batch = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return answer(StatusCode::BAD_REQUEST, d1::failure(d1::BAD_REQUEST, &m)),
    };
    let worker = app.clone();
    let env_for_log = env.clone();
    let reply = tokio::task::spawn_blocking(move || worker.run(&env, &batch)).await;
    let (status, body) = match reply {
        Ok(Reply::Ok(results)) => {
            let result = results
                .iter()
                .map(|r| match shape {
                    Shape::Objects => d1::query_result(r),
                    Shape::Raw => d1::raw_result(r),
                })
                .collect();
            (StatusCode::OK, d1::success(result))
        }
        Ok(Reply::Failed(f)) => (
            StatusCode::BAD_REQUEST,
            d1::failure(d1::SQL_ERROR, &f.d1_message()),
        ),
        Ok(Reply::Refused(m)) => (StatusCode::FORBIDDEN, d1::failure(d1::REFUSED, &m)),
        Ok(Reply::NotFound(m)) => (StatusCode::NOT_FOUND, d1::failure(d1::NOT_FOUND, &m)),
        Ok(Reply::Internal(m)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            d1::failure(d1::SQL_ERROR, &m),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            d1::failure(d1::SQL_ERROR, &format!("internal error: {e}")),
        ),
    };
    tracing::debug!(
        env = %env_for_log,
        status = status.as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "serve: request"
    );
    answer(status, body)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_body;

    #[test]
    fn nested_params_name_their_position() {
        let err = parse_body(br#"{"sql": "SELECT ?", "params": [[1]]}"#).unwrap_err();
        assert!(
            err.starts_with("params[0] (parameter ?1) is an array;"),
            "{err}"
        );
        let err = parse_body(br#"{"sql": "SELECT ?, ?", "params": [1, {"a": 1}]}"#).unwrap_err();
        assert!(
            err.starts_with("params[1] (parameter ?2) is an object;"),
            "{err}"
        );
        let err = parse_body(
            br#"{"batch": [{"sql": "SELECT ?", "params": ["x"]}, {"sql": "SELECT ?", "params": [[]]}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("batch[1].params[0] (parameter ?1)"),
            "{err}"
        );
        let ok = parse_body(br#"{"sql": "SELECT ?, ?, ?, ?", "params": [null, true, 1.5, "s"]}"#);
        assert_eq!(ok.map(|b| b.len()), Ok(1));
    }
}
