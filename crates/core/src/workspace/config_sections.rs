//! The sections of `d1ops.toml` about where and how the lifecycle runs: `[cloudflare]` (the
//! account, the API and how previews are seeded), `[policy]`, the snapshot retention and the
//! `[watch]` window after a promotion, each with its defaults and its own validation.
use serde::{Deserialize, Serialize};

use super::is_false;

/// How a preview database on Cloudflare is seeded from production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PreviewSeed {
    /// Export production (schema and rows) and import it into the preview.
    #[default]
    Full,
    /// Copy the schema and the migrations ledger only (fast; probes see no rows).
    Schema,
}

/// `[cloudflare]`: where the D1 databases live and how d1ops talks to the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudflareConfig {
    /// The account id (else `CLOUDFLARE_ACCOUNT_ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Production's D1 database id (else `[database].database_id` from wrangler).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
    pub preview_seed: PreviewSeed,
    /// Most statements sent in one `/query` batch; a larger release is applied migration by
    /// migration with a Time Travel bookmark to go back to.
    pub max_batch_statements: usize,
    /// Most bytes of SQL sent in one `/query` batch.
    pub max_batch_bytes: usize,
    /// How long one API request may take (humantime).
    pub timeout: String,
    /// Retries of a request answered 429 or 5xx (reads only for 5xx).
    pub retries: u32,
    /// How long analytics read from the GraphQL API are reused before asking again.
    pub analytics_refresh: String,
    /// Most GraphQL requests d1ops makes in any 5 minutes. Cloudflare allows each user 300;
    /// the rest is left to other tools using the same token.
    pub analytics_budget: u32,
    /// Refused when present: the token belongs in `CLOUDFLARE_API_TOKEN` only. Read so the
    /// refusal can name the key without echoing the value.
    #[serde(skip_serializing)]
    pub api_token: Option<RefusedToken>,
}

/// A token written in `[cloudflare]`: read only so it can be refused. The value is dropped as
/// it is read, so it cannot be shown, kept or written back (and the type exists in builds
/// without the D1 backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedToken;

impl<'de> Deserialize<'de> for RefusedToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|_| RefusedToken)
    }
}

impl Default for CloudflareConfig {
    fn default() -> Self {
        CloudflareConfig {
            account_id: None,
            database_id: None,
            preview_seed: PreviewSeed::Full,
            max_batch_statements: 500,
            max_batch_bytes: 1_000_000,
            timeout: "60s".into(),
            retries: 4,
            analytics_refresh: "5m".into(),
            analytics_budget: 250,
            api_token: None,
        }
    }
}

impl CloudflareConfig {
    pub(super) fn problem(&self) -> Option<String> {
        if self.api_token.is_some() {
            return Some(
                "cloudflare.api_token must not be written in a config file (its value is not shown); \
                 remove it and set CLOUDFLARE_API_TOKEN in the environment"
                    .into(),
            );
        }
        if humantime::parse_duration(&self.timeout).is_err() {
            return Some(format!(
                "cloudflare.timeout {:?} is not a duration (try \"60s\")",
                self.timeout
            ));
        }
        if humantime::parse_duration(&self.analytics_refresh).is_err() {
            return Some(format!(
                "cloudflare.analytics_refresh {:?} is not a duration (try \"5m\")",
                self.analytics_refresh
            ));
        }
        if !(1..=300).contains(&self.analytics_budget) {
            return Some(format!(
                "cloudflare.analytics_budget {} must be between 1 and 300 (Cloudflare allows 300 GraphQL requests per 5 minutes)",
                self.analytics_budget
            ));
        }
        if self.max_batch_statements < 2 {
            return Some("cloudflare.max_batch_statements must be at least 2".into());
        }
        if self.max_batch_bytes < 1024 {
            return Some("cloudflare.max_batch_bytes must be at least 1024".into());
        }
        for (key, v) in [
            ("account_id", &self.account_id),
            ("database_id", &self.database_id),
        ] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.chars().any(|c| c.is_whitespace() || c == '/'))
            {
                return Some(format!("cloudflare.{key} {v:?} is not an id"));
            }
        }
        None
    }

    pub fn timeout(&self) -> std::time::Duration {
        humantime::parse_duration(&self.timeout).unwrap_or(std::time::Duration::from_secs(60))
    }

    pub fn analytics_refresh(&self) -> std::time::Duration {
        humantime::parse_duration(&self.analytics_refresh)
            .unwrap_or(std::time::Duration::from_secs(300))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub required_approvals: u32,
    /// Lets `required_approvals = 0` stand (refused without it): releases then promote
    /// without anyone's approval.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_no_approval: bool,
    pub allow_self_approval: bool,
    /// A preview idle longer than this is stale (humantime, e.g. `7d`).
    pub preview_ttl: String,
    /// What a promotion does with the schema it applied when a target's code then fails.
    pub on_code_failure: super::CodeFailurePolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            required_approvals: 1,
            allow_no_approval: false,
            allow_self_approval: false,
            preview_ttl: "7d".into(),
            on_code_failure: super::CodeFailurePolicy::KeepSchema,
        }
    }
}

/// Which recovery points `cleanup` keeps: the newest `keep_last`, and every one younger than
/// `keep_days`. The live release's recovery point and the last restore's undo point are
/// always kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotRetention {
    pub keep_last: u32,
    pub keep_days: u32,
}

impl Default for SnapshotRetention {
    fn default() -> Self {
        SnapshotRetention {
            keep_last: 10,
            keep_days: 30,
        }
    }
}

/// The watch window after a promotion: production's error rate and p95 over `window` after
/// the promotion are compared with the `baseline` before it. A regression is an error rate
/// up by more than `error_rate_points` percentage points *and* at least `error_rate_ratio` ×
/// the baseline's, or a p95 above `p95_ratio` × the baseline's + `p95_floor_ms`. Either side
/// needs `min_queries` queries before anything is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    pub window: String,
    pub baseline: String,
    pub error_rate_points: f64,
    pub error_rate_ratio: f64,
    pub p95_ratio: f64,
    pub p95_floor_ms: f64,
    pub min_queries: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            window: "30m".into(),
            baseline: "1h".into(),
            error_rate_points: 2.0,
            error_rate_ratio: 2.0,
            p95_ratio: 1.5,
            p95_floor_ms: 2.0,
            min_queries: 20,
        }
    }
}

impl WatchConfig {
    /// The window after a promotion (validated at load).
    pub fn window(&self) -> std::time::Duration {
        humantime::parse_duration(&self.window).unwrap_or(std::time::Duration::from_secs(1800))
    }

    /// The stretch before a promotion it is compared with (validated at load).
    pub fn baseline(&self) -> std::time::Duration {
        humantime::parse_duration(&self.baseline).unwrap_or(std::time::Duration::from_secs(3600))
    }

    pub(super) fn problem(&self) -> Option<String> {
        for (key, value) in [("window", &self.window), ("baseline", &self.baseline)] {
            match humantime::parse_duration(value) {
                Err(_) => {
                    return Some(format!(
                        "watch.{key} {value:?} is not a duration (try \"30m\" or \"2h\")"
                    ));
                }
                Ok(d) if d.as_secs() < 60 || d.as_secs() > 7 * 86_400 => {
                    return Some(format!(
                        "watch.{key} {value:?} must be between 1 minute and 7 days"
                    ));
                }
                Ok(_) => {}
            }
        }
        let positive = |v: f64| v.is_finite() && v >= 0.0;
        if !positive(self.error_rate_points) || self.error_rate_points > 100.0 {
            return Some("watch.error_rate_points must be between 0 and 100".into());
        }
        for (key, v) in [
            ("error_rate_ratio", self.error_rate_ratio),
            ("p95_ratio", self.p95_ratio),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Some(format!("watch.{key} must be at least 1.0"));
            }
        }
        if !positive(self.p95_floor_ms) {
            return Some("watch.p95_floor_ms must be 0 or more milliseconds".into());
        }
        None
    }
}
