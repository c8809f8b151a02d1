//! The Capacity tab: one gauge per plan limit (use vs limit and days until it is reached),
//! the selected limit's history with its projection and the limit drawn (`j`/`k` choose),
//! the projected monthly cost on a paid plan, stale previews with their sizes and the
//! recovery points. Days on the axis are relative ("-29d", "today", "+30d").
use chrono::NaiveDate;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Wrap};

use super::charts::{bar, compact, y_labels};
use super::fit::{self, FILL};
use super::theme::Theme;
use crate::data::CapacityData;
use crate::engine::capacity::PROJECTION_DAYS;
use crate::engine::view::{LimitMetric, LimitUse};
use crate::format;
use crate::state::State;

type Lines = Vec<Line<'static>>;

/// A limit's value in its unit.
fn amount(metric: LimitMetric, v: f64) -> String {
    match metric {
        LimitMetric::DatabaseSize | LimitMetric::TotalStorage => format::bytes(v.max(0.0) as u64),
        _ => compact(v.max(0.0).round()),
    }
}

/// Draws the Capacity tab into the body.
pub fn draw(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let data = match &state.capacity.data {
        None => {
            let lines = vec![
                Line::from(Span::styled(" Capacity", theme.title())),
                Line::from(""),
                Line::from(Span::styled(" Loading usage…", theme.dim())),
            ];
            frame.render_widget(Paragraph::new(lines), body);
            return;
        }
        Some(Err(e)) => {
            let lines = vec![
                Line::from(Span::styled(" Capacity", theme.title())),
                Line::from(""),
                Line::from(Span::styled(
                    format!(" Could not read usage: {e}"),
                    theme.bad(),
                )),
            ];
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
            return;
        }
        Some(Ok(d)) => d,
    };
    let mut top = fit::wrap_lines(
        header(state, data, theme),
        body.width as usize,
        fit::CONTINUED,
    );
    top.extend(gauges(state, data, theme, body.width as usize));
    top.push(Line::from(""));
    let bottom = footer_lines(state, data, theme, body.width, body.height);
    let chart_h = body
        .height
        .saturating_sub(top.len() as u16 + bottom.len() as u16);
    let top_h = (top.len() as u16).min(body.height);
    frame.render_widget(
        Paragraph::new(top),
        Rect {
            height: top_h,
            ..body
        },
    );
    let chart_area = Rect {
        y: body.y + top_h,
        height: chart_h,
        ..body
    };
    if chart_h >= 5 {
        chart(frame, state, data, theme, chart_area);
    }
    let used = top_h + chart_h;
    frame.render_widget(
        Paragraph::new(bottom),
        Rect {
            y: body.y + used,
            height: body.height.saturating_sub(used),
            ..body
        },
    );
}

fn header(state: &State, d: &CapacityData, theme: &Theme) -> Lines {
    let last = d.usage.totals.last();
    let mut first = vec![
        Span::styled(" Capacity ", theme.title()),
        Span::styled(" plan ", theme.dim()),
        Span::styled(d.usage.plan.clone(), theme.bold()),
    ];
    if let Some(t) = last {
        first.push(Span::styled(
            format!(
                " · {} database(s) · {} stored",
                t.databases,
                format::bytes(t.storage_bytes)
            ),
            theme.dim(),
        ));
    }
    let cost = match &d.usage.cost {
        Some(c) => Line::from(vec![
            Span::styled(if c.hypothetical { " If on " } else { " On " }, theme.dim()),
            Span::styled(c.plan.clone(), theme.bold()),
            Span::raw(format!(": ${:.2} overage this month", c.usd)),
            Span::styled(" (base subscription not included)", theme.dim()),
        ]),
        None => Line::from(Span::styled(
            " No projected cost: no usage recorded this month yet.",
            theme.dim(),
        )),
    };
    let mut lines = vec![Line::from(first), cost];
    if let Some(f) = &d.usage.freshness {
        lines.extend(super::monitor::freshness(f, state, theme));
    }
    lines.push(Line::from(""));
    lines
}

fn gauges(state: &State, d: &CapacityData, theme: &Theme, width: usize) -> Lines {
    // What stays at any width: the limit, the share used and when it is reached.
    let cols = [
        fit::col("LIMIT", 10, 21, 0),
        fit::col("", 6, 24, 4),
        fit::right("USED / LIMIT", 21, 21, 2),
        fit::right("USE", 5, 5, 1),
        fit::col("UNTIL LIMIT", 14, FILL, 0),
    ];
    let widths = fit::widths(&cols, width.saturating_sub(4) as u16);
    let mut out = Vec::new();
    for (i, f) in d.forecast.items.iter().enumerate() {
        let Some(u) = d.usage.status.iter().find(|u| u.metric == f.metric) else {
            continue;
        };
        let selected = i == state.capacity.selected;
        let marker = if selected { "▶" } else { " " };
        let exceeded = u.exceeded_since.is_some();
        let style = match f.days_until {
            _ if exceeded => theme.bad().add_modifier(Modifier::BOLD),
            Some(0) => theme.bad(),
            Some(d) if d <= 30 => theme.warn(),
            _ => theme.dim(),
        };
        let room = widths[4] as usize;
        // A limit already crossed says so (since when, what it means) before any forecast.
        let full = match (&u.exceeded_since, &u.meaning) {
            (Some(since), Some(m)) => format!("exceeded since {since}: {m}"),
            (Some(since), None) => format!("exceeded since {since}"),
            _ => f.summary.clone(),
        };
        let summary = if full.chars().count() <= room {
            full
        } else if exceeded {
            "exceeded".to_string()
        } else {
            short(f)
        };
        let cells = vec![
            (
                f.label.to_string(),
                if selected { theme.bold() } else { Style::new() },
            ),
            (String::new(), Style::new()),
            (
                format!(
                    "{} / {}",
                    amount(u.metric, u.used as f64),
                    amount(u.metric, u.limit as f64)
                ),
                Style::new(),
            ),
            (share(u), if exceeded { style } else { Style::new() }),
            (summary, style),
        ];
        let mut spans = vec![Span::raw(format!(" {marker} "))];
        let mut row = fit::text_row(&cols, &widths, cells);
        if widths[1] > 0 {
            // The gauge is drawn, not typed: replace the blank cell with the bar.
            let at = 2; // label, space
            row.splice(at..at + 1, bar(u.share, widths[1] as usize, theme));
        }
        spans.extend(row);
        out.push(Line::from(spans));
    }
    out
}

/// A forecast in a few characters, for narrow terminals.
fn short(f: &crate::engine::ForecastItem) -> String {
    use crate::engine::view::Outcome;
    match (&f.outcome, f.days_until) {
        (Outcome::Reached { .. }, _) => "reached".into(),
        (Outcome::Within(_), Some(d)) => format!("in {d} days"),
        (Outcome::NotWithinHorizon { .. }, _) => "beyond horizon".into(),
        (Outcome::TooFewPoints { points, needed }, _) => format!("{points} of {needed} days"),
        _ => "–".into(),
    }
}

fn share(u: &LimitUse) -> String {
    if u.share.is_finite() {
        format!("{:.0}%", u.share * 100.0)
    } else {
        "over".into()
    }
}

fn footer_lines(state: &State, d: &CapacityData, theme: &Theme, width: u16, height: u16) -> Lines {
    let bytes: u64 = d.stale.iter().map(|i| i.size_bytes).sum();
    let mut out = vec![Line::from(vec![
        Span::styled(
            format!(" Stale previews   {}", d.stale.len()),
            if d.stale.is_empty() {
                theme.dim()
            } else {
                theme.warn()
            },
        ),
        Span::styled(
            if d.stale.is_empty() {
                String::new()
            } else {
                format!(
                    " — cleaning up frees {}{}",
                    format::bytes(bytes),
                    if state.info.readonly { "" } else { " (c)" }
                )
            },
            theme.warn(),
        ),
    ])];
    let room = if height >= 34 { 4 } else { 2 };
    let cols = [
        fit::col("PREVIEW", 12, 36, 0),
        fit::right("SIZE", 9, 10, 1),
        fit::col("REASON", 8, FILL, 2),
    ];
    let widths = fit::widths(&cols, width.saturating_sub(4));
    for item in d.stale.iter().take(room) {
        let cells = vec![
            (item.env.clone(), theme.dim()),
            (format::bytes(item.size_bytes), theme.dim()),
            (item.reason.clone(), theme.dim()),
        ];
        let mut spans = vec![Span::raw("   ")];
        spans.extend(fit::text_row(&cols, &widths, cells));
        out.push(Line::from(spans));
    }
    if d.stale.len() > room {
        out.push(Line::from(Span::styled(
            format!("   … and {} more", d.stale.len() - room),
            theme.dim(),
        )));
    }
    let snaps = &state.data.snapshots;
    // D1 Time Travel bookmarks take no storage: only local copies are counted.
    let stored: Vec<_> = snaps.iter().filter(|s| s.uses_storage).collect();
    let taking = if stored.is_empty() && !snaps.is_empty() {
        "no storage (Time Travel bookmarks)".to_string()
    } else {
        format::bytes(stored.iter().map(|s| s.snapshot.size_bytes).sum())
    };
    out.push(Line::from(format!(
        " Recovery points  {} taking {taking} ({} past retention)",
        snaps.len(),
        snaps.iter().filter(|s| s.expired).count()
    )));
    out
}

/// Days from `today` (negative: past).
fn x(day: NaiveDate, today: NaiveDate) -> f64 {
    (day - today).num_days() as f64
}

fn chart(frame: &mut Frame, state: &State, d: &CapacityData, theme: &Theme, area: Rect) {
    let Some(f) = d.forecast.items.get(state.capacity.selected) else {
        return;
    };
    if f.history.len() < 2 {
        let text = format!(
            " {}: not enough history to chart yet ({} day(s) recorded). Usage is sampled once a day by every console session and by `d1ops usage`, `forecast` and `report`.",
            f.label,
            f.history.len()
        );
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.dim())).wrap(Wrap { trim: false }),
            area,
        );
        return;
    }
    let today = d.usage.to;
    let history: Vec<(f64, f64)> = f
        .history
        .iter()
        .map(|(day, v)| (x(*day, today), *v))
        .collect();
    let projection: Vec<(f64, f64)> = (f.history.last().iter())
        .map(|(day, v)| (x(*day, today), *v))
        .chain(f.projection.iter().map(|p| (x(p.0, today), p.1.max(0.0))))
        .collect();
    // Symmetric around today, so the middle label is exactly today.
    let x_max = PROJECTION_DAYS as f64;
    let x_min = -x_max;
    let limit = vec![(x_min, f.limit), (x_max, f.limit)];
    let y_max = (history.iter().chain(&projection))
        .map(|p| p.1)
        .fold(f.limit, f64::max)
        * 1.05;
    let datasets = vec![
        Dataset::default()
            .name("limit")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.bad())
            .data(&limit),
        Dataset::default()
            .name("projection")
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(theme.fg(Color::Yellow))
            .data(&projection),
        Dataset::default()
            .name("history")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.fg(Color::Cyan))
            .data(&history),
    ];
    let metric = f.metric;
    let title = format!(
        " {} · history, projection • and limit ({}) ",
        f.label,
        amount(metric, f.limit)
    );
    let chart = Chart::new(datasets)
        .block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.dim())
                .title(Span::styled(title, theme.bold())),
        )
        .x_axis(
            Axis::default()
                .bounds([x_min, x_max])
                .labels(vec![
                    Line::from(format!("{x_min:.0}d")),
                    Line::from("today"),
                    Line::from(format!("+{x_max:.0}d")),
                ])
                .style(theme.dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels(y_labels(y_max, move |v| amount(metric, v)))
                .style(theme.dim()),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}
