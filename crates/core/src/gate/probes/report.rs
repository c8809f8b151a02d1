//! The probe checks' `details`, typed: written by the checks, read back by `release show`
//! and the console from a stored [`GateReport`], so both faces show the same numbers.
use serde::{Deserialize, Serialize};

pub use super::stats::ms;
use crate::model::{CheckResult, CheckStatus, GateReport};

/// p50 / p95 / max of a probe's timed runs in one phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// Timed runs that completed.
    pub runs: usize,
}

/// One probe in `probe.result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEntry {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_after: Option<String>,
    /// Why the probe missed its expectations after migrations; `None`: it met them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One probe in `probe.latency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyEntry {
    pub name: String,
    /// Before migrations: production's baseline.
    #[serde(default)]
    pub before: Option<Latency>,
    #[serde(default)]
    pub after: Option<Latency>,
    /// p95 after / p95 before.
    #[serde(default)]
    pub ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<f64>,
    /// `regression_ratio × p95 before + latency_floor_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Whether `after` was measured again (a first measurement was too slow; the fastest
    /// round is kept).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remeasured: bool,
    /// When re-measured: every round's p95 after migrations, in order (the spread).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<f64>,
}

/// One probe in `plan.scan`: both plan trees (indented lines) and what was flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub name: String,
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    pub changed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<PlanFinding>,
}

/// Something `plan.scan` flagged (fail or warn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFinding {
    pub status: CheckStatus,
    pub message: String,
}

/// One live-release probe in `compat.live`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompatEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Whether it already missed its expectations before migrations (then not counted).
    #[serde(default)]
    pub failing_before: bool,
}

/// The `details` of the probe checks, read back from a gate report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeReport {
    /// The four probe checks as reported (id, status, reason), in catalogue order.
    pub checks: Vec<CheckResult>,
    pub results: Vec<ResultEntry>,
    pub latency: Vec<LatencyEntry>,
    pub plans: Vec<PlanEntry>,
    /// The live release whose probes `compat.live` ran, and their outcomes.
    pub live_release: Option<String>,
    pub compat: Vec<CompatEntry>,
}

/// The check ids this module reports.
pub const IDS: [&str; 4] = ["probe.result", "probe.latency", "plan.scan", "compat.live"];

fn entries<T: for<'de> Deserialize<'de>>(c: Option<&CheckResult>) -> Vec<T> {
    c.and_then(|c| c.details.get("probes"))
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default()
}

impl ProbeReport {
    /// The probe part of a gate report (empty when the gate ran no probe checks).
    pub fn from_gate(gate: &GateReport) -> ProbeReport {
        let find = |id: &str| gate.checks.iter().find(|c| c.id == id);
        let compat = find("compat.live");
        ProbeReport {
            checks: IDS.iter().filter_map(|id| find(id).cloned()).collect(),
            results: entries(find("probe.result")),
            latency: entries(find("probe.latency")),
            plans: entries(find("plan.scan")),
            live_release: compat
                .and_then(|c| c.details.get("release"))
                .and_then(|r| r.as_str())
                .map(str::to_string),
            compat: entries(compat),
        }
    }

    /// Whether any probe ran (before or after).
    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.latency.is_empty() && self.compat.is_empty()
    }

    /// The probe's `probe.result` entry.
    pub fn result(&self, name: &str) -> Option<&ResultEntry> {
        self.results.iter().find(|r| r.name == name)
    }

    /// The probe's `plan.scan` entry.
    pub fn plan(&self, name: &str) -> Option<&PlanEntry> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// Plans worth showing: changed by the migrations, or flagged.
    pub fn notable_plans(&self) -> impl Iterator<Item = &PlanEntry> {
        self.plans
            .iter()
            .filter(|p| p.changed || !p.findings.is_empty())
    }

    /// The worst status this probe got across the checks (✓ ! ✗ for tables).
    pub fn status(&self, name: &str) -> CheckStatus {
        let mut worst = CheckStatus::Pass;
        if self.result(name).is_some_and(|r| r.problem.is_some()) {
            worst = CheckStatus::Fail;
        }
        if self
            .latency
            .iter()
            .any(|l| l.name == name && l.problem.is_some())
        {
            worst = CheckStatus::Fail;
        }
        for f in self.plan(name).iter().flat_map(|p| p.findings.iter()) {
            worst = worst.max(f.status);
        }
        worst
    }
}

/// `0.021 → 4.31` for a before/after pair of one latency figure.
pub fn pair(before: Option<&Latency>, after: Option<&Latency>, f: fn(&Latency) -> f64) -> String {
    let one = |l: Option<&Latency>| l.map_or("-".to_string(), |l| super::stats::ms(f(l)));
    format!("{} → {}", one(before), one(after))
}

/// `×1.23`, or `-` without a baseline.
pub fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| {
        if r >= 10.0 {
            format!("×{r:.0}")
        } else {
            format!("×{r:.2}")
        }
    })
}
