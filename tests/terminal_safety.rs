//! Output cannot attack the terminal, and user names cannot forge anything: control
//! characters from labels, notes, `--as`, file names and error messages reach the human CLI
//! output only as visible escapes; bad user names are refused before anything is written;
//! identities compare case-insensitively. Real binary, real temp workspaces.
mod common;

use common::Ws;

/// Sets the window title to "pwned" (OSC 0, ended by BEL), then clears the screen.
const HOSTILE: &str = "rel \x1b]0;pwned\x07 \x1b[2J end";
/// How `HOSTILE`'s control characters must look once escaped.
const ESCAPED: &str = "\\x1b]0;pwned\\x07 \\x1b[2J";

/// Panics when `text` (one command's stdout or stderr) holds a control character that is
/// not a line break, or a bidi override: the terminal would act on it.
fn assert_inert(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what} printed raw control characters {bad:?}:\n{text}"
    );
}

/// Runs as `user` and checks that neither stdout nor stderr carries a raw control character;
/// returns (exit code, stdout, stderr).
fn run_inert(ws: &Ws, user: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let (code, out, err) = ws.run_as(user, args);
    assert_inert(&format!("d1ops {args:?} (stdout)"), &out);
    assert_inert(&format!("d1ops {args:?} (stderr)"), &err);
    (code, out, err)
}

fn with_migration() -> Ws {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws
}

/// `deploy --json --label LABEL` as alice (must be ready); the release id.
fn deploy_labelled(ws: &Ws, label: &str) -> String {
    let out = ws.ok(&["--json", "deploy", "--label", label]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("deploy JSON");
    json["id"].as_str().expect("id").to_string()
}

#[test]
fn escape_in_label_does_not_reach_the_terminal() {
    let ws = with_migration();
    let id = deploy_labelled(&ws, HOSTILE);
    // Notes and root causes are user text too, and a CR/LF in them must not forge lines.
    let (code, _, err) = run_inert(
        &ws,
        "bob",
        &[
            "approve",
            &id,
            "--note",
            "ok \x1b[2J\u{9b}2J\u{202e}\rd1ops: forged",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run_inert(
        &ws,
        "bob",
        &["annotate", &id, "--cause", "cause \x1b]0;x\x07\nline two"],
    );
    assert_eq!(code, Some(0), "{err}");

    let (_, releases, _) = run_inert(&ws, "alice", &["releases"]);
    assert!(releases.contains(ESCAPED), "releases: {releases}");

    let (_, show, _) = run_inert(&ws, "alice", &["release", "show", &id]);
    assert!(show.contains(ESCAPED), "release show: {show}");
    assert!(
        show.contains("ok \\x1b[2J\\u{9b}2J\\u{202e}\\rd1ops: forged"),
        "{show}"
    );
    assert!(show.contains("cause \\x1b]0;x\\x07\\nline two"), "{show}");
    assert!(
        !show.lines().any(|l| l.starts_with("line two")),
        "a newline in a note made its own line: {show}"
    );

    let (_, audit, _) = run_inert(&ws, "alice", &["audit"]);
    // The detail is JSON (C0 controls already `\u001b`); what JSON leaves raw, C1 controls
    // and bidi overrides, is escaped on the way out.
    assert!(audit.contains("\\u001b[2J"), "{audit}");
    assert!(audit.contains("\\u{9b}2J\\u{202e}"), "{audit}");

    for args in [
        vec!["envs"],
        vec!["diff", id.as_str()],
        vec!["snapshots"],
        vec!["usage"],
        vec!["report", "weekly"],
    ] {
        let (code, _, err) = run_inert(&ws, "alice", &args);
        assert_eq!(code, Some(0), "d1ops {args:?}: {err}");
    }

    // JSON stays JSON: the label comes back exactly as given.
    let json = ws.json(&["release", "show", &id]);
    assert_eq!(json["label"], HOSTILE);
}

#[test]
fn escape_in_file_name_does_not_reach_the_terminal() {
    let ws = Ws::new();
    ws.migration(
        "0001_users\x1b]0;pwned\x07.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let (code, out, err) = run_inert(&ws, "alice", &["deploy"]);
    assert_eq!(code, Some(0), "deploy: {out}\n{err}");
    let id = ws.json(&["releases"])[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (code, _, err) = run_inert(&ws, "bob", &["approve", &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run_inert(&ws, "bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(0), "{err}");

    // `envs` shows production's schema head: the migration's name.
    let (_, envs, _) = run_inert(&ws, "alice", &["envs"]);
    assert!(envs.contains("\\x1b]0;pwned\\x07"), "envs: {envs}");
    let (_, show, _) = run_inert(&ws, "alice", &["release", "show", &id]);
    assert!(show.contains("\\x1b]0;pwned\\x07"), "release show: {show}");
    for args in [vec!["lint"], vec!["audit"], vec!["diff", id.as_str()]] {
        run_inert(&ws, "alice", &args);
    }
}

#[test]
fn escape_in_an_error_does_not_reach_the_terminal() {
    let ws = with_migration();
    let (code, _, err) = run_inert(&ws, "alice", &["release", "show", "\x1b]0;pwned\x07"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("\\x1b]0;pwned\\x07"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn newline_in_as_cannot_forge_an_audit_line() {
    let ws = with_migration();
    let id = deploy_labelled(&ws, "v1");
    let audit_before = ws.ok(&["audit"]);
    let state_before = ws.state_digest();
    let forged = "mallory\n9  2026-01-01T00:00:00Z  bob  release.approved";
    let (code, out, err) = run_inert(&ws, "alice", &["--as", forged, "approve", &id]);
    assert_eq!(code, Some(1), "stdout {out} stderr {err}");
    assert!(err.contains("user name"), "{err}");
    assert!(err.contains("control character"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert_eq!(ws.state_digest(), state_before, "the refusal wrote state");
    let audit_after = ws.ok(&["audit"]);
    assert_eq!(audit_after, audit_before);
    assert!(!audit_after.contains("mallory"), "{audit_after}");
}

#[test]
fn control_character_user_name_is_refused() {
    let ws = with_migration();
    let state_before = ws.state_digest();
    // From --as, and from D1OPS_USER (the harness passes the user that way).
    for (user, args) in [
        ("alice", vec!["--as", "bob\x1b]0;pwned\x07", "deploy"]),
        ("bob\x1b[2J", vec!["deploy"]),
        ("bob\u{202e}", vec!["deploy"]),
        ("bob\u{9b}2J", vec!["deploy"]),
    ] {
        let (code, out, err) = run_inert(&ws, user, &args);
        assert_eq!(code, Some(1), "{args:?}: stdout {out} stderr {err}");
        assert!(err.contains("control character"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(
        ws.state_digest(),
        state_before,
        "a refused name wrote state"
    );
    assert!(ws.json(&["releases"]).as_array().expect("list").is_empty());
}

#[test]
fn empty_or_overlong_user_name_is_refused() {
    let ws = with_migration();
    let state_before = ws.state_digest();
    let long = "a".repeat(65);
    for (name, needle) in [
        ("", "is empty"),
        ("   ", "is empty"),
        (long.as_str(), "at most 64"),
    ] {
        let (code, _, err) = run_inert(&ws, "alice", &["--as", name, "deploy"]);
        assert_eq!(code, Some(1), "{name:?}: {err}");
        assert!(err.contains(needle), "{name:?}: {err}");
    }
    assert_eq!(ws.state_digest(), state_before);
}

#[test]
fn user_name_is_recorded_trimmed() {
    let ws = with_migration();
    let out = ws.ok(&["--as", "  carol  ", "--json", "deploy"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let id = json["id"].as_str().expect("id");
    assert_eq!(ws.json(&["release", "show", id])["author"], "carol");
}

#[test]
fn uppercase_alias_cannot_self_approve() {
    let ws = with_migration();
    let id = deploy_labelled(&ws, "v1"); // deployed by alice
    for alias in ["ALICE", "Alice", " alice "] {
        let (code, _, err) = run_inert(&ws, "bob", &["--as", alias, "approve", &id]);
        assert_eq!(code, Some(4), "{alias:?} approved alice's release: {err}");
        assert!(err.contains("cannot approve"), "{err}");
    }
    assert_eq!(ws.release_state(&id), "ready");
}

#[test]
fn uppercase_alias_cannot_approve_twice() {
    let ws = with_migration();
    let config = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("required_approvals = 1"), "{text}");
    std::fs::write(
        &config,
        text.replace("required_approvals = 1", "required_approvals = 2"),
    )
    .expect("write config");
    let id = deploy_labelled(&ws, "v1");
    ws.ok_as("bob", &["approve", &id]);
    let (code, _, err) = run_inert(&ws, "alice", &["--as", "BOB", "approve", &id]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("already approved"), "{err}");
    let approvals = ws.json(&["release", "show", &id])["approvals"].clone();
    assert_eq!(approvals.as_array().map(Vec::len), Some(1), "{approvals}");
}

#[test]
fn readonly_cli_says_read_only_mode() {
    let ws = with_migration();
    let id = deploy_labelled(&ws, "v1");
    for (args, what) in [
        (vec!["--readonly", "deploy"], "deploy"),
        (vec!["--readonly", "approve", id.as_str()], "approve"),
        (
            vec!["--readonly", "promote", id.as_str(), "--yes"],
            "promote",
        ),
    ] {
        let (code, _, err) = run_inert(&ws, "bob", &args);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(
            err.contains(&format!(
                "d1ops: {what} refused: read-only mode (--readonly)"
            )),
            "{args:?}: {err}"
        );
        assert!(!err.contains("console"), "{args:?}: {err}");
    }
}

#[test]
fn escape_in_a_bad_argument_does_not_reach_the_terminal() {
    let ws = with_migration();
    // clap's usage error drops escape sequences from what it quotes; whatever is left over
    // (a bidi override here) is escaped.
    let (code, _, err) = run_inert(&ws, "alice", &["\x1b]0;pwned\x07\u{202e}x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unrecognized subcommand"), "{err}");
    assert!(err.contains("\\u{202e}x"), "{err}");
    let (code, _, err) = run_inert(&ws, "alice", &["cleanup", "--older-than", "\x1b[2J"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("\\x1b[2J"), "{err}");
}
