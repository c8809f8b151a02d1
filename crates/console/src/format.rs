//! Small text formatters the views share: ages, byte sizes, clock, state markers.
//!
//! Every time shown is computed from the state's injected clock (`State::now`), never
//! from the system clock, so rendering is deterministic.
use chrono::{DateTime, Utc};

use crate::model::{ReleaseState, parse_time};

/// A compact age like `42s`, `5m`, `3h`, `12d`; `—` when the time is unknown.
pub fn age(at: &str, now: DateTime<Utc>) -> String {
    let Some(t) = parse_time(at) else {
        return "—".into();
    };
    let secs = (now - t).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A compact duration from seconds, same units as [`age`].
pub fn secs(s: u64) -> String {
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Bytes in binary units: `812 B`, `48.0 KiB`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

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
