//! `d1ops.toml`: the workspace configuration, its defaults and its validation.
//!
//! Owns parsing and writing the file; it does not touch databases or state.
//!
//! This file owns the top-level [`Config`], loading, parsing, validating and writing it; the
//! sections have their own files: `config_sections` (`[cloudflare]`, `[policy]`, snapshot
//! retention, `[watch]`) and `config_gate` (`[gate]`, the probes and their row ranges).
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{files, secrets};

#[path = "config_gate.rs"]
mod config_gate;
#[path = "config_sections.rs"]
mod config_sections;
#[path = "config_targets.rs"]
mod config_targets;

pub use config_gate::{DEFAULT_PROBE_RUNS, GateConfig, ProbeConfig, RowRange};
pub use config_sections::{CloudflareConfig, Policy, PreviewSeed, SnapshotRetention, WatchConfig};
pub use config_targets::{CodeFailurePolicy, DEFAULT_TARGET_TIMEOUT, TargetConfig, TargetKind};

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
    /// `[[target]]`: where a release's code goes live, in deploy order.
    #[serde(rename = "target", skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetConfig>,
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
            targets: Vec::new(),
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
                    d1ops_sql::env_vars::TOKEN_ENV
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
        if let Some(problem) = config_targets::targets_problem(&self.targets) {
            return Err(invalid(problem));
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
