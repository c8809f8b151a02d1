//! Gate scaling benchmark (issue 15 item 9): a deploy of n pending migrations — the first
//! deploy of an existing project — against the `sqlite3` CLI applying the same SQL, the same
//! ledger rows and the same `foreign_key_check` in one transaction, measured in the same run.
//! Target: d1ops ≤ 5× `sqlite3` at n = 1,000.
//!
//! Each migration creates a table with an index and inserts 10 rows; every 20th also adds a
//! column to an earlier table, every 100th rebuilds an earlier one (create-copy-drop-rename),
//! so lint's replay, schema diff and cascade rules all have work. The deploy is the whole
//! thing through the engine: clone of (an empty) production into the preview, the
//! sandbox pre-check, the preview apply, every gate check (lint among them), the verdict.
//!
//! 1. criterion, n = 1,000: `d1ops deploy` vs `sqlite3`, 10 samples each, a fresh workspace
//!    (and a fresh `sqlite3` file) per sample.
//! 2. A growth table printed as Markdown: n = 100, 1,000 and 10,000 (10,000 is left out
//!    with `--quick` / `D1OPS_BENCH_QUICK=1`), one run each, with the gate's lint time.
//!
//! `cargo bench --bench gate_scale` (add `-- --quick` for the short form). Needs `sqlite3`.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use d1ops::engine::{DeployOutcome, DeployRequest, Engine, EngineOptions};

const LEDGER: &str = "d1_migrations";
const ROWS: usize = 10;

/// The SQL of migration `i` (1-based).
fn migration_sql(i: usize) -> String {
    let mut sql = format!(
        "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, v INTEGER);\n\
         CREATE INDEX ix_t{i}_name ON t{i}(name);\n"
    );
    let values: Vec<String> = (0..ROWS).map(|r| format!("('n{r}', {r})")).collect();
    sql.push_str(&format!(
        "INSERT INTO t{i} (name, v) VALUES {};\n",
        values.join(", ")
    ));
    if i.is_multiple_of(20) {
        sql.push_str(&format!("ALTER TABLE t{} ADD COLUMN note TEXT;\n", i - 10));
    }
    if i.is_multiple_of(100) {
        let t = i - 50;
        sql.push_str(&format!(
            "CREATE TABLE t{t}_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, v INTEGER, note TEXT, CHECK (v >= 0));\n\
             INSERT INTO t{t}_new (id, name, v, note) SELECT id, name, v, note FROM t{t};\n\
             DROP TABLE t{t};\n\
             ALTER TABLE t{t}_new RENAME TO t{t};\n\
             CREATE INDEX ix_t{t}_name ON t{t}(name);\n"
        ));
    }
    sql
}

fn name(i: usize) -> String {
    format!("{i:05}_m.sql")
}

/// A fresh workspace (local backend) with `n` pending migrations.
fn workspace(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    d1ops::workspace::init(dir.path()).expect("init");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).expect("mkdir");
    for i in 1..=n {
        std::fs::write(migrations.join(name(i)), migration_sql(i)).expect("write");
    }
    dir
}

fn deploy(root: &Path) -> DeployOutcome {
    let mut e = Engine::open(
        root,
        EngineOptions {
            actor: Some("bench".into()),
            readonly: false,
        },
    )
    .expect("open");
    e.deploy(DeployRequest {
        label: Some("gate scale bench".into()),
        ..Default::default()
    })
    .expect("deploy")
}

/// What `sqlite3` runs: the same statements, ledger rows and check, in one transaction.
fn sqlite3_script(n: usize) -> String {
    let mut s = format!(
        "PRAGMA foreign_keys = ON;\nBEGIN;\nPRAGMA defer_foreign_keys = ON;\n\
         CREATE TABLE IF NOT EXISTS {LEDGER} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n"
    );
    for i in 1..=n {
        s.push_str(&migration_sql(i));
        s.push_str(&format!(
            "INSERT INTO {LEDGER} (name) VALUES ('{}');\n",
            name(i)
        ));
    }
    s.push_str("PRAGMA foreign_key_check;\nCOMMIT;\n");
    s
}

fn sqlite3(script: &str, db: &Path) {
    let mut child = Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sqlite3 on PATH");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    assert!(child.wait().expect("wait").success(), "sqlite3 failed");
}

fn check_ready(out: &DeployOutcome, n: usize) {
    assert_eq!(out.pending.len(), n);
    // The rebuilds keep every column (they add a CHECK): a failing check means the workload
    // is wrong, not slow.
    for c in out.checks.iter().filter(|c| c.status.as_str() == "fail") {
        eprintln!("  ✗ {}: {}", c.id, c.reason);
    }
}

fn criterion_part(c: &mut Criterion) {
    const N: usize = 1_000;
    let script = sqlite3_script(N);
    let mut group = c.benchmark_group("first deploy of 1,000 migrations");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    group.bench_function("d1ops deploy", |b| {
        b.iter_batched(
            || workspace(N),
            |ws| {
                check_ready(&deploy(ws.path()), N);
                ws
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("sqlite3 CLI, one transaction", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temp dir"),
            |dir| {
                sqlite3(&script, &dir.path().join("prod.sqlite"));
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn growth_table(quick: bool) {
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    println!("## First deploy of n pending migrations vs `sqlite3` (one run each)\n");
    println!("| n | d1ops deploy (s) | of which lint (s) | sqlite3 CLI (s) | ratio |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let ws = workspace(n);
        let started = Instant::now();
        let out = deploy(ws.path());
        let d1ops = started.elapsed().as_secs_f64();
        check_ready(&out, n);
        let lint: f64 = out
            .checks
            .iter()
            .filter(|c| c.id.starts_with("lint."))
            .map(|c| c.duration_ms)
            .sum::<f64>()
            / 1000.0;
        let dir = tempfile::tempdir().expect("temp dir");
        let script = sqlite3_script(n);
        let started = Instant::now();
        sqlite3(&script, &dir.path().join("prod.sqlite"));
        let cli = started.elapsed().as_secs_f64();
        println!(
            "| {n} | {d1ops:.2} | {lint:.2} | {cli:.2} | {:.1}× |",
            d1ops / cli
        );
        eprintln!(
            "n = {n}: deploy {d1ops:.2} s ({}), sqlite3 {cli:.2} s",
            out.verdict.as_str()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("D1OPS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut c = Criterion::default().configure_from_args();
    criterion_part(&mut c);
    c.final_summary();
    growth_table(quick);
}
