//! Human output helpers: aligned tables, sizes, ages and (TTY-only, NO_COLOR-aware) colour.
use std::io::IsTerminal;

/// Whether stdout gets ANSI colour: a terminal, and `NO_COLOR` unset.
pub fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Wraps `text` in an ANSI colour when colour is on.
pub fn paint(text: &str, code: &str) -> String {
    if colour_enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub const GREEN: &str = "32";
pub const RED: &str = "31";
pub const YELLOW: &str = "33";
pub const CYAN: &str = "36";
pub const DIM: &str = "2";
pub const BOLD: &str = "1";

/// Colour for a release state or check status word.
pub fn status_colour(word: &str) -> &'static str {
    match word {
        "live" | "ready" | "approved" | "pass" | "✓" => GREEN,
        "failed" | "blocked" | "fail" | "✗" => RED,
        "previewing" | "promoting" | "warn" | "!" => YELLOW,
        _ => DIM,
    }
}

/// Prints rows as an aligned table with a header; cells may contain colour codes.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let visible = |s: &str| strip_ansi(s).chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(visible(cell));
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let n = cells.len();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(&cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - visible(&cell) + 2));
            }
        }
        out.push('\n');
    };
    line(header.iter().map(|h| paint(h, BOLD)).collect(), &mut out);
    for row in rows {
        line(row.clone(), &mut out);
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How long ago an RFC 3339 time was: "3m", "5h", "12d".
pub fn age(at: &str) -> String {
    let Some(t) = crate::model::parse_time(at) else {
        return "?".into();
    };
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A short form of a release id for tables (the full id is accepted everywhere, and so is any
/// unique prefix).
pub fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn table_aligns_ignoring_colour() {
        let t = table(
            &["a", "bb"],
            &[vec!["\x1b[31mxxx\x1b[0m".into(), "y".into()]],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(strip_ansi(lines[1]), "xxx  y");
    }
}
