//! The release detail's Probes sub-view: the probe checks, one row per probe (rows, p50 /
//! p95 / max before → after migrations, ratio to production's baseline), then the query
//! plans the migrations changed or `plan.scan` flagged, and live-release probes that broke.
//! Reads only the stored gate report (via [`ProbeReport`]).
use ratatui::text::{Line, Span};

use super::detail::{Lines, check_line, wrap};
use super::theme::Theme;
use crate::engine::ReleaseDetail;
use crate::engine::view::{ProbeReport, ResultEntry, pair, ratio};
use crate::format;
use crate::model::CheckStatus;

fn dim(text: impl Into<String>, theme: &Theme) -> Line<'static> {
    Line::from(Span::styled(format!(" {}", text.into()), theme.dim()))
}

/// The sub-view's lines; `width` is the usable text width.
pub fn lines(det: &ReleaseDetail, theme: &Theme, width: usize) -> Lines {
    let Some(gate) = &det.gate else {
        return vec![dim(
            "No gate report: the gate has not run for this release.",
            theme,
        )];
    };
    let report = ProbeReport::from_gate(gate);
    let mut out: Lines = report
        .checks
        .iter()
        .flat_map(|c| check_line(c, theme, width))
        .collect();
    if report.checks.is_empty() {
        out.push(dim("The gate ran no probe checks for this release.", theme));
        return out;
    }
    if report.results.is_empty() && report.compat.is_empty() {
        out.push(Line::from(""));
        out.push(dim(
            "No probe results. Probes are [[probe]] tables in d1ops.toml (name, sql, params,",
            theme,
        ));
        out.push(dim(
            "expect_rows, p95_ms); each runs on the preview before and after its migrations.",
            theme,
        ));
        return out;
    }
    if !report.results.is_empty() {
        out.push(Line::from(""));
        out.extend(table(&report, theme, width));
    }
    plans(&report, theme, width, &mut out);
    compat(&report, theme, width, &mut out);
    out
}

/// One row per probe; MAX only when there is room.
fn table(report: &ProbeReport, theme: &Theme, width: usize) -> Lines {
    let wide = width >= 100;
    let name_w = if wide { 24 } else { 18 };
    let mut head = format!(
        " {:2}{:<name_w$} {:<9} {:<15} {:<15}",
        "", "PROBE", "ROWS", "P50", "P95"
    );
    if wide {
        head.push_str(&format!(" {:<15}", "MAX"));
    }
    head.push_str(" RATIO");
    let mut out = vec![
        Line::from(Span::styled(head, theme.bold())),
        dim(
            "  ms, before → after: the preview as cloned from production → migrated",
            theme,
        ),
    ];
    for r in &report.results {
        let l = report.latency.iter().find(|l| l.name == r.name);
        let (b, a) = (
            l.and_then(|l| l.before.as_ref()),
            l.and_then(|l| l.after.as_ref()),
        );
        let status = report.status(&r.name);
        let mut text = format!(
            "{:<name_w$} {:<9} {:<15} {:<15}",
            format::clip(&r.name, name_w),
            format::clip(&rows(r), 9),
            pair(b, a, |l| l.p50_ms),
            pair(b, a, |l| l.p95_ms),
        );
        if wide {
            text.push_str(&format!(" {:<15}", pair(b, a, |l| l.max_ms)));
        }
        text.push_str(&format!(" {}", ratio(l.and_then(|l| l.ratio))));
        out.push(Line::from(vec![
            Span::styled(format!(" {} ", status.mark()), theme.check(status)),
            Span::raw(text),
        ]));
        let problems = [r.problem.as_ref(), l.and_then(|l| l.problem.as_ref())];
        for p in problems.into_iter().flatten() {
            out.extend(
                wrap(p, width.saturating_sub(6))
                    .into_iter()
                    .map(|t| Line::from(Span::styled(format!("     {t}"), theme.bad()))),
            );
        }
    }
    out
}

fn rows(r: &ResultEntry) -> String {
    if r.kind == "write" {
        return r
            .changes_after
            .map_or("error".into(), |c| format!("{c} chg"));
    }
    match (r.rows_before, r.rows_after) {
        (_, None) => "error".into(),
        (Some(b), Some(a)) if b != a => format!("{b}→{a}"),
        (_, Some(a)) => a.to_string(),
    }
}

fn plans(report: &ProbeReport, theme: &Theme, width: usize, out: &mut Lines) {
    let notable: Vec<_> = report.notable_plans().collect();
    if notable.is_empty() {
        return;
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        " Query plans changed by the migrations or flagged",
        theme.bold(),
    )));
    for p in notable {
        out.push(Line::from(Span::styled(
            format!(" ▸ {}", p.name),
            theme.bold(),
        )));
        for f in &p.findings {
            let mut chunks = wrap(&f.message, width.saturating_sub(6)).into_iter();
            out.push(Line::from(vec![
                Span::styled(format!("   {} ", f.status.mark()), theme.check(f.status)),
                Span::raw(chunks.next().unwrap_or_default()),
            ]));
            out.extend(chunks.map(|c| Line::from(format!("     {c}"))));
        }
        for (label, tree) in [("before", &p.before), ("after", &p.after)] {
            if tree.is_empty() {
                out.push(dim(format!("  {label:<7}(did not run)"), theme));
            }
            for (i, step) in tree.iter().enumerate() {
                let label = if i == 0 { label } else { "" };
                let text = format!("  {label:<7}{step}");
                out.push(dim(format::clip(&text, width + 4), theme));
            }
        }
    }
}

fn compat(report: &ProbeReport, theme: &Theme, width: usize, out: &mut Lines) {
    let broken: Vec<_> = (report.compat.iter())
        .filter(|c| c.problem.is_some() && !c.failing_before)
        .collect();
    if broken.is_empty() {
        return;
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        format!(
            " Live release {}'s probes that fail on the new schema",
            report.live_release.as_deref().unwrap_or("?")
        ),
        theme.bold(),
    )));
    for c in broken {
        let text = format!("{}: {}", c.name, c.problem.as_deref().unwrap_or(""));
        let mut chunks = wrap(&text, width.saturating_sub(4)).into_iter();
        out.push(Line::from(vec![
            Span::styled(" ✗ ", theme.check(CheckStatus::Fail)),
            Span::raw(chunks.next().unwrap_or_default()),
        ]));
        out.extend(chunks.map(|c| Line::from(format!("   {c}"))));
    }
}
