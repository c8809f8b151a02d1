//! What one request does, without HTTP: resolve the environment (cached for a second), take
//! a connection from that database's pool, run the batch, record its events, and say what
//! to answer. Blocking work; the HTTP layer runs it on tokio's blocking pool.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backend::{
    BackendError, ExecOptions, ExecStatement, FailureKind, LocalBackend, LocalSession,
    StatementFailure, StatementResult,
};
use crate::engine::observe::{EventSink, Target, TargetError, events_for, resolve_target};
use crate::store::Store;

/// How long a resolved environment is trusted (a promotion or cleanup shows up after this).
const TARGET_TTL: Duration = Duration::from_secs(1);
/// Idle connections kept per database.
const MAX_IDLE: usize = 16;

/// The shared state of a running server.
pub struct App {
    backend: LocalBackend,
    store: Mutex<Store>,
    targets: Mutex<HashMap<String, (Instant, Resolved)>>,
    pools: Mutex<HashMap<String, Vec<LocalSession>>>,
    sink: EventSink,
    allow_production_writes: bool,
    readonly: bool,
    pub requests: AtomicU64,
    pub statements: AtomicU64,
}

#[derive(Clone)]
enum Resolved {
    Found(Target),
    Missing(String),
    Broken(String),
}

/// What to answer.
pub enum Reply {
    Ok(Vec<StatementResult>),
    /// An SQL error: the batch was rolled back.
    Failed(StatementFailure),
    /// A write refused on production.
    Refused(String),
    NotFound(String),
    Internal(String),
}

impl App {
    pub fn new(
        state_dir: &Path,
        backend: LocalBackend,
        sink: EventSink,
        allow_production_writes: bool,
        readonly: bool,
    ) -> anyhow::Result<App> {
        Ok(App {
            backend,
            store: Mutex::new(Store::open(state_dir)?),
            targets: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            sink,
            allow_production_writes,
            readonly,
            requests: AtomicU64::new(0),
            statements: AtomicU64::new(0),
        })
    }

    /// Runs a batch on environment `env` and records it.
    pub fn run(&self, env: &str, batch: &[ExecStatement]) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let target = match self.target(env) {
            Resolved::Found(t) => t,
            Resolved::Missing(m) => return Reply::NotFound(m),
            Resolved::Broken(m) => return Reply::Internal(m),
        };
        let mut session = match self.session(&target) {
            Ok(s) => s,
            Err(BackendError::NotFound(_)) => {
                self.forget(env);
                return Reply::NotFound(format!(
                    "the database of environment {} could not be found",
                    target.env
                ));
            }
            Err(e) => return Reply::Internal(e.to_string()),
        };
        let opts = ExecOptions {
            allow_writes: !self.readonly && (!target.production || self.allow_production_writes),
            rollback: false,
        };
        let outcome = session.execute(batch, opts);
        self.give_back(&target, session);
        let events = events_for(&target, &outcome);
        self.statements
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.sink.send(events);
        match outcome.failure {
            None => Reply::Ok(outcome.results),
            Some(f) if f.kind == FailureKind::Refused => Reply::Refused(format!(
                "{} (refused: {})",
                if self.readonly {
                    "d1ops serve was started with --readonly and runs no writes"
                } else {
                    "d1ops serve does not write to production unless started with --allow-production-writes; point the app at a preview environment"
                },
                crate::backend::one_line(&f.sql, 80)
            )),
            Some(f) => Reply::Failed(f),
        }
    }

    fn target(&self, env: &str) -> Resolved {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, r)) = targets.get(env)
            && at.elapsed() < TARGET_TTL
        {
            return r.clone();
        }
        let resolved = {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            match resolve_target(&store, env) {
                Ok(t) => Resolved::Found(t),
                Err(TargetError::Store(e)) => Resolved::Broken(e.to_string()),
                Err(e) => Resolved::Missing(format!("The database {env} could not be found: {e}")),
            }
        };
        targets.insert(env.to_string(), (Instant::now(), resolved.clone()));
        resolved
    }

    fn forget(&self, env: &str) {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        targets.remove(env);
    }

    /// An idle connection to the target's database, or a new one.
    fn session(&self, target: &Target) -> Result<LocalSession, BackendError> {
        let idle = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            pools.get_mut(&target.db.id).and_then(Vec::pop)
        };
        match idle {
            Some(s) => Ok(s),
            None => {
                let conn = self.backend.open(&target.db)?;
                LocalSession::new(conn, self.backend.statement_timeout())
                    .map_err(|e| BackendError::Other(format!("opening {}: {e}", target.env)))
            }
        }
    }

    fn give_back(&self, target: &Target, session: LocalSession) {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let pool = pools.entry(target.db.id.clone()).or_default();
        if pool.len() < MAX_IDLE {
            pool.push(session);
        }
    }
}
