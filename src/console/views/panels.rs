//! Monitor and Capacity. Query metrics and usage history arrive with the observability
//! work (`d1ops serve`, `traffic`, `ingest`, `usage`); until then these panels show what
//! the workspace already knows (database sizes, stale previews) and say plainly what is
//! not there yet.
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::theme::Theme;
use crate::console::format;
use crate::console::state::State;
use crate::model::EnvKind;

/// Latency, error rate and top queries — empty until query events exist.
pub fn monitor(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let live = state.live_release().unwrap_or("none");
    let lines = vec![
        Line::from(Span::styled(" Monitor", theme.title())),
        Line::from(""),
        Line::from(format!(" production · live release {live}")),
        Line::from(""),
        Line::from(Span::styled(
            " No query metrics yet — metrics arrive with `d1ops serve`, `d1ops traffic` or `d1ops ingest`.",
            theme.dim(),
        )),
        Line::from(Span::styled(
            " Once they exist this tab shows p50/p95/p99 latency, QPS and error rate per environment,",
            theme.dim(),
        )),
        Line::from(Span::styled(
            " and the top queries by total time, p95, rows read and errors.",
            theme.dim(),
        )),
    ];
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
}

/// Recovery points: how many, their size, and how many retention would delete.
fn recovery_points(state: &State) -> String {
    let snaps = &state.data.snapshots;
    let bytes: u64 = snaps.iter().map(|s| s.snapshot.size_bytes).sum();
    let expired = snaps.iter().filter(|s| s.expired).count();
    format!(
        " Recovery points  {} taking {} ({expired} past retention)",
        snaps.len(),
        format::bytes(bytes)
    )
}

/// Storage per environment, database count and what cleanup frees; usage history later.
pub fn capacity(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let envs = &state.data.envs;
    let with_db: Vec<_> = envs.iter().filter(|e| e.database.is_some()).collect();
    let total: u64 = with_db.iter().filter_map(|e| e.size_bytes).sum();
    let prod: u64 = (with_db.iter())
        .filter(|e| e.env.kind == EnvKind::Production)
        .filter_map(|e| e.size_bytes)
        .sum();
    let stale: Vec<_> = with_db.iter().filter(|e| e.stale.is_some()).collect();
    let stale_bytes: u64 = stale.iter().filter_map(|e| e.size_bytes).sum();
    let mut lines = vec![
        Line::from(Span::styled(" Capacity", theme.title())),
        Line::from(""),
        Line::from(format!(" Databases        {}", with_db.len())),
        Line::from(format!(" Storage (total)  {}", format::bytes(total))),
        Line::from(format!(" Production       {}", format::bytes(prod))),
        Line::from(format!(
            " Previews         {} in {} database(s)",
            format::bytes(total - prod.min(total)),
            with_db
                .iter()
                .filter(|e| e.env.kind == EnvKind::Preview)
                .count()
        )),
        Line::from(Span::styled(
            format!(
                " Stale previews   {} — cleaning up frees {}",
                stale.len(),
                format::bytes(stale_bytes)
            ),
            if stale.is_empty() {
                theme.dim()
            } else {
                theme.warn()
            },
        )),
        Line::from(recovery_points(state)),
        Line::from(""),
        Line::from(Span::styled(
            " No usage history yet — daily rows read/written, plan limits and",
            theme.dim(),
        )),
        Line::from(Span::styled(
            " \"days until limit\" arrive with `d1ops usage` and `d1ops forecast`.",
            theme.dim(),
        )),
    ];
    if !state.loaded {
        lines.truncate(1);
        lines.push(Line::from(Span::styled(" Loading…", theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
}
