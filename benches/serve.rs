//! `serve` benchmark (issue 5): throughput and latency of the local D1-compatible HTTP API
//! under a load generator on loopback, against executing the same statements directly —
//! the same executor (`LocalSession`), the same measurement and the same batching recorder,
//! without HTTP, JSON and the connection pool hand-off. The ratio between the two is what
//! `serve` adds. A one-shot `Engine::execute` (what `d1ops query` does: open the database
//! and the metrics store, run, record) is shown for reference.
//!
//! Workloads on a 10,000-row `users` table in production: a point read by primary key, a
//! 10-row range read, and an insert (one row + one index entry; fsync-bound). Each runs a
//! bounded number of requests from `CLIENTS` threads (each with its own keep-alive HTTP
//! connection, or its own session). Plain `main` (harness = false), prints Markdown.
//! Knobs: `--quick` or `D1OPS_BENCH_QUICK=1` (fewer requests). `cargo bench --bench serve`.
use std::time::Instant;

use d1ops::backend::{
    Backend, DatabaseRef, ExecOptions, ExecStatement, LocalBackend, LocalSession,
};
use d1ops::engine::observe::{ExecuteOptions, Recorder, Target, events_for};
use d1ops::engine::{Engine, EngineOptions};
use d1ops::serve::{self, ServeConfig};
use serde_json::{Value, json};

const CLIENTS: usize = 4;
const ROWS: i64 = 10_000;

struct Workload {
    name: &'static str,
    sql: &'static str,
    /// Parameters for request `i`.
    params: fn(u64) -> Vec<Value>,
    requests: usize,
}

/// splitmix64: deterministic, well-spread ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn workloads(quick: bool) -> Vec<Workload> {
    let scale = if quick { 1 } else { 5 };
    vec![
        Workload {
            name: "point read by id",
            sql: "SELECT id, email, name, created_at FROM users WHERE id = ?",
            params: |i| vec![json!(1 + mix(i) % ROWS as u64)],
            requests: 4_000 * scale,
        },
        Workload {
            name: "10-row range read",
            sql: "SELECT id, email FROM users WHERE id BETWEEN ?1 AND ?1 + 9",
            params: |i| vec![json!(1 + mix(i) % (ROWS as u64 - 10))],
            requests: 2_000 * scale,
        },
        Workload {
            name: "insert (row + index entry)",
            sql: "INSERT INTO events(user_id, kind) VALUES (?, 'bench')",
            params: |i| vec![json!(1 + mix(i) % ROWS as u64)],
            requests: 400 * scale,
        },
    ]
}

/// A workspace whose production database holds `users` (10,000 rows) and `events`.
fn workspace() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    d1ops::workspace::init(dir.path()).expect("init");
    let backend = LocalBackend::new(&dir.path().join(".d1ops"));
    let db = backend
        .create_database("production")
        .expect("create production");
    let conn = backend.open(&db).expect("open");
    conn.execute_batch(&format!(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TEXT);
         CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, kind TEXT NOT NULL);
         CREATE INDEX events_user ON events(user_id);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO users SELECT i, 'user' || i || '@example.com', 'User ' || i, '2026-01-01' FROM n;"
    ))
    .expect("seed");
    drop(conn);
    let engine = Engine::open(dir.path(), EngineOptions::default()).expect("engine");
    (dir, engine)
}

struct Measured {
    requests: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl Measured {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn quantile(&self, q: f64) -> f64 {
        let n = self.latencies_ms.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.latencies_ms[rank - 1]
    }
}

/// Runs `requests` calls of `one` spread over `CLIENTS` threads, each with its own state.
fn load<S, F>(requests: usize, mut make: impl FnMut() -> S, one: F) -> Measured
where
    S: Send,
    F: Fn(&mut S, u64) + Sync,
{
    let states: Vec<S> = (0..CLIENTS).map(|_| make()).collect();
    let started = Instant::now();
    let mut latencies: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = states
            .into_iter()
            .enumerate()
            .map(|(c, mut state)| {
                let one = &one;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut i = c as u64;
                    while (i as usize) < requests {
                        let t = Instant::now();
                        one(&mut state, i);
                        out.push(t.elapsed().as_secs_f64() * 1000.0);
                        i += CLIENTS as u64;
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Measured {
        requests,
        seconds,
        latencies_ms: latencies,
    }
}

fn row(workload: &str, path: &str, m: &Measured, ratio: Option<(f64, f64, f64)>) {
    let ratios = ratio.map_or_else(
        || "—".to_string(),
        |(tp, p50, p99)| format!("{tp:.2}× / {p50:.2}× / {p99:.2}×"),
    );
    println!(
        "| {workload} | {path} | {} | {:.0} | {:.3} | {:.3} | {ratios} |",
        m.requests,
        m.throughput(),
        m.quantile(0.50),
        m.quantile(0.99),
    );
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("D1OPS_BENCH_QUICK").is_some();
    let (dir, engine) = workspace();
    let state_dir = dir.path().join(".d1ops");
    let backend = engine.local_backend().expect("local backend");
    let target = Target {
        env: "production".into(),
        release: None,
        db: DatabaseRef::new("production"),
        production: true,
    };
    let server = serve::start(
        ServeConfig {
            state_dir: state_dir.clone(),
            backend: backend.clone(),
            allow_production_writes: true,
            readonly: false,
            access: Default::default(),
        },
        "127.0.0.1:0",
    )
    .expect("serve");
    let url = format!(
        "http://{}/accounts/bench/d1/database/production/query",
        server.addr
    );
    let recorder = Recorder::start(&state_dir).expect("recorder");

    println!("## serve vs direct execution ({CLIENTS} client threads, loopback)\n");
    println!(
        "| workload | path | requests | throughput (req/s) | p50 (ms) | p99 (ms) | serve ÷ direct: throughput / p50 / p99 |"
    );
    println!("|---|---|---:|---:|---:|---:|---|");
    for w in workloads(quick) {
        let opts = ExecOptions {
            allow_writes: true,
            rollback: false,
        };
        let direct = load(
            w.requests,
            || {
                let conn = backend.open(&target.db).expect("open");
                (
                    LocalSession::new(conn, backend.statement_timeout()).expect("session"),
                    recorder.sink(),
                )
            },
            |(session, sink), i| {
                let out = session.execute(&[ExecStatement::new(w.sql, (w.params)(i))], opts);
                assert!(out.is_ok(), "{:?}", out.failure);
                sink.send(events_for(&target, &out));
            },
        );
        let served = load(
            w.requests,
            || -> ureq::Agent { ureq::Agent::config_builder().build().into() },
            |agent, i| {
                let body = json!({"sql": w.sql, "params": (w.params)(i)});
                let resp: Value = agent
                    .post(&url)
                    .send_json(&body)
                    .expect("request")
                    .body_mut()
                    .read_json()
                    .expect("json");
                assert_eq!(resp["success"], json!(true), "{resp}");
            },
        );
        row(w.name, "direct (executor + recorder)", &direct, None);
        row(
            w.name,
            "serve (HTTP + JSON + pool)",
            &served,
            Some((
                served.throughput() / direct.throughput(),
                served.quantile(0.5) / direct.quantile(0.5),
                served.quantile(0.99) / direct.quantile(0.99),
            )),
        );
    }

    // The one-shot path, single-threaded (the engine holds one state connection).
    let n = if quick { 100 } else { 300 };
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n as u64 {
        let t = Instant::now();
        engine
            .execute(
                "production",
                "SELECT id, email, name, created_at FROM users WHERE id = ?",
                &[json!(1 + mix(i) % ROWS as u64)],
                ExecuteOptions::default(),
            )
            .expect("execute");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let one_shot = Measured {
        requests: n,
        seconds: started.elapsed().as_secs_f64(),
        latencies_ms: latencies,
    };
    row(
        "point read by id",
        "`Engine::execute` one-shot, 1 thread (reference)",
        &one_shot,
        None,
    );

    let served = server.stop().expect("stop");
    let recorded = recorder.finish();
    println!(
        "\nrecorded: serve {} of {} statements, direct {} (lost {})",
        served.recorded,
        served.statements,
        recorded.recorded,
        served.lost + recorded.lost
    );
}
