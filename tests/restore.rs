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

/// Restores of production: (id, status, undo_of), oldest first.
fn restores(ws: &Ws) -> Vec<(i64, String, Option<i64>)> {
    let c = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap();
    let mut stmt = c
        .prepare("SELECT id, status, undo_of FROM restores ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_names(ws: &Ws) -> Vec<String> {
    ws.production()
        .prepare("SELECT name FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// R2's recovery point restored once, rows written on it, then a second restore to the same
/// point killed right after its apply (before it could record the step `applied`): same
/// schema and ledger before and after, only rows differ — the case a schema fingerprint
/// cannot decide. Rows written after the apply (the "late rows") come before recovery.
/// Returns (ws, r1, r2, the second restore's id).
fn restore_killed_after_apply_with_late_rows() -> (Ws, String, String, i64) {
    let (ws, r1, r2, before_r2) = two_releases();
    ws.ok_as("carol", &["restore", "--to-release", &r2, "--yes"]);
    ws.production()
        .execute_batch("INSERT INTO users(name) VALUES ('x1'), ('x2'), ('x3');")
        .unwrap();
    let out = ws
        .cmd("carol")
        .env("D1OPS_FAULT", "restore.after_apply")
        .args(["restore", "--to-release", &r2, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the restore should have died");
    assert_eq!(
        db_digest(&ws.production_path()),
        before_r2,
        "the apply landed before the kill"
    );
    let second = restores(&ws).last().unwrap().0;
    assert_eq!(restores(&ws).last().unwrap().1, "applying");
    // Late rows: the app keeps writing to the restored production before d1ops runs again.
    ws.production()
        .execute_batch("INSERT INTO users(name) VALUES ('late1'), ('late2');")
        .unwrap();
    (ws, r1, r2, second)
}

#[test]
fn interrupted_restore_keeps_late_rows() {
    let (ws, r1, r2, second) = restore_killed_after_apply_with_late_rows();
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("recovered an interrupted restore") && err.contains("rolled forward"),
        "{err}"
    );
    // The restore completed (its apply landed) and the late rows are still there: recovery
    // never writes production's data.
    assert_eq!(
        user_names(&ws),
        ["a", "b", "c", "d", "late1", "late2"],
        "late rows kept, the restored point underneath"
    );
    let recs = restores(&ws);
    assert_eq!(recs.last().unwrap(), &(second, "done".to_string(), None));
    assert_eq!(ws.release_state(&r2), "reverted");
    assert_eq!(ws.release_state(&r1), "live");
    let lock: i64 = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
        .unwrap();
    assert_eq!(lock, 0);
    // The decision and its evidence are audited.
    let detail: String = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
        .unwrap()
        .query_row(
            "SELECT detail FROM audit WHERE action = 'restore.recovered' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        detail.contains("rolled_forward") && detail.contains("decided_by"),
        "{detail}"
    );
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
}

#[test]
fn undo_after_recovered_restore_targets_that_restore() {
    let (ws, _r1, r2, second) = restore_killed_after_apply_with_late_rows();
    ws.ok_as("carol", &["envs"]);
    let out = ws.json(&["restore", "--undo", "--yes"]);
    assert_eq!(out["plan"]["undo_of"], second, "{out}");
    // The undo shows what it would lose (the late rows), then puts back what the interrupted
    // restore replaced: the rows written between the two restores.
    let users = out["plan"]["losses"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "users")
        .cloned()
        .unwrap();
    assert!(
        users["inserted"].as_u64().unwrap() + users["updated"].as_u64().unwrap_or(0) >= 2,
        "{users}"
    );
    assert_eq!(user_names(&ws), ["a", "b", "c", "d", "x1", "x2", "x3"]);
    let recs = restores(&ws);
    assert!(
        recs.contains(&(second, "undone".to_string(), None)),
        "{recs:?}"
    );
    // The first restore is still the one before: R2 stays reverted.
    assert_eq!(ws.release_state(&r2), "reverted");
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
}

#[test]
fn restore_killed_after_recording_applied_rolls_forward() {
    let (ws, r1, r2, before) = two_releases();
    let out = ws
        .cmd("carol")
        .env("D1OPS_FAULT", "restore.before_finish")
        .args(["restore", "--to-release", &r2, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rolled forward"), "{err}");
    assert_eq!(db_digest(&ws.production_path()), before);
    assert_eq!(ws.release_state(&r2), "reverted");
    assert_eq!(ws.release_state(&r1), "live");
}

#[test]
fn restore_killed_before_apply_keeps_rows_written_meanwhile() {
    let (ws, _r1, r2, _) = two_releases();
    let out = ws
        .cmd("carol")
        .env("D1OPS_FAULT", "restore.before_apply")
        .args(["restore", "--to-release", &r2, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    ws.production()
        .execute_batch("INSERT INTO posts(body) VALUES ('written after the kill');")
        .unwrap();
    let after = db_digest(&ws.production_path());
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(
        db_digest(&ws.production_path()),
        after,
        "nothing rolled away"
    );
    assert_eq!(ws.release_state(&r2), "live");
    assert_eq!(restores(&ws).last().unwrap().1, "aborted");
    // Nothing to undo: the aborted restore is not an undo target.
    let (code, _, _) = ws.run_as("carol", &["restore", "--undo", "--yes"]);
    assert_eq!(code, Some(4));
}

/// The first release's recovery point is "no database": a restore to it deletes production,
/// its undo creates it again. Killed right after either apply, recovery completes it.
#[test]
fn killed_restores_to_and_from_no_database_complete() {
    let (ws, r1, r2, _) = two_releases();
    let after = db_digest(&ws.production_path());
    let out = ws
        .cmd("carol")
        .env("D1OPS_FAULT", "restore.after_apply")
        .args(["restore", "--to-release", &r1, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!ws.production_path().exists());
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rolled forward"), "{err}");
    assert_eq!(ws.release_state(&r1), "reverted");
    assert_eq!(ws.release_state(&r2), "reverted");
    assert_eq!(
        ws.json(&["envs"])[0]["active_release"],
        serde_json::Value::Null
    );

    let out = ws
        .cmd("carol")
        .env("D1OPS_FAULT", "restore.after_apply")
        .args(["restore", "--undo", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(ws.production_path().exists());
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rolled forward"), "{err}");
    assert_eq!(db_digest(&ws.production_path()), after);
    assert_eq!(ws.release_state(&r2), "live");
    assert_eq!(ws.release_state(&r1), "superseded");
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
}
