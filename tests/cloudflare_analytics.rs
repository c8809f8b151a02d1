//! Monitor and capacity on the cloudflare backend, through the real binary against the D1
//! contract server: traffic run on "Cloudflare" reaches the monitor through the GraphQL
//! Analytics API, 30 days of history give usage and forecasts, the GraphQL budget holds
//! (ours and Cloudflare's 429), syncing again never counts twice, and the API token shows up
//! in no output and no file.
mod cf_support;
mod common;

use std::path::Path;

use assert_cmd::Command;
use chrono::{Duration, Utc};
use d1ops_testkit::d1_contract::{D1Server, Permission};
use serde_json::Value;

/// A cloudflare workspace whose production is one database on the contract server.
struct Cf {
    server: D1Server,
    dir: tempfile::TempDir,
    db: String,
}

impl Cf {
    fn new(extra_config: &str) -> Cf {
        let server = D1Server::start();
        let db = server.create_database("shop");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("migrations")).expect("migrations");
        std::fs::write(
            dir.path().join("d1ops.toml"),
            format!(
                "backend = \"cloudflare\"\n\n[cloudflare]\ndatabase_id = \"{db}\"\n{extra_config}"
            ),
        )
        .expect("config");
        Cf { server, dir, db }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("d1ops").expect("binary");
        c.arg("--workspace").arg(self.path());
        c.env("D1OPS_USER", "alice")
            .env("NO_COLOR", "1")
            .env("D1OPS_LOG", "debug")
            .env("D1OPS_CLOUDFLARE_API_BASE", self.server.base())
            .env("CLOUDFLARE_API_TOKEN", self.server.token())
            .env("CLOUDFLARE_ACCOUNT_ID", self.server.account_id())
            .env("D1OPS_CLOUDFLARE_BACKOFF_MS", "1")
            .env_remove("D1OPS_FAULT")
            .env_remove("D1OPS_PAUSE");
        c
    }

    /// (exit code, stdout, stderr); stdout and stderr never hold the token.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.cmd().args(args).output().expect("run");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains(self.server.token()),
                "d1ops {args:?} printed the token:\n{text}"
            );
        }
        (out.status.code(), stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code,
            Some(0),
            "d1ops {args:?}:\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.ok(&full);
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"))
    }

    /// GraphQL requests the server has seen.
    fn graphql_requests(&self) -> usize {
        (self.server.requests().iter())
            .filter(|r| r.path.ends_with("/graphql"))
            .count()
    }

    /// A table with a few rows, made through `d1ops query` (so through D1's API).
    fn seed(&self) {
        self.ok(&[
            "query",
            "production",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "--yes",
        ]);
        for i in 1..=3 {
            self.ok(&[
                "query",
                "production",
                &format!("INSERT INTO items (id, name) VALUES ({i}, 'item {i}')"),
                "--yes",
            ]);
        }
    }
}

/// The top query whose text contains `needle`.
fn top<'a>(monitor: &'a Value, needle: &str) -> &'a Value {
    monitor["top"]
        .as_array()
        .expect("top")
        .iter()
        .find(|q| q["text"].as_str().is_some_and(|t| t.contains(needle)))
        .unwrap_or_else(|| panic!("no top query with {needle:?}: {monitor:#}"))
}

#[test]
fn traffic_sent_through_d1_shows_up_in_the_monitor() {
    let cf = Cf::new("");
    cf.seed();
    for id in [1, 2, 3, 1, 2] {
        cf.ok(&[
            "query",
            "production",
            &format!("SELECT name FROM items WHERE id = {id}"),
        ]);
    }
    assert_eq!(cf.graphql_requests(), 0, "running SQL asks no analytics");
    let m = cf.json(&["monitor"]);
    assert_eq!(
        cf.graphql_requests(),
        1,
        "one request carries every dataset"
    );
    let f = &m["freshness"];
    assert_eq!(f["source"], "cloudflare-graphql");
    assert!(f["synced_at"].is_string(), "{f:#}");
    assert!(f["newest_bucket"].is_string(), "{f:#}");
    assert_eq!(f["last_outcome"], "synced");
    assert_eq!(f["budget"]["used"], 1);
    assert_eq!(f["budget"]["limit"], 250);
    let select = top(&m, "FROM items WHERE id");
    assert_eq!(select["count"], 5, "the five SELECTs, one fingerprint");
    assert!(select["p95"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        m["totals"]["count"],
        5 + 4,
        "plus the CREATE and three INSERTs"
    );
    assert_eq!(m["totals"]["errors"], 0);
    // Fresh within analytics_refresh: the next read asks nothing.
    let again = cf.json(&["monitor", "--window", "5m"]);
    assert_eq!(cf.graphql_requests(), 1);
    assert_eq!(top(&again, "FROM items WHERE id")["count"], 5);
    let text = cf.ok(&["monitor"]);
    assert!(text.contains("D1 analytics as of "), "{text}");
    assert!(text.contains("SELECT name FROM items WHERE id"), "{text}");
    // Today's usage comes from D1's daily totals.
    let usage = cf.json(&["usage", "--days", "1"]);
    let today = &usage["days"][0];
    assert_eq!(today["env"], "production");
    assert_eq!(today["queries"], 9);
    assert_eq!(today["rows_written"], 3);
    assert!(today["storage_bytes"].as_u64().unwrap() > 0);
    assert_eq!(usage["freshness"]["source"], "cloudflare-graphql");
}

#[test]
fn thirty_days_of_history_give_usage_and_a_forecast() {
    let cf = Cf::new("");
    let now = Utc::now();
    // Noon of each of the 29 days before today.
    let noon = |day: i64| {
        (now.date_naive() - chrono::Days::new((30 - day) as u64))
            .and_hms_opt(12, 0, 0)
            .expect("noon")
            .and_utc()
    };
    for day in 1..=29i64 {
        let at = noon(day);
        // Rows written per day grow by 2,000 toward d1-free's 100,000.
        cf.server.record_history(
            &cf.db,
            at,
            "INSERT INTO events (kind) VALUES (?)",
            100,
            1.5,
            1,
            (400 + 20 * day) as u64,
        );
        cf.server.record_history(
            &cf.db,
            at,
            "SELECT * FROM events WHERE id = ?",
            50,
            0.5,
            1,
            0,
        );
        cf.server
            .record_storage(&cf.db, at, 1_000_000 + 50_000 * day as u64);
    }
    let usage = cf.json(&["usage", "--days", "30"]);
    let days: Vec<&Value> = (usage["days"].as_array().unwrap().iter())
        .filter(|d| d["env"] == "production")
        .collect();
    assert!(days.len() >= 29, "{usage:#}");
    let first = days
        .iter()
        .find(|d| d["rows_written"].as_u64() == Some(100 * 420))
        .unwrap_or_else(|| panic!("day 1's writes: {usage:#}"));
    assert_eq!(first["queries"], 150);
    assert_eq!(first["rows_read"], 150);
    assert_eq!(first["storage_bytes"], 1_050_000);
    assert_eq!(first["databases"], 1);
    let forecast = cf.json(&["forecast"]);
    let writes = (forecast["items"].as_array().unwrap().iter())
        .find(|i| i["metric"] == "rows_written_per_day")
        .expect("rows written per day");
    assert!(
        writes["days_until"].as_i64().is_some_and(|d| d <= 30),
        "growing 2,000 a day from 42,000 reaches 100,000 within the month: {writes:#}"
    );
    assert_eq!(forecast["freshness"]["source"], "cloudflare-graphql");
    // The per-query history is in the week's monitor.
    let week = cf.json(&["monitor", "--window", "7d"]);
    let insert = top(&week, "INSERT INTO events");
    let in_week = (1..=29i64)
        .filter(|d| noon(*d) >= now - Duration::days(7))
        .count() as u64;
    assert_eq!(insert["count"].as_u64(), Some(100 * in_week));
    let report = cf.ok(&["report", "weekly"]);
    assert!(
        report.contains("Traffic and storage from Cloudflare's D1 analytics"),
        "{report}"
    );
}

#[test]
fn the_graphql_budget_holds_and_cached_data_stays() {
    let cf = Cf::new("analytics_budget = 2\n");
    cf.seed();
    let first = cf.json(&["analytics", "sync", "--force"]);
    assert_eq!(first["outcome"], "synced");
    assert_eq!(first["requests"], 1);
    cf.ok(&["query", "production", "SELECT count(*) FROM items"]);
    assert_eq!(
        cf.json(&["analytics", "sync", "--force"])["outcome"],
        "synced"
    );
    assert_eq!(cf.graphql_requests(), 2);
    for _ in 0..3 {
        let (code, out, _) = cf.run(&["--json", "analytics", "sync", "--force"]);
        assert_eq!(
            code,
            Some(4),
            "budget spent: refused, nothing changed: {out}"
        );
        let r: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(r["outcome"], "budget");
        assert_eq!(r["requests"], 0);
    }
    assert_eq!(cf.graphql_requests(), 2, "no request beyond the budget");
    // Readers keep showing what was synced, and say why it may be old.
    let m = cf.json(&["monitor"]);
    assert_eq!(cf.graphql_requests(), 2);
    assert_eq!(m["totals"]["count"], 5);
    assert_eq!(m["freshness"]["last_outcome"], "budget");
    let note = m["freshness"]["note"].as_str().expect("note");
    assert!(note.contains("budget is used up (2 of 2"), "{note}");
    let text = cf.ok(&["usage", "--days", "1"]);
    assert!(text.contains("showing cached data"), "{text}");
}

#[test]
fn cloudflares_429_stops_syncing_for_five_minutes() {
    let cf = Cf::new("");
    cf.seed();
    cf.server.set_graphql_budget(1);
    assert_eq!(
        cf.json(&["analytics", "sync", "--force"])["outcome"],
        "synced"
    );
    let (code, out, _) = cf.run(&["--json", "analytics", "sync", "--force"]);
    assert_eq!(code, Some(4), "{out}");
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["outcome"], "rate_limited");
    assert_eq!(cf.graphql_requests(), 2, "the 429 is not retried");
    cf.run(&["analytics", "sync", "--force"]);
    cf.ok(&["monitor"]);
    assert_eq!(cf.graphql_requests(), 2, "nothing asked while waiting");
    let m = cf.json(&["monitor"]);
    assert_eq!(m["totals"]["count"], 4);
    let note = m["freshness"]["note"].as_str().expect("note");
    assert!(note.contains("429"), "{note}");
}

#[test]
fn syncing_again_never_counts_twice() {
    let cf = Cf::new("");
    cf.seed();
    let count = |m: &Value| m["totals"]["count"].as_u64().unwrap();
    let m = cf.json(&["monitor"]);
    assert_eq!(count(&m), 4);
    for _ in 0..2 {
        let r = cf.json(&["analytics", "sync", "--force"]);
        assert_eq!(r["outcome"], "synced");
        assert_eq!(r["buckets"]["added"], 0, "{r:#}");
        assert_eq!(count(&cf.json(&["monitor"])), 4);
    }
    let usage = cf.json(&["usage", "--days", "1"]);
    assert_eq!(usage["days"][0]["queries"], 4);
    // Late data for a bucket already synced (still within the settle window) replaces it.
    cf.server.record_history(
        &cf.db,
        Utc::now() - Duration::seconds(5),
        "SELECT name FROM items WHERE id = ?",
        7,
        0.4,
        1,
        0,
    );
    cf.ok(&["query", "production", "SELECT name FROM items WHERE id = 2"]);
    let r = cf.json(&["analytics", "sync", "--force"]);
    assert_eq!(r["outcome"], "synced");
    let m = cf.json(&["monitor"]);
    assert_eq!(count(&m), 4 + 7 + 1);
    assert_eq!(top(&m, "FROM items WHERE id")["count"], 8);
    let r = cf.json(&["analytics", "sync", "--force"]);
    assert_eq!(r["buckets"]["added"], 0);
    assert_eq!(r["buckets"]["replaced"], 0);
    assert_eq!(count(&cf.json(&["monitor"])), 12);
    assert_eq!(cf.json(&["usage", "--days", "1"])["days"][0]["queries"], 12);
}

#[test]
fn missing_analytics_permission_is_named_and_the_token_is_nowhere() {
    let cf = Cf::new("");
    cf.seed();
    cf.ok(&["monitor"]);
    cf.server
        .set_permissions(&[Permission::D1Read, Permission::D1Edit]);
    let (code, out, err) = cf.run(&["analytics", "sync", "--force"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("not synced"), "{out}");
    let m = cf.json(&["monitor"]);
    let note = m["freshness"]["note"].as_str().expect("note");
    assert!(
        note.contains("Account Analytics · Read"),
        "names the permission: {note}"
    );
    assert_eq!(m["totals"]["count"], 4, "cached data stays");
    cf.run(&["usage"]);
    cf.run(&["forecast"]);
    cf.run(&["report", "weekly"]);
    cf.run(&["--readonly", "monitor"]);
    let token = cf.server.token().as_bytes().to_vec();
    let mut files = 0;
    let mut stack = vec![cf.path().join(".d1ops")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_slice()),
                "the token is in {}",
                path.display()
            );
        }
    }
    assert!(files >= 3, "state, metrics and the log were checked");
    assert!(
        cf.path().join(".d1ops/logs/d1ops.log").exists(),
        "the log was checked too"
    );
}

#[test]
fn local_workspaces_have_no_analytics_to_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut init = Command::cargo_bin("d1ops").expect("binary");
    init.arg("--workspace").arg(dir.path()).arg("init");
    assert!(init.output().expect("init").status.success());
    let mut c = Command::cargo_bin("d1ops").expect("binary");
    let out = c
        .arg("--workspace")
        .arg(dir.path())
        .args(["analytics", "sync"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backend = \"local\""), "{err}");
    let mut c = Command::cargo_bin("d1ops").expect("binary");
    let out = c
        .arg("--workspace")
        .arg(dir.path())
        .args(["--json", "monitor"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let m: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(m["freshness"], Value::Null);
}

/// Issue 16 item 3: after `deploy`, `approve` and `promote` and no app traffic, the Monitor's
/// top holds no statement d1ops sent itself (ledger reads, introspection, foreign-key
/// checks, the migrations); `--include-d1ops` shows them, marked; usage still counts them.
#[test]
fn d1ops_own_statements_are_not_app_traffic() {
    let (_server, ws) = cf_support::cloudflare_ws();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    ws.ship();
    ws.migration(
        "0002_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    ws.ship();
    let m = ws.json(&["monitor"]);
    assert_eq!(m["top"], serde_json::json!([]), "{m:#}");
    assert_eq!(m["totals"]["count"], 0, "{m:#}");
    let hidden = m["d1ops_queries"].as_u64().expect("d1ops_queries");
    assert!(hidden > 0, "{m:#}");
    assert!(
        m["watch"]["reasons"].to_string().contains("0 queries"),
        "the watch counts app queries only: {m:#}"
    );

    let all = ws.json(&["monitor", "--include-d1ops", "--limit", "100"]);
    let top = all["top"].as_array().expect("top");
    assert!(!top.is_empty(), "{all:#}");
    assert!(top.iter().all(|q| q["source"] == "d1ops"), "{all:#}");
    let texts = all["top"].to_string();
    assert!(
        texts.contains("d1_migrations") && texts.contains("CREATE INDEX"),
        "{all:#}"
    );
    assert_eq!(all["totals"]["count"].as_u64(), Some(hidden), "{all:#}");

    // App traffic shows, as the app's.
    ws.ok(&[
        "query",
        "production",
        "SELECT id FROM users WHERE email = 'a'",
    ]);
    let m = ws.json(&["analytics", "sync", "--force"]);
    assert_eq!(m["outcome"], "synced", "{m}");
    eprintln!("{}", ws.ok(&["monitor"]));
    let m = ws.json(&["monitor"]);
    let top = m["top"].as_array().expect("top");
    assert_eq!(top.len(), 1, "{m:#}");
    assert_eq!(top[0]["source"], "app", "{m:#}");

    // Usage keeps counting d1ops' statements (they cost rows on D1) and says how many.
    let usage = ws.json(&["usage", "--days", "1"]);
    let total = &usage["totals"][0];
    assert!(
        total["d1ops"]["queries"].as_u64().unwrap_or(0) >= hidden,
        "{usage:#}"
    );
    assert!(
        total["queries"].as_u64().unwrap_or(0) > total["d1ops"]["queries"].as_u64().unwrap_or(0),
        "{usage:#}"
    );
    let text = ws.ok(&["usage", "--days", "1"]);
    assert!(text.contains("of which d1ops' own statements"), "{text}");
}

/// Issue 16 item 4: a preview deleted after a sync still counts: D1 keeps reporting its
/// traffic (the contract server too), and the Free plan's daily caps are per account, so
/// the next sync still reads its last buckets.
#[test]
fn a_deleted_preview_still_counts_until_its_buckets_are_final() {
    let (_server, ws) = cf_support::cloudflare_ws();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    ws.ship();
    ws.migration(
        "0002_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let (code, deployed) = ws.deploy();
    assert_eq!(code, Some(0), "{deployed}");
    let id = deployed["id"].as_str().expect("id").to_string();
    let preview = format!("preview-{}", id.to_lowercase());
    let synced = ws.json(&["analytics", "sync", "--force"]);
    assert_eq!(synced["outcome"], "synced", "{synced}");
    for _ in 0..3 {
        ws.ok(&[
            "query",
            &preview,
            "SELECT id FROM users WHERE email = 'late'",
        ]);
    }
    ws.ok_as("alice", &["abandon", &id]);
    ws.ok_as("alice", &["cleanup", "--yes"]);
    let envs = ws.ok(&["envs"]);
    assert!(!envs.contains(&preview), "the preview is gone: {envs}");

    let synced = ws.json(&["analytics", "sync", "--force"]);
    assert_eq!(synced["outcome"], "synced", "{synced}");
    let m = ws.json(&["monitor", &preview]);
    let late = (m["top"].as_array().expect("top").iter())
        .find(|q| q["text"].as_str().is_some_and(|t| t.contains("email = ?")))
        .unwrap_or_else(|| panic!("the late queries are missing: {m:#}"));
    assert_eq!(late["count"], 3, "{late}");
    let usage = ws.json(&["usage", "--days", "1"]);
    let row = (usage["days"].as_array().expect("days").iter())
        .find(|d| d["env"] == preview.as_str())
        .unwrap_or_else(|| panic!("no row for the deleted preview: {usage:#}"));
    assert!(row["queries"].as_u64().unwrap_or(0) >= 3, "{row}");
}

/// Issue 16 item 2: D1 analytics answered without `quantiles`: the percentiles are unknown
/// (`null` in JSON, `–` on screen), never 0.00 ms, and the count and total still show.
#[test]
fn percentiles_d1_did_not_send_are_unknown_not_zero() {
    let cf = Cf::new("");
    cf.seed();
    cf.server.set_omit_quantiles(true);
    for id in [1, 2, 3, 1, 2] {
        cf.ok(&[
            "query",
            "production",
            &format!("SELECT name FROM items WHERE id = {id}"),
        ]);
    }
    let m = cf.json(&["monitor"]);
    let q = top(&m, "FROM items WHERE id");
    assert_eq!(q["count"], 5, "{q}");
    assert!(q["total_ms"].as_f64().unwrap_or(0.0) > 0.0, "{q}");
    for p in ["p50", "p95", "p99"] {
        assert!(q[p].is_null(), "{p}: {q}");
    }
    let text = cf.ok(&["monitor"]);
    eprintln!("{text}");
    let line = (text.lines())
        .find(|l| l.contains("FROM items WHERE id"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains('–'), "{line}");
    assert!(!line.contains("0.00 ms"), "{line}");
}

/// Issue 16 item 2, restore and recovery points on D1: the loss is not countable, so it is
/// `?`, never 0, beside "not countable on D1"; Time Travel bookmarks take no storage.
#[test]
fn d1_restore_loss_is_unknown_and_bookmarks_take_no_storage() {
    let (_server, ws) = cf_support::cloudflare_ws();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    ws.ship();
    ws.migration(
        "0002_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let id = ws.ship();
    let snaps = ws.ok(&["snapshots"]);
    assert!(snaps.contains("no storage"), "{snaps}");
    assert!(!snaps.contains(" B "), "{snaps}");
    let (code, out, err) = ws.run_as("carol", &["restore", "--to-release", &id]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let row = (out.lines())
        .find(|l| l.contains("users") && l.contains("not countable on D1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains('?'), "{row}");
    assert!(!row.contains(" 0 "), "{row}");
}

/// Issue 16 item 1 on D1: today's running total as D1's analytics count it crosses a tiny
/// plan's daily limit, and `usage` and `forecast` say `exceeded` now.
#[test]
fn a_daily_limit_crossed_on_d1_is_exceeded_now() {
    let cf = Cf::new("\n[plans.tiny]\ndatabase_size_bytes = 10000000\nrows_read_per_day = 5\n");
    let config = cf.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen(
            "backend = \"cloudflare\"",
            "backend = \"cloudflare\"\nplan = \"tiny\"",
            1,
        ),
    )
    .expect("config");
    cf.seed();
    for _ in 0..3 {
        cf.ok(&["query", "production", "SELECT name FROM items"]);
    }
    let usage = cf.json(&["usage", "--days", "1"]);
    let read = (usage["status"].as_array().expect("status").iter())
        .find(|u| u["metric"] == "rows_read_per_day")
        .cloned()
        .unwrap_or_else(|| panic!("{usage:#}"));
    assert_eq!(read["status"], "exceeded", "{read}");
    assert!(read["over_by"].as_u64().unwrap_or(0) > 0, "{read}");
    assert!(read["exceeded_since"].is_string(), "{read}");
    let forecast = cf.json(&["forecast"]);
    let f = (forecast["items"].as_array().expect("items").iter())
        .find(|i| i["metric"] == "rows_read_per_day")
        .cloned()
        .unwrap_or_else(|| panic!("{forecast:#}"));
    assert_eq!(f["status"], "exceeded", "{f}");
}

/// Issue 16 item 4: a preview created and deleted between two syncs (no sync ever saw it)
/// still counts: its database id is kept when it is deleted, and the next sync fetches it.
#[test]
fn a_preview_deleted_before_any_sync_saw_it_still_counts() {
    let (_server, ws) = cf_support::cloudflare_ws();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    ws.ship();
    ws.migration(
        "0002_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let (code, deployed) = ws.deploy();
    assert_eq!(code, Some(0), "{deployed}");
    let id = deployed["id"].as_str().expect("id").to_string();
    let preview = format!("preview-{}", id.to_lowercase());
    for _ in 0..3 {
        ws.ok(&[
            "query",
            &preview,
            "SELECT id FROM users WHERE email = 'brief'",
        ]);
    }
    ws.ok_as("alice", &["abandon", &id]);
    ws.ok_as("alice", &["cleanup", "--yes"]);
    // The first sync after all that.
    let synced = ws.json(&["analytics", "sync", "--force"]);
    assert_eq!(synced["outcome"], "synced", "{synced}");
    let usage = ws.json(&["usage", "--days", "1"]);
    let row = (usage["days"].as_array().expect("days").iter())
        .find(|d| d["env"] == preview.as_str())
        .unwrap_or_else(|| panic!("no row for the preview nobody synced: {usage:#}"));
    assert!(row["queries"].as_u64().unwrap_or(0) >= 3, "{row}");
}
