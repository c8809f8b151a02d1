//! Probes and query plans in the gate (`probe.result`, `probe.latency`, `plan.scan`,
//! `compat.live`), through the real binary on real SQLite files.
mod common;

use common::Ws;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// Appends `[[probe]]` tables (TOML text) to the workspace's d1ops.toml.
fn add_probes(ws: &Ws, toml: &str) {
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).expect("read d1ops.toml");
    text.push('\n');
    text.push_str(toml);
    std::fs::write(&path, text).expect("write d1ops.toml");
}

/// Replaces every `[[probe]]` table of d1ops.toml with `toml`.
fn set_probes(ws: &Ws, toml: &str) {
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).expect("read d1ops.toml");
    let head = text.split("\n[[probe]]").next().unwrap_or("").to_string();
    std::fs::write(&path, format!("{head}\n{toml}")).expect("write d1ops.toml");
}

fn check<'a>(deploy: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    deploy["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} check in {deploy}"))
}

fn status(deploy: &serde_json::Value, id: &str) -> String {
    check(deploy, id)["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn reason(deploy: &serde_json::Value, id: &str) -> String {
    check(deploy, id)["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Row count and a checksum of every row of each table but the ledger (and the ledger's
/// AUTOINCREMENT counter).
fn table_digests(path: &std::path::Path) -> Vec<(String, i64, String)> {
    let c = Connection::open(path).expect("open");
    let tables: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'd1_migrations' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let only_ours = if t == "sqlite_sequence" {
                " WHERE name <> 'd1_migrations'"
            } else {
                ""
            };
            let mut stmt = c
                .prepare(&format!("SELECT * FROM \"{t}\"{only_ours} ORDER BY rowid"))
                .unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            let (mut count, mut h) = (0, Sha256::new());
            while let Some(r) = rows.next().unwrap() {
                count += 1;
                for i in 0..n {
                    h.update(format!("{:?}|", r.get_ref(i).unwrap()).as_bytes());
                }
                h.update(b"\n");
            }
            (t, count, hex::encode(h.finalize()))
        })
        .collect()
}

#[test]
fn dropping_the_index_a_probe_uses_fails_plan_scan_and_latency() {
    let ws = Ws::new();
    ws.migration(
        "0001_events.sql",
        "CREATE TABLE events (id INTEGER PRIMARY KEY, user_ref TEXT NOT NULL, payload TEXT NOT NULL);\n\
         CREATE INDEX idx_events_user_ref ON events(user_ref);\n",
    );
    add_probes(
        &ws,
        r#"[[probe]]
name = "events_of_user"
sql = "SELECT e.id, e.payload FROM events AS e WHERE e.user_ref = ?"
params = ["user-4242"]
expect_rows = 1
p95_ms = 1.5
"#,
    );
    ws.ship();
    // Production fills up: 200k rows, one transaction.
    {
        let mut prod = ws.production();
        let tx = prod.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO events (user_ref, payload) VALUES (?1, ?2)")
                .unwrap();
            for i in 0..200_000 {
                ins.execute(rusqlite::params![format!("user-{i}"), format!("{i:0>100}")])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    ws.migration("0002_drop_index.sql", "DROP INDEX idx_events_user_ref;\n");
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    assert_eq!(status(&deploy, "probe.result"), "pass", "{deploy}");
    assert_eq!(status(&deploy, "plan.scan"), "fail", "{deploy}");
    let why = reason(&deploy, "plan.scan");
    assert!(
        why.contains("SEARCH e USING INDEX idx_events_user_ref (user_ref=?) → SCAN e"),
        "{why}"
    );
    assert!(why.contains("e is events"), "{why}");
    let plan = &check(&deploy, "plan.scan")["details"]["probes"][0];
    assert_eq!(plan["name"], "events_of_user");
    assert_eq!(plan["changed"], true);
    assert!(
        plan["before"][0]
            .as_str()
            .unwrap()
            .starts_with("SEARCH e USING INDEX")
    );
    assert_eq!(plan["after"][0], "SCAN e");

    assert_eq!(status(&deploy, "probe.latency"), "fail", "{deploy}");
    let lat = &check(&deploy, "probe.latency")["details"]["probes"][0];
    let (before, after) = (
        lat["before"]["p95_ms"].as_f64().unwrap(),
        lat["after"]["p95_ms"].as_f64().unwrap(),
    );
    assert!(after > before, "p95 {before} → {after}");
    assert!(lat["ratio"].as_f64().unwrap() > 1.5, "{lat}");
    assert_eq!(lat["after"]["runs"], 20);
    assert!(
        reason(&deploy, "probe.latency").contains("events_of_user: p95"),
        "{deploy}"
    );

    // `release show` prints the probe table and both plan trees.
    let id = deploy["id"].as_str().unwrap();
    let shown = ws.ok(&["release", "show", id]);
    for needle in [
        "✗ plan.scan",
        "✗ probe.latency",
        "PROBE",
        "P95",
        "RATIO",
        "events_of_user",
        "before SEARCH e USING INDEX idx_events_user_ref (user_ref=?)",
        "after  SCAN e",
    ] {
        assert!(
            shown.contains(needle),
            "release show lacks {needle:?}:\n{shown}"
        );
    }
    // And the JSON report carries every number.
    let json = ws.json(&["release", "show", id]);
    let checks = json["gate"]["checks"].as_array().unwrap();
    let latency = checks.iter().find(|c| c["id"] == "probe.latency").unwrap();
    assert!(latency["details"]["probes"][0]["before"]["p50_ms"].is_number());
    assert!(latency["details"]["probes"][0]["after"]["max_ms"].is_number());
}

#[test]
fn a_wrong_expectation_fails_probe_result_with_expected_and_actual() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );
    ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users (name) VALUES ('ann'), ('bob'), ('cy');")
        .unwrap();
    ws.migration("0002_bio.sql", "ALTER TABLE users ADD COLUMN bio TEXT;\n");
    add_probes(
        &ws,
        r#"[[probe]]
name = "all_users"
sql = "SELECT id FROM users"
expect_rows = 5

[[probe]]
name = "some_users"
sql = "SELECT id FROM users WHERE id > ?"
params = [1]
expect_rows = "1..2"

[[probe]]
name = "rename_all"
kind = "write"
sql = "UPDATE users SET name = upper(name)"
expect_changes = 2

[[probe]]
name = "missing_table"
sql = "SELECT * FROM posts"

[[probe]]
name = "sneaky_write"
sql = "DELETE FROM users"
"#,
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    assert_eq!(status(&deploy, "probe.result"), "fail");
    let why = reason(&deploy, "probe.result");
    assert!(why.contains("4 of 5 probe(s)"), "{why}");
    assert!(why.contains("all_users: expected 5 row(s), got 3"), "{why}");
    assert!(
        why.contains("rename_all: expected 2 change(s), got 3"),
        "{why}"
    );
    assert!(
        why.contains("missing_table: error: no such table: posts"),
        "{why}"
    );
    let entries = check(&deploy, "probe.result")["details"]["probes"]
        .as_array()
        .unwrap()
        .clone();
    let entry = |name: &str| entries.iter().find(|e| e["name"] == name).unwrap().clone();
    assert!(entry("some_users")["problem"].is_null(), "{entries:?}");
    assert_eq!(entry("some_users")["rows_after"], 2);
    assert_eq!(entry("all_users")["expected"], "5 row(s)");
    // A statement that writes must be declared a write probe; it never runs as a read.
    let sneaky = entry("sneaky_write")["problem"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sneaky.contains("declare kind = \"write\""), "{sneaky}");
    let preview = ws
        .path()
        .join(".d1ops/db")
        .join(format!("{}.sqlite", deploy["preview"].as_str().unwrap()));
    let users: i64 = Connection::open(preview)
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 3);

    let shown = ws.ok(&["release", "show", deploy["id"].as_str().unwrap()]);
    assert!(
        shown.contains("✗ all_users: expected 5 row(s), got 3"),
        "{shown}"
    );
}

#[test]
fn a_write_probe_leaves_the_preview_row_counts_and_checksums_unchanged() {
    let ws = Ws::new();
    ws.migration(
        "0001_shop.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);\n\
         CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, title TEXT);\n\
         CREATE TABLE signups (user_id INTEGER, at TEXT);\n\
         CREATE TRIGGER users_signup AFTER INSERT ON users BEGIN INSERT INTO signups VALUES (NEW.id, 'now'); END;\n",
    );
    ws.ship();
    ws.production()
        .execute_batch(
            "INSERT INTO users (name) VALUES ('ann'), ('bob'), ('cy');\n\
             INSERT INTO posts (user_id, title) VALUES (1, 'hello'), (2, 'hi'), (2, 'again');",
        )
        .unwrap();
    let production = table_digests(&ws.production_path());
    ws.migration(
        "0002_notes.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n",
    );
    // The UNIQUE name makes any run that was not rolled back fail the next one.
    add_probes(
        &ws,
        r#"[[probe]]
name = "signup"
kind = "write"
sql = "INSERT INTO users (name) VALUES (?) RETURNING id"
params = ["dee"]
expect_rows = 1
expect_changes = 1

[[probe]]
name = "shout"
kind = "write"
sql = "UPDATE users SET name = upper(name)"
expect_changes = 3

[[probe]]
name = "delete_everyone"
kind = "write"
sql = "DELETE FROM users"
expect_changes = 3
runs = 5
"#,
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy}");
    assert_eq!(
        status(&deploy, "probe.result"),
        "pass",
        "{}",
        reason(&deploy, "probe.result")
    );
    let latency = &check(&deploy, "probe.latency")["details"]["probes"];
    assert_eq!(latency[0]["after"]["runs"], 20, "every run succeeded");
    assert_eq!(latency[2]["after"]["runs"], 5);

    let preview = ws
        .path()
        .join(".d1ops/db")
        .join(format!("{}.sqlite", deploy["preview"].as_str().unwrap()));
    let after: Vec<_> = table_digests(&preview)
        .into_iter()
        .filter(|(t, _, _)| t != "notes")
        .collect();
    assert_eq!(after, production, "the preview's data changed");
    assert!(production.iter().any(|(t, n, _)| t == "posts" && *n == 3));
    assert!(
        production
            .iter()
            .any(|(t, n, _)| t == "sqlite_sequence" && *n == 1)
    );
}

#[test]
fn renaming_a_column_the_live_release_reads_fails_compat_live() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT);\n",
    );
    add_probes(
        &ws,
        r#"[[probe]]
name = "user_by_name"
sql = "SELECT id FROM users WHERE username = ?"
params = ["ann"]
expect_rows = 1
"#,
    );
    let live = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users (username) VALUES ('ann'), ('bob');")
        .unwrap();

    // The candidate's own code reads the new name, so only the live code breaks.
    ws.migration(
        "0002_rename.sql",
        "ALTER TABLE users RENAME COLUMN username TO handle;\n",
    );
    set_probes(
        &ws,
        r#"[[probe]]
name = "user_by_handle"
sql = "SELECT id FROM users WHERE handle = ?"
params = ["ann"]
expect_rows = 1
"#,
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    assert_eq!(status(&deploy, "probe.result"), "pass", "{deploy}");
    assert_eq!(status(&deploy, "compat.live"), "fail", "{deploy}");
    let why = reason(&deploy, "compat.live");
    assert!(why.contains("would break during rollout"), "{why}");
    assert!(why.contains("expand/contract"), "{why}");
    assert!(
        why.contains("user_by_name: error: no such column: username"),
        "{why}"
    );
    assert_eq!(check(&deploy, "compat.live")["details"]["release"], live);
    let shown = ws.ok(&["release", "show", deploy["id"].as_str().unwrap()]);
    assert!(shown.contains("compatibility"), "{shown}");
    assert!(
        shown.contains("user_by_name: error: no such column: username"),
        "{shown}"
    );

    // Expanding instead (a new column, the old one kept) keeps the live code working.
    std::fs::remove_file(ws.path().join("migrations/0002_rename.sql")).unwrap();
    ws.migration(
        "0002_handle.sql",
        "ALTER TABLE users ADD COLUMN handle TEXT;\nUPDATE users SET handle = username;\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy}");
    assert_eq!(status(&deploy, "compat.live"), "pass");
    assert!(
        reason(&deploy, "compat.live").contains("1 probe(s) of live release"),
        "{deploy}"
    );
}

#[test]
fn code_only_and_first_releases_explain_what_was_not_checked() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    add_probes(
        &ws,
        r#"[[probe]]
name = "user"
sql = "SELECT id FROM users WHERE id = ?"
params = [1]
expect_rows = 1
"#,
    );
    // The first release starts from an empty database: only errors can be checked.
    let (code, first) = ws.deploy();
    assert_eq!(code, Some(0), "{first}");
    assert!(
        reason(&first, "probe.result").contains("every table was empty before migrations"),
        "{first}"
    );
    assert_eq!(status(&first, "compat.live"), "pass");
    let id = first["id"].as_str().unwrap();
    ws.ok_as("bob", &["approve", id]);
    ws.ok_as("bob", &["promote", id, "--yes"]);
    // Nothing pending: no preview to probe.
    let (code, code_only) = ws.deploy();
    assert_eq!(code, Some(0), "{code_only}");
    for id in ["probe.result", "probe.latency", "plan.scan", "compat.live"] {
        assert_eq!(status(&code_only, id), "skip", "{id}: {code_only}");
        assert!(
            reason(&code_only, id).contains("code-only release"),
            "{code_only}"
        );
    }
}

/// `d1ops.toml` with one probe table `probe` must be refused with `needle` in the error.
fn refused(probe: &str, needle: &str) {
    let ws = Ws::new();
    add_probes(&ws, probe);
    let (code, out, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(1), "{probe}: accepted\n{out}");
    assert!(err.contains("d1ops.toml"), "{err}");
    assert!(err.contains(needle), "{probe}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn probe_declarations_are_validated() {
    let base = "[[probe]]\nname = \"p\"\nsql = \"SELECT 1\"\n";
    for (extra, needle) in [
        (
            "expect_rows = \"lots\"",
            "expect_rows = \"lots\" must be a row count (3) or an inclusive range",
        ),
        ("expect_rows = -1", "expect_rows = -1 must be a row count"),
        ("expect_rows = 1.5", "expect_rows = 1.5 must be a row count"),
        ("expect_rows = \"5..2\"", "the range is empty"),
        (
            "expect_rows = \"1..x\"",
            "inclusive range (\"1..50\", \"1..\")",
        ),
        (
            "expect_changes = 1",
            "expect_changes applies to write probes only",
        ),
        (
            "kind = \"delete\"",
            "kind \"delete\" must be \"read\" or \"write\"",
        ),
        ("runs = 0", "runs must be between 1 and 10000"),
        ("p95_ms = -3", "p95_ms must be a positive number"),
        (
            "params = [[1, 2]]",
            "params may hold strings, numbers and booleans",
        ),
    ] {
        refused(&format!("{base}{extra}\n"), needle);
    }
    refused(&format!("{base}\n{base}"), "probe \"p\" is declared twice");
    refused("[[probe]]\nname = \"p\"\nsql = \"  \"\n", "sql is empty");
    // Valid forms load.
    let ws = Ws::new();
    add_probes(
        &ws,
        "[[probe]]\nname = \"a\"\nsql = \"SELECT 1\"\nexpect_rows = \"1..\"\n\n\
         [[probe]]\nname = \"b\"\nsql = \"SELECT 1\"\nexpect_rows = \"..3\"\nruns = 5\np95_ms = 2\n\n\
         [[probe]]\nname = \"c\"\nkind = \"write\"\nsql = \"SELECT 1\"\nexpect_changes = 0\nexpect_rows = 1\n",
    );
    ws.ok(&["releases"]);
}
