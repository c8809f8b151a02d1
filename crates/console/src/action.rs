//! The closed vocabularies of the console's functional core: what can happen
//! ([`Action`]), what the core asks the shell to do ([`Effect`], [`Request`]) and what
//! comes back from the engine worker ([`Reply`]).
//!
//! Plain data only: nothing here performs I/O or touches the engine.
use chrono::{DateTime, Utc};

use crate::engine::{
    CleanupItem, EnvView, ForecastReport, IndexSuggestion, MonitorData, MonitorWindow, QueryPlan,
    ReleaseDetail, ReleaseDiff, SnapshotView, UsageReport, WatchReport,
};
use crate::metrics::TopBy;
use crate::model::{AuditEvent, Environment, GateReport, Release};
use crate::schema::DiffLine;
use crate::store::ChainStatus;

use super::state::Tab;

/// Everything `update` reacts to: key bindings (after the keymap resolved them), mouse,
/// terminal changes, clock ticks and worker replies.
#[derive(Debug, Clone)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Back,
    /// `q`: back out of whatever is open, quit at the top level.
    Quit,
    /// Ctrl-C: quit from anywhere.
    ForceQuit,
    Filter,
    Help,
    Refresh,
    NextTab,
    PrevTab,
    GoTab(Tab),
    NextSub,
    PrevSub,
    Approve,
    Promote,
    Abandon,
    Cleanup,
    /// `R`: switch production's code back to the selected release.
    Rollback,
    /// `S`: restore production's database to before the selected release.
    Restore,
    /// Monitor: the next environment.
    NextEnv,
    /// Monitor: the next time window (5m, 1h, 24h, 7d).
    NextWindow,
    /// Monitor: the next order of the top queries.
    NextOrder,
    /// Monitor: write the selected query's suggested index as the next migration.
    WriteIndex,
    /// Dialog: move focus between Cancel and Confirm.
    FocusNext,
    FocusPrev,
    /// Dialog: press the focused button.
    Press,
    /// Dialog or filter: close without acting.
    Cancel,
    /// Filter: keep the typed filter and return to the list.
    Accept,
    Input(char),
    Backspace,
    Click {
        col: u16,
        row: u16,
    },
    WheelUp,
    WheelDown,
    Resize(u16, u16),
    Tick(DateTime<Utc>),
    Reply(Reply),
}

/// A side effect for the shell to carry out.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a request to the engine worker; exactly one [`Reply`] comes back for it.
    Engine(Request),
}

/// Work for the engine worker.
#[derive(Debug, Clone)]
pub enum Request {
    Refresh,
    Detail(String),
    PromotePreview(String),
    Approve {
        id: String,
        note: Option<String>,
    },
    Promote(String),
    Abandon {
        id: String,
        note: Option<String>,
    },
    CleanupPlan,
    Cleanup(Vec<CleanupItem>),
    /// What a rollback to / restore before this release would do (probes on a copy, or the
    /// loss report).
    RollbackPreview(String),
    RestorePreview(String),
    Rollback(String),
    Restore(String),
    /// The Monitor's data for an environment (`None`: production), window and order.
    Monitor {
        env: Option<String>,
        window: MonitorWindow,
        order: TopBy,
    },
    /// The plan of one query on an environment, with a suggested index.
    QueryPlan {
        env: String,
        text: String,
    },
    /// Usage, limits, forecasts and stale previews (samples today's usage first).
    Capacity,
    /// Write a suggested index as the workspace's next migration file.
    WriteIndex(IndexSuggestion),
}

impl Request {
    /// What the spinner says while this request runs.
    pub fn label(&self) -> String {
        match self {
            Request::Refresh => "refreshing".into(),
            Request::Detail(_) => "loading release".into(),
            Request::PromotePreview(_) => "checking the gate".into(),
            Request::Approve { .. } => "approving".into(),
            Request::Promote(_) => "promoting".into(),
            Request::Abandon { .. } => "abandoning".into(),
            Request::CleanupPlan => "finding stale previews".into(),
            Request::Cleanup(items) => format!("deleting {} preview(s)", items.len()),
            Request::RollbackPreview(_) => "probing a copy of production".into(),
            Request::RestorePreview(_) => "comparing with the recovery point".into(),
            Request::Rollback(_) => "rolling back".into(),
            Request::Restore(_) => "restoring".into(),
            Request::Monitor { .. } => "reading metrics".into(),
            Request::QueryPlan { .. } => "reading the query plan".into(),
            Request::Capacity => "reading usage".into(),
            Request::WriteIndex(_) => "writing the migration".into(),
        }
    }
}

/// Everything the workspace holds that the lists show, read in one go.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub releases: Vec<Release>,
    pub envs: Vec<EnvView>,
    pub production: Option<Environment>,
    pub audit: Vec<AuditEvent>,
    pub chain: Option<ChainStatus>,
    /// Recovery points with their retention.
    pub snapshots: Vec<SnapshotView>,
    /// The live release's post-promotion watch.
    pub watch: Option<WatchReport>,
    /// Why production's ledger disagrees with d1ops' record, when it does.
    pub ledger: Option<String>,
}

/// What the Capacity tab shows, read in one go.
#[derive(Debug, Clone)]
pub struct CapacityData {
    pub usage: UsageReport,
    pub forecast: ForecastReport,
    /// Stale previews cleanup would delete, with their sizes.
    pub stale: Vec<CleanupItem>,
}

/// A release detail and what promoting it would change.
#[derive(Debug, Clone)]
pub struct DetailData {
    pub detail: ReleaseDetail,
    pub diff: Result<ReleaseDiff, String>,
}

/// What the promote confirmation shows: gate summary, blocker, what will change.
#[derive(Debug, Clone, Default)]
pub struct PromotePreview {
    pub blocker: Option<String>,
    pub gate: Option<GateReport>,
    pub approvals: usize,
    pub required: u32,
    pub pending: Vec<String>,
    pub diff: Vec<DiffLine>,
}

/// What the rollback / restore confirmation shows, already in words.
#[derive(Debug, Clone, Default)]
pub struct RecoveryPreview {
    /// Why it cannot go ahead from the console, if so.
    pub blocker: Option<String>,
    pub lines: Vec<String>,
}

/// The worker's answer to one [`Request`].
#[derive(Debug, Clone)]
pub enum Reply {
    Snapshot(Result<Box<Snapshot>, String>),
    Detail {
        id: String,
        result: Result<Box<DetailData>, String>,
    },
    PromotePreview {
        id: String,
        result: Result<Box<PromotePreview>, String>,
    },
    CleanupPlan(Result<Vec<CleanupItem>, String>),
    RecoveryPreview {
        id: String,
        result: Result<Box<RecoveryPreview>, String>,
    },
    Monitor(Result<Box<MonitorData>, String>),
    QueryPlan {
        env: String,
        text: String,
        result: Result<Box<QueryPlan>, String>,
    },
    Capacity(Result<Box<CapacityData>, String>),
    /// The outcome of an action (approve, promote, abandon, cleanup), as one sentence.
    Outcome {
        ok: bool,
        text: String,
    },
}
