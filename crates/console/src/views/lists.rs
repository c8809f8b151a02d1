//! The three lists: Environments, Releases, Audit. Each draws a title line (count,
//! filter), a column heading and only the rows that fit, with honest empty states.
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};

use super::fit::{self, Col, FILL};
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
        Paragraph::new(Line::from(fit::clip_spans(spans, body.width as usize))),
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

fn table<'a>(rows: Vec<Row<'a>>, cols: &[Col], widths: &[u16], theme: &Theme) -> Table<'a> {
    let head = Row::new(fit::heads(cols, widths)).style(theme.bold());
    Table::new(rows, fit::constraints(widths))
        .header(head)
        .column_spacing(1)
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
    let name_w = (list.visible[offset..end].iter())
        .filter_map(|&i| envs.get(i))
        .map(|e| e.env.name.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(11, 34) as u16;
    // The schema head and the stale reason take the room their longest visible text needs
    // (in that order of importance), so neither is a fixed stub.
    let text_w = |f: &dyn Fn(&EnvView) -> usize| {
        (list.visible[offset..end].iter())
            .filter_map(|&i| envs.get(i))
            .map(f)
            .max()
            .unwrap_or(0)
            .min(200) as u16
    };
    let head_w = text_w(&|e| e.schema_head.as_deref().map_or(24, |h| h.chars().count()));
    let stale_w = text_w(&|e| {
        (e.unreadable.as_deref().map(|u| u.chars().count() + 12))
            .or(e.stale.as_deref().map(|s| s.chars().count()))
            .unwrap_or(0)
    });
    // D1's read replication (REPLICAS: auto or disabled): a column only when some
    // database reports it.
    let replication = envs.iter().any(|e| e.read_replication.is_some());
    let mut cols = env_columns(name_w, body.width, replication);
    for c in cols.iter_mut() {
        match c.head {
            "SCHEMA HEAD" => c.max = head_w.max(c.min),
            "STALE" => c.max = stale_w.max(c.min),
            _ => {}
        }
    }
    let widths = fit::widths(&cols, body.width);
    let rows: Vec<Row> = (list.visible[offset..end].iter().enumerate())
        .filter_map(|(pos, &i)| {
            let e = envs.get(i)?;
            let mut cells = env_cells(state, e, theme);
            if replication {
                let mode = e.read_replication.clone().unwrap_or_else(|| "—".into());
                cells.push((mode, Style::new()));
            }
            let cells = fit::row_cells(&cols, &widths, cells);
            Some(Row::new(cells).style(row_style(offset + pos == list.selected, theme)))
        })
        .collect();
    let area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    frame.render_widget(table(rows, &cols, &widths, theme), area);
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
fn env_cells(state: &State, e: &EnvView, theme: &Theme) -> Vec<(String, Style)> {
    let rstate = match e.env.kind {
        // Production's row shows the state of the release it runs.
        EnvKind::Production => (e.env.active_release.as_deref())
            .and_then(|id| state.data.releases.iter().find(|r| r.id == id))
            .map(|r| r.state),
        EnvKind::Preview => e.release_state.as_deref().and_then(ReleaseState::parse),
    };
    let state_cell = match rstate {
        Some(s) => (format::state_marker(s), theme.release_state(s)),
        None => ("—".to_string(), theme.dim()),
    };
    let (size, head) = match (&e.database, e.env.kind) {
        (None, EnvKind::Production) => (
            "—".to_string(),
            "no database yet (created by the first promotion)".to_string(),
        ),
        (None, EnvKind::Preview) => ("—".to_string(), "no database".to_string()),
        // The backend could not answer (a refused token, no answer): unknown, not empty.
        (Some(_), _) if e.unreadable.is_some() => ("?".to_string(), "unknown".to_string()),
        (Some(_), _) => (
            e.size_bytes.map_or("?".into(), format::bytes),
            e.schema_head
                .clone()
                .unwrap_or_else(|| "(no migrations applied)".into()),
        ),
    };
    let stale = match (&e.unreadable, &e.stale) {
        (Some(why), _) => (format!("unreadable: {why}"), theme.bad()),
        (None, Some(why)) => (why.clone(), theme.warn()),
        (None, None) => (String::new(), Style::new()),
    };
    let name_style = if e.env.kind == EnvKind::Production {
        theme.bold()
    } else {
        Style::new()
    };
    // Which release's code each target runs: `app` when it is this environment's release's
    // code, `app@…RHX0QZ` (the id's end: ids of one day share their start) when another
    // release's; `—` when no code was shipped.
    let own = match e.env.kind {
        EnvKind::Production => e.env.active_release.as_deref(),
        EnvKind::Preview => e.env.release_id.as_deref(),
    };
    let code = if e.code.is_empty() {
        ("—".to_string(), theme.dim())
    } else {
        let mut other = false;
        let parts: Vec<String> = (e.code.iter())
            .map(|c| {
                if Some(c.release_id.as_str()) == own {
                    c.target.clone()
                } else {
                    other = true;
                    let id = &c.release_id;
                    let tail = id.get(id.len().saturating_sub(6)..).unwrap_or(id);
                    format!("{}@…{tail}", c.target)
                }
            })
            .collect();
        let style = if other { theme.warn() } else { Style::new() };
        (parts.join(" "), style)
    };
    vec![
        (e.env.name.clone(), name_style),
        state_cell,
        code,
        (size, Style::new()),
        (head, Style::new()),
        (format!("{}", e.applied), Style::new()),
        (format::age(&e.env.created_at, state.now), Style::new()),
        (
            format::age(&e.env.last_activity_at, state.now),
            Style::new(),
        ),
        stale,
    ]
}

/// The Environments table's columns: the name, state and stale reason stay longest; the
/// schema head and the stale reason share what is left.
fn env_columns(name_w: u16, width: u16, replication: bool) -> Vec<Col> {
    // From 80 columns on, names are never cut; below, they give way first.
    let name_min = if width >= 80 { name_w } else { 11 };
    let mut cols = vec![
        fit::col("ENVIRONMENT", name_min, name_w, 0),
        fit::col("RELEASE", 12, 13, 0),
        fit::col("CODE", 6, 14, 3),
        fit::right("SIZE", 9, 9, 3),
        fit::col("SCHEMA HEAD", 11, FILL, 2),
        fit::right("APPLIED", 7, 7, 6),
        fit::col("AGE", 4, 5, 5),
        fit::col("IDLE", 4, 5, 4),
        fit::col("STALE", 6, FILL, 1),
    ];
    if replication {
        cols.push(fit::col("REPLICAS", 8, 8, 7));
    }
    cols
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
    let cols = release_columns(body.width);
    let widths = fit::widths(&cols, body.width);
    let mut rows = Vec::with_capacity(end - offset);
    for (pos, &i) in list.visible[offset..end].iter().enumerate() {
        let Some(r) = all.get(i) else { continue };
        let verdict = match r.verdict {
            Some(Verdict::Ready) => ("✓ ready".to_string(), theme.ok()),
            Some(Verdict::Blocked) => ("✗ blocked".to_string(), theme.bad()),
            None => ("—".to_string(), theme.dim()),
        };
        let label = r
            .label
            .clone()
            .or_else(|| r.commit.clone())
            .unwrap_or_default();
        let promoted = (r.promoted_at.as_deref()).map_or_else(
            || "—".to_string(),
            |t| format!("{} ago", format::age(t, state.now)),
        );
        let cells = vec![
            (r.id.clone(), Style::new()),
            (format::state_marker(r.state), theme.release_state(r.state)),
            (format::age(&r.created_at, state.now), Style::new()),
            (promoted, Style::new()),
            (r.author.clone(), Style::new()),
            (format!("{}", r.pending_count), Style::new()),
            verdict,
            (label, Style::new()),
        ];
        let cells = fit::row_cells(&cols, &widths, cells);
        rows.push(Row::new(cells).style(row_style(offset + pos == list.selected, theme)));
    }
    let area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    frame.render_widget(table(rows, &cols, &widths, theme), area);
}

/// The Releases table's columns: id, state, gate and label stay longest.
fn release_columns(width: u16) -> Vec<Col> {
    // From 70 columns on the label keeps a readable stub (the author gives way first).
    let label_min = if width >= 70 { 14 } else { 8 };
    vec![
        // Whole ids: they are what an operator types (`:release`, the CLI).
        fit::col("RELEASE", 26, 26, 0),
        fit::col("STATE", 12, 13, 0),
        fit::col("AGE", 4, 4, 3),
        fit::col("PROMOTED", 8, 8, 2),
        fit::col("AUTHOR", 6, 10, 4),
        fit::right("MIGS", 4, 4, 5),
        fit::col("GATE", 9, 9, 1),
        fit::col("LABEL", label_min, FILL, 1),
    ]
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
    let cols = [
        fit::right("SEQ", 5, 5, 3),
        fit::col("AGE", 4, 4, 4),
        fit::col("ACTOR", 6, 10, 2),
        fit::col("ACTION", 12, 19, 0),
        fit::col("RELEASE", 10, 26, 1),
        fit::col("DETAIL", 10, FILL, 0),
    ];
    let widths = fit::widths(&cols, body.width);
    let mut rows = Vec::with_capacity(end - offset);
    for (pos, &i) in list.visible[offset..end].iter().enumerate() {
        let Some(e) = events.get(i) else { continue };
        let style = if e.action.contains("failed") {
            theme.bad()
        } else {
            Style::new()
        };
        let detail = format!(
            "{} {}",
            e.env.as_deref().unwrap_or(""),
            format::audit_detail(&e.detail)
        );
        let cells = vec![
            (format!("{}", e.seq), Style::new()),
            (format::age(&e.at, state.now), Style::new()),
            (e.actor.clone(), Style::new()),
            (e.action.clone(), style),
            (e.release_id.clone().unwrap_or_default(), Style::new()),
            (detail.trim().to_string(), Style::new()),
        ];
        rows.push(
            Row::new(fit::row_cells(&cols, &widths, cells))
                .style(row_style(offset + pos == list.selected, theme)),
        );
    }
    let area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    frame.render_widget(table(rows, &cols, &widths, theme), area);
}
