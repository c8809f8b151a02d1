use chrono::{Duration, TimeZone};

use super::*;
use crate::{TopBy, fingerprint};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).single().unwrap()
}

fn rollup(minute: i64, sql: &str, count: u64, ms: f64) -> Rollup {
    Rollup {
        start: t0() + Duration::minutes(minute),
        resolution: Resolution::Minute,
        env: "production".into(),
        fingerprint: fingerprint(sql),
        count,
        errors: 0,
        sum_ms: ms * count as f64,
        rows_read: 10 * count,
        rows_written: 0,
        rows_returned: count,
        histogram: Histogram::from_summary(count, ms * count as f64, ms, ms, ms),
    }
}

/// A pull of `rollups` for `[t0 + from, t0 + to)` minutes, settled up to `settled`.
fn pull(from: i64, to: i64, settled: i64, rollups: Vec<Rollup>) -> AnalyticsBatch {
    AnalyticsBatch {
        pulls: vec![DatabasePull {
            cursor: SyncCursor {
                database_id: "db-1".into(),
                env: "production".into(),
                settled_to: t0() + Duration::minutes(settled),
                days_from: t0().date_naive(),
                newest_bucket: Some(t0() + Duration::minutes(to - 1)),
                synced_at: t0() + Duration::minutes(to),
            },
            from: t0() + Duration::minutes(from),
            to: t0() + Duration::minutes(to),
            rollups,
        }],
        ..AnalyticsBatch::default()
    }
}

fn store() -> (tempfile::TempDir, MetricsStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricsStore::open(dir.path()).unwrap();
    (dir, store)
}

/// (count, total ms, rows read) over the hour after t0, from the minute tier, and the hour,
/// day and week tiers read through `top_queries`.
fn totals(s: &MetricsStore) -> Vec<(u64, u64, u64)> {
    let minutes = s
        .window_stats(Some("production"), t0(), t0() + Duration::hours(1))
        .unwrap();
    let day = s
        .top_queries(
            Some("production"),
            t0() - Duration::hours(12),
            t0() + Duration::days(7),
            TopBy::TotalTime,
            10,
        )
        .unwrap();
    let mut out = vec![(minutes.count, 0, 0)];
    out.extend(
        day.iter()
            .map(|q| (q.count, q.total_ms.round() as u64, q.rows_read)),
    );
    out
}

#[test]
fn applying_the_same_pull_twice_counts_once() {
    let (_d, mut s) = store();
    let batch = pull(
        0,
        10,
        5,
        vec![
            rollup(1, "SELECT 1", 3, 2.0),
            rollup(7, "SELECT 1", 4, 2.0),
            rollup(8, "select 2", 1, 9.0),
        ],
    );
    let first = s.apply_analytics(&batch).unwrap();
    assert_eq!(first.added, 3);
    let once = totals(&s);
    let second = s.apply_analytics(&batch).unwrap();
    assert_eq!(
        second,
        ApplyReport {
            unchanged: 2,
            ..ApplyReport::default()
        },
        "the two tentative buckets were fetched again unchanged"
    );
    assert_eq!(totals(&s), once);
    assert_eq!(once[0].0, 8);
}

#[test]
fn a_bucket_fetched_again_replaces_what_was_recorded() {
    let (_d, mut s) = store();
    s.apply_analytics(&pull(
        0,
        10,
        5,
        vec![
            rollup(2, "SELECT 1", 3, 2.0),
            rollup(6, "SELECT 1", 3, 2.0),
            rollup(9, "SELECT 2", 2, 5.0),
        ],
    ))
    .unwrap();
    // The next sync starts at the cursor (minute 5): minute 6 grew, minute 9 vanished,
    // minute 12 is new.
    let report = s
        .apply_analytics(&pull(
            5,
            15,
            10,
            vec![
                rollup(6, "SELECT 1", 5, 3.0),
                rollup(12, "SELECT 1", 1, 2.0),
            ],
        ))
        .unwrap();
    assert_eq!(
        report,
        ApplyReport {
            added: 1,
            replaced: 1,
            removed: 1,
            unchanged: 0
        }
    );
    let stats = s
        .window_stats(Some("production"), t0(), t0() + Duration::hours(1))
        .unwrap();
    assert_eq!(stats.count, 3 + 5 + 1);
    let top = s
        .top_queries(
            None,
            t0() - Duration::days(1),
            t0() + Duration::days(8),
            TopBy::TotalTime,
            5,
        )
        .unwrap();
    assert_eq!(top.len(), 1, "SELECT 2 left every tier: {top:?}");
    assert_eq!(top[0].count, 9);
    assert!((top[0].total_ms - (6.0 + 15.0 + 2.0)).abs() < 1e-9);
    let day = s.daily(None, t0().date_naive(), t0().date_naive()).unwrap();
    assert_eq!((day[0].queries, day[0].rows_read), (9, 90));
    // Minute 6 is now before the cursor (10): final, out of the ledger.
    let left: i64 = s
        .conn
        .query_row("SELECT count(*) FROM d1_ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1, "only minute 12 may still change");
}

#[test]
fn cursors_and_status_round_trip() {
    let (_d, mut s) = store();
    assert!(s.sync_cursors().unwrap().is_empty());
    assert_eq!(s.analytics_status().unwrap(), AnalyticsStatus::default());
    s.apply_analytics(&pull(0, 10, 5, vec![rollup(3, "SELECT 1", 1, 1.0)]))
        .unwrap();
    let c = &s.sync_cursors().unwrap()[0];
    assert_eq!(c.settled_to, t0() + Duration::minutes(5));
    assert_eq!(c.newest_bucket, Some(t0() + Duration::minutes(9)));
    // A later pull without a newest bucket keeps the one known.
    let mut quiet = pull(5, 20, 15, Vec::new());
    quiet.pulls[0].cursor.newest_bucket = None;
    s.apply_analytics(&quiet).unwrap();
    let c = &s.sync_cursors().unwrap()[0];
    assert_eq!(c.newest_bucket, Some(t0() + Duration::minutes(9)));
    let status = AnalyticsStatus {
        attempted_at: Some(t0()),
        synced_at: Some(t0()),
        blocked_until: None,
        outcome: Some("synced".into()),
        message: None,
    };
    s.set_analytics_status(&status).unwrap();
    assert_eq!(s.analytics_status().unwrap(), status);
}

#[test]
fn the_call_log_enforces_the_budget_per_window() {
    let (_d, mut s) = store();
    let window = Duration::minutes(5);
    assert_eq!(s.take_graphql_call(t0(), 2, window).unwrap(), Ok(1));
    let later = t0() + Duration::seconds(30);
    assert_eq!(s.take_graphql_call(later, 2, window).unwrap(), Ok(2));
    let spent = s
        .take_graphql_call(later, 2, window)
        .unwrap()
        .expect_err("third call refused");
    assert_eq!((spent.used, spent.limit), (2, 2));
    assert_eq!(spent.free_at, t0() + window);
    assert_eq!(s.graphql_calls(later, window).unwrap(), (2, Some(t0())));
    // Once the first call is older than the window, one is free again.
    let free = t0() + window + Duration::seconds(1);
    assert_eq!(s.take_graphql_call(free, 2, window).unwrap(), Ok(2));
}

#[test]
fn d1_daily_totals_win_over_rollup_sums_in_usage() {
    let (_d, mut s) = store();
    s.apply_analytics(&pull(0, 10, 5, vec![rollup(3, "SELECT 1", 4, 1.0)]))
        .unwrap();
    let day = t0().date_naive();
    let batch = AnalyticsBatch {
        traffic: vec![UsageTraffic {
            day,
            env: "production".into(),
            queries: 7,
            rows_read: 700,
            rows_written: 3,
        }],
        storage: vec![UsageSample {
            day,
            env: "production".into(),
            storage_bytes: 4096,
            databases: 1,
        }],
        ..AnalyticsBatch::default()
    };
    s.apply_analytics(&batch).unwrap();
    s.apply_analytics(&batch).unwrap();
    let usage = s.usage_history(day, day).unwrap();
    assert_eq!(usage.len(), 1);
    let u = &usage[0];
    assert_eq!(
        (
            u.queries,
            u.rows_read,
            u.rows_written,
            u.storage_bytes,
            u.databases
        ),
        (7, 700, 3, 4096, 1)
    );
}

#[test]
fn a_partial_first_hour_is_kept_and_a_stale_pull_adds_nothing_final() {
    let (_d, mut s) = store();
    // A sync after a long pause reads from 12:13 by exact times; its first hour bucket is
    // labelled 12:00 and holds only what ran after 12:13.
    let mut hour = rollup(0, "SELECT 1", 5, 1.0);
    hour.resolution = Resolution::Hour;
    let batch = pull(
        13,
        120,
        110,
        vec![hour.clone(), rollup(115, "SELECT 1", 1, 1.0)],
    );
    s.apply_analytics(&batch).unwrap();
    let day = s.daily(None, t0().date_naive(), t0().date_naive()).unwrap();
    assert_eq!(day[0].queries, 6);
    // The same pull again (another process had it too): the cursor moved to 110, so only
    // the tentative minute is compared, and nothing is added.
    let again = s.apply_analytics(&batch).unwrap();
    assert_eq!(again.added, 0);
    let day = s.daily(None, t0().date_naive(), t0().date_naive()).unwrap();
    assert_eq!(day[0].queries, 6);
}
