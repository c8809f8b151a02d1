//! Restore to a recovery point: the loss report, the typed confirmation, undo, crash safety,
//! snapshots and their retention.
mod common;

use common::{Ws, db_digest};

/// R1 (users) live with data; R2 (adds a column and a table) promoted on top; then more
/// writes. Returns (ws, r1, r2, production digest right before R2's promotion).
fn two_releases() -> (Ws, String, String, String) {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    let r1 = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(name) VALUES ('a'), ('b'), ('c'), ('d');")
        .unwrap();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    ws.migration(
        "0003_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT);\n",
    );
    let before = db_digest(&ws.production_path());
    let r2 = ws.ship();
    (ws, r1, r2, before)
}

#[test]
fn restore_reports_losses_then_puts_everything_back_and_undo_reverses_it() {
    let (ws, r1, r2, before) = two_releases();
    // Traffic after the promotion: 2 inserts, 1 update, 1 delete in users; 3 posts.
    ws.production()
        .execute_batch(
            "INSERT INTO users(name, email) VALUES ('e', 'e@x'), ('f', 'f@x');
             UPDATE users SET name = 'A' WHERE id = 1;
             DELETE FROM users WHERE id = 2;
             INSERT INTO posts(body) VALUES ('p1'), ('p2'), ('p3');",
        )
        .unwrap();
    let after = db_digest(&ws.production_path());
    // Without --yes and without a terminal: refused, nothing changed.
    let (code, out, err) = ws.run_as("carol", &["restore", "--to-release", &r2]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.contains("what would be lost"), "{out}");
    assert_eq!(db_digest(&ws.production_path()), after);

    let plan = ws.json(&["restore", "--to-release", &r2, "--yes"]);
    let tables = plan["plan"]["losses"]["tables"].as_array().unwrap();
    let users = tables.iter().find(|t| t["table"] == "users").unwrap();
    assert_eq!(users["inserted"], 2, "{users}");
    assert_eq!(users["updated"], 1, "{users}");
    assert_eq!(users["deleted"], 1, "{users}");
    let posts = tables.iter().find(|t| t["table"] == "posts").unwrap();
    assert_eq!(posts["inserted"], 3, "{posts}");
    let undone: Vec<&str> = plan["plan"]["migrations_undone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        undone.contains(&"0002_email.sql") && undone.contains(&"0003_posts.sql"),
        "{undone:?}"
    );

    // Schema, every row and d1_migrations are exactly as before R2's promotion.
    assert_eq!(db_digest(&ws.production_path()), before);
    assert_eq!(ws.release_state(&r2), "reverted");
    assert_eq!(ws.release_state(&r1), "live");
    assert_eq!(ws.json(&["envs"])[0]["active_release"], r1.as_str());

    // Undo brings back the after-state exactly.
    ws.ok_as("carol", &["restore", "--undo", "--yes"]);
    assert_eq!(db_digest(&ws.production_path()), after);
    assert_eq!(ws.release_state(&r2), "live");
    assert_eq!(ws.release_state(&r1), "superseded");
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
    // Nothing left to undo.
    let (code, _, err) = ws.run_as("carol", &["restore", "--undo", "--yes"]);
    assert_eq!(code, Some(4), "{err}");
}

#[test]
fn restore_refuses_while_a_promotion_runs_and_without_a_recovery_point() {
    let (ws, r1, r2, _) = two_releases();
    let (code, _, err) = ws.run_as("carol", &["restore", "--to-release", &r1, "--yes"]);
    // R1 created production: its recovery point is "no database", which is restorable.
    assert_eq!(code, Some(0), "{err}");
    assert!(!ws.production_path().exists());
    ws.ok_as("carol", &["restore", "--undo", "--yes"]);
    assert!(ws.production_path().exists());
    assert_eq!(ws.release_state(&r2), "live");

    ws.migration("0004_x.sql", "CREATE TABLE x (a INTEGER);\n");
    let (_, d) = ws.deploy();
    let r3 = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &r3]);
    let mut slow = ws.cmd("bob");
    slow.env("D1OPS_PAUSE", "promote.after_lock:2500")
        .args(["promote", &r3, "--yes"]);
    let child = std::thread::spawn(move || slow.output().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(800));
    let (code, _, err) = ws.run_as("carol", &["restore", "--to-release", &r2, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("promotion of") && err.contains("in progress"),
        "{err}"
    );
    assert!(child.join().unwrap().status.success());

    // A code-only release has no recovery point: restore says to use rollback.
    std::fs::remove_file(ws.path().join("migrations/0004_x.sql")).ok();
    let (_, d) = ws.deploy();
    let code_only = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &code_only]);
    ws.ok_as("bob", &["promote", &code_only, "--yes"]);
    let (code, _, err) = ws.run_as("carol", &["restore", "--to-release", &code_only, "--yes"]);
    assert_eq!(code, Some(4));
    assert!(err.contains("rollback"), "{err}");
}

#[test]
fn killed_restore_recovers_to_before_or_after() {
    for point in [
        "restore.after_lock",
        "restore.before_apply",
        "restore.after_apply",
    ] {
        let (ws, r1, r2, before) = two_releases();
        let after = db_digest(&ws.production_path());
        let out = ws
            .cmd("carol")
            .env("D1OPS_FAULT", point)
            .args(["restore", "--to-release", &r2, "--yes"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: should have died");
        let (code, _, err) = ws.run_as("carol", &["envs"]);
        assert_eq!(code, Some(0), "{point}: {err}");
        let now = db_digest(&ws.production_path());
        if now == after {
            assert_eq!(ws.release_state(&r2), "live", "{point}");
        } else {
            assert_eq!(now, before, "{point}: neither before nor after");
            assert_eq!(ws.release_state(&r2), "reverted", "{point}");
            assert_eq!(ws.release_state(&r1), "live", "{point}");
        }
        let lock: i64 = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
            .unwrap()
            .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(lock, 0, "{point}");
    }
}

#[test]
fn snapshots_listing_and_retention() {
    let (ws, r1, r2, _) = two_releases();
    ws.migration("0004_x.sql", "CREATE TABLE x (a INTEGER);\n");
    let r3 = ws.ship();
    let snaps = ws.json(&["snapshots"]);
    let list = snaps.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["release_id"], r3.as_str());
    assert_eq!(list[2]["release_id"], r1.as_str());
    assert!(
        list[0]["protected"]
            .as_str()
            .unwrap()
            .contains("live release")
    );
    // Keep only the newest: the two older ones expire and cleanup deletes them.
    let cfg = std::fs::read_to_string(ws.path().join("d1ops.toml")).unwrap();
    std::fs::write(
        ws.path().join("d1ops.toml"),
        cfg.replace(
            "[snapshots]\nkeep_last = 10\nkeep_days = 30",
            "[snapshots]\nkeep_last = 1\nkeep_days = 0",
        ),
    )
    .unwrap();
    let report = ws.json(&["cleanup", "--yes"]);
    let deleted: Vec<i64> = report["snapshots_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(deleted.len(), 2, "{report}");
    assert_eq!(ws.json(&["snapshots"]).as_array().unwrap().len(), 1);
    // R2's recovery point is gone: restoring to it is refused, clearly.
    let (code, _, err) = ws.run_as("carol", &["restore", "--to-release", &r2, "--yes"]);
    assert_eq!(code, Some(4));
    assert!(err.contains("retention"), "{err}");
}
