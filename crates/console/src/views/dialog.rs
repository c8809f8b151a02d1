//! Overlays: the shared confirmation dialog (approve, promote, abandon) and the cleanup
//! dialog.
//!
//! The confirmation spells out the target, keeps Cancel focused until the operator moves
//! focus, and for promote shows the gate summary and what will change.
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::fit;
use super::theme::Theme;
use crate::dialog::{CleanupDialog, Confirm, ConfirmAction, Dialog, Focus, IndexDialog};
use crate::format;
use crate::model::{CheckStatus, Verdict};
use crate::state::State;

type Lines = Vec<Line<'static>>;

/// Draws the open dialog centred over the body.
pub fn draw(frame: &mut Frame, state: &State, dialog: &Dialog, theme: &Theme, body: Rect) {
    let width = body.width.saturating_sub(4).min(90);
    let max_h = body.height.saturating_sub(1) as usize;
    let (title, lines) = match dialog {
        Dialog::Confirm(c) => (
            format!(" {} release ", c.action.verb()),
            confirm_lines(state, c, theme, width as usize, max_h),
        ),
        Dialog::Cleanup(c) => (
            " Clean up stale previews ".to_string(),
            cleanup_lines(c, theme, width as usize, max_h),
        ),
        Dialog::Index(c) => (
            " Write suggested index ".to_string(),
            index_lines(c, theme, width as usize),
        ),
        Dialog::Quit(q) => (" Quit? ".to_string(), quit_lines(q, theme)),
        Dialog::Undo(u) => (
            " Undo the last restore ".to_string(),
            undo_lines(u, theme, width as usize, max_h),
        ),
    };
    let lines = fit::wrap_lines(lines, width.saturating_sub(2) as usize, fit::CONTINUED);
    let height = (lines.len() as u16 + 2).min(body.height);
    let area = Rect::new(
        body.x + (body.width - width) / 2,
        body.y + (body.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.title())
        .title(Span::styled(title, theme.title()));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn button(label: &str, focused: bool, enabled: bool, theme: &Theme) -> Span<'static> {
    let mut style = Style::new();
    if !enabled {
        style = theme.dim();
    }
    if focused {
        style = style.add_modifier(Modifier::REVERSED | Modifier::BOLD);
    }
    let label = if enabled {
        label.to_string()
    } else {
        format!("{label} (disabled)")
    };
    let text = if focused {
        format!("▶ {label} ◀")
    } else {
        format!("  {label}  ")
    };
    Span::styled(text, style)
}

fn buttons_labeled((cancel, confirm): (&str, &str), focus: Focus, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::raw("   "),
        button(cancel, focus == Focus::Cancel, true, theme),
        Span::raw("   "),
        button(confirm, focus == Focus::Confirm, true, theme),
    ])
}

fn buttons(confirm: &str, focus: Focus, enabled: bool, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::raw("   "),
        button("Cancel", focus == Focus::Cancel, true, theme),
        Span::raw("   "),
        button(confirm, focus == Focus::Confirm, enabled, theme),
    ])
}

fn confirm_lines(state: &State, c: &Confirm, theme: &Theme, width: usize, max_h: usize) -> Lines {
    let label = c
        .label
        .as_deref()
        .map(|l| format!(" · {l}"))
        .unwrap_or_default();
    let mut head = vec![Line::from(vec![
        Span::raw(format!(" {} release ", c.action.verb())),
        Span::styled(c.release.clone(), theme.bold()),
        Span::styled(format!(" ({}{label})", c.state), theme.dim()),
    ])];
    let mut middle: Lines = Vec::new();
    let mut tail: Lines = vec![Line::from("")];
    match c.action {
        ConfirmAction::Approve => {
            head.push(Line::from(format!(
                " as {}. Your approval is recorded in the audit log.",
                state.info.actor
            )));
            if crate::model::same_person(&c.author, &state.info.actor)
                && !state.info.allow_self_approval
            {
                head.push(Line::from(Span::styled(
                    format!(
                        " ⚠ You ({}) deployed this release and policy.allow_self_approval is off: the approval will be refused. Ask another operator.",
                        state.info.actor
                    ),
                    theme.warn(),
                )));
            }
            tail.push(input_line(" Note (optional): ", &c.input, theme));
        }
        ConfirmAction::Abandon => {
            head.push(Line::from(
                " It will never be promoted; its preview becomes stale (cleanup deletes it).",
            ));
            tail.push(input_line(" Note (optional): ", &c.input, theme));
        }
        ConfirmAction::RolloutContinue => {
            head.push(Line::from(
                " The watch is checked first: a regression halts the rollout and puts the previous version back. Refused before the step is due (`d1ops rollout continue --now` takes it early).",
            ));
        }
        ConfirmAction::RolloutAbort => {
            head.push(Line::from(
                " The previous Worker version goes back to 100%, the previous release is live again and this one fails at stage `rollout`; the schema stays.",
            ));
            tail.push(input_line(
                &format!(
                    " Type {} (the id's last 4 characters) to confirm: ",
                    c.code()
                ),
                &c.input,
                theme,
            ));
        }
        ConfirmAction::Rollback | ConfirmAction::Restore => {
            head.push(Line::from(if c.action == ConfirmAction::Rollback {
                " Production's code (app, bot, api) goes back to this release; the schema stays."
            } else {
                " Production's database goes back to the recovery point taken before this release."
            }));
            match &c.recovery {
                None => middle.push(Line::from(Span::styled(" checking…", theme.dim()))),
                Some(Err(e)) => {
                    middle.push(Line::from(Span::styled(format!(" {e}"), theme.warn())))
                }
                Some(Ok(p)) => {
                    for l in &p.lines {
                        middle.push(Line::from(format!(" {l}")));
                    }
                    if let Some(b) = &p.blocker {
                        middle.push(Line::from(Span::styled(format!(" {b}"), theme.warn())));
                    }
                }
            }
            tail.push(input_line(
                &format!(
                    " Type {} (the id's last 4 characters) to confirm: ",
                    c.code()
                ),
                &c.input,
                theme,
            ));
        }
        ConfirmAction::Promote => {
            head.push(Line::from(
                " to production: its pending migrations are applied all or nothing.",
            ));
            promote_summary(c, theme, width, &mut head, &mut middle);
            tail.push(input_line(
                &format!(
                    " Type {} (the id's last 4 characters) to confirm: ",
                    c.code()
                ),
                &c.input,
                theme,
            ));
        }
    }
    let enabled = c.blocked_by().is_none();
    let typing_hint = c.awaiting_code();
    if let (Some(why), true) = (c.blocked_by(), typing_hint) {
        tail.push(Line::from(Span::styled(format!(" {why}"), theme.warn())));
    }
    tail.push(Line::from(""));
    tail.push(buttons(c.action.verb(), c.focus, enabled, theme));
    let inner = width.saturating_sub(2);
    let wrap = |lines: Lines| fit::wrap_lines(lines, inner, fit::CONTINUED);
    fit_parts(
        wrap(head),
        wrap(middle),
        wrap(tail),
        (max_h, c.scroll),
        theme,
    )
}

/// Joins the parts; when they do not fit in `max_h` lines, `middle` shows from line
/// `scroll` on with a marker saying how much more there is and that `↓`/`↑` scroll it.
fn fit_parts(
    mut head: Lines,
    mut middle: Lines,
    tail: Lines,
    (max_h, scroll): (usize, usize),
    theme: &Theme,
) -> Lines {
    // The typed confirmation and the buttons always show: when the head alone leaves no
    // room, all of it but its first line scrolls with the middle.
    if head.len() + tail.len() + 4 > max_h && head.len() > 1 {
        let rest = head.split_off(1);
        middle = rest.into_iter().chain(middle).collect();
    }
    let room = max_h.saturating_sub(head.len() + tail.len() + 2);
    let n = middle.len();
    if n > room {
        let shown = room.saturating_sub(1).max(1);
        let start = scroll.min(n.saturating_sub(shown));
        head.extend(middle.into_iter().skip(start).take(shown));
        let below = n.saturating_sub(start + shown);
        let text = match (start, below) {
            (0, b) => format!("   ↓ {b} more line(s) below (↓ scrolls)"),
            (a, 0) => format!("   ↑ {a} line(s) above (↑ scrolls)"),
            (a, b) => format!("   ↑ {a} above · ↓ {b} below (↑/↓ scroll)"),
        };
        head.push(Line::from(Span::styled(text, theme.dim())));
    } else {
        head.extend(middle);
    }
    head.extend(tail);
    head
}

fn quit_lines(q: &crate::dialog::QuitDialog, theme: &Theme) -> Lines {
    vec![
        Line::from(Span::styled(
            format!(" A write to production is in flight: {}.", q.what),
            theme.warn(),
        )),
        Line::from(
            " Wait for it, or quit now and leave it to recovery: the next d1ops command settles it from the lock's recorded step (rolled forward or back).",
        ),
        Line::from(""),
        buttons_labeled(("Wait, then quit", "Quit now"), q.focus, theme),
    ]
}

fn undo_lines(u: &crate::dialog::UndoDialog, theme: &Theme, width: usize, max_h: usize) -> Lines {
    let head = vec![Line::from(
        " Puts production back as it was before the last restore (restore --undo).",
    )];
    let mut middle = Vec::new();
    match &u.preview {
        None => middle.push(Line::from(Span::styled(" checking…", theme.dim()))),
        Some(Err(e)) => middle.push(Line::from(Span::styled(format!(" {e}"), theme.warn()))),
        Some(Ok(p)) => middle.extend(p.lines.iter().map(|l| Line::from(format!(" {l}")))),
    }
    let mut tail = vec![
        Line::from(""),
        input_line(
            &format!(" Type {} to confirm: ", crate::dialog::UNDO_WORD),
            &u.input,
            theme,
        ),
    ];
    let blocked = u.blocked_by();
    if let Some(why) = &blocked {
        tail.push(Line::from(Span::styled(format!(" {why}"), theme.warn())));
    }
    tail.push(Line::from(""));
    tail.push(buttons("Undo", u.focus, blocked.is_none(), theme));
    let inner = width.saturating_sub(2);
    let wrap = |lines: Lines| fit::wrap_lines(lines, inner, fit::CONTINUED);
    fit_parts(
        wrap(head),
        wrap(middle),
        wrap(tail),
        (max_h, u.scroll),
        theme,
    )
}

fn promote_summary(c: &Confirm, theme: &Theme, width: usize, head: &mut Lines, middle: &mut Lines) {
    head.push(Line::from(""));
    let p = match &c.preview {
        None => {
            head.push(Line::from(Span::styled(
                " Checking the gate and what will change…",
                theme.dim(),
            )));
            return;
        }
        Some(Err(e)) => {
            head.push(Line::from(Span::styled(
                format!(" Could not check: {e}"),
                theme.bad(),
            )));
            return;
        }
        Some(Ok(p)) => p,
    };
    let mut gate = vec![Span::raw(" Gate ")];
    match &p.gate {
        Some(g) => {
            let count = |s: CheckStatus| g.checks.iter().filter(|c| c.status == s).count();
            let (v, style) = match g.verdict {
                Verdict::Ready => ("✓ ready", theme.ok()),
                Verdict::Blocked => ("✗ blocked", theme.bad()),
            };
            gate.push(Span::styled(v, style.add_modifier(Modifier::BOLD)));
            gate.push(Span::raw(format!(
                " · {} pass · {} warn · {} fail",
                count(CheckStatus::Pass),
                count(CheckStatus::Warn),
                count(CheckStatus::Fail)
            )));
        }
        None => gate.push(Span::styled("no report", theme.bad())),
    }
    gate.push(Span::raw(format!(
        "   Approvals {}/{}",
        p.approvals, p.required
    )));
    head.push(Line::from(gate));
    match &p.blocker {
        Some(why) => {
            for (i, l) in super::detail::wrap(why, width.saturating_sub(25))
                .into_iter()
                .enumerate()
            {
                let lead = if i == 0 {
                    " ✗ Would be refused: "
                } else {
                    "                     "
                };
                head.push(Line::from(Span::styled(format!("{lead}{l}"), theme.bad())));
            }
        }
        None => head.push(Line::from(Span::styled(
            " ✓ Nothing blocks this promotion.",
            theme.ok(),
        ))),
    }
    head.push(Line::from(format!(
        " Will apply {} pending migration(s):",
        p.pending.len()
    )));
    for name in &p.pending {
        head.push(Line::from(format!("   {name}")));
    }
    if !p.code.is_empty() {
        head.push(Line::from(format!(
            " Then ships its code, in order: {}",
            p.code.join(", ")
        )));
    }
    if p.diff.is_empty() {
        middle.push(Line::from(Span::styled(" No schema changes.", theme.dim())));
    } else {
        middle.push(Line::from(" Schema changes:"));
        for l in &p.diff {
            middle.push(Line::from(Span::styled(
                format!("   {}", l.text),
                theme.diff(l.sign),
            )));
        }
    }
}

fn input_line(prompt: &str, input: &str, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::raw(prompt.to_string()),
        Span::styled(format!("{input}█"), theme.key()),
    ])
}

fn cleanup_lines(c: &CleanupDialog, theme: &Theme, width: usize, max_h: usize) -> Lines {
    let mut out = Vec::new();
    let items = match &c.items {
        None => {
            out.push(Line::from(Span::styled(
                " Finding stale previews…",
                theme.dim(),
            )));
            out.push(Line::from(""));
            out.push(buttons("Delete", c.focus, false, theme));
            return out;
        }
        Some(Err(e)) => {
            out.push(Line::from(Span::styled(
                format!(" Could not plan the cleanup: {e}"),
                theme.bad(),
            )));
            out.push(Line::from(""));
            out.push(buttons("Delete", c.focus, false, theme));
            return out;
        }
        Some(Ok(items)) => items,
    };
    if items.is_empty() {
        out.push(Line::from(" No stale previews — nothing to clean up."));
        out.push(Line::from(Span::styled(
            " (Candidates awaiting a decision are never listed.)",
            theme.dim(),
        )));
        out.push(Line::from(""));
        out.push(buttons("Delete", c.focus, false, theme));
        return out;
    }
    out.push(Line::from(
        " These preview databases will be deleted (production is never touched):",
    ));
    let cols = [
        fit::col("PREVIEW", 12, 34, 0),
        fit::right("SIZE", 9, 10, 1),
        fit::right("IDLE", 5, 5, 3),
        fit::col("REASON", 10, fit::FILL, 2),
    ];
    let widths = fit::widths(&cols, width.saturating_sub(3) as u16);
    let heads: Vec<(String, Style)> = cols
        .iter()
        .map(|c| (c.head.to_string(), theme.bold()))
        .collect();
    let mut head = vec![Span::raw(" ")];
    head.extend(fit::text_row(&cols, &widths, heads));
    out.push(Line::from(head));
    let room = max_h.saturating_sub(7).max(1);
    let start = c.scroll.min(items.len().saturating_sub(room));
    for item in items.iter().skip(start).take(room) {
        let cells = vec![
            (item.env.clone(), Style::new()),
            (format::bytes(item.size_bytes), Style::new()),
            (format::secs(item.idle_seconds), Style::new()),
            (item.reason.clone(), Style::new()),
        ];
        let mut spans = vec![Span::raw(" ")];
        spans.extend(fit::text_row(&cols, &widths, cells));
        out.push(Line::from(spans));
    }
    if items.len() > room {
        out.push(Line::from(Span::styled(
            format!(
                " (showing {}–{} of {}; j/k scroll)",
                start + 1,
                start + room.min(items.len()),
                items.len()
            ),
            theme.dim(),
        )));
    }
    out.push(Line::from(Span::styled(
        format!(
            " Total: {} preview(s), {} freed",
            items.len(),
            format::bytes(c.total_bytes())
        ),
        theme.bold(),
    )));
    out.push(Line::from(""));
    out.push(buttons(
        &format!("Delete {}", items.len()),
        c.focus,
        true,
        theme,
    ));
    out
}

fn index_lines(c: &IndexDialog, theme: &Theme, width: usize) -> Lines {
    let s = &c.suggestion;
    let inner = width.saturating_sub(4);
    let mut out = vec![
        Line::from(" Write this index as the workspace's next migration file:"),
        Line::from(Span::styled(format!("   {};", s.sql), theme.key())),
        Line::from(vec![
            Span::styled(" File   ", theme.dim()),
            Span::styled(
                s.file
                    .clone()
                    .unwrap_or_else(|| "(the next migration number)".into()),
                theme.bold(),
            ),
        ]),
    ];
    for (i, chunk) in super::detail::wrap(&s.reason, inner.saturating_sub(8))
        .into_iter()
        .enumerate()
    {
        let key = if i == 0 { " Why    " } else { "        " };
        out.push(Line::from(vec![
            Span::styled(key, theme.dim()),
            Span::raw(chunk),
        ]));
    }
    out.push(Line::from(Span::styled(
        " Nothing runs now: deploy it to test the index on a preview first.",
        theme.dim(),
    )));
    out.push(Line::from(""));
    out.push(buttons("Write file", c.focus, true, theme));
    fit::wrap_lines(out, inner.saturating_add(2), fit::CONTINUED)
}
