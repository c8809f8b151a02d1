//! Query execution with metrics recording, the layer under every traffic source (`query`,
//! `serve`, `traffic`, `ingest`): an environment name resolved to its database and release
//! ([`Target`]), statements run through the backend with D1's meta (how rows read and written
//! are measured: `backend::local_exec`), and what ran turned into [`QueryEvent`]s for the
//! metrics store — written at once for one-shot use, or through a batching [`Recorder`] for
//! servers and load. This module prints nothing and never decides exit codes.
//!
//! Policy owned here: writes to production need explicit consent, `--readonly` allows no
//! writes at all, and a statement that never ran (refused) records no event.
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::{
    BatchOutcome, DatabaseRef, ExecOptions, ExecStatement, FailureKind, LocalBackend,
    StatementResult, one_line,
};
use crate::metrics::{MetricsStore, QueryError, QueryEvent};
use crate::model::EnvKind;
use crate::store::Store;

mod ingest;
mod traffic;

pub use ingest::{BadLine, IngestError, IngestReport, MAX_LINE_BYTES, ingest, open_input};
pub use traffic::{
    ItemSummary, TrafficRequest, TrafficSummary, WorkItem, parse_workload, run_traffic,
};

/// The environment a statement runs on: its database and the release serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub env: String,
    /// Production's live release, or the release a preview was made for.
    pub release: Option<String>,
    pub db: DatabaseRef,
    pub production: bool,
}

/// Why an environment cannot take statements.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no environment {name:?}; environments: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error(
        "production has no database yet: the first promotion of a release with migrations creates it"
    )]
    NoProductionDatabase,
    #[error("preview {0} was cleaned up; its database is gone")]
    Deleted(String),
    #[error("environment {0} has no database")]
    NoDatabase(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<TargetError> for EngineError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Store(s) => EngineError::Store(s),
            other => EngineError::Input(other.to_string()),
        }
    }
}

/// Resolves an environment name (or its database id) to a [`Target`].
pub fn resolve_target(store: &Store, name: &str) -> Result<Target, TargetError> {
    let wanted = name.trim();
    let env = if wanted == PRODUCTION {
        Some(store.production()?)
    } else {
        match store.env(wanted)? {
            Some(e) => Some(e),
            None => store
                .envs(false)?
                .into_iter()
                .find(|e| e.database_id.as_deref() == Some(wanted)),
        }
    };
    let Some(env) = env else {
        let known = store
            .envs(false)?
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>();
        return Err(TargetError::Unknown {
            name: wanted.to_string(),
            known,
        });
    };
    let production = env.kind == EnvKind::Production;
    let Some(db) = env.database_id.clone() else {
        return Err(if production {
            TargetError::NoProductionDatabase
        } else if env.deleted_at.is_some() {
            TargetError::Deleted(env.name)
        } else {
            TargetError::NoDatabase(env.name)
        });
    };
    let release = if production {
        env.active_release.clone()
    } else {
        env.release_id
            .clone()
            .or_else(|| env.active_release.clone())
    };
    Ok(Target {
        env: env.name,
        release,
        db: DatabaseRef::new(db),
        production,
    })
}

/// Consent given for one execution.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecuteOptions {
    /// The operator agreed to change production (`--yes`).
    pub allow_production_writes: bool,
}

/// What [`Engine::execute`] ran and recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ExecOutcome {
    pub env: String,
    pub release: Option<String>,
    /// One per statement (SQL holding several statements runs them as one batch).
    pub results: Vec<StatementResult>,
    /// Events counted in the metrics store (0 on Cloudflare, where D1's analytics count the
    /// statements and the sync brings them in).
    pub recorded: usize,
    /// Why recording failed, when it did (the statements ran regardless).
    pub metrics_error: Option<String>,
}

impl Engine {
    /// Resolves an environment name to its database and release.
    pub fn target(&self, env: &str) -> Result<Target> {
        Ok(resolve_target(&self.store, env)?)
    }

    /// Runs `sql` (one statement, or several joined by `;`, as one batch) on an environment's
    /// database, measures each statement (duration, rows read/written/returned) and records
    /// it in the metrics store. A write to production needs `opts.allow_production_writes`
    /// (refused before anything runs: exit 4); `--readonly` refuses every write. An SQL error
    /// is recorded as an error event and returned as an error.
    pub fn execute(
        &self,
        env: &str,
        sql: &str,
        params: &[serde_json::Value],
        opts: ExecuteOptions,
    ) -> Result<ExecOutcome> {
        let target = self.target(env)?;
        let allow_writes = !self.readonly && (!target.production || opts.allow_production_writes);
        let outcome = self.backend.execute(
            &target.db,
            &[ExecStatement::new(sql, params.to_vec())],
            ExecOptions {
                allow_writes,
                rollback: false,
            },
        )?;
        let events = events_for(&target, &outcome);
        // On Cloudflare the statement is counted by D1's analytics (pulled by the sync);
        // counting it here too would count it twice. Its error, if any, is still kept.
        let only_errors = self.uses_d1_analytics();
        let (recorded, metrics_error) = match record_now(&self.ws.state_dir(), &events, only_errors)
        {
            Ok(()) if only_errors => (0, None),
            Ok(()) => (events.len(), None),
            Err(e) => {
                tracing::warn!(error = %e, "recording query events failed");
                (0, Some(e))
            }
        };
        if let Some(f) = outcome.failure {
            let shown = one_line(&f.sql, 80);
            return Err(match f.kind {
                FailureKind::Refused if self.readonly => EngineError::Refused(format!(
                    "--readonly: `{shown}` changes the database and was not run"
                )),
                FailureKind::Refused => EngineError::Refused(format!(
                    "`{shown}` would change production; run it again with --yes to confirm"
                )),
                FailureKind::Sql => EngineError::Input(format!(
                    "{} failed on {}: {} (in: {shown})",
                    if outcome.results.is_empty() {
                        "the statement".to_string()
                    } else {
                        format!("statement {}", f.index + 1)
                    },
                    target.env,
                    f.d1_message()
                )),
            });
        }
        Ok(ExecOutcome {
            env: target.env,
            release: target.release,
            results: outcome.results,
            recorded,
            metrics_error,
        })
    }

    /// A local backend for connections held open (serve, traffic), with this workspace's
    /// statement timeout.
    pub fn local_backend(&self) -> Result<LocalBackend> {
        if self.backend.kind() != "local" {
            return Err(EngineError::Input(format!(
                "this needs the local backend; the workspace uses {}",
                self.backend.kind()
            )));
        }
        Ok(super::connect::local_backend_for(&self.ws))
    }
}

/// The events for a batch: one per statement that ran, plus the failing one (SQL errors
/// only: a refused statement never ran).
pub fn events_for(target: &Target, outcome: &BatchOutcome) -> Vec<QueryEvent> {
    let mut events: Vec<QueryEvent> = outcome
        .results
        .iter()
        .map(|r| {
            let mut e = QueryEvent::for_sql(&target.env, &r.sql, r.meta.duration_ms);
            e.release = target.release.clone();
            e.rows_read = r.meta.rows_read;
            e.rows_written = r.meta.rows_written;
            e.rows_returned = r.rows.len() as u64;
            e
        })
        .collect();
    if let Some(f) = &outcome.failure
        && f.kind == FailureKind::Sql
    {
        let mut e = QueryEvent::for_sql(&target.env, &f.sql, f.duration_ms);
        e.release = target.release.clone();
        e.error = Some(QueryError {
            code: f.code.clone(),
            message: match f.offset {
                Some(at) => format!("{} at offset {at}", f.message),
                None => f.message.clone(),
            },
        });
        events.push(e);
    }
    events
}

/// Writes events to the workspace's metrics store in one transaction (`only_errors`: just
/// their errors, to the recent-error ring).
fn record_now(
    state_dir: &Path,
    events: &[QueryEvent],
    only_errors: bool,
) -> std::result::Result<(), String> {
    if events.is_empty() || (only_errors && !events.iter().any(QueryEvent::is_error)) {
        return Ok(());
    }
    MetricsStore::open(state_dir)
        .and_then(|mut m| {
            if only_errors {
                m.record_errors(events)
            } else {
                m.record(events)
            }
        })
        .map_err(|e| e.to_string())
}

/// Flush a batch once it holds this many events…
const FLUSH_EVENTS: usize = 2_000;
/// …or once its oldest event waited this long.
const FLUSH_AFTER: Duration = Duration::from_millis(200);

enum Msg {
    Events(Vec<QueryEvent>),
    Stop,
}

/// Records events on a background thread in batches (one transaction per batch), so a
/// server or a load generator never waits on the metrics store.
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<RecorderStats>>,
}

/// Where traffic sources send their events; cheap to clone, one per thread.
#[derive(Clone)]
pub struct EventSink(mpsc::Sender<Msg>);

impl EventSink {
    /// Queues events for the next batch (dropped silently once the recorder stopped).
    pub fn send(&self, events: Vec<QueryEvent>) {
        if !events.is_empty() {
            let _ = self.0.send(Msg::Events(events));
        }
    }
}

/// What a recorder wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecorderStats {
    pub recorded: u64,
    pub batches: u64,
    /// Events lost because a batch could not be written.
    pub lost: u64,
    pub last_error: Option<String>,
}

impl Recorder {
    /// Opens the metrics store in `state_dir` and starts the recording thread.
    pub fn start(state_dir: &Path) -> Result<Recorder> {
        let store = MetricsStore::open(state_dir)
            .map_err(|e| EngineError::Input(format!("opening the metrics store: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("d1ops-recorder".into())
            .spawn(move || record_loop(store, rx))
            .map_err(|e| EngineError::Input(format!("starting the metrics recorder: {e}")))?;
        Ok(Recorder {
            tx,
            thread: Some(thread),
        })
    }

    pub fn sink(&self) -> EventSink {
        EventSink(self.tx.clone())
    }

    /// Writes everything queued so far, stops the thread and says what it wrote.
    pub fn finish(mut self) -> RecorderStats {
        let _ = self.tx.send(Msg::Stop);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.tx.send(Msg::Stop);
            let _ = t.join();
        }
    }
}

fn record_loop(mut store: MetricsStore, rx: mpsc::Receiver<Msg>) -> RecorderStats {
    let mut stats = RecorderStats::default();
    let mut pending: Vec<QueryEvent> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let mut flush = |pending: &mut Vec<QueryEvent>, stats: &mut RecorderStats| {
        if pending.is_empty() {
            return;
        }
        match store.record(pending) {
            Ok(()) => {
                stats.recorded += pending.len() as u64;
                stats.batches += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, events = pending.len(), "recording a batch of query events failed");
                stats.lost += pending.len() as u64;
                stats.last_error = Some(e.to_string());
            }
        }
        pending.clear();
    };
    loop {
        let wait = oldest.map_or(Duration::from_secs(3600), |t| {
            FLUSH_AFTER.saturating_sub(t.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok(Msg::Events(events)) => {
                oldest.get_or_insert_with(Instant::now);
                pending.extend(events);
                if pending.len() >= FLUSH_EVENTS {
                    flush(&mut pending, &mut stats);
                    oldest = None;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                flush(&mut pending, &mut stats);
                oldest = None;
            }
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Whatever was queued before the stop still counts.
                while let Ok(Msg::Events(events)) = rx.try_recv() {
                    pending.extend(events);
                }
                flush(&mut pending, &mut stats);
                return stats;
            }
        }
    }
}
