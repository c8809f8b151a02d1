//! Metrics benchmark (issue 5): the ingest rate into the rollup store (JSON line → parse →
//! fingerprint → record, generated events over 200 fingerprints; target ≥ 200,000 events/s)
//! and one Monitor refresh (`series` + `top_queries`) over 30 days × 200 fingerprints of
//! rollups (target < 20 ms). The 30 days are laid out as `maintain` leaves them: per-minute
//! rollups for the last 7 days with per-fingerprint minutes dropped beyond 48 h, hourly and
//! daily rollups for the whole month.
//!
//! Plain `main` (harness = false), prints Markdown. Knobs: `--quick` or `D1OPS_BENCH_QUICK=1`
//! (fewer events, fewer repetitions). `cargo bench --bench metrics`.
use std::hint::black_box;
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

fn ingest(lines: &[String]) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    // Parse + fingerprint alone.
    let t = Instant::now();
    let mut parsed = Vec::with_capacity(lines.len());
    for l in lines {
        parsed.push(parse_line(l).expect("generated lines parse"));
    }
    let parse = t.elapsed();
    // Record alone (pre-parsed), into a fresh store.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = MetricsStore::open(dir.path()).expect("open");
    let t = Instant::now();
    for chunk in parsed.chunks(BATCH) {
        store.record(chunk).expect("record");
    }
    let record = t.elapsed();
    drop(store);
    // The whole pipeline into another fresh store: what `ingest FILE` does.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = MetricsStore::open(dir.path()).expect("open");
    let t = Instant::now();
    for chunk in lines.chunks(BATCH) {
        let events: Vec<_> = chunk.iter().filter_map(|l| parse_line(l).ok()).collect();
        store.record(&events).expect("record");
    }
    let total = t.elapsed();
    let n = lines.len();
    let fp_only = {
        let sample: Vec<String> = {
            let mut rng = Rng(7);
            (0..100_000)
                .map(|i| sql(&mut rng, i % FINGERPRINTS))
                .collect()
        };
        let t = Instant::now();
        for s in &sample {
            black_box(fingerprint(s));
        }
        rate(sample.len(), t.elapsed())
    };
    let ok = if rate(n, total) >= INGEST_TARGET {
        "✅"
    } else {
        "❌"
    };
    rows.push((
        format!("ingest {n} JSON lines (parse + fingerprint + record, batches of {BATCH})"),
        format!(
            "**{:.0} events/s** ({:.2} s)",
            rate(n, total),
            total.as_secs_f64()
        ),
        format!("≥ {INGEST_TARGET:.0} {ok}"),
    ));
    rows.push((
        "… parse_line alone (incl. fingerprint)".into(),
        format!("{:.0} lines/s", rate(n, parse)),
        String::new(),
    ));
    rows.push((
        "… fingerprint alone".into(),
        format!("{fp_only:.0} statements/s"),
        String::new(),
    ));
    rows.push((
        "… record alone (pre-parsed events)".into(),
        format!("{:.0} events/s", rate(n, record)),
        String::new(),
    ));
    rows
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
}

fn time(runs: usize, mut f: impl FnMut()) -> Timing {
    f(); // warm the page cache and statement cache
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1_000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Timing {
        median: at(0.5),
        p95: at(0.95),
        max: at(1.0),
    }
}

fn monitor(runs: usize) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = MetricsStore::open(dir.path()).expect("open");
    let now = Utc.with_ymd_and_hms(2025, 6, 30, 12, 34, 56).unwrap();
    let (written, took) = populate(&mut store, now);
    let size = std::fs::metadata(dir.path().join(d1ops::metrics::METRICS_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut rows = vec![(
        format!("populate: {written} rollups (30 d × {FINGERPRINTS} fingerprints) + maintain"),
        format!(
            "{:.1} s ({:.0} rollups/s), file {:.0} MB",
            took.as_secs_f64(),
            rate(written, took),
            size as f64 / 1e6
        ),
        String::new(),
    )];
    let prod = Some("production");
    let windows = [
        ("24 h", Duration::hours(24), Duration::minutes(5)),
        ("7 d", Duration::days(7), Duration::hours(1)),
        ("30 d", Duration::days(30), Duration::hours(1)),
    ];
    for (name, span, step) in windows {
        let from = now - span;
        let mut points = 0;
        let series = time(runs, || {
            points = black_box(store.series(prod, from, now, step).expect("series")).len();
        });
        let top = time(runs, || {
            black_box(
                store
                    .top_queries(prod, from, now, TopBy::TotalTime, 20)
                    .expect("top"),
            );
        });
        let both = time(runs, || {
            black_box(store.series(prod, from, now, step).expect("series"));
            black_box(
                store
                    .top_queries(prod, from, now, TopBy::TotalTime, 20)
                    .expect("top"),
            );
        });
        let p95 = time(runs, || {
            black_box(
                store
                    .top_queries(prod, from, now, TopBy::P95, 20)
                    .expect("top"),
            );
        });
        let ok = if both.p95 < MONITOR_TARGET_MS {
            "✅"
        } else {
            "❌"
        };
        let fmt = |t: &Timing| format!("{:.2} ms (p95 {:.2}, max {:.2})", t.median, t.p95, t.max);
        rows.push((
            format!("**Monitor refresh {name}**: series ({points} pts, step {} min) + top 20 by total time", step.num_minutes()),
            format!("**{}**", fmt(&both)),
            if name == "30 d" { format!("< {MONITOR_TARGET_MS} ms {ok}") } else { String::new() },
        ));
        rows.push((
            format!("… series {name} alone"),
            fmt(&series),
            String::new(),
        ));
        rows.push((
            format!("… top_queries {name} by total time alone"),
            fmt(&top),
            String::new(),
        ));
        rows.push((
            format!("… top_queries {name} by p95 alone"),
            fmt(&p95),
            String::new(),
        ));
    }
    rows
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("D1OPS_BENCH_QUICK").is_some();
    let (events, runs) = if quick { (200_000, 5) } else { (1_000_000, 30) };
    eprintln!("generating {events} JSON lines …");
    let lines = lines(events);
    let mut rows = ingest(&lines);
    drop(lines);
    eprintln!("populating 30 days of rollups …");
    rows.extend(monitor(runs));
    println!("## Metrics benchmark\n");
    println!(
        "{} CPU(s), release build, SQLite WAL on a temp dir; timings are the median (p95, max) of {runs} runs.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| measurement | result | target |\n|---|---|---|");
    for (what, result, target) in rows {
        println!("| {what} | {result} | {target} |");
    }
}
