//! Probes and query plans: `probe.result`, `probe.latency`, `plan.scan`, `compat.live`.
//!
//! The release's probes run on the preview twice through [`Backend::run_probe`]: in the
//! checks' `baseline` hook, before the pending migrations (the preview is still a clone of
//! production: production's baseline, measured without any load on production), and after
//! them (the candidate). The runs are kept in [`ProbeRuns`] on the gate context and shared
//! by the four checks, so each probe runs once per phase whichever checks are enabled. The
//! live release's probes run once per phase for `compat.live` (reusing identical probes).
//!
//! This module only reads the preview: write probes are rolled back by the backend. It never
//! touches production and never writes state; what it found goes into each check's `details`
//! (typed in [`report`]), which `release show` and the console read back.
//!
//! [`Backend::run_probe`]: crate::backend::Backend::run_probe
use std::collections::BTreeMap;

use super::{Check, CheckOutcome, GateContext};
use crate::backend::{ProbeRun, ProbeSpec};
use crate::workspace::config::ProbeConfig;

mod checks;
pub mod plan;
pub mod report;
mod stats;

pub use report::{Latency, ProbeReport};

/// Total time one probe may spend repeating its runs in one phase; once over it the probe
/// stops early (the report shows how many runs happened).
const TIME_BUDGET_MS: f64 = 3_000.0;

/// The probe checks, in catalogue order.
pub fn checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(checks::ProbeResult),
        Box::new(checks::ProbeLatency),
        Box::new(checks::PlanScan),
        Box::new(checks::CompatLive),
    ]
}

/// A probe's measurement in one phase; `Err` when the preview could not be reached at all.
pub type Measured = Result<ProbeRun, String>;

/// Probe runs kept between the gate's phases, keyed by what runs (kind, SQL, parameters), so
/// a live-release probe identical to one of the release's is measured once.
#[derive(Debug, Default)]
pub struct ProbeRuns {
    before: BTreeMap<String, Measured>,
    after: BTreeMap<String, Measured>,
}

/// Which side of the preview apply a measurement belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Before,
    After,
}

impl ProbeRuns {
    /// Every measurement taken, before and after the apply: the probe's SQL and its run
    /// (runs that could not reach the preview are left out).
    pub fn measurements(&self) -> Vec<(&str, &ProbeRun)> {
        self.before
            .iter()
            .chain(&self.after)
            .filter_map(|(k, m)| {
                let sql = k.split('\u{1f}').nth(1)?;
                Some((sql, m.as_ref().ok()?))
            })
            .collect()
    }

    fn get(&self, when: When, p: &ProbeConfig) -> Option<&Measured> {
        match when {
            When::Before => self.before.get(&key(p)),
            When::After => self.after.get(&key(p)),
        }
    }
}

/// What makes two probes the same measurement.
fn key(p: &ProbeConfig) -> String {
    let params = serde_json::to_string(&json_params(&p.params)).unwrap_or_default();
    format!("{}\u{1f}{}\u{1f}{params}", p.kind, p.sql.trim())
}

/// TOML parameters as the JSON values backends bind (dates become their text).
fn json_params(params: &[toml::Value]) -> Vec<serde_json::Value> {
    params
        .iter()
        .map(|v| match v {
            toml::Value::String(s) => serde_json::Value::from(s.clone()),
            toml::Value::Integer(i) => serde_json::Value::from(*i),
            toml::Value::Float(f) => serde_json::Value::from(*f),
            toml::Value::Boolean(b) => serde_json::Value::from(*b),
            other => serde_json::Value::from(other.to_string()),
        })
        .collect()
}

fn spec(p: &ProbeConfig, runs: u32) -> ProbeSpec {
    ProbeSpec {
        sql: p.sql.clone(),
        params: json_params(&p.params),
        write: p.is_write(),
        runs,
        time_budget_ms: TIME_BUDGET_MS,
    }
}

/// Runs, on the preview, every probe of `probes` not yet measured in that phase. `runs:
/// None` uses each probe's own `runs`.
fn measure(ctx: &mut GateContext<'_>, when: When, probes: &[ProbeConfig], runs: Option<u32>) {
    let Some(preview) = ctx.preview.clone() else {
        return;
    };
    if probes.is_empty() {
        return;
    }
    let what = match when {
        When::Before => "probes before migrations",
        When::After => "probes after migrations",
    };
    let mut progress = crate::progress::stage(
        what,
        Some(probes.len() as u64),
        crate::progress::Unit::Probes,
    );
    for (i, p) in probes.iter().enumerate() {
        progress.set(i as u64);
        let k = key(p);
        let done = match when {
            When::Before => ctx.probe_runs.before.contains_key(&k),
            When::After => ctx.probe_runs.after.contains_key(&k),
        };
        if done {
            continue;
        }
        let measured = ctx
            .backend
            .run_probe(&preview, &spec(p, runs.unwrap_or_else(|| p.runs())))
            .map_err(|e| e.to_string());
        match when {
            When::Before => ctx.probe_runs.before.insert(k, measured),
            When::After => ctx.probe_runs.after.insert(k, measured),
        };
    }
}

/// Why the probe checks have nothing to look at on this release, if so.
fn unavailable(ctx: &GateContext<'_>) -> Option<CheckOutcome> {
    if ctx.preview.is_none() {
        return Some(CheckOutcome::skip(
            "code-only release: no pending migrations, so no preview database to probe (the schema is production's)",
        ));
    }
    if !ctx.applied_ok() {
        return Some(CheckOutcome::skip(
            "migrations did not apply on the preview; probes need the migrated schema",
        ));
    }
    None
}

/// The baseline time the runner recorded for a check, when it did.
fn baseline_ms(ctx: &GateContext<'_>, id: &str) -> f64 {
    ctx.scratch
        .get(&format!("baseline_ms.{id}"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0)
}

/// Whether every table was empty before migrations (a first release: production has no data
/// yet), so the rows a probe returns say nothing about production's data.
fn started_empty(ctx: &GateContext<'_>) -> bool {
    ctx.counts_before
        .as_ref()
        .is_some_and(|c| c.values().all(|n| *n == 0))
}

/// What is wrong with a probe's outcome against its expectations (`None`: it met them).
/// Without `data`, only errors count (row and change counts need production's data).
fn miss(p: &ProbeConfig, m: &Measured, data: bool) -> Option<String> {
    let run = match m {
        Err(e) => return Some(format!("could not run: {e}")),
        Ok(run) => run,
    };
    if let Some(e) = &run.error {
        return Some(format!("error: {e}"));
    }
    if !data {
        return None;
    }
    if let Ok(Some(range)) = p.expected_rows() {
        let rows = run.rows.unwrap_or(0);
        if !range.contains(rows) {
            return Some(format!("expected {range}, got {rows}"));
        }
    }
    if let Some(want) = p.expect_changes {
        let got = run.changes.unwrap_or(0);
        if u64::try_from(want).ok() != Some(got) {
            return Some(format!("expected {want} change(s), got {got}"));
        }
    }
    None
}

/// `expect_rows` / `expect_changes` in words, for the report.
fn expectation(p: &ProbeConfig) -> Option<String> {
    let rows = p.expected_rows().ok().flatten().map(|r| r.to_string());
    let changes = p.expect_changes.map(|c| format!("{c} change(s)"));
    match (rows, changes) {
        (Some(r), Some(c)) => Some(format!("{r}, {c}")),
        (r, c) => r.or(c),
    }
}

/// Joins the first few problems into one line, saying how many more there are.
fn listed(items: &[String], shown: usize) -> String {
    let mut text = items
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > shown {
        text.push_str(&format!("; and {} more", items.len() - shown));
    }
    text
}

/// Runs each probe once on `db` and returns `(probe, problem)` for every one that errors or
/// misses its expectations. Rollback uses it on a throwaway copy of production, to prove the
/// old code still works on the current schema and data.
pub fn failing_probes(
    backend: &dyn crate::backend::Backend,
    db: &crate::backend::DatabaseRef,
    probes: &[ProbeConfig],
) -> Vec<(String, String)> {
    probes
        .iter()
        .filter_map(|p| {
            let measured = backend
                .run_probe(db, &spec(p, 1))
                .map_err(|e| e.to_string());
            miss(p, &measured, true).map(|problem| (p.name.clone(), problem))
        })
        .collect()
}
