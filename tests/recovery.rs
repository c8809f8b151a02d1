//! Crash safety: the process is killed at every step of a promotion; the next invocation
//! recovers production to exactly the old or exactly the new state.
mod common;

use common::Ws;

const POINTS: &[&str] = &[
    "promote.after_lock",
    "promote.after_snapshot",
    "promote.before_apply",
    "apply.after_first_migration",
    "apply.before_commit",
    "promote.after_commit",
];

fn staged() -> (Ws, String, String) {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    let first = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(name) VALUES ('a'), ('b');")
        .unwrap();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\nUPDATE users SET email = name || '@x';\n",
    );
    ws.migration(
        "0003_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    (ws, first, id)
}

#[test]
fn killed_at_every_step_recovers_to_old_or_new() {
    for point in POINTS {
        let (ws, first, id) = staged();
        let old = ws.production_state().unwrap();
        let out = ws
            .cmd("bob")
            .env("D1OPS_FAULT", point)
            .args(["promote", &id, "--yes"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the process should have died"
        );
        // The next invocation (any command) recovers.
        let (code, _, err) = ws.run_as("carol", &["envs"]);
        assert_eq!(code, Some(0), "{point}: {err}");
        assert!(
            err.contains("recovered an interrupted promotion"),
            "{point}: {err}"
        );
        let now = ws.production_state().unwrap();
        let state = ws.release_state(&id);
        if now == old {
            assert_eq!(
                state, "approved",
                "{point}: rolled back, so the release awaits promotion again"
            );
            assert_eq!(ws.release_state(&first), "live", "{point}");
            // ...and promoting again works, exactly once.
            ws.ok_as("bob", &["promote", &id, "--yes"]);
        } else {
            assert_eq!(
                state, "live",
                "{point}: production changed, so it must be the new state"
            );
            assert_eq!(ws.release_state(&first), "superseded", "{point}");
        }
        assert_eq!(
            ws.production_ledger(),
            ["0001_users.sql", "0002_email.sql", "0003_posts.sql"],
            "{point}"
        );
        assert_eq!(ws.release_state(&id), "live");
        let lock: i64 = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
            .unwrap()
            .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(lock, 0, "{point}: lock released");
        assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
    }
}

#[test]
fn killed_first_promotion_leaves_no_database_behind() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let (_, d) = ws.deploy();
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    let out = ws
        .cmd("bob")
        .env("D1OPS_FAULT", "apply.before_commit")
        .args(["promote", &id, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    ws.ok(&["envs"]);
    assert!(
        !ws.production_path().exists(),
        "a rolled-back first promotion must not leave an empty production"
    );
    assert_eq!(ws.release_state(&id), "approved");
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert!(ws.production_path().exists());
}
