//! Capacity and the watch window (issue 5, items 4–8) on real workspaces with the real binary:
//! `usage`, `forecast` and `report weekly` (Markdown and JSON) over generated history; the
//! post-promotion watch window flagging a regression (live, and stored once the window has
//! closed) in `release show` and the console's alert count; a suggested index written as the
//! next migration in the wrangler, Drizzle and nested layouts, from the engine and from the
//! Monitor's `i`.
mod common;
mod console_support;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::Ws;
use d1ops::console::action::{Action, Request};
use d1ops::console::state::{State, Tab};
use d1ops::console::{update::update, worker};
use d1ops::metrics::usage::UsageSample;
use d1ops::metrics::{Histogram, MetricsStore, QueryError, QueryEvent, Resolution, Rollup};

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, plan TEXT NOT NULL DEFAULT 'free');\n";
const SCAN: &str = "SELECT id, email FROM users WHERE plan = ? ORDER BY id LIMIT 20";
const WRITE: &str = "INSERT INTO users (email) VALUES (?)";

fn metrics(ws: &Ws) -> MetricsStore {
    MetricsStore::open(&ws.path().join(".d1ops")).expect("metrics store")
}

fn rollup(start: DateTime<Utc>, sql: &str, count: u64, ms: f64) -> Rollup {
    let mut histogram = Histogram::new();
    histogram.record_n(ms, count);
    Rollup {
        start,
        resolution: Resolution::Hour,
        env: "production".into(),
        fingerprint: d1ops::metrics::fingerprint(sql),
        count,
        errors: 0,
        sum_ms: ms * count as f64,
        rows_read: count,
        rows_written: 0,
        rows_returned: count,
        histogram,
    }
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// 30 complete days before today: rows written grow by 1,500 a day to 73,500 yesterday
/// (d1-free allows 100,000), storage stays flat, and a scanning query runs 20 times a day.
fn generate_history(ws: &Ws) {
    let mut m = metrics(ws);
    let mut rollups = Vec::new();
    for i in 0..30u64 {
        let day = today() - chrono::Days::new(30 - i);
        let noon = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
        let mut writes = rollup(noon, WRITE, 1_000, 0.5);
        writes.rows_written = 30_000 + 1_500 * i;
        rollups.push(writes);
        rollups.push(rollup(noon, SCAN, 20, 40.0));
        m.record_usage(&UsageSample {
            day,
            env: "production".into(),
            storage_bytes: 50_000_000,
            databases: 1,
        })
        .expect("usage");
    }
    m.record_rollups(&rollups).expect("rollups");
    // Failures this week, with their messages in the error ring.
    let events: Vec<QueryEvent> = (0..3)
        .map(|i| {
            let mut e = QueryEvent::for_sql(
                "production",
                "INSERT INTO users (id, email) VALUES (1, 'x')",
                0.3,
            );
            e.at = Utc::now() - Duration::hours(2 + i);
            e.error = Some(QueryError {
                code: "SQLITE_CONSTRAINT".into(),
                message: "UNIQUE constraint failed: users.id".into(),
            });
            e
        })
        .collect();
    m.record(&events).expect("events");
}

fn shipped() -> (Ws, String) {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    let id = ws.ship();
    (ws, id)
}

fn item<'a>(list: &'a serde_json::Value, metric: &str) -> &'a serde_json::Value {
    list.as_array()
        .expect("array")
        .iter()
        .find(|i| i["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} in {list}"))
}

#[test]
fn usage_forecast_and_weekly_report_on_generated_history() {
    let (ws, id) = shipped();
    generate_history(&ws);

    let usage = ws.json(&["usage", "--days", "7"]);
    assert_eq!(usage["plan"], "d1-free");
    assert_eq!(usage["to"], today().to_string());
    let days = usage["days"].as_array().expect("days");
    assert!(
        days.iter()
            .all(|d| d["day"].is_string() && d["env"].is_string())
    );
    for key in [
        "storage_bytes",
        "rows_read",
        "rows_written",
        "queries",
        "databases",
    ] {
        assert!(days[0][key].is_u64(), "{key} in {}", days[0]);
    }
    let totals = usage["totals"].as_array().expect("totals");
    assert_eq!(totals.len(), 7, "one total per day: {totals:?}");
    assert!(totals.iter().all(|t| t["env"] == "*"));
    // Today's sample includes the recovery point taken before the promotion.
    let snapshots = days
        .iter()
        .find(|d| d["env"] == "recovery-points" && d["day"] == today().to_string())
        .expect("recovery points sampled today");
    assert_eq!(snapshots["databases"], 0);
    let written = item(&usage["status"], "rows_written_per_day");
    assert_eq!(written["used"], 73_500);
    assert_eq!(written["limit"], 100_000);
    let cost = &usage["cost"];
    assert_eq!(cost["plan"], "workers-paid");
    assert_eq!(cost["hypothetical"], true);

    let text = ws.ok(&["usage", "--days", "3"]);
    for needle in [
        "rows written / day",
        "73,500",
        "100,000",
        "total",
        "production",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    let forecast = ws.json(&["forecast", "--days", "30"]);
    let w = item(&forecast["items"], "rows_written_per_day");
    let days_until = w["days_until"].as_i64().expect("a crossing");
    // 73,500 + 1,500 a day reaches 100,000 on the 18th day after yesterday: 17 after today.
    assert!((16..=19).contains(&days_until), "{w}");
    assert_eq!(w["outcome"]["kind"], "within");
    let (p, e, o) = (&w["pessimistic"], &w["expected"], &w["optimistic"]);
    assert!(p.as_str() <= e.as_str() && e.as_str() <= o.as_str(), "{w}");
    let storage = item(&forecast["items"], "total_storage");
    assert_eq!(
        storage["outcome"]["kind"], "not_within_horizon",
        "{storage}"
    );
    assert!(storage["days_until"].is_null());
    let text = ws.ok(&["forecast"]);
    assert!(text.contains(&format!("in {days_until} days")), "{text}");
    assert!(text.contains("not within horizon"), "{text}");

    let md = ws.ok(&["report", "weekly"]);
    for needle in [
        "# d1ops weekly report",
        "## Usage and growth",
        "| rows written (sum) |",
        "## Limits and forecasts",
        "## Slowest queries",
        "CREATE INDEX idx_users_plan ON users(plan);",
        "## Failing queries",
        "UNIQUE constraint failed: users.id",
        "## Deploys this week",
        "## Stale previews and cleanup",
        "`d1ops cleanup` would free",
    ] {
        assert!(md.contains(needle), "{needle} missing from:\n{md}");
    }
    assert!(
        md.contains(&format!("| {id} |")),
        "the promotion is listed:\n{md}"
    );

    let json = ws.json(&["report", "weekly", "--format", "json"]);
    for key in [
        "growth",
        "status",
        "forecasts",
        "slow_queries",
        "failing_queries",
        "deploys",
        "stale_previews",
        "cleanup_frees_bytes",
    ] {
        assert!(!json[key].is_null(), "{key} missing: {json}");
    }
    let slow = &json["slow_queries"][0];
    assert_eq!(slow["suggestion"]["table"], "users");
    assert_eq!(slow["suggestion"]["columns"], serde_json::json!(["plan"]));
    let promoted = json["deploys"]
        .as_array()
        .expect("deploys")
        .iter()
        .find(|d| d["outcome"] == "promoted")
        .expect("a promotion this week");
    assert_eq!(promoted["release"], id.as_str());
    // One row per release, with its latest outcome (gated ready, then promoted: promoted).
    let deploys = json["deploys"].as_array().expect("deploys");
    let mut ids: Vec<&str> = deploys
        .iter()
        .filter_map(|d| d["release"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "a release listed twice: {deploys:?}");
    // `--json` alone also gives JSON.
    assert!(ws.json(&["report", "weekly"])["growth"].is_array());
}

#[test]
fn usage_without_history_says_so() {
    let ws = Ws::new();
    let text = ws.ok(&["usage"]);
    assert!(text.contains("databases"), "{text}");
    let forecast = ws.json(&["forecast"]);
    let db = item(&forecast["items"], "database_size");
    assert_eq!(db["outcome"]["kind"], "too_few_points", "{db}");
    // Read-only: nothing is sampled, the report still reads.
    let (code, out, err) = ws.run_as("alice", &["--readonly", "--json", "usage"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"status\""));
}

/// Baseline traffic (fast, no errors) before `at`, and bad traffic (slow, 10 % errors) after.
fn traffic_around(ws: &Ws, at: DateTime<Utc>, after_minutes: i64) {
    let mut events = Vec::new();
    let sql = "SELECT id FROM users WHERE id = ?";
    for m in 1..=50 {
        for _ in 0..4 {
            let mut e = QueryEvent::for_sql("production", sql, 1.0);
            e.at = at - Duration::minutes(m) - Duration::seconds(5);
            events.push(e);
        }
    }
    for m in 0..after_minutes {
        for k in 0..10 {
            let mut e = QueryEvent::for_sql("production", sql, 40.0);
            e.at = at + Duration::minutes(m) + Duration::seconds(5);
            if k == 0 {
                e.error = Some(QueryError {
                    code: "SQLITE_BUSY".into(),
                    message: "database is locked".into(),
                });
            }
            events.push(e);
        }
    }
    metrics(ws).record(&events).expect("record");
}

#[test]
fn watch_window_flags_a_regression_while_open_and_stores_it_once_closed() {
    let (ws, _r1) = shipped();
    ws.migration(
        "0002_plan_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let before = Utc::now();
    let r2 = ws.ship();
    let show = ws.json(&["release", "show", &r2]);
    assert_eq!(
        show["watch"]["status"], "watching",
        "no traffic yet: {}",
        show["watch"]
    );
    assert_eq!(show["watch"]["complete"], false);

    // Open window: bad traffic right after the promotion is flagged at once.
    let promoted = chrono::DateTime::parse_from_rfc3339(show["promoted_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(promoted >= before - Duration::seconds(1));
    let mut events = Vec::new();
    traffic_around(&ws, promoted, 0);
    for k in 0..30 {
        let mut e = QueryEvent::for_sql("production", "SELECT id FROM users WHERE id = ?", 45.0);
        e.at = Utc::now();
        if k % 5 == 0 {
            e.error = Some(QueryError {
                code: "SQLITE_BUSY".into(),
                message: "database is locked".into(),
            });
        }
        events.push(e);
    }
    metrics(&ws).record(&events).expect("record");
    let w = &ws.json(&["release", "show", &r2])["watch"];
    assert_eq!(w["status"], "regressed", "{w}");
    assert_eq!(w["complete"], false, "{w}");
    let reasons = w["reasons"].to_string();
    assert!(
        reasons.contains("error rate") && reasons.contains("p95"),
        "{w}"
    );
    let text = ws.ok(&["release", "show", &r2]);
    assert!(
        text.contains("watch      regressed in the 30 min after promotion"),
        "{text}"
    );

    // The console counts it as an alert and says so on the Monitor.
    let (mut state, mut engine) = console_state(&ws);
    assert_eq!(state.alerts(), 1, "{:?}", state.data.watch);
    let effects = update(&mut state, Action::GoTab(Tab::Monitor));
    console_support::run_effects(&mut state, &mut engine, effects);
    let screen = console_support::render(&mut state, &[], 120, 40);
    assert!(screen.contains("alerts 1"), "{screen}");
    assert!(
        screen.contains("⚠ The live release regressed after its promotion"),
        "{screen}"
    );
}

#[test]
fn a_closed_watch_window_is_judged_once_and_kept() {
    let (ws, _r1) = shipped();
    ws.migration(
        "0002_plan_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let r2 = ws.ship();
    // Pretend the promotion was 45 minutes ago: its 30-minute window has closed.
    let promoted = minute(Utc::now() - Duration::minutes(45));
    let state = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap();
    state
        .execute(
            "UPDATE releases SET promoted_at = ?1 WHERE id = ?2",
            (promoted.to_rfc3339(), &r2),
        )
        .unwrap();
    traffic_around(&ws, promoted, 30);
    let w = ws.json(&["release", "show", &r2])["watch"].clone();
    assert_eq!(w["status"], "regressed", "{w}");
    assert_eq!(w["complete"], true, "{w}");
    assert_eq!(w["before"]["errors"], 0);
    assert_eq!(w["after"]["count"], 300);
    assert_eq!(w["after"]["errors"], 30);
    let stored: String = state
        .query_row("SELECT watch FROM releases WHERE id = ?1", [&r2], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(stored.contains("\"regressed\""), "{stored}");
    // The verdict stays when the metrics it came from are gone.
    std::fs::remove_file(ws.path().join(".d1ops/metrics.sqlite")).unwrap();
    let again = ws.json(&["release", "show", &r2])["watch"].clone();
    assert_eq!(again, w);
    // A calm promotion is judged ok.
    let (calm, _) = shipped();
    calm.migration(
        "0002_plan_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let r = calm.ship();
    let p = minute(Utc::now() - Duration::minutes(45));
    rusqlite::Connection::open(calm.path().join(".d1ops/state.sqlite"))
        .unwrap()
        .execute(
            "UPDATE releases SET promoted_at = ?1 WHERE id = ?2",
            (p.to_rfc3339(), &r),
        )
        .unwrap();
    let mut events = Vec::new();
    for m in -50..30 {
        for _ in 0..4 {
            let mut e = QueryEvent::for_sql("production", "SELECT 1", 1.0);
            e.at = p + Duration::minutes(m) + Duration::seconds(5);
            events.push(e);
        }
    }
    metrics(&calm).record(&events).unwrap();
    let w = calm.json(&["release", "show", &r])["watch"].clone();
    assert_eq!(w["status"], "ok", "{w}");
}

/// `t` floored to its minute (the watch window starts at the promotion's minute).
fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() / 60 * 60, 0).unwrap()
}

fn console_state(ws: &Ws) -> (State, d1ops::engine::Engine) {
    let mut engine = console_support::open(ws.path(), "bob");
    let mut state = State::new(
        console_support::info(ws.path(), false),
        console_support::now(),
        120,
        40,
    );
    state.color = false;
    let reply = worker::handle(&mut engine, Request::Refresh);
    let effects = update(&mut state, Action::Reply(reply));
    console_support::run_effects(&mut state, &mut engine, effects);
    (state, engine)
}

fn scan_traffic(ws: &Ws) {
    let events: Vec<QueryEvent> = (0..20)
        .map(|i| {
            let mut e = QueryEvent::for_sql("production", SCAN, 30.0);
            e.at = Utc::now() - Duration::minutes(10 + i);
            e.rows_read = 1_000;
            e
        })
        .collect();
    metrics(ws).record(&events).expect("record");
}

#[test]
fn a_suggested_index_becomes_the_next_wrangler_migration() {
    let (ws, _) = shipped();
    ws.migration(
        "0002_orders.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL);\n",
    );
    ws.ship();
    let engine = console_support::open(ws.path(), "alice");
    let plan = engine
        .query_plan("production", &d1ops::metrics::fingerprint(SCAN))
        .expect("plan");
    assert_eq!(plan.scans, vec!["users".to_string()], "{plan:?}");
    let s = plan.suggestion.expect("a suggestion");
    assert_eq!(s.sql, "CREATE INDEX idx_users_plan ON users(plan)");
    assert_eq!(
        s.file.as_deref(),
        Some("migrations/0003_idx_users_plan.sql")
    );
    let written = engine.write_index_migration(&s).expect("write");
    assert_eq!(written, "migrations/0003_idx_users_plan.sql");
    let body = std::fs::read_to_string(ws.path().join(&written)).unwrap();
    assert!(
        body.contains("CREATE INDEX idx_users_plan ON users(plan);"),
        "{body}"
    );
    // Written once: a second write refuses, naming the file that already creates it.
    let err = engine.write_index_migration(&s).unwrap_err().to_string();
    assert!(
        err.contains("migrations/0003_idx_users_plan.sql already creates"),
        "{err}"
    );
    // It deploys cleanly and the preview now searches.
    let (code, json) = ws.deploy();
    assert_eq!(code, Some(0), "{json}");
    // A query that searches gets no suggestion.
    let plan = engine
        .query_plan("production", "SELECT email FROM users WHERE id = ?")
        .unwrap();
    assert!(
        plan.scans.is_empty() && plan.suggestion.is_none(),
        "{plan:?}"
    );
    // An environment without a database says so.
    let plan = engine.query_plan("preview-nope", SCAN).unwrap();
    assert!(plan.error.unwrap().contains("no database"));
}

#[test]
fn the_next_migration_follows_the_drizzle_and_nested_layouts() {
    // Drizzle: the file and a journal entry.
    let ws = Ws::new();
    let dir = ws.path().join("drizzle");
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(dir.join("0000_init.sql"), USERS).unwrap();
    std::fs::write(
        dir.join("meta/_journal.json"),
        r#"{"version":"7","dialect":"sqlite","entries":[{"idx":0,"version":"6","when":1,"tag":"0000_init","breakpoints":true}]}"#,
    )
    .unwrap();
    set_migrations_dir(&ws, "drizzle");
    ws.ship();
    let engine = console_support::open(ws.path(), "alice");
    let s = engine
        .query_plan("production", &d1ops::metrics::fingerprint(SCAN))
        .unwrap()
        .suggestion
        .expect("suggestion");
    assert_eq!(s.file.as_deref(), Some("drizzle/0001_idx_users_plan.sql"));
    engine.write_index_migration(&s).unwrap();
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta/_journal.json")).unwrap())
            .unwrap();
    let entries = journal["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["idx"], 1);
    assert_eq!(entries[1]["tag"], "0001_idx_users_plan");
    assert_eq!(journal["dialect"], "sqlite", "other fields are kept");
    let (code, json) = ws.deploy();
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["pending"].as_array().map(Vec::len), Some(1), "{json}");

    // Nested: NNNN_name/migration.sql, numbered past the highest folder.
    let ws = Ws::new();
    for (n, sql) in [
        ("0001_users", USERS),
        ("0002_more", "CREATE TABLE t (x);\n"),
    ] {
        std::fs::create_dir_all(ws.path().join("migrations").join(n)).unwrap();
        std::fs::write(
            ws.path().join("migrations").join(n).join("migration.sql"),
            sql,
        )
        .unwrap();
    }
    ws.ship();
    let engine = console_support::open(ws.path(), "alice");
    let s = engine
        .query_plan("production", &d1ops::metrics::fingerprint(SCAN))
        .unwrap()
        .suggestion
        .expect("suggestion");
    assert_eq!(
        s.file.as_deref(),
        Some("migrations/0003_idx_users_plan/migration.sql")
    );
    engine.write_index_migration(&s).unwrap();
    assert!(
        ws.path()
            .join("migrations/0003_idx_users_plan/migration.sql")
            .is_file()
    );
}

fn set_migrations_dir(ws: &Ws, dir: &str) {
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "migrations_dir = \"migrations\"",
        &format!("migrations_dir = \"{dir}\""),
    );
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_monitor_writes_the_suggested_index_after_confirmation() {
    let (ws, _) = shipped();
    scan_traffic(&ws);
    let (mut state, mut engine) = console_state(&ws);
    let effects = update(&mut state, Action::GoTab(Tab::Monitor));
    console_support::run_effects(&mut state, &mut engine, effects);
    let q = state
        .monitor
        .selected_query()
        .expect("the scanning query is listed");
    assert!(q.text.to_lowercase().contains("where plan = ?"), "{q:?}");
    let plan = state
        .monitor
        .selected_plan()
        .expect("plan read")
        .clone()
        .expect("plan");
    assert!(plan.suggestion.is_some(), "{plan:?}");
    let screen = console_support::render(&mut state, &[], 120, 40);
    assert!(
        screen.contains("CREATE INDEX idx_users_plan ON users(plan);"),
        "{screen}"
    );
    assert!(
        screen.contains("i writes migrations/0002_idx_users_plan.sql"),
        "{screen}"
    );

    let press = |state: &mut State, engine: &mut d1ops::engine::Engine, code| {
        let ev = crossterm::event::KeyEvent::new(code, crossterm::event::KeyModifiers::NONE);
        if let Some(a) = d1ops::console::keymap::resolve(state, &ev) {
            let effects = update(state, a);
            console_support::run_effects(state, engine, effects);
        }
    };
    use crossterm::event::KeyCode;
    press(&mut state, &mut engine, KeyCode::Char('i'));
    assert!(state.dialog.is_some(), "i opens the confirmation");
    // Cancel is focused: Enter writes nothing.
    press(&mut state, &mut engine, KeyCode::Enter);
    assert!(
        !ws.path()
            .join("migrations/0002_idx_users_plan.sql")
            .exists()
    );
    press(&mut state, &mut engine, KeyCode::Char('i'));
    press(&mut state, &mut engine, KeyCode::Tab);
    press(&mut state, &mut engine, KeyCode::Enter);
    let path = ws.path().join("migrations/0002_idx_users_plan.sql");
    assert!(path.is_file(), "toasts: {:?}", state.toasts);
    assert!(
        state
            .toasts
            .iter()
            .any(|t| t.text.contains("Wrote migrations/0002_idx_users_plan.sql"))
    );

    // Read-only: `i` does nothing.
    let mut engine = d1ops::engine::Engine::open(
        ws.path(),
        d1ops::engine::EngineOptions {
            actor: Some("bob".into()),
            readonly: true,
        },
    )
    .unwrap();
    let mut ro = State::new(
        console_support::info(ws.path(), true),
        console_support::now(),
        120,
        40,
    );
    let reply = worker::handle(&mut engine, Request::Refresh);
    update(&mut ro, Action::Reply(reply));
    let effects = update(&mut ro, Action::GoTab(Tab::Monitor));
    console_support::run_effects(&mut ro, &mut engine, effects);
    press(&mut ro, &mut engine, KeyCode::Char('i'));
    assert!(ro.dialog.is_none());
}

#[test]
fn the_demo_has_a_month_of_history_a_flagged_live_release_and_a_limit_within_the_month() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    let out = assert_cmd::Command::cargo_bin("d1ops")
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
    let run = |args: &[&str]| -> serde_json::Value {
        let out = assert_cmd::Command::cargo_bin("d1ops")
            .unwrap()
            .arg("--workspace")
            .arg(&root)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let usage = run(&["usage", "--days", "30"]);
    assert!(
        usage["totals"].as_array().unwrap().len() >= 30,
        "30 days of history"
    );
    let forecast = run(&["forecast"]);
    let w = item(&forecast["items"], "rows_written_per_day");
    let days = w["days_until"].as_i64().unwrap_or(i64::MAX);
    assert!(
        (1..=31).contains(&days),
        "rows written reach the limit within the month: {w}"
    );
    let live = run(&["releases"])
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "live")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .unwrap();
    let watch = &run(&["release", "show", &live])["watch"];
    assert_eq!(watch["status"], "regressed", "{watch}");
    assert_eq!(watch["complete"], true);
    let reasons = watch["reasons"].to_string();
    assert!(
        reasons.contains("error rate") && reasons.contains("p95"),
        "{watch}"
    );
    let report = run(&["report", "weekly"]);
    assert!(!report["slow_queries"].as_array().unwrap().is_empty());
}

/// Issue 16 item 1: a plan with tiny limits and a few seconds of `traffic`: the crossed
/// per-day limit is `exceeded` now (today's running total), with how much, since when and
/// what it means, in `usage` and `forecast`, JSON and text.
#[test]
fn a_limit_crossed_today_is_exceeded_in_usage_and_forecast() {
    let (ws, _id) = shipped();
    let config = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("plan = \"d1-free\"", "plan = \"tiny\"");
    std::fs::write(
        &config,
        format!("{text}\n[plans.tiny]\ndatabase_size_bytes = 10000000\nrows_read_per_day = 100\nrows_written_per_day = 1000000\n"),
    )
    .expect("write config");
    ws.ok_as(
        "alice",
        &[
            "query",
            "production",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) INSERT INTO users (email) SELECT 'u' || x FROM c",
            "--yes",
        ],
    );
    let workload = ws.path().join("reads.jsonl");
    std::fs::write(
        &workload,
        "{\"sql\": \"SELECT id FROM users WHERE email = ?\", \"params\": [\"u7\"]}\n",
    )
    .expect("workload");
    ws.ok(&[
        "traffic",
        "production",
        "--workload",
        workload.to_str().expect("utf-8 path"),
        "--duration",
        "2s",
        "--rate",
        "20",
    ]);

    let usage = ws.json(&["usage"]);
    let read = item(&usage["status"], "rows_read_per_day");
    assert_eq!(read["status"], "exceeded", "{read}");
    let used = read["used"].as_u64().expect("used");
    assert!(used > 100, "{read}");
    assert_eq!(read["over_by"].as_u64(), Some(used - 100), "{read}");
    let since = read["exceeded_since"].as_str().expect("since");
    assert!(since.starts_with(&today().to_string()), "{read}");
    assert!(
        read["meaning"]
            .as_str()
            .expect("meaning")
            .contains("00:00 UTC"),
        "{read}"
    );
    assert_eq!(
        item(&usage["status"], "rows_written_per_day")["status"],
        "ok"
    );
    assert_eq!(item(&usage["status"], "database_size")["status"], "ok");

    let forecast = ws.json(&["forecast"]);
    let f = item(&forecast["items"], "rows_read_per_day");
    assert_eq!(f["status"], "exceeded", "{f}");
    assert_eq!(f["exceeded_since"], read["exceeded_since"], "{f}");
    assert_eq!(f["over_by"], read["over_by"], "{f}");
    assert!(forecast["plan_checked"].is_string(), "{forecast}");

    let text = ws.ok(&["usage"]);
    assert!(text.contains("EXCEEDED"), "{text}");
    assert!(text.contains("rows read / day exceeded by"), "{text}");
    let text = ws.ok(&["forecast"]);
    assert!(text.contains("exceeded now, since"), "{text}");
    assert!(text.contains("plan limits checked"), "{text}");

    // Issue 16 item 6: the weekly report leads with what needs action, in Markdown and
    // in JSON alike.
    let report = ws.json(&["report", "weekly"]);
    let actions = report["needs_action"].as_array().expect("needs_action");
    let limit = (actions.iter())
        .find(|a| a["kind"] == "limit")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        limit["text"]
            .as_str()
            .unwrap_or("")
            .contains("rows read / day exceeded since"),
        "{limit}"
    );
    assert_eq!(limit["command"], "d1ops usage");
    assert!(report["production_week"]["from"].is_string(), "{report:#}");
    assert!(report["production_growth"].is_array(), "{report:#}");
    let md = ws.ok(&["report", "weekly"]);
    let first = md.lines().find(|l| l.starts_with("## ")).unwrap_or("");
    assert_eq!(first, "## Needs action", "{md}");
    assert!(md.contains("rows read / day exceeded since"), "{md}");
    assert!(md.contains("Complete days only"), "{md}");
}

/// Issue 16 item 5: a regression raised in the open window latches (traffic that recovers
/// does not clear it), names the release, its promotion time and the window, and clears
/// only when acknowledged (`d1ops watch ack`, audited); a regression from a promotion 19
/// days ago is dated history, not a current alert.
#[test]
fn a_raised_regression_latches_until_acknowledged_and_old_ones_are_history() {
    let (ws, _r1) = shipped();
    ws.migration(
        "0002_plan_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let r2 = ws.ship();
    let w = ws.json(&["watch"]);
    assert_eq!(w["status"], "watching", "{w}");
    let text = ws.ok(&["watch"]);
    assert!(text.contains("(so far: 0 app queries)"), "{text}");

    let show = ws.json(&["release", "show", &r2]);
    let promoted = DateTime::parse_from_rfc3339(show["promoted_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    traffic_around(&ws, promoted, 0);
    let bad: Vec<QueryEvent> = (0..30)
        .map(|k| {
            let mut e =
                QueryEvent::for_sql("production", "SELECT id FROM users WHERE id = ?", 45.0);
            e.at = Utc::now();
            if k % 5 == 0 {
                e.error = Some(QueryError {
                    code: "SQLITE_BUSY".into(),
                    message: "database is locked".into(),
                });
            }
            e
        })
        .collect();
    metrics(&ws).record(&bad).expect("record");
    let w = ws.json(&["watch"]);
    assert_eq!(w["status"], "regressed", "{w}");
    assert_eq!(w["alert"], true, "{w}");
    assert!(w["raised_at"].is_string(), "{w}");

    // Traffic recovers: judged on the window so far it would be fine, but it stays raised.
    let good: Vec<QueryEvent> = (0..3_000)
        .map(|_| {
            let mut e = QueryEvent::for_sql("production", "SELECT id FROM users WHERE id = ?", 1.0);
            e.at = Utc::now();
            e
        })
        .collect();
    metrics(&ws).record(&good).expect("record");
    let w = ws.json(&["watch"]);
    assert_eq!(w["status"], "regressed", "latched: {w}");
    assert_eq!(w["alert"], true, "{w}");
    let text = ws.ok(&["watch"]);
    assert!(text.contains(&format!("release {r2}")), "{text}");
    assert!(
        text.contains("promoted ") && text.contains("window "),
        "{text}"
    );
    assert!(text.contains("d1ops watch ack"), "{text}");

    ws.ok_as("bob", &["watch", "ack"]);
    let w = ws.json(&["watch"]);
    assert_eq!(w["status"], "regressed", "kept in the record: {w}");
    assert_eq!(w["alert"], false, "{w}");
    assert_eq!(w["acknowledged_by"], "bob", "{w}");
    let audit = ws.ok(&["audit"]);
    assert!(audit.contains("watch.acknowledged"), "{audit}");

    // A regression 19 days old is history: dated, no alert, nothing to acknowledge.
    let (old, _) = shipped();
    old.migration(
        "0002_plan_index.sql",
        "CREATE INDEX users_email ON users(email);\n",
    );
    let r = old.ship();
    let p = minute(Utc::now() - Duration::days(19));
    rusqlite::Connection::open(old.path().join(".d1ops/state.sqlite"))
        .unwrap()
        .execute(
            "UPDATE releases SET promoted_at = ?1 WHERE id = ?2",
            (p.to_rfc3339(), &r),
        )
        .unwrap();
    traffic_around(&old, p, 30);
    let w = old.json(&["watch"]);
    assert_eq!(w["status"], "regressed", "{w}");
    assert_eq!(w["complete"], true, "{w}");
    assert_eq!(w["alert"], false, "{w}");
    let text = old.ok(&["watch"]);
    assert!(text.contains("history, not a current alert"), "{text}");
    assert!(text.contains(&p.format("%Y-%m-%d").to_string()), "{text}");
    assert!(!text.contains("watch ack"), "{text}");
    let (code, _, err) = old.run_as("bob", &["watch", "ack"]);
    assert_eq!(
        code,
        Some(0),
        "an old regression may still be acknowledged: {err}"
    );
}
