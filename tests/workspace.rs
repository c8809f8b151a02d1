//! `init` and migration layouts: wrangler import, Drizzle journal, nested folders.
mod common;

use assert_cmd::Command;

fn d1ops(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("d1ops").unwrap();
    c.arg("--workspace").arg(dir).env("D1OPS_USER", "alice");
    c
}

#[test]
fn init_imports_wrangler_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrangler.toml"),
        "name = \"app\"\n[[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"prod-db\"\ndatabase_id = \"0b1c\"\n\
         preview_database_id = \"9f9f\"\nmigrations_dir = \"sql\"\nmigrations_table = \"ledger\"\n",
    )
    .unwrap();
    let out = d1ops(dir.path()).arg("init").output().unwrap();
    assert!(out.status.success());
    let cfg = std::fs::read_to_string(dir.path().join("d1ops.toml")).unwrap();
    for needle in [
        "migrations_dir = \"sql\"",
        "migrations_table = \"ledger\"",
        "database_id = \"0b1c\"",
        "binding = \"DB\"",
        "preview_database_id = \"9f9f\"",
    ] {
        assert!(cfg.contains(needle), "{needle} missing from:\n{cfg}");
    }
    // The imported ledger table is the one written.
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(
        dir.path().join("sql/0001_a.sql"),
        "CREATE TABLE a (x INTEGER);",
    )
    .unwrap();
    let out = d1ops(dir.path())
        .args(["--json", "deploy"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(
        d1ops(dir.path())
            .env("D1OPS_USER", "bob")
            .args(["approve", id])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(
        d1ops(dir.path())
            .env("D1OPS_USER", "bob")
            .args(["promote", id, "--yes"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let c = rusqlite::Connection::open(dir.path().join(".d1ops/db/production.sqlite")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    // init twice is refused.
    assert_eq!(
        d1ops(dir.path())
            .arg("init")
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn init_prefers_db_migrations_and_reads_jsonc() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db/migrations")).unwrap();
    let out = d1ops(dir.path()).arg("init").output().unwrap();
    assert!(out.status.success());
    let cfg = std::fs::read_to_string(dir.path().join("d1ops.toml")).unwrap();
    assert!(cfg.contains("migrations_dir = \"db/migrations\""), "{cfg}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrangler.jsonc"),
        "{\n  // comment\n  \"d1_databases\": [{ \"binding\": \"DB\", \"database_name\": \"x\", \"database_id\": \"abc\", },],\n}\n",
    )
    .unwrap();
    assert!(
        d1ops(dir.path())
            .arg("init")
            .output()
            .unwrap()
            .status
            .success()
    );
    let cfg = std::fs::read_to_string(dir.path().join("d1ops.toml")).unwrap();
    assert!(cfg.contains("database_id = \"abc\""), "{cfg}");
}

#[test]
fn drizzle_layout_deploys_in_journal_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("db/migrations");
    std::fs::create_dir_all(m.join("meta")).unwrap();
    std::fs::write(
        m.join("meta/_journal.json"),
        r#"{"version":"7","dialect":"sqlite","entries":[
            {"idx":0,"version":"6","when":1,"tag":"0000_curious_wolf","breakpoints":true},
            {"idx":1,"version":"6","when":2,"tag":"0001_brave_fox","breakpoints":true}]}"#,
    )
    .unwrap();
    std::fs::write(
        m.join("0000_curious_wolf.sql"),
        "CREATE TABLE `users` (\n\t`id` integer PRIMARY KEY NOT NULL\n);\n--> statement-breakpoint\nCREATE TABLE `items` (`id` integer, `owner` integer REFERENCES `users`(`id`))\n",
    )
    .unwrap();
    std::fs::write(
        m.join("0001_brave_fox.sql"),
        "CREATE INDEX `items_owner` ON `items` (`owner`);",
    )
    .unwrap();
    assert!(
        d1ops(dir.path())
            .arg("init")
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = d1ops(dir.path())
        .args(["--json", "deploy"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["pending"],
        serde_json::json!(["0000_curious_wolf.sql", "0001_brave_fox.sql"])
    );
}

#[test]
fn nested_layout() {
    let dir = tempfile::tempdir().unwrap();
    for (d, sql) in [
        ("20240101_init", "CREATE TABLE a (x INTEGER);"),
        ("20240202_more", "CREATE TABLE b (x INTEGER);"),
    ] {
        std::fs::create_dir_all(dir.path().join("migrations").join(d)).unwrap();
        std::fs::write(
            dir.path().join("migrations").join(d).join("migration.sql"),
            sql,
        )
        .unwrap();
    }
    assert!(
        d1ops(dir.path())
            .arg("init")
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = d1ops(dir.path())
        .args(["--json", "deploy"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["pending"],
        serde_json::json!(["20240101_init", "20240202_more"])
    );
}

#[test]
fn demo_builds_every_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    let out = Command::cargo_bin("d1ops")
        .unwrap()
        .env("D1OPS_DEMO_SCALE", "0.01")
        .args(["--json", "demo", root.to_str().unwrap(), "--no-console"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    for s in [
        "live",
        "superseded",
        "ready",
        "blocked",
        "failed",
        "abandoned",
    ] {
        assert!(states.contains(&s), "demo lacks a {s} release: {states:?}");
    }
    let envs = d1ops(&root).args(["--json", "envs"]).output().unwrap();
    let envs: serde_json::Value = serde_json::from_slice(&envs.stdout).unwrap();
    let stale = envs
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["stale"].is_null())
        .count();
    assert!(stale >= 3, "{envs}");
    // Reuse is instant and keeps history.
    let again = Command::cargo_bin("d1ops")
        .unwrap()
        .args(["--json", "demo", root.to_str().unwrap(), "--no-console"])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["reused"], true);
}

/// The ledger is created byte for byte as wrangler creates it (no quotes around a plain
/// name), so schema diffs between a wrangler- and a d1ops-migrated database show nothing.
#[test]
fn ledger_is_created_as_wrangler_writes_it() {
    let ws = common::Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    ws.ship();
    let sql: String = ws
        .production()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'd1_migrations'",
            [],
            |r| r.get(0),
        )
        .expect("ledger");
    assert!(
        sql.starts_with("CREATE TABLE d1_migrations(\n"),
        "not wrangler's text: {sql}"
    );
}
