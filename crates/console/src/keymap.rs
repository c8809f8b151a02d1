//! The keymap as data: every binding is (keys, action, context, description, dangerous).
//! Key resolution, the footer, the `?` overlay and README's key table are all generated
//! from [`KEYMAP`], so they cannot disagree. `--readonly` drops every dangerous binding.
//!
//! Pure: no terminal I/O; it only reads the state to know which contexts are active.
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::action::Action;
use crate::dialog::Dialog;
use crate::state::{State, Tab};

/// A key plus the modifiers that matter (Shift is folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    /// How the key is written in the footer and help.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Backspace => "Backspace".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{}", base.to_uppercase())
        } else {
            base
        }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    Global,
    Move,
    List,
    Release,
    Environments,
    Monitor,
    Capacity,
    Detail,
    Dialog,
    Filter,
    Help,
    Alerts,
    Palette,
}

impl Ctx {
    pub fn title(self) -> &'static str {
        match self {
            Ctx::Global => "Everywhere",
            Ctx::Move => "Moving",
            Ctx::List => "Lists",
            Ctx::Release => "Releases and release detail",
            Ctx::Environments => "Environments",
            Ctx::Monitor => "Monitor",
            Ctx::Capacity => "Capacity",
            Ctx::Detail => "Release detail",
            Ctx::Dialog => "Dialogs",
            Ctx::Filter => "Filter",
            Ctx::Help => "Help",
            Ctx::Alerts => "Alerts list",
            Ctx::Palette => "Command palette",
        }
    }
}

/// One binding.
#[derive(Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub ctx: Ctx,
    pub desc: &'static str,
    pub dangerous: bool,
    /// Shown in the footer (the rest only in help).
    pub footer: bool,
}

const fn b(keys: &'static [Key], action: Action, ctx: Ctx, desc: &'static str) -> Binding {
    Binding {
        keys,
        action,
        ctx,
        desc,
        dangerous: false,
        footer: false,
    }
}

const fn f(keys: &'static [Key], action: Action, ctx: Ctx, desc: &'static str) -> Binding {
    Binding {
        keys,
        action,
        ctx,
        desc,
        dangerous: false,
        footer: true,
    }
}

const fn danger(keys: &'static [Key], action: Action, ctx: Ctx, desc: &'static str) -> Binding {
    Binding {
        keys,
        action,
        ctx,
        desc,
        dangerous: true,
        footer: true,
    }
}

const CTRL_C: Key = Key {
    code: KeyCode::Char('c'),
    ctrl: true,
};

/// Every binding, most specific contexts first within each key.
#[rustfmt::skip]
pub static KEYMAP: &[Binding] = &[
    f(&[code(KeyCode::Esc), k('?'), k('q')], Action::Help, Ctx::Help, "close help"),
    f(&[code(KeyCode::Enter)], Action::Accept, Ctx::Palette, "run"),
    f(&[code(KeyCode::Tab)], Action::FocusNext, Ctx::Palette, "complete"),
    b(&[code(KeyCode::Down)], Action::Down, Ctx::Palette, "next completion"),
    b(&[code(KeyCode::Up)], Action::Up, Ctx::Palette, "previous completion"),
    f(&[code(KeyCode::Esc)], Action::Cancel, Ctx::Palette, "close"),
    f(&[code(KeyCode::Enter)], Action::Open, Ctx::Alerts, "go to"),
    f(&[code(KeyCode::Esc), k('!'), k('q')], Action::Alerts, Ctx::Alerts, "close"),
    f(&[code(KeyCode::Tab), code(KeyCode::Right)], Action::FocusNext, Ctx::Dialog, "next button"),
    b(&[code(KeyCode::BackTab), code(KeyCode::Left)], Action::FocusPrev, Ctx::Dialog, "previous button"),
    f(&[code(KeyCode::Enter)], Action::Press, Ctx::Dialog, "press button"),
    f(&[code(KeyCode::Esc)], Action::Cancel, Ctx::Dialog, "cancel"),
    f(&[code(KeyCode::Enter)], Action::Accept, Ctx::Filter, "keep filter"),
    f(&[code(KeyCode::Esc)], Action::Cancel, Ctx::Filter, "clear filter"),
    f(&[code(KeyCode::Tab), k('l'), code(KeyCode::Right)], Action::NextSub, Ctx::Detail, "next view"),
    b(&[code(KeyCode::BackTab), k('h'), code(KeyCode::Left)], Action::PrevSub, Ctx::Detail, "previous view"),
    f(&[code(KeyCode::Esc)], Action::Back, Ctx::Detail, "back"),
    danger(&[k('a')], Action::Approve, Ctx::Release, "approve"),
    danger(&[k('p')], Action::Promote, Ctx::Release, "promote"),
    danger(&[k('x')], Action::Abandon, Ctx::Release, "abandon"),
    danger(&[k('R')], Action::Rollback, Ctx::Release, "roll back to"),
    danger(&[k('S')], Action::Restore, Ctx::Release, "restore before"),
    danger(&[k('U')], Action::RestoreUndo, Ctx::Release, "undo last restore"),
    danger(&[k('c')], Action::Cleanup, Ctx::Environments, "clean up previews"),
    f(&[k('e')], Action::NextEnv, Ctx::Monitor, "environment"),
    f(&[k('w')], Action::NextWindow, Ctx::Monitor, "window"),
    f(&[k('o')], Action::NextOrder, Ctx::Monitor, "order"),
    b(&[k('d')], Action::ToggleD1ops, Ctx::Monitor, "show d1ops' own statements"),
    danger(&[k('i')], Action::WriteIndex, Ctx::Monitor, "write suggested index"),
    danger(&[k('K')], Action::AckWatch, Ctx::Monitor, "acknowledge the watch"),
    danger(&[k('c')], Action::Cleanup, Ctx::Capacity, "clean up previews"),
    f(&[code(KeyCode::Enter)], Action::Open, Ctx::List, "open"),
    f(&[k('/')], Action::Filter, Ctx::List, "filter"),
    b(&[code(KeyCode::Esc)], Action::Back, Ctx::List, "clear filter"),
    b(&[k('j'), code(KeyCode::Down)], Action::Down, Ctx::Move, "down"),
    b(&[k('k'), code(KeyCode::Up)], Action::Up, Ctx::Move, "up"),
    b(&[k('g'), code(KeyCode::Home)], Action::Top, Ctx::Move, "first"),
    b(&[k('G'), code(KeyCode::End)], Action::Bottom, Ctx::Move, "last"),
    b(&[code(KeyCode::PageUp)], Action::PageUp, Ctx::Move, "page up"),
    b(&[code(KeyCode::PageDown)], Action::PageDown, Ctx::Move, "page down"),
    b(&[k('1')], Action::GoTab(Tab::Environments), Ctx::Global, "Environments tab"),
    b(&[k('2')], Action::GoTab(Tab::Releases), Ctx::Global, "Releases tab"),
    b(&[k('3')], Action::GoTab(Tab::Monitor), Ctx::Global, "Monitor tab"),
    b(&[k('4')], Action::GoTab(Tab::Capacity), Ctx::Global, "Capacity tab"),
    b(&[k('5')], Action::GoTab(Tab::Audit), Ctx::Global, "Audit tab"),
    b(&[code(KeyCode::Tab)], Action::NextTab, Ctx::Global, "next tab"),
    b(&[code(KeyCode::BackTab)], Action::PrevTab, Ctx::Global, "previous tab"),
    b(&[k('!')], Action::Alerts, Ctx::Global, "alerts"),
    b(&[k(':')], Action::Palette, Ctx::Global, "command"),
    b(&[k('y')], Action::Copy, Ctx::Global, "copy"),
    f(&[k('r')], Action::Refresh, Ctx::Global, "refresh"),
    f(&[k('?')], Action::Help, Ctx::Global, "help"),
    f(&[k('q')], Action::Quit, Ctx::Global, "back/quit"),
    b(&[CTRL_C], Action::ForceQuit, Ctx::Global, "quit"),
];

/// The contexts active in `state`, most specific first.
pub fn active_contexts(state: &State) -> Vec<Ctx> {
    if state.help.is_some() {
        return vec![Ctx::Help, Ctx::Move];
    }
    if state.palette.is_some() {
        return vec![Ctx::Palette];
    }
    if state.alerts_open.is_some() {
        return vec![Ctx::Alerts, Ctx::Move];
    }
    match &state.dialog {
        Some(Dialog::Confirm(_) | Dialog::Cleanup(_) | Dialog::Undo(_)) => {
            return vec![Ctx::Dialog, Ctx::Move];
        }
        Some(Dialog::Index(_) | Dialog::Quit(_)) => return vec![Ctx::Dialog],
        None => {}
    }
    if state.list(state.tab).is_some_and(|l| l.editing) && state.detail.is_none() {
        return vec![Ctx::Filter];
    }
    if state.detail.is_some() {
        return vec![Ctx::Detail, Ctx::Release, Ctx::Move, Ctx::Global];
    }
    match state.tab {
        Tab::Releases => vec![Ctx::Release, Ctx::List, Ctx::Move, Ctx::Global],
        Tab::Environments => vec![Ctx::Environments, Ctx::List, Ctx::Move, Ctx::Global],
        Tab::Audit => vec![Ctx::List, Ctx::Move, Ctx::Global],
        Tab::Monitor => vec![Ctx::Monitor, Ctx::Move, Ctx::Global],
        Tab::Capacity => vec![Ctx::Capacity, Ctx::Move, Ctx::Global],
    }
}

fn matches(key: &Key, ev: &KeyEvent) -> bool {
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    key.code == ev.code && key.ctrl == ctrl
}

fn enabled(b: &Binding, readonly: bool) -> bool {
    !(readonly && b.dangerous)
}

/// The action a key press means in `state`, if any.
pub fn resolve(state: &State, ev: &KeyEvent) -> Option<Action> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && ev.code == KeyCode::Char('c') {
        return Some(Action::ForceQuit);
    }
    let contexts = active_contexts(state);
    let typing = matches!(contexts.first(), Some(Ctx::Filter | Ctx::Palette))
        || (contexts.first() == Some(&Ctx::Dialog)
            && state.dialog.as_ref().is_some_and(Dialog::takes_text));
    if typing && !ctrl {
        match ev.code {
            KeyCode::Char(c) => return Some(Action::Input(c)),
            KeyCode::Backspace => return Some(Action::Backspace),
            _ => {}
        }
    }
    for ctx in contexts {
        let found = KEYMAP
            .iter()
            .filter(|b| b.ctx == ctx)
            .find(|b| b.keys.iter().any(|key| matches(key, ev)));
        match found {
            // Read-only: the key still answers, saying why it does nothing.
            Some(b) if !enabled(b, state.info.readonly) => return Some(Action::ReadOnly(b.desc)),
            Some(b) => return Some(b.action.clone()),
            None => {}
        }
    }
    None
}

/// The keys of a binding joined for display, e.g. `j/↓`.
pub fn keys_label(b: &Binding) -> String {
    b.keys.iter().map(Key::label).collect::<Vec<_>>().join("/")
}

/// The footer's (keys, description) pairs for `state`.
/// Global entries come last so a narrow footer can keep them (help, quit) and drop others.
pub fn footer(state: &State) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for ctx in active_contexts(state) {
        for b in KEYMAP.iter().filter(|b| b.ctx == ctx && b.footer) {
            if enabled(b, state.info.readonly) && !out.iter().any(|(_, d)| *d == b.desc) {
                let first = b.keys.first().map(Key::label).unwrap_or_default();
                out.push((first, b.desc));
            }
        }
    }
    out
}

/// A footer word for a description, for when the full ones do not fit.
pub fn short_desc(desc: &str) -> &str {
    match desc {
        "clean up previews" => "clean",
        "roll back to" => "rollback",
        "restore before" => "restore",
        "back/quit" => "quit",
        "write suggested index" => "index",
        "next view" => "view",
        "press button" => "press",
        "next button" => "focus",
        "environment" => "env",
        "keep filter" => "keep",
        "clear filter" => "clear",
        "undo last restore" => "undo",
        "acknowledge the watch" => "ack",
        "copy" => "copy",
        "command" => "cmd",
        "alerts" => "alerts",
        other => other.split_whitespace().next().unwrap_or(other),
    }
}

/// The help overlay's sections: each context with its bindings.
pub fn help_sections(readonly: bool) -> Vec<(Ctx, Vec<(String, &'static str)>)> {
    let order = [
        Ctx::Global,
        Ctx::Move,
        Ctx::List,
        Ctx::Release,
        Ctx::Environments,
        Ctx::Monitor,
        Ctx::Capacity,
        Ctx::Detail,
        Ctx::Dialog,
        Ctx::Filter,
        Ctx::Alerts,
        Ctx::Palette,
    ];
    order
        .into_iter()
        .map(|ctx| {
            let mut rows: Vec<(String, &'static str)> = Vec::new();
            for b in KEYMAP
                .iter()
                .filter(|b| b.ctx == ctx && enabled(b, readonly))
            {
                if matches!(b.action, Action::GoTab(_)) {
                    // `1`…`5` read better as one line.
                    if !rows.iter().any(|(_, d)| *d == GO_TAB) {
                        rows.push(("1–5".into(), GO_TAB));
                    }
                    continue;
                }
                rows.push((keys_label(b), b.desc));
            }
            (ctx, rows)
        })
        .filter(|(_, rows)| !rows.is_empty())
        .collect()
}

const GO_TAB: &str = "go to tab";

/// README's key table (Markdown), generated from the keymap.
pub fn keymap_markdown() -> String {
    let mut out = String::from(
        "| Keys | Action | Where | Off in `--readonly` (says why) |\n|---|---|---|---|\n",
    );
    for (ctx, _) in help_sections(false) {
        let mut tabs_done = false;
        for b in KEYMAP.iter().filter(|b| b.ctx == ctx) {
            let (keys, desc) = if matches!(b.action, Action::GoTab(_)) {
                if tabs_done {
                    continue;
                }
                tabs_done = true;
                ("`1`–`5`".to_string(), GO_TAB)
            } else {
                let keys = b.keys.iter().map(|k| format!("`{}`", k.label()));
                (keys.collect::<Vec<_>>().join(" "), b.desc)
            };
            let hidden = if b.dangerous { "yes" } else { "" };
            out.push_str(&format!(
                "| {keys} | {desc} | {} | {hidden} |\n",
                ctx.title()
            ));
        }
    }
    out.push_str("| mouse wheel, click | scroll; select a tab, a row (again: open) or a sub-view; the header opens the alerts list | Everywhere | |\n");
    for c in crate::palette::COMMANDS {
        let arg = match c.arg {
            crate::palette::Arg::None => "",
            crate::palette::Arg::Release => " ID",
            crate::palette::Arg::Env => " NAME",
            crate::palette::Arg::Window => " [WINDOW]",
        };
        let hidden = if DANGEROUS_COMMANDS.contains(&c.name) {
            "yes"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `:{}{arg}` | {} | Command palette | {hidden} |\n",
            c.name, c.desc
        ));
    }
    out
}

/// The palette commands that act (refused read-only, like their keys).
pub const DANGEROUS_COMMANDS: [&str; 10] = [
    "approve", "promote", "abandon", "rollback", "restore", "undo", "cleanup", "ack", "advance",
    "halt",
];
