//! The release lifecycle engine: deploy, gate, approve, promote, cleanup and crash recovery.
//!
//! The CLI and the console are two thin faces over these calls. The engine owns the state
//! machine and the guarantees in DESIGN.md; it does no terminal I/O and prints nothing.
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::backend::{Backend, BackendError, DatabaseRef, LedgerRow};
use crate::model::{Failure, Release};
use crate::store::{Store, StoreError};
use crate::workspace::{ConfigError, DiscoveryError, Workspace};

pub mod analytics;
pub mod capacity;
mod cleanup;
pub mod connect;
mod decisions;
mod deploy;
pub mod observe;
mod promote;
mod recovery;
mod restore;
mod rollback;
mod views;

pub use analytics::{Freshness, SyncOutcome, SyncReport};
pub use capacity::{
    CostProjection, ForecastItem, ForecastReport, IndexSuggestion, MonitorData, MonitorWindow,
    QueryPlan, UsageReport, WatchReport, WatchStatus, WeeklyReport,
};
pub use cleanup::{CleanupItem, CleanupReport, SnapshotView};
pub use decisions::ApproveOutcome;
pub use deploy::{DeployOutcome, DeployRequest};
pub use promote::PromoteOutcome;
pub use recovery::RecoveryReport;
pub use restore::{RestoreOutcome, RestorePlan};
pub use rollback::{ProbeFailure, RollbackOutcome};
pub use views::{EnvView, ReleaseDetail, ReleaseDiff};

/// The production environment's name (and, locally, its database id).
pub const PRODUCTION: &str = "production";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("no release {0}; `d1ops releases` lists them")]
    UnknownRelease(String),
    #[error("release id {prefix} is ambiguous: it matches {}", matches.join(", "))]
    AmbiguousRelease {
        prefix: String,
        matches: Vec<String>,
    },
    /// Refused by policy or state: exit 4.
    #[error("{0}")]
    Refused(String),
    /// The promotion ran and was rolled back: exit 5.
    #[error("promotion of {release} failed and was rolled back; production is unchanged: {}", failure_text(.failure))]
    PromotionFailed {
        release: String,
        failure: Box<Failure>,
    },
    #[error("{0}")]
    Input(String),
    #[error("the console is read-only (--readonly); {0} is not available")]
    ReadOnly(&'static str),
}

fn failure_text(f: &Failure) -> String {
    let mut s = String::new();
    if let Some(m) = &f.migration {
        s.push_str(m);
        if let Some(l) = f.line {
            s.push_str(&format!(":{l}"));
        }
        s.push_str(": ");
    }
    s.push_str(&f.error);
    if let Some(st) = &f.statement {
        s.push_str(&format!(" (in: {})", crate::backend::one_line(st, 100)));
    }
    s
}

impl EngineError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Refused(_) => 4,
            EngineError::PromotionFailed { .. } => 5,
            _ => 1,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Options for opening a workspace.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Who acts (`--as`, else `D1OPS_USER`, else the OS user).
    pub actor: Option<String>,
    /// No writes at all: no recovery, no actions.
    pub readonly: bool,
}

/// An opened workspace: configuration, state store and backend.
pub struct Engine {
    pub ws: Workspace,
    pub store: Store,
    pub backend: Box<dyn Backend>,
    pub actor: String,
    pub readonly: bool,
    /// What recovery did when the engine opened, if anything.
    pub recovered: Option<RecoveryReport>,
}

/// The acting user: `--as`, else `D1OPS_USER`, else the OS user.
pub fn resolve_actor(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("D1OPS_USER")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("USERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

impl Engine {
    /// Opens the workspace at `root`, then recovers an interrupted promotion if there is one.
    pub fn open(root: &Path, opts: EngineOptions) -> Result<Engine> {
        let ws = Workspace::load(root)?;
        let store = Store::open(&ws.state_dir())?;
        let backend = connect::backend_for(&ws)?;
        let mut engine = Engine {
            ws,
            store,
            backend,
            actor: resolve_actor(opts.actor.as_deref()),
            readonly: opts.readonly,
            recovered: None,
        };
        let production = engine.store.production()?;
        let prod_ref = engine.backend.production_ref();
        if production.database_id.as_deref() != Some(prod_ref.id.as_str())
            && engine.store.lock()?.is_none()
            && engine.backend.exists(&prod_ref)?
        {
            // A production database put in place by hand, by an older workspace, or named in
            // the configuration (D1): adopt it.
            engine
                .store
                .set_env_database(PRODUCTION, Some(&prod_ref.id))?;
        }
        if !engine.readonly {
            engine.recovered = engine.recover()?;
        }
        Ok(engine)
    }

    fn ensure_writable(&self, what: &'static str) -> Result<()> {
        if self.readonly {
            return Err(EngineError::ReadOnly(what));
        }
        Ok(())
    }

    /// Finds a release by full id or unique prefix (case-insensitive).
    pub fn resolve(&self, id: &str) -> Result<Release> {
        let wanted = id.trim();
        if wanted.is_empty() {
            return Err(EngineError::UnknownRelease("(empty id)".into()));
        }
        if let Some(r) = self.store.release(&wanted.to_uppercase())? {
            return Ok(r);
        }
        let matches = self.store.release_ids_with_prefix(wanted, 6)?;
        match matches.len() {
            0 => Err(EngineError::UnknownRelease(wanted.to_string())),
            1 => self
                .store
                .release(&matches[0])?
                .ok_or_else(|| EngineError::UnknownRelease(wanted.to_string())),
            _ => Err(EngineError::AmbiguousRelease {
                prefix: wanted.to_string(),
                matches,
            }),
        }
    }

    /// Production's database, when it has one.
    pub fn production_db(&self) -> Result<Option<DatabaseRef>> {
        Ok(self.store.production()?.database_id.map(DatabaseRef::new))
    }

    /// Production's applied-migrations ledger (empty without a database).
    pub fn production_ledger(&self) -> Result<Vec<LedgerRow>> {
        match self.production_db()? {
            Some(db) => Ok(self.backend.ledger(&db, &self.ws.config.migrations_table)?),
            None => Ok(Vec::new()),
        }
    }

    /// A digest of what production is: its applied set and its schema. A preview records it
    /// when cloned; promotion refuses when it no longer matches.
    pub fn production_fingerprint(&self) -> Result<String> {
        let Some(db) = self.production_db()? else {
            return Ok("empty".into());
        };
        let table = &self.ws.config.migrations_table;
        let ledger = self.backend.ledger(&db, table)?;
        let schema = self.backend.schema(&db, table)?;
        let mut h = Sha256::new();
        for row in &ledger {
            h.update(row.name.as_bytes());
            h.update(b"\n");
        }
        h.update(crate::schema::schema_fingerprint(&schema).as_bytes());
        Ok(hex::encode(h.finalize()))
    }

    /// Appends an audit event as this engine's actor.
    fn audit(
        &self,
        action: &str,
        release: Option<&str>,
        env: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<()> {
        Ok(self
            .store
            .audit(&self.actor, action, release, env, &detail)?)
    }
}
