//! Traffic sources (issue 5, items 1 and 2): `query` (reads, writes, consent, errors — each
//! checked in the metrics store), `traffic` (a short run records about rate × duration
//! events; writes are rolled back and never replayed on production) and `ingest` (malformed
//! lines counted and reported with line numbers, the good ones imported). Real binary, real
//! SQLite, temp workspaces.
mod common;

use common::Ws;
use d1ops::metrics::{MetricsStore, TopBy};
use serde_json::json;

const PROBES: &str = r#"
[[probe]]
name = "user_by_id"
sql = "SELECT * FROM users WHERE id = ?"
params = [1]
expect_rows = 1
runs = 3

[[probe]]
name = "add_user"
kind = "write"
sql = "INSERT INTO users(email) VALUES ('probe@example.com')"
expect_changes = 1
runs = 3
"#;

/// A workspace whose production holds `users` (2 rows), with a read and a write probe.
fn workspace() -> Ws {
    let ws = Ws::new();
    let config = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(PROBES);
    std::fs::write(&config, text).unwrap();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT);\n\
         INSERT INTO users(email, name) VALUES ('ann@example.com', 'Ann'), ('bob@example.com', 'Bob');\n",
    );
    ws.ship();
    ws
}

fn preview(ws: &Ws) -> String {
    let state = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap();
    state
        .query_row(
            "SELECT name FROM environments WHERE kind = 'preview' AND database_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn metrics(ws: &Ws) -> MetricsStore {
    MetricsStore::open(&ws.path().join(".d1ops")).unwrap()
}

fn window() -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let now = chrono::Utc::now();
    (
        now - chrono::Duration::days(3650),
        now + chrono::Duration::minutes(2),
    )
}

/// (events, errors) recorded for `env`.
fn counts(ws: &Ws, env: &str) -> (u64, u64) {
    let (from, to) = window();
    let s = metrics(ws).window_stats(Some(env), from, to).unwrap();
    (s.count, s.errors)
}

fn users(ws: &Ws) -> i64 {
    ws.production()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn gate_probe_runs_are_recorded_as_d1ops_statements_of_the_preview() {
    let ws = workspace();
    let preview_env = preview(&ws);
    // The gate's probes are d1ops' own statements: apart from the preview's app traffic,
    // shown by `monitor --include-d1ops` (issue 16 item 3).
    let env = d1ops::metrics::source::d1ops_env(&preview_env);
    let app = ws.json(&["monitor", &preview_env]);
    assert_eq!(app["top"].as_array().map(Vec::len), Some(0), "{app}");
    let all = ws.json(&["monitor", &preview_env, "--include-d1ops"]);
    assert!(
        all["top"]
            .as_array()
            .is_some_and(|t| t.iter().any(|q| q["source"] == "d1ops")),
        "{all}"
    );
    let (from, to) = window();
    let top = metrics(&ws)
        .top_queries(Some(&env), from, to, TopBy::TotalTime, 10)
        .unwrap();
    let by_id = top
        .iter()
        .find(|q| q.text == "SELECT * FROM users WHERE id = ?")
        .unwrap_or_else(|| panic!("the probe is not among {top:?}"));
    // After the apply: 3 timed runs of the read probe, each with its row.
    assert!(by_id.count >= 3, "{by_id:?}");
    // Before the apply the table did not exist yet: the gate's failed runs are errors.
    let errors = metrics(&ws).recent_errors(Some(&env), 10).unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("no such table: users")),
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| e.release.is_some()), "{errors:?}");
    // Production saw none of it.
    assert_eq!(counts(&ws, "production"), (0, 0));
}

#[test]
fn query_reads_writes_with_consent_and_records_each_statement() {
    let ws = workspace();
    let out = ws.ok(&[
        "query",
        "production",
        "SELECT id, name FROM users WHERE id = ?",
        "--param",
        "1",
    ]);
    assert!(out.contains("Ann") && out.contains("1 row(s)"), "{out}");
    assert!(out.contains("rows read 1"), "{out}");
    assert_eq!(counts(&ws, "production"), (1, 0));

    let json = ws.json(&["query", "production", "SELECT count(*) AS n FROM users"]);
    assert_eq!(json["results"], json!([{"n": 2}]));
    assert_eq!(json["meta"]["rows_read"], json!(2));
    assert_eq!(json["success"], json!(true));

    // A write to production needs --yes: refused (exit 4), nothing runs, nothing recorded.
    let insert = "INSERT INTO users(email, name) VALUES ('cy@example.com', 'Cy')";
    let (code, out, err) = ws.run_as("alice", &["query", "production", insert]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(err.contains("--yes") && err.lines().count() == 1, "{err}");
    assert_eq!(users(&ws), 2);
    assert_eq!(counts(&ws, "production"), (2, 0));

    let out = ws.ok(&["query", "production", insert, "--yes"]);
    assert!(
        out.contains("1 change(s)") && out.contains("rows written 2"),
        "{out}"
    );
    assert_eq!(users(&ws), 3);
    assert_eq!(counts(&ws, "production"), (3, 0));

    // --readonly refuses writes even with --yes.
    let (code, _, err) = ws.run_as(
        "alice",
        &[
            "--readonly",
            "query",
            "production",
            "DELETE FROM users",
            "--yes",
        ],
    );
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(users(&ws), 3);

    // Previews take writes without consent.
    let env = preview(&ws);
    let (before, before_errors) = counts(&ws, &env);
    ws.ok(&[
        "query",
        &env,
        "DELETE FROM users WHERE id = ?",
        "--param",
        "2",
    ]);
    assert_eq!(counts(&ws, &env), (before + 1, before_errors));

    // An SQL error: exit 1, one sentence, recorded as an error with SQLite's code.
    let (code, _, err) = ws.run_as("alice", &["query", "production", "SELECT nope FROM users"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no such column: nope") && err.contains("SQLITE_ERROR"),
        "{err}"
    );
    assert_eq!(counts(&ws, "production"), (4, 1));
    let errors = metrics(&ws).recent_errors(Some("production"), 5).unwrap();
    assert_eq!(errors[0].code, "SQLITE_ERROR");
    assert!(
        errors[0].message.contains("no such column: nope"),
        "{:?}",
        errors[0]
    );
    assert!(errors[0].release.is_some(), "events carry the live release");

    // Rows read and written reach the rollups.
    let (from, to) = window();
    let top = metrics(&ws)
        .top_queries(Some("production"), from, to, TopBy::RowsRead, 10)
        .unwrap();
    let count_star = top.iter().find(|q| q.text.contains("count(*)")).unwrap();
    assert_eq!(count_star.rows_read, 2);
    let ins = top.iter().find(|q| q.text.starts_with("INSERT")).unwrap();
    assert_eq!(ins.rows_written, 2, "the row and its email index entry");

    let (code, _, err) = ws.run_as("alice", &["query", "staging", "SELECT 1"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no environment \"staging\"") && err.contains("production"),
        "{err}"
    );
}

#[test]
fn traffic_replays_probes_at_the_rate_for_the_duration() {
    let ws = workspace();
    let json = ws.json(&["traffic", "production", "--duration", "1s", "--rate", "100"]);
    let sent = json["sent"].as_u64().unwrap();
    assert_eq!(json["planned"], json!(100));
    assert!((90..=100).contains(&sent), "{json}");
    assert_eq!(json["errors"], json!(0));
    assert_eq!(json["recorded"].as_u64(), Some(sent));
    assert!(json["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(
        json["skipped"][0].as_str().unwrap().contains("add_user"),
        "write probes are not replayed on production: {json}"
    );
    assert_eq!(counts(&ws, "production"), (sent, 0));

    // On a preview the write probe runs too, rolled back: the data stays.
    let env = preview(&ws);
    let before: i64 = rusqlite::Connection::open(ws.path().join(format!(".d1ops/db/{env}.sqlite")))
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    let json = ws.json(&["traffic", &env, "--duration", "1s", "--rate", "40"]);
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{json}");
    assert!(
        items.iter().all(|i| i["count"].as_u64().unwrap() > 0),
        "{json}"
    );
    assert_eq!(json["errors"], json!(0), "{json}");
    let after: i64 = rusqlite::Connection::open(ws.path().join(format!(".d1ops/db/{env}.sqlite")))
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn traffic_replays_a_workload_file_and_refuses_its_writes_on_production() {
    let ws = workspace();
    let file = ws.path().join("workload.jsonl");
    std::fs::write(
        &file,
        "# the app's hot path\n\
         {\"sql\": \"SELECT * FROM users WHERE id = ?\", \"params\": [2], \"weight\": 3}\n\
         \n\
         {\"name\": \"all users\", \"sql\": \"SELECT * FROM users\"}\n",
    )
    .unwrap();
    let json = ws.json(&[
        "traffic",
        "production",
        "--duration",
        "1s",
        "--rate",
        "60",
        "--workload",
        file.to_str().unwrap(),
    ]);
    let items = json["items"].as_array().unwrap();
    assert_eq!(items[1]["name"], json!("all users"));
    let (hot, all) = (
        items[0]["count"].as_u64().unwrap(),
        items[1]["count"].as_u64().unwrap(),
    );
    assert!(hot > all, "weights shape the mix: {hot} vs {all}");

    std::fs::write(&file, "{\"sql\": \"DELETE FROM users\"}\n").unwrap();
    let (code, _, err) = ws.run_as(
        "alice",
        &[
            "traffic",
            "production",
            "--duration",
            "1s",
            "--workload",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(users(&ws), 2);

    std::fs::write(&file, "{\"sql\": \"SELECT 1\"}\n{\"sql\": 5}\n").unwrap();
    let (code, _, err) = ws.run_as(
        "alice",
        &[
            "traffic",
            "production",
            "--workload",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn ingest_imports_good_lines_and_reports_bad_ones_by_line() {
    let ws = workspace();
    let file = ws.path().join("app.log");
    let lines = [
        r#"{"at":"2025-03-01T12:00:00Z","env":"production","sql":"SELECT * FROM users WHERE id = 7","duration_ms":1.5,"rows_read":1}"#,
        "",
        "{not json",
        r#"{"at":1740830400250,"sql":"INSERT INTO t VALUES (1)","duration_ms":0.4,"error":{"code":7500,"message":"UNIQUE constraint failed"}}"#,
        r#"{"sql":"SELECT 1","duration_ms":1}"#,
        r#"{"at":"2025-03-01T12:00:01Z","sql":"SELECT 2","duration_ms":-3}"#,
        r#"{"at":"2025-03-01T12:00:02Z","sql":"SELECT 3","duration_ms":0.2}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = ws.ok(&["ingest", file.to_str().unwrap()]);
    assert!(
        out.contains("imported 3 event(s)") && out.contains("3 bad line(s)"),
        "{out}"
    );
    for n in [3, 5, 6] {
        assert!(
            out.contains(&format!("line {n}:")),
            "line {n} reported: {out}"
        );
    }
    assert!(out.contains("missing `at`"), "{out}");
    assert_eq!(counts(&ws, "production"), (3, 1));

    // JSON and stdin.
    let assert = ws
        .cmd("alice")
        .args(["--json", "ingest", "-"])
        .write_stdin(format!("{}\ngarbage\n", lines[0]))
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(
        (report["imported"].clone(), report["bad"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(report["bad_lines"][0]["line"], json!(2));

    let (code, _, err) = ws.run_as("alice", &["ingest", "/no/such/file.jsonl"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("/no/such/file.jsonl") && err.contains("cannot read"),
        "{err}"
    );
}

/// Issue 16 item 8: production's IDLE counts the app's queries, not only lifecycle actions.
#[test]
fn production_idle_counts_app_queries() {
    let ws = workspace();
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
        .unwrap()
        .execute(
            "UPDATE environments SET last_activity_at = ?1 WHERE name = 'production'",
            [&two_days_ago],
        )
        .unwrap();
    let idle = |ws: &Ws| -> String {
        let envs = ws.json(&["envs"]);
        let prod = (envs.as_array().unwrap().iter())
            .find(|e| e["name"] == "production")
            .cloned()
            .unwrap();
        prod["last_activity_at"].as_str().unwrap().to_string()
    };
    assert_eq!(
        idle(&ws),
        two_days_ago,
        "no app query yet: the lifecycle time"
    );
    let mut e = d1ops::metrics::QueryEvent::for_sql("production", "SELECT 1", 0.2);
    e.at = chrono::Utc::now();
    metrics(&ws).record(&[e]).unwrap();
    let after = idle(&ws);
    let t = chrono::DateTime::parse_from_rfc3339(&after).unwrap();
    assert!(
        chrono::Utc::now() - t.with_timezone(&chrono::Utc) < chrono::Duration::minutes(2),
        "{after}"
    );
    let text = ws.ok(&["envs"]);
    let line = text.lines().find(|l| l.starts_with("production")).unwrap();
    assert!(!line.contains(" 2d "), "{line}");
}
