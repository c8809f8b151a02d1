//! The renderer: draws a [`State`] into a ratatui frame. Views never write state and
//! never call the engine; they take plain data (releases, environments, audit events)
//! from the state, so a frame can be drawn from model structs alone (tests, benchmarks).
//!
//! Lists build rows only for what is visible; every time shown comes from `State::now`.
pub mod capacity;
mod charts;
pub mod detail;
pub mod dialog;
pub mod help;
pub mod layout;
pub mod lists;
pub mod monitor;
mod probes;
pub mod sql;
pub mod theme;

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::format;
use super::state::{State, Tab, ToastKind};
use theme::Theme;

pub use detail::line_count as detail_line_count;
pub use help::help_max_scroll;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Draws the whole console.
pub fn draw(frame: &mut Frame, state: &State) {
    let area = frame.area();
    let theme = Theme { color: state.color };
    let r = layout::regions(area.width, area.height);
    if area.height < 6 || area.width < 30 {
        frame.render_widget(Paragraph::new("d1ops: the terminal is too small"), area);
        return;
    }
    header(frame, state, &theme, r.header);
    tabs(frame, state, &theme, r.tabs);
    match (&state.detail, state.tab) {
        (Some(d), _) => detail::draw(frame, state, d, &theme, r.body),
        (None, Tab::Environments) => lists::environments(frame, state, &theme, r.body),
        (None, Tab::Releases) => lists::releases(frame, state, &theme, r.body),
        (None, Tab::Audit) => lists::audit(frame, state, &theme, r.body),
        (None, Tab::Monitor) => monitor::draw(frame, state, &theme, r.body),
        (None, Tab::Capacity) => capacity::draw(frame, state, &theme, r.body),
    }
    footer(frame, state, &theme, r.footer);
    if let Some(d) = &state.dialog {
        dialog::draw(frame, state, d, &theme, r.body);
    }
    if let Some(scroll) = state.help {
        help::help(frame, state, scroll, &theme, area);
    }
    toasts(frame, state, &theme, r.body);
}

fn header(frame: &mut Frame, state: &State, theme: &Theme, area: Rect) {
    let bar = theme.header_bar();
    frame.render_widget(Block::new().style(bar), area);
    let wide = area.width >= 100;
    let clock = if wide {
        format::clock(state.now)
    } else {
        state.now.format("%H:%M:%S").to_string()
    };
    let mut right: Vec<Span> = Vec::new();
    if let Some(label) = state.in_flight.front() {
        let frame_no = SPINNER[state.spinner % SPINNER.len()];
        right.push(Span::styled(
            format!("{frame_no} {label}… "),
            bar.add_modifier(Modifier::BOLD),
        ));
    }
    right.push(Span::styled(format!("{clock} "), bar));
    let right_w: u16 = right.iter().map(|s| s.width() as u16).sum();
    let live = state.live_release().unwrap_or("none");
    let alerts = state.alerts();
    let alert_style = if alerts > 0 {
        theme.bad().add_modifier(Modifier::BOLD)
    } else {
        bar
    };
    let mut tail = Vec::new();
    if let Some(label) = backend_label(&state.info.backend, state.info.account.as_deref(), wide) {
        tail.push(Span::styled(format!("│ {label} "), bar));
    }
    tail.push(Span::styled(format!("│ live {live} │ "), bar));
    tail.push(Span::styled(format!("alerts {alerts} "), alert_style));
    if state.info.readonly {
        tail.push(Span::styled(
            " READ-ONLY ",
            theme
                .warn()
                .add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
    }
    let tail_w: usize = tail.iter().map(|s| s.width()).sum();
    let room = (area.width.saturating_sub(right_w) as usize)
        .saturating_sub(tail_w + 9)
        .max(4);
    let ws = &state.info.workspace;
    let n = ws.chars().count();
    let ws = if n > room {
        format!("…{}", ws.chars().skip(n + 1 - room).collect::<String>())
    } else {
        ws.clone()
    };
    let mut left = vec![
        Span::styled(" d1ops ", bar.add_modifier(Modifier::BOLD)),
        Span::styled(format!("{ws} "), bar),
    ];
    left.extend(tail);
    let left_w = area.width.saturating_sub(right_w);
    frame.render_widget(
        Paragraph::new(Line::from(left)).style(bar),
        Rect {
            width: left_w,
            ..area
        },
    );
    let right_area = Rect {
        x: area.x + left_w,
        width: area.width - left_w,
        ..area
    };
    frame.render_widget(
        Paragraph::new(Line::from(right)).alignment(Alignment::Right),
        right_area,
    );
}

/// Which backend (and Cloudflare account) the console talks to: `cloudflare · acct
/// 0123…cdef` when wide, `cf …cdef` when narrow; the local backend is named only when wide.
pub fn backend_label(backend: &str, account: Option<&str>, wide: bool) -> Option<String> {
    let chars: Vec<char> = account.unwrap_or("").trim().chars().collect();
    let end = |n: usize| {
        chars[chars.len().saturating_sub(n)..]
            .iter()
            .collect::<String>()
    };
    match (account, wide) {
        (Some(_), true) if chars.len() > 10 => Some(format!(
            "{backend} · acct {}…{}",
            chars[..4].iter().collect::<String>(),
            end(4)
        )),
        (Some(_), true) => Some(format!("{backend} · acct {}", end(10))),
        (Some(_), false) if chars.len() > 4 => Some(format!("cf …{}", end(4))),
        (Some(_), false) => Some(format!("cf {}", end(4))),
        (None, true) => Some(backend.to_string()),
        (None, false) => None,
    }
}

fn tabs(frame: &mut Frame, state: &State, theme: &Theme, area: Rect) {
    let spans: Vec<Span> = Tab::ALL
        .iter()
        .map(|&t| {
            let style = if t == state.tab {
                theme.title().add_modifier(Modifier::REVERSED)
            } else {
                theme.dim()
            };
            Span::styled(layout::tab_label(t), style)
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn footer(frame: &mut Frame, state: &State, theme: &Theme, area: Rect) {
    let entries = super::keymap::footer(state);
    let width = |(k, d): &(String, &str)| k.chars().count() + d.chars().count() + 3;
    // The last two entries are `? help` and `q back/quit` where they apply: keep them.
    let keep = entries.len().saturating_sub(2);
    let reserved: usize = entries[keep..].iter().map(width).sum();
    let mut used = reserved;
    let mut shown = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if i >= keep || used + width(e) <= area.width as usize {
            if i < keep {
                used += width(e);
            }
            shown.push(e);
        }
    }
    let spans: Vec<Span> = shown
        .into_iter()
        .flat_map(|(keys, desc)| {
            [
                Span::styled(format!(" {keys}"), theme.key()),
                Span::raw(format!(" {desc} ")),
            ]
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn toasts(frame: &mut Frame, state: &State, theme: &Theme, body: Rect) {
    let mut bottom = body.y + body.height;
    for t in state.toasts.iter().rev() {
        let width = (t.text.chars().count() as u16 + 4)
            .clamp(30, body.width.saturating_sub(2).max(30))
            .min(body.width);
        let inner = width.saturating_sub(2).max(1) as usize;
        let lines = t.text.chars().count().div_ceil(inner).clamp(1, 5) as u16;
        let height = lines + 2;
        if bottom < body.y + height {
            break;
        }
        bottom -= height;
        let area = Rect::new(body.x + body.width - width, bottom, width, height);
        let (title, style) = match t.kind {
            ToastKind::Success => (" ✓ done ", theme.ok()),
            ToastKind::Error => (" ✗ error ", theme.bad()),
            ToastKind::Info => (" info ", theme.dim()),
        };
        frame.render_widget(Clear, area);
        let block = Block::new()
            .borders(Borders::ALL)
            .border_style(style)
            .title(Span::styled(title, style));
        frame.render_widget(
            Paragraph::new(t.text.as_str())
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
    }
}
