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

mod adopt;
pub mod analytics;
mod binding;
pub mod capacity;
mod cleanup;
mod code;
#[cfg(feature = "d1")]
mod code_worker;
pub mod connect;
mod decisions;
mod deploy;
pub mod ledger;
pub mod observe;
mod promote;
mod recovery;
mod restore;
mod rollback;
mod rollout;
mod schema_only;
mod views;

pub use adopt::{AdoptOutcome, AdoptPlan};
pub use analytics::{Freshness, SyncOutcome, SyncReport};
pub use binding::{Binding, DEFAULT_BINDING, DEFAULT_SERVE_LISTEN};
pub use capacity::{
    CostProjection, ForecastItem, ForecastReport, IndexSuggestion, MonitorData, MonitorWindow,
    QueryPlan, UsageReport, WatchReport, WatchStatus, WeeklyReport,
};
pub use cleanup::{CleanupItem, CleanupReport, SnapshotView};
pub use code::{CodeAction, CodeStepResult, TargetStepView, TargetView};
pub use decisions::ApproveOutcome;
pub use deploy::{DeployOutcome, DeployRequest};
pub use ledger::{
    LedgerDiff, LedgerError, LedgerReport, RecordEntry, RepairDecisions, RepairOutcome, RepairPlan,
};
pub use promote::PromoteOutcome;
pub use recovery::{RecoveryReport, UnlockOutcome};
pub use restore::{RestoreOutcome, RestorePlan};
pub use rollback::{ProbeFailure, RollbackOutcome};
pub use rollout::{RolloutCheck, RolloutMove, RolloutShare, RolloutState, RolloutView};
pub use views::{EnvView, ReleaseDetail, ReleaseDiff};

/// The types the engine's read calls hand out that are defined below it (metrics, store,
/// gate, schema), re-exported so a face — the console — names everything it shows through
/// the engine and the model alone.
pub mod view {
    pub use crate::gate::probes::ProbeReport;
    pub use crate::gate::probes::report::{ResultEntry, pair, ratio};
    pub use crate::metrics::forecast::Outcome;
    pub use crate::metrics::usage::{LimitMetric, LimitUse};
    pub use crate::metrics::{QueryStat, SeriesPoint, TopBy};
    pub use crate::schema::DiffLine;
    pub use crate::store::ChainStatus;
}

pub use crate::model::PRODUCTION;

/// Interrupts the long local reads running now (the loss comparison a restore shows first):
/// they fail at once, so a face can drop work the operator cancelled. Never stops a write.
pub use crate::backend::cancel::interrupt_reads;
/// Progress of long work, for the faces (the console names the running stage).
pub use crate::progress::{Sink as ProgressSink, Unit as ProgressUnit, with_sink as with_progress};

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
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("no release {0}; `d1ops releases` lists them")]
    UnknownRelease(String),
    #[error("release id {prefix} is ambiguous: it matches {}", matches.join(", "))]
    AmbiguousRelease {
        prefix: String,
        matches: Vec<String>,
    },
    /// Refused by policy or state; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The promotion ran and was rolled back: production is as it was.
    #[error("promotion of {release} failed and was rolled back; production is unchanged: {}", failure_text(.failure))]
    PromotionFailed {
        release: String,
        failure: Box<Failure>,
    },
    /// The migrations were applied (or there were none) but a target's code failed: the
    /// previous release's code serves again; `failure.outcome` says what became of the schema.
    #[error("{operation} of {release} failed while shipping its code: {}", code_failure_text(.failure))]
    CodeFailed {
        operation: &'static str,
        release: String,
        failure: Box<Failure>,
    },
    #[error("{0}")]
    Input(String),
    /// The machine, not the input, stopped the command (a lock, a read-only path, a full
    /// disk); nothing was left half done.
    #[error("{0}")]
    Environment(String),
    /// Production has a promotion's migrations (committed) but recording it failed; the
    /// lock stays and the next command completes it from production's ledger.
    #[error("{0}")]
    Unfinished(String),
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

fn code_failure_text(f: &Failure) -> String {
    let mut s = String::new();
    if let Some(t) = &f.target {
        s.push_str(&format!("target {t}: "));
    }
    s.push_str(&f.error);
    if let Some(o) = &f.outcome {
        s.push_str("; ");
        s.push_str(o);
    }
    s
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

/// The longest accepted user name, in characters: room for an e-mail address, short enough
/// that a name cannot flood a table or an audit line.
pub const MAX_USER_NAME: usize = 64;

/// The acting user: `--as`, else `D1OPS_USER`, else the OS user (`USER`, `LOGNAME`,
/// `USERNAME`); an empty variable counts as unset. The name is trimmed and must be non-empty,
/// at most `MAX_USER_NAME` characters and free of control characters: it is recorded in the
/// audit log and on releases and approvals, and shown on terminals, so a newline or ESC in it
/// would forge an audit line or drive the terminal of whoever reads it. Checked once, here,
/// before anything is written; a bad name is an input error naming where it came from.
pub fn resolve_actor(explicit: Option<&str>) -> Result<String> {
    let (name, source) = match explicit {
        Some(name) => (name.to_string(), "--as"),
        None => ["D1OPS_USER", "USER", "LOGNAME", "USERNAME"]
            .into_iter()
            .find_map(|var| {
                std::env::var(var)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (v, var))
            })
            .unwrap_or_else(|| ("unknown".into(), "the default")),
    };
    check_user_name(&name).map_err(|problem| {
        EngineError::Input(format!(
            "user name \"{}\" (from {source}) {problem}",
            name.escape_debug()
        ))
    })
}

/// `name` trimmed when it is an acceptable user name, else what is wrong with it.
fn check_user_name(name: &str) -> std::result::Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("is empty; give a name, e.g. --as alice".into());
    }
    if let Some(c) = name.chars().find(|&c| crate::model::is_unsafe_char(c)) {
        return Err(format!(
            "contains the control character {}; user names are plain text",
            c.escape_unicode()
        ));
    }
    let len = name.chars().count();
    if len > MAX_USER_NAME {
        return Err(format!(
            "is {len} characters long; at most {MAX_USER_NAME} are allowed"
        ));
    }
    Ok(name.to_string())
}

impl Engine {
    /// Opens the workspace at `root`, then recovers an interrupted promotion if there is one.
    pub fn open(root: &Path, opts: EngineOptions) -> Result<Engine> {
        // The user name first: a bad one is refused before anything is opened or written.
        let actor = resolve_actor(opts.actor.as_deref())?;
        let ws = Workspace::load(root)?;
        let store = Store::open(&ws.state_dir())?;
        let backend = connect::backend_for(&ws)?;
        let mut engine = Engine {
            ws,
            store,
            backend,
            actor,
            readonly: opts.readonly,
            recovered: None,
        };
        let production = engine.store.production()?;
        let prod_ref = engine.backend.production_ref();
        // The configured database is the database: a D1 production id other than the one
        // recorded is refused, naming both, until `d1ops adopt` switches it deliberately.
        // (`production` is the local backend's name, which promotion also records: no D1
        // database has it, so it names no other production.)
        if engine.backend.kind() == "cloudflare"
            && let Some(recorded) = production.database_id.as_deref()
            && recorded != prod_ref.id
            && recorded != PRODUCTION
        {
            return Err(adopt::mismatch(&prod_ref.id, recorded));
        }
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
            engine.recovered = engine.recover_on_open()?;
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

#[cfg(test)]
mod actor_tests {
    use super::{MAX_USER_NAME, check_user_name};
    use crate::model::same_person;

    #[test]
    fn user_names_are_trimmed() {
        assert_eq!(check_user_name("  alice \t").as_deref(), Ok("alice"));
        assert_eq!(check_user_name("Zoë Ops").as_deref(), Ok("Zoë Ops"));
    }

    #[test]
    fn empty_user_name_is_refused() {
        assert!(check_user_name("").is_err());
        assert!(check_user_name(" \t ").is_err());
    }

    #[test]
    fn control_characters_in_user_names_are_refused() {
        for bad in [
            "bob\nseq 9 alice release.approved",
            "bob\x1b]0;pwned\x07",
            "bob\rx",
            "a\u{9b}2J",
            "alice\u{202e}",
            "a\u{7f}",
        ] {
            let err = check_user_name(bad).expect_err(bad);
            assert!(err.contains("control character"), "{err}");
        }
    }

    #[test]
    fn overlong_user_name_is_refused() {
        assert!(check_user_name(&"a".repeat(MAX_USER_NAME)).is_ok());
        let err = check_user_name(&"a".repeat(MAX_USER_NAME + 1)).expect_err("too long");
        assert!(err.contains("at most 64"), "{err}");
    }

    #[test]
    fn identities_compare_without_case() {
        assert!(same_person("alice", "ALICE"));
        assert!(same_person(" Alice", "alice"));
        assert!(same_person("ÉVE", "éve"));
        assert!(!same_person("alice", "alicia"));
    }
}
