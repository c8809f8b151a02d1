//! Where an environment's queries ran: D1's request analytics (`d1AnalyticsAdaptiveGroups`)
//! split by `servedByRegion`, for the Monitor of a database with read replication. Read live
//! (one GraphQL request, taken from the same budget as the sync), never stored; the primary's
//! region is the one D1 names for a query sent through the REST API, which the primary
//! always serves. When D1's analytics do not carry the dimension the split says so and is
//! empty. The types are in every build; the read needs the `d1` feature.
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::super::{Engine, Result};

/// One region's share of an environment's requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRow {
    /// D1's region code (`WNAM`, `ENAM`, `WEUR`, `EEUR`, `APAC`, `OC`).
    pub region: String,
    /// The primary's region (`false`: a read replica's).
    pub primary: bool,
    /// Requests (`/query` batches or Worker calls) this region answered.
    pub count: u64,
    pub read_queries: u64,
    pub write_queries: u64,
    /// Batch time, milliseconds; `None` when D1 did not send it.
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// An environment's requests over a window, by the region that served them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionSplit {
    pub env: String,
    pub database_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The primary's region, when a REST query could tell it.
    pub primary_region: Option<String>,
    /// Most requests first.
    pub regions: Vec<RegionRow>,
    /// Why the split is empty or partial (no `servedByRegion` in D1's analytics, …).
    pub note: Option<String>,
}

impl Engine {
    /// `env`'s requests over the last `window`, split by the region that served them
    /// (cloudflare backend; `None` elsewhere or when `env` has no database). One GraphQL
    /// request from the budget; an exhausted budget or a failed call is an error.
    pub fn region_split(&self, env: &str, window: Duration) -> Result<Option<RegionSplit>> {
        if !self.uses_d1_analytics() {
            return Ok(None);
        }
        let Some(db) = self.store.env(env)?.and_then(|e| e.database_id) else {
            return Ok(None);
        };
        #[cfg(feature = "d1")]
        {
            d1::split(self, env, &db, window).map(Some)
        }
        #[cfg(not(feature = "d1"))]
        {
            let _ = (db, window);
            Err(super::super::EngineError::Input(
                super::super::connect::NO_D1.into(),
            ))
        }
    }
}

#[cfg(feature = "d1")]
pub mod d1 {
    //! The read itself: the GraphQL text, its answer, the primary's region.
    use chrono::{DateTime, Duration, SecondsFormat, Utc};
    use serde_json::json;

    use super::{RegionRow, RegionSplit};
    use crate::cloudflare::Client;
    use crate::cloudflare::analytics::{self, AnalyticsError};
    use crate::cloudflare::d1::Statement;
    use crate::engine::analytics::BUDGET_WINDOW;
    use crate::engine::{Engine, EngineError, Result, capacity::open_metrics, connect};
    use crate::model::now_utc;

    const QUERY: &str = "query D1OpsRegions($accountTag: string!, $db: string!, $from: Time!, $to: Time!) {
  viewer {
    accounts(filter: {accountTag: $accountTag}) {
      d1AnalyticsAdaptiveGroups(limit: 100, filter: {databaseId: $db, datetime_geq: $from, datetime_lt: $to}, orderBy: [count_DESC]) {
        count
        sum { readQueries writeQueries }
        avg { queryBatchTimeMs }
        quantiles { queryBatchTimeMsP50 queryBatchTimeMsP99 }
        dimensions { servedByRegion }
      }
    }
  }
}
";

    pub(super) fn split(
        engine: &Engine,
        env: &str,
        db: &str,
        window: Duration,
    ) -> Result<RegionSplit> {
        let cfg = engine.ws.config.cloudflare.clone().unwrap_or_default();
        let to = now_utc();
        let from = to - window;
        let mut metrics = open_metrics(&engine.ws)?;
        if let Err(spent) = metrics.take_graphql_call(to, cfg.analytics_budget, BUDGET_WINDOW)? {
            return Err(EngineError::Refused(format!(
                "d1ops' GraphQL budget is used up ({} of {} requests per 5 min); try again at {}",
                spent.used,
                spent.limit,
                spent.free_at.format("%H:%M")
            )));
        }
        let (client, _, _) = connect::cloudflare_client(&engine.ws)?;
        let mut split = regions(&client, db, from, to)
            .map_err(|e| EngineError::Input(client.redact(&e.to_string())))?;
        split.env = env.to_string();
        split.primary_region = primary_region(&client, db);
        if let Some(p) = &split.primary_region {
            for r in &mut split.regions {
                r.primary = &r.region == p;
            }
        }
        Ok(split)
    }

    /// The primary's region: D1 serves REST queries from the primary and says where.
    fn primary_region(client: &Client, db: &str) -> Option<String> {
        let r = client.raw(db, &[Statement::new("SELECT 1")], true).ok()?;
        let meta = &r.first()?.meta;
        meta.served_by_primary
            .unwrap_or(true)
            .then(|| meta.served_by_region.clone())
            .flatten()
    }

    /// One GraphQL request: `db`'s requests in `from..to` by `servedByRegion` (no budget
    /// taken here; [`Engine::region_split`] takes it). `primary` is left `false`.
    pub fn regions(
        client: &Client,
        db: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> std::result::Result<RegionSplit, AnalyticsError> {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let variables = json!({
            "accountTag": client.account_id(),
            "db": db,
            "from": time(from),
            // Whole seconds: the end rounded up, so the last second's requests count.
            "to": time(to + Duration::milliseconds(999)),
        });
        let mut split = RegionSplit {
            env: String::new(),
            database_id: db.to_string(),
            from,
            to,
            primary_region: None,
            regions: Vec::new(),
            note: None,
        };
        let data = match analytics::query(client, "read D1 analytics by region", QUERY, variables) {
            Ok(data) => data,
            // An analytics API without the dimension: say so, the split stays empty.
            Err(e) if e.to_string().contains("servedByRegion") => {
                split.note = Some(format!(
                    "D1's analytics do not carry servedByRegion here: {e}"
                ));
                return Ok(split);
            }
            Err(e) => return Err(e),
        };
        let groups = data["viewer"]["accounts"][0]["d1AnalyticsAdaptiveGroups"]
            .as_array()
            .ok_or_else(|| AnalyticsError::Shape("no d1AnalyticsAdaptiveGroups".into()))?;
        for g in groups {
            let region = g["dimensions"]["servedByRegion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            split.regions.push(RegionRow {
                region: if region.is_empty() {
                    "unknown".into()
                } else {
                    region
                },
                primary: false,
                count: g["count"].as_u64().unwrap_or(0),
                read_queries: g["sum"]["readQueries"].as_u64().unwrap_or(0),
                write_queries: g["sum"]["writeQueries"].as_u64().unwrap_or(0),
                avg_ms: g["avg"]["queryBatchTimeMs"].as_f64(),
                p50_ms: g["quantiles"]["queryBatchTimeMsP50"].as_f64(),
                p99_ms: g["quantiles"]["queryBatchTimeMsP99"].as_f64(),
            });
        }
        if split.regions.iter().all(|r| r.region == "unknown") && !split.regions.is_empty() {
            split.note = Some("D1's analytics did not name the serving regions".into());
        }
        Ok(split)
    }
}
