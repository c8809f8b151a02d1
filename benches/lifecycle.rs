//! Lifecycle benchmarks (issue 2): d1ops' local backend against the plain tools an operator
//! would otherwise use, measured in the same run with alternating order.
//!
//! 1. `apply`: 200 migrations (each: CREATE TABLE + 100 single-row INSERTs) through
//!    `LocalBackend::apply_migrations` vs the `sqlite3` CLI running the same SQL, the same
//!    ledger rows and the same `foreign_key_check` in one transaction. Target ≤ 1.3×.
//! 2. `clone`: `LocalBackend::clone_database` (online backup API) of a ~500 MB production
//!    database vs `cp` of the file. Target ≤ 1.5×.
//!
//! Plain `main` (harness = false) timing N alternating runs with `Instant`, printing medians
//! as a Markdown table. Knobs (env or args):
//!
//! - `D1OPS_BENCH_QUICK=1` or `--quick`: 50 MB database, 3 runs (CI: use `--no-run` to only
//!   compile).
//! - `D1OPS_BENCH_RUNS=N`: measured runs per side (default 7, quick 3), after 1 warm-up each.
//! - `D1OPS_BENCH_DB_MB=N`: size of the generated production database (default 500).
//! - `D1OPS_BENCH_ONLY=apply|clone`: run one benchmark.
//! - `D1OPS_BENCH_DATA=DIR`: where the cached database lives (default `target/bench-data`).
//!
//! Rows marked "diagnostic" are not d1ops code paths: they replicate alternatives with
//! rusqlite/std directly so the report can say where time goes.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use d1ops::backend::local::ledger_ddl;
use d1ops::backend::{Backend, DatabaseRef, LocalBackend};
use d1ops::workspace::Migration;
use rusqlite::{Connection, params};

const LEDGER: &str = "d1_migrations";
const MIGRATIONS: usize = 200;
const ROWS_PER_MIGRATION: usize = 100;
/// Bump when the generated database's shape changes, so a stale cache is not reused.
const GENERATOR_VERSION: u32 = 1;

struct Config {
    quick: bool,
    runs: usize,
    db_mb: u64,
    only: Option<String>,
    data_dir: PathBuf,
}

impl Config {
    fn from_env() -> Config {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let env_flag = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0");
        let quick = env_flag("D1OPS_BENCH_QUICK") || args.iter().any(|a| a == "--quick");
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let runs = num("D1OPS_BENCH_RUNS")
            .unwrap_or(if quick { 3 } else { 7 })
            .max(1) as usize;
        let db_mb = num("D1OPS_BENCH_DB_MB")
            .unwrap_or(if quick { 50 } else { 500 })
            .max(1);
        let only = std::env::var("D1OPS_BENCH_ONLY")
            .ok()
            .filter(|s| !s.is_empty());
        let data_dir = std::env::var_os("D1OPS_BENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                // CARGO_TARGET_TMPDIR is `<target>/tmp`; keep the cache next to it.
                Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .parent()
                    .map(|t| t.join("bench-data"))
                    .unwrap_or_else(|| PathBuf::from("target/bench-data"))
            });
        Config {
            quick,
            runs,
            db_mb,
            only,
            data_dir,
        }
    }

    fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }
}

/// One result line.
struct Row {
    case: String,
    ours_label: String,
    ours: Vec<Duration>,
    peer_label: String,
    peer: Option<Vec<Duration>>,
    target: Option<f64>,
    note: String,
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

fn fmt_d(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn fmt_samples(v: &[Duration]) -> String {
    v.iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn sqlite3_cli() -> Option<String> {
    sh("sqlite3", &["--version"])
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Other processes using more than 20 % CPU right now (concurrent builds skew I/O numbers).
fn busy_processes() -> String {
    let me = std::process::id().to_string();
    let list = sh("ps", &["-eo", "pid=,pcpu=,comm="])
        .map(|out| {
            out.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let cpu: f64 = f.get(1)?.parse().ok()?;
                    (cpu > 20.0 && f[0] != me && f.get(2) != Some(&"ps"))
                        .then(|| format!("{} ({cpu:.0} %)", f[2..].join(" ")))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Flushes dirty pages so one side's pending writeback does not slow the next (untimed).
fn sync_fs() {
    let _ = Command::new("sync").status();
}

fn remove_db_files(path: &Path) {
    for ext in ["", "-journal", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

// ───────────────────────────── 1. apply 200 migrations ─────────────────────────────

fn migration_sql(i: usize) -> String {
    let mut sql = format!(
        "-- migration {i}: a feature table and its seed rows\n\
         CREATE TABLE feature_{i:04} (\n  id INTEGER PRIMARY KEY,\n  slug TEXT NOT NULL UNIQUE,\n  \
         title TEXT NOT NULL,\n  enabled INTEGER NOT NULL DEFAULT 0,\n  weight REAL,\n  \
         created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\n"
    );
    for r in 0..ROWS_PER_MIGRATION {
        sql.push_str(&format!(
            "INSERT INTO feature_{i:04} (slug, title, enabled, weight) VALUES ('f{i}-r{r}', 'Feature {i} row {r} — it''s seeded', {}, {}.5);\n",
            r % 2,
            r
        ));
    }
    sql
}

fn migration_name(i: usize) -> String {
    format!("{:04}_feature_{i:04}.sql", i + 1)
}

/// The exact script the CLI runs: same connection settings as d1ops (foreign keys on and
/// deferred), same ledger DDL and rows, same foreign_key_check, one transaction.
fn cli_script(sqls: &[String]) -> String {
    let mut s =
        String::with_capacity(sqls.iter().map(String::len).sum::<usize>() + 64 * sqls.len());
    s.push_str("PRAGMA foreign_keys = ON;\nBEGIN IMMEDIATE;\nPRAGMA defer_foreign_keys = ON;\n");
    s.push_str(&ledger_ddl(LEDGER));
    s.push_str(";\n");
    for (i, sql) in sqls.iter().enumerate() {
        s.push_str(sql);
        s.push_str(&format!(
            "INSERT INTO {LEDGER}(name) VALUES ('{}');\n",
            migration_name(i)
        ));
    }
    s.push_str("PRAGMA foreign_key_check;\nCOMMIT;\n");
    s
}

fn run_cli(db: &Path, script: &str) -> Duration {
    let started = Instant::now();
    let mut child = Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sqlite3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("wait sqlite3");
    let elapsed = started.elapsed();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn check_applied(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let ledger: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {LEDGER}"), [], |r| r.get(0))
        .unwrap();
    let rows: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM feature_{:04}", MIGRATIONS - 1),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        ledger as usize,
        MIGRATIONS,
        "{}: ledger rows",
        path.display()
    );
    assert_eq!(
        rows as usize,
        ROWS_PER_MIGRATION,
        "{}: seed rows",
        path.display()
    );
}

/// Diagnostic: the same work on a raw rusqlite connection, one `execute_batch` per
/// migration (not per statement), ledger insert through a cached prepared statement.
fn raw_apply(path: &Path, sqls: &[String]) -> Duration {
    let started = Instant::now();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;",
    )
    .unwrap();
    conn.execute_batch(&ledger_ddl(LEDGER)).unwrap();
    {
        let mut ins = conn
            .prepare(&format!("INSERT INTO {LEDGER}(name) VALUES (?1)"))
            .unwrap();
        for (i, sql) in sqls.iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            ins.execute(params![migration_name(i)]).unwrap();
        }
        let mut fk = conn.prepare("PRAGMA foreign_key_check").unwrap();
        assert!(fk.query([]).unwrap().next().unwrap().is_none());
    }
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    started.elapsed()
}

fn bench_apply(cfg: &Config, rows: &mut Vec<Row>) {
    let work = tempfile::Builder::new()
        .prefix("d1ops-bench-apply")
        .tempdir_in(&cfg.data_dir)
        .unwrap();
    let backend = LocalBackend::new(work.path());
    let sqls: Vec<String> = (0..MIGRATIONS).map(migration_sql).collect();
    let parse_started = Instant::now();
    let migrations: Vec<Migration> = sqls
        .iter()
        .enumerate()
        .map(|(i, sql)| {
            let name = migration_name(i);
            Migration::from_sql(&name, &format!("migrations/{name}"), sql.clone(), false).unwrap()
        })
        .collect();
    let parse = parse_started.elapsed();
    let statements: usize = migrations.iter().map(|m| m.statements.len()).sum();
    let script = cli_script(&sqls);
    let cli = sqlite3_cli();
    eprintln!(
        "apply: {MIGRATIONS} migrations, {statements} statements, {} KiB of SQL; splitting took {} (not in the timed apply)",
        sqls.iter().map(String::len).sum::<usize>() / 1024,
        fmt_d(parse)
    );

    let mut ours = Vec::new();
    let mut peer = Vec::new();
    let mut raw = Vec::new();
    let mut seq = 0usize;
    let mut fresh = |backend: &LocalBackend| {
        seq += 1;
        let db = backend.create_database(&format!("apply-{seq}")).unwrap();
        let path = backend.path(&db).unwrap();
        (db, path)
    };
    // Run 0 is a warm-up for every side; order alternates so neither side always goes first.
    for run in 0..=cfg.runs {
        let mut sides: Vec<&str> = vec!["d1ops", "cli", "raw"];
        if run % 2 == 1 {
            sides.reverse();
        }
        for side in sides {
            let (db, path) = fresh(&backend);
            sync_fs();
            let t = match side {
                "d1ops" => {
                    let started = Instant::now();
                    let report = backend.apply_migrations(&db, &migrations, LEDGER).unwrap();
                    let t = started.elapsed();
                    assert_eq!(report.statements, statements);
                    t
                }
                "cli" => {
                    if cli.is_none() {
                        backend.delete_database(&db).unwrap();
                        continue;
                    }
                    run_cli(&path, &script)
                }
                _ => raw_apply(&path, &sqls),
            };
            if run == 0 {
                check_applied(&path);
            } else {
                match side {
                    "d1ops" => ours.push(t),
                    "cli" => peer.push(t),
                    _ => raw.push(t),
                }
            }
            backend.delete_database(&db).unwrap();
        }
        eprintln!("apply: run {run}/{} done", cfg.runs);
    }
    let case = format!(
        "apply {MIGRATIONS} migrations × (CREATE TABLE + {ROWS_PER_MIGRATION} INSERTs), one transaction"
    );
    rows.push(Row {
        case: case.clone(),
        ours_label: "`LocalBackend::apply_migrations`".into(),
        ours: ours.clone(),
        peer_label: "`sqlite3` CLI, same script".into(),
        peer: cli.is_some().then(|| peer.clone()),
        target: Some(1.3),
        note: if cli.is_some() {
            "CLI time includes process start; both: fresh empty DB, FK on + deferred, 200 ledger rows, foreign_key_check".into()
        } else {
            "`sqlite3` not found on PATH: CLI comparison skipped".into()
        },
    });
    rows.push(Row {
        case: format!("{case} — diagnostic"),
        ours_label: "`LocalBackend::apply_migrations`".into(),
        ours,
        peer_label: "raw rusqlite, one `execute_batch` per migration".into(),
        peer: Some(raw),
        target: None,
        note: "same SQLite as d1ops; isolates d1ops' own overhead".into(),
    });
}

// ───────────────────────────── 2. clone a production database ─────────────────────────────

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "ada", "alan", "grace", "linus", "margaret", "ken", "dennis", "barbara", "edsger", "donald",
    "frances", "john", "radia", "sophie", "tim", "guido", "yukihiro", "bjarne", "anders", "rich",
];
const LAST: &[&str] = &[
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "hamilton",
    "thompson",
    "ritchie",
    "liskov",
    "dijkstra",
    "knuth",
    "allen",
    "mccarthy",
    "perlman",
    "wilson",
    "berners",
    "rossum",
    "matsumoto",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.test",
    "corp.example",
    "users.invalid",
    "inbox.test",
];
const COUNTRIES: &[&str] = &[
    "US", "DE", "FR", "JP", "BR", "IN", "GB", "NG", "CA", "AU", "KR", "MX",
];
const PLANS: &[&str] = &["free", "pro", "team", "enterprise"];
const WORDS: &[&str] = &[
    "builds",
    "ships",
    "loves",
    "databases",
    "migrations",
    "coffee",
    "distributed",
    "systems",
    "edge",
    "workers",
    "latency",
    "queries",
    "indexes",
    "on-call",
    "weekends",
    "hiking",
    "typescript",
    "rust",
    "sqlite",
    "observability",
    "release",
    "trains",
    "and",
    "the",
    "with",
];

/// Builds (once) a production-like database of about `mb` MB: `users` with realistic text
/// columns, an index on `email` and one on `created_at`. One transaction, prepared statement.
fn production_db(cfg: &Config, backend: &LocalBackend) -> DatabaseRef {
    let db = DatabaseRef::new(format!("prod-{}mb-v{GENERATOR_VERSION}", cfg.db_mb));
    let path = backend.path(&db).unwrap();
    if path.is_file() {
        eprintln!(
            "clone: reusing cached {} ({} MB)",
            path.display(),
            std::fs::metadata(&path).unwrap().len() / 1_000_000
        );
        return db;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("generating");
    remove_db_files(&tmp);
    let target_bytes = cfg.db_mb * 1_000_000;
    eprintln!(
        "clone: generating {} (~{} MB, one time)…",
        path.display(),
        cfg.db_mb
    );
    let started = Instant::now();
    let conn = Connection::open(&tmp).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;
         CREATE TABLE users (
           id INTEGER PRIMARY KEY,
           email TEXT NOT NULL,
           name TEXT NOT NULL,
           country TEXT NOT NULL,
           plan TEXT NOT NULL,
           created_at TEXT NOT NULL,
           last_seen_at TEXT,
           bio TEXT
         );
         CREATE INDEX users_email ON users(email);
         CREATE INDEX users_created_at ON users(created_at);
         BEGIN;",
    )
    .unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let mut rng = Rng(0x00D1_0B5E);
    let mut n: u64 = 0;
    {
        let mut ins = conn
            .prepare(
                "INSERT INTO users (email, name, country, plan, created_at, last_seen_at, bio)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .unwrap();
        let base = 1_600_000_000i64; // 2020-09-13
        loop {
            for _ in 0..50_000 {
                n += 1;
                let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
                let email = format!("{f}.{l}{}@{}", rng.next() % 100_000, rng.pick(DOMAINS));
                let name = format!(
                    "{}{} {}{}",
                    &f[..1].to_uppercase(),
                    &f[1..],
                    &l[..1].to_uppercase(),
                    &l[1..]
                );
                let created = base + (n as i64) * 60 + (rng.next() % 60) as i64;
                let seen = created + (rng.next() % 30_000_000) as i64;
                let ts = |t: i64| {
                    chrono::DateTime::from_timestamp(t, 0)
                        .unwrap()
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string()
                };
                let words = 6 + rng.next() % 10;
                let bio = (0..words)
                    .map(|_| rng.pick(WORDS))
                    .collect::<Vec<_>>()
                    .join(" ");
                ins.execute(params![
                    email,
                    name,
                    rng.pick(COUNTRIES),
                    rng.pick(PLANS),
                    ts(created),
                    (!rng.next().is_multiple_of(10)).then(|| ts(seen)),
                    bio
                ])
                .unwrap();
            }
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap();
            if (pages * page_size) as u64 >= target_bytes {
                break;
            }
        }
    }
    conn.execute_batch("COMMIT; PRAGMA journal_mode = DELETE;")
        .unwrap();
    drop(conn);
    std::fs::rename(&tmp, &path).unwrap();
    eprintln!(
        "clone: generated {n} rows, {} MB in {}",
        std::fs::metadata(&path).unwrap().len() / 1_000_000,
        fmt_d(started.elapsed())
    );
    db
}

fn cp(from: &Path, to: &Path, fsync: bool) -> Duration {
    let started = Instant::now();
    let ok = Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("spawn cp")
        .success();
    assert!(ok, "cp failed");
    if fsync {
        std::fs::File::open(to).unwrap().sync_all().unwrap();
    }
    started.elapsed()
}

/// Diagnostic: a consistent file-level copy — hold a read transaction (SHARED lock: no
/// writer can commit in rollback-journal mode) while the kernel copies the file
/// (`std::fs::copy` → copy_file_range), then (optionally) fsync and rename, as d1ops' copy does.
fn locked_file_copy(from: &Path, to: &Path, fsync: bool) -> Duration {
    let started = Instant::now();
    let src =
        Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    src.execute_batch("BEGIN").unwrap();
    let _: i64 = src
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    let tmp = to.with_extension("sqlite.tmp");
    std::fs::copy(from, &tmp).unwrap();
    src.execute_batch("COMMIT").unwrap();
    if fsync {
        std::fs::File::open(&tmp).unwrap().sync_all().unwrap();
    }
    std::fs::rename(&tmp, to).unwrap();
    started.elapsed()
}

/// Diagnostic: d1ops' backup loop replicated on rusqlite. `tuned`: source memory-mapped
/// (`PRAGMA mmap_size`), so pages are not pread one by one (is it read overhead?).
/// `fsync: false`: without the final fsync (how much of d1ops' time is durability?).
fn replica_backup(from: &Path, to: &Path, tuned: bool, fsync: bool) -> Duration {
    let started = Instant::now();
    let src =
        Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    if tuned {
        src.execute_batch("PRAGMA mmap_size = 4294967296").unwrap();
    }
    let tmp = to.with_extension("sqlite.tmp");
    let mut dst = Connection::open(&tmp).unwrap();
    dst.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .unwrap();
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst).unwrap();
        while b.step(-1).unwrap() != rusqlite::backup::StepResult::Done {}
    }
    dst.execute_batch("PRAGMA journal_mode = DELETE").unwrap();
    drop(dst);
    if fsync {
        std::fs::File::open(&tmp).unwrap().sync_all().unwrap();
    }
    std::fs::rename(&tmp, to).unwrap();
    started.elapsed()
}

fn bench_clone(cfg: &Config, rows: &mut Vec<Row>) {
    let backend = LocalBackend::new(&cfg.data_dir.join("state"));
    let prod = production_db(cfg, &backend);
    let src = backend.path(&prod).unwrap();
    let size = std::fs::metadata(&src).unwrap().len();
    let db_dir = src.parent().unwrap().to_path_buf();
    // Leftovers from an interrupted run.
    for e in std::fs::read_dir(&db_dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("bench-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // Warm the source into the page cache once; every side then reads it warm.
    let _ = std::fs::read(&src).map(|v| v.len());

    let sides = [
        "d1ops",
        "cp",
        "cp+fsync",
        "locked-copy",
        "backup-nofsync",
        "tuned-backup",
        "locked-copy-nofsync",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
    for run in 0..=cfg.runs {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        order.rotate_left(run % sides.len());
        for k in order {
            let name = format!("bench-{}-{run}", sides[k]);
            let dst = db_dir.join(format!("{name}.sqlite"));
            remove_db_files(&dst);
            sync_fs();
            let t = match sides[k] {
                "d1ops" => {
                    let started = Instant::now();
                    backend.clone_database(&prod, &name).unwrap();
                    started.elapsed()
                }
                "cp" => cp(&src, &dst, false),
                "cp+fsync" => cp(&src, &dst, true),
                "locked-copy" => locked_file_copy(&src, &dst, true),
                "locked-copy-nofsync" => locked_file_copy(&src, &dst, false),
                "backup-nofsync" => replica_backup(&src, &dst, false, false),
                _ => replica_backup(&src, &dst, true, true),
            };
            if run == 0 {
                let conn =
                    Connection::open_with_flags(&dst, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                        .unwrap();
                let ok: String = conn
                    .query_row("PRAGMA quick_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(ok, "ok", "{}: quick_check", dst.display());
            } else {
                times[k].push(t);
            }
            remove_db_files(&dst);
        }
        eprintln!("clone: run {run}/{} done", cfg.runs);
    }
    let case = format!("preview clone of a {} MB database", size / 1_000_000);
    rows.push(Row {
        case: case.clone(),
        ours_label: "`LocalBackend::clone_database`".into(),
        ours: times[0].clone(),
        peer_label: "`cp`".into(),
        peer: Some(times[1].clone()),
        target: Some(1.5),
        note: "source warm in page cache; d1ops: read transaction + in-kernel file copy + rename, no fsync (previews are disposable; snapshots fsync)".into(),
    });
    let diag = |label: &str, k: usize, note: &str| Row {
        case: format!("{case} — diagnostic"),
        ours_label: "`LocalBackend::clone_database`".into(),
        ours: times[0].clone(),
        peer_label: label.into(),
        peer: Some(times[k].clone()),
        target: None,
        note: note.into(),
    };
    rows.push(diag(
        "`cp` + fsync",
        2,
        "the durability d1ops gives snapshots",
    ));
    rows.push(diag(
        "read txn + `std::fs::copy` + fsync + rename",
        3,
        "what `snapshot` does (recovery points are fsynced)",
    ));
    rows.push(diag(
        "the online backup API, page by page, no fsync",
        4,
        "the fallback d1ops uses for WAL-mode sources",
    ));
    rows.push(diag(
        "backup API with the source memory-mapped, + fsync",
        5,
        "d1ops' loop plus `PRAGMA mmap_size` on the source",
    ));
    rows.push(diag(
        "read txn + `std::fs::copy` + rename, no fsync",
        6,
        "a hand-written equivalent of d1ops' preview path",
    ));
}

fn main() {
    let cfg = Config::from_env();
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let cli = sqlite3_cli();
    let bundled: String = Connection::open_in_memory()
        .unwrap()
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .unwrap();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .map_or("n/a".to_string(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    let load_before = loadavg();
    let busy_before = busy_processes();

    let mut rows = Vec::new();
    if cfg.wants("apply") {
        bench_apply(&cfg, &mut rows);
    }
    if cfg.wants("clone") {
        bench_clone(&cfg, &mut rows);
    }

    println!(
        "## d1ops lifecycle benchmarks{}\n",
        if cfg.quick { " (quick mode)" } else { "" }
    );
    println!(
        "- machine: {} CPUs, {mem} RAM, {} {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "- d1ops SQLite (bundled): {bundled}; `sqlite3` CLI: {}",
        cli.as_deref()
            .unwrap_or("not found (CLI comparison skipped)")
    );
    println!(
        "- runs per side: {} measured after 1 warm-up, alternating order; medians shown",
        cfg.runs
    );
    println!(
        "- load average before / after: {load_before} / {}",
        loadavg()
    );
    println!(
        "- other processes above 20 % CPU before / after: {busy_before} / {}",
        busy_processes()
    );
    println!("- data: {}\n", cfg.data_dir.display());
    println!("| case | d1ops | d1ops median | peer | peer median | ratio | target | verdict |");
    println!("|---|---|---:|---|---:|---:|---:|---|");
    for r in &rows {
        let ours = median(&r.ours);
        let (peer_med, ratio, verdict) = match &r.peer {
            Some(p) if !p.is_empty() => {
                let pm = median(p);
                let ratio = ours.as_secs_f64() / pm.as_secs_f64();
                let verdict = match r.target {
                    Some(t) if ratio <= t => "**met**".to_string(),
                    Some(_) => "**missed**".to_string(),
                    None => "info".to_string(),
                };
                (fmt_d(pm), format!("{ratio:.2}×"), verdict)
            }
            _ => ("—".into(), "—".into(), "skipped".into()),
        };
        let target = r.target.map_or("—".into(), |t| format!("≤ {t}×"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.case,
            r.ours_label,
            fmt_d(ours),
            r.peer_label,
            peer_med,
            ratio,
            target,
            verdict
        );
    }
    println!("\nSamples (ms) and notes:\n");
    for r in &rows {
        println!("- {} — d1ops: [{}]", r.case, fmt_samples(&r.ours));
        match &r.peer {
            Some(p) => println!("  - {}: [{}]; {}", r.peer_label, fmt_samples(p), r.note),
            None => println!("  - {}: {}", r.peer_label, r.note),
        }
    }
}
