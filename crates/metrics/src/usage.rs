//! Daily usage against a plan: samples of storage and database count per (day, environment)
//! in `usage_daily`, joined with daily traffic from the rollups (or, where synced, D1's own
//! daily totals in `usage_traffic`, which win); how much of each plan limit
//! is used; the projected monthly bill on priced plans; and the daily series the forecast
//! reads per limit. Storage is sampled by callers (engine, console sessions); this module
//! must not measure databases itself.
use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::record::int;
use super::store::MetricsStore;
use super::{MetricsError, Result};
use crate::plans::Plan;
use crate::source::split_env;

/// Environment name used for account-wide totals.
pub const ALL_ENVS: &str = "*";

/// One sample of an environment's storage, taken on `day`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSample {
    pub day: NaiveDate,
    pub env: String,
    /// Bytes of the environment's database(s).
    pub storage_bytes: u64,
    /// Databases the environment owns (0 before production's first promotion).
    pub databases: u64,
}

/// One environment's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageDay {
    pub day: NaiveDate,
    pub env: String,
    pub storage_bytes: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub queries: u64,
    pub databases: u64,
    /// How much of `queries`/`rows_*` were d1ops' own statements (they cost rows like any
    /// other, so they stay in the totals).
    #[serde(default)]
    pub d1ops: D1opsShare,
}

/// d1ops' own part of a day's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct D1opsShare {
    pub queries: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// A plan limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMetric {
    /// Largest single database vs the per-database limit.
    DatabaseSize,
    TotalStorage,
    RowsReadPerDay,
    RowsWrittenPerDay,
    /// Month to date vs the monthly inclusion (paid plans bill the excess).
    RowsReadPerMonth,
    RowsWrittenPerMonth,
    Databases,
}

impl LimitMetric {
    pub fn label(self) -> &'static str {
        match self {
            LimitMetric::DatabaseSize => "database size",
            LimitMetric::TotalStorage => "total storage",
            LimitMetric::RowsReadPerDay => "rows read / day",
            LimitMetric::RowsWrittenPerDay => "rows written / day",
            LimitMetric::RowsReadPerMonth => "rows read / month",
            LimitMetric::RowsWrittenPerMonth => "rows written / month",
            LimitMetric::Databases => "databases",
        }
    }
}

/// Where a limit stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStatus {
    #[default]
    Ok,
    /// At 80 % or more, or the trend reaches the limit within 30 days.
    Warn,
    /// At or over the limit now (today's running total for per-day limits, month to date for
    /// monthly inclusions, the latest sample for storage and databases).
    Exceeded,
}

impl LimitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitStatus::Ok => "ok",
            LimitStatus::Warn => "warn",
            LimitStatus::Exceeded => "exceeded",
        }
    }
}

/// Use of one limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitUse {
    pub metric: LimitMetric,
    pub used: u64,
    pub limit: u64,
    /// used / limit (1.0 = at the limit).
    pub share: f64,
    /// `ok`, `warn` or `exceeded` (set by the engine, which knows today and the trend).
    #[serde(default)]
    pub status: LimitStatus,
    /// When the current excess began: an RFC 3339 minute when the crossing is measured
    /// (per-day traffic from today's rollups), else the first day (`YYYY-MM-DD`) of the run
    /// of days over the limit. `None` unless exceeded.
    #[serde(default)]
    pub exceeded_since: Option<String>,
    /// How far over the limit, in the limit's unit. `None` unless exceeded.
    #[serde(default)]
    pub over_by: Option<u64>,
    /// What being over means on this plan ("queries fail until 00:00 UTC", "overage so far
    /// this month: $1.20"). `None` unless exceeded.
    #[serde(default)]
    pub meaning: Option<String>,
}

impl MetricsStore {
    /// Records a usage sample; a later sample for the same day and environment replaces it.
    pub fn record_usage(&self, sample: &UsageSample) -> Result<()> {
        upsert_sample(&self.conn, sample)
    }

    /// Usage per (day, environment) for `from..=to`, ordered by day then environment. A day
    /// with traffic but no sample carries the environment's previous sample forward (storage
    /// does not vanish because nobody looked); a day with neither is absent.
    pub fn usage_history(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<UsageDay>> {
        let mut out: BTreeMap<(NaiveDate, String), UsageDay> = BTreeMap::new();
        for t in self.daily_by_env(from, to)? {
            out.insert((t.day, t.env.clone()), t);
        }
        // Cloudflare's own daily totals, where synced, win over the rollups' sums.
        for t in self.usage_traffic(from, to)? {
            let row = out
                .entry((t.day, t.env.clone()))
                .or_insert_with(|| UsageDay {
                    day: t.day,
                    env: t.env.clone(),
                    storage_bytes: 0,
                    rows_read: 0,
                    rows_written: 0,
                    queries: 0,
                    databases: 0,
                    d1ops: D1opsShare::default(),
                });
            row.queries = t.queries;
            row.rows_read = t.rows_read;
            row.rows_written = t.rows_written;
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, env, storage_bytes, databases FROM usage_daily
             WHERE day <= ?2 AND (day >= ?1 OR day = (SELECT max(day) FROM usage_daily u
                 WHERE u.env = usage_daily.env AND u.day < ?1))
             ORDER BY day",
        )?;
        let mut rows = stmt.query((from.to_string(), to.to_string()))?;
        let mut samples: BTreeMap<String, Vec<(NaiveDate, u64, u64)>> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let day: String = r.get(0)?;
            let day = day
                .parse::<NaiveDate>()
                .map_err(|_| MetricsError::Corrupt {
                    what: "usage_daily.day",
                    value: day.clone(),
                })?;
            let (storage, dbs): (i64, i64) = (r.get(2)?, r.get(3)?);
            samples.entry(r.get(1)?).or_default().push((
                day,
                storage.max(0) as u64,
                dbs.max(0) as u64,
            ));
        }
        for (env, list) in &samples {
            for &(day, storage, dbs) in list.iter().filter(|s| s.0 >= from) {
                let row = out.entry((day, env.clone())).or_insert_with(|| UsageDay {
                    day,
                    env: env.clone(),
                    storage_bytes: 0,
                    rows_read: 0,
                    rows_written: 0,
                    queries: 0,
                    databases: 0,
                    d1ops: D1opsShare::default(),
                });
                row.storage_bytes = storage;
                row.databases = dbs;
            }
        }
        for ((day, env), row) in out.iter_mut() {
            let Some(list) = samples.get(env) else {
                continue;
            };
            if list.iter().any(|s| s.0 == *day) {
                continue;
            }
            if let Some(&(_, storage, dbs)) = list.iter().rev().find(|s| s.0 < *day) {
                row.storage_bytes = storage;
                row.databases = dbs;
            }
        }
        Ok(out.into_values().collect())
    }

    fn daily_by_env(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<UsageDay>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t, env, count, rows_read, rows_written FROM env_day
             WHERE t >= ?1 AND t < ?2 ORDER BY t, env",
        )?;
        let from_t = super::day_start(from);
        let to_t = super::day_start(to) + 86_400;
        let rows = stmt.query_map((from_t, to_t), |r| {
            let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
            Ok(UsageDay {
                day: super::day_of(r.get(0)?),
                env: r.get(1)?,
                storage_bytes: 0,
                queries: u(2)?,
                rows_read: u(3)?,
                rows_written: u(4)?,
                databases: 0,
                d1ops: D1opsShare::default(),
            })
        })?;
        // d1ops' own statements (`<env>@d1ops`) fold into their environment's day, counted
        // and also kept apart.
        let mut out: BTreeMap<(NaiveDate, String), UsageDay> = BTreeMap::new();
        for row in rows {
            let row = row?;
            let (env, own) = split_env(&row.env);
            let day = out
                .entry((row.day, env.to_string()))
                .or_insert_with(|| UsageDay {
                    env: env.to_string(),
                    queries: 0,
                    rows_read: 0,
                    rows_written: 0,
                    ..row.clone()
                });
            day.queries += row.queries;
            day.rows_read += row.rows_read;
            day.rows_written += row.rows_written;
            if own {
                day.d1ops.queries += row.queries;
                day.d1ops.rows_read += row.rows_read;
                day.d1ops.rows_written += row.rows_written;
            }
        }
        Ok(out.into_values().collect())
    }
}

/// Writes a usage sample through `conn` (a transaction, or the store's connection).
pub(super) fn upsert_sample(conn: &rusqlite::Connection, sample: &UsageSample) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO usage_daily(day, env, storage_bytes, databases, sampled_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(day, env) DO UPDATE SET storage_bytes = excluded.storage_bytes,
             databases = excluded.databases, sampled_at = excluded.sampled_at",
    )?
    .execute((
        sample.day.to_string(),
        &sample.env,
        int(sample.storage_bytes),
        int(sample.databases),
        d1ops_sql::clock::now_utc().timestamp(),
    ))?;
    Ok(())
}

/// Account-wide totals per day (environment [`ALL_ENVS`]).
pub fn daily_totals(usage: &[UsageDay]) -> Vec<UsageDay> {
    let mut out: BTreeMap<NaiveDate, UsageDay> = BTreeMap::new();
    for u in usage {
        let t = out.entry(u.day).or_insert_with(|| UsageDay {
            day: u.day,
            env: ALL_ENVS.to_string(),
            storage_bytes: 0,
            rows_read: 0,
            rows_written: 0,
            queries: 0,
            databases: 0,
            d1ops: D1opsShare::default(),
        });
        t.storage_bytes += u.storage_bytes;
        t.d1ops.queries += u.d1ops.queries;
        t.d1ops.rows_read += u.d1ops.rows_read;
        t.d1ops.rows_written += u.d1ops.rows_written;
        t.rows_read += u.rows_read;
        t.rows_written += u.rows_written;
        t.queries += u.queries;
        t.databases += u.databases;
    }
    out.into_values().collect()
}

/// The plan's limit for a metric, if it has one.
pub fn limit_of(plan: &Plan, metric: LimitMetric) -> Option<u64> {
    match metric {
        LimitMetric::DatabaseSize => Some(plan.database_size_bytes),
        LimitMetric::TotalStorage => plan.total_storage_bytes,
        LimitMetric::RowsReadPerDay => plan.rows_read_per_day,
        LimitMetric::RowsWrittenPerDay => plan.rows_written_per_day,
        LimitMetric::RowsReadPerMonth => plan.rows_read_per_month,
        LimitMetric::RowsWrittenPerMonth => plan.rows_written_per_month,
        LimitMetric::Databases => plan.max_databases,
    }
}

const METRICS: [LimitMetric; 7] = [
    LimitMetric::DatabaseSize,
    LimitMetric::TotalStorage,
    LimitMetric::RowsReadPerDay,
    LimitMetric::RowsWrittenPerDay,
    LimitMetric::RowsReadPerMonth,
    LimitMetric::RowsWrittenPerMonth,
    LimitMetric::Databases,
];

/// The value of `metric` on each day of `usage` (per-day values; month metrics give the
/// month-to-date running sum). This is the series a forecast reads.
pub fn metric_series(metric: LimitMetric, usage: &[UsageDay]) -> Vec<(NaiveDate, f64)> {
    let mut by_day: BTreeMap<NaiveDate, Vec<&UsageDay>> = BTreeMap::new();
    for u in usage.iter().filter(|u| u.env != ALL_ENVS) {
        by_day.entry(u.day).or_default().push(u);
    }
    let sum = |rows: &[&UsageDay], f: fn(&UsageDay) -> u64| rows.iter().map(|u| f(u)).sum::<u64>();
    let mut month_to_date = (0i32, 0u32, 0u64);
    by_day
        .into_iter()
        .map(|(day, rows)| {
            let v = match metric {
                LimitMetric::DatabaseSize => {
                    rows.iter().map(|u| u.storage_bytes).max().unwrap_or(0)
                }
                LimitMetric::TotalStorage => sum(&rows, |u| u.storage_bytes),
                LimitMetric::RowsReadPerDay => sum(&rows, |u| u.rows_read),
                LimitMetric::RowsWrittenPerDay => sum(&rows, |u| u.rows_written),
                LimitMetric::Databases => sum(&rows, |u| u.databases),
                LimitMetric::RowsReadPerMonth | LimitMetric::RowsWrittenPerMonth => {
                    let today = if metric == LimitMetric::RowsReadPerMonth {
                        sum(&rows, |u| u.rows_read)
                    } else {
                        sum(&rows, |u| u.rows_written)
                    };
                    if (month_to_date.0, month_to_date.1) != (day.year(), day.month()) {
                        month_to_date = (day.year(), day.month(), 0);
                    }
                    month_to_date.2 += today;
                    month_to_date.2
                }
            };
            (day, v as f64)
        })
        .collect()
}

/// Use of every limit the plan has, as of the latest day in `usage`.
pub fn plan_status(plan: &Plan, usage: &[UsageDay]) -> Vec<LimitUse> {
    METRICS
        .into_iter()
        .filter_map(|metric| {
            let limit = limit_of(plan, metric)?;
            let used = metric_series(metric, usage).last().map_or(0.0, |p| p.1) as u64;
            let share = if limit == 0 {
                if used == 0 { 0.0 } else { f64::INFINITY }
            } else {
                used as f64 / limit as f64
            };
            Some(LimitUse {
                metric,
                used,
                limit,
                share,
                status: LimitStatus::Ok,
                exceeded_since: None,
                over_by: None,
                meaning: None,
            })
        })
        .collect()
}

/// Overage for the month of the latest day in `usage`, extrapolating month-to-date rows to
/// the whole month and billing the latest total storage above the inclusion. USD; the plan's
/// base subscription is not included. `None` for plans without prices or without usage.
pub fn projected_monthly_cost(plan: &Plan, usage: &[UsageDay]) -> Option<f64> {
    let priced = plan.usd_per_million_rows_read.is_some()
        || plan.usd_per_million_rows_written.is_some()
        || plan.usd_per_gb_month_storage.is_some();
    let last = usage.iter().map(|u| u.day).max()?;
    if !priced {
        return None;
    }
    let first_of_month = last.with_day(1)?;
    let next_month = first_of_month.checked_add_months(chrono::Months::new(1))?;
    let days_in_month = (next_month - first_of_month).num_days() as f64;
    let elapsed = f64::from(last.day());
    let project = |metric| {
        metric_series(metric, usage)
            .last()
            .map_or(0.0, |p| p.1 / elapsed * days_in_month)
    };
    let over = |used: f64, included: Option<u64>| (used - included.unwrap_or(0) as f64).max(0.0);
    let reads = over(
        project(LimitMetric::RowsReadPerMonth),
        plan.rows_read_per_month,
    );
    let writes = over(
        project(LimitMetric::RowsWrittenPerMonth),
        plan.rows_written_per_month,
    );
    let storage = metric_series(LimitMetric::TotalStorage, usage)
        .last()
        .map_or(0.0, |p| p.1);
    let storage = over(storage, plan.included_storage_bytes);
    Some(
        reads / 1e6 * plan.usd_per_million_rows_read.unwrap_or(0.0)
            + writes / 1e6 * plan.usd_per_million_rows_written.unwrap_or(0.0)
            + storage / 1e9 * plan.usd_per_gb_month_storage.unwrap_or(0.0),
    )
}

/// Days in an average Gregorian month.
const AVERAGE_MONTH_DAYS: f64 = 30.436_875;

/// Forecasts every limit the plan has from `usage` (see [`super::forecast`]). Monthly
/// inclusions are forecast on the daily series against inclusion ÷ 30.44: the day the daily
/// rate would use up a month's inclusion.
pub fn forecast_plan(
    plan: &Plan,
    usage: &[UsageDay],
    options: &super::forecast::ForecastOptions,
) -> Vec<(LimitMetric, super::forecast::Forecast)> {
    METRICS
        .into_iter()
        .filter_map(|metric| {
            let limit = limit_of(plan, metric)? as f64;
            // A monthly inclusion is forecast as the daily rate that would use it up.
            let (series, limit) = match metric {
                LimitMetric::RowsReadPerMonth => (
                    metric_series(LimitMetric::RowsReadPerDay, usage),
                    limit / AVERAGE_MONTH_DAYS,
                ),
                LimitMetric::RowsWrittenPerMonth => (
                    metric_series(LimitMetric::RowsWrittenPerDay, usage),
                    limit / AVERAGE_MONTH_DAYS,
                ),
                _ => (metric_series(metric, usage), limit),
            };
            Some((metric, super::forecast::forecast(&series, limit, options)))
        })
        .collect()
}
