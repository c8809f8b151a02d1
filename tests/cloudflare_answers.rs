//! D1's answers told as they are, against the D1 contract server: a listing D1 would not
//! answer (401/403) is marked unknown and exits 1 rather than looking empty; a promotion
//! waiting to be settled against an unreachable API does not hide `releases`; a changed
//! production id is refused until `d1ops adopt`; `restore --undo` goes back to Time Travel's
//! own `previous_bookmark`; `envs` shows each database's read-replication mode.
mod cf_support;
mod common;

use std::time::{Duration, Instant};

use cf_support::cloudflare_ws;
use common::{Ws, db_digest};
use d1ops_testkit::d1_contract::{self, D1Server, Fault, Permission};

const USERS: &str =
    "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, bio TEXT);\n";

fn requests_to(server: &D1Server, part: &str) -> Vec<d1_contract::Recorded> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(part))
        .collect()
}

/// Ships 0001 (users with two rows) and returns the workspace and its server.
fn shipped() -> (std::sync::Arc<D1Server>, Ws) {
    let (server, ws) = cloudflare_ws();
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(username) VALUES ('ann'), ('ben');")
        .unwrap();
    (server, ws)
}

fn production_id(ws: &Ws) -> String {
    ws.cf.as_ref().unwrap().production_id.clone()
}

/// Runs `args` with `token` instead of the server's.
fn with_token(ws: &Ws, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = ws
        .cmd("alice")
        .env("CLOUDFLARE_API_TOKEN", token)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn listings_mark_what_d1_would_not_answer_and_exit_1() {
    let (server, ws) = shipped();
    let production = production_id(&ws);
    // A stale preview: its release abandoned.
    ws.migration(
        "0002_bio_idx.sql",
        "CREATE INDEX idx_users_bio ON users(bio);\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    ws.ok(&["abandon", d["id"].as_str().unwrap()]);

    // 401: a token D1 does not accept.
    let wrong = "cf-wrong-token-0123456789abcdef";
    let (code, out, err) = with_token(&ws, wrong, &["envs"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("production")).unwrap();
    assert!(
        line.contains("unknown") && !line.contains("no database"),
        "{out}"
    );
    assert!(
        err.contains("could not be read") && err.contains("did not accept the API token"),
        "{err}"
    );
    assert!(err.contains(&production), "{err}");
    assert!(!out.contains(wrong) && !err.contains(wrong));
    let (code, out, _) = with_token(&ws, wrong, &["--json", "envs"]);
    assert_eq!(code, Some(1));
    let envs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prod = &envs[0];
    assert_eq!(prod["name"], "production", "{envs}");
    assert!(prod["unreadable"].is_string(), "{prod}");
    assert!(prod["size_bytes"].is_null(), "{prod}");
    assert!(
        prod["database"].as_str().unwrap().contains(&production),
        "{prod}"
    );
    let (code, out, err) = with_token(&ws, wrong, &["cleanup", "--dry-run"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("size(s) unknown"), "{out}");
    assert!(err.contains("its size is unknown"), "{err}");

    // 403: a token without D1 read on the account.
    server.set_permissions(&[Permission::AnalyticsRead]);
    let (code, out, err) = ws.run_as("alice", &["envs"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("permission"), "{err}");
    let (code, _, err) = ws.run_as("alice", &["cleanup", "--dry-run"]);
    assert_eq!(code, Some(1), "{err}");

    // Readable again: exit 0, sizes shown.
    server.set_permissions(&[
        Permission::D1Read,
        Permission::D1Edit,
        Permission::AnalyticsRead,
    ]);
    let (code, out, err) = ws.run_as("alice", &["envs"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("unknown"), "{out}");
    let (code, _, err) = ws.run_as("alice", &["cleanup", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
}

fn impatient(ws: &Ws) {
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("statement_timeout = \"30s\"", "statement_timeout = \"2s\"")
        .replace("[cloudflare]\n", "[cloudflare]\ntimeout = \"1s\"\n");
    std::fs::write(&path, text).unwrap();
}

#[test]
fn releases_lists_while_a_promotion_waits_on_an_unreachable_api() {
    let (server, ws) = shipped();
    impatient(&ws);
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    server.inject(Fault::DelayAnswer {
        path_contains: "/query".into(),
        millis: 2_500,
        times: 1,
    });
    let production = production_id(&ws);
    let mut promote = ws.process("bob");
    promote.args(["promote", &id, "--yes"]);
    let child = std::thread::spawn(move || promote.output());
    let applied = |s: &D1Server| {
        requests_to(s, &format!("{production}/query"))
            .iter()
            .any(|r| r.body.contains("0002_email.sql"))
    };
    let started = Instant::now();
    while !applied(&server) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the batch never arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // From now on D1 answers nothing at all.
    server.inject(Fault::Status {
        path_contains: "/client/v4".into(),
        status: 503,
        retry_after_secs: None,
        times: 100_000,
    });
    let out = child.join().unwrap().unwrap();
    assert_ne!(out.status.code(), Some(0));
    // The list is the state store's: shown, with the warning, not an error.
    let (code, out, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&id), "{out}");
    assert!(
        err.contains("warning") && err.contains("not settled") && err.contains(&id),
        "{err}"
    );
    // Still unsettled; once D1 answers, the next command settles it.
    server.clear_faults();
    let (code, out, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(ws.release_state(&id), "live");
}

#[test]
fn a_changed_production_id_is_refused_until_adopted() {
    let (server, ws) = shipped();
    let old = production_id(&ws);
    let new = server.create_database("app-production-moved");
    // The new database already carries the schema and a ledger (say, an import).
    let c = rusqlite::Connection::open(server.db_path(&new)).unwrap();
    c.execute_batch(USERS).unwrap();
    c.execute_batch(
        "CREATE TABLE d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO d1_migrations(name) VALUES ('0001_users.sql');",
    )
    .unwrap();
    drop(c);
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&old, &new)).unwrap();

    let exports_before = requests_to(&server, "/export").len();
    for args in [vec!["releases"], vec!["deploy"], vec!["--readonly", "envs"]] {
        let (code, out, err) = ws.run_as("alice", &args);
        assert_eq!(code, Some(4), "{args:?}: {out}{err}");
        assert!(
            err.contains(&old)
                && err.contains(&new)
                && err.contains(&format!("d1ops adopt --database-id {new}")),
            "{err}"
        );
    }
    assert_eq!(
        requests_to(&server, "/export").len(),
        exports_before,
        "nothing was cloned from either database"
    );
    // An id the configuration does not name is not adopted.
    let (code, _, err) = ws.run_as("alice", &["adopt", "--database-id", &old, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    // Without --yes and no terminal: the typed confirmation cannot be given.
    let (code, _, err) = ws.run_as("alice", &["adopt", "--database-id", &new]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--yes"), "{err}");
    let ledger_reads = requests_to(&server, &format!("{new}/raw")).len();
    assert!(
        ledger_reads > 0,
        "adopt read the new database's ledger first"
    );
    let out = ws.json(&["adopt", "--database-id", &new, "--yes"]);
    assert_eq!(out["from"], old.as_str(), "{out}");
    assert_eq!(out["to"], new.as_str(), "{out}");
    assert_eq!(out["ledger_rows"], 1, "{out}");
    let audit = ws.json(&["audit"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "production.adopted" && e["actor"] == "alice"),
        "{audit}"
    );
    let envs = ws.json(&["envs"]);
    assert!(
        envs[0]["database"].as_str().unwrap().contains(&new),
        "{envs}"
    );
    // And an id that names no database is refused by the same rule, then by adopt.
    let gone = "00000000-0000-4000-8000-000000000000";
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&new, gone)).unwrap();
    let (code, _, err) = ws.run_as("alice", &["envs"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains(gone) && err.contains(&new), "{err}");
    let (code, _, err) = ws.run_as("alice", &["adopt", "--database-id", gone, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn restore_undo_goes_back_to_the_bookmark_time_travel_answered() {
    let (server, ws) = shipped();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    let id = ws.ship();
    let promoted = db_digest(&ws.production_path());
    let bookmarks_before = requests_to(&server, "/time_travel/bookmark").len();
    ws.ok(&["restore", "--to-release", &id, "--yes"]);
    assert_ne!(db_digest(&ws.production_path()), promoted);
    assert_eq!(
        requests_to(&server, "/time_travel/bookmark").len(),
        bookmarks_before,
        "no bookmark was read for the undo point: the restore's answer named it"
    );
    // The recorded pre-restore point is the bookmark the server had before the restore.
    let snaps = ws.json(&["snapshots"]);
    let pre = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "pre-restore")
        .unwrap_or_else(|| panic!("no pre-restore point: {snaps}"))
        .clone();
    assert!(
        pre["location"]
            .as_str()
            .unwrap()
            .starts_with("d1-bookmark:"),
        "{pre}"
    );
    ws.ok(&["restore", "--undo", "--yes"]);
    assert_eq!(db_digest(&ws.production_path()), promoted);
    assert_eq!(ws.release_state(&id), "live");
}

#[test]
fn envs_show_each_databases_read_replication_mode() {
    let (server, ws) = shipped();
    server.set_read_replication(&production_id(&ws), "auto");
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["read_replication"], "auto", "{envs}");
    let out = ws.ok(&["envs"]);
    assert!(out.contains("READ REPLICATION"), "{out}");
    let line = out.lines().find(|l| l.starts_with("production")).unwrap();
    assert!(line.contains("auto"), "{out}");
    server.set_read_replication(&production_id(&ws), "disabled");
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["read_replication"], "disabled", "{envs}");
}

#[test]
fn schema_only_previews_say_what_they_cannot_check_and_use_productions_figures() {
    let (_server, ws) = cloudflare_ws();
    ws.migration("0001_users.sql", USERS);
    ws.migration(
        "0002_events.sql",
        "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT);\n",
    );
    ws.ship();
    // Two users; more events than the bounded count reads (unknown, not scanned).
    ws.production()
        .execute_batch(
            "INSERT INTO users(username) VALUES ('ann'), ('ben');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100001)
             INSERT INTO events(kind) SELECT 'k' FROM n;",
        )
        .unwrap();
    let production_bytes = std::fs::metadata(ws.production_path()).unwrap().len();
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "[cloudflare]\n",
            "[cloudflare]\npreview_seed = \"schema\"\n",
        )
        .replace("index_rows_warn = 100000", "index_rows_warn = 1");
    text.push_str(
        "\n[[probe]]\nname = \"by_name\"\nsql = \"SELECT id FROM users WHERE username = ?\"\nparams = [\"ann\"]\nexpect_rows = 1\n",
    );
    std::fs::write(&path, text).unwrap();
    ws.migration(
        "0003_bio_idx.sql",
        "CREATE INDEX idx_users_bio ON users(bio);\n",
    );
    let (code, d) = ws.deploy();
    assert_ne!(code, Some(3), "{d}");
    let reason = |id: &str| {
        common::check(&d, id)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let probe = reason("probe.result");
    assert!(
        probe.starts_with("schema-only preview:")
            && probe.contains("production has 2 row(s)")
            && probe.contains("above 100,000 rows not counted (unknown)")
            && !probe.contains("no data yet"),
        "{probe}"
    );
    let size = common::check(&d, "limit.size");
    assert!(
        size["reason"]
            .as_str()
            .unwrap()
            .starts_with("schema-only preview:"),
        "{size}"
    );
    assert_eq!(size["details"]["size_before"], production_bytes, "{size}");
    let risk = common::check(&d, "lint.risk");
    assert!(
        reason("lint.risk").contains("risk.index-large-table"),
        "{risk}"
    );
    let finding = risk["details"].to_string();
    assert!(
        finding.contains("schema-only preview: index idx_users_bio on users (2 rows"),
        "{risk}"
    );
    let loss = common::check(&d, "data.loss");
    assert_eq!(loss["status"], "skip", "{loss}");
    assert!(
        reason("data.loss").starts_with("schema-only preview:"),
        "{loss}"
    );
    assert!(
        reason("fk.check").starts_with("schema-only preview:"),
        "{}",
        reason("fk.check")
    );
}

#[test]
fn a_restore_whose_answer_is_lost_still_leaves_an_undo_point() {
    let (server, ws) = shipped();
    impatient(&ws);
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    let id = ws.ship();
    let promoted = db_digest(&ws.production_path());
    // The restore runs; its answer (and the previous_bookmark in it) never arrives in time.
    server.inject(Fault::DelayAnswer {
        path_contains: "/time_travel/restore".into(),
        millis: 2_500,
        times: 1,
    });
    let (code, out, err) = ws.run_as("alice", &["restore", "--to-release", &id, "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_ne!(db_digest(&ws.production_path()), promoted);
    let at = requests_to(&server, "/time_travel/bookmark");
    assert!(
        at.iter().any(|r| r.query.contains("timestamp=")),
        "the undo point is the bookmark at the time the restore was sent: {at:?}"
    );
    ws.ok(&["restore", "--undo", "--yes"]);
    assert_eq!(db_digest(&ws.production_path()), promoted);
}

/// A restore killed after Time Travel answered but before its `previous_bookmark` was
/// recorded is rolled forward by the next command, which takes the undo point from the
/// bookmark at the time the restore started: `restore --undo` still works.
#[test]
fn a_restore_killed_before_its_undo_point_was_recorded_can_still_be_undone() {
    let (_server, ws) = shipped();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    let id = ws.ship();
    let promoted = db_digest(&ws.production_path());
    let killed = ws
        .cmd("alice")
        .env("D1OPS_FAULT", "restore.before_undo_point")
        .args(["restore", "--to-release", &id, "--yes"])
        .output()
        .unwrap();
    assert!(!killed.status.success(), "the fault point was not reached");
    assert_ne!(
        db_digest(&ws.production_path()),
        promoted,
        "the restore landed"
    );
    ws.ok(&["releases"]);
    ws.ok(&["restore", "--undo", "--yes"]);
    assert_eq!(db_digest(&ws.production_path()), promoted);
}
