//! The Monitor's two tables: the top queries (the query text takes what the numbers leave,
//! columns dropped by priority on narrow terminals) and the recent errors (when, query,
//! error), as `d1ops monitor` prints them.
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::charts::{compact, ms};
use super::fit::{self, Col, FILL};
use super::theme::Theme;
use crate::engine::MonitorData;
use crate::format;
use crate::state::{MonitorState, State, order_label};

/// The top queries' columns: the query text takes what the numbers leave.
fn top_columns() -> [Col; 6] {
    [
        fit::col("QUERY", 12, FILL, 0),
        fit::right("COUNT", 6, 6, 1),
        fit::right("ERR", 5, 5, 2),
        fit::right("P95(ms)", 8, 8, 1),
        fit::right("TOTAL(ms)", 9, 9, 3),
        fit::right("ROWS READ", 10, 10, 4),
    ]
}

pub(super) fn top_table(
    frame: &mut Frame,
    m: &MonitorState,
    d: &MonitorData,
    theme: &Theme,
    area: Rect,
) {
    let cols = top_columns();
    let widths = fit::widths(&cols, area.width.saturating_sub(1));
    let title = format!("TOP BY {}", order_label(m.order).to_uppercase());
    let heads: Vec<(String, Style)> = (cols.iter().enumerate())
        .map(|(i, c)| {
            let h = if i == 0 {
                title.clone()
            } else {
                c.head.to_string()
            };
            (h, theme.bold())
        })
        .collect();
    let mut head = vec![Span::raw(" ")];
    head.extend(fit::text_row(&cols, &widths, heads));
    let mut lines = vec![Line::from(head)];
    if d.top.is_empty() {
        lines.push(Line::from(Span::styled(
            " no failing queries in this window",
            theme.dim(),
        )));
    }
    let rows = area.height.saturating_sub(1) as usize;
    let offset = m.selected.saturating_sub(rows.saturating_sub(1));
    for (i, q) in d.top.iter().enumerate().skip(offset).take(rows) {
        let mut style = if q.errors > 0 {
            theme.warn()
        } else {
            Style::new()
        };
        if i == m.selected {
            style = theme.selected();
        }
        let text = if q.source == "d1ops" {
            format!("[d1ops] {}", q.text)
        } else {
            q.text.clone()
        };
        let cells = vec![
            (text, style),
            (compact(q.count as f64), style),
            (compact(q.errors as f64), style),
            // Unknown is not zero: `–` when D1 gave no distribution.
            (q.p95_ms.map_or_else(|| "–".to_string(), ms), style),
            (ms(q.total_ms), style),
            (compact(q.rows_read as f64), style),
        ];
        let mut spans = vec![Span::styled(" ", style)];
        spans.extend(fit::text_row(&cols, &widths, cells));
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// The newest errors of the environment (time, query, error), as `d1ops monitor` prints them.
pub(super) fn errors_panel(
    frame: &mut Frame,
    state: &State,
    d: &MonitorData,
    theme: &Theme,
    area: Rect,
) {
    let cols = [
        fit::col("AGE", 4, 5, 0),
        fit::col("QUERY", 10, FILL, 1),
        fit::col("ERROR", 14, FILL, 0),
    ];
    let widths = fit::widths(&cols, area.width.saturating_sub(1));
    let heads: Vec<(String, Style)> = vec![
        ("AGO".to_string(), theme.bold()),
        (format!("RECENT ERRORS ({})", d.errors.len()), theme.bold()),
        ("ERROR".to_string(), theme.bold()),
    ];
    let mut head = vec![Span::raw(" ")];
    head.extend(fit::text_row(&cols, &widths, heads));
    let mut lines = vec![Line::from(head)];
    for e in d.errors.iter().take(area.height.saturating_sub(1) as usize) {
        let at = e.at.to_rfc3339();
        let query = if e.text.is_empty() {
            e.fingerprint_id.clone()
        } else {
            e.text.clone()
        };
        let cells = vec![
            (format::age(&at, state.now), theme.dim()),
            (query, Style::new()),
            (format!("{}: {}", e.code, e.message), theme.bad()),
        ];
        let mut spans = vec![Span::raw(" ")];
        spans.extend(fit::text_row(&cols, &widths, cells));
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), area);
}
