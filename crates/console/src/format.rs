//! Small text formatters the views share: clock, state markers, clipping, audit details;
//! ages, byte sizes, counts and one-line messages are the core's (`d1ops_core::text`, the
//! one home every crate uses), re-exported here so the views have one module to ask.
//!
//! Every time shown is computed from the state's injected clock (`State::now`), never
//! from the system clock, so rendering is deterministic.
use chrono::{DateTime, Utc};

use crate::model::ReleaseState;

pub use d1ops_core::text::{age, bytes, count_of, one_line, secs, thousands};

/// The header clock.
pub fn clock(now: DateTime<Utc>) -> String {
    now.format("%H:%M:%S UTC").to_string()
}

/// The text marker of a release state: a symbol plus the state's name, so the state is
/// readable without colour.
pub fn state_marker(s: ReleaseState) -> String {
    let sym = match s {
        ReleaseState::Live => "●",
        ReleaseState::Approved => "◆",
        ReleaseState::Ready => "○",
        ReleaseState::Previewing | ReleaseState::Promoting => "◌",
        ReleaseState::Blocked => "■",
        ReleaseState::Failed => "✗",
        ReleaseState::Superseded | ReleaseState::Abandoned => "·",
        ReleaseState::RolledBack | ReleaseState::Reverted => "↺",
    };
    format!("{sym} {}", s.as_str())
}

/// Shortens `s` to `max` characters with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A path shown relative to the workspace root when it lies inside it.
pub fn relative(path: &str, root: &str) -> String {
    match path.strip_prefix(root) {
        Some(rest) if !root.is_empty() => rest.trim_start_matches(['/', '\\']).to_string(),
        _ => path.to_string(),
    }
}

/// An audit event's JSON detail as compact `key=value` pairs (nulls and empties left out).
pub fn audit_detail(detail: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(detail)
    else {
        return detail.to_string();
    };
    let value = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    map.iter()
        .filter(|(_, v)| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)))
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}
