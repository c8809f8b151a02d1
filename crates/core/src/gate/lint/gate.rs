//! The gate's face of lint: three checks (`lint.d1`, `lint.destructive`, `lint.risk`) over
//! the release's pending migrations, replayed on the preview's schema as cloned from
//! production, with the preview's row counts and measured build times. The lint itself runs
//! once per gate; the three checks share its report through the context's scratch space.
//!
//! Runs after the preview apply (to see its timings) but works when that apply failed or
//! never ran: the replay needs only the schema.
use serde_json::json;

use super::{Finding, LintInput, LintReport, Severity, lint_migrations, replay};
use crate::gate::{Check, CheckOutcome, GateContext, Phase};

const SCRATCH_KEY: &str = "lint.report";
/// How many findings a check's reason names.
const NAMED: usize = 3;

pub(super) struct LintCheck {
    pub id: &'static str,
}

impl Check for LintCheck {
    fn id(&self) -> &'static str {
        self.id
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        if ctx.pending.is_empty() {
            return CheckOutcome::pass("no pending migrations");
        }
        match report(ctx) {
            // The row rules read production's counts on a schema-only preview: say so.
            Ok(r) if self.id == "lint.risk" && ctx.production_figures.is_some() => {
                let mut o = outcome(self.id, &r);
                o.reason = format!(
                    "schema-only preview: row counts are production's: {}",
                    o.reason
                );
                o
            }
            Ok(r) => outcome(self.id, &r),
            Err(e) => CheckOutcome::fail(format!("lint could not run: {e}")),
        }
    }
}

/// The gate's lint report, computed by the first lint check that runs.
fn report(ctx: &mut GateContext<'_>) -> Result<LintReport, super::LintError> {
    if let Some(r) = ctx
        .scratch
        .get(SCRATCH_KEY)
        .and_then(|v| serde_json::from_value::<LintReport>(v.clone()).ok())
    {
        return Ok(r);
    }
    let ledger = ctx.config.migrations_table.as_str();
    // Without a preview to read (it could not be read, or there is none), replay what
    // production has applied instead.
    let start = match &ctx.schema_before {
        Some(s) => s.clone(),
        None => {
            let applied: Vec<_> = ctx
                .migrations
                .iter()
                .filter(|m| !ctx.pending.iter().any(|p| p.name == m.name))
                .cloned()
                .collect();
            replay::schema_of(&applied, ledger).unwrap_or_default()
        }
    };
    let timings = match &ctx.apply {
        Some(Ok(report)) => Some(report.slow_statements.as_slice()),
        _ => None,
    };
    // A schema-only preview has no rows: the row rules read production's own counts.
    let production_counts = ctx.production_figures.as_ref().map(|f| f.counts_at_least());
    let mut report = lint_migrations(&LintInput {
        migrations: &ctx.pending,
        start: &start,
        ledger_table: ledger,
        gate: &ctx.config.gate,
        counts: production_counts.as_ref().or(ctx.counts_before.as_ref()),
        timings,
        report_apply_failures: false,
    })?;
    if let Some(f) = &ctx.production_figures {
        schema_only_notes(&mut report, f);
    }
    if let Ok(v) = serde_json::to_value(&report) {
        ctx.scratch.insert(SCRATCH_KEY.into(), v);
    }
    Ok(report)
}

/// On a schema-only preview the row counts behind the row rules are production's: each such
/// finding says so, a table past the bounded count reads "more than N rows", and an index
/// build the empty preview timed is not passed off as a measurement.
fn schema_only_notes(report: &mut LintReport, f: &crate::backend::ProductionFigures) {
    use crate::text::thousands;
    let past = format!("({} rows", thousands(f.row_limit.saturating_add(1)));
    let more = format!("(more than {} rows", thousands(f.row_limit));
    for x in report
        .findings
        .iter_mut()
        .filter(|x| x.id.starts_with("risk.") && x.message.contains(" rows"))
    {
        let mut m = x
            .message
            .replace(&past, &more)
            .replace(" rows on the preview)", " rows on production)");
        if x.id == "risk.index-large-table"
            && let Some((head, rest)) = m.split_once("): ")
            && let Some((_, tail)) = rest.split_once("; ")
        {
            m = format!("{head}): build time not measurable (the preview holds no rows); {tail}");
        }
        x.message = format!("schema-only preview: {m} (rows counted on production)");
    }
}

fn named(findings: &[&Finding]) -> String {
    let mut names: Vec<String> = findings
        .iter()
        .take(NAMED)
        .map(|f| {
            if f.id == super::catalogue::REFUSED {
                // A refusal is read in the reason itself: what ran into which wall.
                format!(
                    "{}:{} {} `{}`: {}",
                    f.path, f.line, f.id, f.statement, f.message
                )
            } else {
                format!("{}:{} {}", f.path, f.line, f.id)
            }
        })
        .collect();
    if findings.len() > NAMED {
        names.push(format!("+{} more", findings.len() - NAMED));
    }
    names.join(", ")
}

/// The outcome of check `id`: its findings decide the status; all of them go in `details`.
fn outcome(id: &str, report: &LintReport) -> CheckOutcome {
    let mine: Vec<&Finding> = report.findings.iter().filter(|f| f.check == id).collect();
    let active: Vec<&Finding> = mine.iter().copied().filter(|f| !f.suppressed).collect();
    let suppressed: Vec<&Finding> = mine.iter().copied().filter(|f| f.suppressed).collect();
    let fails = active
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .count();
    let mut reason = if active.is_empty() {
        format!(
            "no findings in {} statement(s) of {} pending migration(s)",
            report.statements, report.migrations
        )
    } else {
        // Fail findings first, so the reason names what blocks.
        let mut ordered = active.clone();
        ordered.sort_by_key(|f| f.severity);
        let counts: Vec<String> = [(fails, "fail"), (active.len() - fails, "warn")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, word)| format!("{n} {word}"))
            .collect();
        format!("{}: {}", counts.join(", "), named(&ordered))
    };
    if !suppressed.is_empty() {
        reason.push_str(&format!(
            "; {} suppressed ({})",
            suppressed.len(),
            named(&suppressed)
        ));
    }
    if id == super::CHECK_DESTRUCTIVE {
        for note in &report.notes {
            reason.push_str(&format!("; {note}"));
        }
    }
    let details = json!(mine);
    let status = if fails > 0 {
        CheckOutcome::fail(reason)
    } else if !active.is_empty() {
        CheckOutcome::warn(reason)
    } else {
        CheckOutcome::pass(reason)
    };
    status.with_details(details)
}
