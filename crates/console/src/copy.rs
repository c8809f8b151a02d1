//! `y`: what "the selected thing" is in each view (a release id, a migration's SQL, the
//! suggested index, an error) and the OSC 52 sequence that puts it on the clipboard.
//!
//! Pure: the shell writes the sequence to the terminal; nothing here does I/O.
use crate::state::{DetailTab, State, Tab};

/// The text `y` copies in the current view, with what it is (for the toast).
pub fn selection(state: &State) -> Option<(&'static str, String)> {
    if let Some(i) = state.alerts_open {
        return (crate::alerts::list(state).get(i)).map(|a| ("the alert", a.what.clone()));
    }
    if let Some(d) = &state.detail {
        let data = d.data.as_ref();
        return match d.tab {
            DetailTab::Migrations => {
                let sql: Vec<String> = (data?.detail.migrations.iter())
                    .filter(|m| m.pending)
                    .map(|m| format!("-- {}\n{}", m.name, m.sql.trim_end()))
                    .collect();
                if sql.is_empty() {
                    Some(("the release id", d.id.clone()))
                } else {
                    Some(("the migrations' SQL", sql.join("\n\n")))
                }
            }
            DetailTab::Failure => match data.and_then(|x| x.detail.release.failure.as_ref()) {
                Some(f) => Some(("the error", f.error.clone())),
                None => Some(("the release id", d.id.clone())),
            },
            _ => Some(("the release id", d.id.clone())),
        };
    }
    match state.tab {
        Tab::Releases => state
            .selected_release()
            .map(|r| ("the release id", r.id.clone())),
        Tab::Environments => (state.envs.current())
            .and_then(|i| state.data.envs.get(i))
            .map(|e| ("the environment's name", e.env.name.clone())),
        Tab::Audit => (state.audit.current())
            .and_then(|i| state.data.audit.get(i))
            .map(|e| match &e.release_id {
                Some(id) => ("the release id", id.clone()),
                None => ("the event", format!("{} {}", e.action, e.detail)),
            }),
        Tab::Monitor => {
            let q = state.monitor.selected_query()?;
            match state.monitor.selected_plan() {
                Some(Ok(p)) if p.suggestion.is_some() => {
                    (p.suggestion.as_ref()).map(|s| ("the suggested index", format!("{};", s.sql)))
                }
                _ => Some(("the query", q.text.clone())),
            }
        }
        Tab::Capacity => None,
    }
}

/// The OSC 52 sequence that sets the clipboard to `text` (BEL-terminated, which tmux and
/// most terminals accept).
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }
}
