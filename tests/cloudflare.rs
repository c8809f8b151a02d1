//! The Cloudflare backend against the D1 contract server: every REST call d1ops makes, the
//! failures Cloudflare can answer with (pagination, 429 with Retry-After, 5xx then success,
//! 401/403, code 7500), a batch that fails mid-way, a release too large for one batch (the
//! Time Travel bookmark restore path), export/import polling, restore to a bookmark, and the
//! API token never leaving memory. The lifecycle suite itself runs on this backend in
//! `tests/lifecycle.rs`.
mod cf_support;
mod common;

use std::time::{Duration, Instant};

use cf_support::cloudflare_ws;
use common::{Ws, check, db_digest};
use d1ops::cloudflare::{ApiToken, Client, CloudflareError, Settings};
use d1ops_testkit::d1_contract::{self, D1Server, Fault, Permission};

const USERS: &str =
    "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, bio TEXT);\n";

fn client(server: &D1Server, token: &str) -> Client {
    Client::new(Settings {
        base: server.base(),
        account_id: server.account_id().to_string(),
        token: ApiToken::new(token).unwrap(),
        timeout: Duration::from_secs(10),
        retries: 3,
        backoff: Duration::from_millis(10),
    })
    .unwrap()
}

fn requests_to(server: &D1Server, part: &str) -> Vec<d1_contract::Recorded> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(part))
        .collect()
}

#[test]
fn listing_follows_every_page() {
    let server = D1Server::start();
    for i in 0..230 {
        server.create_database(&format!("db-{i:03}"));
    }
    let c = client(&server, server.token());
    let all = c.list_databases(None).unwrap();
    assert_eq!(all.len(), 230);
    let pages: Vec<String> = requests_to(&server, "/d1/database")
        .into_iter()
        .map(|r| r.query)
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("page=3"), "{pages:?}");
    // Exact names, though the API's `name` filter matches substrings.
    assert_eq!(c.find_database("db-01").unwrap(), None);
    assert_eq!(c.find_database("db-017").unwrap().unwrap().name, "db-017");
}

#[test]
fn rate_limits_and_server_errors_are_retried_as_cloudflare_asks() {
    let server = D1Server::start();
    let id = server.create_database("app");
    let c = client(&server, server.token());
    server.inject(Fault::Status {
        path_contains: format!("/d1/database/{id}"),
        status: 429,
        retry_after_secs: Some(1),
        times: 1,
    });
    let started = Instant::now();
    assert_eq!(c.get_database(&id).unwrap().uuid, id);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );
    let statuses: Vec<u16> = requests_to(&server, &id).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);

    // A 5xx on a read is retried...
    server.inject(Fault::Status {
        path_contains: "/raw".into(),
        status: 503,
        retry_after_secs: None,
        times: 2,
    });
    let rows = c
        .raw(
            &id,
            &[d1ops::cloudflare::d1::Statement::new("SELECT 1 AS one")],
            true,
        )
        .unwrap();
    assert_eq!(rows[0].results.rows, vec![vec![serde_json::json!(1)]]);
    // ...a 5xx on a write is not (it may have run): the caller is told, nothing repeats.
    server.inject(Fault::Status {
        path_contains: "/query".into(),
        status: 502,
        retry_after_secs: None,
        times: 1,
    });
    let before = requests_to(&server, "/query").len();
    let err = c
        .query(
            &id,
            &[d1ops::cloudflare::d1::Statement::new("CREATE TABLE t (x)")],
            false,
        )
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err}");
    assert_eq!(requests_to(&server, "/query").len(), before + 1);
    // Rate limited for good: a clear sentence after the retries.
    server.inject(Fault::Status {
        path_contains: "/d1/database".into(),
        status: 429,
        retry_after_secs: Some(0),
        times: 10,
    });
    let err = c.list_databases(None).unwrap_err();
    assert!(matches!(err, CloudflareError::RateLimited { .. }), "{err}");
    assert!(
        err.to_string().contains("rate-limiting list D1 databases"),
        "{err}"
    );
    server.clear_faults();
}

#[test]
fn credentials_and_permissions_are_named_and_the_token_is_never_shown() {
    let (server, ws) = cloudflare_ws();
    ws.migration("0001_users.sql", USERS);
    // A wrong token: one sentence, exit 1, the token in neither stream.
    let wrong = "cf-wrong-token-0123456789abcdef";
    let out = ws
        .cmd("alice")
        .env("CLOUDFLARE_API_TOKEN", wrong)
        .args(["deploy"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not accept the API token"), "{err}");
    assert!(!err.contains(wrong) && !String::from_utf8_lossy(&out.stdout).contains(wrong));
    // A token that may read but not edit: the missing permission is named.
    server.set_permissions(&[Permission::D1Read]);
    let (code, _, err) = ws.run_as("alice", &["deploy"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("needs the \"Account · D1 · Edit\" permission on account")
            && err.contains(server.account_id()),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // No token at all.
    let out = ws
        .cmd("alice")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .args(["releases"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("CLOUDFLARE_API_TOKEN"), "{err}");
}

#[test]
fn a_token_in_the_config_file_is_refused_without_echoing_it() {
    let (_server, ws) = cloudflare_ws();
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "[cloudflare]\n",
            "[cloudflare]\napi_token = \"tok-in-file-4242\"\n",
        ),
    )
    .unwrap();
    let (code, out, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cloudflare.api_token must not be written"),
        "{err}"
    );
    assert!(!err.contains("tok-in-file-4242") && !out.contains("tok-in-file-4242"));
}

#[test]
fn sql_errors_name_the_statement() {
    let (_server, ws) = cloudflare_ws();
    let (code, _, err) = ws.run_as(
        "alice",
        &["query", "production", "SELECT nope FROM nowhere"],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no such table: nowhere") && err.contains("SQLITE_ERROR"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
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

fn three_more(ws: &Ws) {
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    ws.migration(
        "0003_backfill.sql",
        "UPDATE users SET email = username || '@example.com';\n",
    );
    ws.migration(
        "0004_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);\n\
         CREATE INDEX idx_posts_user ON posts(user_id);\n",
    );
}

#[test]
fn a_batch_failing_mid_way_leaves_production_untouched_and_names_the_statement() {
    let (server, ws) = shipped();
    let id = approved_release(&ws);
    let before = db_digest(&ws.production_path());
    server.inject(Fault::FailStatement {
        sql_contains: "UPDATE users SET email".into(),
        message: "disk I/O error".into(),
    });
    let (code, _, err) = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("0003_backfill.sql:1") && err.contains("disk I/O error"),
        "{err}"
    );
    assert_eq!(db_digest(&ws.production_path()), before);
    // One batch (plus the prefix replays that locate the statement, each rolled back); no
    // Time Travel restore was needed.
    assert!(requests_to(&server, "/time_travel/restore").is_empty());
    server.clear_faults();
    assert_eq!(ws.release_state(&id), "failed");
}

#[test]
fn a_release_too_large_for_one_batch_is_applied_in_parts_and_undone_by_its_bookmark() {
    let (server, ws) = shipped();
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("[cloudflare]\n", "[cloudflare]\nmax_batch_statements = 5\n"),
    )
    .unwrap();
    three_more(&ws);
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "applied in parts on the preview too: {d}");
    let apply = check(&d, "mig.apply");
    assert!(
        apply["reason"]
            .as_str()
            .unwrap()
            .contains("D1 batches after a Time Travel bookmark"),
        "{apply}"
    );
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    let before = db_digest(&ws.production_path());
    // 0002 and 0003 go through; 0004's second statement fails.
    server.inject(Fault::FailStatement {
        sql_contains: "CREATE INDEX idx_posts_user".into(),
        message: "out of memory".into(),
    });
    let (code, _, err) = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("0004_posts.sql:2"), "{err}");
    assert!(err.contains("Time Travel bookmark"), "{err}");
    assert_eq!(
        db_digest(&ws.production_path()),
        before,
        "the bookmark restore undid 0002 and 0003"
    );
    assert_eq!(requests_to(&server, "/time_travel/restore").len(), 1);
    server.clear_faults();

    // Without the fault the same release lands whole, in several batches.
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let again = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &again]);
    let batches_before = requests_to(&server, "/query").len();
    ws.ok_as("bob", &["promote", &again, "--yes"]);
    assert!(requests_to(&server, "/query").len() - batches_before >= 3);
    assert_eq!(
        ws.production_ledger(),
        [
            "0001_users.sql",
            "0002_email.sql",
            "0003_backfill.sql",
            "0004_posts.sql"
        ]
    );
}

#[test]
fn previews_are_seeded_by_export_and_import_with_polling_and_no_token_on_storage_urls() {
    let (server, ws) = shipped();
    server.set_export_polls(3);
    server.set_import_polls(2);
    let (exports_before, imports_before, storage_before) = (
        requests_to(&server, "/export").len(),
        requests_to(&server, "/import").len(),
        requests_to(&server, "/r2/").len(),
    );
    three_more(&ws);
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let preview = ws
        .database_file(d["preview"].as_str().unwrap())
        .expect("the preview database exists on Cloudflare");
    // The preview holds production's rows, migrated.
    let rows: i64 = rusqlite::Connection::open(&preview)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM users WHERE email IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2);
    let exports = requests_to(&server, "/export").len() - exports_before;
    assert!(exports >= 4, "started, polled three times: {exports}");
    let imports = requests_to(&server, "/import").len() - imports_before;
    assert!(imports >= 4, "init, ingest, polled twice: {imports}");
    let storage: Vec<_> = requests_to(&server, "/r2/").split_off(storage_before);
    assert_eq!(storage.len(), 2, "one download, one upload: {storage:?}");
    assert!(
        storage.iter().all(|r| !r.authorization && r.status < 300),
        "{storage:?}"
    );

    // Schema-only previews copy the schema and the ledger, no rows.
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "[cloudflare]\n",
            "[cloudflare]\npreview_seed = \"schema\"\n",
        ),
    )
    .unwrap();
    ws.migration(
        "0005_bio_idx.sql",
        "CREATE INDEX idx_users_bio ON users(bio);\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let preview = ws.database_file(d["preview"].as_str().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&preview).unwrap();
    let users: i64 = c
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    let ledger: i64 = c
        .query_row("SELECT count(*) FROM d1_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!((users, ledger), (0, 5));
    // Cleanup deletes previews on Cloudflare.
    let before = server.databases().len();
    ws.ok(&["abandon", d["id"].as_str().unwrap()]);
    let report = ws.json(&["cleanup", "--yes"]);
    assert!(
        !report["deleted"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(server.databases().len() < before);
}

#[test]
fn restore_puts_production_back_to_the_bookmark_taken_before_the_promotion() {
    let (server, ws) = shipped();
    let before = db_digest(&ws.production_path());
    three_more(&ws);
    let id = ws.ship();
    assert_ne!(db_digest(&ws.production_path()), before);
    let snaps = ws.json(&["snapshots"]);
    let location = snaps.to_string();
    assert!(location.contains("pre-promote"), "{snaps}");
    let plan = ws.ok(&["restore", "--to-release", &id, "--yes"]);
    assert!(plan.contains("restored"), "{plan}");
    assert_eq!(db_digest(&ws.production_path()), before);
    assert!(!requests_to(&server, "/time_travel/restore").is_empty());
    assert_eq!(ws.release_state(&id), "reverted");
    // Bookmarks take no storage: the recovery points count nothing against the plan.
    let usage = ws.json(&["usage"]);
    let points = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["env"] == "recovery-points")
        .cloned()
        .unwrap_or_else(|| panic!("no recovery-points row: {usage}"));
    assert_eq!(points["storage_bytes"], 0, "{points}");
}

#[test]
fn write_probes_leave_the_preview_as_it_was() {
    let (_server, ws) = shipped();
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[probe]]\nname = \"by_name\"\nsql = \"SELECT id FROM users WHERE username = ?\"\nparams = [\"ann\"]\nexpect_rows = 1\nruns = 3\n\
         \n[[probe]]\nname = \"signup\"\nkind = \"write\"\nsql = \"INSERT INTO users(username) VALUES ('probe')\"\nexpect_changes = 1\nruns = 3\n",
    );
    std::fs::write(&path, text).unwrap();
    ws.migration(
        "0002_bio_idx.sql",
        "CREATE INDEX idx_users_bio ON users(bio);\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let result = check(&d, "probe.result");
    assert_eq!(result["status"], "pass", "{result}");
    let plan = check(&d, "plan.scan");
    assert_ne!(plan["status"], "fail", "{plan}");
    let preview = ws.database_file(d["preview"].as_str().unwrap()).unwrap();
    let probes: i64 = rusqlite::Connection::open(&preview)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM users WHERE username = 'probe'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(probes, 0, "every write probe run was undone");
}

#[test]
fn the_token_reaches_no_output_log_or_state_file() {
    let (server, ws) = shipped();
    let token = server.token().to_string();
    let mut seen = String::new();
    three_more(&ws);
    for args in [
        vec!["deploy"],
        vec!["releases"],
        vec!["envs"],
        vec!["query", "production", "SELECT count(*) FROM users"],
        vec!["query", "production", "SELECT broken FROM"],
        vec!["usage"],
    ] {
        let out = ws
            .cmd("alice")
            .env("D1OPS_LOG", "debug")
            .args(&args)
            .output()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // And a failing call whose error text the server could echo.
    server.inject(Fault::Status {
        path_contains: "/d1/database".into(),
        status: 500,
        retry_after_secs: None,
        times: 20,
    });
    let out = ws
        .cmd("alice")
        .env("D1OPS_LOG", "debug")
        .args(["envs"])
        .output()
        .unwrap();
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    server.clear_faults();
    assert!(!seen.is_empty());
    assert!(!seen.contains(&token), "the token was printed");
    let mut files = 0;
    let mut stack = vec![ws.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "the token is in {}",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 3, "state, metrics and the log were checked");
    assert!(ws.path().join(".d1ops/logs").exists(), "a log was written");
}

#[test]
fn account_and_production_come_from_the_environment_and_wrangler() {
    let server = std::sync::Arc::new(D1Server::start());
    let production_id = server.create_database("app-production");
    let ws = Ws::on_cloudflare(cf_support::side(&server, &production_id));
    // Move the account to CLOUDFLARE_ACCOUNT_ID and the database id to [database].
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let head = text.split("[cloudflare]").next().unwrap().to_string();
    std::fs::write(
        &path,
        format!("{head}[database]\nbinding = \"DB\"\ndatabase_name = \"app\"\ndatabase_id = \"{production_id}\"\n"),
    )
    .unwrap();
    let (code, _, err) = ws.run_as("alice", &["envs"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("CLOUDFLARE_ACCOUNT_ID"), "{err}");
    let out = ws
        .cmd("alice")
        .env("CLOUDFLARE_ACCOUNT_ID", server.account_id())
        .args(["--json", "envs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        envs[0]["database"]
            .as_str()
            .unwrap()
            .contains(&production_id),
        "{envs}"
    );
}

/// Shortens D1's query limit (2 s) and the client's patience (1 s) for the tests of lost
/// answers.
fn impatient(ws: &Ws) {
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("statement_timeout = \"30s\"", "statement_timeout = \"2s\"")
        .replace("[cloudflare]\n", "[cloudflare]\ntimeout = \"1s\"\n");
    std::fs::write(&path, text).unwrap();
}

fn approved_release(ws: &Ws) -> String {
    three_more(ws);
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    id
}

#[test]
fn a_promotion_whose_answer_is_lost_after_commit_is_settled_live_by_the_ledger() {
    let (server, ws) = shipped();
    impatient(&ws);
    let id = approved_release(&ws);
    server.inject(Fault::DelayAnswer {
        path_contains: "/query".into(),
        millis: 2_500,
        times: 1,
    });
    let (code, out, err) = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(ws.release_state(&id), "live");
    assert_eq!(
        ws.production_ledger(),
        [
            "0001_users.sql",
            "0002_email.sql",
            "0003_backfill.sql",
            "0004_posts.sql"
        ],
        "applied once, not repeated"
    );
}

#[test]
fn a_promotion_refused_with_a_5xx_is_settled_failed_by_the_ledger() {
    let (server, ws) = shipped();
    impatient(&ws);
    let id = approved_release(&ws);
    let before = db_digest(&ws.production_path());
    server.inject(Fault::Status {
        path_contains: "/query".into(),
        status: 502,
        retry_after_secs: None,
        times: 1,
    });
    let (code, _, err) = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("did not commit"), "{err}");
    assert_eq!(db_digest(&ws.production_path()), before);
    assert_eq!(ws.release_state(&id), "failed");
    let production = ws.cf.as_ref().unwrap().production_id.clone();
    assert_eq!(
        requests_to(&server, &format!("{production}/query"))
            .iter()
            .filter(|r| r.body.contains("0002_email.sql"))
            .count(),
        1,
        "the write was not sent twice"
    );
}

#[test]
fn an_unsettled_promotion_keeps_its_lock_and_the_next_command_recovers_it() {
    let (server, ws) = shipped();
    impatient(&ws);
    let id = approved_release(&ws);
    server.inject(Fault::DelayAnswer {
        path_contains: "/query".into(),
        millis: 2_500,
        times: 1,
    });
    let production = ws.cf.as_ref().unwrap().production_id.clone();
    let mut promote = ws.process("bob");
    promote.args(["promote", &id, "--yes"]);
    let child = std::thread::spawn(move || promote.output());
    // Once the batch has run (its answer held back), production cannot be read either.
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
    server.inject(Fault::Status {
        path_contains: "/raw".into(),
        status: 503,
        retry_after_secs: None,
        times: 1_000,
    });
    let out = child.join().unwrap().unwrap();
    let (code, err) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("unknown"), "{err}");
    server.clear_faults();
    // Read-only commands do not recover: the lock is still there, the release promoting.
    let show = ws.json(&["--readonly", "release", "show", &id]);
    assert_eq!(show["state"], "promoting", "{show}");
    // The next command finds the lock of a process that is gone and reads the ledger.
    let (code, out, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("rolled_forward")
            || out.contains("rolled_forward")
            || err.contains("recovered"),
        "{out}{err}"
    );
    assert_eq!(ws.release_state(&id), "live");
}
