//! Query metrics and capacity (issue 5, items 1, 3, 6) on a real SQLite file: percentiles
//! from rollups against exact ones, batch-order independence, top queries, the error ring,
//! retention, daily traffic, ingest lines, usage vs plans. Pure parts are unit tests:
//! histogram accuracy on 1M latencies and merge associativity in
//! `src/metrics/histogram/accuracy_tests.rs`, forecasts on synthetic series in
//! `src/metrics/forecast/tests.rs`.
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use d1ops::metrics::histogram::RELATIVE_ERROR;
use d1ops::metrics::usage::{
    LimitMetric, UsageSample, daily_totals, plan_status, projected_monthly_cost,
};
use d1ops::metrics::{MetricsSettings, MetricsStore, QueryError, QueryEvent, TopBy, parse_line};

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
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// Lognormal-ish latency around 4 ms with a 2 % slow tail up to 30 s.
    fn latency(&mut self) -> f64 {
        if self.unit() < 0.02 {
            200.0 + self.unit() * 30_000.0
        } else {
            (4f64.ln() + 0.9 * self.normal()).exp()
        }
    }
}

fn exact(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn assert_close(got: f64, want: f64, what: &str) {
    let err = (got - want).abs() / want;
    assert!(
        err <= RELATIVE_ERROR + 1e-12,
        "{what}: {got} vs exact {want} ({:.4} % > {:.4} %)",
        err * 100.0,
        RELATIVE_ERROR * 100.0
    );
}

fn at(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap() + Duration::minutes(min)
}

fn event(t: DateTime<Utc>, env: &str, sql: &str, ms: f64) -> QueryEvent {
    QueryEvent {
        at: t,
        env: env.into(),
        release: Some("r1".into()),
        fingerprint: d1ops::metrics::fingerprint(sql),
        duration_ms: ms,
        rows_read: 10,
        rows_written: 1,
        rows_returned: 2,
        error: None,
    }
}

fn failing(mut e: QueryEvent, msg: &str) -> QueryEvent {
    e.error = Some(QueryError {
        code: "SQLITE_ERROR".into(),
        message: msg.into(),
    });
    e
}

/// 3 hours of traffic over 20 fingerprints.
fn traffic(seed: u64, n: usize) -> Vec<QueryEvent> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t = at(0) + Duration::milliseconds((i as i64 * 3 * 3_600_000) / n as i64);
            let q = rng.next() % 20;
            let sql = format!("SELECT * FROM t{q} WHERE id = {}", rng.next() % 1000);
            event(
                t,
                "production",
                &sql,
                rng.latency() * (1.0 + q as f64 / 10.0),
            )
        })
        .collect()
}

#[test]
fn percentiles_from_rollups_match_the_exact_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    let events = traffic(3, 200_000);
    for batch in events.chunks(7_919) {
        store.record(batch).unwrap();
    }
    let mut all: Vec<f64> = events.iter().map(|e| e.duration_ms).collect();
    all.sort_by(f64::total_cmp);
    let w = store
        .window_stats(Some("production"), at(0), at(180))
        .unwrap();
    assert_eq!(w.count, 200_000);
    assert_close(w.p95.unwrap(), exact(&all, 0.95), "window p95");
    // Hourly buckets: each from the hour rows; per-minute: from minute rows.
    for step in [Duration::hours(1), Duration::minutes(10)] {
        let series = store.series(None, at(0), at(180), step).unwrap();
        assert_eq!(series.len() as i64, 180 / step.num_minutes());
        assert_eq!(series.iter().map(|p| p.count).sum::<u64>(), 200_000);
        for p in &series {
            let mut inside: Vec<f64> = events
                .iter()
                .filter(|e| e.at >= p.t && e.at < p.t + step)
                .map(|e| e.duration_ms)
                .collect();
            inside.sort_by(f64::total_cmp);
            assert_eq!(p.count as usize, inside.len());
            assert_close(p.p50.unwrap(), exact(&inside, 0.5), "bucket p50");
            assert_close(p.p99.unwrap(), exact(&inside, 0.99), "bucket p99");
            assert!((p.qps - p.count as f64 / step.num_seconds() as f64).abs() < 1e-9);
        }
    }
    // Reopening the file reads the same rollups.
    drop(store);
    let store = MetricsStore::open(dir.path()).unwrap();
    let again = store.window_stats(None, at(0), at(180)).unwrap();
    assert_eq!(again, w);
}

#[test]
fn batch_boundaries_do_not_change_rollups() {
    let events = traffic(5, 20_000);
    let read = |batches: &[&[QueryEvent]]| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        for b in batches {
            store.record(b).unwrap();
        }
        let top = store
            .top_queries(None, at(0), at(180), TopBy::TotalTime, 100)
            .unwrap();
        let series = store
            .series(None, at(0), at(180), Duration::minutes(1))
            .unwrap();
        (top, series)
    };
    let (first, rest) = events.split_at(12_345);
    let mut reversed = events.clone();
    reversed.reverse();
    let one = read(&[&events]);
    assert_eq!(one.0.len(), 20);
    let two = read(&[rest, first]);
    let rev = read(&[&reversed]);
    for other in [two, rev] {
        assert_eq!(other.1, one.1);
        for (a, b) in one.0.iter().zip(&other.0) {
            assert_eq!(
                (&a.fingerprint_id, a.count, a.p95),
                (&b.fingerprint_id, b.count, b.p95)
            );
            assert!((a.total_ms - b.total_ms).abs() < 1e-6 * a.total_ms);
        }
    }
}

#[test]
fn top_queries_by_each_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    let mut events = Vec::new();
    for i in 0..100 {
        events.push(event(
            at(i % 60),
            "production",
            &format!("SELECT * FROM a WHERE x = {i}"),
            1.0,
        ));
    }
    for i in 0..10 {
        let mut e = event(at(5), "production", "SELECT * FROM slow", 500.0 + i as f64);
        e.rows_read = 1_000_000;
        events.push(e);
    }
    events.push(failing(
        event(at(7), "production", "INSERT INTO b VALUES (1)", 2.0),
        "boom",
    ));
    events.push(event(
        at(7),
        "preview-1",
        "SELECT * FROM only_preview",
        9_000.0,
    ));
    store.record(&events).unwrap();
    let top = |order, env| {
        store
            .top_queries(env, at(0), at(60), order, 10)
            .unwrap()
            .into_iter()
            .map(|q| q.text)
            .collect::<Vec<_>>()
    };
    let prod = Some("production");
    assert_eq!(top(TopBy::TotalTime, prod)[0], "SELECT * FROM slow");
    assert_eq!(top(TopBy::P95, prod)[0], "SELECT * FROM slow");
    assert_eq!(top(TopBy::RowsRead, prod)[0], "SELECT * FROM slow");
    assert_eq!(top(TopBy::Errors, prod), vec!["INSERT INTO b VALUES (?)"]);
    assert_eq!(top(TopBy::P95, None)[0], "SELECT * FROM only_preview");
    let stats = store
        .top_queries(prod, at(0), at(60), TopBy::TotalTime, 1)
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].count, stats[0].rows_read), (10, 10_000_000));
    assert!((stats[0].total_ms - 5_045.0).abs() < 1e-9);
    assert_eq!(
        stats[0].fingerprint_id,
        d1ops::metrics::fingerprint_id("SELECT * FROM slow")
    );
    assert!(
        store
            .top_queries(prod, at(60), at(120), TopBy::TotalTime, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_error_ring_keeps_the_newest_and_drops_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MetricsSettings {
        error_capacity: 10,
        ..MetricsSettings::default()
    };
    let mut store = MetricsStore::open_with(dir.path(), settings).unwrap();
    for batch in 0..3 {
        let events: Vec<QueryEvent> = (0..9)
            .map(|i| {
                let n = batch * 9 + i;
                let env = if n % 2 == 0 {
                    "production"
                } else {
                    "preview-1"
                };
                failing(event(at(n), env, "SELECT ?", 1.0), &format!("error {n}"))
            })
            .collect();
        store.record(&events).unwrap();
    }
    let errors = store.recent_errors(None, 100).unwrap();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    let want: Vec<String> = (17..27).rev().map(|n| format!("error {n}")).collect();
    assert_eq!(messages, want);
    assert_eq!(errors[0].text, "SELECT ?");
    assert_eq!(errors[0].release.as_deref(), Some("r1"));
    let prod = store.recent_errors(Some("production"), 2).unwrap();
    assert_eq!(prod.len(), 2);
    assert!(prod.iter().all(|e| e.env == "production"));
    let w = store.window_stats(None, at(0), at(60)).unwrap();
    assert_eq!((w.count, w.errors, w.error_rate), (27, 27, 1.0));
}

#[test]
fn maintain_downsamples_and_applies_retention_without_losing_totals() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    // One query a minute per fingerprint for 10 days.
    let mut rng = Rng(9);
    let events: Vec<QueryEvent> = (0..10 * 1_440)
        .flat_map(|m| {
            let ms = rng.latency();
            [0, 1].map(|q| event(at(m), "production", &format!("SELECT {q} FROM t{q}"), ms))
        })
        .collect();
    store.record(&events).unwrap();
    let now = at(10 * 1_440) + Duration::minutes(17);
    let window =
        |s: &MetricsStore, from: i64, to: i64| s.window_stats(None, at(from), at(to)).unwrap();
    let top = |s: &MetricsStore, from: i64| {
        s.top_queries(None, at(from), now, TopBy::TotalTime, 10)
            .unwrap()
    };
    let before = (window(&store, 0, 14_400), top(&store, 0), top(&store, 90));
    let report = store.maintain(now).unwrap();
    // Per-fingerprint minutes older than 48 h, environment minutes older than 7 days.
    assert_eq!(report.minute_rows, 2 * 8 * 1_440 + 3 * 1_440);
    assert_eq!((report.hour_rows, report.day_rows), (0, 0));
    assert_eq!(store.maintain(now).unwrap().minute_rows, 0, "idempotent");
    assert_eq!(window(&store, 0, 14_400), before.0);
    assert_eq!(top(&store, 0), before.1);
    // A window starting at minute 90 of old data now counts its whole first hour.
    let widened = top(&store, 90);
    assert_eq!(widened[0].count, before.2[0].count + 30);
    // Old minute-step series come back hourly; recent ones stay per minute.
    let old = store
        .series(None, at(0), at(240), Duration::minutes(5))
        .unwrap();
    assert_eq!(old.len(), 4);
    assert_eq!(old[1].t - old[0].t, Duration::hours(1));
    assert_eq!(old[0].count, 120);
    let recent = store
        .series(None, now - Duration::hours(1), now, Duration::minutes(5))
        .unwrap();
    assert_eq!(recent[1].t - recent[0].t, Duration::minutes(5));
    // Hour, day and week retention: 400 days after 2025-03-13, days before it are gone; the
    // week of Monday 03-10 stays until all of its days have gone.
    let later = now + Duration::days(400) + Duration::days(2);
    let report = store.maintain(later).unwrap();
    assert!(report.hour_rows > 0 && report.day_rows > 0 && report.week_rows > 0);
    assert_eq!(window(&store, 0, 9 * 1_440).count, 0);
    assert_eq!(report.fingerprints, 0, "still named by the week of 03-10");
    let report = store.maintain(later + Duration::days(7)).unwrap();
    assert_eq!(
        (report.week_rows, report.fingerprints),
        (3, 2),
        "2 fingerprints + 1 env"
    );
    assert_eq!(window(&store, 0, 14_400).count, 0);
}

#[test]
fn daily_traffic_per_environment_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    let mut events = Vec::new();
    for day in 0..3 {
        for i in 0..=day {
            events.push(event(at(day * 1_440 + i), "production", "SELECT 1", 1.0));
        }
        events.push(event(at(day * 1_440 + 5), "preview-1", "SELECT 1", 1.0));
    }
    store.record(&events).unwrap();
    let d = |n: u32| NaiveDate::from_ymd_opt(2025, 3, n).unwrap();
    let prod = store.daily(Some("production"), d(1), d(3)).unwrap();
    assert_eq!(
        prod.iter().map(|t| t.queries).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(prod[2].day, d(3));
    assert_eq!((prod[2].rows_read, prod[2].rows_written), (30, 3));
    let all = store.daily(None, d(2), d(9)).unwrap();
    assert_eq!(
        all.iter().map(|t| t.queries).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(
        store.environments().unwrap(),
        vec!["preview-1", "production"]
    );
}

#[test]
fn ingested_lines_feed_the_store_and_bad_lines_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    let input = r#"{"at":"2025-03-01T00:00:01Z","sql":"select * from users where id = 1","duration_ms":2}
{"at":"2025-03-01T00:00:02Z","sql":"SELECT * FROM users WHERE id=2","duration_ms":4,"error":"no such table: users"}
{"at":"2025-03-01T00:00:03Z","duration_ms":4}
not json
{"at":1740787204000,"fingerprint":"SELECT * FROM users WHERE id = ?","duration":6,"env":"preview-1"}"#;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in input.lines().enumerate() {
        match parse_line(line) {
            Ok(e) => good.push(e),
            Err(why) => bad.push((n + 1, why)),
        }
    }
    assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![3, 4]);
    store.record(&good).unwrap();
    let top = store
        .top_queries(None, at(0), at(1), TopBy::TotalTime, 10)
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!((top[0].count, top[0].errors), (3, 1));
    assert_eq!(
        store.recent_errors(None, 5).unwrap()[0].message,
        "no such table: users"
    );
}

#[test]
fn usage_history_joins_samples_with_traffic_and_meets_the_plans() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    let d = |n: u32| NaiveDate::from_ymd_opt(2025, 3, n).unwrap();
    let sample = |day, env: &str, mb: u64| UsageSample {
        day,
        env: env.into(),
        storage_bytes: mb * 1_000_000,
        databases: 1,
    };
    store
        .record_usage(&sample(d(1), "production", 999))
        .unwrap();
    store
        .record_usage(&sample(d(1), "production", 100))
        .unwrap(); // replaces
    store.record_usage(&sample(d(1), "preview-1", 40)).unwrap();
    store
        .record_usage(&sample(d(3), "production", 300))
        .unwrap();
    let mut events = Vec::new();
    for day in 0..3 {
        let mut e = event(at(day * 1_440 + 60), "production", "SELECT 1", 1.0);
        e.rows_read = 2_000_000;
        e.rows_written = 50_000;
        events.push(e);
    }
    store.record(&events).unwrap();
    let usage = store.usage_history(d(1), d(3)).unwrap();
    let rows: Vec<(u32, &str, u64, u64)> = usage
        .iter()
        .map(|u| {
            use chrono::Datelike;
            (
                u.day.day(),
                u.env.as_str(),
                u.storage_bytes / 1_000_000,
                u.queries,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "preview-1", 40, 0),
            (1, "production", 100, 1),
            (2, "production", 100, 1), // carried forward
            (3, "production", 300, 1),
        ]
    );
    assert_eq!(
        store.usage_history(d(2), d(2)).unwrap()[0].storage_bytes,
        100_000_000
    );
    let totals = daily_totals(&usage);
    assert_eq!(totals[0].storage_bytes, 140_000_000);
    assert_eq!(totals[0].databases, 2);

    let free = d1ops::plans::builtin("d1-free").unwrap();
    let status = plan_status(&free, &usage);
    let get = |m| status.iter().find(|s| s.metric == m).unwrap();
    assert_eq!(get(LimitMetric::DatabaseSize).used, 300_000_000);
    assert!((get(LimitMetric::DatabaseSize).share - 0.6).abs() < 1e-12);
    assert!((get(LimitMetric::RowsReadPerDay).share - 0.4).abs() < 1e-12);
    assert!((get(LimitMetric::RowsWrittenPerDay).share - 0.5).abs() < 1e-12);
    assert_eq!(get(LimitMetric::Databases).used, 1);
    assert!(
        !status
            .iter()
            .any(|s| s.metric == LimitMetric::RowsReadPerMonth)
    );
    assert_eq!(projected_monthly_cost(&free, &usage), None);

    let paid = d1ops::plans::builtin("workers-paid").unwrap();
    let status = plan_status(&paid, &usage);
    let month = status
        .iter()
        .find(|s| s.metric == LimitMetric::RowsWrittenPerMonth)
        .unwrap();
    assert_eq!(month.used, 150_000);
    // 150k writes in 3 days → 1.55M in March: within 50M included; 6M reads → 62M: within
    // 25B; 300 MB within 5 GB. No overage yet.
    assert_eq!(projected_monthly_cost(&paid, &usage), Some(0.0));
    let heavy: Vec<_> = usage
        .iter()
        .map(|u| d1ops::metrics::usage::UsageDay {
            rows_written: u.rows_written * 1_000,
            storage_bytes: u.storage_bytes * 100,
            ..u.clone()
        })
        .collect();
    // 50M writes/day × 31 days = 1,550M − 50M included = 1,500M × $1 per M; 30 GB − 5 GB × $0.75.
    let cost = projected_monthly_cost(&paid, &heavy).unwrap();
    let want = 1_500.0 + 0.0 + 25.0 * 0.75 + (62_000_000.0_f64 - 25e9).max(0.0);
    assert!((cost - want).abs() < 1e-6, "{cost} vs {want}");
}

/// Issue 16 item 3: d1ops' own statements (rolled up under `<env>@d1ops`) stay out of the
/// app's series, totals, top queries and environment list unless asked for, and usage keeps
/// counting them while saying how much was d1ops'.
#[test]
fn d1ops_own_statements_are_apart_from_the_app_but_counted_in_usage() {
    use d1ops::metrics::source::d1ops_env;
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetricsStore::open(dir.path()).unwrap();
    let t = at(10);
    let mut app = event(t, "production", "SELECT * FROM users WHERE id = 1", 2.0);
    app.rows_read = 1;
    let mut own = event(
        t,
        &d1ops_env("production"),
        "SELECT name FROM d1_migrations",
        1.0,
    );
    own.rows_read = 5;
    store.record(&[app, own.clone(), own]).unwrap();
    let (from, to) = (at(0), at(60));
    let top = store
        .top_queries(Some("production"), from, to, TopBy::TotalTime, 10)
        .unwrap();
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0].source, "app");
    assert_eq!(
        store
            .window_stats(Some("production"), from, to)
            .unwrap()
            .count,
        1
    );
    assert_eq!(store.window_stats(None, from, to).unwrap().count, 1);
    assert_eq!(
        store.environments().unwrap(),
        vec!["production".to_string()]
    );
    let store = store.including_d1ops(true);
    let top = store
        .top_queries(Some("production"), from, to, TopBy::TotalTime, 10)
        .unwrap();
    assert_eq!(top.len(), 2, "{top:?}");
    assert!(
        top.iter().any(|q| q.source == "d1ops" && q.count == 2),
        "{top:?}"
    );
    assert_eq!(
        store
            .window_stats(Some("production"), from, to)
            .unwrap()
            .count,
        3
    );
    let day = t.date_naive();
    let usage = store.usage_history(day, day).unwrap();
    let prod = usage.iter().find(|u| u.env == "production").unwrap();
    assert_eq!((prod.queries, prod.rows_read), (3, 11), "{prod:?}");
    assert_eq!(
        (prod.d1ops.queries, prod.d1ops.rows_read),
        (2, 10),
        "{prod:?}"
    );
    assert_eq!(usage.len(), 1, "no separate d1ops environment: {usage:?}");
}
