//! The Monitor's data for one environment and window: latency / QPS / error-rate series,
//! window totals, the top queries in the chosen order, recent errors, the live release's
//! watch and, on Cloudflare, how fresh D1's analytics are (syncing first when due). Reads rollups only, so its cost follows the window, not the traffic.
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{WatchReport, open_metrics};
use crate::engine::{Engine, PRODUCTION, Result};
use crate::metrics::{QueryStat, RecentError, SeriesPoint, TopBy, WindowStats};
use crate::model::now_utc;

/// The Monitor's time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorWindow {
    FiveMinutes,
    Hour,
    Day,
    Week,
}

impl MonitorWindow {
    pub const ALL: [MonitorWindow; 4] = [
        MonitorWindow::FiveMinutes,
        MonitorWindow::Hour,
        MonitorWindow::Day,
        MonitorWindow::Week,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MonitorWindow::FiveMinutes => "5m",
            MonitorWindow::Hour => "1h",
            MonitorWindow::Day => "24h",
            MonitorWindow::Week => "7d",
        }
    }

    pub fn length(self) -> Duration {
        match self {
            MonitorWindow::FiveMinutes => Duration::minutes(5),
            MonitorWindow::Hour => Duration::hours(1),
            MonitorWindow::Day => Duration::hours(24),
            MonitorWindow::Week => Duration::days(7),
        }
    }

    /// Bucket size: minutes for the short windows, hours for the long ones (hour rollups
    /// cover the whole retention; minute rollups only the last days).
    pub fn step(self) -> Duration {
        match self {
            MonitorWindow::FiveMinutes | MonitorWindow::Hour => Duration::minutes(1),
            MonitorWindow::Day | MonitorWindow::Week => Duration::hours(1),
        }
    }

    /// The next window (wrapping).
    pub fn next(self) -> MonitorWindow {
        let i = Self::ALL.iter().position(|w| *w == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// Everything the Monitor draws for one (environment, window, order).
#[derive(Debug, Clone, Serialize)]
pub struct MonitorData {
    pub env: String,
    /// Environments to choose from: production first, then those with traffic.
    pub envs: Vec<String>,
    pub window: MonitorWindow,
    pub order: TopBy,
    pub to: DateTime<Utc>,
    pub series: Vec<SeriesPoint>,
    pub totals: WindowStats,
    pub top: Vec<QueryStat>,
    /// The newest raw errors of the environment (any age), newest first.
    pub errors: Vec<RecentError>,
    /// Production's live release's watch (production only).
    pub watch: Option<WatchReport>,
    /// How current D1's analytics are (cloudflare backend; `null` locally, where metrics
    /// are recorded as statements run).
    pub freshness: Option<crate::engine::Freshness>,
    /// Whether series, totals and top include d1ops' own statements (ledger reads,
    /// introspection, migrations, probes); by default they show the app's traffic only.
    pub include_d1ops: bool,
    /// d1ops' own statements in the window (counted in usage; left out of the rest unless
    /// `include_d1ops`).
    pub d1ops_queries: u64,
}

impl Engine {
    /// The Monitor's data; `env` defaults to production. App traffic only (see
    /// [`Engine::monitor_with`]).
    pub fn monitor(
        &self,
        env: Option<&str>,
        window: MonitorWindow,
        order: TopBy,
        limit: usize,
    ) -> Result<MonitorData> {
        self.monitor_with(env, window, order, limit, false)
    }

    /// The Monitor's data, with d1ops' own statements included when `include_d1ops` (each
    /// top query then says its `source`).
    pub fn monitor_with(
        &self,
        env: Option<&str>,
        window: MonitorWindow,
        order: TopBy,
        limit: usize,
        include_d1ops: bool,
    ) -> Result<MonitorData> {
        let freshness = self.refresh_analytics();
        let metrics = open_metrics(&self.ws)?.including_d1ops(include_d1ops);
        let mut envs = vec![PRODUCTION.to_string()];
        envs.extend(
            metrics
                .environments()?
                .into_iter()
                .filter(|e| e != PRODUCTION),
        );
        let env = env.unwrap_or(PRODUCTION).to_string();
        let to = now_utc();
        let from = to - window.length();
        let series = metrics.series(Some(&env), from, to, window.step())?;
        let totals = metrics.window_stats(Some(&env), from, to)?;
        let everything =
            open_metrics(&self.ws)?
                .including_d1ops(true)
                .window_stats(Some(&env), from, to)?;
        let app = if include_d1ops {
            open_metrics(&self.ws)?.window_stats(Some(&env), from, to)?
        } else {
            totals.clone()
        };
        let d1ops_queries = everything.count.saturating_sub(app.count);
        let top = metrics.top_queries(Some(&env), from, to, order, limit)?;
        let errors = metrics.recent_errors(Some(&env), 5)?;
        let watch = if env == PRODUCTION {
            self.live_watch()
        } else {
            None
        };
        Ok(MonitorData {
            env,
            envs,
            window,
            order,
            to,
            series,
            totals,
            top,
            errors,
            watch,
            freshness,
            include_d1ops,
            d1ops_queries,
        })
    }
}
