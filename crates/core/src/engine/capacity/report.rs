//! The weekly capacity and reliability report: usage and its growth week over week, limit
//! use and forecasts, the slowest and the failing queries (with suggested indexes), the
//! week's deploy outcomes with their causes, and what cleanup would free. Data only; the CLI
//! renders it as Markdown or JSON.
use chrono::{Duration, NaiveDate};
use serde::Serialize;

use super::{
    CostProjection, ForecastItem, IndexSuggestion, cost_projection, forecast_items, open_metrics,
};
use crate::engine::{
    CleanupItem, Engine, PRODUCTION, Result, SnapshotView, WatchReport, WatchStatus,
};
use crate::metrics::MetricsStore;
use crate::metrics::forecast::ForecastOptions;
use crate::metrics::usage::{LimitStatus, LimitUse, UsageDay, daily_totals};
use crate::metrics::{QueryStat, TopBy};
use crate::model::{CheckStatus, now, now_utc, parse_time};

/// Queries listed per section.
const TOP: usize = 5;
/// Failing queries listed at most (all of them, in practice).
const FAILING_MAX: usize = 25;
/// A query needs this many executions in the week to count as "slow" (one odd outlier is
/// not a pattern).
const MIN_SLOW_COUNT: u64 = 5;

/// One usage figure this week against last week.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub metric: &'static str,
    /// `bytes`, `rows`, `queries` or `databases`.
    pub unit: &'static str,
    /// Sum over the week (traffic) or the latest value (storage, databases).
    pub this_week: f64,
    pub last_week: Option<f64>,
    /// Change in percent (`None` without last week's figure or from zero).
    pub change_pct: Option<f64>,
}

/// A query worth a look, with its plan's suggestion.
#[derive(Debug, Clone, Serialize)]
pub struct QueryInsight {
    #[serde(flatten)]
    pub stat: QueryStat,
    pub env: String,
    /// The newest error message recorded for it, if any.
    pub last_error: Option<String>,
    pub scans: Vec<String>,
    pub suggestion: Option<IndexSuggestion>,
}

/// What happened to one release this week.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub release: String,
    pub label: Option<String>,
    /// `promoted`, `failed`, `blocked`, `ready` (gate passed) or `abandoned`.
    pub outcome: &'static str,
    pub at: String,
    pub by: String,
    pub causes: Vec<String>,
    /// Promoted releases: the watch window's verdict.
    pub watch: Option<WatchStatus>,
}

/// One thing the report says needs doing, with what acts on it.
#[derive(Debug, Clone, Serialize)]
pub struct ActionItem {
    /// `limit`, `regression`, `failed_promotion` or `cleanup`.
    pub kind: &'static str,
    /// One line saying what and why.
    pub text: String,
    /// The command that acts on it.
    pub command: String,
    /// The console key that does (or the tab that shows it).
    pub key: String,
}

/// Production's p95 and error rate over two complete weeks (today, still running, is left
/// out: `from`..=`to` ends yesterday).
#[derive(Debug, Clone, Serialize)]
pub struct WeekOverWeek {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub queries: u64,
    pub last_week_queries: u64,
    /// `None`: unknown (no traffic, or percentiles the source did not carry).
    pub p95_ms: Option<f64>,
    pub last_week_p95_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub last_week_error_rate: Option<f64>,
}

/// The weekly report.
#[derive(Debug, Clone, Serialize)]
pub struct WeeklyReport {
    pub generated_at: String,
    pub plan: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// What needs doing, first: limits exceeded or within 30 days, a raised regression,
    /// failed promotions without a root cause, stale previews and expired recovery points.
    pub needs_action: Vec<ActionItem>,
    /// Production's own growth (previews and recovery points apart).
    pub production_growth: Vec<Growth>,
    /// Production's p95 and error rate, complete days only.
    pub production_week: WeekOverWeek,
    /// Growth of everything (production, previews, recovery points).
    pub growth: Vec<Growth>,
    pub status: Vec<LimitUse>,
    pub forecasts: Vec<ForecastItem>,
    pub cost: Option<CostProjection>,
    pub slow_queries: Vec<QueryInsight>,
    pub failing_queries: Vec<QueryInsight>,
    pub deploys: Vec<DeployOutcome>,
    pub stale_previews: Vec<CleanupItem>,
    /// Recovery points outside the retention policy.
    pub expired_snapshots: Vec<SnapshotView>,
    /// What `cleanup` would free: stale previews plus expired recovery points.
    pub cleanup_frees_bytes: u64,
    /// How current D1's analytics are (cloudflare backend; `null` locally).
    pub freshness: Option<crate::engine::Freshness>,
}

impl Engine {
    /// The report for the seven days ending today.
    pub fn weekly_report(&self) -> Result<WeeklyReport> {
        let freshness = self.refresh_analytics();
        self.sample_if_writable()?;
        let to = now_utc().date_naive();
        let from = to - chrono::Days::new(6);
        let history_from = to - chrono::Days::new(29);
        let metrics = open_metrics(&self.ws)?;
        let usage = metrics.usage_history(history_from.min(super::first_of_month(to)), to)?;
        let plan = self.plan();
        let opts = ForecastOptions {
            lookback_days: 30,
            ..ForecastOptions::default()
        };
        let start = from.and_hms_opt(0, 0, 0).map_or(now_utc(), |t| t.and_utc());
        let end = now_utc();
        let pool = metrics.top_queries(Some(PRODUCTION), start, end, TopBy::TotalTime, 50)?;
        // Unknown percentiles are skipped, not ranked as the fastest (or the slowest).
        let mut slow: Vec<QueryStat> = (pool.into_iter())
            .filter(|q| q.count >= MIN_SLOW_COUNT && q.p95_ms.is_some())
            .collect();
        slow.sort_by(|a, b| {
            (b.p95_ms.unwrap_or(0.0))
                .total_cmp(&a.p95_ms.unwrap_or(0.0))
                .then_with(|| a.fingerprint_id.cmp(&b.fingerprint_id))
        });
        slow.truncate(TOP);
        // Every failing query (up to a page), each with its last error.
        let failing =
            metrics.top_queries(Some(PRODUCTION), start, end, TopBy::Errors, FAILING_MAX)?;
        let errors = metrics.recent_errors(Some(PRODUCTION), 200)?;
        let insight = |stat: QueryStat| -> Result<QueryInsight> {
            let plan = self.query_plan(PRODUCTION, &stat.text)?;
            Ok(QueryInsight {
                last_error: (errors.iter())
                    .find(|e| e.fingerprint_id == stat.fingerprint_id)
                    .map(|e| format!("{}: {}", e.code, e.message)),
                env: PRODUCTION.into(),
                scans: plan.scans,
                suggestion: plan.suggestion,
                stat,
            })
        };
        let stale = self.cleanup_plan(None, false)?;
        let expired: Vec<SnapshotView> = self
            .snapshots()?
            .into_iter()
            .filter(|s| s.expired)
            .collect();
        let mut forecasts = forecast_items(&plan, &usage, to, &opts);
        let status = self.judged_limits(&metrics, &plan, &usage, &forecasts)?;
        super::status::mark_forecasts(&mut forecasts, &status);
        let frees = stale.iter().map(|i| i.size_bytes).sum::<u64>()
            + (expired.iter())
                .filter(|s| s.uses_storage)
                .map(|s| s.snapshot.size_bytes)
                .sum::<u64>();
        let deploys = self.deploy_outcomes(start)?;
        let production: Vec<UsageDay> = (usage.iter())
            .filter(|u| u.env == PRODUCTION)
            .cloned()
            .collect();
        let mut report = WeeklyReport {
            generated_at: now(),
            plan: self.ws.config.plan.clone(),
            from,
            to,
            needs_action: Vec::new(),
            production_growth: growth(&production, from, to),
            production_week: self.week_over_week(&metrics, to)?,
            growth: growth(&usage, from, to),
            status,
            forecasts,
            cost: cost_projection(&self.ws.config.plan, &plan, &usage),
            slow_queries: slow.into_iter().map(insight).collect::<Result<_>>()?,
            failing_queries: failing.into_iter().map(insight).collect::<Result<_>>()?,
            deploys,
            stale_previews: stale,
            expired_snapshots: expired,
            cleanup_frees_bytes: frees,
            freshness,
        };
        report.needs_action = needs_action(&report, self.live_watch().as_ref());
        Ok(report)
    }

    /// Production's p95 and error rate over the 7 complete days ending yesterday and the 7
    /// before them.
    fn week_over_week(&self, metrics: &MetricsStore, today: NaiveDate) -> Result<WeekOverWeek> {
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let to = today - chrono::Days::new(1);
        let from = today - chrono::Days::new(7);
        let (Some(end), Some(mid), Some(start)) = (
            midnight(today),
            midnight(from),
            midnight(from - chrono::Days::new(7)),
        ) else {
            return Err(crate::engine::EngineError::Input(format!(
                "no week before {today}"
            )));
        };
        let this = metrics.window_stats(Some(PRODUCTION), mid, end)?;
        let last = metrics.window_stats(Some(PRODUCTION), start, mid)?;
        let rate = |w: &crate::metrics::WindowStats| (w.count > 0).then_some(w.error_rate);
        Ok(WeekOverWeek {
            from,
            to,
            queries: this.count,
            last_week_queries: last.count,
            p95_ms: this.p95,
            last_week_p95_ms: last.p95,
            error_rate: rate(&this),
            last_week_error_rate: rate(&last),
        })
    }

    /// Each release deployed, promoted, failed, blocked or abandoned since `since`, once, with
    /// its latest outcome (a release gated ready and then promoted counts as promoted),
    /// newest first, from the audit log.
    fn deploy_outcomes(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<DeployOutcome>> {
        let mut out: Vec<DeployOutcome> = Vec::new();
        for e in self.store.audit_events(None, 5_000)? {
            if parse_time(&e.at).is_none_or(|t| t < since) {
                continue;
            }
            let outcome = match e.action.as_str() {
                "promotion.succeeded" => "promoted",
                "promotion.failed" => "failed",
                "gate.completed" if e.detail.contains("\"verdict\":\"blocked\"") => "blocked",
                "gate.completed" => "ready",
                "release.abandoned" => "abandoned",
                _ => continue,
            };
            let Some(id) = e.release_id.clone() else {
                continue;
            };
            if out.iter().any(|o| o.release == id) {
                continue;
            }
            let rel = self.store.release(&id)?;
            let mut causes = Vec::new();
            let mut watch = None;
            match outcome {
                "failed" => {
                    if let Some(f) = rel.as_ref().and_then(|r| r.failure.as_ref()) {
                        let at = f
                            .migration
                            .as_deref()
                            .map_or(String::new(), |m| format!("{m}: "));
                        causes.push(format!("{at}{}", f.error));
                    }
                    if let Some(note) = rel.as_ref().and_then(|r| r.root_cause.clone()) {
                        causes.push(format!("root cause: {note}"));
                    }
                }
                "abandoned" => {
                    let note = serde_json::from_str::<serde_json::Value>(&e.detail)
                        .ok()
                        .and_then(|d| d.get("note").and_then(|n| n.as_str()).map(str::to_string));
                    causes.extend(note);
                }
                "ready" => {
                    if let Some(r) = rel.as_ref().filter(|r| r.state.is_candidate()) {
                        causes.push(format!("awaiting a decision ({})", r.state));
                    }
                }
                "blocked" => {
                    if let Some(gate) = self.store.gate_report(&id)? {
                        causes.extend(
                            (gate.checks.iter())
                                .filter(|c| c.status == CheckStatus::Fail)
                                .map(|c| format!("{}: {}", c.id, c.reason)),
                        );
                    }
                }
                _ => {
                    if let Some(r) = &rel {
                        watch = self.watch(r).ok().flatten().map(|w| {
                            if w.status == WatchStatus::Regressed {
                                causes.push(format!("watch: {}", w.reasons.join("; ")));
                            }
                            w.status
                        });
                    }
                }
            }
            out.push(DeployOutcome {
                label: rel.and_then(|r| r.label),
                release: id,
                outcome,
                at: e.at.clone(),
                by: e.actor.clone(),
                causes,
                watch,
            });
        }
        Ok(out)
    }
}

/// An RFC 3339 time as `2026-12-07 14:02 UTC`; a date or anything else as given.
fn readable(t: &str) -> String {
    crate::model::parse_time(t).map_or_else(
        || t.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// What needs doing, most urgent first, each with the command and key that act on it.
fn needs_action(r: &WeeklyReport, watch: Option<&WatchReport>) -> Vec<ActionItem> {
    let mut out = Vec::new();
    for u in r
        .status
        .iter()
        .filter(|u| u.status == LimitStatus::Exceeded)
    {
        out.push(ActionItem {
            kind: "limit",
            text: format!(
                "{} exceeded{}{}",
                u.metric.label(),
                u.exceeded_since
                    .as_deref()
                    .map_or(String::new(), |s| format!(" since {}", readable(s))),
                u.meaning
                    .as_deref()
                    .map_or(String::new(), |m| format!(": {m}"))
            ),
            command: "d1ops usage".into(),
            key: "4 (Capacity)".into(),
        });
    }
    for f in &r.forecasts {
        let exceeded =
            (r.status.iter()).any(|u| u.metric == f.metric && u.status == LimitStatus::Exceeded);
        if let (false, Some(d)) = (
            exceeded,
            f.days_until.filter(|d| (1..=super::WARN_DAYS).contains(d)),
        ) {
            out.push(ActionItem {
                kind: "limit",
                text: format!(
                    "{} reaches the plan's limit in about {d} days ({})",
                    f.label,
                    f.expected.map_or("–".into(), |e| e.to_string())
                ),
                command: "d1ops forecast".into(),
                key: "4 (Capacity)".into(),
            });
        }
    }
    if let Some(w) = watch.filter(|w| w.alert) {
        out.push(ActionItem {
            kind: "regression",
            text: w.summary(),
            command: "d1ops watch ack (once handled; roll back with d1ops rollback)".into(),
            key: "k (Monitor)".into(),
        });
    }
    for d in r.deploys.iter().filter(|d| d.outcome == "failed") {
        let noted = d.causes.iter().any(|c| c.starts_with("root cause:"));
        if !noted {
            out.push(ActionItem {
                kind: "failed_promotion",
                text: format!(
                    "promotion of {} failed at {}: {}",
                    d.release,
                    d.at,
                    d.causes.first().map_or("no cause recorded", String::as_str)
                ),
                command: format!("d1ops annotate {} --cause TEXT", d.release),
                key: "2 (Releases)".into(),
            });
        }
    }
    if !r.stale_previews.is_empty() || !r.expired_snapshots.is_empty() {
        out.push(ActionItem {
            kind: "cleanup",
            text: format!(
                "{} to clean ({} freed)",
                [
                    (r.stale_previews.len(), "stale preview", "stale previews"),
                    (
                        r.expired_snapshots.len(),
                        "expired recovery point",
                        "expired recovery points"
                    ),
                ]
                .into_iter()
                .filter(|(n, _, _)| *n > 0)
                .map(|(n, one, many)| d1ops_sql::text::count_of(n as u64, one, many))
                .collect::<Vec<_>>()
                .join(" and "),
                d1ops_sql::text::bytes(r.cleanup_frees_bytes)
            ),
            command: "d1ops cleanup".into(),
            key: "c (Environments)".into(),
        });
    }
    out
}

/// Week-over-week figures: traffic summed per week, storage and databases as the latest
/// day's value in each week.
fn growth(usage: &[UsageDay], from: NaiveDate, to: NaiveDate) -> Vec<Growth> {
    let totals = daily_totals(usage);
    let prev_from = from - Duration::days(7);
    let in_week = |a: NaiveDate, b: NaiveDate| -> Vec<&UsageDay> {
        totals.iter().filter(|u| u.day >= a && u.day <= b).collect()
    };
    let this = in_week(from, to);
    let last = in_week(prev_from, from - Duration::days(1));
    let sum = |rows: &[&UsageDay], f: fn(&UsageDay) -> u64| -> Option<f64> {
        (!rows.is_empty()).then(|| rows.iter().map(|u| f(u) as f64).sum())
    };
    let latest = |rows: &[&UsageDay], f: fn(&UsageDay) -> u64| -> Option<f64> {
        rows.last().map(|u| f(u) as f64)
    };
    type Pick = fn(&UsageDay) -> u64;
    let rows: [(&'static str, &'static str, bool, Pick); 5] = [
        ("storage", "bytes", false, |u| u.storage_bytes),
        ("rows read", "rows", true, |u| u.rows_read),
        ("rows written", "rows", true, |u| u.rows_written),
        ("queries", "queries", true, |u| u.queries),
        ("databases", "databases", false, |u| u.databases),
    ];
    rows.into_iter()
        .map(|(metric, unit, summed, f)| {
            let (now, before) = if summed {
                (sum(&this, f), sum(&last, f))
            } else {
                (latest(&this, f), latest(&last, f))
            };
            let now = now.unwrap_or(0.0);
            Growth {
                metric,
                unit,
                this_week: now,
                change_pct: before.filter(|b| *b > 0.0).map(|b| (now - b) / b * 100.0),
                last_week: before,
            }
        })
        .collect()
}
