//! The four probe checks. Each reads the shared [`ProbeRuns`](super::ProbeRuns), measuring
//! what is still missing, and reports typed [`report`](super::report) entries in `details`.
use serde_json::json;

use super::report::{CompatEntry, Latency, LatencyEntry, PlanEntry, ResultEntry};
use super::stats::{latency, ms};
use super::{
    Measured, When, baseline_ms, expectation, listed, measure, miss, plan, spec, started_empty,
    unavailable,
};
use crate::backend::ProbeRun;
use crate::gate::{Check, CheckOutcome, GateContext, Phase};
use crate::model::CheckStatus;
use crate::workspace::config::ProbeConfig;

const NO_PROBES: &str = "this release declares no probes ([[probe]] in d1ops.toml)";

/// The release's probes measured before and after, or why the check cannot look at them.
fn measured(
    ctx: &mut GateContext<'_>,
) -> Result<Vec<(ProbeConfig, Option<Measured>, Measured)>, CheckOutcome> {
    if let Some(outcome) = unavailable(ctx) {
        return Err(outcome);
    }
    if ctx.probes.is_empty() {
        return Err(CheckOutcome::skip(NO_PROBES));
    }
    let probes = ctx.probes.clone();
    measure(ctx, When::After, &probes, None);
    Ok(probes
        .into_iter()
        .map(|p| {
            let before = ctx.probe_runs.get(When::Before, &p).cloned();
            let after = (ctx.probe_runs.get(When::After, &p).cloned())
                .unwrap_or_else(|| Err("not measured".into()));
            (p, before, after)
        })
        .collect())
}

/// The run when it completed without an SQL error.
fn clean(m: Option<&Measured>) -> Option<&ProbeRun> {
    m.and_then(|m| m.as_ref().ok())
        .filter(|r| r.error.is_none())
}

fn error_of(m: Option<&Measured>) -> Option<String> {
    match m? {
        Err(e) => Some(e.clone()),
        Ok(r) => r.error.clone(),
    }
}

fn baseline_release_probes(ctx: &mut GateContext<'_>) {
    let probes = ctx.probes.clone();
    measure(ctx, When::Before, &probes, None);
}

/// `probe.result`: every probe meets its expectations after migrations.
pub struct ProbeResult;

impl Check for ProbeResult {
    fn id(&self) -> &'static str {
        "probe.result"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn baseline(&self, ctx: &mut GateContext<'_>) {
        baseline_release_probes(ctx);
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let probes = match measured(ctx) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let data = !started_empty(ctx);
        let entries: Vec<ResultEntry> = probes
            .iter()
            .map(|(p, before, after)| ResultEntry {
                name: p.name.clone(),
                kind: p.kind.clone(),
                expected: expectation(p),
                rows_before: clean(before.as_ref()).and_then(|r| r.rows),
                rows_after: clean(Some(after)).and_then(|r| r.rows),
                changes_after: clean(Some(after)).and_then(|r| r.changes),
                error_before: error_of(before.as_ref()),
                error_after: error_of(Some(after)),
                problem: miss(p, after, data),
            })
            .collect();
        let problems: Vec<String> = entries
            .iter()
            .filter_map(|e| e.problem.as_ref().map(|p| format!("{}: {p}", e.name)))
            .collect();
        let details = json!({ "probes": entries, "baseline_ms": baseline_ms(ctx, self.id()) });
        let n = entries.len();
        let outcome = if problems.is_empty() && !data {
            CheckOutcome::pass(match &ctx.production_figures {
                Some(f) => format!(
                    "schema-only preview: {n} probe(s) ran without errors; row and change expectations not checked: the preview holds no rows ({})",
                    f.rows_summary()
                ),
                None => format!(
                    "{n} probe(s) ran without errors; row and change expectations not checked: every table was empty before migrations (production has no data yet)"
                ),
            })
        } else if problems.is_empty() {
            CheckOutcome::pass(format!(
                "{n} probe(s) met their expectations after migrations"
            ))
        } else {
            CheckOutcome::fail(format!(
                "{} of {n} probe(s) missed their expectations: {}",
                problems.len(),
                listed(&problems, 3)
            ))
        };
        outcome.with_details(details)
    }
}

/// `probe.latency`: p95 within the budget and within `regression_ratio` × the baseline.
pub struct ProbeLatency;

impl Check for ProbeLatency {
    fn id(&self) -> &'static str {
        "probe.latency"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn baseline(&self, ctx: &mut GateContext<'_>) {
        baseline_release_probes(ctx);
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let probes = match measured(ctx) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let (ratio, floor) = (
            ctx.config.gate.regression_ratio,
            ctx.config.gate.latency_floor_ms,
        );
        let mut entries = Vec::with_capacity(probes.len());
        let mut errored = 0;
        for (p, before, after) in &probes {
            let before = clean(before.as_ref()).and_then(|r| latency(&r.timings_ms));
            let mut after = clean(Some(after)).and_then(|r| latency(&r.timings_ms));
            let limit = before.map(|b| ratio * b.p95_ms + floor);
            let judge = |a: &Latency| -> Option<String> {
                let over_budget = p.p95_ms.filter(|b| a.p95_ms > *b).map(|budget| {
                    format!("p95 {} ms over its {} ms budget", ms(a.p95_ms), ms(budget))
                });
                let regressed = before.zip(limit.filter(|l| a.p95_ms > *l)).map(|(b, l)| {
                    format!(
                        "p95 {} → {} ms, over {ratio}× production's p95 + {floor} ms ({} ms)",
                        ms(b.p95_ms),
                        ms(a.p95_ms),
                        ms(l)
                    )
                });
                match (over_budget, regressed) {
                    (Some(o), Some(r)) => Some(format!("{o}; {r}")),
                    (o, r) => o.or(r),
                }
            };
            let mut problem = after.as_ref().and_then(judge);
            let mut measurements: Vec<f64> = after.iter().map(|a| a.p95_ms).collect();
            // A slow result must reproduce before it blocks: noise (another process taking
            // the CPU) rarely strikes every round, a lost index always does. Up to
            // `MEASURE_ROUNDS` rounds in all, stopping at the first within limits; the
            // fastest round counts, and the reason lists every round's p95.
            while problem.is_some() && measurements.len() < MEASURE_ROUNDS {
                let Some(again) = remeasure(ctx, p) else {
                    break;
                };
                measurements.push(again.p95_ms);
                if after.is_none_or(|a| again.p95_ms < a.p95_ms) {
                    after = Some(again);
                    problem = judge(&again);
                }
            }
            let remeasured = measurements.len() > 1;
            if remeasured {
                let spread: Vec<String> = measurements.iter().map(|v| ms(*v)).collect();
                let rounds = measurements.len();
                problem = problem
                    .map(|p| format!("{p} (measured {rounds}×, p95 {} ms)", spread.join(", ")));
            }
            if after.is_none() {
                errored += 1;
            }
            entries.push(LatencyEntry {
                remeasured,
                name: p.name.clone(),
                ratio: before
                    .zip(after)
                    .map(|(b, a)| a.p95_ms / b.p95_ms.max(0.001)),
                before,
                after,
                budget_ms: p.p95_ms,
                limit_ms: limit,
                problem,
                measurements: if remeasured { measurements } else { Vec::new() },
            });
        }
        let problems: Vec<String> = entries
            .iter()
            .filter_map(|e| e.problem.as_ref().map(|p| format!("{}: {p}", e.name)))
            .collect();
        let timed = entries.len() - errored;
        let note = if errored > 0 {
            format!(" ({errored} did not run: see probe.result)")
        } else {
            String::new()
        };
        let details = json!({
            "regression_ratio": ratio, "latency_floor_ms": floor, "probes": entries,
        });
        let outcome = if !problems.is_empty() {
            CheckOutcome::fail(format!(
                "{} of {timed} probe(s) too slow after migrations: {}{note}",
                problems.len(),
                listed(&problems, 3)
            ))
        } else {
            let slowest = entries
                .iter()
                .filter_map(|e| e.after.map(|a| (a.p95_ms, e.name.as_str())))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let slowest = slowest.map_or(String::new(), |(p95, name)| {
                format!("; slowest p95 {} ms ({name})", ms(p95))
            });
            CheckOutcome::pass(format!(
                "{timed} probe(s) within budget and ≤ {ratio}× production's p95 + {floor} ms{slowest}{note}"
            ))
        };
        outcome.with_details(details)
    }
}

/// How many times a probe that misses its latency limit is measured, in all, before the
/// miss counts: each round runs the probe its configured number of times.
const MEASURE_ROUNDS: usize = 3;

/// Measures a probe again on the migrated preview (not cached).
fn remeasure(ctx: &GateContext<'_>, p: &ProbeConfig) -> Option<Latency> {
    let preview = ctx.preview.as_ref()?;
    let run = ctx.backend.run_probe(preview, &spec(p, p.runs())).ok()?;
    run.error.is_none().then(|| latency(&run.timings_ms))?
}

/// `plan.scan`: query plans before vs after migrations.
pub struct PlanScan;

impl Check for PlanScan {
    fn id(&self) -> &'static str {
        "plan.scan"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn baseline(&self, ctx: &mut GateContext<'_>) {
        baseline_release_probes(ctx);
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let probes = match measured(ctx) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        // A schema-only preview has no rows: production's own counts say what a scan costs.
        let rows = match &ctx.production_figures {
            Some(f) => f.counts_at_least(),
            None => ctx
                .counts_after
                .clone()
                .or_else(|| ctx.counts_before.clone())
                .unwrap_or_default(),
        };
        let threshold = ctx.config.gate.scan_rows_warn;
        let mut entries = Vec::with_capacity(probes.len());
        for (p, before, after) in &probes {
            let Some(after) = after.as_ref().ok().filter(|r| !r.plan.is_empty()) else {
                continue;
            };
            let before = (before.as_ref())
                .and_then(|b| b.as_ref().ok())
                .filter(|b| !b.plan.is_empty());
            let findings = plan::findings(&plan::PlanInput {
                sql: &p.sql,
                before: before.map(|b| b.plan.as_slice()),
                after: &after.plan,
                rows: &rows,
                scan_rows_warn: threshold,
            });
            let (before_lines, after_lines) = (
                before.map(|b| plan::render(&b.plan)).unwrap_or_default(),
                plan::render(&after.plan),
            );
            entries.push(PlanEntry {
                name: p.name.clone(),
                changed: before.is_some() && before_lines != after_lines,
                before: before_lines,
                after: after_lines,
                findings,
            });
        }
        let flagged = |status: CheckStatus| -> Vec<String> {
            entries
                .iter()
                .flat_map(|e| {
                    (e.findings.iter())
                        .filter(move |f| f.status == status)
                        .map(move |f| format!("{}: {}", e.name, f.message))
                })
                .collect()
        };
        let (fails, warns) = (flagged(CheckStatus::Fail), flagged(CheckStatus::Warn));
        let changed = entries.iter().filter(|e| e.changed).count();
        let details = json!({ "scan_rows_warn": threshold, "probes": entries });
        let mut outcome = if !fails.is_empty() {
            let also = if warns.is_empty() {
                String::new()
            } else {
                format!(" ({} warning(s) too)", warns.len())
            };
            CheckOutcome::fail(format!(
                "an index the probes used is no longer used: {}{also}",
                listed(&fails, 2)
            ))
        } else if !warns.is_empty() {
            CheckOutcome::warn(listed(&warns, 2))
        } else {
            CheckOutcome::pass(format!(
                "{} probe plan(s) read through indexes or small tables; {changed} changed by the migrations",
                entries.len()
            ))
        };
        if ctx.production_figures.is_some() {
            outcome.reason = format!(
                "schema-only preview: table sizes are production's row counts: {}",
                outcome.reason
            );
        }
        outcome.with_details(details)
    }
}

/// `compat.live`: the live release's probes still work on the candidate schema.
pub struct CompatLive;

impl Check for CompatLive {
    fn id(&self) -> &'static str {
        "compat.live"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn baseline(&self, ctx: &mut GateContext<'_>) {
        if let Some((_, probes)) = ctx.live_probes.clone() {
            measure(ctx, When::Before, &probes, Some(1));
        }
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let Some((live, probes)) = ctx.live_probes.clone() else {
            return CheckOutcome::pass(
                "no live release yet: no running code to stay compatible with",
            );
        };
        if probes.is_empty() {
            return CheckOutcome::pass(format!(
                "live release {live} declares no probes: nothing to check its code against"
            ));
        }
        if let Some(outcome) = unavailable(ctx) {
            return outcome;
        }
        measure(ctx, When::After, &probes, Some(1));
        let data = !started_empty(ctx);
        let entries: Vec<CompatEntry> = probes
            .iter()
            .map(|p| {
                let after = (ctx.probe_runs.get(When::After, p).cloned())
                    .unwrap_or_else(|| Err("not measured".into()));
                let failing_before = ctx
                    .probe_runs
                    .get(When::Before, p)
                    .is_some_and(|b| miss(p, b, data).is_some());
                CompatEntry {
                    name: p.name.clone(),
                    rows_after: clean(Some(&after)).and_then(|r| r.rows),
                    problem: miss(p, &after, data),
                    failing_before,
                }
            })
            .collect();
        let broken: Vec<String> = entries
            .iter()
            .filter(|e| !e.failing_before)
            .filter_map(|e| e.problem.as_ref().map(|p| format!("{}: {p}", e.name)))
            .collect();
        let already = entries.iter().filter(|e| e.failing_before).count();
        let note = if already > 0 {
            format!(" ({already} already failed before migrations, not counted)")
        } else {
            String::new()
        };
        let details = json!({
            "release": live, "probes": entries, "baseline_ms": baseline_ms(ctx, self.id()),
        });
        let outcome = if broken.is_empty() {
            CheckOutcome::pass(format!(
                "{} probe(s) of live release {live} still work on the new schema{note}",
                entries.len()
            ))
        } else {
            CheckOutcome::fail(format!(
                "the live release's code would break during rollout — expand/contract: keep the old schema shape until live code stops using it; {} of live release {live}'s probe(s) fail on the new schema: {}{note}",
                broken.len(),
                listed(&broken, 3)
            ))
        };
        outcome.with_details(details)
    }
}
