//! `update(&mut State, Action) -> Vec<Effect>`: the console's functional core. Every key,
//! click, tick and worker reply goes through here; it changes the state and returns the
//! engine requests to run. Pure: no I/O, no clock reads (time arrives as `Tick`).
//!
//! Navigation lives here; dialogs, actions and worker replies live in `flows`.
use crate::action::Action;
use crate::effects::{Effect, Request};
use crate::state::{Detail, DetailTab, State, Tab, ToastKind};
use crate::views::{self, layout};
use crate::{flows, tabs};

/// How often data is re-read while nothing else is happening.
pub const REFRESH_EVERY_SECS: i64 = 5;

/// Applies one action to the state.
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Tick(now) => return tick(state, now),
        Action::Reply(crate::effects::Reply::Progress(stage)) => {
            state.dirty = true;
            state.stage = Some(stage);
            return Vec::new();
        }
        Action::Reply(reply) => {
            state.dirty = true;
            state.stage = None;
            return flows::on_reply(state, reply);
        }
        _ => state.dirty = true,
    }
    match action {
        Action::Resize(w, h) => {
            state.width = w;
            state.height = h;
            Vec::new()
        }
        // Ctrl-C quits from anywhere (asking first while a write is in flight; a second
        // Ctrl-C in that question leaves the write to recovery).
        Action::ForceQuit => {
            if matches!(state.dialog, Some(crate::dialog::Dialog::Quit(_))) {
                state.quit = true;
                Vec::new()
            } else {
                flows::quit(state)
            }
        }
        action if state.help.is_some() => {
            help(state, action);
            Vec::new()
        }
        action if state.palette.is_some() => palette(state, action),
        action if state.alerts_open.is_some() => alerts(state, action),
        action if state.dialog.is_some() => flows::dialog(state, action),
        Action::Back | Action::Cancel
            if state.toasts.iter().any(|t| t.kind == ToastKind::Error) =>
        {
            // Esc first dismisses the errors (which stay until dismissed).
            state.toasts.clear();
            Vec::new()
        }
        action => main(state, action),
    }
}

/// A key while the command palette is open.
fn palette(state: &mut State, action: Action) -> Vec<Effect> {
    let Some(p) = state.palette.as_mut() else {
        return Vec::new();
    };
    match action {
        Action::Input(c) => {
            p.input.push(c);
            p.selected = 0;
        }
        Action::Backspace => {
            p.input.pop();
            p.selected = 0;
        }
        Action::Down => p.selected = p.selected.saturating_add(1),
        Action::Up => p.selected = p.selected.saturating_sub(1),
        Action::FocusNext => {
            let input = p.input.clone();
            let options = crate::palette::completions(state, &input);
            if let Some(p) = state.palette.as_mut()
                && let Some(c) = options.get(p.selected.min(options.len().saturating_sub(1)))
            {
                p.input = c.clone();
                p.selected = 0;
            }
        }
        Action::Cancel | Action::Quit => state.palette = None,
        Action::Accept => {
            let Some(p) = state.palette.take() else {
                return Vec::new();
            };
            return crate::palette::run(state, &p.input, p.selected);
        }
        _ => {}
    }
    Vec::new()
}

/// A key while the alerts list is open.
fn alerts(state: &mut State, action: Action) -> Vec<Effect> {
    let n = crate::alerts::list(state).len();
    let Some(sel) = state.alerts_open.as_mut() else {
        return Vec::new();
    };
    match action {
        Action::Down | Action::WheelDown => *sel = (*sel + 1).min(n.saturating_sub(1)),
        Action::Up | Action::WheelUp => *sel = sel.saturating_sub(1),
        Action::Alerts | Action::Cancel | Action::Back | Action::Quit => state.alerts_open = None,
        Action::Open => {
            let i = *sel;
            state.alerts_open = None;
            let Some(alert) = crate::alerts::list(state).into_iter().nth(i) else {
                return Vec::new();
            };
            return match alert.go {
                crate::alerts::Go::Tab(tab) => go_tab(state, tab.index()),
                crate::alerts::Go::Release(id) => {
                    let mut out = go_tab(state, Tab::Releases.index());
                    out.extend(open_release(state, id));
                    out
                }
                crate::alerts::Go::Limit(i) => {
                    state.capacity.selected = i;
                    go_tab(state, Tab::Capacity.index())
                }
            };
        }
        _ => {}
    }
    Vec::new()
}

fn tick(state: &mut State, now: chrono::DateTime<chrono::Utc>) -> Vec<Effect> {
    if state.now.timestamp() != now.timestamp() {
        state.dirty = true;
    }
    state.now = now;
    if state.busy() {
        state.spinner = state.spinner.wrapping_add(1);
        state.dirty = true;
    }
    let before = state.toasts.len();
    state.toasts.retain(|t| t.until > now);
    if state.toasts.len() != before {
        state.dirty = true;
    }
    let due = state
        .last_refresh
        .is_none_or(|t| (now - t).num_seconds() >= REFRESH_EVERY_SECS);
    if state.busy() {
        return Vec::new();
    }
    if due {
        return state.refresh(false);
    }
    tabs::due(state, now)
}

fn help(state: &mut State, action: Action) {
    let max = views::help_max_scroll(state);
    let Some(scroll) = state.help.as_mut() else {
        return;
    };
    match action {
        Action::Help | Action::Cancel | Action::Quit | Action::Back => state.help = None,
        Action::Down | Action::WheelDown => *scroll = (*scroll + 1).min(max),
        Action::Up | Action::WheelUp => *scroll = scroll.saturating_sub(1),
        Action::PageDown => *scroll = (*scroll + 10).min(max),
        Action::PageUp => *scroll = scroll.saturating_sub(10),
        Action::Top => *scroll = 0,
        Action::Bottom => *scroll = max,
        _ => {}
    }
}

fn main(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Up => return step(state, -1),
        Action::Down => return step(state, 1),
        Action::WheelUp => return step(state, -3),
        Action::WheelDown => return step(state, 3),
        Action::PageUp => return step(state, -(page(state) as isize)),
        Action::PageDown => return step(state, page(state) as isize),
        Action::Top => return step(state, isize::MIN / 2),
        Action::Bottom => return step(state, isize::MAX / 2),
        Action::Open => return open(state),
        Action::Back => back(state),
        Action::Quit => {
            if state.detail.is_some() {
                state.detail = None;
            } else {
                return flows::quit(state);
            }
        }
        Action::RestoreUndo => return flows::start_undo(state),
        Action::AckWatch => return flows::ack_watch(state),
        Action::Alerts => state.alerts_open = Some(0),
        Action::Palette => state.palette = Some(crate::palette::Palette::default()),
        Action::Copy => return copy(state),
        Action::ReadOnly(what) => return flows::read_only(state, what),
        Action::Filter => {
            if let Some(list) = state.list_mut() {
                list.editing = true;
            }
        }
        Action::Input(c) => edit_filter(state, Some(c)),
        Action::Backspace => edit_filter(state, None),
        Action::Accept => {
            if let Some(list) = state.list_mut() {
                list.editing = false;
            }
        }
        Action::Cancel => {
            if let Some(list) = state.list_mut() {
                list.editing = false;
                list.filter.clear();
            }
            let tab = state.tab;
            state.refilter(tab);
        }
        Action::Help => state.help = Some(0),
        Action::Refresh => {
            state.monitor.plans.clear();
            let mut out = state.refresh(true);
            out.extend(tabs::load(state));
            return out;
        }
        Action::NextTab => return go_tab(state, (state.tab.index() + 1) % Tab::ALL.len()),
        Action::PrevTab => {
            return go_tab(
                state,
                (state.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len(),
            );
        }
        Action::GoTab(tab) => return go_tab(state, tab.index()),
        Action::NextEnv => return tabs::next_env(state),
        Action::NextWindow => return tabs::next_window(state),
        Action::NextOrder => return tabs::next_order(state),
        Action::ToggleD1ops => return tabs::toggle_d1ops(state),
        Action::WriteIndex => return flows::start_write_index(state),
        Action::NextSub => sub(state, 1),
        Action::PrevSub => sub(state, DetailTab::ALL.len() - 1),
        Action::Approve
        | Action::Promote
        | Action::Abandon
        | Action::Cleanup
        | Action::Rollback
        | Action::Restore
        | Action::RolloutContinue
        | Action::RolloutAbort => {
            return flows::start(state, action);
        }
        Action::Click { col, row } => return click(state, col, row),
        _ => {}
    }
    Vec::new()
}

/// Rows per page in the current list or detail.
fn page(state: &State) -> usize {
    let r = layout::regions(state.width, state.height);
    layout::rows_area(r.body).height.max(1) as usize
}

fn step(state: &mut State, delta: isize) -> Vec<Effect> {
    let rows = page(state);
    if let Some(detail) = state.detail.as_ref() {
        let max = views::detail_line_count(state, detail).saturating_sub(rows);
        if let Some(d) = state.detail.as_mut() {
            d.scroll = (d.scroll as isize)
                .saturating_add(delta)
                .clamp(0, max as isize) as usize;
        }
        return Vec::new();
    }
    if matches!(state.tab, Tab::Monitor | Tab::Capacity) {
        return tabs::step(state, delta);
    }
    if let Some(list) = state.list_mut() {
        let last = list.visible.len().saturating_sub(1) as isize;
        list.selected = (list.selected as isize)
            .saturating_add(delta)
            .clamp(0, last) as usize;
        list.offset = layout::offset_for(list.selected, list.offset, rows);
    }
    Vec::new()
}

/// Shows a tab; the Monitor and Capacity ask for their data.
fn go_tab(state: &mut State, index: usize) -> Vec<Effect> {
    state.tab = Tab::ALL[index % Tab::ALL.len()];
    state.detail = None;
    tabs::load(state)
}

fn sub(state: &mut State, by: usize) {
    if let Some(d) = state.detail.as_mut() {
        let n = DetailTab::ALL.len();
        d.tab = DetailTab::ALL[(d.tab.index() + by) % n];
        d.scroll = 0;
    }
}

fn back(state: &mut State) {
    if state.detail.is_some() {
        state.detail = None;
    } else if let Some(list) = state.list_mut() {
        list.filter.clear();
        let tab = state.tab;
        state.refilter(tab);
    }
}

fn edit_filter(state: &mut State, c: Option<char>) {
    let tab = state.tab;
    if let Some(list) = state.list_mut() {
        match c {
            Some(c) => list.filter.push(c),
            None => {
                list.filter.pop();
            }
        }
        list.selected = 0;
        list.offset = 0;
    }
    state.refilter(tab);
}

/// Opens the release behind the selected row (a release, an environment's release, or
/// an audit event's release).
fn open(state: &mut State) -> Vec<Effect> {
    let id = match state.tab {
        Tab::Releases => state.selected_release().map(|r| r.id.clone()),
        Tab::Environments => (state.envs.current())
            .and_then(|i| state.data.envs.get(i))
            .and_then(|e| e.env.release_id.clone().or(e.env.active_release.clone())),
        Tab::Audit => (state.audit.current())
            .and_then(|i| state.data.audit.get(i))
            .and_then(|e| e.release_id.clone()),
        _ => None,
    };
    match id {
        Some(id) => open_release(state, id),
        None => Vec::new(),
    }
}

/// Opens the detail of release `id` and asks the worker for it.
pub fn open_release(state: &mut State, id: String) -> Vec<Effect> {
    state.detail = Some(Detail {
        id: id.clone(),
        tab: DetailTab::Migrations,
        scroll: 0,
        data: None,
        error: None,
    });
    vec![state.send(Request::Detail(id))]
}

fn click(state: &mut State, col: u16, row: u16) -> Vec<Effect> {
    let r = layout::regions(state.width, state.height);
    if row == r.header.y {
        // The header's alert count is a door to the alerts list.
        state.alerts_open = Some(0);
        return Vec::new();
    }
    if row == r.tabs.y {
        if let Some(tab) = layout::tab_at(r.tabs, col) {
            return go_tab(state, tab.index());
        }
        return Vec::new();
    }
    if let Some(d) = state.detail.as_mut() {
        if row == layout::subtabs_row(r.body)
            && let Some(t) = layout::subtab_at(r.body, col)
        {
            d.tab = t;
            d.scroll = 0;
        }
        return Vec::new();
    }
    let rows = layout::rows_area(r.body);
    if row < rows.y || row >= rows.y + rows.height {
        return Vec::new();
    }
    let Some(list) = state.list_mut() else {
        return Vec::new();
    };
    let offset = layout::offset_for(list.selected, list.offset, rows.height as usize);
    let index = offset + (row - rows.y) as usize;
    if index >= list.visible.len() {
        return Vec::new();
    }
    let again = index == list.selected;
    list.selected = index;
    list.offset = offset;
    if again { open(state) } else { Vec::new() }
}

/// `y`: the selected thing to the clipboard (OSC 52), and a toast saying what was copied.
fn copy(state: &mut State) -> Vec<Effect> {
    match crate::copy::selection(state) {
        Some((what, text)) => {
            let shown = crate::format::one_line(&text, 60);
            state.toast(ToastKind::Info, format!("Copied {what}: {shown}"));
            vec![Effect::Copy(text)]
        }
        None => {
            state.toast(ToastKind::Info, "Nothing here to copy.");
            Vec::new()
        }
    }
}
