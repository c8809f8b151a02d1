//! Rollback: code goes back to a known-good release, the schema stays, and the target's
//! probes are proven on a copy of production first.
mod common;

use common::{Ws, db_digest};

fn add_config(ws: &Ws, extra: &str) {
    let path = ws.path().join("d1ops.toml");
    let mut cfg = std::fs::read_to_string(&path).unwrap();
    cfg.push_str(extra);
    std::fs::write(path, cfg).unwrap();
}

const LEGACY_PROBE: &str = r#"
[[probe]]
name = "user_with_legacy"
sql = "SELECT id, legacy FROM users WHERE id = ?"
params = [1]
expect_rows = 1
"#;

fn r1_with_probe() -> (Ws, String) {
    let ws = Ws::new();
    add_config(&ws, LEGACY_PROBE);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, legacy TEXT);\n",
    );
    let r1 = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(id, name, legacy) VALUES (1, 'a', 'x');")
        .unwrap();
    (ws, r1)
}

#[test]
fn rollback_after_an_additive_release_switches_code_and_keeps_schema() {
    let (ws, r1) = r1_with_probe();
    ws.migration("0002_bio.sql", "ALTER TABLE users ADD COLUMN bio TEXT;\n");
    let r2 = ws.ship();
    let schema_before = db_digest(&ws.production_path());
    let out = ws.json(&["rollback", "--yes"]);
    assert_eq!(out["from"], r2.as_str());
    assert_eq!(out["to"], r1.as_str());
    assert_eq!(out["probes_run"], 1);
    assert_eq!(out["probe_failures"].as_array().unwrap().len(), 0);
    assert_eq!(ws.json(&["envs"])[0]["active_release"], r1.as_str());
    assert_eq!(ws.release_state(&r1), "live");
    assert_eq!(ws.release_state(&r2), "rolled_back");
    // The schema (and every row) stays: rollback never touches the database.
    assert_eq!(db_digest(&ws.production_path()), schema_before);
    assert!(schema_before.contains("bio TEXT"));
    let audit = ws.json(&["audit"]);
    let event = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "release.rolled_back")
        .unwrap();
    assert_eq!(event["actor"], "alice");
    assert!(
        event["detail"]
            .as_str()
            .unwrap()
            .contains("\"probes_run\":1")
    );
    // No throwaway copy is left behind.
    let dbs: Vec<String> = std::fs::read_dir(ws.path().join(".d1ops/db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !dbs.iter().any(|d| d.starts_with("rollback-check")),
        "{dbs:?}"
    );
}

#[test]
fn rollback_refuses_when_old_probes_break_on_the_new_schema_unless_forced() {
    let (ws, r1) = r1_with_probe();
    // An expand/contract violation forced through the gate: the column the old code reads
    // is dropped.
    // The new release's own probe no longer reads the column.
    let path = ws.path().join("d1ops.toml");
    let cfg = std::fs::read_to_string(&path).unwrap().replace(
        "SELECT id, legacy FROM users WHERE id = ?",
        "SELECT id, name FROM users WHERE id = ?",
    );
    std::fs::write(&path, cfg).unwrap();
    add_config(
        &ws,
        "\n[gate.severity]\n\"compat.live\" = \"warn\"\n\"destructive.drop-column\" = \"warn\"\n",
    );
    ws.migration(
        "0002_drop_legacy.sql",
        "ALTER TABLE users DROP COLUMN legacy;\n",
    );
    let r2 = ws.ship();
    let (code, _, err) = ws.run_as("alice", &["rollback", "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("user_with_legacy") && err.contains("no such column: legacy"),
        "{err}"
    );
    assert_eq!(ws.release_state(&r2), "live");
    // --force needs a reason.
    let (code, _, err) = ws.run_as("alice", &["rollback", "--yes", "--force"]);
    assert_ne!(code, Some(0), "{err}");
    let out = ws.json(&[
        "rollback",
        "--yes",
        "--force",
        "--reason",
        "bot hotfix reads legacy only in a dead path",
    ]);
    assert_eq!(out["forced"], true);
    assert_eq!(ws.release_state(&r1), "live");
    let audit = ws.json(&["audit"]);
    let event = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "release.rolled_back")
        .unwrap();
    assert!(event["detail"].as_str().unwrap().contains("dead path"));
    assert!(
        event["detail"]
            .as_str()
            .unwrap()
            .contains("\"forced\":true")
    );
}

#[test]
fn killed_rollback_changes_nothing() {
    for point in ["rollback.after_copy", "rollback.before_switch"] {
        let (ws, r1) = r1_with_probe();
        ws.migration("0002_bio.sql", "ALTER TABLE users ADD COLUMN bio TEXT;\n");
        let r2 = ws.ship();
        let out = ws
            .cmd("alice")
            .env("D1OPS_FAULT", point)
            .args(["rollback", "--yes"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}");
        let (code, _, err) = ws.run_as("alice", &["envs"]);
        assert_eq!(code, Some(0), "{point}: {err}");
        assert!(
            err.contains("recovered an interrupted rollback"),
            "{point}: {err}"
        );
        assert_eq!(ws.release_state(&r2), "live", "{point}");
        assert_eq!(ws.release_state(&r1), "superseded", "{point}");
        // And it works afterwards.
        ws.ok(&["rollback", "--yes"]);
        assert_eq!(ws.release_state(&r1), "live", "{point}");
    }
}
