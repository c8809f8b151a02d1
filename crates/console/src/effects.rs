//! What the console's functional core asks the shell to do ([`Effect`], [`Request`]) and
//! what comes back from the engine worker ([`Reply`]).
//!
//! Plain data only: nothing here performs I/O, touches the engine or knows about the
//! console's state; `update` builds requests, the worker answers them.
use crate::data::{CapacityData, DetailData, PromotePreview, RecoveryPreview, Snapshot};
use crate::engine::view::TopBy;
use crate::engine::{CleanupItem, IndexSuggestion, MonitorData, MonitorWindow, QueryPlan};

/// A side effect for the shell to carry out.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a request to the engine worker; exactly one [`Reply`] comes back for it.
    Engine(Request),
    /// Interrupt the engine's cancellable reads now (the operator cancelled what they were
    /// for); the interrupted request still answers, with an error nobody shows.
    Cancel,
    /// Put this text on the clipboard: the shell writes it as an OSC 52 sequence (works over
    /// SSH, and in tmux with `set-clipboard on`).
    Copy(String),
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
    /// Acknowledge the live release's regressed watch.
    AckWatch,
    /// The next step of a release's worker rollout (refused before it is due).
    RolloutContinue(String),
    /// Abort a release's worker rollout: the previous version back at 100%.
    RolloutAbort(String),
    /// What undoing the last restore would do (`restore --undo`'s plan, in words).
    RestoreUndoPreview,
    /// Undo the last restore.
    RestoreUndo,
    /// The Monitor's data for an environment (`None`: production), window and order.
    Monitor {
        env: Option<String>,
        window: MonitorWindow,
        order: TopBy,
        /// Also list d1ops' own statements (labelled), not only the app's.
        with_d1ops: bool,
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
    /// Whether the request changes production (quitting while it runs leaves it to
    /// recovery, so the console asks first).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Promote(_) | Request::Restore(_) | Request::Rollback(_) | Request::RestoreUndo
        )
    }

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
            Request::AckWatch => "acknowledging the watch".into(),
            Request::RolloutContinue(_) => "taking the next rollout step".into(),
            Request::RolloutAbort(_) => "aborting the rollout".into(),
            Request::RestoreUndoPreview => "comparing with the pre-restore snapshot".into(),
            Request::RestoreUndo => "undoing the last restore".into(),
            Request::Monitor { .. } => "reading metrics".into(),
            Request::QueryPlan { .. } => "reading the query plan".into(),
            Request::Capacity => "reading usage".into(),
            Request::WriteIndex(_) => "writing the migration".into(),
        }
    }
}

/// The worker's answer to one [`Request`].
#[derive(Debug, Clone)]
pub enum Reply {
    /// The running request's current stage ("apply 3/10 migrations"), while it runs; not an
    /// answer (the request is still in flight).
    Progress(String),
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
    /// What undoing the last restore would do.
    UndoPreview(Result<Box<RecoveryPreview>, String>),
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
