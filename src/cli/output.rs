//! Human output helpers: aligned tables, sizes, ages, (TTY-only, NO_COLOR-aware) colour, and
//! terminal-safe rendering of text that came from users, files or databases.
//!
//! Terminal safety: labels, notes, user names, file names, SQL, error messages and audit
//! details are chosen by whoever deployed, named a file or wrote a row. Printed raw, an ESC or
//! BEL in them is a terminal command (retitle the window, clear the screen, hide the rest of
//! the line), a CR or LF forges a line that looks like d1ops' own, and a bidi override makes
//! text read differently than it is. Every such character is shown as a visible escape
//! instead (`safe`, `safe_lines`); only the colour codes `paint` adds reach the terminal.
use std::fmt::Write as _;
use std::io::IsTerminal;

/// Whether stdout gets ANSI colour: a terminal, and `NO_COLOR` unset.
pub fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Wraps `text` in an ANSI colour when colour is on. The text is escaped first (`safe` is
/// idempotent, so already escaped text is unchanged): only our own colour codes are raw.
pub fn paint(text: &str, code: &str) -> String {
    let text = safe(text);
    if colour_enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text
    }
}

/// What `safe` escapes (the same characters a user name may not hold).
pub use crate::model::is_unsafe_char;

/// Whether `text` holds any character `safe` would escape.
pub fn has_unsafe_chars(text: &str) -> bool {
    text.chars().any(is_unsafe_char)
}

/// `text` for one line of terminal output (a table cell, a name, a sentence): every unsafe
/// character (`is_unsafe_char`) becomes a visible escape — `\n`, `\r`, `\t`, `\x1b` for the
/// other C0 controls and DEL, `\u{9b}` for C1 controls and the Unicode format characters.
/// The result holds no control character, so escaping it again changes nothing.
pub fn safe(text: &str) -> String {
    escape(text, false)
}

/// Like `safe` for multi-line text (SQL, a Markdown report): newlines and tabs stay as they
/// are, every other unsafe character (CR included: it would overwrite the line) is escaped.
pub fn safe_lines(text: &str) -> String {
    escape(text, true)
}

/// `opt` for text from users: the value escaped, `-` when absent.
pub fn safe_opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "-".into(), safe)
}

fn escape(text: &str, keep_lines: bool) -> String {
    if !has_unsafe_chars(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' if keep_lines => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
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

/// Prints rows as an aligned table with a header; cells may contain colour codes. Callers
/// escape what they put in cells (`safe`, `paint`); as a second line of defence every other
/// control character left in a cell is escaped here too, so a cell can at most carry a colour.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = (rows.iter())
        .map(|row| row.iter().map(|c| keep_colours_only(c)).collect())
        .collect();
    let visible = |s: &str| strip_ansi(s).chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
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
        line(row, &mut out);
    }
    out
}

/// `cell` with its SGR colour sequences (`ESC [ digits/semicolons m`, what `paint` writes)
/// kept and every other unsafe character escaped.
fn keep_colours_only(cell: &str) -> String {
    if !has_unsafe_chars(cell) {
        return cell.to_string();
    }
    let mut out = String::with_capacity(cell.len());
    let mut rest = cell;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&safe(&rest[..at]));
        let after = &rest[at + 1..];
        let params = after.strip_prefix('[').map(|p| {
            p.len()
                - p.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                    .len()
        });
        match params {
            Some(n) if after[1 + n..].starts_with('m') => {
                out.push_str(&rest[at..at + 3 + n]);
                rest = &after[2 + n..];
            }
            _ => {
                out.push_str("\\x1b");
                rest = after;
            }
        }
    }
    out.push_str(&safe(rest));
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

/// Byte sizes (`1.5 KiB`), from the one text module.
pub use d1ops_sql::text::bytes;

/// How long ago an RFC 3339 time was (`3m`, `5h`, `12d`; `—` when unknown), on d1ops' clock.
pub fn age(at: &str) -> String {
    d1ops_sql::text::age(at, crate::model::now_utc())
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

    #[test]
    fn safe_shows_escape_and_bell_instead_of_sending_them() {
        assert_eq!(
            safe("a\x1b]0;pwned\x07b\x1b[2J"),
            "a\\x1b]0;pwned\\x07b\\x1b[2J"
        );
        assert!(!safe("\x1b\x07\x00\x7f").chars().any(|c| c.is_control()));
        assert_eq!(safe("\x00\x7f"), "\\x00\\x7f");
    }

    #[test]
    fn safe_cannot_forge_a_line() {
        assert_eq!(safe("bob\nd1ops: ok\rx\ty"), "bob\\nd1ops: ok\\rx\\ty");
    }

    #[test]
    fn safe_shows_c1_controls_and_bidi_overrides() {
        // U+009B is a one-byte CSI on terminals that honour C1 controls.
        assert_eq!(safe("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(safe("\u{85}"), "\\u{85}");
        assert_eq!(safe("user\u{202e}nimda"), "user\\u{202e}nimda");
        for c in [
            '\u{202a}', '\u{202d}', '\u{2066}', '\u{2069}', '\u{200f}', '\u{2028}',
        ] {
            assert!(safe(&c.to_string()).starts_with("\\u{"), "{c:?}");
        }
    }

    #[test]
    fn safe_leaves_ordinary_text_alone() {
        for text in [
            "alice",
            "0001_users.sql",
            "café ✓ → 日本",
            "a\\x1b stays",
            "",
        ] {
            assert_eq!(safe(text), text);
        }
    }

    #[test]
    fn safe_is_idempotent() {
        let once = safe("\x1b[2J\u{202e}\n");
        assert_eq!(safe(&once), once);
    }

    #[test]
    fn safe_lines_keeps_newlines_and_tabs_only() {
        assert_eq!(
            safe_lines("SELECT 1;\n\tSELECT '\x1b[2J';\r\n"),
            "SELECT 1;\n\tSELECT '\\x1b[2J';\\r\n"
        );
    }

    #[test]
    fn paint_escapes_its_text_but_not_its_colour() {
        // Colour depends on the test's stdout; either way only paint's own ESC may remain.
        let painted = paint("x\x1b[2Jy", RED);
        assert!(strip_ansi(&painted).contains("x\\x1b[2Jy"), "{painted:?}");
        assert!(!painted.contains("\x1b[2J"), "{painted:?}");
    }

    #[test]
    fn table_keeps_colours_and_escapes_everything_else() {
        let t = table(
            &["a"],
            &[vec!["\x1b[31mred\x1b[0m \x1b]0;t\x07 \x1b[2J".into()]],
        );
        let row = t.lines().nth(1).expect("row");
        assert!(row.starts_with("\x1b[31mred\x1b[0m "), "{row:?}");
        assert!(row.ends_with("\\x1b]0;t\\x07 \\x1b[2J"), "{row:?}");
        assert!(!row.contains('\x07'));
    }

    #[test]
    fn safe_opt_escapes_and_defaults() {
        assert_eq!(safe_opt(&None), "-");
        assert_eq!(safe_opt(&Some("a\x1bb".into())), "a\\x1bb");
    }
}
