//! Metrics benchmark (issue 5): the ingest rate into the rollup store (JSON line → parse →
//! fingerprint → record, generated events over 200 fingerprints; target ≥ 200,000 events/s)
//! and one Monitor refresh (`series` + `top_queries`) over 30 days × 200 fingerprints of
//! rollups (target < 20 ms). The 30 days are laid out as `maintain` leaves them: per-minute
//! rollups for the last 7 days with per-fingerprint minutes dropped beyond 48 h, hourly and
//! daily rollups for the whole month.
//!
//! Plain `main` (harness = false), prints Markdown. The populated store (~30 s to build) is
//! cached in `target/bench-data/metrics-monitor` and rebuilt when `MONITOR_DATA_VERSION`
//! changes. Knobs: `--quick` or `D1OPS_BENCH_QUICK=1` (fewer events, fewer repetitions),
//! `--monitor` (only the monitor), `--ingest` (only ingest), `D1OPS_BENCH_DATA=DIR`. `cargo bench --bench metrics`.
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, TimeZone, Utc};
use d1ops::metrics::{Histogram, MetricsStore, Resolution, Rollup, TopBy, fingerprint, parse_line};

const FINGERPRINTS: usize = 200;
const BATCH: usize = 10_000;
const INGEST_TARGET: f64 = 200_000.0;
const MONITOR_TARGET_MS: f64 = 20.0;

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Lognormal-ish latency (median `median` ms) with a 1 % tail up to 2 s.
    fn latency(&mut self, median: f64) -> f64 {
        if self.unit() < 0.01 {
            return 100.0 + self.unit() * 1_900.0;
        }
        let (u, v) = (self.unit().max(1e-300), self.unit());
        let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
        median * (0.8 * z).exp()
    }
}

/// One of 200 statement shapes (10 shapes × 20 tables), with fresh literal values.
fn sql(rng: &mut Rng, q: usize) -> String {
    let t = format!("table_{}", q / 10);
    let n = rng.below(100_000);
    match q % 10 {
        0 => format!("SELECT id, name, email FROM {t} WHERE id = {n}"),
        1 => format!("SELECT * FROM {t} WHERE owner_id = {n} ORDER BY created_at DESC LIMIT 20"),
        2 => format!("select count(*) from {t} where status = 'active-{n}'"),
        3 => format!(
            "INSERT INTO {t} (owner_id, kind, payload) VALUES ({n}, 'k{n}', '{{\"n\": {n}}}')"
        ),
        4 => format!("UPDATE {t} SET updated_at = {n}, status = 'done' WHERE id = {n}"),
        5 => format!("DELETE FROM {t} WHERE id = {n}"),
        6 => format!(
            "SELECT a.id, b.total FROM {t} a JOIN orders b ON b.user_id = a.id WHERE a.id IN ({n}, {}, {})",
            n + 1,
            n + 2
        ),
        7 => format!(
            "SELECT * FROM {t}\n  WHERE created_at BETWEEN {n} AND {} /* dashboard */",
            n + 9
        ),
        8 => format!("SELECT id FROM {t} WHERE email = ?1 -- login {n}"),
        _ => {
            format!("SELECT sum(amount) FROM {t} WHERE user_id = :user AND day > {n} GROUP BY day")
        }
    }
}

/// `n` JSON lines over one hour, 90 % production, 1 % errors, a fifth with epoch-ms times.
fn lines(n: usize) -> Vec<String> {
    let mut rng = Rng(42);
    let start = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let q = rng.below(FINGERPRINTS as u64) as usize;
            let at = start + Duration::microseconds((i as i64 * 3_600_000_000) / n as i64);
            let at = if i % 5 == 0 {
                serde_json::json!(at.timestamp_millis())
            } else {
                serde_json::json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            };
            let mut line = serde_json::json!({
                "at": at,
                "env": if rng.below(10) == 0 { "preview-01j9" } else { "production" },
                "release": "01J9Z3K4X7",
                "sql": sql(&mut rng, q),
                "duration_ms": rng.latency(1.0 + (q % 17) as f64),
                "rows_read": rng.below(500),
                "rows_written": if q % 10 >= 3 && q % 10 <= 5 { 1 } else { 0 },
                "rows_returned": rng.below(20),
            });
            if rng.below(100) == 0 {
                line["error"] = serde_json::json!({"code": "SQLITE_CONSTRAINT", "message": "UNIQUE constraint failed"});
            }
            line.to_string()
        })
        .collect()
}

fn rate(n: usize, d: StdDuration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// A Markdown table row: measurement, result, target.
type Row = (String, String, String);

fn row(what: impl Into<String>, result: impl Into<String>, target: impl Into<String>) -> Row {
    (what.into(), result.into(), target.into())
}

fn ingest(lines: &[String], runs: usize) -> Vec<Row> {
    let n = lines.len();
    // The whole pipeline, as `ingest FILE` runs it, each run into a fresh store.
    let mut totals: Vec<StdDuration> = (0..runs)
        .map(|_| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store = MetricsStore::open(dir.path()).expect("open");
            let t = Instant::now();
            for chunk in lines.chunks(BATCH) {
                let events: Vec<_> = chunk.iter().filter_map(|l| parse_line(l).ok()).collect();
                store.record(&events).expect("record");
            }
            t.elapsed()
        })
        .collect();
    totals.sort();
    let total = totals[totals.len() / 2];
    // The parts: parse (with fingerprint), fingerprint alone, record of parsed events.
    let t = Instant::now();
    let parsed: Vec<_> = lines.iter().filter_map(|l| parse_line(l).ok()).collect();
    let parse = t.elapsed();
    let mut rng = Rng(7);
    let statements: Vec<String> = (0..100_000)
        .map(|i| sql(&mut rng, i % FINGERPRINTS))
        .collect();
    let t = Instant::now();
    statements
        .iter()
        .for_each(|s| drop(black_box(fingerprint(s))));
    let fingerprint_rate = rate(statements.len(), t.elapsed());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = MetricsStore::open(dir.path()).expect("open");
    let t = Instant::now();
    parsed
        .chunks(BATCH)
        .for_each(|c| store.record(c).expect("record"));
    let record = t.elapsed();
    let ok = if rate(n, total) >= INGEST_TARGET {
        "✅"
    } else {
        "❌"
    };
    vec![
        row(
            format!("ingest {n} JSON lines (parse + fingerprint + record, batches of {BATCH})"),
            format!(
                "**{:.0} events/s** (median of {runs}; {:.2} s)",
                rate(n, total),
                total.as_secs_f64()
            ),
            format!("≥ {INGEST_TARGET:.0} {ok}"),
        ),
        row(
            "… parse_line alone (incl. fingerprint)",
            format!("{:.0} lines/s", rate(n, parse)),
            "",
        ),
        row(
            "… fingerprint alone",
            format!("{fingerprint_rate:.0} statements/s"),
            "",
        ),
        row(
            "… record alone (pre-parsed events)",
            format!("{:.0} events/s", rate(n, record)),
            "",
        ),
    ]
}

fn histogram(rng: &mut Rng, samples: usize, median: f64) -> Histogram {
    let mut h = Histogram::new();
    for _ in 0..samples {
        h.record(rng.latency(median));
    }
    h
}

fn rollup(rng: &mut Rng, start: i64, res: Resolution, q: usize, samples: usize) -> Rollup {
    let histogram = histogram(rng, samples, 1.0 + (q % 17) as f64);
    let count = histogram.count();
    Rollup {
        start: DateTime::from_timestamp(start, 0).unwrap_or_default(),
        resolution: res,
        env: "production".into(),
        fingerprint: format!("SELECT * FROM table_{} WHERE c{} = ?", q / 10, q % 10),
        count,
        errors: u64::from(rng.below(50) == 0),
        sum_ms: 3.0 * count as f64,
        rows_read: 40 * count,
        rows_written: count / 10,
        rows_returned: 5 * count,
        histogram,
    }
}

/// 30 days × 200 fingerprints: hours for days 30–7, minutes for the last 7 days, then
/// `maintain` (drops per-fingerprint minutes beyond 48 h).
fn populate(store: &mut MetricsStore, now: DateTime<Utc>) -> (usize, StdDuration) {
    let mut rng = Rng(3);
    let end = Resolution::Minute.floor(now.timestamp());
    let minutes_from = Resolution::Hour.floor(end - 7 * 86_400);
    let start = Resolution::Hour.floor(end - 30 * 86_400);
    let t = Instant::now();
    let mut written = 0;
    for hour in (start..minutes_from).step_by(3_600) {
        let batch: Vec<Rollup> = (0..FINGERPRINTS)
            .map(|q| rollup(&mut rng, hour, Resolution::Hour, q, 120))
            .collect();
        written += batch.len();
        store.record_rollups(&batch).expect("record hours");
    }
    for hour in (minutes_from..end).step_by(3_600) {
        let mut batch = Vec::with_capacity(60 * FINGERPRINTS);
        for minute in (hour..(hour + 3_600).min(end)).step_by(60) {
            for q in 0..FINGERPRINTS {
                batch.push(rollup(&mut rng, minute, Resolution::Minute, q, 8));
            }
        }
        written += batch.len();
        store.record_rollups(&batch).expect("record minutes");
    }
    store.maintain(now).expect("maintain");
    (written, t.elapsed())
}

struct Timing {
    median: f64,
    p95: f64,
    max: f64,
    /// Median CPU time of this thread: what the work costs when the machine is shared.
    cpu: f64,
}

/// This thread's CPU time in milliseconds.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn time(runs: usize, mut f: impl FnMut()) -> Timing {
    f(); // warm the page cache and statement cache
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_ms());
        f();
        cpu.push(cpu_ms() - c);
        wall.push(t.elapsed().as_secs_f64() * 1_000.0);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let at = |v: &[f64], q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Timing {
        median: at(&wall, 0.5),
        p95: at(&wall, 0.95),
        max: at(&wall, 1.0),
        cpu: at(&cpu, 0.5),
    }
}

/// Bump when the populated layout changes, so a cached store is rebuilt.
const MONITOR_DATA_VERSION: &str = "metrics-monitor-5";

fn data_dir() -> PathBuf {
    std::env::var_os("D1OPS_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .map(|t| t.join("bench-data"))
                .unwrap_or_else(|| PathBuf::from("target/bench-data"))
        })
        .join("metrics-monitor")
}

fn monitor(runs: usize) -> Vec<Row> {
    let dir = data_dir();
    let stamp = dir.join("version");
    let now = Utc.with_ymd_and_hms(2025, 6, 30, 12, 34, 56).unwrap();
    let cached = std::fs::read_to_string(&stamp).is_ok_and(|v| v == MONITOR_DATA_VERSION);
    let mut rows = Vec::new();
    if !cached {
        eprintln!("populating 30 days of rollups into {} …", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = MetricsStore::open(&dir).expect("open");
        let (written, took) = populate(&mut store, now);
        drop(store);
        std::fs::write(&stamp, MONITOR_DATA_VERSION).expect("stamp");
        let size = std::fs::metadata(dir.join(d1ops::metrics::METRICS_FILE)).map_or(0, |m| m.len());
        rows.push(row(
            format!("populate: {written} rollups (30 d × {FINGERPRINTS} fingerprints) + maintain"),
            format!(
                "{:.1} s ({:.0} rollups/s), file {:.0} MB",
                took.as_secs_f64(),
                rate(written, took),
                size as f64 / 1e6
            ),
            "",
        ));
    }
    let store = MetricsStore::open(&dir).expect("open");
    let prod = Some("production");
    let windows = [
        ("24 h", Duration::hours(24), Duration::minutes(5)),
        ("7 d", Duration::days(7), Duration::hours(1)),
        ("30 d", Duration::days(30), Duration::hours(1)),
    ];
    let fmt = |t: &Timing| {
        let (m, p, x, c) = (t.median, t.p95, t.max, t.cpu);
        format!("{m:.2} ms (p95 {p:.2}, max {x:.2}; CPU {c:.2})")
    };
    for (name, span, step) in windows {
        let from = now - span;
        let points = store.series(prod, from, now, step).expect("series").len();
        let series = || black_box(store.series(prod, from, now, step).expect("series"));
        let top = |by| black_box(store.top_queries(prod, from, now, by, 20).expect("top"));
        let alone = time(runs, || drop(series()));
        let by_time = time(runs, || drop(top(TopBy::TotalTime)));
        let by_p95 = time(runs, || drop(top(TopBy::P95)));
        let both = time(runs, || drop((series(), top(TopBy::TotalTime))));
        let target = match (name, both.p95 < MONITOR_TARGET_MS) {
            ("30 d", true) => format!("< {MONITOR_TARGET_MS} ms (p95) ✅"),
            ("30 d", false) => format!("< {MONITOR_TARGET_MS} ms (p95) ❌"),
            _ => String::new(),
        };
        let minutes = step.num_minutes();
        let what = format!(
            "**Monitor refresh {name}**: series ({points} pts, step {minutes} min) + top 20 by total time"
        );
        rows.push(row(what, format!("**{}**", fmt(&both)), target));
        rows.push(row(format!("… series {name} alone"), fmt(&alone), ""));
        rows.push(row(
            format!("… top_queries {name} by total time"),
            fmt(&by_time),
            "",
        ));
        rows.push(row(
            format!("… top_queries {name} by p95"),
            fmt(&by_p95),
            "",
        ));
    }
    rows
}

fn main() {
    let arg = |a: &str| std::env::args().any(|x| x == a);
    let quick = arg("--quick") || std::env::var_os("D1OPS_BENCH_QUICK").is_some();
    let (events, runs) = if quick { (200_000, 5) } else { (1_000_000, 30) };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let mut rows = Vec::new();
    if !arg("--monitor") {
        eprintln!("generating {events} JSON lines …");
        rows.extend(ingest(&lines(events), if quick { 1 } else { 3 }));
    }
    if !arg("--ingest") {
        rows.extend(monitor(runs));
    }
    println!("## Metrics benchmark\n");
    println!(
        "{} CPU(s), load average {load} at start; release build, SQLite WAL. Query timings: \
         wall-clock median (p95, max) of {runs} runs, and the median CPU time of the calling \
         thread.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!("| measurement | result | target |\n|---|---|---|");
    for (what, result, target) in rows {
        println!("| {what} | {result} | {target} |");
    }
}
