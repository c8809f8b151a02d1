//! The watch window: after a promotion, production's error rate and p95 over the window
//! (`[watch] window`, default 30 min) are compared with the baseline before it (`[watch]
//! baseline`, default the hour before). Evaluated lazily whenever a view reads it — no daemon;
//! once the window has closed the verdict is stored on the release and never recomputed.
//!
//! Reads production's rollups; writes only the release's watch record.
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::open_metrics;
use crate::engine::{Engine, PRODUCTION, Result};
use crate::metrics::WindowStats;
use crate::model::{Release, now, now_utc, parse_time};
use crate::workspace::config::WatchConfig;

/// Where a release's watch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchStatus {
    /// The window is still open and nothing has regressed (yet).
    Watching,
    Ok,
    Regressed,
    /// Too few queries before or after the promotion to judge.
    NoData,
}

impl WatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchStatus::Watching => "watching",
            WatchStatus::Ok => "ok",
            WatchStatus::Regressed => "regressed",
            WatchStatus::NoData => "no data",
        }
    }
}

/// A release's watch: the two windows, the verdict and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchReport {
    pub release: String,
    pub env: String,
    pub promoted_at: String,
    pub window_secs: u64,
    pub baseline_secs: u64,
    pub status: WatchStatus,
    /// The window has closed; this verdict is final (and stored).
    pub complete: bool,
    /// Production over the baseline before the promotion.
    pub before: Option<WindowStats>,
    /// Production over the window after it (so far, while it is open).
    pub after: Option<WindowStats>,
    /// One sentence per tripped threshold (or why nothing could be judged).
    pub reasons: Vec<String>,
    pub evaluated_at: String,
    /// When a regression was first seen in the open window. It latches: the watch stays
    /// `regressed` (with the reasons seen then) until the window closes, even if traffic
    /// recovers, and the final verdict keeps it.
    #[serde(default)]
    pub raised_at: Option<String>,
    /// Who acknowledged the regression (`d1ops watch ack`, `k` in the console), and when:
    /// it no longer alerts.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    #[serde(default)]
    pub acknowledged_at: Option<String>,
    /// Whether this watch is a current alert: regressed, not acknowledged, and its window
    /// open or closed less than [`ALERT_HOURS`] ago. Older regressions are dated history.
    #[serde(default)]
    pub alert: bool,
}

/// How long after its window closed an unacknowledged regression still alerts.
pub const ALERT_HOURS: i64 = 24;

impl WatchReport {
    /// The window as text: "promoted 2026-12-07 14:02 UTC, window 14:02–14:32".
    pub fn window_text(&self) -> String {
        let Some(start) = parse_time(&self.promoted_at) else {
            return format!("window {} min", self.window_secs / 60);
        };
        let end = start + Duration::seconds(self.window_secs as i64);
        format!(
            "promoted {}, window {}–{}",
            start.format("%Y-%m-%d %H:%M UTC"),
            start.format("%H:%M"),
            end.format("%H:%M")
        )
    }

    /// Whether it alerts now (see [`WatchReport::alert`]), judged at `now`.
    fn alerting_at(&self, now: DateTime<Utc>) -> bool {
        if self.status != WatchStatus::Regressed || self.acknowledged_at.is_some() {
            return false;
        }
        if !self.complete {
            return true;
        }
        parse_time(&self.promoted_at).is_some_and(|p| {
            now - (p + Duration::seconds(self.window_secs as i64)) < Duration::hours(ALERT_HOURS)
        })
    }

    /// One line for humans.
    pub fn summary(&self) -> String {
        let minutes = self.window_secs / 60;
        match self.status {
            WatchStatus::Regressed if !self.alert => {
                let ack = match (&self.acknowledged_by, &self.acknowledged_at) {
                    (Some(by), Some(at)) => format!(
                        "acknowledged by {by} at {}",
                        parse_time(at).map_or_else(
                            || at.clone(),
                            |t| t.format("%Y-%m-%d %H:%M UTC").to_string()
                        )
                    ),
                    _ => "history, not a current alert".into(),
                };
                format!(
                    "regressed (release {}, {}; {ack}): {}",
                    self.release,
                    self.window_text(),
                    self.reasons.join("; ")
                )
            }
            WatchStatus::Regressed => format!(
                "regressed in the {minutes} min after promotion{} (release {}, {}): {}",
                if self.complete {
                    ""
                } else {
                    ", still watching"
                },
                self.release,
                self.window_text(),
                self.reasons.join("; ")
            ),
            WatchStatus::Ok => format!(
                "no regression in the {minutes} min after promotion{}",
                self.compared()
            ),
            WatchStatus::Watching => {
                let n = self.after.as_ref().map_or(0, |a| a.count);
                let so_far = d1ops_sql::text::count_of(n, "app query", "app queries");
                format!(
                    "watching the {minutes} min after promotion (so far: {so_far}{})",
                    self.compared_inline()
                )
            }
            WatchStatus::NoData => format!(
                "not judged: {}",
                self.reasons.first().map_or("no traffic", String::as_str)
            ),
        }
    }

    /// ", errors 0.0% → 1.0%, p95 2.0 ms → 3.0 ms" once both windows have traffic.
    fn compared_inline(&self) -> String {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) if a.count > 0 => format!(
                ", errors {:.1}% → {:.1}%, p95 {} → {}",
                b.error_rate * 100.0,
                a.error_rate * 100.0,
                ms(b.p95),
                ms(a.p95)
            ),
            _ => String::new(),
        }
    }

    fn compared(&self) -> String {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => format!(
                " (errors {:.1}% → {:.1}%, p95 {} → {})",
                b.error_rate * 100.0,
                a.error_rate * 100.0,
                ms(b.p95),
                ms(a.p95)
            ),
            _ => String::new(),
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1} ms"))
}

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs().max(60)
}

/// The watch record written when a promotion completes: the window it will be judged on.
pub(crate) fn watch_started(cfg: &WatchConfig, release: &str) -> String {
    let report = WatchReport {
        release: release.to_string(),
        env: PRODUCTION.into(),
        promoted_at: now(),
        window_secs: secs(cfg.window()),
        baseline_secs: secs(cfg.baseline()),
        status: WatchStatus::Watching,
        complete: false,
        before: None,
        after: None,
        reasons: Vec::new(),
        evaluated_at: now(),
        raised_at: None,
        acknowledged_by: None,
        acknowledged_at: None,
        alert: false,
    };
    serde_json::to_string(&report).unwrap_or_default()
}

/// Judges the window after against the baseline.
pub(crate) fn judge(
    cfg: &WatchConfig,
    before: &WindowStats,
    after: &WindowStats,
) -> (WatchStatus, Vec<String>) {
    if after.count < cfg.min_queries {
        return (
            WatchStatus::NoData,
            vec![format!(
                "{} quer{} after the promotion (at least {} needed)",
                after.count,
                if after.count == 1 { "y" } else { "ies" },
                cfg.min_queries
            )],
        );
    }
    if before.count < cfg.min_queries {
        return (
            WatchStatus::NoData,
            vec![format!(
                "no baseline: {} quer{} before the promotion (at least {} needed)",
                before.count,
                if before.count == 1 { "y" } else { "ies" },
                cfg.min_queries
            )],
        );
    }
    let mut reasons = Vec::new();
    let (b, a) = (before.error_rate * 100.0, after.error_rate * 100.0);
    if a - b > cfg.error_rate_points && a >= cfg.error_rate_ratio * b {
        reasons.push(format!("error rate {b:.1}% → {a:.1}%"));
    }
    if let (Some(pb), Some(pa)) = (before.p95, after.p95)
        && pa > cfg.p95_ratio * pb + cfg.p95_floor_ms
    {
        reasons.push(format!("p95 {pb:.1} ms → {pa:.1} ms"));
    }
    let status = if reasons.is_empty() {
        WatchStatus::Ok
    } else {
        WatchStatus::Regressed
    };
    (status, reasons)
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp();
    DateTime::from_timestamp(s.div_euclid(60) * 60, 0).unwrap_or(t)
}

impl Engine {
    /// The watch of a promoted release (`None` if it never was promoted). A final verdict is
    /// read back as stored; otherwise it is evaluated from production's rollups now, and
    /// stored when the window has closed (unless the engine is read-only). On Cloudflare the
    /// analytics are synced first when due, and the window counts as closed only once they
    /// are final past its end: a verdict is never frozen from data still arriving.
    pub fn watch(&self, rel: &Release) -> Result<Option<WatchReport>> {
        let Some(promoted) = rel.promoted_at.as_deref().and_then(parse_time) else {
            return Ok(None);
        };
        let stored: Option<WatchReport> =
            (self.store.release_watch(&rel.id)?).and_then(|json| serde_json::from_str(&json).ok());
        if let Some(w) = stored.as_ref().filter(|w| w.complete) {
            let mut w = w.clone();
            w.alert = w.alerting_at(now_utc());
            return Ok(Some(w));
        }
        let cfg = &self.ws.config.watch;
        let window = stored
            .as_ref()
            .map_or(secs(cfg.window()), |w| w.window_secs);
        let baseline = stored
            .as_ref()
            .map_or(secs(cfg.baseline()), |w| w.baseline_secs);
        let start = minute_floor(promoted);
        let end = start + Duration::seconds(window as i64);
        if self.uses_d1_analytics() {
            self.refresh_analytics();
        }
        let now = now_utc();
        let metrics = open_metrics(&self.ws)?;
        let before = metrics.window_stats(
            Some(PRODUCTION),
            start - Duration::seconds(baseline as i64),
            start,
        )?;
        let after = metrics.window_stats(Some(PRODUCTION), start, now.min(end))?;
        let complete = now >= end
            && self
                .analytics_final_until(PRODUCTION)?
                .is_none_or(|t| t >= end);
        let (mut status, mut reasons) = judge(cfg, &before, &after);
        // A regression latches: once raised in the open window it stays raised (with the
        // reasons seen then) until the window closes or an operator acknowledges it.
        let latched = stored.as_ref().filter(|w| w.raised_at.is_some());
        let newly_raised = latched.is_none() && status == WatchStatus::Regressed;
        if let Some(w) = latched
            && status != WatchStatus::Regressed
        {
            status = WatchStatus::Regressed;
            reasons = w.reasons.clone();
        }
        if !complete && status != WatchStatus::Regressed {
            status = WatchStatus::Watching;
        }
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut report = WatchReport {
            release: rel.id.clone(),
            env: PRODUCTION.into(),
            promoted_at: rel.promoted_at.clone().unwrap_or_default(),
            window_secs: window,
            baseline_secs: baseline,
            status,
            complete,
            before: Some(before),
            after: Some(after),
            reasons,
            evaluated_at: stamp.clone(),
            raised_at: latched
                .and_then(|w| w.raised_at.clone())
                .or_else(|| newly_raised.then(|| stamp.clone())),
            acknowledged_by: stored.as_ref().and_then(|w| w.acknowledged_by.clone()),
            acknowledged_at: stored.as_ref().and_then(|w| w.acknowledged_at.clone()),
            alert: false,
        };
        report.alert = report.alerting_at(now);
        if (complete || newly_raised) && !self.readonly {
            let json = serde_json::to_string(&report).unwrap_or_default();
            self.store.set_release_watch(&rel.id, &json)?;
        }
        Ok(Some(report))
    }

    /// Acknowledges the live release's raised regression (`d1ops watch ack`, `k` in the
    /// console): it stays in the record, dated, but no longer alerts. Audited
    /// (`watch.acknowledged`). Refused when nothing is raised.
    pub fn watch_ack(&mut self) -> Result<WatchReport> {
        self.ensure_writable("acknowledge the watch")?;
        let none = || {
            crate::engine::EngineError::Input(
                "nothing to acknowledge: the live release's watch has raised no regression".into(),
            )
        };
        let id = self.store.production()?.active_release.ok_or_else(none)?;
        let rel = self.store.release(&id)?.ok_or_else(none)?;
        let mut w = self.watch(&rel)?.ok_or_else(none)?;
        if w.status != WatchStatus::Regressed {
            return Err(none());
        }
        if w.acknowledged_at.is_some() {
            return Ok(w);
        }
        w.acknowledged_by = Some(self.actor.clone());
        w.acknowledged_at = Some(now());
        w.raised_at.get_or_insert_with(now);
        w.alert = false;
        let json = serde_json::to_string(&w).unwrap_or_default();
        let actor = self.actor.clone();
        let detail = serde_json::json!({
            "promoted_at": w.promoted_at,
            "window_secs": w.window_secs,
            "reasons": w.reasons,
        });
        self.store.atomically(|s| -> Result<()> {
            s.set_release_watch(&rel.id, &json)?;
            s.audit(&actor, "watch.acknowledged", Some(&rel.id), None, &detail)?;
            Ok(())
        })?;
        Ok(w)
    }

    /// The live release's watch, if production has a promoted live release. Errors reading
    /// metrics are logged and read as "no watch": a view must not fail because of them.
    pub fn live_watch(&self) -> Option<WatchReport> {
        let id = self.store.production().ok()?.active_release?;
        let rel = self.store.release(&id).ok()??;
        match self.watch(&rel) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, release = %id, "watch window could not be evaluated");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(count: u64, errors: u64, p95: f64) -> WindowStats {
        WindowStats {
            count,
            errors,
            error_rate: errors as f64 / count.max(1) as f64,
            p95: Some(p95),
        }
    }

    fn check(before: WindowStats, after: WindowStats, expected: WatchStatus) {
        let (status, reasons) = judge(&WatchConfig::default(), &before, &after);
        assert_eq!(status, expected, "{before:?} → {after:?}: {reasons:?}");
    }

    #[test]
    fn regressions_need_both_a_margin_and_a_ratio() {
        check(stats(1000, 1, 3.0), stats(1000, 2, 3.5), WatchStatus::Ok);
        // +4 points and ×40: regressed.
        check(
            stats(1000, 1, 3.0),
            stats(1000, 41, 3.0),
            WatchStatus::Regressed,
        );
        // +2.5 points but only ×1.5: noise on a high baseline.
        check(stats(1000, 50, 3.0), stats(1000, 75, 3.0), WatchStatus::Ok);
        // p95 3 → 7 ms: above 1.5 × 3 + 2.
        check(
            stats(1000, 0, 3.0),
            stats(1000, 0, 7.0),
            WatchStatus::Regressed,
        );
        // Sub-millisecond noise stays under the floor.
        check(stats(1000, 0, 0.2), stats(1000, 0, 0.9), WatchStatus::Ok);
    }

    #[test]
    fn too_little_traffic_is_not_judged() {
        check(
            stats(5, 0, 3.0),
            stats(1000, 500, 90.0),
            WatchStatus::NoData,
        );
        check(stats(1000, 0, 3.0), stats(3, 3, 90.0), WatchStatus::NoData);
    }
}
