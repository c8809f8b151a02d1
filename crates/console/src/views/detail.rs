//! A release's detail: title, sub-view bar and the scrollable content of one sub-view —
//! migrations (highlighted SQL), schema diff (+/− coloured), gate checklist, probes,
//! approvals and history, failure record and root-cause note.
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::layout;
use super::sql;
use super::theme::Theme;
use crate::format;
use crate::model::{CheckStatus, Release, ReleaseState, Verdict};
use crate::state::{Detail, DetailTab, State};

pub(super) type Lines = Vec<Line<'static>>;

/// Draws the open release detail into the body.
pub fn draw(frame: &mut Frame, state: &State, d: &Detail, theme: &Theme, body: Rect) {
    let rel = d.data.as_ref().map(|x| &x.detail.release);
    let mut title = vec![Span::styled(format!(" Release {} ", d.id), theme.title())];
    if let Some(r) = rel {
        title.push(Span::styled(
            format::state_marker(r.state),
            theme.release_state(r.state),
        ));
        let label = r.label.as_deref().or(r.commit.as_deref()).unwrap_or("");
        let used: usize = title.iter().map(|s| s.content.chars().count()).sum();
        let rest = format!(
            " · {} · {} ago · {label}",
            r.author,
            format::age(&r.created_at, state.now)
        );
        let room = (body.width as usize).saturating_sub(used);
        title.push(Span::raw(format::clip(&rest, room)));
    }
    frame.render_widget(
        Paragraph::new(Line::from(title)),
        Rect { height: 1, ..body },
    );
    let bar: Vec<Span> = DetailTab::ALL
        .iter()
        .map(|&t| {
            let style = if t == d.tab {
                theme.title().add_modifier(Modifier::REVERSED)
            } else {
                theme.dim()
            };
            Span::styled(layout::subtab_label(t, body.width), style)
        })
        .collect();
    let bar_area = Rect {
        y: layout::subtabs_row(body),
        height: 1,
        ..body
    };
    frame.render_widget(Paragraph::new(Line::from(bar)), bar_area);
    let rows = layout::rows_area(body);
    let lines = content(state, d, theme);
    let start = d
        .scroll
        .min(lines.len().saturating_sub(rows.height as usize));
    let end = (start + rows.height as usize).min(lines.len());
    let visible: Lines = lines.get(start..end).map(<[_]>::to_vec).unwrap_or_default();
    frame.render_widget(Paragraph::new(visible), rows);
}

/// How many content lines the detail's current sub-view has (for scrolling).
pub fn line_count(state: &State, d: &Detail) -> usize {
    content(state, d, &Theme { color: false }).len()
}

/// The sub-view's lines wrapped to the screen's width (continuations marked `↪`), so no
/// statement, diff line or reason is cut.
fn content(state: &State, d: &Detail, theme: &Theme) -> Lines {
    let lines = unwrapped(state, d, theme);
    super::fit::wrap_lines(lines, state.width.max(20) as usize, super::fit::CONTINUED)
}

fn unwrapped(state: &State, d: &Detail, theme: &Theme) -> Lines {
    if let Some(e) = &d.error {
        return vec![Line::from(Span::styled(
            format!(" Could not load release {}: {e}", d.id),
            theme.bad(),
        ))];
    }
    let Some(data) = &d.data else {
        return vec![Line::from(Span::styled(" Loading…", theme.dim()))];
    };
    let width = state.width.saturating_sub(6).max(20) as usize;
    let det = &data.detail;
    match d.tab {
        DetailTab::Migrations => migrations(det, theme),
        DetailTab::Schema => schema(data, theme),
        DetailTab::Gate => gate(det, theme, width),
        DetailTab::Probes => super::probes::lines(det, theme, width),
        DetailTab::Code => super::code::lines(det, theme, width),
        DetailTab::History => history(state, det, theme, width),
        DetailTab::Failure => failure(&det.release, theme, width),
    }
}

fn dim(text: impl Into<String>, theme: &Theme) -> Line<'static> {
    Line::from(Span::styled(format!(" {}", text.into()), theme.dim()))
}

fn migrations(det: &crate::engine::ReleaseDetail, theme: &Theme) -> Lines {
    if det.migrations.is_empty() {
        return vec![dim("This release carries no migrations.", theme)];
    }
    let pending = det.migrations.iter().filter(|m| m.pending).count();
    // A release that went live applied its pending migrations (rolling back its code later
    // keeps them; only a restore undoes them, and then the release is `reverted`).
    let promoted = det.release.promoted_at.is_some()
        && matches!(
            det.release.state,
            ReleaseState::Live | ReleaseState::Superseded | ReleaseState::RolledBack
        );
    let summary = if promoted {
        format!(
            "{} migration(s), {pending} applied to production by this release's promotion",
            det.migrations.len()
        )
    } else {
        format!(
            "{} migration(s), {pending} pending against production at deploy time",
            det.migrations.len()
        )
    };
    let mut out = vec![dim(summary, theme)];
    for m in &det.migrations {
        out.push(Line::from(""));
        let (mark, style) = match (m.pending, promoted) {
            (true, false) => ("pending", theme.warn()),
            (true, true) => ("applied by this release", theme.ok()),
            (false, _) => ("applied", theme.dim()),
        };
        out.push(Line::from(vec![
            Span::styled(format!(" ▸ {} ", m.name), theme.bold()),
            Span::styled(format!("[{mark}]"), style),
            Span::styled(
                format!(" sha256 {}", format::clip(&m.sha256, 12)),
                theme.dim(),
            ),
        ]));
        if m.pending {
            out.extend(sql::highlight(&m.sql, "   │ ", theme));
        }
    }
    out
}

fn schema(data: &crate::data::DetailData, theme: &Theme) -> Lines {
    match &data.diff {
        Err(e) => vec![Line::from(Span::styled(
            format!(" Could not compute the schema diff: {e}"),
            theme.bad(),
        ))],
        Ok(diff) => {
            let lines = diff.schema.render_text();
            let mut out = vec![dim(
                format!(
                    "Schema diff vs production (from the {} database)",
                    diff.source
                ),
                theme,
            )];
            if lines.is_empty() {
                out.push(dim("No schema changes.", theme));
            }
            out.extend(
                lines
                    .into_iter()
                    .map(|l| Line::from(Span::styled(format!(" {}", l.text), theme.diff(l.sign)))),
            );
            out
        }
    }
}

pub(super) fn check_line(c: &crate::model::CheckResult, theme: &Theme, width: usize) -> Lines {
    // Reasons wrap under their own column: ` ✓ ` (3) + id (17) + status (6).
    let mut chunks = wrap(&c.reason, width.saturating_sub(21)).into_iter();
    let mut out = vec![Line::from(vec![
        Span::styled(format!(" {} ", c.status.mark()), theme.check(c.status)),
        Span::styled(format!("{:<17}", c.id), theme.bold()),
        Span::styled(format!("{:<5} ", c.status.as_str()), theme.check(c.status)),
        Span::raw(chunks.next().unwrap_or_default()),
    ])];
    out.extend(chunks.map(|l| Line::from(format!("{:26}{l}", ""))));
    out
}

fn gate(det: &crate::engine::ReleaseDetail, theme: &Theme, width: usize) -> Lines {
    let Some(report) = &det.gate else {
        return vec![dim(
            "No gate report: the gate has not run for this release.",
            theme,
        )];
    };
    let count = |s: CheckStatus| report.checks.iter().filter(|c| c.status == s).count();
    let (verdict, style) = match report.verdict {
        Verdict::Ready => ("✓ ready", theme.ok()),
        Verdict::Blocked => ("✗ blocked", theme.bad()),
    };
    let mut out = vec![Line::from(vec![
        Span::raw(" Verdict "),
        Span::styled(verdict, style.add_modifier(Modifier::BOLD)),
        Span::styled(
            format!(
                "  {} pass · {} warn · {} fail · {} skipped",
                count(CheckStatus::Pass),
                count(CheckStatus::Warn),
                count(CheckStatus::Fail),
                count(CheckStatus::Skip)
            ),
            theme.dim(),
        ),
    ])];
    out.push(Line::from(""));
    for c in &report.checks {
        out.extend(check_line(c, theme, width));
    }
    out
}

fn history(
    state: &State,
    det: &crate::engine::ReleaseDetail,
    theme: &Theme,
    width: usize,
) -> Lines {
    let r = &det.release;
    let mut out = vec![Line::from(Span::styled(
        format!(
            " Approvals {}/{} required",
            crate::model::distinct_approvers(&det.approvals),
            det.required_approvals
        ),
        theme.bold(),
    ))];
    if det.approvals.is_empty() {
        out.push(dim("  none yet", theme));
    }
    for a in &det.approvals {
        let note = a
            .note
            .as_deref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default();
        out.push(Line::from(vec![
            Span::styled("  ✓ ", theme.ok()),
            Span::raw(format!(
                "{} {} ago{note}",
                a.approver,
                format::age(&a.at, state.now)
            )),
        ]));
    }
    out.push(Line::from(""));
    let facts = [
        ("Label", r.label.clone()),
        ("Commit", r.commit.clone()),
        ("Supersedes", r.supersedes.clone()),
        ("Preview", r.preview_env.clone()),
        (
            "Promoted",
            r.promoted_by.as_ref().map(|by| {
                format!(
                    "by {by} {} ago",
                    r.promoted_at
                        .as_deref()
                        .map_or("?".into(), |t| format::age(t, state.now))
                )
            }),
        ),
        (
            "Recovery point",
            r.recovery_snapshot.map(|s| format!("snapshot #{s}")),
        ),
    ];
    for (k, v) in facts.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))) {
        out.push(Line::from(format!(" {k:<15}{v}")));
    }
    if let Some(w) = &det.watch {
        let style = match w.status {
            crate::engine::WatchStatus::Regressed => theme.bad().add_modifier(Modifier::BOLD),
            crate::engine::WatchStatus::Ok => theme.ok(),
            _ => theme.dim(),
        };
        for (i, chunk) in wrap(&w.summary(), width.saturating_sub(12))
            .into_iter()
            .enumerate()
        {
            let key = if i == 0 { "Watch" } else { "" };
            out.push(Line::from(vec![
                Span::raw(format!(" {key:<15}")),
                Span::styled(chunk, style),
            ]));
        }
    }
    for a in &det.artifacts {
        out.push(Line::from(format!(
            " Artifact       {} {} ({})",
            a.name,
            format::clip(&a.sha256, 12),
            format::bytes(a.size_bytes)
        )));
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(" History", theme.bold())));
    for e in &det.history {
        let env = e.env.as_deref().unwrap_or("");
        let line = format!(
            "  {:>4} ago  {:<10} {:<20} {env}",
            format::age(&e.at, state.now),
            format::clip(&e.actor, 10),
            e.action
        );
        out.push(Line::from(format::clip(&line, width + 4)));
    }
    out
}

fn failure(r: &Release, theme: &Theme, width: usize) -> Lines {
    let mut out = Vec::new();
    match &r.failure {
        None => out.push(dim("No failure recorded for this release.", theme)),
        Some(f) => {
            out.push(Line::from(Span::styled(
                format!(" ✗ Failed during {}", f.stage),
                theme.bad().add_modifier(Modifier::BOLD),
            )));
            if let Some(m) = &f.migration {
                let at = f.line.map(|l| format!(" line {l}")).unwrap_or_default();
                out.push(Line::from(format!(" Migration  {m}{at}")));
            }
            out.push(Line::from(" Error"));
            out.extend(
                wrap(&f.error, width)
                    .into_iter()
                    .map(|l| Line::from(Span::styled(format!("   {l}"), theme.bad()))),
            );
            if let Some(st) = &f.statement {
                out.push(Line::from(" Statement"));
                out.extend(sql::highlight(st, "   ", theme));
            }
            out.push(dim(
                "Production was left unchanged (the apply rolled back).",
                theme,
            ));
        }
    }
    out.push(Line::from(""));
    match &r.root_cause {
        Some(cause) => {
            out.push(Line::from(Span::styled(" Root cause", theme.bold())));
            out.extend(
                wrap(cause, width)
                    .into_iter()
                    .map(|l| Line::from(format!("   {l}"))),
            );
        }
        None if r.failure.is_some() => out.push(dim(
            format!(
                "No root-cause note yet — `d1ops annotate {} --cause …` records one.",
                r.id
            ),
            theme,
        )),
        None => {}
    }
    if let Some(g) = &r.guardrail {
        out.push(Line::from(Span::styled(" Guardrail", theme.bold())));
        out.extend(
            wrap(g, width)
                .into_iter()
                .map(|l| Line::from(format!("   {l}"))),
        );
    }
    out
}

/// Splits text into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(10);
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out
}
