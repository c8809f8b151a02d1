//! The release lifecycle end to end, through the real binary — one suite, two backends: every
//! test runs on the local backend (SQLite files under `.d1ops/db`) and on the Cloudflare
//! backend against the D1 contract server (`crates/testkit/src/d1_contract`), whose databases are real
//! SQLite files the tests read and change directly.
mod cf_support;
mod common;

use common::{Ws, check, db_digest};

/// Generates `local::<test>` and `cloudflare::<test>` for each test function.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[test] fn $name() { super::$name(super::Ws::new()); } )*
        }
        mod cloudflare {
            $( #[test] fn $name() { super::$name(super::cloudflare_ws()); } )*
        }
    };
}

on_both_backends!(
    happy_path_init_deploy_approve_promote,
    code_only_release_needs_no_preview,
    failing_third_migration_on_production_rolls_everything_back,
    broken_migration_blocks_deploy_and_leaves_production_alone,
    edited_applied_migration_is_drift,
    cascade_from_parent_rebuild_is_data_loss,
    approvals_policy,
    production_changed_since_preview_refuses,
    two_promotions_at_once_exactly_one_proceeds,
    racing_promotions_one_wins,
    cleanup_deletes_only_stale_previews,
    audit_chain_detects_tampering,
    diff_shows_pending_sql_and_schema_changes,
    foreign_key_violations_block_with_the_rows,
    size_limit_of_the_plan_warns_then_fails
);

/// A workspace on the Cloudflare backend, with its own contract server whose account holds
/// an empty production database.
fn cloudflare_ws() -> Ws {
    cf_support::cloudflare_ws().1
}

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT, bio TEXT);\n";

fn happy_path_init_deploy_approve_promote(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.migration(
        "0002_items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, owner INTEGER REFERENCES users(id));\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy}");
    assert_eq!(deploy["verdict"], "ready");
    assert_eq!(deploy["state"], "ready");
    let ids: Vec<&str> = deploy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "mig.order",
        "mig.drift",
        "mig.apply",
        "fk.check",
        "data.loss",
    ] {
        assert!(ids.contains(&id), "missing check {id} in {ids:?}");
    }
    for c in deploy["checks"].as_array().unwrap() {
        assert!(["pass", "warn", "fail", "skip"].contains(&c["status"].as_str().unwrap()));
        assert!(!c["reason"].as_str().unwrap().is_empty());
    }
    let id = deploy["id"].as_str().unwrap();
    if ws.is_cloudflare() {
        // D1: production is the configured database, empty until the first promotion.
        assert!(!db_digest(&ws.production_path()).contains("d1_migrations"));
    } else {
        // Lazy provisioning: no production database before the first promotion.
        assert!(!ws.production_path().exists());
    }
    ws.ok_as("bob", &["approve", id, "--note", "looks good"]);
    let out = ws.ok_as("bob", &["promote", id, "--yes"]);
    assert!(out.contains("live"), "{out}");

    assert_eq!(ws.production_ledger(), ["0001_users.sql", "0002_items.sql"]);
    let prod = ws.production();
    let tables: i64 = prod
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('users','items')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2);
    // wrangler's ledger DDL.
    let ddl: String = prod
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name='d1_migrations'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        ddl.contains("id INTEGER PRIMARY KEY AUTOINCREMENT") && ddl.contains("name TEXT UNIQUE")
    );
    assert!(ddl.contains("applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL"));

    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["name"], "production");
    assert_eq!(envs[0]["kind"], "production");
    assert_eq!(envs[0]["active_release"], id);
    let database = envs[0]["database"].as_str().unwrap();
    match &ws.cf {
        Some(cf) => assert!(database.contains(&cf.production_id), "{database}"),
        None => assert!(database.ends_with("production.sqlite"), "{database}"),
    }
    assert!(envs[0]["size_bytes"].as_u64().unwrap() > 0);

    let show = ws.json(&["release", "show", id]);
    assert_eq!(show["state"], "live");
    assert_eq!(show["gate"]["verdict"], "ready");
    assert_eq!(show["migrations"].as_array().unwrap().len(), 2);
    assert_eq!(show["approvals"][0]["approver"], "bob");
    assert!(show["failure"].is_null());
    assert!(show["recovery_snapshot"].is_number());

    let releases = ws.json(&["releases"]);
    assert_eq!(releases[0]["id"], id);
    for key in ["id", "state", "author", "label", "created_at", "verdict"] {
        assert!(
            releases[0].get(key).is_some(),
            "releases --json lacks {key}"
        );
    }
    assert_eq!(releases[0]["author"], "alice");

    // A second release supersedes the first.
    ws.migration(
        "0003_bio_index.sql",
        "CREATE INDEX idx_users_bio ON users(bio);\n",
    );
    let second = ws.ship();
    assert_eq!(ws.release_state(id), "superseded");
    assert_eq!(ws.release_state(&second), "live");
    let verify = ws.json(&["audit", "--verify"]);
    assert_eq!(verify["ok"], true);
}

fn code_only_release_needs_no_preview(ws: Ws) {
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0));
    assert!(deploy["preview"].is_null());
    let id = deploy["id"].as_str().unwrap();
    ws.ok_as("bob", &["approve", id]);
    ws.ok_as("bob", &["promote", id, "--yes"]);
    assert_eq!(ws.release_state(id), "live");
    let envs = ws.json(&["envs"]);
    if ws.is_cloudflare() {
        // D1: the configured production database, untouched.
        assert!(!db_digest(&ws.production_path()).contains("d1_migrations"));
    } else {
        // Still no database: a workspace without migrations has none, and that is normal.
        assert!(!ws.production_path().exists());
        assert!(envs[0]["database"].is_null());
    }
}

fn failing_third_migration_on_production_rolls_everything_back(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    let first = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(username) VALUES ('ann'), ('ben');")
        .unwrap();
    ws.migration(
        "0002_add_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    ws.migration(
        "0003_backfill.sql",
        "UPDATE users SET email = username || '@example.com';\n",
    );
    ws.migration(
        "0004_unique_username.sql",
        "CREATE UNIQUE INDEX ux_username ON users(username);\n",
    );
    ws.migration(
        "0005_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT);\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy}");
    let id = deploy["id"].as_str().unwrap();
    ws.ok_as("bob", &["approve", id]);
    // Production receives a duplicate after the preview was cloned (the data, not the schema,
    // changed, so the promotion is still allowed — and must fail atomically).
    ws.production()
        .execute_batch("INSERT INTO users(username) VALUES ('ann');")
        .unwrap();
    let before = ws.production_state().unwrap();
    let (code, _out, err) = ws.run_as("bob", &["promote", id, "--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("0004_unique_username.sql"), "{err}");
    assert!(err.contains("UNIQUE constraint failed"), "{err}");
    assert_eq!(ws.production_state().unwrap(), before);
    let show = ws.json(&["release", "show", id]);
    assert_eq!(show["state"], "failed");
    assert_eq!(show["failure"]["migration"], "0004_unique_username.sql");
    assert!(
        show["failure"]["statement"]
            .as_str()
            .unwrap()
            .contains("CREATE UNIQUE INDEX")
    );
    assert_eq!(ws.release_state(&first), "live");
}

fn broken_migration_blocks_deploy_and_leaves_production_alone(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    let before = ws.production_state();
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER);\n");
    ws.migration("0003_b.sql", "CREATE TABLE b (x INTEGER);\n");
    ws.migration("0004_c.sql", "-- broken\nCREAT TABLE c (x INTEGER);\n");
    ws.migration("0005_d.sql", "CREATE TABLE d (x INTEGER);\n");
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3));
    assert_eq!(deploy["verdict"], "blocked");
    let apply = check(&deploy, "mig.apply");
    assert_eq!(apply["status"], "fail");
    let reason = apply["reason"].as_str().unwrap();
    assert!(reason.contains("migrations/0004_c.sql:2"), "{reason}");
    assert!(reason.contains("syntax error"), "{reason}");
    assert_eq!(ws.production_state(), before);
    // The preview rolled back as a unit too: none of 0002..0005 is there.
    let preview = ws
        .database_file(deploy["preview"].as_str().unwrap())
        .expect("the preview database");
    assert!(!db_digest(&preview).contains("table a:"));
}

fn edited_applied_migration_is_drift(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL);\n",
    );
    ws.migration("0002_x.sql", "CREATE TABLE x (id INTEGER);\n");
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3));
    let drift = check(&deploy, "mig.drift");
    assert_eq!(drift["status"], "fail");
    assert!(
        drift["reason"]
            .as_str()
            .unwrap()
            .contains("migrations/0001_users.sql")
    );
    // Line endings alone are not drift.
    ws.migration("0001_users.sql", &USERS.replace('\n', "\r\n"));
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy}");
}

fn cascade_from_parent_rebuild_is_data_loss(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE);\n",
    );
    ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users VALUES (1,'a',NULL),(2,'b',NULL); INSERT INTO posts VALUES (1,1),(2,2),(3,2);")
        .unwrap();
    ws.migration(
        "0003_drop_bio.sql",
        "CREATE TABLE users_new (id INTEGER PRIMARY KEY, username TEXT);\n\
         INSERT INTO users_new SELECT id, username FROM users;\n\
         DROP TABLE users;\n\
         ALTER TABLE users_new RENAME TO users;\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    let loss = check(&deploy, "data.loss");
    assert_eq!(loss["status"], "fail");
    let reason = loss["reason"].as_str().unwrap();
    assert!(reason.contains("posts lost 3 of 3 rows"), "{reason}");
    assert!(reason.contains("CASCADE"), "{reason}");

    // Declared loss only warns.
    ws.migration(
        "0003_drop_bio.sql",
        "-- d1ops:allow-data-loss posts\nCREATE TABLE users_new (id INTEGER PRIMARY KEY, username TEXT);\n\
         INSERT INTO users_new SELECT id, username FROM users;\n\
         -- d1ops:allow destructive.drop-column bio was never read by any released code\n\
         DROP TABLE users;\nALTER TABLE users_new RENAME TO users;\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy}");
    let loss = check(&deploy, "data.loss");
    assert_eq!(loss["status"], "warn");
}

fn approvals_policy(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    let (_, deploy) = ws.deploy();
    let id = deploy["id"].as_str().unwrap();
    let (code, _, err) = ws.run_as("alice", &["approve", id]);
    assert_eq!(code, Some(4));
    assert!(err.contains("cannot approve"), "{err}");
    // Not approved yet: promotion refused with the reason.
    let (code, _, err) = ws.run_as("bob", &["promote", id, "--yes"]);
    assert_eq!(code, Some(4));
    assert!(err.contains("needs 1 approval"), "{err}");
    ws.ok_as("bob", &["approve", id]);
    let (code, _, err) = ws.run_as("bob", &["approve", id]);
    assert_eq!(code, Some(4), "{err}");
    // Unique prefixes work as ids.
    ws.ok_as("bob", &["promote", &id[..10], "--yes"]);
}

fn production_changed_since_preview_refuses(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER);\n");
    let (_, first) = ws.deploy();
    let stale_id = first["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &stale_id]);
    // Someone changes production's schema behind d1ops' back.
    ws.production()
        .execute_batch("CREATE TABLE hotfix (x INTEGER);")
        .unwrap();
    let (code, _, err) = ws.run_as("bob", &["promote", &stale_id, "--yes"]);
    assert_eq!(code, Some(4));
    assert!(err.contains("production changed"), "{err}");
}

fn two_promotions_at_once_exactly_one_proceeds(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER);\n");
    let (_, d) = ws.deploy();
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    // The first promoter holds the lock for a while (paused after taking it).
    let mut slow = ws.process("bob");
    slow.args(["promote", &id, "--yes"])
        .env("D1OPS_PAUSE", "promote.after_lock:3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = slow.spawn().unwrap();
    // Wait for the lock row to appear.
    let state = ws.path().join(".d1ops/state.sqlite");
    let mut locked = false;
    for _ in 0..200 {
        let c = rusqlite::Connection::open(&state).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
            .unwrap_or(0);
        if n == 1 {
            locked = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(locked, "the first promotion never took the lock");
    let (code, _, err) = ws.run_as("carol", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("in progress by bob since"), "{err}");
    assert!(child.wait().unwrap().success());
    assert_eq!(ws.release_state(&id), "live");
}

fn racing_promotions_one_wins(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER);\n");
    let (_, d) = ws.deploy();
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    let spawn = |user: &str| {
        ws.process(user)
            .args(["promote", &id, "--yes"])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("bob"));
        let b = s.spawn(|| spawn("carol"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = vec![a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, vec![Some(0), Some(4)]);
    let ledger: i64 = ws
        .production()
        .query_row("SELECT count(*) FROM d1_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ledger, 2, "applied exactly once");
}

fn cleanup_deletes_only_stale_previews(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    let live = ws.ship();
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER);\n");
    let (_, d) = ws.deploy();
    let abandoned = d["id"].as_str().unwrap().to_string();
    ws.ok(&["abandon", &abandoned]);
    ws.migration("0002_a.sql", "CREATE TABLE a (x INTEGER, y TEXT);\n");
    let (_, d) = ws.deploy();
    let candidate = d["id"].as_str().unwrap().to_string();
    let plan = ws.json(&["cleanup", "--dry-run"]);
    let names: Vec<String> = plan["would_delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["release_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&live) && names.contains(&abandoned),
        "{plan}"
    );
    assert!(
        !names.contains(&candidate),
        "a candidate awaiting a decision is never stale by state"
    );
    let (code, _, err) = ws.run_as("alice", &["cleanup"]);
    assert_eq!(code, Some(1), "no --yes without a terminal: {err}");
    let report = ws.json(&["cleanup", "--yes"]);
    assert_eq!(report["deleted"].as_array().unwrap().len(), 2);
    assert!(report["freed_bytes"].as_u64().unwrap() > 0);
    let envs = ws.json(&["envs"]);
    let names: Vec<&str> = envs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(ws.production_path().exists());
    assert!(
        ws.database_file(&format!("preview-{}", candidate.to_lowercase()))
            .is_some()
    );
}

fn audit_chain_detects_tampering(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
    let c = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap();
    // The log refuses updates outright...
    assert!(
        c.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2", [])
            .is_err()
    );
    // ...and a tamperer who drops the guard is still caught by the chain.
    c.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 2;",
    )
    .unwrap();
    let (code, out, _) = ws.run_as("alice", &["--json", "audit", "--verify"]);
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], 2);
}

fn diff_shows_pending_sql_and_schema_changes(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\nCREATE INDEX idx_email ON users(email);\n",
    );
    let (_, d) = ws.deploy();
    let id = d["id"].as_str().unwrap();
    let out = ws.ok(&["diff", id]);
    assert!(
        out.contains("ALTER TABLE users ADD COLUMN email TEXT"),
        "{out}"
    );
    assert!(out.contains("+ column email TEXT"), "{out}");
    assert!(out.contains("+ index idx_email"), "{out}");
    let json = ws.json(&["diff", id]);
    assert_eq!(json["source"], "preview");
    assert_eq!(json["pending"][0]["name"], "0002_email.sql");
}

fn foreign_key_violations_block_with_the_rows(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\n",
    );
    ws.ship();
    ws.migration(
        "0003_orphans.sql",
        "INSERT INTO posts (id, user_id) VALUES (1, 999), (2, 998);\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    let fk = check(&deploy, "fk.check");
    assert_eq!(fk["status"], "fail");
    assert!(
        fk["reason"]
            .as_str()
            .unwrap()
            .contains("2 row(s) of posts reference missing users"),
        "{fk}"
    );
    assert_eq!(fk["details"]["violations"].as_array().unwrap().len(), 2);
}

fn size_limit_of_the_plan_warns_then_fails(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    // ~40 KB of rows.
    let c = ws.production();
    for i in 0..40 {
        c.execute(
            "INSERT INTO users(username, bio) VALUES (?1, ?2)",
            (format!("u{i}"), "x".repeat(800)),
        )
        .unwrap();
    }
    drop(c);
    // A plan a quarter larger than production is now (backends lay files out differently):
    // the next index lands past 80 % of it → warn.
    let size = std::fs::metadata(ws.production_path()).unwrap().len();
    let path = ws.path().join("d1ops.toml");
    let cfg = std::fs::read_to_string(&path)
        .unwrap()
        .replace("plan = \"d1-free\"", "plan = \"tiny\"");
    std::fs::write(
        &path,
        format!(
            "{cfg}\n[plans.tiny]\ndatabase_size_bytes = {}\n",
            size * 5 / 4
        ),
    )
    .unwrap();
    ws.migration(
        "0002_idx.sql",
        "CREATE INDEX idx_users_username ON users(username);\n",
    );
    let (code, d) = ws.deploy();
    let size = check(&d, "limit.size");
    assert_eq!(code, Some(0), "{d}");
    assert_eq!(size["status"], "warn", "{size}");
    assert!(
        size["reason"].as_str().unwrap().contains("of tiny's"),
        "{size}"
    );
    // A migration that more than doubles the data does not fit: fail.
    ws.migration("0003_copy.sql", "CREATE TABLE users_archive AS SELECT * FROM users;\nINSERT INTO users_archive SELECT * FROM users;\n");
    let (code, d) = ws.deploy();
    let size = check(&d, "limit.size");
    assert_eq!(code, Some(3), "{d}");
    assert_eq!(size["status"], "fail", "{size}");
    assert!(
        size["reason"].as_str().unwrap().contains("would not fit"),
        "{size}"
    );
}
