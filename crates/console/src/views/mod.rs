//! The renderer: draws a [`State`] into a ratatui frame. Views never write state and
//! never call the engine; they take plain data (releases, environments, audit events)
//! from the state, so a frame can be drawn from model structs alone (tests, benchmarks).
//!
//! Lists build rows only for what is visible; every time shown comes from `State::now`.
pub mod capacity;
mod charts;
mod code;
pub mod detail;
pub mod dialog;
pub mod fit;
pub mod help;
pub mod layout;
pub mod lists;
pub mod monitor;
mod overlays;
mod probes;
mod queries;
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

/// Below this size the console draws one line saying the size it needs.
pub const MIN_WIDTH: u16 = 50;
pub const MIN_HEIGHT: u16 = 12;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Draws the whole console.
pub fn draw(frame: &mut Frame, state: &State) {
    let area = frame.area();
    let theme = Theme { color: state.color };
    let r = layout::regions(area.width, area.height);
    if area.height < MIN_HEIGHT || area.width < MIN_WIDTH {
        let text = format!(
            "d1ops needs at least {MIN_WIDTH}×{MIN_HEIGHT} (this terminal is {}×{})",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
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
    if let Some(i) = state.alerts_open {
        overlays::alerts(frame, state, i, &theme, r.body);
    }
    if let Some(p) = &state.palette {
        overlays::palette(frame, state, p, &theme, r.body);
    }
    if let Some(scroll) = state.help {
        help::help(frame, state, scroll, &theme, area);
    }
    if state.dialog.is_some() || state.help.is_some() {
        // Toasts never stack over a dialog: the newest takes the key-hint line instead.
        toast_line(frame, state, &theme, r.footer);
    } else {
        toasts(frame, state, &theme, r.body);
    }
}

/// The newest toast as one line (while a dialog is open).
fn toast_line(frame: &mut Frame, state: &State, theme: &Theme, area: Rect) {
    let Some(t) = state.toasts.last() else {
        return;
    };
    let (mark, style) = match t.kind {
        ToastKind::Success => ("✓", theme.ok()),
        ToastKind::Error => ("✗", theme.bad()),
        ToastKind::Info => ("i", theme.dim()),
    };
    let text = format::clip(&format!(" {mark} {}", t.text), area.width as usize);
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(Span::styled(text, style)), area);
}

/// The header: what must stay at any width (the name, the alert count, the READ-ONLY badge
/// and who acts) first; then, as the width allows, production's live release (cut, then
/// whole), the spinner, the clock, the backend and the workspace.
fn header(frame: &mut Frame, state: &State, theme: &Theme, area: Rect) {
    let bar = theme.header_bar();
    frame.render_widget(Block::new().style(bar), area);
    let width = area.width as usize;
    let wide = width >= 100;
    let alerts = state.alerts();
    let alert_style = if alerts > 0 {
        theme.bad().add_modifier(Modifier::BOLD)
    } else {
        bar
    };
    let must = |s: &str| s.chars().count();
    let name = " d1ops ";
    let actor = format!("│ as {} ", format::clip(&state.info.actor, 12));
    let alerts_text = format!("│ alerts {alerts} ");
    let badge = if state.info.readonly {
        " READ-ONLY "
    } else {
        ""
    };
    let mut left_room =
        width.saturating_sub(must(name) + must(&actor) + must(&alerts_text) + must(badge));
    let mut take = |w: usize| {
        if w <= left_room {
            left_room -= w;
            true
        } else {
            false
        }
    };
    let live_id = state.live_release().unwrap_or("none");
    let live_short = format!("│ live {} ", format::clip(live_id, 10));
    let show_live = take(must(&live_short));
    let spinner = state.in_flight.front().map(|label| {
        let glyph = SPINNER[state.spinner % SPINNER.len()];
        match &state.stage {
            Some(stage) => (format!("{glyph} "), format!("{glyph} {label}: {stage}… ")),
            None => (format!("{glyph} "), format!("{glyph} {label}… ")),
        }
    });
    let show_glyph = spinner.as_ref().is_some_and(|(g, _)| take(must(g)));
    // The whole live id before the clock: the id is what an operator acts on.
    let live_full = format!("│ live {live_id} ");
    let live = if show_live && take(must(&live_full) - must(&live_short)) {
        live_full
    } else if show_live {
        live_short
    } else {
        String::new()
    };
    let clock_short = state.now.format("%H:%M:%S ").to_string();
    let clock_minutes = state.now.format("%H:%M ").to_string();
    let show_clock = take(must(&clock_short));
    let clock_minutes = (!show_clock && take(must(&clock_minutes))).then_some(clock_minutes);
    let spin_text = match &spinner {
        Some((g, full)) if show_glyph && take(must(full) - must(g)) => full.clone(),
        Some((g, _)) if show_glyph => g.clone(),
        _ => String::new(),
    };
    let backend = backend_label(&state.info.backend, state.info.account.as_deref(), wide)
        .map(|l| format!("│ {l} "))
        .filter(|l| take(must(l)));
    let clock_long = format!("{} ", format::clock(state.now));
    let clock = if show_clock && wide && take(must(&clock_long) - must(&clock_short)) {
        clock_long
    } else if show_clock {
        clock_short
    } else {
        clock_minutes.unwrap_or_default()
    };
    let ws = &state.info.workspace;
    let n = ws.chars().count();
    let ws = if n < left_room {
        format!("{ws} ")
    } else if left_room >= 6 {
        let keep = left_room - 2;
        format!("…{} ", ws.chars().skip(n - keep).collect::<String>())
    } else {
        String::new()
    };
    let mut left = vec![
        Span::styled(name, bar.add_modifier(Modifier::BOLD)),
        Span::styled(ws, bar),
    ];
    if let Some(b) = backend {
        left.push(Span::styled(b, bar));
    }
    left.push(Span::styled(live, bar));
    left.push(Span::styled(actor, bar));
    left.push(Span::styled(alerts_text, alert_style));
    if state.info.readonly {
        left.push(Span::styled(
            badge,
            theme
                .warn()
                .add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
    }
    let right = vec![
        Span::styled(spin_text, bar.add_modifier(Modifier::BOLD)),
        Span::styled(clock, bar),
    ];
    let right_w: u16 = right.iter().map(|s| s.width() as u16).sum();
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

/// The key-hint bar: every key of the current view, its words shortened (then left out)
/// before any key is dropped; `? help` and `q` are kept last.
fn footer(frame: &mut Frame, state: &State, theme: &Theme, area: Rect) {
    let entries = super::keymap::footer(state);
    let spans = footer_spans(&entries, area.width as usize, theme);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The footer at the first level of detail that fits `width`.
pub fn footer_spans(
    entries: &[(String, &'static str)],
    width: usize,
    theme: &Theme,
) -> Vec<Span<'static>> {
    let keep = entries.len().saturating_sub(2);
    let width_of = |(k, d): &(String, String)| {
        k.chars().count()
            + 1
            + if d.is_empty() {
                0
            } else {
                d.chars().count() + 2
            }
    };
    let total = |items: &[(String, String)]| items.iter().map(width_of).sum::<usize>();
    let mut chosen: Vec<(String, String)> = (entries.iter())
        .map(|(k, d)| (k.clone(), d.to_string()))
        .collect();
    if total(&chosen) > width {
        chosen = (entries.iter())
            .map(|(k, d)| (k.clone(), super::keymap::short_desc(d).to_string()))
            .collect();
    }
    // Then the words go, from the end of the view's own keys (navigation such as `/` and
    // Enter speaks for itself; the actions listed first keep theirs longest).
    let mut i = keep;
    while total(&chosen) > width && i > 0 {
        i -= 1;
        chosen[i].1.clear();
    }
    // Still too wide: drop keys from the end of the view's own, keeping help and quit.
    while chosen.iter().map(width_of).sum::<usize>() > width && chosen.len() > 2 {
        let at = chosen.len().saturating_sub(3);
        chosen.remove(at);
    }
    chosen
        .into_iter()
        .flat_map(|(keys, desc)| {
            let desc = if desc.is_empty() {
                String::new()
            } else {
                format!(" {desc} ")
            };
            [
                Span::styled(format!(" {keys}"), theme.key()),
                Span::raw(desc),
            ]
        })
        .collect()
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
