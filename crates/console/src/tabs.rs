//! The Monitor and Capacity tabs in the functional core: which requests keep their data
//! fresh (on entering the tab, on `r`, and on a timer while shown — the Monitor every 2 s so
//! it moves while traffic flows), how their keys change the selection, and how the worker's
//! replies land. Pure like `update`: it only asks for engine work.
use chrono::{DateTime, Utc};

use crate::data::CapacityData;
use crate::effects::{Effect, Request};
use crate::engine::MonitorData;
use crate::state::{State, TOP_ORDERS, Tab, ToastKind};

/// How often the Monitor re-reads while it is shown.
pub const MONITOR_EVERY_SECS: i64 = 2;
/// How often the Capacity tab re-reads (and re-samples usage) while it is shown.
pub const CAPACITY_EVERY_SECS: i64 = 30;
/// Top queries the Monitor lists.
pub const TOP_QUERIES: usize = 20;

/// The Monitor's data for the current selection (unless a read is already running).
pub fn monitor_request(state: &mut State) -> Vec<Effect> {
    if state.monitor.pending {
        return Vec::new();
    }
    state.monitor.pending = true;
    let req = Request::Monitor {
        env: state.monitor.env.clone(),
        window: state.monitor.window,
        order: state.monitor.order,
        with_d1ops: state.monitor.with_d1ops,
    };
    vec![state.send(req)]
}

fn capacity_request(state: &mut State) -> Vec<Effect> {
    if state.capacity.pending {
        return Vec::new();
    }
    state.capacity.pending = true;
    vec![state.send(Request::Capacity)]
}

/// The shown tab's data, read now.
pub fn load(state: &mut State) -> Vec<Effect> {
    if state.detail.is_some() {
        return Vec::new();
    }
    match state.tab {
        Tab::Monitor => monitor_request(state),
        Tab::Capacity => capacity_request(state),
        _ => Vec::new(),
    }
}

/// An action finished (approve, promote, cleanup, rollback, restore, an index written):
/// whatever the Monitor and Capacity tabs show may have changed (previews deleted, databases
/// counted, the live release and its watch), so their data is re-read now if shown, else on
/// the next visit.
pub fn after_action(state: &mut State) -> Vec<Effect> {
    state.capacity.last = None;
    state.monitor.last = None;
    if state.detail.is_some() {
        return Vec::new();
    }
    match state.tab {
        Tab::Capacity => {
            // A read already queued ran before the action finished: ask again.
            state.capacity.pending = false;
            capacity_request(state)
        }
        Tab::Monitor => reload(state),
        _ => Vec::new(),
    }
}

/// Re-reads that are due at `now` for the shown tab.
pub fn due(state: &mut State, now: DateTime<Utc>) -> Vec<Effect> {
    let older = |last: Option<DateTime<Utc>>, secs: i64| {
        last.is_none_or(|t| (now - t).num_seconds() >= secs)
    };
    match state.tab {
        Tab::Monitor if older(state.monitor.last, MONITOR_EVERY_SECS) => load(state),
        Tab::Capacity if older(state.capacity.last, CAPACITY_EVERY_SECS) => load(state),
        _ => Vec::new(),
    }
}

/// `e`: the next environment with traffic (production first).
pub fn next_env(state: &mut State) -> Vec<Effect> {
    let envs = match &state.monitor.data {
        Some(Ok(d)) => d.envs.clone(),
        _ => return Vec::new(),
    };
    if envs.len() < 2 {
        state.toast(
            ToastKind::Info,
            "Only production has traffic; previews appear here once queries run on them.",
        );
        return Vec::new();
    }
    let current = state.monitor.env_name().to_string();
    let i = envs.iter().position(|e| *e == current).unwrap_or(0);
    let next = envs[(i + 1) % envs.len()].clone();
    state.monitor.env = (next != crate::model::PRODUCTION).then_some(next);
    state.monitor.selected = 0;
    reload(state)
}

/// `w`: the next window (5m → 1h → 24h → 7d).
pub fn next_window(state: &mut State) -> Vec<Effect> {
    state.monitor.window = state.monitor.window.next();
    reload(state)
}

/// `d`: list d1ops' own statements beside the app's (labelled), or not.
pub fn toggle_d1ops(state: &mut State) -> Vec<Effect> {
    state.monitor.with_d1ops = !state.monitor.with_d1ops;
    reload(state)
}

/// `o`: the next order of the top queries.
pub fn next_order(state: &mut State) -> Vec<Effect> {
    let i = (TOP_ORDERS.iter())
        .position(|o| *o == state.monitor.order)
        .unwrap_or(0);
    state.monitor.order = TOP_ORDERS[(i + 1) % TOP_ORDERS.len()];
    state.monitor.selected = 0;
    state.monitor.to_top = true;
    reload(state)
}

/// A new selection: read now even if a timed read is queued, so the screen follows the key.
fn reload(state: &mut State) -> Vec<Effect> {
    state.monitor.pending = false;
    monitor_request(state)
}

/// Moves the Monitor's query selection or the Capacity tab's limit selection.
pub fn step(state: &mut State, delta: isize) -> Vec<Effect> {
    let clamp = |current: usize, len: usize| {
        (current as isize)
            .saturating_add(delta)
            .clamp(0, len.saturating_sub(1) as isize) as usize
    };
    match state.tab {
        Tab::Monitor => {
            let len = match &state.monitor.data {
                Some(Ok(d)) => d.top.len(),
                _ => 0,
            };
            state.monitor.selected = clamp(state.monitor.selected, len);
            plan_request(state)
        }
        Tab::Capacity => {
            let len = match &state.capacity.data {
                Some(Ok(d)) => d.forecast.items.len(),
                _ => 0,
            };
            state.capacity.selected = clamp(state.capacity.selected, len);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The selected query's plan, unless it is known or already asked for.
pub fn plan_request(state: &mut State) -> Vec<Effect> {
    let Some(q) = state.monitor.selected_query() else {
        return Vec::new();
    };
    let key = (state.monitor.env_name().to_string(), q.text.clone());
    if state.monitor.plans.contains_key(&key) || state.monitor.plans_pending.contains(&key) {
        return Vec::new();
    }
    state.monitor.plans_pending.insert(key.clone());
    let (env, text) = key;
    vec![state.send(Request::QueryPlan { env, text })]
}

/// The Monitor's data arrived: keep the selected query by identity, then its plan.
pub fn on_monitor(state: &mut State, result: Result<Box<MonitorData>, String>) -> Vec<Effect> {
    let m = &state.monitor;
    if let Ok(d) = &result
        && (d.env != m.env_name() || d.window != m.window || d.order != m.order)
    {
        // The answer to a read made before the selection changed; the newer read follows.
        return Vec::new();
    }
    state.monitor.pending = false;
    state.monitor.last = Some(state.now);
    let selected_fp = if std::mem::take(&mut state.monitor.to_top) {
        state.monitor.selected = 0;
        None
    } else {
        (state.monitor.selected_query()).map(|q| q.fingerprint_id.clone())
    };
    if let Ok(d) = &result {
        if let Some(fp) = selected_fp
            && let Some(i) = d.top.iter().position(|q| q.fingerprint_id == fp)
        {
            state.monitor.selected = i;
        }
        state.monitor.selected = state.monitor.selected.min(d.top.len().saturating_sub(1));
    }
    state.monitor.data = Some(result);
    plan_request(state)
}

/// The Capacity tab's data arrived.
pub fn on_capacity(state: &mut State, result: Result<Box<CapacityData>, String>) {
    state.capacity.pending = false;
    state.capacity.last = Some(state.now);
    if let Ok(d) = &result {
        let n = d.forecast.items.len();
        state.capacity.selected = state.capacity.selected.min(n.saturating_sub(1));
    }
    state.capacity.data = Some(result);
}
