//! The command palette (`:`): every action by name, with completion of command names,
//! release ids (by prefix), environment names and Monitor windows. `:release 01M8` opens that
//! release, `:promote ID` opens its promote confirmation, `:monitor 1h` shows the Monitor's
//! last hour, `:cleanup` the cleanup dialog.
//!
//! Pure like `update`: a command only changes the state and returns the same effects its key
//! would; dangerous commands open the same confirmations (and are refused read-only).
use crate::action::Action;
use crate::effects::Effect;
use crate::engine::MonitorWindow;
use crate::state::{State, Tab, ToastKind};

/// The palette's input line and the highlighted completion.
#[derive(Debug, Clone, Default)]
pub struct Palette {
    pub input: String,
    pub selected: usize,
}

/// What a command's argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Release,
    Env,
    Window,
}

/// One command: its name, argument and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    pub name: &'static str,
    pub arg: Arg,
    pub desc: &'static str,
}

const fn c(name: &'static str, arg: Arg, desc: &'static str) -> Command {
    Command { name, arg, desc }
}

/// Every command, in the order help lists them.
pub static COMMANDS: &[Command] = &[
    c(
        "release",
        Arg::Release,
        "open a release (an id or its first characters)",
    ),
    c("env", Arg::Env, "select an environment"),
    c(
        "monitor",
        Arg::Window,
        "the Monitor, optionally over 5m, 1h, 24h or 7d",
    ),
    c("capacity", Arg::None, "the Capacity tab"),
    c("audit", Arg::None, "the Audit tab"),
    c("releases", Arg::None, "the Releases tab"),
    c("environments", Arg::None, "the Environments tab"),
    c("alerts", Arg::None, "the alerts list"),
    c("approve", Arg::Release, "approve a release"),
    c("promote", Arg::Release, "promote a release"),
    c("abandon", Arg::Release, "abandon a release"),
    c(
        "rollback",
        Arg::Release,
        "roll production's code back to a release",
    ),
    c(
        "restore",
        Arg::Release,
        "restore production's database to before a release",
    ),
    c("undo", Arg::None, "undo the last restore"),
    c(
        "advance",
        Arg::Release,
        "take the next step of a worker rollout",
    ),
    c(
        "halt",
        Arg::Release,
        "abort a worker rollout: previous version at 100%",
    ),
    c(
        "ack",
        Arg::None,
        "acknowledge the live release's regressed watch",
    ),
    c("cleanup", Arg::None, "clean up stale previews"),
    c("copy", Arg::None, "copy what is selected (OSC 52)"),
    c("refresh", Arg::None, "read everything again"),
    c("help", Arg::None, "the keys"),
    c("quit", Arg::None, "quit the console"),
];

const WINDOWS: [(&str, MonitorWindow); 4] = [
    ("5m", MonitorWindow::FiveMinutes),
    ("1h", MonitorWindow::Hour),
    ("24h", MonitorWindow::Day),
    ("7d", MonitorWindow::Week),
];

fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The completions of `input`: command names while the first word is typed, then the
/// argument's candidates. Each is the whole input it would complete to.
pub fn completions(state: &State, input: &str) -> Vec<String> {
    let input = input.trim_start();
    let Some((name, arg)) = input.split_once(' ') else {
        let lower = input.to_lowercase();
        return (COMMANDS.iter())
            .filter(|c| c.name.starts_with(&lower))
            .map(|c| {
                if c.arg == Arg::None {
                    c.name.to_string()
                } else {
                    format!("{} ", c.name)
                }
            })
            .collect();
    };
    let Some(cmd) = find(name) else {
        return Vec::new();
    };
    let arg = arg.trim();
    let upper = arg.to_uppercase();
    let lower = arg.to_lowercase();
    let args: Vec<String> = match cmd.arg {
        Arg::None => Vec::new(),
        Arg::Release => (state.data.releases.iter())
            .filter(|r| r.id.starts_with(&upper))
            .map(|r| r.id.clone())
            .collect(),
        Arg::Env => (state.data.envs.iter())
            .filter(|e| e.env.name.to_lowercase().starts_with(&lower))
            .map(|e| e.env.name.clone())
            .collect(),
        Arg::Window => (WINDOWS.iter())
            .filter(|(w, _)| w.starts_with(&lower))
            .map(|(w, _)| w.to_string())
            .collect(),
    };
    args.into_iter()
        .map(|a| format!("{} {a}", cmd.name))
        .collect()
}

/// Runs the palette's input (or, when it names no command, its highlighted completion).
pub fn run(state: &mut State, input: &str, selected: usize) -> Vec<Effect> {
    let mut line = input.trim().to_string();
    let first = line.split_whitespace().next().unwrap_or("");
    if find(first).is_none() {
        let options = completions(state, &line);
        match options.get(selected.min(options.len().saturating_sub(1))) {
            Some(c) => line = c.trim().to_string(),
            None => {
                state.toast(
                    ToastKind::Error,
                    format!("No command `{}` — Tab completes, ? lists them.", line),
                );
                return Vec::new();
            }
        }
    }
    let (name, arg) = match line.split_once(' ') {
        Some((n, a)) => (n.to_lowercase(), a.trim().to_string()),
        None => (line.to_lowercase(), String::new()),
    };
    let Some(cmd) = find(&name) else {
        return Vec::new();
    };
    let key = |state: &mut State, action: Action| crate::update::update(state, action);
    match cmd.arg {
        Arg::Release => {
            let Some(id) = release(state, &arg) else {
                return Vec::new();
            };
            let mut out = key(state, Action::GoTab(Tab::Releases));
            select_release(state, &id);
            out.extend(match cmd.name {
                "release" => crate::update::open_release(state, id),
                "approve" => key(state, Action::Approve),
                "promote" => key(state, Action::Promote),
                "abandon" => key(state, Action::Abandon),
                "rollback" => key(state, Action::Rollback),
                "advance" => key(state, Action::RolloutContinue),
                "halt" => key(state, Action::RolloutAbort),
                _ => key(state, Action::Restore),
            });
            out
        }
        Arg::Env => {
            let lower = arg.to_lowercase();
            let found = (state.data.envs.iter())
                .position(|e| e.env.name.to_lowercase().starts_with(&lower));
            let out = key(state, Action::GoTab(Tab::Environments));
            state.envs.filter.clear();
            state.refilter(Tab::Environments);
            match found.and_then(|i| state.envs.visible.iter().position(|&v| v == i)) {
                Some(pos) => state.envs.selected = pos,
                None => state.toast(ToastKind::Error, format!("No environment `{arg}`.")),
            }
            out
        }
        Arg::Window => {
            if let Some((_, w)) = WINDOWS.iter().find(|(w, _)| w.eq_ignore_ascii_case(&arg)) {
                state.monitor.window = *w;
                state.monitor.pending = false;
            } else if !arg.is_empty() {
                state.toast(
                    ToastKind::Error,
                    format!("No window `{arg}`: 5m, 1h, 24h or 7d."),
                );
            }
            key(state, Action::GoTab(Tab::Monitor))
        }
        Arg::None => {
            let action = match cmd.name {
                "capacity" => Action::GoTab(Tab::Capacity),
                "audit" => Action::GoTab(Tab::Audit),
                "releases" => Action::GoTab(Tab::Releases),
                "environments" => Action::GoTab(Tab::Environments),
                "alerts" => Action::Alerts,
                "undo" => Action::RestoreUndo,
                "ack" => Action::AckWatch,
                "cleanup" => {
                    if !matches!(state.tab, Tab::Environments | Tab::Capacity) {
                        state.tab = Tab::Environments;
                        state.detail = None;
                    }
                    Action::Cleanup
                }
                "copy" => Action::Copy,
                "refresh" => Action::Refresh,
                "help" => Action::Help,
                _ => Action::Quit,
            };
            if cmd.name == "quit" {
                state.detail = None;
            }
            if !state.info.readonly || !matches!(action, Action::Cleanup | Action::RestoreUndo) {
                return key(state, action);
            }
            let what = if cmd.name == "undo" {
                "undoing a restore"
            } else {
                "cleanup"
            };
            crate::flows::read_only(state, what)
        }
    }
}

/// The one release whose id starts with `prefix`, else a toast saying why not.
fn release(state: &mut State, prefix: &str) -> Option<String> {
    let upper = prefix.trim().to_uppercase();
    if upper.is_empty() {
        state.toast(
            ToastKind::Error,
            "Give a release id (or its first characters).",
        );
        return None;
    }
    let hits: Vec<String> = (state.data.releases.iter())
        .filter(|r| r.id.starts_with(&upper))
        .map(|r| r.id.clone())
        .collect();
    match hits.as_slice() {
        [one] => Some(one.clone()),
        [] => {
            state.toast(ToastKind::Error, format!("No release starts with {upper}."));
            None
        }
        many => {
            state.toast(
                ToastKind::Error,
                format!(
                    "{} releases start with {upper}; type more of the id.",
                    many.len()
                ),
            );
            None
        }
    }
}

/// Selects release `id` in the Releases list (clearing a filter that hides it).
fn select_release(state: &mut State, id: &str) {
    let Some(i) = state.data.releases.iter().position(|r| r.id == id) else {
        return;
    };
    if !state.releases.visible.contains(&i) {
        state.releases.filter.clear();
        state.refilter(Tab::Releases);
    }
    if let Some(pos) = state.releases.visible.iter().position(|&v| v == i) {
        state.releases.selected = pos;
    }
}
