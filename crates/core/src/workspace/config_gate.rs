//! The `[gate]` section of `d1ops.toml`: the gate's settings and the probes, each a named
//! statement with expectations (rows, a latency budget, runs), and the row-range syntax
//! (`3`, `"1..50"`, `"1.."`), with its validation.
use serde::{Deserialize, Serialize};

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
    pub(super) fn problem(&self) -> Option<String> {
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
