//! The three lists: Environments, Releases, Audit. Each draws a title line (count,
//! filter), a column heading and only the rows that fit, with honest empty states.
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::layout;
use super::theme::Theme;
use crate::engine::EnvView;
use crate::format;
use crate::model::{EnvKind, ReleaseState, Verdict};
use crate::state::{ListState, State};

/// What a list's title line and empty state say.
struct Heading<'a> {
    title: &'a str,
    extra: Vec<Span<'static>>,
    list: &'a ListState,
    total: usize,
    empty: &'a str,
}

/// Draws the title line and, when the list has rows, returns the visible slice bounds.
fn frame_list(
    frame: &mut Frame,
    state: &State,
    theme: &Theme,
    body: Rect,
    h: Heading,
) -> Option<(Rect, usize, usize)> {
    let Heading {
        title,
        extra,
        list,
        total,
        empty,
    } = h;
    let mut spans = vec![Span::styled(format!(" {title} "), theme.title())];
    let count = if list.filter.is_empty() {
        format!("{total}")
    } else {
        format!("{} of {total}", list.visible.len())
    };
    spans.push(Span::styled(format!("({count}) "), theme.dim()));
    if list.editing {
        spans.push(Span::styled(format!(" /{}█ ", list.filter), theme.key()));
    } else if !list.filter.is_empty() {
        spans.push(Span::styled(
            format!(" filter: {} ", list.filter),
            theme.key(),
        ));
    }
    spans.extend(extra);
    frame.render_widget(
        Paragraph::new(Line::from(spans)),
        Rect {
            height: 1.min(body.height),
            ..body
        },
    );
    let rows = layout::rows_area(body);
    let message = if let Some(e) = state.load_error.as_deref().filter(|_| !state.loaded) {
        Some((format!("Could not read the workspace: {e}"), theme.bad()))
    } else if !state.loaded {
        Some(("Loading…".to_string(), theme.dim()))
    } else if total == 0 {
        Some((empty.to_string(), theme.dim()))
    } else if list.visible.is_empty() {
        Some((
            format!("No rows match “{}” — Esc clears the filter.", list.filter),
            theme.dim(),
        ))
    } else {
        None
    };
    if let Some((text, style)) = message {
        let area = Rect {
            y: rows.y,
            height: rows.height.min(3),
            ..rows
        };
        frame.render_widget(
            Paragraph::new(Span::styled(format!(" {text}"), style))
                .wrap(ratatui::widgets::Wrap { trim: false }),
            area,
        );
        return None;
    }
    let n = rows.height as usize;
    let offset = layout::offset_for(list.selected, list.offset, n);
    let end = (offset + n).min(list.visible.len());
    Some((body, offset, end))
}

fn table<'a>(
    rows: Vec<Row<'a>>,
    widths: Vec<Constraint>,
    heading: &[&'a str],
    theme: &Theme,
) -> Table<'a> {
    let head = Row::new(heading.iter().map(|h| Cell::from(*h))).style(theme.bold());
    Table::new(rows, widths).header(head).column_spacing(1)
}

fn row_style(selected: bool, theme: &Theme) -> Style {
    if selected {
        theme.selected()
    } else {
        Style::new()
    }
}

/// Environments: production first, then previews.
pub fn environments(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let list = &state.envs;
    let envs = &state.data.envs;
    let Some((body, offset, end)) = frame_list(
        frame,
        state,
        theme,
        body,
        Heading {
            title: "Environments",
            extra: env_title_extra(state, theme),
            list,
            total: envs.len(),
            empty: "No environments yet.",
        },
    ) else {
        return;
    };
    let wide = body.width >= 100;
    let name_w = (list.visible[offset..end].iter())
        .filter_map(|&i| envs.get(i))
        .map(|e| e.env.name.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(11, 34) as u16;
    let rows: Vec<Row> = (list.visible[offset..end].iter().enumerate())
        .filter_map(|(pos, &i)| {
            let e = envs.get(i)?;
            let cells = env_cells(state, e, wide, theme);
            Some(Row::new(cells).style(row_style(offset + pos == list.selected, theme)))
        })
        .collect();
    let (widths, heading) = env_columns(wide, name_w);
    let area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    frame.render_widget(table(rows, widths, &heading, theme), area);
}

/// The Environments title's warnings: stale previews (and the key that cleans them up),
/// a ledger that disagrees with d1ops' record.
fn env_title_extra(state: &State, theme: &Theme) -> Vec<Span<'static>> {
    let stale = (state.data.envs.iter())
        .filter(|e| e.stale.is_some())
        .count();
    let mut extra = if stale > 0 && !state.info.readonly {
        vec![Span::styled(
            format!(" {stale} stale — c cleans up "),
            theme.warn(),
        )]
    } else if stale > 0 {
        vec![Span::styled(format!(" {stale} stale "), theme.warn())]
    } else {
        Vec::new()
    };
    if let Some(why) = &state.data.ledger {
        // Production's ledger disagrees with d1ops' record: promotion is refused until
        // `d1ops ledger repair` reconciles them.
        extra.push(Span::styled(format!(" ⚠ {why} "), theme.warn()));
    }
    extra
}

/// One environment's cells, in [`env_columns`]' order.
fn env_cells(state: &State, e: &EnvView, wide: bool, theme: &Theme) -> Vec<Cell<'static>> {
    let rstate = match e.env.kind {
        // Production's row shows the state of the release it runs.
        EnvKind::Production => (e.env.active_release.as_deref())
            .and_then(|id| state.data.releases.iter().find(|r| r.id == id))
            .map(|r| r.state),
        EnvKind::Preview => e.release_state.as_deref().and_then(ReleaseState::parse),
    };
    let state_cell = match rstate {
        Some(s) => Cell::from(Span::styled(
            format::state_marker(s),
            theme.release_state(s),
        )),
        None => Cell::from(Span::styled("—", theme.dim())),
    };
    let (size, head) = match (&e.database, e.env.kind) {
        (None, EnvKind::Production) => (
            "—".to_string(),
            "no database yet (created by the first promotion)".to_string(),
        ),
        (None, EnvKind::Preview) => ("—".to_string(), "no database".to_string()),
        (Some(_), _) => (
            e.size_bytes.map_or("?".into(), format::bytes),
            e.schema_head
                .clone()
                .unwrap_or_else(|| "(no migrations applied)".into()),
        ),
    };
    let stale_cell = match &e.stale {
        Some(why) if wide => Cell::from(Span::styled(format!("stale: {why}"), theme.warn())),
        Some(_) => Cell::from(Span::styled("stale", theme.warn())),
        None => Cell::from(""),
    };
    let name_style = if e.env.kind == EnvKind::Production {
        theme.bold()
    } else {
        Style::new()
    };
    let mut cells = vec![
        Cell::from(Span::styled(e.env.name.clone(), name_style)),
        state_cell,
        Cell::from(size),
        Cell::from(head),
    ];
    if wide {
        cells.push(Cell::from(format!("{}", e.applied)));
        cells.push(Cell::from(format::age(&e.env.created_at, state.now)));
    }
    cells.push(Cell::from(format::age(&e.env.last_activity_at, state.now)));
    cells.push(stale_cell);
    cells
}

/// The Environments table's column widths and headings; APPLIED and AGE only when wide.
fn env_columns(wide: bool, name_w: u16) -> (Vec<Constraint>, Vec<&'static str>) {
    if wide {
        (
            vec![
                Constraint::Length(name_w),
                Constraint::Length(13),
                Constraint::Length(9),
                Constraint::Fill(2),
                Constraint::Length(7),
                Constraint::Length(5),
                Constraint::Length(5),
                Constraint::Fill(1),
            ],
            vec![
                "ENVIRONMENT",
                "RELEASE",
                "SIZE",
                "SCHEMA HEAD",
                "APPLIED",
                "AGE",
                "IDLE",
                "STALE",
            ],
        )
    } else {
        (
            vec![
                Constraint::Length(name_w),
                Constraint::Length(13),
                Constraint::Length(9),
                Constraint::Fill(2),
                Constraint::Length(4),
                Constraint::Fill(1),
            ],
            vec![
                "ENVIRONMENT",
                "RELEASE",
                "SIZE",
                "SCHEMA HEAD",
                "IDLE",
                "STALE",
            ],
        )
    }
}

/// Releases, newest first.
pub fn releases(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let list = &state.releases;
    let all = &state.data.releases;
    let empty = "No releases yet — `d1ops deploy` makes one from the migrations folder.";
    let Some((body, offset, end)) = frame_list(
        frame,
        state,
        theme,
        body,
        Heading {
            title: "Releases",
            extra: Vec::new(),
            list,
            total: all.len(),
            empty,
        },
    ) else {
        return;
    };
    let mut rows = Vec::with_capacity(end - offset);
    for (pos, &i) in list.visible[offset..end].iter().enumerate() {
        let Some(r) = all.get(i) else { continue };
        let verdict = match r.verdict {
            Some(Verdict::Ready) => Span::styled("✓ ready", theme.ok()),
            Some(Verdict::Blocked) => Span::styled("✗ blocked", theme.bad()),
            None => Span::styled("—", theme.dim()),
        };
        let label = r
            .label
            .clone()
            .or_else(|| r.commit.clone())
            .unwrap_or_default();
        let mut cells = vec![
            Cell::from(r.id.clone()),
            Cell::from(Span::styled(
                format::state_marker(r.state),
                theme.release_state(r.state),
            )),
            Cell::from(format::age(&r.created_at, state.now)),
            Cell::from(r.author.clone()),
            Cell::from(format!("{}", r.pending_count)),
            Cell::from(verdict),
        ];
        cells.push(Cell::from(label));
        rows.push(Row::new(cells).style(row_style(offset + pos == list.selected, theme)));
    }
    let mut widths = vec![
        Constraint::Length(26),
        Constraint::Length(13),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(4),
        Constraint::Length(9),
    ];
    let mut heading = vec!["RELEASE", "STATE", "AGE", "AUTHOR", "MIGS", "GATE"];
    widths.push(Constraint::Fill(1));
    heading.push("LABEL");
    let area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    frame.render_widget(table(rows, widths, &heading, theme), area);
}

/// Audit events, newest first, with the hash chain's verdict.
pub fn audit(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let list = &state.audit;
    let events = &state.data.audit;
    let chain = match &state.data.chain {
        Some(c) if c.ok => Span::styled(
            format!(" ✓ hash chain verifies ({} events) ", c.events),
            theme.ok(),
        ),
        Some(c) => Span::styled(
            format!(
                " ✗ hash chain broken at seq {}: {} ",
                c.first_bad_seq.map_or("?".into(), |s| s.to_string()),
                c.problem.as_deref().unwrap_or("unknown problem")
            ),
            theme.bad(),
        ),
        None => Span::raw(""),
    };
    let Some((body, offset, end)) = frame_list(
        frame,
        state,
        theme,
        body,
        Heading {
            title: "Audit",
            extra: vec![chain],
            list,
            total: events.len(),
            empty: "No audit events yet.",
        },
    ) else {
        return;
    };
    let mut rows = Vec::with_capacity(end - offset);
    for (pos, &i) in list.visible[offset..end].iter().enumerate() {
        let Some(e) = events.get(i) else { continue };
        let style = if e.action.contains("failed") {
            theme.bad()
        } else {
            Style::new()
        };
        rows.push(
            Row::new(vec![
                Cell::from(format!("{}", e.seq)),
                Cell::from(format::age(&e.at, state.now)),
                Cell::from(e.actor.clone()),
                Cell::from(Span::styled(e.action.clone(), style)),
                Cell::from(e.release_id.clone().unwrap_or_default()),
                Cell::from(
                    format!(
                        "{} {}",
                        e.env.as_deref().unwrap_or(""),
                        format::audit_detail(&e.detail)
                    )
                    .trim()
                    .to_string(),
                ),
            ])
            .style(row_style(offset + pos == list.selected, theme)),
        );
    }
    let widths = vec![
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(19),
        Constraint::Length(26),
        Constraint::Fill(1),
    ];
    let heading = ["SEQ", "AGE", "ACTOR", "ACTION", "RELEASE", "DETAIL"];
    let area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    frame.render_widget(table(rows, widths, &heading, theme), area);
}
