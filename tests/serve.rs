//! `d1ops serve` (issue 5, item 2): the real binary on a loopback port, a real workspace.
//! Contract tests compare our responses' field names and JSON types with Cloudflare's
//! documented examples in `tests/fixtures/cloudflare/`; then batches, errors, concurrent
//! clients (every statement recorded) and a clean stop on Ctrl-C.
mod common;
mod d1_contract;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Ws;
use d1_contract::fixture;
use serde_json::{Value, json};

/// A workspace whose production (and the shipped release's preview) hold `users`.
fn workspace() -> Ws {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, score REAL);\n\
         INSERT INTO users(email, name, score) VALUES ('ann@example.com', 'Ann', 4.5), ('bob@example.com', 'Bob', NULL);\n",
    );
    ws.ship();
    ws
}

/// The name of a preview environment that still has its database.
fn preview(ws: &Ws) -> String {
    let state = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap();
    state
        .query_row(
            "SELECT name FROM environments WHERE kind = 'preview' AND database_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("a preview with a database")
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(ws: &Ws, extra: &[&str]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("d1ops"))
            .arg("--workspace")
            .arg(ws.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("D1OPS_USER", "alice")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
        Server { child, base }
    }

    fn url(&self, env: &str, endpoint: &str) -> String {
        format!("{}/accounts/acc123/d1/database/{env}/{endpoint}", self.base)
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process; returns (exit code, stderr).
    fn interrupt(mut self) -> (Option<i32>, String) {
        // SAFETY: signalling our own child process by its id.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err)
                    .unwrap();
                return (status.code(), err);
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "serve did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    let mut resp = agent.post(url).send_json(body).expect("request");
    let status = resp.status().as_u16();
    let json = resp.body_mut().read_json::<Value>().expect("JSON body");
    (status, json)
}

/// Fields Cloudflare documents that a local server leaves out on purpose.
const LOCAL_OMITS: [&str; 2] = ["served_by_region", "served_by_colo"];

/// Checks that `ours` has the shape of Cloudflare's documented example `theirs`, except for
/// [`LOCAL_OMITS`].
fn same_shape(ours: &Value, theirs: &Value, path: &str) {
    d1_contract::same_shape_but(ours, theirs, path, &LOCAL_OMITS);
}

#[test]
fn query_raw_and_batch_answer_in_cloudflares_shapes() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let agent = agent();
    let (status, body) = post(
        &agent,
        &server.url("production", "query"),
        &json!({"sql": "SELECT id, email, name, score FROM users WHERE id = ?", "params": [1]}),
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("query.json"), "");
    assert_eq!(
        body["result"][0]["results"],
        json!([{"id": 1, "email": "ann@example.com", "name": "Ann", "score": 4.5}])
    );
    assert_eq!(body["result"][0]["meta"]["rows_read"], json!(1));

    let (status, body) = post(
        &agent,
        &server.url("production", "raw"),
        &json!({"sql": "SELECT id, email, score FROM users ORDER BY id"}),
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("raw.json"), "");
    assert_eq!(
        body["result"][0]["results"]["columns"],
        json!(["id", "email", "score"])
    );
    assert_eq!(
        body["result"][0]["results"]["rows"][1],
        json!([2, "bob@example.com", null])
    );

    // A batch on a preview: one result per statement, the write visible to the read after it.
    let env = preview(&ws);
    let (status, body) = post(
        &agent,
        &server.url(&env, "query"),
        &json!({"batch": [
            {"sql": "INSERT INTO users(email, name) VALUES (?, ?)", "params": ["cy@example.com", "Cy"]},
            {"sql": "SELECT count(*) AS n FROM users"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("batch.json"), "");
    let first = &body["result"][0]["meta"];
    assert_eq!(
        (first["changes"].clone(), first["changed_db"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(
        first["rows_written"],
        json!(2),
        "the row and its email index entry"
    );
    assert_eq!(body["result"][1]["results"], json!([{"n": 3}]));
}

#[test]
fn errors_answer_like_cloudflare() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let agent = agent();
    let (status, body) = post(
        &agent,
        &server.url("production", "query"),
        &json!({"sql": "SELECT nope FROM users"}),
    );
    assert_eq!(status, 400);
    same_shape(&body, &fixture("sql_error.json"), "");
    assert_eq!(body["errors"][0]["code"], json!(7500));
    assert_eq!(
        body["errors"][0]["message"],
        json!("no such column: nope at offset 7: SQLITE_ERROR")
    );

    let (status, body) = post(
        &agent,
        &server.url("no-such-env", "query"),
        &json!({"sql": "SELECT 1"}),
    );
    assert_eq!(status, 404);
    same_shape(&body, &fixture("not_found.json"), "");
    assert_eq!(body["errors"][0]["code"], json!(7404));

    // A failing batch rolls back what came before it, as on D1.
    let env = preview(&ws);
    let (status, _) = post(
        &agent,
        &server.url(&env, "query"),
        &json!({"batch": [
            {"sql": "INSERT INTO users(email) VALUES ('dee@example.com')"},
            {"sql": "INSERT INTO users(email) VALUES ('ann@example.com')"},
        ]}),
    );
    assert_eq!(status, 400);
    let (_, body) = post(
        &agent,
        &server.url(&env, "query"),
        &json!({"sql": "SELECT count(*) AS n FROM users WHERE email = 'dee@example.com'"}),
    );
    assert_eq!(body["result"][0]["results"], json!([{"n": 0}]));

    // Production is read-only unless the server was started with consent.
    let (status, body) = post(
        &agent,
        &server.url("production", "query"),
        &json!({"sql": "DELETE FROM users"}),
    );
    assert_eq!(status, 403);
    same_shape(&body, &fixture("not_found.json"), "");
    assert_eq!(body["errors"][0]["code"], json!(7403));
    let (status, body) = post(
        &agent,
        &server.url("production", "query"),
        &json!({"sq": 1}),
    );
    assert_eq!(
        (status, body["errors"][0]["code"].clone()),
        (400, json!(7400))
    );
    let before = ws
        .production()
        .query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(before, 2, "nothing reached production");

    // Every statement that ran was recorded: 2 SQL errors (bad column, duplicate email), 2
    // successes (the rolled-back insert, the count) — the refused delete never ran.
    let (code, err) = server.interrupt();
    assert_eq!(code, Some(0), "{err}");
    let production = metrics(&ws, "production");
    assert_eq!(production, (1, 1), "production: one bad statement");
    assert_eq!(metrics(&ws, &env), (3, 1));
}

fn metrics(ws: &Ws, env: &str) -> (u64, u64) {
    let store = d1ops::metrics::MetricsStore::open(&ws.path().join(".d1ops")).unwrap();
    let now = chrono::Utc::now();
    let s = store
        .window_stats(
            Some(env),
            now - chrono::Duration::hours(1),
            now + chrono::Duration::minutes(2),
        )
        .unwrap();
    (s.count, s.errors)
}

#[test]
fn concurrent_clients_all_succeed_and_are_all_recorded() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let env = preview(&ws);
    const THREADS: usize = 8;
    const REQUESTS: usize = 50;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (server, env) = (&server, &env);
            scope.spawn(move || {
                let agent = agent();
                for i in 0..REQUESTS {
                    // Half reads of production, half writes on the preview (lock contention).
                    let (url, body) = if i % 2 == 0 {
                        (
                            server.url("production", "query"),
                            json!({"sql": "SELECT * FROM users WHERE id = ?", "params": [1 + i % 2]}),
                        )
                    } else {
                        (
                            server.url(env, "query"),
                            json!({"sql": "INSERT INTO users(email) VALUES (?)", "params": [format!("t{t}-{i}@example.com")]}),
                        )
                    };
                    let (status, body) = post(&agent, &url, &body);
                    assert_eq!(status, 200, "thread {t} request {i}: {body}");
                }
            });
        }
    });
    let (code, err) = server.interrupt();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("400 request(s)"), "{err}");
    let half = (THREADS * REQUESTS / 2) as u64;
    assert_eq!(metrics(&ws, "production"), (half, 0));
    assert_eq!(metrics(&ws, &env), (half, 0));
    let rows: i64 = rusqlite::Connection::open(ws.path().join(format!(".d1ops/db/{env}.sqlite")))
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2 + half as i64);
}

#[test]
fn production_writes_need_the_servers_consent() {
    let ws = workspace();
    let server = Server::start(&ws, &["--allow-production-writes"]);
    let (status, body) = post(
        &agent(),
        &server.url("production", "query"),
        &json!({"sql": "UPDATE users SET name = 'Annie' WHERE id = 1"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"][0]["meta"]["changes"], json!(1));
    let name: String = ws
        .production()
        .query_row("SELECT name FROM users WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "Annie");
}
