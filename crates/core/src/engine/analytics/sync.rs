//! The sync itself (feature `d1`): reads D1's GraphQL datasets within the budget and stores
//! what came back in one batch. The policy is [`super`]'s; this is the part that needs the
//! Cloudflare client.
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{BUDGET_WINDOW, SyncOutcome, SyncReport, plan, pull};
use crate::cloudflare::Client;
use crate::cloudflare::analytics::{self, Answer, QueryGroup, Request};
use crate::engine::{Engine, Result, capacity::open_metrics, connect};
use crate::metrics::analytics::{
    AnalyticsBatch, AnalyticsStatus, ApplyReport, DatabasePull, SyncCursor, UsageTraffic,
};
use crate::metrics::source::{OwnStatements, d1ops_env};
use crate::metrics::usage::UsageSample;
use crate::metrics::{Histogram, MetricsStore, Resolution, Rollup, fingerprint};
use crate::model::now_utc;

/// How long to wait after Cloudflare answered 429 ("try again after 5 minutes").
const RATE_LIMIT_WAIT: Duration = Duration::minutes(5);

/// [`Engine::sync_d1_analytics`] once the workspace is known to be on the cloudflare backend.
pub(super) fn run(engine: &Engine, force: bool) -> Result<SyncReport> {
    let cfg = engine.ws.config.cloudflare.clone().unwrap_or_default();
    let mut metrics = open_metrics(&engine.ws)?;
    let now = now_utc();
    let status = metrics.analytics_status()?;
    let refresh = Duration::from_std(cfg.analytics_refresh()).unwrap_or(Duration::minutes(5));
    let done = |m: &MetricsStore, outcome, requests, buckets, truncated| -> Result<SyncReport> {
        Ok(SyncReport {
            outcome,
            requests,
            databases: engine.analytics_databases(m, now)?.len(),
            buckets,
            truncated,
            freshness: engine.freshness_from(m, now_utc())?,
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
    let (client, _, _) = connect::cloudflare_client(&engine.ws)?;
    let databases = engine.analytics_databases(&metrics, now)?;
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
            let own = engine.own_statements()?;
            let batch = batch_of(&plan, &got, now, &own);
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

impl Engine {
    /// The statements d1ops sends itself, to tell them from the app's in D1's analytics:
    /// the ledger's, SQLite's catalogue, every release's migrations, the gate's probes.
    fn own_statements(&self) -> Result<OwnStatements> {
        let mut own = OwnStatements::new(&self.ws.config.migrations_table);
        for rel in self.store.releases()? {
            for m in self.store.release_migrations(&rel.id)? {
                for sql in d1ops_sql::splitter::batch_statements(&m.sql) {
                    own.add(sql);
                }
            }
        }
        for p in &self.ws.config.probes {
            own.add(&p.sql);
        }
        Ok(own)
    }

    /// `(environment, D1 database id)` of every environment that has a database, and of
    /// every database synced before that is gone (a deleted preview) until its buckets are
    /// final past the time it went: D1 keeps reporting a deleted database's traffic, and
    /// the Free plan's daily caps are per account, so it still counts.
    fn analytics_databases(
        &self,
        metrics: &MetricsStore,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>> {
        let envs = self.store.envs(true)?;
        let mut out: Vec<(String, String)> = (envs.iter())
            .filter(|e| e.deleted_at.is_none())
            .filter_map(|e| e.database_id.clone().map(|db| (e.name.clone(), db)))
            .collect();
        let cursors = metrics.sync_cursors()?;
        for c in &cursors {
            if out.iter().any(|(_, db)| *db == c.database_id) {
                continue;
            }
            // When it went: the environment's deletion, else (not an environment d1ops
            // still knows) the last sync that saw it.
            let gone = (envs.iter())
                .find(|e| e.name == c.env)
                .and_then(|e| e.deleted_at.as_deref().and_then(crate::model::parse_time))
                .unwrap_or(c.synced_at);
            let fresh = now - gone < Duration::days(plan::BACKFILL_DAYS);
            if fresh && c.settled_to < gone + plan::SETTLE {
                out.push((c.env.clone(), c.database_id.clone()));
            }
        }
        // Deleted before any sync saw it (created and deleted between two syncs): its
        // traffic still counts, so it is fetched once, then like any deleted database above.
        for (env, db, deleted_at) in self.store.deleted_databases()? {
            if out.iter().any(|(_, d)| *d == db) || cursors.iter().any(|c| c.database_id == db) {
                continue;
            }
            let Some(gone) = crate::model::parse_time(&deleted_at) else {
                continue;
            };
            if now - gone < Duration::days(plan::BACKFILL_DAYS) {
                out.push((env, db));
            }
        }
        Ok(out)
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

/// A query group as a rollup of its environment (`<env>@d1ops` for d1ops' own statements).
fn rollup(env: &str, g: &QueryGroup, own: &OwnStatements) -> Rollup {
    let env = if own.is_own(&g.query) {
        d1ops_env(env)
    } else {
        env.to_string()
    };
    Rollup {
        start: g.start,
        resolution: match g.bucket {
            analytics::Bucket::Minute => Resolution::Minute,
            analytics::Bucket::Hour => Resolution::Hour,
        },
        env,
        fingerprint: fingerprint(&g.query),
        count: g.count,
        errors: 0,
        sum_ms: g.duration_ms,
        rows_read: g.rows_read,
        rows_written: g.rows_written,
        rows_returned: g.rows_returned,
        histogram: if quantiles_absent(g) {
            // Unknown is not zero: no samples, so readers say the percentiles are unknown.
            Histogram::new()
        } else {
            Histogram::from_summary(g.count, g.duration_ms, g.p50_ms, g.p95_ms, g.p99_ms)
        },
    }
}

/// Whether D1 answered this group without `quantiles` (the client reads an absent value as
/// 0): all three are 0 while the queries took time. One query's total is its duration, so a
/// single query always has a known distribution.
fn quantiles_absent(g: &QueryGroup) -> bool {
    g.count > 1 && g.duration_ms > 0.0 && g.p50_ms == 0.0 && g.p95_ms == 0.0 && g.p99_ms == 0.0
}

/// Turns what was fetched into one batch for the store.
fn batch_of(
    plan: &plan::Plan,
    got: &pull::Fetched,
    now: DateTime<Utc>,
    own: &OwnStatements,
) -> AnalyticsBatch {
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
                rollups: groups.iter().map(|g| rollup(env, g, own)).collect(),
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
