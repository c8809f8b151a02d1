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
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Engine, EngineError, Result, capacity::open_metrics, connect};
use crate::cloudflare::Client;
use crate::cloudflare::analytics::{self, Answer, QueryGroup, Request};
use crate::metrics::analytics::{
    AnalyticsBatch, AnalyticsStatus, ApplyReport, DatabasePull, SyncCursor, UsageTraffic,
};
use crate::metrics::usage::UsageSample;
use crate::metrics::{Histogram, MetricsStore, Resolution, Rollup, fingerprint};
use crate::model::now_utc;
use crate::workspace::config::BackendKind;

mod plan;
mod pull;

pub use plan::{BACKFILL_DAYS, MINUTE_DETAIL, SETTLE};

/// The window Cloudflare's GraphQL budget is counted over.
pub const BUDGET_WINDOW: Duration = Duration::minutes(5);
/// How long to wait after Cloudflare answered 429 ("try again after 5 minutes").
const RATE_LIMIT_WAIT: Duration = Duration::minutes(5);
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
        let cfg = self.ws.config.cloudflare.clone().unwrap_or_default();
        let mut metrics = open_metrics(&self.ws)?;
        let now = now_utc();
        let status = metrics.analytics_status()?;
        let refresh = Duration::from_std(cfg.analytics_refresh()).unwrap_or(Duration::minutes(5));
        let done =
            |m: &MetricsStore, outcome, requests, buckets, truncated| -> Result<SyncReport> {
                Ok(SyncReport {
                    outcome,
                    requests,
                    databases: self.analytics_databases()?.len(),
                    buckets,
                    truncated,
                    freshness: self.freshness_from(m, now_utc())?,
                })
            };
        if let Some(until) = status.blocked_until.filter(|t| *t > now) {
            tracing::info!(%until, "D1 analytics: waiting out Cloudflare's rate limit");
            return done(
                &metrics,
                SyncOutcome::RateLimited,
                0,
                ApplyReport::default(),
                0,
            );
        }
        let recent = status.attempted_at.is_some_and(|t| now - t < refresh);
        if recent && !force {
            return done(&metrics, SyncOutcome::Cached, 0, ApplyReport::default(), 0);
        }
        let (client, _, _) = connect::cloudflare_client(&self.ws)?;
        let databases = self.analytics_databases()?;
        let plan = plan::plan(now, &databases, &metrics.sync_cursors()?);
        let mut budget = Budget {
            metrics: &mut metrics,
            limit: cfg.analytics_budget,
            requests: 0,
        };
        let fetched = pull::fetch(&client, &plan, &mut budget);
        let requests = budget.requests;
        let mut status = AnalyticsStatus {
            attempted_at: Some(now),
            ..status
        };
        let (outcome, buckets, truncated) = match fetched {
            Ok(got) => {
                let batch = batch_of(&plan, &got, now);
                let applied = metrics.apply_analytics(&batch)?;
                status.synced_at = Some(now);
                status.outcome = Some("synced".into());
                status.message = None;
                tracing::info!(requests, ?applied, "D1 analytics synced");
                (SyncOutcome::Synced, applied, got.truncated)
            }
            Err(pull::Stop::Budget(spent)) => {
                status.outcome = Some("budget".into());
                status.message = Some(format!(
                    "d1ops' GraphQL budget is used up ({} of {} requests per 5 min); the next sync can run at {}",
                    spent.used,
                    spent.limit,
                    spent.free_at.format("%H:%M")
                ));
                (SyncOutcome::Budget, ApplyReport::default(), 0)
            }
            Err(pull::Stop::Api(e)) => {
                let limited = e.is_rate_limited();
                if limited {
                    status.blocked_until = Some(now + RATE_LIMIT_WAIT);
                }
                status.outcome = Some(if limited { "rate_limited" } else { "failed" }.into());
                status.message = Some(client.redact(&e.to_string()));
                tracing::warn!(error = %status.message.as_deref().unwrap_or(""), "D1 analytics sync failed");
                let outcome = if limited {
                    SyncOutcome::RateLimited
                } else {
                    SyncOutcome::Failed
                };
                (outcome, ApplyReport::default(), 0)
            }
            Err(pull::Stop::Store(e)) => return Err(e.into()),
        };
        metrics.set_analytics_status(&status)?;
        done(&metrics, outcome, requests, buckets, truncated)
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

    /// `(environment, D1 database id)` of every environment that has a database.
    fn analytics_databases(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .store
            .envs(false)?
            .into_iter()
            .filter_map(|e| e.database_id.map(|db| (e.name, db)))
            .collect())
    }
}

/// The budget as the fetch sees it: every request is logged before it is sent.
pub(super) struct Budget<'a> {
    metrics: &'a mut MetricsStore,
    limit: u32,
    requests: u32,
}

impl Budget<'_> {
    /// Takes one request from the budget, or says when one is free.
    fn take(&mut self) -> std::result::Result<(), pull::Stop> {
        match self
            .metrics
            .take_graphql_call(now_utc(), self.limit, BUDGET_WINDOW)
        {
            Ok(Ok(_)) => {
                self.requests += 1;
                Ok(())
            }
            Ok(Err(spent)) => Err(pull::Stop::Budget(spent)),
            Err(e) => Err(pull::Stop::Store(e)),
        }
    }
}

/// Sends one request if the budget allows.
pub(super) fn send(
    client: &Client,
    budget: &mut Budget,
    request: &Request,
) -> std::result::Result<Vec<Answer>, pull::Stop> {
    budget.take()?;
    analytics::send(client, request).map_err(pull::Stop::Api)
}

/// A query group as a rollup of its environment.
fn rollup(env: &str, g: &QueryGroup) -> Rollup {
    Rollup {
        start: g.start,
        resolution: match g.bucket {
            analytics::Bucket::Minute => Resolution::Minute,
            analytics::Bucket::Hour => Resolution::Hour,
        },
        env: env.to_string(),
        fingerprint: fingerprint(&g.query),
        count: g.count,
        errors: 0,
        sum_ms: g.duration_ms,
        rows_read: g.rows_read,
        rows_written: g.rows_written,
        rows_returned: g.rows_returned,
        histogram: Histogram::from_summary(g.count, g.duration_ms, g.p50_ms, g.p95_ms, g.p99_ms),
    }
}

/// Turns what was fetched into one batch for the store.
fn batch_of(plan: &plan::Plan, got: &pull::Fetched, now: DateTime<Utc>) -> AnalyticsBatch {
    let env_of: BTreeMap<&str, &str> = (plan.groups.iter())
        .flat_map(|g| g.databases.iter().map(|(e, d)| (d.as_str(), e.as_str())))
        .collect();
    let mut pulls = Vec::new();
    for (i, group) in plan.groups.iter().enumerate() {
        let to = got.ends[i];
        for (env, db) in &group.databases {
            let groups: Vec<&QueryGroup> = (got.queries.iter())
                .filter(|g| &g.database_id == db && g.start < to)
                .collect();
            pulls.push(DatabasePull {
                cursor: SyncCursor {
                    database_id: db.clone(),
                    env: env.clone(),
                    settled_to: plan.settle.min(to),
                    days_from: now.date_naive() - chrono::Days::new(1),
                    newest_bucket: groups.iter().filter(|g| g.count > 0).map(|g| g.start).max(),
                    synced_at: now,
                },
                from: group.from,
                to,
                rollups: groups.iter().map(|g| rollup(env, g)).collect(),
            });
        }
    }
    let mut traffic: BTreeMap<(chrono::NaiveDate, &str), UsageTraffic> = BTreeMap::new();
    for d in &got.daily {
        let Some(env) = env_of.get(d.database_id.as_str()) else {
            continue;
        };
        let t = traffic
            .entry((d.date, env))
            .or_insert_with(|| UsageTraffic {
                day: d.date,
                env: env.to_string(),
                queries: 0,
                rows_read: 0,
                rows_written: 0,
            });
        t.queries += d.read_queries + d.write_queries;
        t.rows_read += d.rows_read;
        t.rows_written += d.rows_written;
    }
    let mut storage: BTreeMap<(chrono::NaiveDate, &str), UsageSample> = BTreeMap::new();
    for s in &got.storage {
        let Some(env) = env_of.get(s.database_id.as_str()) else {
            continue;
        };
        let u = storage.entry((s.date, env)).or_insert_with(|| UsageSample {
            day: s.date,
            env: env.to_string(),
            storage_bytes: 0,
            databases: 1,
        });
        u.storage_bytes = u.storage_bytes.max(s.bytes);
    }
    AnalyticsBatch {
        pulls,
        traffic: traffic.into_values().collect(),
        storage: storage.into_values().collect(),
    }
}
