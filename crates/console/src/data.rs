//! What the worker reads for the console, as plain data: the workspace [`Snapshot`] the
//! lists show, a release's [`DetailData`], the Capacity tab's [`CapacityData`] and what
//! the promote / rollback / restore confirmations show.
//!
//! Engine read models only (through `engine`'s public API); nothing here performs I/O or
//! knows about the console's state, dialogs or requests.
use crate::engine::view::{ChainStatus, DiffLine};
use crate::engine::{
    CleanupItem, EnvView, ForecastReport, ReleaseDetail, ReleaseDiff, SnapshotView, UsageReport,
    WatchReport,
};
use crate::model::{AuditEvent, Environment, GateReport, Release};

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
    /// Why the engine would refuse the promotion now: `Engine::promotion_blocker`'s answer.
    pub blocker: Option<String>,
    pub gate: Option<GateReport>,
    pub approvals: usize,
    pub required: u32,
    pub pending: Vec<String>,
    pub diff: Vec<DiffLine>,
    /// The targets whose code ships after the migrations, in order (`app (command)`).
    pub code: Vec<String>,
}

/// What the rollback / restore confirmation shows, already in words.
#[derive(Debug, Clone, Default)]
pub struct RecoveryPreview {
    /// Why it cannot go ahead from the console, if so.
    pub blocker: Option<String>,
    pub lines: Vec<String>,
}
