//! Text every crate shows, one home each: one-line messages, thousands separators, byte
//! sizes and compact ages. Plain functions over plain values; no I/O, no clock reads (the
//! caller passes `now`).
use chrono::{DateTime, Utc};

/// Folds whitespace and shortens text for one-line messages.
pub fn one_line(s: &str, max: usize) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() > max {
        let cut: String = folded.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        folded
    }
}

/// Formats a count with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count and its noun, singular for one: `1 error`, `0 errors`, `1,234 errors`.
pub fn count_of(n: u64, singular: &str, plural: &str) -> String {
    format!(
        "{} {}",
        thousands(n),
        if n == 1 { singular } else { plural }
    )
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

/// A size in a message about a limit or free space: whole units when the size is a whole
/// number of them (`10 MiB`, `4 KiB`), else one decimal (`18.4 MiB`); `N bytes` below 1 KiB.
pub fn size(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (unit, name) in UNITS {
        if n >= unit {
            return if n.is_multiple_of(unit) {
                format!("{} {name}", n / unit)
            } else {
                format!("{:.1} {name}", n as f64 / unit as f64)
            };
        }
    }
    format!("{n} bytes")
}

/// A compact duration from seconds: `42s`, `5m`, `3h`, `12d`.
pub fn secs(s: u64) -> String {
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// How long before `now` an RFC 3339 time was, as [`secs`]; `—` when the time is unknown.
pub fn age(at: &str, now: DateTime<Utc>) -> String {
    match crate::clock::parse_time(at) {
        Some(t) => secs((now - t).num_seconds().max(0) as u64),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(one_line("a\n  b   c", 10), "a b c");
        assert_eq!(one_line("abcdefghij", 5), "abcd…");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(size(10 << 20), "10 MiB");
        assert_eq!(size(4096), "4 KiB");
        assert_eq!(size(19_293_798), "18.4 MiB");
        assert_eq!(size(100), "100 bytes");
        assert_eq!(secs(59), "59s");
        assert_eq!(secs(7200), "2h");
        let now = crate::clock::parse_time("2026-01-01T12:00:00Z").expect("time");
        assert_eq!(age("2026-01-01T11:55:00Z", now), "5m");
        assert_eq!(age("not a time", now), "—");
    }
}
