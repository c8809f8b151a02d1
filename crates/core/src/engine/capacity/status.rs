//! Where each plan limit stands now: `ok`, `warn` or `exceeded`, judged on today's running
//! total (per-day limits), month to date (monthly inclusions) or the latest sample (storage,
//! databases) as well as on the trend (a forecast within [`WARN_DAYS`] warns). An exceeded
//! limit says by how much, since when and what that means on the plan: a Free-style plan
//! refuses queries until 00:00 UTC, a priced one bills the overage.
//!
//! Pure over the usage rows and the forecasts, except the crossing minute, which the caller
//! reads from the metrics store. Must not sample or print.
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::ForecastItem;
use crate::metrics::usage::{LimitMetric, LimitStatus, LimitUse, UsageDay, metric_series};
use crate::plans::Plan;

/// A forecast reaching the limit within this many days warns.
pub const WARN_DAYS: i64 = 30;

/// Share of a limit from which it warns.
pub const WARN_SHARE: f64 = 0.8;

/// The value a limit is judged on now: today's running total for per-day traffic, month to
/// date for monthly inclusions, the latest value otherwise (`usage` already without recovery
/// points for database size). `None` when nothing was measured today (per-day traffic).
fn now_value(metric: LimitMetric, usage: &[UsageDay], today: NaiveDate) -> Option<u64> {
    let series = metric_series(metric, usage);
    match metric {
        LimitMetric::RowsReadPerDay | LimitMetric::RowsWrittenPerDay => {
            (series.iter()).find(|p| p.0 == today).map(|p| p.1 as u64)
        }
        LimitMetric::RowsReadPerMonth | LimitMetric::RowsWrittenPerMonth => (series.iter().rev())
            .find(|p| (p.0.year(), p.0.month()) == (today.year(), today.month()))
            .map(|p| p.1 as u64),
        _ => series.last().map(|p| p.1 as u64),
    }
}

/// The first day of the run of days, ending at the latest one, on which `metric` was at or
/// over `limit` (for monthly inclusions: the day this month's running total reached it).
fn first_day_over(metric: LimitMetric, usage: &[UsageDay], limit: u64) -> Option<NaiveDate> {
    let series = metric_series(metric, usage);
    let run = (series.iter().rev())
        .take_while(|p| p.1 >= limit as f64)
        .last();
    run.map(|p| p.0)
}

/// "in 9 h 27 min" until the next 00:00 UTC.
fn until_midnight(now: DateTime<Utc>) -> String {
    let next = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let Some(next) = next else {
        return String::new();
    };
    let mins = (next - now).num_minutes().max(0);
    format!(" (in {} h {:02} min)", mins / 60, mins % 60)
}

/// What being over `metric` means on `plan`.
fn meaning(plan: &Plan, metric: LimitMetric, over_by: u64, now: DateTime<Utc>) -> String {
    match metric {
        LimitMetric::RowsReadPerDay | LimitMetric::RowsWrittenPerDay => format!(
            "queries fail until the daily limit resets at 00:00 UTC{}",
            until_midnight(now)
        ),
        LimitMetric::RowsReadPerMonth | LimitMetric::RowsWrittenPerMonth => {
            let price = if metric == LimitMetric::RowsReadPerMonth {
                plan.usd_per_million_rows_read
            } else {
                plan.usd_per_million_rows_written
            };
            match price {
                Some(usd) => format!(
                    "billed as overage: ${:.2} so far this month",
                    over_by as f64 / 1e6 * usd
                ),
                None => "over this month's inclusion".into(),
            }
        }
        LimitMetric::DatabaseSize => {
            "writes that grow the largest database fail until it shrinks".into()
        }
        LimitMetric::TotalStorage => "writes that grow storage fail until space is freed".into(),
        LimitMetric::Databases => {
            "creating a database (a preview) fails until one is deleted".into()
        }
    }
}

/// What the caller measured of today's crossing: the minute per-day traffic reached a limit.
pub(crate) type Crossing<'a> = &'a dyn Fn(LimitMetric, u64) -> Option<DateTime<Utc>>;

/// Sets `status`, `exceeded_since`, `over_by` and `meaning` on every limit. `usage` holds the
/// days the limits were computed on (this month at least), `forecasts` the trend (may be
/// empty), `databases` the usage without recovery points.
pub(crate) fn judge(
    uses: &mut [LimitUse],
    plan: &Plan,
    usage: &[UsageDay],
    databases: &[UsageDay],
    forecasts: &[ForecastItem],
    now: DateTime<Utc>,
    crossing: Crossing,
) {
    let today = now.date_naive();
    for u in uses.iter_mut() {
        let rows = if u.metric == LimitMetric::DatabaseSize {
            databases
        } else {
            usage
        };
        let current = now_value(u.metric, rows, today);
        let exceeded = u.limit > 0 && current.is_some_and(|v| v >= u.limit)
            || u.limit == 0 && current.is_some_and(|v| v > 0);
        let soon = (forecasts.iter())
            .find(|f| f.metric == u.metric)
            .and_then(|f| f.days_until)
            .is_some_and(|d| d <= WARN_DAYS);
        (u.status, u.exceeded_since, u.over_by, u.meaning) = if exceeded {
            let over = current.unwrap_or(0).saturating_sub(u.limit);
            let since = match u.metric {
                LimitMetric::RowsReadPerDay | LimitMetric::RowsWrittenPerDay => {
                    crossing(u.metric, u.limit)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_else(|| today.to_string())
                }
                m => first_day_over(m, rows, u.limit)
                    .unwrap_or(today)
                    .to_string(),
            };
            (
                LimitStatus::Exceeded,
                Some(since),
                Some(over),
                Some(meaning(plan, u.metric, over, now)),
            )
        } else if u.share >= WARN_SHARE || soon {
            (LimitStatus::Warn, None, None, None)
        } else {
            (LimitStatus::Ok, None, None, None)
        };
    }
}

/// Copies each limit's judgement onto its forecast; a forecast reaching the limit within
/// [`WARN_DAYS`] warns even when today's use is low.
pub(crate) fn mark_forecasts(items: &mut [ForecastItem], uses: &[LimitUse]) {
    for i in items.iter_mut() {
        let u = uses.iter().find(|u| u.metric == i.metric);
        i.status = u.map_or(LimitStatus::Ok, |u| u.status);
        if i.status == LimitStatus::Ok && i.days_until.is_some_and(|d| d <= WARN_DAYS) {
            i.status = LimitStatus::Warn;
        }
        if let Some(u) = u.filter(|u| u.status == LimitStatus::Exceeded) {
            i.exceeded_since = u.exceeded_since.clone();
            i.over_by = u.over_by;
            i.meaning = u.meaning.clone();
            i.used_now = Some(u.used);
            let since = u.exceeded_since.as_deref().map_or("today".into(), |s| {
                crate::model::parse_time(s).map_or_else(
                    || s.to_string(),
                    |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
                )
            });
            i.summary = format!("exceeded now, since {since}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(n)
    }

    fn row(d: u64, read: u64, storage: u64) -> UsageDay {
        UsageDay {
            day: day(d),
            env: "production".into(),
            storage_bytes: storage,
            rows_read: read,
            rows_written: 0,
            queries: 0,
            databases: 1,
            d1ops: Default::default(),
        }
    }

    fn judged(plan: &Plan, usage: &[UsageDay], now: DateTime<Utc>) -> Vec<LimitUse> {
        let mut uses = super::super::limit_use(plan, usage, now.date_naive());
        let at = now - chrono::Duration::hours(2);
        judge(&mut uses, plan, usage, usage, &[], now, &|_, _| Some(at));
        uses
    }

    fn get(uses: &[LimitUse], m: LimitMetric) -> &LimitUse {
        uses.iter().find(|u| u.metric == m).unwrap()
    }

    #[test]
    fn todays_running_total_over_a_daily_limit_is_exceeded_now() {
        let free = crate::plans::builtin("d1-free").unwrap();
        let now = day(1).and_hms_opt(14, 30, 0).unwrap().and_utc();
        let uses = judged(&free, &[row(0, 10, 1), row(1, 19_500_000, 1)], now);
        let r = get(&uses, LimitMetric::RowsReadPerDay);
        assert_eq!(r.status, LimitStatus::Exceeded);
        assert_eq!(r.over_by, Some(14_500_000));
        assert_eq!(r.exceeded_since.as_deref(), Some("2026-03-02T12:30:00Z"));
        let m = r.meaning.as_deref().unwrap();
        assert!(m.contains("00:00 UTC (in 9 h 30 min)"), "{m}");
        assert_eq!(
            get(&uses, LimitMetric::TotalStorage).status,
            LimitStatus::Ok
        );
    }

    #[test]
    fn yesterdays_excess_warns_but_is_not_exceeded_today() {
        let free = crate::plans::builtin("d1-free").unwrap();
        let now = day(1).and_hms_opt(1, 0, 0).unwrap().and_utc();
        let uses = judged(&free, &[row(0, 6_000_000, 1), row(1, 10, 1)], now);
        let r = get(&uses, LimitMetric::RowsReadPerDay);
        assert_eq!(r.status, LimitStatus::Warn);
        assert_eq!((r.over_by, r.exceeded_since.as_deref()), (None, None));
    }

    #[test]
    fn a_priced_plan_says_the_overage_so_far_and_storage_says_since_which_day() {
        let plan = Plan {
            rows_read_per_month: Some(1_000_000),
            usd_per_million_rows_read: Some(2.0),
            total_storage_bytes: Some(100),
            ..crate::plans::builtin("workers-paid").unwrap()
        };
        let now = day(2).and_hms_opt(8, 0, 0).unwrap().and_utc();
        let usage = [
            row(0, 400_000, 50),
            row(1, 700_000, 150),
            row(2, 400_000, 160),
        ];
        let uses = judged(&plan, &usage, now);
        let m = get(&uses, LimitMetric::RowsReadPerMonth);
        assert_eq!(m.status, LimitStatus::Exceeded);
        assert_eq!(m.over_by, Some(500_000));
        assert_eq!(m.exceeded_since.as_deref(), Some("2026-03-02"));
        assert_eq!(
            m.meaning.as_deref(),
            Some("billed as overage: $1.00 so far this month")
        );
        let s = get(&uses, LimitMetric::TotalStorage);
        assert_eq!(s.status, LimitStatus::Exceeded);
        assert_eq!(s.exceeded_since.as_deref(), Some("2026-03-02"));
        assert_eq!(s.over_by, Some(60));
    }
}
