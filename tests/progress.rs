//! Progress on stderr (issue 15 item 12) is for a person at a terminal only: a deploy long
//! enough to report every stage (copy, apply, probes, lint), piped or under `--json`, writes
//! no progress text — its stderr is what it was without progress (nothing) and its stdout
//! is the command's output alone.
mod common;

use common::Ws;

/// Marks of a drawn bar or its stage names: carriage returns, escape sequences, the stage
/// prefixes.
fn has_progress_text(s: &str) -> bool {
    s.contains('\r')
        || s.contains('\u{1b}')
        || ["lint ", "apply ", "copy ", "probes "]
            .iter()
            .any(|stage| s.lines().any(|l| l.trim_start().starts_with(stage)))
}

#[test]
fn piped_and_json_output_carry_no_progress() {
    let ws = Ws::new();
    for i in 1..=40 {
        ws.migration(
            &format!("{i:04}_t.sql"),
            &format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t{i} (v) VALUES ('x');\n"),
        );
    }
    let (code, out, err) = ws.run_as("alice", &["--json", "deploy"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "{out}"
    );
    assert!(!has_progress_text(&err), "--json stderr: {err:?}");
    assert!(!has_progress_text(&out), "--json stdout: {out:?}");

    ws.migration("0041_u.sql", "CREATE TABLE u (id INTEGER PRIMARY KEY);\n");
    let (code, out, err) = ws.run_as("alice", &["deploy"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(!has_progress_text(&err), "piped stderr: {err:?}");
    assert!(!err.contains('['), "piped stderr: {err:?}");
}
