//! The console's whole state as plain data: what the workspace holds (as last read by
//! the worker), where the operator is (tab, selection, filter, open release, dialog) and
//! what is going on (in-flight requests, toasts, clock).
//!
//! Views read it and never write it; only `update` (with `flows` and `tabs`) changes it.
//! What every flow does to it — queue an engine request (`send`, `refresh`), show a toast —
//! are methods here, so those modules share them without importing one another. It holds
//! no engine handle, so a state can be built directly from model structs (tests, benchmarks).
use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::data::{CapacityData, DetailData, Snapshot};
use crate::dialog::Dialog;
use crate::effects::{Effect, Request};
use crate::engine::view::{QueryStat, TopBy};
use crate::engine::{MonitorData, MonitorWindow, QueryPlan};
use crate::model::EnvKind;

/// The five top-level tabs, in key order `1`–`5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Environments,
    Releases,
    Monitor,
    Capacity,
    Audit,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Environments,
        Tab::Releases,
        Tab::Monitor,
        Tab::Capacity,
        Tab::Audit,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Environments => "Environments",
            Tab::Releases => "Releases",
            Tab::Monitor => "Monitor",
            Tab::Capacity => "Capacity",
            Tab::Audit => "Audit",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// The sub-views of a release detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailTab {
    Migrations,
    Schema,
    Gate,
    Probes,
    Code,
    History,
    Failure,
}

impl DetailTab {
    pub const ALL: [DetailTab; 7] = [
        DetailTab::Migrations,
        DetailTab::Schema,
        DetailTab::Gate,
        DetailTab::Probes,
        DetailTab::Code,
        DetailTab::History,
        DetailTab::Failure,
    ];

    pub fn title(self) -> &'static str {
        match self {
            DetailTab::Migrations => "Migrations",
            DetailTab::Schema => "Schema diff",
            DetailTab::Gate => "Gate",
            DetailTab::Probes => "Probes",
            DetailTab::Code => "Code",
            DetailTab::History => "Approvals",
            DetailTab::Failure => "Failure",
        }
    }

    pub fn index(self) -> usize {
        DetailTab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// Selection, scroll and filter of one list. `visible` holds the indices (into the data)
/// of the rows that match the filter, in display order; `selected` indexes `visible`.
#[derive(Debug, Clone, Default)]
pub struct ListState {
    pub selected: usize,
    pub offset: usize,
    pub filter: String,
    pub editing: bool,
    pub visible: Vec<usize>,
}

impl ListState {
    /// The data index of the selected row, if the list has one.
    pub fn current(&self) -> Option<usize> {
        self.visible.get(self.selected).copied()
    }
}

/// An open release detail.
#[derive(Debug, Clone)]
pub struct Detail {
    pub id: String,
    pub tab: DetailTab,
    pub scroll: usize,
    pub data: Option<Box<DetailData>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastKind {
    Info,
    Success,
    Error,
}

/// A short-lived message about an outcome.
#[derive(Debug, Clone)]
pub struct Toast {
    pub kind: ToastKind,
    pub text: String,
    pub until: DateTime<Utc>,
}

/// The orders the Monitor's top queries cycle through (`o`).
pub const TOP_ORDERS: [TopBy; 4] = [TopBy::TotalTime, TopBy::P95, TopBy::RowsRead, TopBy::Errors];

/// How the Monitor names an order.
pub fn order_label(order: TopBy) -> &'static str {
    match order {
        TopBy::TotalTime => "total time",
        TopBy::P95 => "p95",
        TopBy::RowsRead => "rows read",
        TopBy::Errors => "errors",
    }
}

/// The Monitor tab: what is chosen and what the worker last read.
#[derive(Debug, Clone)]
pub struct MonitorState {
    /// `None`: production.
    pub env: Option<String>,
    pub window: MonitorWindow,
    pub order: TopBy,
    /// The selected row of the top queries.
    pub selected: usize,
    pub data: Option<Result<Box<MonitorData>, String>>,
    /// Query plans by (environment, query text), as read.
    pub plans: HashMap<(String, String), Result<Box<QueryPlan>, String>>,
    /// Plans asked for and not answered yet.
    pub plans_pending: HashSet<(String, String)>,
    /// A Monitor request is in flight.
    pub pending: bool,
    pub last: Option<DateTime<Utc>>,
    /// The order changed (`o`): the next answer selects its top row instead of following
    /// the previously selected query, so the slowest query's plan is one key away.
    pub to_top: bool,
    /// `d`: d1ops' own statements are listed too (labelled `d1ops`).
    pub with_d1ops: bool,
}

impl Default for MonitorState {
    fn default() -> Self {
        MonitorState {
            env: None,
            window: MonitorWindow::Hour,
            order: TopBy::TotalTime,
            selected: 0,
            data: None,
            plans: HashMap::new(),
            plans_pending: HashSet::new(),
            pending: false,
            last: None,
            to_top: false,
            with_d1ops: false,
        }
    }
}

impl MonitorState {
    /// The environment shown.
    pub fn env_name(&self) -> &str {
        self.env.as_deref().unwrap_or(crate::model::PRODUCTION)
    }

    /// The selected top query, if the data has one.
    pub fn selected_query(&self) -> Option<&QueryStat> {
        match &self.data {
            Some(Ok(d)) => d.top.get(self.selected),
            _ => None,
        }
    }

    /// The selected query's plan, if read.
    pub fn selected_plan(&self) -> Option<&Result<Box<QueryPlan>, String>> {
        let q = self.selected_query()?;
        self.plans
            .get(&(self.env_name().to_string(), q.text.clone()))
    }
}

/// The Capacity tab: the selected limit (whose history is charted) and the data.
#[derive(Debug, Clone, Default)]
pub struct CapacityState {
    pub selected: usize,
    pub data: Option<Result<Box<CapacityData>, String>>,
    pub pending: bool,
    pub last: Option<DateTime<Utc>>,
}

/// Facts about the opened workspace that do not change while the console runs.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// How the header names the workspace.
    pub workspace: String,
    /// The workspace root as text, to show database paths relative to it.
    pub root: String,
    pub backend: String,
    /// The Cloudflare account the workspace talks to (cloudflare backend).
    pub account: Option<String>,
    pub actor: String,
    pub readonly: bool,
    /// `[policy] allow_self_approval`: whether an author may approve their own release.
    pub allow_self_approval: bool,
}

/// The console state.
#[derive(Debug, Clone)]
pub struct State {
    pub info: Info,
    pub data: Snapshot,
    /// Whether a snapshot has arrived yet (lists say "loading" until then).
    pub loaded: bool,
    /// The last refresh error, shown in place of data that could not be read.
    pub load_error: Option<String>,
    pub tab: Tab,
    pub envs: ListState,
    pub releases: ListState,
    pub audit: ListState,
    pub detail: Option<Detail>,
    pub monitor: MonitorState,
    pub capacity: CapacityState,
    pub dialog: Option<Dialog>,
    /// The help overlay's scroll position when it is open.
    pub help: Option<usize>,
    /// The alerts list's selected row when it is open (`!`).
    pub alerts_open: Option<usize>,
    /// The command palette when it is open (`:`).
    pub palette: Option<crate::palette::Palette>,
    pub toasts: Vec<Toast>,
    /// Labels of the requests in flight, oldest first (the worker answers in order).
    pub in_flight: VecDeque<String>,
    /// The oldest request's current stage, as the engine reports it (header spinner).
    pub stage: Option<String>,
    /// Beside `in_flight`: whether each request writes to production.
    pub in_flight_writes: VecDeque<bool>,
    /// The operator chose to quit once the write in flight finishes.
    pub quit_when_idle: bool,
    pub refresh_pending: bool,
    pub last_refresh: Option<DateTime<Utc>>,
    pub spinner: usize,
    pub now: DateTime<Utc>,
    pub width: u16,
    pub height: u16,
    /// False under `NO_COLOR`: markers stay, colours go.
    pub color: bool,
    pub dirty: bool,
    pub quit: bool,
}

impl State {
    pub fn new(info: Info, now: DateTime<Utc>, width: u16, height: u16) -> State {
        State {
            info,
            data: Snapshot::default(),
            loaded: false,
            load_error: None,
            tab: Tab::Releases,
            envs: ListState::default(),
            releases: ListState::default(),
            audit: ListState::default(),
            detail: None,
            monitor: MonitorState::default(),
            capacity: CapacityState::default(),
            dialog: None,
            help: None,
            alerts_open: None,
            palette: None,
            toasts: Vec::new(),
            in_flight: VecDeque::new(),
            stage: None,
            in_flight_writes: VecDeque::new(),
            quit_when_idle: false,
            refresh_pending: false,
            last_refresh: None,
            spinner: 0,
            now,
            width,
            height,
            color: true,
            dirty: true,
            quit: false,
        }
    }

    /// Replaces the workspace data (keeping selections by identity) and re-filters.
    pub fn set_snapshot(&mut self, snap: Snapshot) {
        let rel_id = self.selected_release().map(|r| r.id.clone());
        let env_name = self
            .envs
            .current()
            .and_then(|i| self.data.envs.get(i))
            .map(|e| e.env.name.clone());
        if self.live_release()
            != snap
                .production
                .as_ref()
                .and_then(|p| p.active_release.as_deref())
        {
            // Production's schema may have changed: plans read before are stale.
            self.monitor.plans.clear();
        }
        self.data = snap;
        self.loaded = true;
        self.refilter_all();
        if let Some(id) = rel_id
            && let Some(pos) = (self.releases.visible.iter())
                .position(|&i| self.data.releases.get(i).is_some_and(|r| r.id == id))
        {
            self.releases.selected = pos;
        }
        if let Some(name) = env_name
            && let Some(pos) = (self.envs.visible.iter())
                .position(|&i| self.data.envs.get(i).is_some_and(|e| e.env.name == name))
        {
            self.envs.selected = pos;
        }
    }

    /// Recomputes every list's visible rows from its filter.
    pub fn refilter_all(&mut self) {
        for tab in [Tab::Environments, Tab::Releases, Tab::Audit] {
            self.refilter(tab);
        }
    }

    /// Recomputes one list's visible rows and clamps its selection.
    pub fn refilter(&mut self, tab: Tab) {
        let data = &self.data;
        let Some(list) = (match tab {
            Tab::Environments => Some(&mut self.envs),
            Tab::Releases => Some(&mut self.releases),
            Tab::Audit => Some(&mut self.audit),
            _ => None,
        }) else {
            return;
        };
        let needle = list.filter.to_lowercase();
        let len = match tab {
            Tab::Environments => data.envs.len(),
            Tab::Releases => data.releases.len(),
            _ => data.audit.len(),
        };
        list.visible = if needle.is_empty() {
            (0..len).collect()
        } else {
            (0..len)
                .filter(|&i| haystack(data, tab, i).to_lowercase().contains(&needle))
                .collect()
        };
        list.selected = list.selected.min(list.visible.len().saturating_sub(1));
    }

    /// The list of the current tab, if it has one.
    pub fn list_mut(&mut self) -> Option<&mut ListState> {
        match self.tab {
            Tab::Environments => Some(&mut self.envs),
            Tab::Releases => Some(&mut self.releases),
            Tab::Audit => Some(&mut self.audit),
            _ => None,
        }
    }

    pub fn list(&self, tab: Tab) -> Option<&ListState> {
        match tab {
            Tab::Environments => Some(&self.envs),
            Tab::Releases => Some(&self.releases),
            Tab::Audit => Some(&self.audit),
            _ => None,
        }
    }

    /// The release selected in the Releases list.
    pub fn selected_release(&self) -> Option<&crate::model::Release> {
        self.releases
            .current()
            .and_then(|i| self.data.releases.get(i))
    }

    /// The release an action applies to: the open detail's, else the selected one.
    pub fn target_release(&self) -> Option<&crate::model::Release> {
        match &self.detail {
            Some(d) => self.data.releases.iter().find(|r| r.id == d.id),
            None if self.tab == Tab::Releases => self.selected_release(),
            None => None,
        }
    }

    /// The release production points at.
    pub fn live_release(&self) -> Option<&str> {
        self.data.production.as_ref()?.active_release.as_deref()
    }

    /// How many things need attention: the length of the alerts list (`crate::alerts`).
    pub fn alerts(&self) -> usize {
        crate::alerts::list(self).len()
    }

    /// Whether an engine request is running.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The effect that sends `req` to the worker, remembering what the spinner should say.
    pub fn send(&mut self, req: Request) -> Effect {
        self.in_flight.push_back(req.label());
        self.in_flight_writes.push_back(req.is_write());
        Effect::Engine(req)
    }

    /// Forgets the oldest request in flight (its answer arrived).
    pub fn answered(&mut self) {
        self.in_flight.pop_front();
        self.in_flight_writes.pop_front();
    }

    /// What the write to production in flight is doing, if one is.
    pub fn write_in_flight(&self) -> Option<&str> {
        (self.in_flight.iter().zip(&self.in_flight_writes))
            .find(|(_, w)| **w)
            .map(|(label, _)| label.as_str())
    }

    /// A refresh of the lists (unless one is already queued) and of the open detail.
    pub fn refresh(&mut self, with_detail: bool) -> Vec<Effect> {
        let mut out = Vec::new();
        if !self.refresh_pending {
            self.refresh_pending = true;
            out.push(self.send(Request::Refresh));
        }
        if with_detail && let Some(id) = self.detail.as_ref().map(|d| d.id.clone()) {
            out.push(self.send(Request::Detail(id)));
        }
        out
    }

    /// Shows a toast for a few seconds; an error stays until Esc dismisses it. At most three
    /// at a time.
    pub fn toast(&mut self, kind: ToastKind, text: impl Into<String>) {
        let until = if kind == ToastKind::Error {
            DateTime::<Utc>::MAX_UTC
        } else {
            self.now + Duration::seconds(6)
        };
        self.toasts.push(Toast {
            kind,
            text: text.into(),
            until,
        });
        if self.toasts.len() > 3 {
            self.toasts.remove(0);
        }
    }
}

/// The text a filter matches against for row `i` of a tab's list.
fn haystack(data: &Snapshot, tab: Tab, i: usize) -> String {
    match tab {
        Tab::Environments => data.envs.get(i).map_or_else(String::new, |e| {
            let kind = match e.env.kind {
                EnvKind::Production => "production",
                EnvKind::Preview => "preview",
            };
            format!(
                "{} {kind} {} {} {}",
                e.env.name,
                e.release_state.as_deref().unwrap_or(""),
                e.schema_head.as_deref().unwrap_or(""),
                e.stale.as_deref().unwrap_or("")
            )
        }),
        Tab::Releases => data.releases.get(i).map_or_else(String::new, |r| {
            format!(
                "{} {} {} {} {}",
                r.id,
                r.state,
                r.author,
                r.label.as_deref().unwrap_or(""),
                r.commit.as_deref().unwrap_or("")
            )
        }),
        _ => data.audit.get(i).map_or_else(String::new, |e| {
            format!(
                "{} {} {} {} {}",
                e.actor,
                e.action,
                e.release_id.as_deref().unwrap_or(""),
                e.env.as_deref().unwrap_or(""),
                e.detail
            )
        }),
    }
}
