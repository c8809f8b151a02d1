//! The `?` help overlay, generated from the keymap (so it always matches the keys), in
//! two columns when the terminal is wide enough. Read-only mode lists no actions.
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::theme::Theme;
use crate::keymap;
use crate::model::ReleaseState;
use crate::state::State;

type Lines = Vec<Line<'static>>;

fn help_lines(state: &State, theme: &Theme) -> Lines {
    let mut out = Vec::new();
    for (ctx, rows) in keymap::help_sections(state.info.readonly) {
        out.push(Line::from(Span::styled(
            format!(" {}", ctx.title()),
            theme.title(),
        )));
        for (keys, desc) in rows {
            out.push(Line::from(vec![
                Span::styled(format!("  {keys:<14}"), theme.key()),
                Span::raw(desc),
            ]));
        }
    }
    out.push(Line::from(Span::styled(" Mouse", theme.title())));
    out.push(Line::from("  wheel         scroll"));
    out.push(Line::from("  click         tab, row (twice: open), view"));
    out.push(Line::from("  click header  the alerts list"));
    out.push(Line::from(Span::styled(" Commands (:)", theme.title())));
    for c in crate::palette::COMMANDS {
        if state.info.readonly && keymap::DANGEROUS_COMMANDS.contains(&c.name) {
            continue;
        }
        let arg = match c.arg {
            crate::palette::Arg::None => "",
            crate::palette::Arg::Release => " ID",
            crate::palette::Arg::Env => " NAME",
            crate::palette::Arg::Window => " [W]",
        };
        out.push(Line::from(vec![
            Span::styled(
                format!("  {:<14}", format!(":{}{arg}", c.name)),
                theme.key(),
            ),
            Span::raw(c.desc),
        ]));
    }
    out.push(Line::from(Span::styled(" Release states", theme.title())));
    for (s, what) in STATES {
        out.push(Line::from(vec![
            Span::styled(
                format!("  {:<14}", crate::format::state_marker(s)),
                theme.release_state(s),
            ),
            Span::raw(what),
        ]));
    }
    if state.info.readonly {
        out.push(Line::from(Span::styled(
            " Read-only: actions are hidden.",
            theme.warn(),
        )));
    }
    out
}

/// The release states, in lifecycle order, with what each means.
const STATES: [(ReleaseState, &str); 11] = [
    (ReleaseState::Previewing, "the gate runs on its preview"),
    (ReleaseState::Ready, "the gate passed; needs approval"),
    (
        ReleaseState::Blocked,
        "the gate failed (Gate view says why)",
    ),
    (ReleaseState::Approved, "approved enough; can be promoted"),
    (ReleaseState::Promoting, "being promoted now"),
    (ReleaseState::Live, "what production runs"),
    (
        ReleaseState::Superseded,
        "was live; a newer release replaced it",
    ),
    (
        ReleaseState::RolledBack,
        "was live; code rolled back (R), schema kept",
    ),
    (
        ReleaseState::Reverted,
        "its migrations undone by a restore (S)",
    ),
    (
        ReleaseState::Failed,
        "its promotion failed; production unchanged",
    ),
    (ReleaseState::Abandoned, "never to be promoted"),
];

fn help_geometry(area: Rect) -> (Rect, bool) {
    let width = area.width.saturating_sub(4).min(110);
    let height = area.height.saturating_sub(2);
    let rect = Rect::new((area.width - width) / 2, 1, width, height);
    (rect, width >= 76)
}

/// Where the help's second column starts: the section heading that best balances the
/// two columns.
fn split_point(lines: &Lines) -> usize {
    let n = lines.len();
    (1..n)
        .filter(|&i| lines[i].spans.len() == 1 && !lines[i].spans[0].content.starts_with("  "))
        .min_by_key(|&i| i.max(n - i))
        .unwrap_or(n.div_ceil(2))
}

/// The help's columns (one, or two when wide), each wrapped to its width so no
/// description is cut (continuations indented under the descriptions).
fn columns(state: &State, theme: &Theme, inner: Rect, two: bool) -> Vec<Lines> {
    let lines = help_lines(state, theme);
    let indent = " ".repeat(16);
    if two {
        let half = split_point(&lines);
        let w = (inner.width / 2) as usize;
        let right_w = (inner.width as usize).saturating_sub(w);
        let right = lines[half.min(lines.len())..].to_vec();
        let left = lines.into_iter().take(half).collect();
        vec![
            super::fit::wrap_lines(left, w.saturating_sub(1), &indent),
            super::fit::wrap_lines(right, right_w.saturating_sub(1), &indent),
        ]
    } else {
        vec![super::fit::wrap_lines(
            lines,
            (inner.width as usize).saturating_sub(1),
            &indent,
        )]
    }
}

fn inner_of(rect: Rect) -> Rect {
    Block::new().borders(Borders::ALL).inner(rect)
}

/// The largest useful scroll of the help overlay.
pub fn help_max_scroll(state: &State) -> usize {
    let (rect, two) = help_geometry(Rect::new(0, 0, state.width, state.height));
    let inner = inner_of(rect);
    let rows = (columns(state, &Theme { color: false }, inner, two).iter())
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    rows.saturating_sub(inner.height as usize)
}

/// Draws the help overlay.
pub fn help(frame: &mut Frame, state: &State, scroll: usize, theme: &Theme, area: Rect) {
    let (rect, two) = help_geometry(area);
    frame.render_widget(Clear, rect);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.title())
        .title(Span::styled(" Keys — Esc closes ", theme.title()));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let cols = columns(state, theme, inner, two);
    let n = cols.len() as u16;
    let w = inner.width / n.max(1);
    for (i, col) in cols.into_iter().enumerate() {
        let x = inner.x + w * i as u16;
        let width = if i as u16 + 1 == n {
            inner.width - w * i as u16
        } else {
            w
        };
        let visible: Lines = col.into_iter().skip(scroll).collect();
        frame.render_widget(Paragraph::new(visible), Rect { x, width, ..inner });
    }
}
