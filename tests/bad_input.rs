//! Bad input: one clear sentence naming the file/line/statement, a non-zero exit, and
//! production and state unchanged.
mod common;

use common::Ws;

fn assert_clean_failure(ws: &Ws, args: &[&str], expect_code: i32, needles: &[&str]) {
    let before_state = ws.state_digest();
    let before_prod = ws.production_state();
    let (code, out, err) = ws.run_as("alice", args);
    assert_eq!(
        code,
        Some(expect_code),
        "d1ops {args:?}: stdout {out} stderr {err}"
    );
    let line = err.trim();
    assert_eq!(
        line.lines().count(),
        1,
        "one sentence, not a backtrace: {line}"
    );
    assert!(!line.contains("panicked"), "{line}");
    for n in needles {
        assert!(line.contains(n), "expected {n:?} in {line:?}");
    }
    assert_eq!(
        ws.state_digest(),
        before_state,
        "state changed after {args:?}"
    );
    assert_eq!(
        ws.production_state(),
        before_prod,
        "production changed after {args:?}"
    );
}

fn shipped() -> Ws {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    ws.ship();
    ws
}

#[test]
fn unterminated_string_names_file_and_line() {
    let ws = shipped();
    ws.migration(
        "0002_bad.sql",
        "INSERT INTO users VALUES (1);\nINSERT INTO users VALUES ('oops);\n",
    );
    assert_clean_failure(
        &ws,
        &["deploy"],
        1,
        &["migrations/0002_bad.sql:2", "unterminated string"],
    );
}

#[test]
fn non_utf8_file() {
    let ws = shipped();
    std::fs::write(
        ws.path().join("migrations/0002_latin1.sql"),
        b"-- caf\xe9\nSELECT 1;\n",
    )
    .unwrap();
    assert_clean_failure(
        &ws,
        &["deploy"],
        1,
        &["migrations/0002_latin1.sql:1", "UTF-8"],
    );
}

#[test]
fn duplicate_numbers() {
    let ws = shipped();
    ws.migration("0002_a.sql", "SELECT 1;\n");
    ws.migration("0002_b.sql", "SELECT 2;\n");
    assert_clean_failure(
        &ws,
        &["deploy"],
        1,
        &["0002_a.sql", "0002_b.sql", "number 2"],
    );
}

#[test]
fn unknown_release_id() {
    let ws = shipped();
    for cmd in [
        &["approve", "NOPE"][..],
        &["promote", "NOPE", "--yes"],
        &["release", "show", "NOPE"],
        &["diff", "NOPE"],
    ] {
        assert_clean_failure(&ws, cmd, 1, &["no release NOPE"]);
    }
}

#[test]
fn broken_config() {
    let ws = shipped();
    std::fs::write(ws.path().join("d1ops.toml"), "migrations_dir = [\n").unwrap();
    assert_clean_failure(&ws, &["deploy"], 1, &["d1ops.toml"]);
    std::fs::write(ws.path().join("d1ops.toml"), "migration_dir = \"m\"\n").unwrap();
    assert_clean_failure(&ws, &["releases"], 1, &["d1ops.toml", "migration_dir"]);
    std::fs::write(
        ws.path().join("d1ops.toml"),
        "[policy]\nrequired_approvals = \"two\"\n",
    )
    .unwrap();
    assert_clean_failure(&ws, &["envs"], 1, &["d1ops.toml", "required_approvals"]);
}

#[test]
fn missing_workspace_and_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = {
        let out = assert_cmd::Command::cargo_bin("d1ops")
            .unwrap()
            .args(["--workspace", dir.path().to_str().unwrap(), "releases"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(1));
    assert!(err.contains("d1ops init"), "{err}");
    let ws = shipped();
    assert_clean_failure(
        &ws,
        &["deploy", "--artifact", "app=dist/missing.js"],
        1,
        &["artifact app", "missing.js"],
    );
    assert_clean_failure(
        &ws,
        &["deploy", "--artifact", "nonsense"],
        1,
        &["NAME=PATH"],
    );
}

#[test]
fn locked_production_database_is_a_clear_refusal() {
    let ws = shipped();
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER);\n");
    let (_, d) = ws.deploy();
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    let before = ws.production_state();
    // Another process holds a write transaction on production.
    let holder = ws.production();
    holder
        .execute_batch("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS zz(x);")
        .unwrap();
    let (code, _, err) = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("locked") && err.contains("nothing was changed"),
        "{err}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(ws.production_state(), before);
    // A lock is transient: the release is still approved and promotes once production is free.
    assert_eq!(ws.release_state(&id), "approved");
    ws.ok_as("bob", &["promote", &id, "--yes"]);
}
