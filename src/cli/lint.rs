//! `d1ops lint`: lint the workspace's migrations alone (CI, editors), from an empty schema.
//! Prints one block per finding, or the report as JSON; the exit code says whether any
//! unsuppressed finding is at fail severity. No state store, no databases.
use super::Cli;
use super::output::{BOLD, DIM, paint, safe, status_colour};
use crate::gate::lint::{Finding, LintReport, lint_workspace};
use crate::workspace::Workspace;

/// Needs only the workspace (config + migrations): no state store, no databases.
pub(super) fn run(cli: &Cli) -> anyhow::Result<i32> {
    let ws = Workspace::load(&cli.workspace)?;
    let report = lint_workspace(&ws)?;
    if cli.json {
        super::print_json(&Json {
            findings: &report.findings,
            fail: report.fail,
            warn: report.warn,
            suppressed: report.suppressed,
        })?;
    } else {
        print!("{}", human(&report));
    }
    Ok(if report.fail > 0 {
        super::exit::ERROR
    } else {
        super::exit::OK
    })
}

/// `--json`: `{"findings": [...], "fail": n, "warn": n, "suppressed": n}`.
#[derive(serde::Serialize)]
struct Json<'a> {
    findings: &'a [Finding],
    fail: usize,
    warn: usize,
    suppressed: usize,
}

fn finding_block(f: &Finding) -> String {
    let sev = f.severity.as_str();
    let label = if f.suppressed {
        paint(&format!("suppressed {sev}"), DIM)
    } else {
        paint(sev, status_colour(sev))
    };
    // Paths, messages and statements come from the migration files: escaped.
    let mut out = format!(
        "{}:{}: {label} {}: {}\n",
        safe(&f.path),
        f.line,
        safe(&f.id),
        safe(&f.message)
    );
    if !f.statement.is_empty() {
        out.push_str(&format!("    {}\n", paint(&f.statement, DIM)));
    }
    match &f.suppression_reason {
        Some(reason) => out.push_str(&format!("    allowed: {}\n", safe(reason))),
        None => out.push_str(&format!("    hint: {}\n", safe(&f.hint))),
    }
    out
}

/// The findings, then one summary line.
fn human(r: &LintReport) -> String {
    let mut out: String = r.findings.iter().map(finding_block).collect();
    let scope = format!(
        "{} statement(s) in {} migration(s)",
        r.statements, r.migrations
    );
    let summary = if r.findings.is_empty() {
        format!("no findings in {scope}")
    } else {
        format!(
            "{} fail, {} warn, {} suppressed in {scope}",
            r.fail, r.warn, r.suppressed
        )
    };
    out.push_str(&paint(&summary, BOLD));
    out.push('\n');
    out
}
