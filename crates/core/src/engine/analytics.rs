//! Monitor and capacity on the cloudflare backend. An app's traffic runs on Cloudflare, so
//! its numbers come from D1's GraphQL Analytics API: a sync pulls every environment's new
//! buckets into the metrics store (per-query minute/hour rollups, daily totals, storage) and
//! the Monitor, the watch window, `usage`, `forecast` and `report weekly` read them like
//! local metrics.
//!
//! Policy owned here: a sync runs at most every `[cloudflare].analytics_refresh` (unless
//! forced), never makes more than `[cloudflare].analytics_budget` GraphQL requests in any 5
//! minutes (counted in the store, so every d1ops process on the workspace shares it), waits 5
//! minutes after Cloudflare answers 429, and never fails a reader: when it cannot sync, the
//! cached data stays and [`Freshness`] says why. No terminal I/O.
//!
//! The types a face shows (freshness, budget, outcome) and the readers are here in every
//! build; the sync itself (`sync`, with `plan` and `pull`) needs the Cloudflare client and
//! exists only with the core's `d1` feature.
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Engine, EngineError, Result, capacity::open_metrics};
use crate::metrics::MetricsStore;
use crate::metrics::analytics::ApplyReport;
use crate::model::now_utc;
use crate::workspace::config::BackendKind;

// What to fetch, how pages are read and the sync itself need the Cloudflare client.
#[cfg(feature = "d1")]
mod plan;
#[cfg(feature = "d1")]
mod pull;
#[cfg(feature = "d1")]
mod sync;
// Where queries ran (`servedByRegion`): the types in every build, the read with `d1`.
pub mod regions;

#[cfg(feature = "d1")]
pub use plan::{BACKFILL_DAYS, MINUTE_DETAIL, SETTLE};

/// The window Cloudflare's GraphQL budget is counted over.
pub const BUDGET_WINDOW: Duration = Duration::minutes(5);
/// Where the numbers come from, as `freshness.source` says.
pub const SOURCE: &str = "cloudflare-graphql";

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// New buckets were read and stored.
    Synced,
    /// The last sync is younger than `analytics_refresh`: nothing was asked.
    Cached,
    /// d1ops' share of the GraphQL budget is used up for now.
    Budget,
    /// Cloudflare answered 429; nothing is asked until the wait is over.
    RateLimited,
    /// Cloudflare could not be read (the message says why).
    Failed,
}

/// GraphQL requests made in the current window against the configured share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetUse {
    pub used: u32,
    pub limit: u32,
    pub window_seconds: i64,
}

/// How current the analytics are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    /// `cloudflare-graphql`.
    pub source: &'static str,
    /// The last successful sync (`None`: never).
    pub synced_at: Option<DateTime<Utc>>,
    /// Seconds since `synced_at`, when this was read.
    pub age_seconds: Option<i64>,
    /// Start of the newest bucket that held queries.
    pub newest_bucket: Option<DateTime<Utc>>,
    /// What the last attempt did.
    pub last_outcome: Option<SyncOutcome>,
    /// Why the data may be older than `analytics_refresh` (budget, 429, an error).
    pub note: Option<String>,
    /// The earliest the next sync asks Cloudflare.
    pub next_sync_at: Option<DateTime<Utc>>,
    pub budget: BudgetUse,
}

impl Freshness {
    /// "D1 analytics as of 12:04 (3 min ago), newest bucket 12:03" plus the note, if any.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let mut s = match self.synced_at {
            None => "D1 analytics not synced yet".to_string(),
            Some(t) => format!(
                "D1 analytics as of {} ({})",
                t.format("%H:%M"),
                ago(now.signed_duration_since(t))
            ),
        };
        if let Some(b) = self.newest_bucket {
            s.push_str(&format!(", newest bucket {}", b.format("%H:%M")));
        }
        if let Some(n) = &self.note {
            s.push_str(&format!("; {n}"));
        }
        s
    }
}

/// "just now", "3 min ago", "2 h ago", "4 days ago".
fn ago(d: Duration) -> String {
    let m = d.num_minutes();
    match m {
        i64::MIN..=0 => "just now".into(),
        1..=59 => format!("{m} min ago"),
        60..=2879 => format!("{} h ago", m / 60),
        _ => format!("{} days ago", m / 1440),
    }
}

/// What `sync_d1_analytics` did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub outcome: SyncOutcome,
    /// GraphQL requests this sync made.
    pub requests: u32,
    /// Databases read.
    pub databases: usize,
    /// Buckets added, replaced, removed and fetched again unchanged.
    pub buckets: ApplyReport,
    /// Query groups cut off by a page that could not be continued (10,000 in one bucket).
    pub truncated: usize,
    pub freshness: Freshness,
}

impl Engine {
    /// Whether this workspace's numbers come from D1's analytics.
    pub fn uses_d1_analytics(&self) -> bool {
        self.ws.config.backend == BackendKind::Cloudflare
    }

    /// Pulls new D1 analytics into the metrics store (cloudflare backend only). Skipped when
    /// the last attempt is younger than `analytics_refresh` unless `force`; never exceeds the
    /// GraphQL budget. Cloudflare failing is an outcome, not an error: the report says what
    /// happened and the cached data stays.
    pub fn sync_d1_analytics(&self, force: bool) -> Result<SyncReport> {
        if !self.uses_d1_analytics() {
            return Err(EngineError::Input(
                "D1 analytics are read from Cloudflare; this workspace uses backend = \"local\", whose metrics are recorded as statements run".into(),
            ));
        }
        #[cfg(feature = "d1")]
        {
            sync::run(self, force)
        }
        #[cfg(not(feature = "d1"))]
        {
            let _ = force;
            Err(EngineError::Input(super::connect::NO_D1.into()))
        }
    }

    /// Syncs if due (cloudflare backend) and returns how fresh the analytics are; `None` on
    /// the local backend. Never fails: a problem is logged and shown in the freshness note.
    pub fn refresh_analytics(&self) -> Option<Freshness> {
        if !self.uses_d1_analytics() {
            return None;
        }
        match self.sync_d1_analytics(false) {
            Ok(report) => Some(report.freshness),
            Err(e) => {
                tracing::warn!(error = %e, "D1 analytics could not be synced");
                let mut f = self.analytics_freshness().ok().flatten()?;
                f.note = Some(format!("could not sync: {e}"));
                Some(f)
            }
        }
    }

    /// How fresh the analytics are, without syncing; `None` on the local backend.
    pub fn analytics_freshness(&self) -> Result<Option<Freshness>> {
        if !self.uses_d1_analytics() {
            return Ok(None);
        }
        let metrics = open_metrics(&self.ws)?;
        Ok(Some(self.freshness_from(&metrics, now_utc())?))
    }

    fn freshness_from(&self, m: &MetricsStore, now: DateTime<Utc>) -> Result<Freshness> {
        let cfg = self.ws.config.cloudflare.clone().unwrap_or_default();
        let status = m.analytics_status()?;
        let (used, _) = m.graphql_calls(now, BUDGET_WINDOW)?;
        let newest = (m.sync_cursors()?.iter())
            .filter_map(|c| c.newest_bucket)
            .max();
        let refresh = Duration::from_std(cfg.analytics_refresh()).unwrap_or(Duration::minutes(5));
        let last_outcome = status.outcome.as_deref().map(|o| match o {
            "synced" => SyncOutcome::Synced,
            "budget" => SyncOutcome::Budget,
            "rate_limited" => SyncOutcome::RateLimited,
            _ => SyncOutcome::Failed,
        });
        let next = status.attempted_at.map(|t| t + refresh);
        let next = match status.blocked_until {
            Some(b) if next.is_none_or(|n| b > n) => Some(b),
            _ => next,
        };
        Ok(Freshness {
            source: SOURCE,
            synced_at: status.synced_at,
            age_seconds: status.synced_at.map(|t| (now - t).num_seconds().max(0)),
            newest_bucket: newest,
            last_outcome,
            note: status
                .message
                .filter(|_| last_outcome != Some(SyncOutcome::Synced))
                .map(|m| format!("showing cached data: {m}")),
            next_sync_at: next,
            budget: BudgetUse {
                used,
                limit: cfg.analytics_budget,
                window_seconds: BUDGET_WINDOW.num_seconds(),
            },
        })
    }

    /// Until when an environment's analytics are final (cloudflare backend: its database's
    /// sync cursor, the epoch before its first sync); `None` locally, where metrics are final
    /// as recorded.
    pub fn analytics_final_until(&self, env: &str) -> Result<Option<DateTime<Utc>>> {
        if !self.uses_d1_analytics() {
            return Ok(None);
        }
        let db = self.store.env(env)?.and_then(|e| e.database_id);
        let cursors = open_metrics(&self.ws)?.sync_cursors()?;
        let settled = (cursors.iter())
            .find(|c| Some(&c.database_id) == db.as_ref())
            .map(|c| c.settled_to);
        Ok(Some(settled.unwrap_or_default()))
    }
}
