//! The two small overlays: the alerts list (`!`: what, since when, Enter goes there) and the
//! command palette (`:`: the typed command and its completions).
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::fit;
use super::theme::Theme;
use crate::format;
use crate::palette::{self, Palette};
use crate::state::State;

/// A box `height` lines tall near the top of `body`, as wide as it allows (up to 100).
fn boxed(body: Rect, height: u16) -> Rect {
    let width = body.width.saturating_sub(2).min(100);
    let height = height.min(body.height);
    Rect::new(body.x + (body.width - width) / 2, body.y, width, height)
}

fn block(title: &str, theme: &Theme) -> Block<'static> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.title())
        .title(Span::styled(title.to_string(), theme.title()))
}

/// The alerts list.
pub fn alerts(frame: &mut Frame, state: &State, selected: usize, theme: &Theme, body: Rect) {
    let list = crate::alerts::list(state);
    let inner_w = body.width.saturating_sub(4).min(98) as usize;
    let mut lines: Vec<Line<'static>> = Vec::new();
    if list.is_empty() {
        lines.push(Line::from(Span::styled(
            " Nothing needs attention.",
            theme.ok(),
        )));
    }
    for (i, a) in list.iter().enumerate() {
        let since = match &a.since {
            Some(t) if t.len() > 10 => format!("{} ago", format::age(t, state.now)),
            Some(day) => format!("since {day}"),
            None => String::new(),
        };
        let go = match &a.go {
            crate::alerts::Go::Tab(t) => t.title().to_string(),
            crate::alerts::Go::Release(_) => "release".to_string(),
            crate::alerts::Go::Limit(_) => "Capacity".to_string(),
        };
        let style = if i == selected {
            theme.selected()
        } else {
            theme.bad()
        };
        let line = Line::from(vec![
            Span::styled(format!(" ! {}", a.what), style),
            Span::styled(format!("  {since} → {go}"), theme.dim()),
        ]);
        lines.extend(fit::wrap_line(line, inner_w, "     "));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        " Enter goes there · Esc closes",
        theme.dim(),
    )));
    let area = boxed(body, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    let title = format!(" Alerts ({}) ", list.len());
    frame.render_widget(Paragraph::new(lines).block(block(&title, theme)), area);
}

/// The command palette.
pub fn palette(frame: &mut Frame, state: &State, p: &Palette, theme: &Theme, body: Rect) {
    let options = palette::completions(state, &p.input);
    let room = body.height.saturating_sub(4).max(1) as usize;
    let selected = p.selected.min(options.len().saturating_sub(1));
    let start = selected.saturating_sub(room.saturating_sub(1));
    let mut lines = vec![Line::from(vec![
        Span::styled(" :", theme.key()),
        Span::raw(p.input.clone()),
        Span::styled("█", theme.key()),
    ])];
    for (i, o) in options.iter().enumerate().skip(start).take(room) {
        let name = o.split_whitespace().next().unwrap_or("");
        let desc = (palette::COMMANDS.iter())
            .find(|c| c.name == name)
            .map_or("", |c| c.desc);
        let style = if i == selected {
            theme.selected()
        } else {
            Style::new()
        };
        let text = if o.trim() == name {
            format!("  {:<14} {desc}", o.trim())
        } else {
            format!("  {}", o.trim())
        };
        let room = body.width.saturating_sub(4).min(98) as usize;
        lines.push(Line::from(Span::styled(format::clip(&text, room), style)));
    }
    if options.is_empty() {
        lines.push(Line::from(Span::styled(
            "  no match — Esc closes",
            theme.dim(),
        )));
    }
    let area = boxed(body, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    let title = " Command — Tab completes, Enter runs ";
    frame.render_widget(Paragraph::new(lines).block(block(title, theme)), area);
}
