//! The Monitor tab: environment, window and order chosen with `e`, `w`, `o`; totals for the
//! window; the live release's watch when it regressed; charts of p50/p95/p99 latency, QPS and
//! error rate; the top queries; and the selected query's plan with a suggested index (`i`
//! writes it). Times on the axes are relative ("-30m", "now"), never the wall clock. On
//! Cloudflare a line says how fresh D1's analytics are.
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Sparkline, Wrap,
};

use super::charts::{ago, compact, ms, pool, y_labels};
use super::theme::Theme;
use crate::engine::view::SeriesPoint;
use crate::engine::{Freshness, MonitorData, WatchStatus};
use crate::format::{self, thousands};
use crate::state::{MonitorState, State, order_label};

/// Draws the Monitor into the body.
pub fn draw(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let m = &state.monitor;
    frame.render_widget(
        Paragraph::new(title(m, theme, body.width >= 80)),
        Rect { height: 1, ..body },
    );
    let rest = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    let data = match &m.data {
        None => return message(frame, rest, " Loading metrics…", theme.dim()),
        Some(Err(e)) => {
            return message(
                frame,
                rest,
                &format!(" Could not read metrics: {e}"),
                theme.bad(),
            );
        }
        Some(Ok(d)) => d,
    };
    let empty = data.totals.count == 0 && data.top.is_empty();
    let mut lines: Vec<Line<'static>> = (data.freshness.iter())
        .flat_map(|f| freshness(f, state, theme))
        .collect();
    if !empty {
        lines.push(totals(data, theme));
    }
    lines.extend(watch_lines(state, data, theme));
    let head = lines.len() as u16;
    frame.render_widget(
        Paragraph::new(lines),
        Rect {
            height: head,
            ..rest
        },
    );
    let rest = Rect {
        y: rest.y + head,
        height: rest.height.saturating_sub(head),
        ..rest
    };
    if empty {
        let source = if data.freshness.is_some() {
            "Metrics come from D1's analytics on Cloudflare (synced as [cloudflare].analytics_refresh allows)"
        } else {
            "Metrics come from `d1ops query`, `d1ops serve` (a local D1 API for your app), `d1ops traffic` and `d1ops ingest`"
        };
        let text = format!(
            " No queries on {} in the last {}. {source}; `w` widens the window.",
            data.env,
            data.window.label()
        );
        return message(frame, rest, &text, theme.dim());
    }
    let tall = rest.height >= 30;
    let errors_h = match data.errors.len() {
        0 => 0,
        n if tall => (n as u16).min(5) + 1,
        _ if rest.height >= 16 => 3,
        _ => 0,
    };
    let [charts_area, table_area, errors_area, plan_area] = Layout::vertical([
        if tall {
            Constraint::Percentage(45)
        } else if rest.height >= 16 {
            Constraint::Length(7)
        } else {
            Constraint::Length(5)
        },
        Constraint::Min(3),
        Constraint::Length(errors_h),
        Constraint::Length(if tall { 6 } else { 5 }),
    ])
    .areas(rest);
    charts(frame, data, theme, charts_area);
    super::queries::top_table(frame, m, data, theme, table_area);
    if errors_h > 0 {
        super::queries::errors_panel(frame, state, data, theme, errors_area);
    }
    plan(frame, m, data, theme, plan_area);
}

fn message(frame: &mut Frame, area: Rect, text: &str, style: Style) {
    frame.render_widget(
        Paragraph::new(Span::styled(text.to_string(), style)).wrap(Wrap { trim: false }),
        area,
    );
}

fn title(m: &MonitorState, theme: &Theme, wide: bool) -> Line<'static> {
    let word = |w: &'static str| if wide { w } else { " · " };
    Line::from(vec![
        Span::styled(" Monitor ", theme.title()),
        Span::styled(if wide { " environment " } else { " " }, theme.dim()),
        Span::styled(m.env_name().to_string(), theme.bold()),
        Span::styled(word(" · window "), theme.dim()),
        Span::styled(m.window.label(), theme.bold()),
        Span::styled(if wide { " · top by " } else { " · by " }, theme.dim()),
        Span::styled(order_label(m.order), theme.bold()),
        Span::styled(
            if m.with_d1ops {
                " · with d1ops' own"
            } else {
                ""
            },
            theme.warn(),
        ),
    ])
}

/// "D1 analytics as of 12:04 (3 min ago), newest bucket 12:03" (at most two lines), in the
/// warning colour when the data is older than it should be and the reason follows.
pub(super) fn freshness(f: &Freshness, state: &State, theme: &Theme) -> Vec<Line<'static>> {
    let style = if f.note.is_some() {
        theme.warn()
    } else {
        theme.dim()
    };
    let width = (state.width.saturating_sub(4) as usize).max(20);
    let mut lines = super::detail::wrap(&f.describe(state.now), width);
    if lines.len() > 2 {
        lines.truncate(2);
        lines[1].push('…');
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let indent = if i == 0 { " " } else { "   " };
            Line::from(Span::styled(format!("{indent}{l}"), style))
        })
        .collect()
}

fn totals(d: &MonitorData, theme: &Theme) -> Line<'static> {
    let t = &d.totals;
    if t.count == 0 {
        return Line::from(Span::styled(
            format!(" no queries in the last {}", d.window.label()),
            theme.dim(),
        ));
    }
    let secs = d.window.length().num_seconds().max(1) as f64;
    let err_style = if t.errors > 0 {
        theme.bad()
    } else {
        theme.dim()
    };
    Line::from(vec![
        Span::raw(format!(
            " {} queries · {}/s",
            thousands(t.count),
            compact(t.count as f64 / secs)
        )),
        Span::styled(
            format!(
                " · {} ({:.2}%)",
                format::count_of(t.errors, "error", "errors"),
                t.error_rate * 100.0
            ),
            err_style,
        ),
        Span::raw(format!(
            " · p95 {}",
            t.p95.map_or("-".into(), |v| format!("{} ms", ms(v)))
        )),
    ])
}

/// The live release's watch, when it regressed or is still watching (at most two lines).
fn watch_lines(state: &State, d: &MonitorData, theme: &Theme) -> Vec<Line<'static>> {
    let Some(w) = d.watch.as_ref().or(state.data.watch.as_ref()) else {
        return Vec::new();
    };
    let (text, style) = match w.status {
        WatchStatus::Regressed => (
            format!(
                "⚠ The live release regressed after its promotion: {}",
                w.reasons.join("; ")
            ),
            theme.bad().add_modifier(Modifier::BOLD),
        ),
        WatchStatus::Watching => (
            format!("◌ Watch: the live release is {}", w.summary()),
            theme.warn(),
        ),
        _ => return Vec::new(),
    };
    let width = state.width.saturating_sub(2) as usize;
    super::detail::wrap(&text, width.saturating_sub(2))
        .into_iter()
        .take(2)
        .enumerate()
        .map(|(i, l)| {
            let indent = if i == 0 { " " } else { "   " };
            Line::from(Span::styled(format!("{indent}{l}"), style))
        })
        .collect()
}

fn charts(frame: &mut Frame, d: &MonitorData, theme: &Theme, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    latency(frame, d, theme, left);
    let [qps_area, err_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
    let qps: Vec<u64> = d
        .series
        .iter()
        .map(|p| (p.qps * 100.0).round() as u64)
        .collect();
    let errs: Vec<u64> = (d.series.iter())
        .map(|p| (p.error_rate * 10_000.0).round() as u64)
        .collect();
    let peak_qps = qps.iter().max().copied().unwrap_or(0) as f64 / 100.0;
    let peak_err = errs.iter().max().copied().unwrap_or(0) as f64 / 100.0;
    sparkline(
        frame,
        &qps,
        &format!(" queries/s · peak {} ", compact(peak_qps)),
        theme.fg(Color::Cyan),
        theme,
        qps_area,
    );
    sparkline(
        frame,
        &errs,
        &format!(" errors · peak {peak_err:.1}% "),
        theme.bad(),
        theme,
        err_area,
    );
}

fn sparkline(
    frame: &mut Frame,
    values: &[u64],
    title: &str,
    style: Style,
    theme: &Theme,
    area: Rect,
) {
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(Span::styled(title.to_string(), theme.bold()));
    let width = block.inner(area).width as usize;
    let data = pool(values, width);
    frame.render_widget(
        Sparkline::default().block(block).data(&data).style(style),
        area,
    );
}

fn latency(frame: &mut Frame, d: &MonitorData, theme: &Theme, area: Rect) {
    let pick = |f: fn(&SeriesPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        (d.series.iter().enumerate())
            .filter_map(|(i, p)| f(p).map(|v| (i as f64, v)))
            .collect()
    };
    let p50 = pick(|p| p.p50);
    let p95 = pick(|p| p.p95);
    let p99 = pick(|p| p.p99);
    let max = (p99.iter().chain(&p95).chain(&p50))
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(0.1)
        * 1.1;
    let n = d.series.len().max(2) as f64 - 1.0;
    let span = d.window.length().num_seconds();
    // Each percentile has its own colour and, under NO_COLOR, its own marker; the title is
    // the legend that names them.
    let p99_marker = if theme.color {
        Marker::Braille
    } else {
        Marker::Bar
    };
    let (p50_style, p95_style, p99_style) = (
        theme.fg(Color::Green),
        theme.fg(Color::Yellow),
        theme.fg(Color::Red),
    );
    let datasets = vec![
        Dataset::default()
            .name("p50")
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(p50_style)
            .data(&p50),
        Dataset::default()
            .name("p95")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(p95_style)
            .data(&p95),
        Dataset::default()
            .name("p99")
            .marker(p99_marker)
            .graph_type(if theme.color {
                GraphType::Line
            } else {
                GraphType::Scatter
            })
            .style(p99_style)
            .data(&p99),
    ];
    let p99_glyph = if theme.color { "⠤⠤" } else { "▄▄" };
    let legend = Line::from(vec![
        Span::styled(" latency ms ", theme.bold()),
        Span::styled("• p50", p50_style.add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled("⠤⠤ p95", p95_style.add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled(
            format!("{p99_glyph} p99 "),
            p99_style.add_modifier(Modifier::BOLD),
        ),
    ]);
    let chart = Chart::new(datasets)
        .block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.dim())
                .title(legend),
        )
        .x_axis(
            Axis::default()
                .bounds([0.0, n.max(1.0)])
                .labels(vec![
                    Line::from(ago(span)),
                    Line::from(ago(span / 2)),
                    Line::from(ago(0)),
                ])
                .style(theme.dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, max])
                .labels(y_labels(max, compact))
                .style(theme.dim()),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

fn plan(frame: &mut Frame, m: &MonitorState, d: &MonitorData, theme: &Theme, area: Rect) {
    let Some(q) = m.selected_query() else {
        return;
    };
    let width = area.width.saturating_sub(2) as usize;
    let mut lines = vec![Line::from(Span::styled(
        format!(" ▸ {}", format::clip(&q.text, width.saturating_sub(3))),
        theme.bold(),
    ))];
    let label = |k: &str| Span::styled(format!(" {k:<6}"), theme.dim());
    match m.selected_plan() {
        None => lines.push(Line::from(Span::styled(" reading the plan…", theme.dim()))),
        Some(Err(e)) => lines.push(Line::from(Span::styled(format!(" {e}"), theme.bad()))),
        Some(Ok(p)) => {
            if let Some(e) = &p.error {
                lines.push(Line::from(vec![
                    label("plan"),
                    Span::styled(e.clone(), theme.dim()),
                ]));
            } else if p.lines.is_empty() {
                lines.push(Line::from(vec![
                    label("plan"),
                    Span::styled("reads no table", theme.dim()),
                ]));
            } else {
                let steps: Vec<&str> = p.lines.iter().map(|l| l.trim()).collect();
                lines.push(Line::from(vec![
                    label("plan"),
                    Span::raw(format::clip(&steps.join(" · "), width.saturating_sub(7))),
                ]));
            }
            match &p.suggestion {
                Some(s) => {
                    let file = s.file.as_deref().unwrap_or("the next migration");
                    let sql = format!("{};", s.sql);
                    let hint = format!("  i writes {file}");
                    if sql.chars().count() + hint.chars().count() + 7 <= width {
                        lines.push(Line::from(vec![
                            label("index"),
                            Span::styled(sql, theme.ok()),
                            Span::styled(hint, theme.key()),
                        ]));
                    } else {
                        lines.push(Line::from(vec![
                            label("index"),
                            Span::styled(sql, theme.ok()),
                        ]));
                        lines.push(Line::from(vec![
                            label(""),
                            Span::styled(
                                format::clip(hint.trim(), width.saturating_sub(7)),
                                theme.key(),
                            ),
                        ]));
                    }
                }
                None if p.error.is_none() && p.scans.is_empty() => lines.push(Line::from(vec![
                    label("index"),
                    Span::styled("none needed: no table is scanned", theme.dim()),
                ])),
                None if p.error.is_none() => lines.push(Line::from(vec![
                    label("index"),
                    Span::styled(
                        format!(
                            "scans {}, but no simple index on its compared columns would help",
                            p.scans.join(", ")
                        ),
                        theme.dim(),
                    ),
                ])),
                None => {}
            }
        }
    }
    if let Some(e) = d
        .errors
        .iter()
        .find(|e| e.fingerprint_id == q.fingerprint_id)
    {
        lines.push(Line::from(vec![
            label("error"),
            Span::styled(
                format::clip(
                    &format!("{}: {}", e.code, e.message),
                    width.saturating_sub(7),
                ),
                theme.bad(),
            ),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), area);
}
