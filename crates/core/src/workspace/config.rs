//! `d1ops.toml`: the workspace configuration, its defaults and its validation.
//!
//! Owns parsing and writing the file; it does not touch databases or state.
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{files, secrets};

/// The name of the configuration file at the workspace root.
pub const CONFIG_FILE: &str = "d1ops.toml";
/// wrangler's default ledger table.
pub const DEFAULT_MIGRATIONS_TABLE: &str = "d1_migrations";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: no d1ops.toml here; run `d1ops init` first (or pass --workspace DIR)")]
    Missing { path: String },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A syntax or type error; `at` is ` line N, column M` when known. The source line is
    /// never quoted (it may hold a secret) and secret values are redacted from `message`.
    #[error("{path}{at}: {message}")]
    Parse {
        path: String,
        at: String,
        message: String,
    },
    #[error(transparent)]
    File(#[from] super::files::FileError),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Which backend holds the databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Local,
    Cloudflare,
}

/// How migration files are laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// Detect: a Drizzle journal wins, then nested `*/migration.sql`, else wrangler.
    #[default]
    Auto,
    Wrangler,
    Drizzle,
    Nested,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub backend: BackendKind,
    pub migrations_dir: String,
    pub migrations_table: String,
    pub migrations_layout: LayoutKind,
    /// Capacity plan profile (`d1-free`, `workers-paid` or a custom one).
    pub plan: String,
    /// A migration statement running longer than this is stopped (D1's query limit is 30 s).
    pub statement_timeout: String,
    /// Lets `statement_timeout = "0s"` mean "no limit" (refused without it).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_no_statement_timeout: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseBinding>,
    /// The Cloudflare account and limits (`backend = "cloudflare"`); the API token is never
    /// configured here, only in `CLOUDFLARE_API_TOKEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<CloudflareConfig>,
    pub policy: Policy,
    pub gate: GateConfig,
    pub snapshots: SnapshotRetention,
    /// The post-promotion watch window (see [`WatchConfig`]).
    pub watch: WatchConfig,
    #[serde(rename = "probe", skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeConfig>,
    /// Custom capacity plans, by name (see `plan`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub plans: std::collections::BTreeMap<String, crate::plans::Plan>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: BackendKind::Local,
            migrations_dir: "migrations".into(),
            migrations_table: DEFAULT_MIGRATIONS_TABLE.into(),
            migrations_layout: LayoutKind::Auto,
            plan: "d1-free".into(),
            statement_timeout: "30s".into(),
            allow_no_statement_timeout: false,
            database: None,
            cloudflare: None,
            policy: Policy::default(),
            gate: GateConfig::default(),
            snapshots: SnapshotRetention::default(),
            watch: WatchConfig::default(),
            probes: Vec::new(),
            plans: Default::default(),
        }
    }
}

/// The D1 binding imported from wrangler's `d1_databases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseBinding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_database_id: Option<String>,
}

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
    pub api_token: Option<crate::cloudflare::ApiToken>,
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
    fn problem(&self) -> Option<String> {
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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            required_approvals: 1,
            allow_no_approval: false,
            allow_self_approval: false,
            preview_ttl: "7d".into(),
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

    fn problem(&self) -> Option<String> {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    pub regression_ratio: f64,
    pub scan_rows_warn: u64,
    /// Added to `regression_ratio × p95 before`, so sub-millisecond noise cannot block.
    pub latency_floor_ms: f64,
    /// `CREATE INDEX` on a table with more rows than this is flagged (with its build time).
    pub index_rows_warn: u64,
    /// Per-check severity overrides: check or lint id → `fail` | `warn` | `off`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub severity: std::collections::BTreeMap<String, String>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            regression_ratio: 1.5,
            scan_rows_warn: 10_000,
            latency_floor_ms: 2.0,
            index_rows_warn: 100_000,
            severity: Default::default(),
        }
    }
}

/// A probe: a named statement with expectations and a latency budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    pub name: String,
    pub sql: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<toml::Value>,
    #[serde(default = "default_probe_kind")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_rows: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_changes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
}

fn default_probe_kind() -> String {
    "read".into()
}

/// Runs per probe when `runs` is not set.
pub const DEFAULT_PROBE_RUNS: u32 = 20;

/// The rows a probe expects: `expect_rows = 3`, or an inclusive range `"1..50"` / `"1.."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRange {
    pub min: u64,
    pub max: Option<u64>,
}

impl RowRange {
    pub fn contains(&self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m)
    }
}

impl std::fmt::Display for RowRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.max {
            Some(m) if m == self.min => write!(f, "{m} row(s)"),
            Some(m) => write!(f, "{}..{m} rows", self.min),
            None => write!(f, "at least {} row(s)", self.min),
        }
    }
}

impl ProbeConfig {
    pub fn is_write(&self) -> bool {
        self.kind == "write"
    }

    pub fn runs(&self) -> u32 {
        self.runs.unwrap_or(DEFAULT_PROBE_RUNS)
    }

    /// `expect_rows` parsed; `Err` says what is wrong with it.
    pub fn expected_rows(&self) -> Result<Option<RowRange>, String> {
        let bad = |shown: String| {
            format!(
                "expect_rows = {shown} must be a row count (3) or an inclusive range (\"1..50\", \"1..\")"
            )
        };
        let count = |s: &str| s.trim().parse::<u64>().ok();
        match &self.expect_rows {
            None => Ok(None),
            Some(toml::Value::Integer(n)) => u64::try_from(*n)
                .map(|n| {
                    Some(RowRange {
                        min: n,
                        max: Some(n),
                    })
                })
                .map_err(|_| bad(n.to_string())),
            Some(toml::Value::String(s)) => {
                let range = match s.split_once("..") {
                    None => count(s).map(|n| RowRange {
                        min: n,
                        max: Some(n),
                    }),
                    Some((lo, hi)) => {
                        let min = if lo.trim().is_empty() {
                            Some(0)
                        } else {
                            count(lo)
                        };
                        let max = if hi.trim().is_empty() {
                            Some(None)
                        } else {
                            count(hi).map(Some)
                        };
                        min.zip(max).map(|(min, max)| RowRange { min, max })
                    }
                };
                match range {
                    Some(r) if r.max.is_some_and(|m| m < r.min) => Err(format!(
                        "expect_rows = {s:?}: the range is empty (its minimum is above its maximum)"
                    )),
                    Some(r) => Ok(Some(r)),
                    None => Err(bad(format!("{s:?}"))),
                }
            }
            Some(other) => Err(bad(other.to_string())),
        }
    }

    /// Everything wrong with this probe's declaration, as one sentence (`None`: fine).
    fn problem(&self) -> Option<String> {
        if self.name.trim().is_empty() {
            return Some("a probe needs a name".into());
        }
        if self.sql.trim().is_empty() {
            return Some("sql is empty".into());
        }
        if let Err(e) = self.expected_rows() {
            return Some(e);
        }
        if self.expect_changes.is_some() && !self.is_write() {
            return Some(
                "expect_changes applies to write probes only (add kind = \"write\")".into(),
            );
        }
        if self.expect_changes.is_some_and(|c| c < 0) {
            return Some("expect_changes must be 0 or more".into());
        }
        if self.runs.is_some_and(|r| r == 0 || r > 10_000) {
            return Some("runs must be between 1 and 10000".into());
        }
        if self.p95_ms.is_some_and(|b| !(b.is_finite() && b > 0.0)) {
            return Some("p95_ms must be a positive number of milliseconds".into());
        }
        if let Some(p) = self
            .params
            .iter()
            .find(|p| matches!(p, toml::Value::Array(_) | toml::Value::Table(_)))
        {
            return Some(format!(
                "params may hold strings, numbers and booleans, not {p}"
            ));
        }
        None
    }
}

/// A loaded `d1ops.toml` with what it spelled out rather than left to defaults.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `migrations_dir` is written in the file: then the folder must exist (a missing one
    /// is an error, not a code-only workspace).
    pub migrations_dir_set: bool,
}

impl Config {
    /// Reads and validates `d1ops.toml` in `root`.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        Ok(Config::load_file(root)?.config)
    }

    /// Reads and validates `d1ops.toml` in `root`, noting which keys it sets. The file must
    /// be a regular file of at most [`files::CONFIG_LIMIT`] bytes.
    pub fn load_file(root: &Path) -> Result<Loaded, ConfigError> {
        let path = root.join(CONFIG_FILE);
        let shown = path.display().to_string();
        let bytes = match files::read_limited(&path, &shown, "d1ops.toml", files::CONFIG_LIMIT) {
            Ok(b) => b,
            Err(e) if e.is_missing() => {
                return Err(ConfigError::Missing {
                    path: root.display().to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let (line, column) = secrets::line_column(&lossy, offset);
                return Err(ConfigError::Parse {
                    path: shown,
                    at: format!(" line {line}, column {column}"),
                    message: "not valid UTF-8; save the file as UTF-8".into(),
                });
            }
        };
        let config = Config::parse(&text, &shown)?;
        let migrations_dir_set = toml::from_str::<toml::Table>(&text)
            .map(|t| t.contains_key("migrations_dir"))
            .unwrap_or(true);
        Ok(Loaded {
            config,
            migrations_dir_set,
        })
    }

    /// Parses configuration text; `shown` names the file in errors. No error quotes the
    /// source, and values that could be secrets are redacted (see [`secrets`]).
    pub fn parse(text: &str, shown: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (at, message) = secrets::toml_error(&e, text);
            ConfigError::Parse {
                path: shown.to_string(),
                at: at
                    .map(|(line, column)| format!(" line {line}, column {column}"))
                    .unwrap_or_default(),
                message,
            }
        })?;
        if config
            .cloudflare
            .as_ref()
            .is_some_and(|c| c.api_token.is_some())
        {
            let at = secrets::toml_line_of(text, "cloudflare.api_token")
                .map(|line| format!(" line {line}"))
                .unwrap_or_default();
            return Err(ConfigError::Parse {
                path: shown.to_string(),
                at,
                message: format!(
                    "cloudflare.api_token must not be written in a config file (its value is not shown); \
                     remove it and set {} in the environment",
                    crate::cloudflare::TOKEN_ENV
                ),
            });
        }
        config.validate(shown).map_err(|e| match e {
            ConfigError::Invalid { path, message } => ConfigError::Invalid {
                path,
                message: secrets::redact(&message, &secrets::secret_values(text)),
            },
            other => other,
        })?;
        Ok(config)
    }

    fn validate(&self, shown: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: shown.to_string(),
            message,
        };
        if let Some(problem) = ledger_name_problem(&self.migrations_table) {
            return Err(invalid(problem));
        }
        if self.migrations_dir.trim().is_empty() {
            return Err(invalid("migrations_dir must not be empty".into()));
        }
        if humantime::parse_duration(&self.policy.preview_ttl).is_err() {
            return Err(invalid(format!(
                "policy.preview_ttl {:?} is not a duration (try \"7d\" or \"36h\")",
                self.policy.preview_ttl
            )));
        }
        if self.policy.required_approvals == 0 && !self.policy.allow_no_approval {
            return Err(invalid(
                "policy.required_approvals = 0 would let a release reach production without anyone's approval; \
                 set it to 1 or more, or add allow_no_approval = true under [policy] if that is what you want"
                    .into(),
            ));
        }
        match humantime::parse_duration(&self.statement_timeout) {
            Err(_) => {
                return Err(invalid(format!(
                    "statement_timeout {:?} is not a duration (try \"30s\" or \"5m\")",
                    self.statement_timeout
                )));
            }
            Ok(d) if d.is_zero() && !self.allow_no_statement_timeout => {
                return Err(invalid(format!(
                    "statement_timeout {:?} is no limit at all; use one such as \"30s\" (D1's own), \
                     or add allow_no_statement_timeout = true to run migration statements without a time limit",
                    self.statement_timeout
                )));
            }
            Ok(_) => {}
        }
        if self.gate.regression_ratio.is_nan() || self.gate.regression_ratio < 1.0 {
            return Err(invalid("gate.regression_ratio must be at least 1.0".into()));
        }
        if self.plan().is_none() {
            return Err(invalid(format!(
                "plan {:?} is neither built in ({}) nor declared under [plans.{}]",
                self.plan,
                crate::plans::BUILTIN.join(", "),
                self.plan
            )));
        }
        if let Some(problem) = self.cloudflare.as_ref().and_then(CloudflareConfig::problem) {
            return Err(invalid(problem));
        }
        if let Some(problem) = self.watch.problem() {
            return Err(invalid(problem));
        }
        for (id, sev) in &self.gate.severity {
            if !matches!(sev.as_str(), "fail" | "warn" | "off") {
                return Err(invalid(format!(
                    "gate.severity.{id} = {sev:?}: use \"fail\", \"warn\" or \"off\""
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.probes {
            if !seen.insert(p.name.as_str()) {
                return Err(invalid(format!("probe {:?} is declared twice", p.name)));
            }
            if !matches!(p.kind.as_str(), "read" | "write") {
                return Err(invalid(format!(
                    "probe {:?}: kind {:?} must be \"read\" or \"write\"",
                    p.name, p.kind
                )));
            }
            if let Some(problem) = p.problem() {
                return Err(invalid(format!("probe {:?}: {problem}", p.name)));
            }
        }
        Ok(())
    }

    /// The preview TTL as a duration (validated at load).
    pub fn preview_ttl(&self) -> std::time::Duration {
        humantime::parse_duration(&self.policy.preview_ttl)
            .unwrap_or(std::time::Duration::from_secs(7 * 24 * 3600))
    }

    /// The selected capacity plan (validated at load).
    pub fn plan(&self) -> Option<crate::plans::Plan> {
        self.plans
            .get(&self.plan)
            .cloned()
            .or_else(|| crate::plans::builtin(&self.plan))
    }

    /// The per-statement apply time limit (validated at load). `"0s"` (allowed only with
    /// `allow_no_statement_timeout = true`) means no limit: a span longer than any apply.
    pub fn statement_timeout(&self) -> std::time::Duration {
        match humantime::parse_duration(&self.statement_timeout) {
            Ok(d) if d.is_zero() => NO_STATEMENT_TIMEOUT,
            Ok(d) => d,
            Err(_) => std::time::Duration::from_secs(30),
        }
    }

    /// Whether statements have a time limit (`statement_timeout` is not `"0s"`).
    pub fn has_statement_timeout(&self) -> bool {
        self.statement_timeout() != NO_STATEMENT_TIMEOUT
    }

    /// Renders the configuration as commented TOML for `init`.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# d1ops workspace configuration (see README: Configuration)\n\
             # backend: local (SQLite files under .d1ops/db) or cloudflare\n{body}"
        )
    }
}

/// The time limit standing for "none" (`statement_timeout = "0s"` with
/// `allow_no_statement_timeout = true`): about 136 years, and still a valid millisecond count.
pub const NO_STATEMENT_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(u32::MAX as u64);

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why `name` cannot be the migrations ledger's table, if it cannot.
pub fn ledger_name_problem(name: &str) -> Option<String> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !plain {
        return Some(format!(
            "migrations_table {name:?} must be a plain identifier (a letter or _, then letters, digits, _; at most 64)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("sqlite_") {
        return Some(format!(
            "migrations_table {name:?}: names starting with sqlite_ are reserved by SQLite; use e.g. \"{DEFAULT_MIGRATIONS_TABLE}\""
        ));
    }
    if lower.starts_with("_cf_") {
        return Some(format!(
            "migrations_table {name:?}: names starting with _cf_ are reserved by Cloudflare D1; use e.g. \"{DEFAULT_MIGRATIONS_TABLE}\""
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let c = Config::default();
        let text = c.to_toml();
        assert_eq!(Config::parse(&text, "x").unwrap(), c);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("migration_dir = \"m\"\n", "d1ops.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("d1ops.toml") && msg.contains("migration_dir"),
            "{msg}"
        );
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn watch_section_is_validated() {
        let c = Config::parse("[watch]\nwindow = \"45m\"\np95_ratio = 2.0\n", "x").unwrap();
        assert_eq!(c.watch.window().as_secs(), 45 * 60);
        assert_eq!(c.watch.baseline().as_secs(), 3600);
        for (text, needle) in [
            ("[watch]\nwindow = \"soon\"\n", "watch.window"),
            ("[watch]\nbaseline = \"10s\"\n", "watch.baseline"),
            ("[watch]\np95_ratio = 0.5\n", "watch.p95_ratio"),
            ("[watch]\nerror_rate_points = -1\n", "error_rate_points"),
            ("[watch]\nlimit = 3\n", "limit"),
        ] {
            let err = Config::parse(text, "d1ops.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn safeguards_need_an_explicit_opt_out() {
        let err = Config::parse("[policy]\nrequired_approvals = 0\n", "d1ops.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_no_approval = true"), "{err}");
        let c = Config::parse(
            "[policy]\nrequired_approvals = 0\nallow_no_approval = true\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.policy.required_approvals, 0);
        let err = Config::parse("statement_timeout = \"0s\"\n", "d1ops.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_no_statement_timeout = true"), "{err}");
        let c = Config::parse(
            "statement_timeout = \"0s\"\nallow_no_statement_timeout = true\n",
            "x",
        )
        .unwrap();
        assert!(!c.has_statement_timeout());
        assert!(c.statement_timeout() > std::time::Duration::from_secs(365 * 86_400));
        assert!(Config::default().has_statement_timeout());
        // The opt-outs are not written by `init` unless set.
        assert!(!Config::default().to_toml().contains("allow_no"));
    }

    #[test]
    fn ledger_names_are_checked() {
        for (name, needle) in [
            ("sqlite_x", "reserved by SQLite"),
            ("SQLITE_x", "reserved by SQLite"),
            ("_cf_x", "reserved by Cloudflare D1"),
            ("9x", "plain identifier"),
            ("a b", "plain identifier"),
            ("", "plain identifier"),
        ] {
            let err = Config::parse(&format!("migrations_table = {name:?}\n"), "x")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
        assert!(Config::parse("migrations_table = \"_ledger2\"\n", "x").is_ok());
    }

    #[test]
    fn parse_errors_name_line_and_key_without_the_source() {
        let err = Config::parse("[policy]\nrequired_approvals = \"two\"\n", "d1ops.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("d1ops.toml line 2, column ")
                && err.contains("policy.required_approvals"),
            "{err}"
        );
        for text in [
            "[cloudflare]\ntoken = \"tok-s3cr3t\"\n",
            "[cloudflare]\napi_token = \"tok-s3cr3t\"\n",
            "[cloudflare]\napi_token = tok-s3cr3t\n",
            "[cloudflare]\napiToken = \"tok-s3cr3t\n",
            "[gate.severity]\napi_key = \"tok-s3cr3t\"\n",
        ] {
            let err = Config::parse(text, "d1ops.toml").unwrap_err().to_string();
            assert!(!err.contains("tok-s3cr3t"), "{text}: {err}");
            assert!(err.contains("d1ops.toml"), "{err}");
        }
    }

    #[test]
    fn bad_ttl_rejected() {
        let err = Config::parse("[policy]\npreview_ttl = \"soon\"\n", "d1ops.toml").unwrap_err();
        assert!(err.to_string().contains("preview_ttl"));
    }
}
