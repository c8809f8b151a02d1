//! The action flows: approve, promote, abandon and cleanup from key press to toast, and
//! how each worker reply lands in the state.
//!
//! Pure like `update`: decisions are made here, engine calls only requested. The engine
//! has the final word on every action; the checks here only spare a pointless dialog.
use crate::action::Action;
use crate::dialog::{
    CleanupDialog, Confirm, ConfirmAction, Dialog, Focus, IndexDialog, QuitDialog, UndoDialog,
};
use crate::effects::{Effect, Reply, Request};
use crate::format;
use crate::model::ReleaseState;
use crate::state::{State, Tab, ToastKind};
use crate::tabs;

/// `a`, `p`, `x`, `R`, `S` and `c`: opens the matching dialog.
pub fn start(state: &mut State, action: Action) -> Vec<Effect> {
    if state.info.readonly {
        // The keys say so in the keymap; the palette's commands land here.
        let what = match action {
            Action::Approve => "approve",
            Action::Promote => "promote",
            Action::Abandon => "abandon",
            Action::Cleanup => "cleanup",
            Action::Rollback => "rollback",
            Action::Restore => "restore",
            _ => "the rollout",
        };
        return read_only(state, what);
    }
    if matches!(action, Action::Cleanup) {
        let from_tab = matches!(state.tab, Tab::Environments | Tab::Capacity);
        if !from_tab || state.detail.is_some() {
            return Vec::new();
        }
        state.dialog = Some(Dialog::Cleanup(CleanupDialog {
            items: None,
            focus: Focus::Cancel,
            scroll: 0,
        }));
        return vec![state.send(Request::CleanupPlan)];
    }
    let Some(rel) = state.target_release() else {
        return Vec::new();
    };
    let (kind, allowed, wanted) = match action {
        Action::Approve => (
            ConfirmAction::Approve,
            matches!(rel.state, ReleaseState::Ready | ReleaseState::Approved),
            "only a ready release can be approved",
        ),
        Action::Promote => (
            ConfirmAction::Promote,
            matches!(rel.state, ReleaseState::Ready | ReleaseState::Approved),
            "only an approved release can be promoted",
        ),
        Action::Rollback => (
            ConfirmAction::Rollback,
            matches!(
                rel.state,
                ReleaseState::Superseded | ReleaseState::RolledBack
            ),
            "rollback goes back to a release that was live before (superseded or rolled back)",
        ),
        Action::Restore => (
            ConfirmAction::Restore,
            rel.recovery_snapshot.is_some(),
            "only a release that applied migrations to production has a recovery point",
        ),
        // A rolling release is production's live one (the engine says if nothing rolls).
        Action::RolloutContinue => (
            ConfirmAction::RolloutContinue,
            rel.state == ReleaseState::Live,
            "only the live release can have a rollout in progress",
        ),
        Action::RolloutAbort => (
            ConfirmAction::RolloutAbort,
            rel.state == ReleaseState::Live,
            "only the live release can have a rollout in progress",
        ),
        _ => (
            ConfirmAction::Abandon,
            rel.state.is_candidate() || rel.state == ReleaseState::Blocked,
            "only a candidate (previewing, ready, approved or blocked) can be abandoned",
        ),
    };
    if !allowed {
        let text = format!("Release {} is {}; {wanted}.", rel.id, rel.state);
        state.toast(ToastKind::Error, text);
        return Vec::new();
    }
    let confirm = Confirm {
        action: kind,
        release: rel.id.clone(),
        label: rel.label.clone(),
        author: rel.author.clone(),
        state: rel.state.to_string(),
        input: String::new(),
        focus: Focus::Cancel,
        preview: None,
        recovery: None,
        scroll: 0,
    };
    let id = rel.id.clone();
    state.dialog = Some(Dialog::Confirm(confirm));
    match kind {
        ConfirmAction::Promote => vec![state.send(Request::PromotePreview(id))],
        ConfirmAction::Rollback => vec![state.send(Request::RollbackPreview(id))],
        ConfirmAction::Restore => vec![state.send(Request::RestorePreview(id))],
        _ => Vec::new(),
    }
}

/// A key or click while a dialog is open.
pub fn dialog(state: &mut State, action: Action) -> Vec<Effect> {
    let Some(open) = state.dialog.as_mut() else {
        return Vec::new();
    };
    let press = match (open, action) {
        (_, Action::Cancel) => {
            // Esc drops what the dialog was waiting for: a comparison still running is
            // interrupted, its answer ignored.
            let loading = state.dialog.as_ref().is_some_and(Dialog::loading);
            state.dialog = None;
            return if loading {
                vec![Effect::Cancel]
            } else {
                Vec::new()
            };
        }
        (Dialog::Quit(_), Action::ForceQuit | Action::Quit) => {
            state.quit = true;
            return Vec::new();
        }
        (Dialog::Undo(u), Action::Input(ch)) => {
            if u.input.chars().count() < 200 {
                u.input.push(ch);
            }
            false
        }
        (Dialog::Undo(u), Action::Backspace) => {
            u.input.pop();
            false
        }
        (Dialog::Undo(u), Action::FocusNext | Action::FocusPrev) => {
            u.focus = u.focus.toggle();
            false
        }
        (Dialog::Undo(u), Action::Down | Action::WheelDown | Action::PageDown) => {
            let n = u.preview.as_ref().map_or(0, |p| match p {
                Ok(p) => p.lines.len() * 2 + 4,
                Err(_) => 0,
            });
            u.scroll = (u.scroll + 1).min(n);
            false
        }
        (Dialog::Undo(u), Action::Up | Action::WheelUp | Action::PageUp) => {
            u.scroll = u.scroll.saturating_sub(1);
            false
        }
        (Dialog::Quit(q), Action::FocusNext | Action::FocusPrev) => {
            q.focus = q.focus.toggle();
            false
        }
        (Dialog::Confirm(c), Action::Down | Action::WheelDown | Action::PageDown) => {
            c.scroll = (c.scroll + 1).min(c.scroll_limit());
            false
        }
        (Dialog::Confirm(c), Action::Up | Action::WheelUp | Action::PageUp) => {
            c.scroll = c.scroll.saturating_sub(1);
            false
        }
        (Dialog::Confirm(c), Action::Input(ch)) => {
            if c.input.chars().count() < 200 {
                c.input.push(ch);
            }
            false
        }
        (Dialog::Confirm(c), Action::Backspace) => {
            c.input.pop();
            false
        }
        (Dialog::Confirm(c), Action::FocusNext | Action::FocusPrev) => {
            c.focus = c.focus.toggle();
            false
        }
        (Dialog::Cleanup(c), Action::FocusNext | Action::FocusPrev) => {
            c.focus = c.focus.toggle();
            false
        }
        (Dialog::Index(c), Action::FocusNext | Action::FocusPrev) => {
            c.focus = c.focus.toggle();
            false
        }
        (Dialog::Cleanup(c), Action::Down | Action::WheelDown | Action::PageDown) => {
            let n = match &c.items {
                Some(Ok(items)) => items.len(),
                _ => 0,
            };
            c.scroll = (c.scroll + 1).min(n.saturating_sub(1));
            false
        }
        (Dialog::Cleanup(c), Action::Up | Action::WheelUp | Action::PageUp) => {
            c.scroll = c.scroll.saturating_sub(1);
            false
        }
        (_, Action::Press) => true,
        _ => false,
    };
    if press {
        press_focused(state)
    } else {
        Vec::new()
    }
}

fn press_focused(state: &mut State) -> Vec<Effect> {
    let Some(open) = state.dialog.take() else {
        return Vec::new();
    };
    match open {
        Dialog::Confirm(c) if c.focus == Focus::Confirm => {
            if let Some(why) = c.blocked_by() {
                state.toast(ToastKind::Error, why);
                state.dialog = Some(Dialog::Confirm(c));
                return Vec::new();
            }
            vec![state.send(c.request())]
        }
        Dialog::Cleanup(c) if c.focus == Focus::Confirm => match c.request() {
            Some(req) => vec![state.send(req)],
            None => {
                state.dialog = Some(Dialog::Cleanup(c));
                Vec::new()
            }
        },
        Dialog::Index(c) if c.focus == Focus::Confirm => vec![state.send(c.request())],
        Dialog::Undo(u) if u.focus == Focus::Confirm => {
            if let Some(why) = u.blocked_by() {
                state.toast(ToastKind::Error, why);
                state.dialog = Some(Dialog::Undo(u));
                return Vec::new();
            }
            vec![state.send(Request::RestoreUndo)]
        }
        Dialog::Quit(q) if q.focus == Focus::Confirm => {
            state.quit = true;
            Vec::new()
        }
        Dialog::Quit(q) => {
            state.quit_when_idle = true;
            state.toast(
                ToastKind::Info,
                format!("The console quits as soon as {} finishes.", q.what),
            );
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// `q` at the top level (and Ctrl-C): quit at once, unless a write to production is in
/// flight — then say so and offer to wait for it or to leave it to recovery.
pub fn quit(state: &mut State) -> Vec<Effect> {
    match state.write_in_flight() {
        Some(what) if !state.quit_when_idle => {
            state.dialog = Some(Dialog::Quit(QuitDialog {
                what: what.to_string(),
                focus: Focus::Cancel,
            }));
        }
        _ => state.quit = true,
    }
    Vec::new()
}

/// `U` on the Releases tab: undo the last restore, as `restore --undo` does.
pub fn start_undo(state: &mut State) -> Vec<Effect> {
    if state.info.readonly {
        return read_only(state, "undoing a restore");
    }
    if state.tab != Tab::Releases && state.detail.is_none() {
        return Vec::new();
    }
    state.dialog = Some(Dialog::Undo(UndoDialog {
        input: String::new(),
        focus: Focus::Cancel,
        preview: None,
        scroll: 0,
    }));
    vec![state.send(Request::RestoreUndoPreview)]
}

/// `K` on the Monitor: acknowledge the live release's regressed watch, when it alerts.
pub fn ack_watch(state: &mut State) -> Vec<Effect> {
    if state.info.readonly {
        return read_only(state, "acknowledge the watch");
    }
    if !state.data.watch.as_ref().is_some_and(|w| w.alert) {
        state.toast(
            ToastKind::Info,
            "Nothing to acknowledge: the live release's watch raised no alert.",
        );
        return Vec::new();
    }
    vec![state.send(Request::AckWatch)]
}

/// A dangerous key in a read-only console: say why nothing happens.
pub fn read_only(state: &mut State, what: &str) -> Vec<Effect> {
    state.toast(
        ToastKind::Info,
        format!("read-only console: {what} is disabled (opened with --readonly)"),
    );
    Vec::new()
}

/// `i` on the Monitor: confirm writing the selected query's suggested index.
pub fn start_write_index(state: &mut State) -> Vec<Effect> {
    if state.info.readonly || state.tab != Tab::Monitor {
        return Vec::new();
    }
    let Some(query) = state.monitor.selected_query() else {
        state.toast(ToastKind::Error, "Select a query first (j/k).");
        return Vec::new();
    };
    let text = format::one_line(&query.text, 60);
    let suggestion = match state.monitor.selected_plan() {
        None => Err(format!("The plan of `{text}` is still being read.")),
        Some(Err(e)) => Err(format!("No plan for `{text}`: {e}")),
        Some(Ok(p)) => match (&p.suggestion, &p.error) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(e)) => Err(format!("No plan for `{text}`: {e}")),
            (None, None) if p.scans.is_empty() => Err(format!(
                "`{text}` does not scan a table: no index to suggest."
            )),
            (None, None) => Err(format!(
                "`{text}` scans {}, but no simple index on its compared columns would help.",
                p.scans.join(", ")
            )),
        },
    };
    match suggestion {
        Ok(suggestion) => {
            state.dialog = Some(Dialog::Index(IndexDialog {
                suggestion,
                focus: Focus::Cancel,
            }));
        }
        Err(why) => state.toast(ToastKind::Info, why),
    }
    Vec::new()
}

/// A worker reply.
pub fn on_reply(state: &mut State, reply: Reply) -> Vec<Effect> {
    // A stage report is not an answer: the request is still running.
    if let Reply::Progress(stage) = reply {
        state.stage = Some(stage);
        return Vec::new();
    }
    state.answered();
    if state.quit_when_idle && state.write_in_flight().is_none() {
        state.quit = true;
    }
    match reply {
        // Handled above.
        Reply::Progress(_) => {}
        Reply::Snapshot(result) => {
            state.refresh_pending = false;
            state.last_refresh = Some(state.now);
            match result {
                Ok(snap) => {
                    state.set_snapshot(*snap);
                    state.load_error = None;
                }
                Err(e) => {
                    if state.load_error.as_deref() != Some(e.as_str()) {
                        state.toast(ToastKind::Error, e.clone());
                    }
                    state.load_error = Some(e);
                }
            }
        }
        Reply::Detail { id, result } => {
            if let Some(d) = state.detail.as_mut().filter(|d| d.id == id) {
                match result {
                    Ok(data) => {
                        d.data = Some(data);
                        d.error = None;
                    }
                    Err(e) => d.error = Some(e),
                }
            }
        }
        Reply::PromotePreview { id, result } => {
            if let Some(Dialog::Confirm(c)) = state.dialog.as_mut()
                && c.release == id
                && c.action == ConfirmAction::Promote
            {
                c.preview = Some(result);
            }
        }
        Reply::RecoveryPreview { id, result } => {
            if let Some(Dialog::Confirm(c)) = state.dialog.as_mut()
                && c.release == id
                && matches!(c.action, ConfirmAction::Rollback | ConfirmAction::Restore)
            {
                c.recovery = Some(result);
            }
        }
        Reply::UndoPreview(result) => {
            if let Some(Dialog::Undo(u)) = state.dialog.as_mut() {
                u.preview = Some(result);
            }
        }
        Reply::CleanupPlan(result) => {
            if let Some(Dialog::Cleanup(c)) = state.dialog.as_mut() {
                c.items = Some(result);
            }
        }
        Reply::Monitor(result) => return tabs::on_monitor(state, result),
        Reply::QueryPlan { env, text, result } => {
            state
                .monitor
                .plans_pending
                .remove(&(env.clone(), text.clone()));
            state.monitor.plans.insert((env, text), result);
        }
        Reply::Capacity(result) => tabs::on_capacity(state, result),
        Reply::Outcome { ok, text } => {
            let kind = if ok {
                ToastKind::Success
            } else {
                ToastKind::Error
            };
            state.toast(kind, text);
            let mut out = state.refresh(true);
            out.extend(tabs::after_action(state));
            return out;
        }
    }
    Vec::new()
}
