//! Capacity and post-launch watching: usage sampling (and, on Cloudflare, syncing D1's
//! analytics first), usage against the plan, limit forecasts, the post-promotion watch window, the Monitor's data, query plans with suggested
//! indexes, and the weekly report.
//!
//! Reads the metrics store (rollups only) and the state store. Writes only usage samples,
//! final watch verdicts and — when asked — a suggested-index migration file. No terminal I/O,
//! no formatting for humans beyond one-line summaries.
use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use super::{Engine, Freshness, Result};
use crate::backend::DatabaseRef;
use crate::metrics::MetricsStore;
use crate::metrics::forecast::{Forecast, ForecastOptions, Model, Outcome};
use crate::metrics::usage::{
    self, LimitMetric, LimitStatus, LimitUse, UsageDay, UsageSample, daily_totals, metric_series,
    plan_status, projected_monthly_cost,
};
use crate::model::{now_utc, parse_time};
use crate::plans::Plan;
use crate::workspace::Workspace;

mod monitor;
mod next_migration;
mod report;
mod status;
mod suggest;
mod watch;

pub use monitor::{MonitorData, MonitorWindow};
pub use report::{ActionItem, DeployOutcome, Growth, QueryInsight, WeekOverWeek, WeeklyReport};
pub use status::{WARN_DAYS, WARN_SHARE};
pub use suggest::{IndexSuggestion, QueryPlan, suggest_index};
pub(super) use watch::watch_started;
pub use watch::{WatchReport, WatchStatus};

/// The usage "environment" under which recovery points' bytes are sampled: they take disk
/// (locally) and count toward total storage, but they are not a database.
pub const SNAPSHOTS_ENV: &str = "recovery-points";

/// Plan whose prices project a monthly bill when the workspace's own plan has none.
const PAID_PLAN: &str = "workers-paid";

/// Opens the workspace's metrics store.
pub(crate) fn open_metrics(ws: &Workspace) -> Result<MetricsStore> {
    Ok(MetricsStore::open(&ws.state_dir())?)
}

/// Daily usage per environment and in total over a span of days, with the plan's limits.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub plan: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// One row per (day, environment) that had a sample or traffic.
    pub days: Vec<UsageDay>,
    /// One row per day, all environments together (`env` is `*`).
    pub totals: Vec<UsageDay>,
    /// Use of every limit the plan has (storage: latest sample; per day: the larger of today
    /// so far and the last complete day; per month: month to date).
    pub status: Vec<LimitUse>,
    pub cost: Option<CostProjection>,
    /// How current D1's analytics are (cloudflare backend; `null` locally).
    pub freshness: Option<Freshness>,
}

/// The projected bill for the current month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostProjection {
    /// The priced plan used: the workspace's own, or `workers-paid` when its plan is free.
    pub plan: String,
    /// Overage in USD (the plan's base subscription is not included).
    pub usd: f64,
    /// True when `plan` is not the workspace's plan (what upgrading would cost).
    pub hypothetical: bool,
}

/// When one limit is reached at the current trend.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastItem {
    pub metric: LimitMetric,
    pub label: &'static str,
    /// The limit the series is compared with (a monthly inclusion as its daily share).
    pub limit: f64,
    pub current: Option<f64>,
    /// "in 12 days (9–16)", "not within horizon (365 days)", …
    pub summary: String,
    pub days_until: Option<i64>,
    /// Earliest plausible day.
    pub pessimistic: Option<NaiveDate>,
    pub expected: Option<NaiveDate>,
    /// Latest plausible day (`None`: beyond the horizon).
    pub optimistic: Option<NaiveDate>,
    pub model: Option<Model>,
    pub outcome: Outcome,
    /// `ok`, `warn` (80 % used, or the limit within 30 days at the trend) or `exceeded` (at
    /// or over it now: today's running total, month to date, the latest sample).
    pub status: LimitStatus,
    /// When the current excess began (see [`LimitUse::exceeded_since`]).
    pub exceeded_since: Option<String>,
    /// How far over the limit now, in its unit.
    pub over_by: Option<u64>,
    /// What being over means on the plan.
    pub meaning: Option<String>,
    /// The value judged exceeded (today's running total, month to date, latest sample);
    /// `current` is the last complete day the trend read.
    pub used_now: Option<u64>,
    /// The daily values the fit read (for charts; not in JSON).
    #[serde(skip)]
    pub history: Vec<(NaiveDate, f64)>,
    /// `(day, expected, low, high)` ahead of the last day (for charts; not in JSON).
    #[serde(skip)]
    pub projection: Vec<(NaiveDate, f64, f64, f64)>,
}

/// Every limit's forecast.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastReport {
    pub plan: String,
    pub lookback_days: i64,
    pub horizon_days: i64,
    pub items: Vec<ForecastItem>,
    /// The day the built-in plans' limits were last checked against Cloudflare's D1 limits
    /// page (`YYYY-MM-DD`).
    pub plan_checked: &'static str,
    /// How current D1's analytics are (cloudflare backend; `null` locally).
    pub freshness: Option<Freshness>,
}

/// How many days ahead charts draw the projection.
pub const PROJECTION_DAYS: i64 = 30;

impl Engine {
    /// The configured plan (validated when the workspace loaded).
    pub fn plan(&self) -> Plan {
        self.ws
            .config
            .plan()
            .or_else(|| crate::plans::builtin("d1-free"))
            .expect("d1-free is built in")
    }

    /// Records today's usage sample per environment: its database's bytes and count, plus
    /// the recovery points' bytes under [`SNAPSHOTS_ENV`] (none on D1, whose bookmarks take no
    /// storage). A preview deleted today is sampled
    /// as empty, so today's total drops when cleanup frees space.
    pub fn sample_usage(&self) -> Result<Vec<UsageSample>> {
        self.ensure_writable("sampling usage")?;
        let today = now_utc().date_naive();
        let mut samples = Vec::new();
        for env in self.store.envs(true)? {
            let deleted_today = env
                .deleted_at
                .as_deref()
                .and_then(parse_time)
                .map(|t| t.date_naive() == today);
            let (bytes, databases) = match (deleted_today, &env.database_id) {
                (Some(false), _) => continue,
                (None, Some(id)) => {
                    let db = DatabaseRef::new(id.clone());
                    if self.backend.exists(&db)? {
                        (self.backend.size_bytes(&db)?, 1)
                    } else {
                        (0, 0)
                    }
                }
                _ => (0, 0),
            };
            samples.push(UsageSample {
                day: today,
                env: env.name,
                storage_bytes: bytes,
                databases,
            });
        }
        let snapshot_bytes = if self.backend.recovery_points_use_storage() {
            (self.store.snapshots(false)?.iter())
                .map(|s| s.size_bytes)
                .sum()
        } else {
            0
        };
        samples.push(UsageSample {
            day: today,
            env: SNAPSHOTS_ENV.into(),
            storage_bytes: snapshot_bytes,
            databases: 0,
        });
        let metrics = open_metrics(&self.ws)?;
        for s in &samples {
            metrics.record_usage(s)?;
        }
        Ok(samples)
    }

    /// Samples today's usage unless read-only (callers that only read still get a report).
    fn sample_if_writable(&self) -> Result<()> {
        if !self.readonly {
            self.sample_usage()?;
        }
        Ok(())
    }

    /// Usage per day per environment and in total for the last `days` days (today
    /// included), with the plan's limits and the projected monthly cost.
    pub fn usage_report(&self, days: u32) -> Result<UsageReport> {
        let freshness = self.refresh_analytics();
        self.sample_if_writable()?;
        let to = now_utc().date_naive();
        let from = to - chrono::Days::new(u64::from(days.clamp(1, 400)) - 1);
        let metrics = open_metrics(&self.ws)?;
        let opts = ForecastOptions::default();
        let trend_from = to - chrono::Days::new(opts.lookback_days as u64 - 1);
        let history = metrics.usage_history(from.min(first_of_month(to)).min(trend_from), to)?;
        let plan = self.plan();
        let days: Vec<UsageDay> = history.iter().filter(|u| u.day >= from).cloned().collect();
        let trend = forecast_items(&plan, &history, to, &opts);
        let judged = self.judged_limits(&metrics, &plan, &history, &trend)?;
        Ok(UsageReport {
            plan: self.ws.config.plan.clone(),
            from,
            to,
            totals: daily_totals(&days),
            status: judged,
            cost: cost_projection(&self.ws.config.plan, &plan, &history),
            days,
            freshness,
        })
    }

    /// Forecasts every limit of the plan from the last `days` days of usage.
    pub fn forecast_report(&self, days: u32) -> Result<ForecastReport> {
        let freshness = self.refresh_analytics();
        self.sample_if_writable()?;
        let to = now_utc().date_naive();
        let lookback = i64::from(days.clamp(7, 400));
        let from = to - chrono::Days::new(lookback as u64 - 1);
        let metrics = open_metrics(&self.ws)?;
        let history = metrics.usage_history(from.min(first_of_month(to)), to)?;
        let opts = ForecastOptions {
            lookback_days: lookback,
            ..ForecastOptions::default()
        };
        let plan = self.plan();
        let trend: Vec<UsageDay> = history.iter().filter(|u| u.day >= from).cloned().collect();
        let mut items = forecast_items(&plan, &trend, to, &opts);
        let judged = self.judged_limits(&metrics, &plan, &history, &items)?;
        status::mark_forecasts(&mut items, &judged);
        Ok(ForecastReport {
            plan: self.ws.config.plan.clone(),
            lookback_days: lookback,
            horizon_days: opts.horizon_days,
            items,
            plan_checked: crate::plans::CHECKED,
            freshness,
        })
    }
}

impl Engine {
    /// Every limit of the plan with its status now (`ok`/`warn`/`exceeded`), from the usage
    /// already recorded: no sampling, no analytics sync, so a face may call it on every
    /// refresh (the console's header alert count).
    pub fn limit_status(&self) -> Result<Vec<LimitUse>> {
        let to = now_utc().date_naive();
        let opts = ForecastOptions::default();
        let from = to - chrono::Days::new(opts.lookback_days as u64 - 1);
        let metrics = open_metrics(&self.ws)?;
        let history = metrics.usage_history(from.min(first_of_month(to)), to)?;
        let plan = self.plan();
        let trend = forecast_items(&plan, &history, to, &opts);
        self.judged_limits(&metrics, &plan, &history, &trend)
    }

    /// The limits exceeded right now (what an alert counts).
    pub fn exceeded_limits(&self) -> Result<Vec<LimitUse>> {
        let mut all = self.limit_status()?;
        all.retain(|u| u.status == LimitStatus::Exceeded);
        Ok(all)
    }

    fn judged_limits(
        &self,
        metrics: &MetricsStore,
        plan: &Plan,
        history: &[UsageDay],
        trend: &[ForecastItem],
    ) -> Result<Vec<LimitUse>> {
        let now = now_utc();
        let today = now.date_naive();
        let mut uses = limit_use(plan, history, today);
        let start = today.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc());
        let crossing = |metric: LimitMetric, limit: u64| {
            let written = metric == LimitMetric::RowsWrittenPerDay;
            match metrics.running_total_reaches(start, now, written, limit) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "the minute a daily limit was crossed could not be read");
                    None
                }
            }
        };
        status::judge(
            &mut uses,
            plan,
            history,
            &without_snapshots(history),
            trend,
            now,
            &crossing,
        );
        Ok(uses)
    }
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// Usage without the recovery points: what "largest database" reads.
fn without_snapshots(usage: &[UsageDay]) -> Vec<UsageDay> {
    (usage.iter())
        .filter(|u| u.env != SNAPSHOTS_ENV)
        .cloned()
        .collect()
}

/// Usage of complete days only (before `today`): what daily traffic trends read.
fn complete_days(usage: &[UsageDay], today: NaiveDate) -> Vec<UsageDay> {
    usage.iter().filter(|u| u.day < today).cloned().collect()
}

/// Whether a metric counts traffic per day (today's value is still growing).
fn is_daily_traffic(metric: LimitMetric) -> bool {
    matches!(
        metric,
        LimitMetric::RowsReadPerDay
            | LimitMetric::RowsWrittenPerDay
            | LimitMetric::RowsReadPerMonth
            | LimitMetric::RowsWrittenPerMonth
    )
}

/// The usage a metric is judged on: recovery points are not a database; daily traffic
/// trends read complete days.
fn usage_for(
    metric: LimitMetric,
    usage: &[UsageDay],
    today: NaiveDate,
    for_trend: bool,
) -> Vec<UsageDay> {
    match metric {
        LimitMetric::DatabaseSize => without_snapshots(usage),
        m if for_trend && is_daily_traffic(m) => complete_days(usage, today),
        _ => usage.to_vec(),
    }
}

/// Use of every limit: storage as last sampled, per-day traffic as the larger of today so far
/// and the last complete day, monthly traffic month to date.
pub(crate) fn limit_use(plan: &Plan, usage: &[UsageDay], today: NaiveDate) -> Vec<LimitUse> {
    let full = plan_status(plan, usage);
    let databases = plan_status(plan, &without_snapshots(usage));
    let done = plan_status(plan, &complete_days(usage, today));
    let pick = |list: &[LimitUse], m: LimitMetric| {
        list.iter().find(|u| u.metric == m).map_or(0, |u| u.used)
    };
    full.into_iter()
        .map(|mut u| {
            u.used = match u.metric {
                LimitMetric::DatabaseSize => pick(&databases, u.metric),
                LimitMetric::RowsReadPerDay | LimitMetric::RowsWrittenPerDay => {
                    u.used.max(pick(&done, u.metric))
                }
                _ => u.used,
            };
            u.share = share(u.used, u.limit);
            u
        })
        .collect()
}

fn share(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        if used == 0 { 0.0 } else { f64::INFINITY }
    } else {
        used as f64 / limit as f64
    }
}

/// The projected bill on the workspace's plan when it has prices, else on Workers Paid.
pub(crate) fn cost_projection(
    plan_name: &str,
    plan: &Plan,
    usage: &[UsageDay],
) -> Option<CostProjection> {
    let priced = |p: &Plan| {
        p.usd_per_million_rows_read.is_some()
            || p.usd_per_million_rows_written.is_some()
            || p.usd_per_gb_month_storage.is_some()
    };
    let (name, plan, hypothetical) = if priced(plan) {
        (plan_name.to_string(), plan.clone(), false)
    } else {
        (
            PAID_PLAN.to_string(),
            crate::plans::builtin(PAID_PLAN)?,
            true,
        )
    };
    projected_monthly_cost(&plan, usage).map(|usd| CostProjection {
        plan: name,
        usd,
        hypothetical,
    })
}

/// One forecast per limit of the plan, each on the usage that metric is judged on.
pub(crate) fn forecast_items(
    plan: &Plan,
    usage: &[UsageDay],
    today: NaiveDate,
    opts: &ForecastOptions,
) -> Vec<ForecastItem> {
    let variants = [
        usage.to_vec(),
        without_snapshots(usage),
        complete_days(usage, today),
    ];
    let forecasts: Vec<Vec<(LimitMetric, Forecast)>> = (variants.iter())
        .map(|u| usage::forecast_plan(plan, u, opts))
        .collect();
    forecasts[0]
        .iter()
        .filter_map(|(metric, _)| {
            let metric = *metric;
            let variant = match metric {
                LimitMetric::DatabaseSize => 1,
                m if is_daily_traffic(m) => 2,
                _ => 0,
            };
            let find = |v: usize| {
                (forecasts[v].iter())
                    .find(|(m, _)| *m == metric)
                    .map(|(_, f)| f.clone())
            };
            let f = find(variant).or_else(|| find(0))?;
            let source = usage_for(metric, usage, today, true);
            let series_metric = match metric {
                LimitMetric::RowsReadPerMonth => LimitMetric::RowsReadPerDay,
                LimitMetric::RowsWrittenPerMonth => LimitMetric::RowsWrittenPerDay,
                m => m,
            };
            Some(item(metric, f, metric_series(series_metric, &source)))
        })
        .collect()
}

fn item(metric: LimitMetric, f: Forecast, history: Vec<(NaiveDate, f64)>) -> ForecastItem {
    let (pessimistic, expected, optimistic) = match &f.outcome {
        Outcome::Within(c) => (Some(c.pessimistic), Some(c.expected), c.optimistic),
        Outcome::Reached { since } => (Some(*since), Some(*since), Some(*since)),
        _ => (None, None, None),
    };
    ForecastItem {
        metric,
        label: metric.label(),
        limit: f.limit,
        current: f.last_value,
        summary: f.describe(),
        days_until: f.days_until(),
        pessimistic,
        expected,
        optimistic,
        model: f.fit.as_ref().map(|m| m.model),
        projection: f.projection(PROJECTION_DAYS),
        outcome: f.outcome,
        status: LimitStatus::Ok,
        exceeded_since: None,
        over_by: None,
        meaning: None,
        used_now: None,
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(n)
    }

    fn row(d: u64, env: &str, storage: u64, written: u64, dbs: u64) -> UsageDay {
        UsageDay {
            day: day(d),
            env: env.into(),
            storage_bytes: storage,
            rows_read: 0,
            rows_written: written,
            queries: 0,
            databases: dbs,
            d1ops: Default::default(),
        }
    }

    #[test]
    fn recovery_points_count_toward_storage_but_are_no_database() {
        let plan = crate::plans::builtin("d1-free").unwrap();
        let usage = vec![
            row(0, "production", 100, 0, 1),
            row(0, SNAPSHOTS_ENV, 300, 0, 0),
        ];
        let status = limit_use(&plan, &usage, day(1));
        let get = |m| status.iter().find(|u| u.metric == m).unwrap().used;
        assert_eq!(get(LimitMetric::DatabaseSize), 100);
        assert_eq!(get(LimitMetric::TotalStorage), 400);
        assert_eq!(get(LimitMetric::Databases), 1);
    }

    #[test]
    fn a_partial_today_does_not_hide_yesterdays_traffic() {
        let plan = crate::plans::builtin("d1-free").unwrap();
        let usage = vec![
            row(0, "production", 1, 90_000, 1),
            row(1, "production", 1, 5_000, 1),
        ];
        let status = limit_use(&plan, &usage, day(1));
        let written = (status.iter())
            .find(|u| u.metric == LimitMetric::RowsWrittenPerDay)
            .unwrap();
        assert_eq!(written.used, 90_000);
        assert!((written.share - 0.9).abs() < 1e-9);
    }

    #[test]
    fn daily_traffic_trends_leave_out_today() {
        let plan = crate::plans::builtin("d1-free").unwrap();
        // Writes grow 3,000 a day toward 100,000; today (day 20) has only a few so far.
        let mut usage: Vec<UsageDay> = (0..20)
            .map(|d| row(d, "production", 1_000, 40_000 + 3_000 * d, 1))
            .collect();
        usage.push(row(20, "production", 1_000, 10, 1));
        let items = forecast_items(&plan, &usage, day(20), &ForecastOptions::default());
        let w = (items.iter())
            .find(|i| i.metric == LimitMetric::RowsWrittenPerDay)
            .unwrap();
        // Day 19 has 97,000; 100,000 is reached the next day.
        assert_eq!(w.days_until, Some(1), "{}", w.summary);
        assert_eq!(w.history.len(), 20);
        let s = (items.iter())
            .find(|i| i.metric == LimitMetric::TotalStorage)
            .unwrap();
        assert!(s.days_until.is_none(), "{}", s.summary);
    }

    #[test]
    fn free_plans_project_the_paid_bill() {
        let free = crate::plans::builtin("d1-free").unwrap();
        let usage = vec![row(0, "production", 6_000_000_000, 0, 1)];
        let cost = cost_projection("d1-free", &free, &usage).unwrap();
        assert_eq!(cost.plan, "workers-paid");
        assert!(cost.hypothetical);
        // 1 GB above the 5 GB included, at $0.75 per GB-month.
        assert!((cost.usd - 0.75).abs() < 1e-6, "{}", cost.usd);
    }
}
