//! `d1ops serve` (issue 5, item 2): the real binary on a loopback port, a real workspace.
//! Contract tests compare our responses' field names and JSON types with Cloudflare's
//! documented examples in `tests/fixtures/cloudflare/`; then batches, errors, concurrent
//! clients (every statement recorded) and a clean stop on Ctrl-C. Then what a web page in
//! the developer's browser could try (issue 12, item 5): cross-site posts, foreign origins,
//! DNS rebinding, missing tokens, oversized bodies, nested parameters, `VACUUM INTO`; these
//! speak raw HTTP/1.1 so every header is the test's choice.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Ws;
use d1ops_testkit::d1_contract::{self, fixture};
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
        Server::start_with_env(ws, extra, &[])
    }

    fn start_with_env(ws: &Ws, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("d1ops"))
            .arg("--workspace")
            .arg(ws.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("D1OPS_USER", "alice")
            .env_remove(TOKEN_ENV)
            .envs(env.iter().copied())
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

    /// `127.0.0.1:PORT`.
    fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn port(&self) -> u16 {
        self.host()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("a port")
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

// ---- What a web page could try (issue 12, item 5) ----

const TOKEN_ENV: &str = "D1OPS_SERVE_TOKEN";
/// A header name that makes [`send`] leave out the `Host` header.
const NO_HOST: &str = "x-test-no-host";

/// An HTTP answer read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> Value {
        self.body["errors"][0]["code"].clone()
    }

    fn message(&self) -> String {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends one raw HTTP/1.1 request to the server: `Host` is the server's address unless
/// `headers` has one (or [`NO_HOST`]); the body goes with a `Content-Length`, or in chunks
/// when `headers` says `Transfer-Encoding: chunked`.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") && !has(NO_HOST) {
        head.push_str(&format!("Host: {}\r\n", server.host()));
    }
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case(NO_HOST) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !chunked {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut stream = std::net::TcpStream::connect(server.host()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).expect("send head");
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .unwrap();
            stream.write_all(chunk).unwrap();
            stream.write_all(b"\r\n").unwrap();
        }
        stream.write_all(b"0\r\n\r\n").unwrap();
    } else {
        stream.write_all(body).expect("send body");
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = if rest.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(rest)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", String::from_utf8_lossy(rest)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn path(env: &str) -> String {
    format!("/accounts/acc123/d1/database/{env}/query")
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A refusal in Cloudflare's envelope: `{success: false, errors: [{code, message}], messages:
/// [], result: null}`, with this status and code.
fn refused(a: &Answer, status: u16, code: u64) {
    assert_eq!(a.status, status, "{}", a.body);
    same_shape(&a.body, &fixture("not_found.json"), "");
    assert_eq!(a.body["success"], json!(false));
    assert_eq!(a.body["result"], Value::Null);
    assert_eq!(a.body["messages"], json!([]));
    assert_eq!(a.code(), json!(code), "{}", a.body);
}

fn production_users(ws: &Ws) -> i64 {
    ws.production()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn cross_site_text_plain_post_is_refused() {
    let ws = workspace();
    // The worst case: the server was told production writes are fine.
    let server = Server::start(&ws, &["--allow-production-writes"]);
    let delete = br#"{"sql": "DELETE FROM users"}"#;
    // What a page on another site can send without a preflight: text/plain with its Origin.
    let a = send(
        &server,
        "POST",
        &path("production"),
        &[
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        delete,
    );
    refused(&a, 403, 7403);
    assert!(
        a.message().contains("http://evil.example"),
        "{}",
        a.message()
    );
    assert_eq!(a.header("access-control-allow-origin"), None);
    // Without an Origin (a form post from a privacy-hardened browser, curl): still not JSON.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| vec![("Content-Type", c)])
            .unwrap_or_default();
        let a = send(&server, "POST", &path("production"), &headers, delete);
        refused(&a, 415, 7415);
        assert!(
            a.message().contains("Content-Type: application/json"),
            "{}",
            a.message()
        );
    }
    assert_eq!(production_users(&ws), 2, "nothing reached production");
    // The same statement as JSON from a local program runs (the server allows it).
    let a = send(&server, "POST", &path("production"), &[JSON], delete);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(production_users(&ws), 0);
}

#[test]
fn foreign_origin_is_refused() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let select = br#"{"sql": "SELECT count(*) AS n FROM users"}"#;
    let port = server.port();
    for origin in [
        "http://evil.example".to_string(),
        "https://evil.example:8787".to_string(),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost.evil.example:{port}"),
        "null".to_string(),
    ] {
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[JSON, ("Origin", &origin)],
            select,
        );
        refused(&a, 403, 7403);
        assert_eq!(a.header("access-control-allow-origin"), None, "{origin}");
        // Nor does a preflight let it through.
        let a = send(
            &server,
            "OPTIONS",
            &path("production"),
            &[
                ("Origin", &origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        );
        refused(&a, 403, 7403);
        assert_eq!(a.header("access-control-allow-origin"), None, "{origin}");
    }
    // The server's own address, in both names, is the same origin.
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[JSON, ("Origin", &origin)],
            select,
        );
        assert_eq!(a.status, 200, "{origin}: {}", a.body);
        assert_eq!(a.body["result"][0]["results"], json!([{"n": 2}]));
    }
}

#[test]
fn rebinding_host_header_is_refused() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let select = br#"{"sql": "SELECT count(*) AS n FROM users"}"#;
    let port = server.port();
    // A page at http://rebind.evil.example:PORT whose name now resolves to 127.0.0.1 is
    // same-origin to itself, so it sends no Origin; its Host gives it away.
    for host in [
        format!("rebind.evil.example:{port}"),
        "rebind.evil.example".to_string(),
        format!("127.0.0.1.nip.io:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        format!("127.0.0.1:{port}@evil"),
    ] {
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[JSON, ("Host", &host)],
            select,
        );
        refused(&a, 403, 7403);
        assert!(a.message().contains("Host"), "{}", a.message());
    }
    let a = send(
        &server,
        "POST",
        &path("production"),
        &[JSON, (NO_HOST, "")],
        select,
    );
    refused(&a, 403, 7403);
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[JSON, ("Host", &host)],
            select,
        );
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
}

#[test]
fn allowed_origin_is_accepted() {
    let ws = workspace();
    let server = Server::start(
        &ws,
        &[
            "--allow-origin",
            "http://localhost:3000",
            "--allow-origin",
            "https://sql.example.com/",
        ],
    );
    let select = br#"{"sql": "SELECT count(*) AS n FROM users"}"#;
    for origin in ["http://localhost:3000", "https://sql.example.com"] {
        // The browser's preflight for a JSON POST.
        let a = send(
            &server,
            "OPTIONS",
            &path("production"),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "content-type,authorization",
                ),
                ("Access-Control-Request-Private-Network", "true"),
            ],
            b"",
        );
        assert_eq!(a.status, 204, "{origin}: {}", a.body);
        assert_eq!(a.header("access-control-allow-origin"), Some(origin));
        let allowed = a
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            allowed.contains("content-type") && allowed.contains("authorization"),
            "{allowed}"
        );
        assert_eq!(
            a.header("access-control-allow-private-network"),
            Some("true")
        );
        // The request itself, answered with CORS headers so the page can read it.
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[JSON, ("Origin", origin)],
            select,
        );
        assert_eq!(a.status, 200, "{origin}: {}", a.body);
        assert_eq!(a.body["result"][0]["results"], json!([{"n": 2}]));
        assert_eq!(a.header("access-control-allow-origin"), Some(origin));
        // Still JSON only.
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[("Content-Type", "text/plain"), ("Origin", origin)],
            select,
        );
        refused(&a, 415, 7415);
    }
    // A neighbour of an allowed origin is not allowed.
    for origin in ["http://localhost:3001", "http://sql.example.com"] {
        let a = send(
            &server,
            "POST",
            &path("production"),
            &[JSON, ("Origin", origin)],
            select,
        );
        refused(&a, 403, 7403);
    }
    // An allow-list that would admit every page is refused at start.
    for bad in ["null", "*", "localhost:3000"] {
        let (code, _, err) = ws.run_as(
            "alice",
            &["serve", "--listen", "127.0.0.1:0", "--allow-origin", bad],
        );
        assert_eq!(code, Some(1), "{bad}: {err}");
        assert!(err.contains("--allow-origin"), "{err}");
    }
}

#[test]
fn bearer_token_is_required_when_set() {
    let ws = workspace();
    let token = "tok-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4";
    let server = Server::start_with_env(&ws, &[], &[(TOKEN_ENV, token)]);
    let select = br#"{"sql": "SELECT count(*) AS n FROM users"}"#;
    let auth_fixture = fixture("d1/auth_error.json");
    let wrong = format!("Bearer {}x", token);
    let basic = format!("Basic {token}");
    for headers in [
        vec![JSON],
        vec![JSON, ("Authorization", wrong.as_str())],
        vec![JSON, ("Authorization", basic.as_str())],
        vec![JSON, ("Authorization", token)],
        vec![JSON, ("Authorization", "Bearer ")],
    ] {
        let a = send(&server, "POST", &path("production"), &headers, select);
        assert_eq!(a.status, 401, "{headers:?}: {}", a.body);
        same_shape(&a.body, &auth_fixture, "");
        assert_eq!(a.code(), json!(10000));
        assert!(
            a.message().starts_with("Authentication error"),
            "{}",
            a.message()
        );
        assert!(
            !a.body.to_string().contains(token),
            "the token is never echoed"
        );
        assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    }
    let good = format!("Bearer {token}");
    let a = send(
        &server,
        "POST",
        &path("production"),
        &[JSON, ("Authorization", &good)],
        select,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"][0]["results"], json!([{"n": 2}]));
    // Clients built for D1's API send it the same way.
    let mut resp = agent()
        .post(server.url("production", "query"))
        .header("Authorization", &good)
        .send_json(json!({"sql": "SELECT 1 AS one"}))
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(body["result"][0]["results"], json!([{"one": 1}]));

    let (code, err) = server.interrupt();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains(token), "stderr shows the token: {err}");
    assert!(err.contains(TOKEN_ENV), "stderr names the variable: {err}");
    let log = std::fs::read_to_string(ws.path().join(".d1ops/logs/d1ops.log")).unwrap_or_default();
    assert!(!log.contains(token), "the log holds the token");

    // A token that is set but empty does not silently turn authentication off.
    let out = ws
        .cmd("alice")
        .env(TOKEN_ENV, "")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(TOKEN_ENV));
}

#[test]
fn oversized_body_gets_413_in_the_envelope() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let env = preview(&ws);
    let big = json!({"sql": "INSERT INTO users(email, name) VALUES ('big@example.com', ?)", "params": ["x".repeat(2 << 20)]})
        .to_string();
    // Declared with Content-Length, then sent in chunks with none declared.
    for chunked in [false, true] {
        let mut headers = vec![JSON];
        if chunked {
            headers.push(("Transfer-Encoding", "chunked"));
        }
        let a = send(&server, "POST", &path(&env), &headers, big.as_bytes());
        refused(&a, 413, 7413);
        assert!(a.message().contains("1 MiB"), "{}", a.message());
    }
    // A body just under the limit is served.
    let fits =
        json!({"sql": "SELECT length(?) AS n", "params": ["y".repeat(1000 * 1000)]}).to_string();
    let a = send(&server, "POST", &path(&env), &[JSON], fits.as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"][0]["results"], json!([{"n": 1_000_000}]));
    let (_, body) = post(
        &agent(),
        &server.url(&env, "query"),
        &json!({"sql": "SELECT count(*) AS n FROM users WHERE email = 'big@example.com'"}),
    );
    assert_eq!(body["result"][0]["results"], json!([{"n": 0}]));
}

#[test]
fn nested_params_are_an_error() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let env = preview(&ws);
    let agent = agent();
    let cases = [
        (
            json!({"sql": "INSERT INTO users(email, name) VALUES (?, ?)", "params": ["n@example.com", [1]]}),
            "params[1] (parameter ?2) is an array",
        ),
        (
            json!({"sql": "INSERT INTO users(email) VALUES (?)", "params": [{"a": 1}]}),
            "params[0] (parameter ?1) is an object",
        ),
        (
            json!({"batch": [
                {"sql": "INSERT INTO users(email) VALUES (?)", "params": ["m@example.com"]},
                {"sql": "INSERT INTO users(email, name) VALUES (?, ?)", "params": ["o@example.com", [[1]]]},
            ]}),
            "batch[1].params[1] (parameter ?2) is an array",
        ),
    ];
    for (body, says) in cases {
        for endpoint in ["query", "raw"] {
            let (status, answer) = post(&agent, &server.url(&env, endpoint), &body);
            assert_eq!(status, 400, "{answer}");
            same_shape(&answer, &fixture("not_found.json"), "");
            assert_eq!(answer["errors"][0]["code"], json!(7400));
            let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{message}");
        }
    }
    let (_, body) = post(
        &agent,
        &server.url(&env, "query"),
        &json!({"sql": "SELECT count(*) AS n FROM users"}),
    );
    assert_eq!(
        body["result"][0]["results"],
        json!([{"n": 2}]),
        "nothing was inserted, not even the batch's first statement"
    );
}

/// Refused by the authorizer every connection running user SQL gets (issue 12, item 1).
#[test]
fn vacuum_into_through_serve_is_refused() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let env = preview(&ws);
    let out = tempfile::tempdir().unwrap();
    let copy = out.path().join("copy.sqlite");
    let sql = format!("VACUUM INTO '{}'", copy.display());
    let (status, body) = post(&agent(), &server.url(&env, "query"), &json!({ "sql": sql }));
    assert_ne!(status, 200, "{body}");
    assert_eq!(body["success"], json!(false), "{body}");
    assert!(!copy.exists(), "VACUUM INTO wrote {}", copy.display());
    // Nor on production, where the server allows writes.
    drop(server);
    let server = Server::start(&ws, &["--allow-production-writes"]);
    let (status, body) = post(
        &agent(),
        &server.url("production", "query"),
        &json!({ "sql": sql }),
    );
    assert_ne!(status, 200, "{body}");
    assert!(!copy.exists(), "VACUUM INTO wrote {}", copy.display());
}
