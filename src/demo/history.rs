//! The demo's month of metrics: production's query traffic as pre-aggregated rollups (the
//! mini-app's own queries, growing ~3 % a day with busier weekends and evenings) and one
//! usage sample per day per environment, so every Monitor chart, usage table and forecast is
//! populated on first run. Deterministic (fixed seed) and fast: ~15k rollups in one batch.
//!
//! The story it tells: the likes release (live) made every query slower and double-tapped
//! likes fail for a few hours after its promotion — its watch window flags the regression —
//! and rows written per day, growing with the likes, reach d1-free's 100,000 within the
//! month. Hours around that promotion and the last two hours are written per minute (what
//! the watch window and the 5m / 1h windows read); the rest per hour.
use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc, Weekday};

use super::Scale;
use crate::engine::{Engine, PRODUCTION};
use crate::metrics::usage::UsageSample;
use crate::metrics::{
    Histogram, MetricsStore, QueryError, QueryEvent, Resolution, Rollup, fingerprint,
};
use crate::model::{EnvKind, now_utc, parse_time};

/// One of the app's queries: how often (per day, on a weekday, yesterday), how fast, how
/// many rows, how often it fails.
struct Query {
    sql: &'static str,
    per_day: f64,
    median_ms: f64,
    rows_read: f64,
    rows_written: u64,
    rows_returned: u64,
    error_rate: f64,
    /// Ships with the likes release (no traffic before its promotion).
    likes: bool,
    /// Rows read grow with the items table (a scan).
    scans_items: bool,
}

const fn q(sql: &'static str, per_day: f64, median_ms: f64, rows_read: f64) -> Query {
    Query {
        sql,
        per_day,
        median_ms,
        rows_read,
        rows_written: 0,
        rows_returned: 1,
        error_rate: 0.000_5,
        likes: false,
        scans_items: false,
    }
}

const fn writes(q: Query, rows_written: u64) -> Query {
    Query {
        rows_written,
        rows_returned: 0,
        ..q
    }
}

const fn likes(q: Query) -> Query {
    Query { likes: true, ..q }
}

#[rustfmt::skip]
const QUERIES: &[Query] = &[
    q("SELECT id, username, first_name, language_code, is_premium FROM users WHERE telegram_id = 5000001586", 18_000.0, 0.12, 1.0),
    q("SELECT id, telegram_id, username, first_name, is_premium FROM users WHERE id = 42", 6_000.0, 0.08, 1.0),
    Query { rows_returned: 12, ..q("SELECT id, kind, title, price_stars, like_count FROM items WHERE owner_id = 42 ORDER BY id DESC LIMIT 50", 8_000.0, 0.35, 12.0) },
    q("SELECT i.id, i.title, i.price_stars, i.like_count, u.username FROM items AS i JOIN users AS u ON u.id = i.owner_id WHERE i.id = 137", 5_000.0, 0.15, 2.0),
    Query { rows_returned: 10, ..q("SELECT s.user_id, u.username, s.score FROM scores AS s JOIN users AS u ON u.id = s.user_id WHERE s.game_id = 1 ORDER BY s.score DESC LIMIT 10", 4_000.0, 0.4, 20.0) },
    q("SELECT count(*) + 1 FROM scores WHERE game_id = 1 AND score > 50000", 800.0, 2.4, 500.0),
    Query { rows_returned: 3, ..q("SELECT g.slug, b.score FROM best_scores AS b JOIN games AS g ON g.id = b.game_id WHERE b.user_id = 42", 2_000.0, 0.1, 4.0) },
    // The shop's "by kind" page has no index: every call reads the whole items table.
    Query { rows_returned: 20, scans_items: true, ..q("SELECT id, title, price_stars FROM items WHERE kind = 'skin' ORDER BY price_stars LIMIT 20", 1.5, 180.0, 1.0) },
    writes(q("INSERT INTO scores (user_id, game_id, score) VALUES (42, 2, 31337)", 6_000.0, 0.6, 2.0), 4),
    writes(q("INSERT INTO users (telegram_id, username, first_name) VALUES (5000099999, 'new_user', 'Ann')", 1_500.0, 0.5, 2.0), 3),
    writes(q("INSERT INTO items (owner_id, kind, title, price_stars) VALUES (42, 'skin', 'Neon Cat #7', 120)", 4_000.0, 0.5, 1.0), 2),
    likes(q("SELECT 1 FROM likes WHERE user_id = 42 AND item_id = 434", 6_000.0, 0.07, 1.0)),
    likes(Query { rows_returned: 20, ..q("SELECT user_id, liked_at FROM likes WHERE item_id = 137 LIMIT 50", 1_000.0, 0.2, 20.0) }),
    likes(Query { rows_returned: 20, ..q("SELECT l.item_id, i.title FROM likes AS l JOIN items AS i ON i.id = l.item_id WHERE l.user_id = 42 ORDER BY l.item_id DESC LIMIT 20", 1_000.0, 0.3, 40.0) }),
    likes(Query { error_rate: 0.003, ..writes(q("INSERT INTO likes (user_id, item_id) VALUES (7, 137)", 8_000.0, 0.4, 1.0), 2) }),
    likes(writes(q("UPDATE items SET like_count = like_count + 1 WHERE id = 137", 8_000.0, 0.3, 1.0), 1)),
];

/// Daily growth of the app's traffic.
const GROWTH: f64 = 1.03;
/// Weekend days are this much busier.
const WEEKEND: f64 = 1.25;
/// Latency spread (log-normal sigma): p95 ≈ 2.7 × the median.
const SIGMA: f64 = 0.6;
/// Equal-mass points a busy rollup's body is spread over (enough that p50, p95 and p99 fall
/// on different points, as in real traffic).
const POINTS: u64 = 100;

/// Φ⁻¹(p), the standard normal's quantile (Acklam's rational approximation, |error| < 1e-8
/// on (0, 1); ample for a demo's latencies).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The regression after the likes release: how much slower and how error-prone, fading out
/// over six hours (the team shipped a client-side debounce that evening).
fn regression(since_promotion: Duration) -> f64 {
    let h = since_promotion.num_minutes() as f64 / 60.0;
    if !(0.0..6.0).contains(&h) {
        0.0
    } else if h < 1.0 {
        1.0
    } else {
        (6.0 - h) / 5.0
    }
}

/// A seed from a statement's text (FNV-1a), so each query's draws are its own.
fn fingerprint_seed(sql: &str) -> u64 {
    sql.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A tiny deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `x` rounded up or down at random, in proportion (keeps small rates honest).
    fn round(&mut self, x: f64) -> u64 {
        (x + self.unit()).floor().max(0.0) as u64
    }
}

/// What the traffic generator needs to know about the story.
struct Story {
    now: DateTime<Utc>,
    /// When the likes release went live.
    likes_live: DateTime<Utc>,
    items: f64,
}

impl Story {
    /// Traffic level on a day relative to yesterday's weekday level.
    fn day_factor(&self, day: NaiveDate, rng: &mut Rng) -> f64 {
        let days_ago = (self.now.date_naive() - day).num_days() as f64 - 1.0;
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        GROWTH.powf(-days_ago) * if weekend { WEEKEND } else { 1.0 } * (0.94 + 0.12 * rng.unit())
    }

    /// Share of a day's traffic in hour `h` (UTC): busiest in the evening, mean 1/24.
    fn hour_share(h: u32) -> f64 {
        let angle = (f64::from(h) - 18.0) / 24.0 * std::f64::consts::TAU;
        (1.0 + 0.8 * angle.cos()) / 24.0
    }

    /// One rollup of `q` over `[start, start + res)` with `count` calls.
    fn rollup(
        &self,
        q: &Query,
        start: DateTime<Utc>,
        res: Resolution,
        count: u64,
        rng: &mut Rng,
    ) -> Option<Rollup> {
        if count == 0 {
            return None;
        }
        let r = regression(start - self.likes_live);
        let median = q.median_ms * (1.0 + 12.0 * r);
        let mut error_rate = q.error_rate;
        if q.likes && q.rows_written > 0 {
            error_rate += 0.15 * r;
        }
        let mut hist = Histogram::new();
        let mut sum_ms = 0.0;
        let mut add = |v: f64, n: u64| {
            hist.record_n(v, n);
            sum_ms += v * n as f64;
        };
        // 1 % of calls are slow outliers (a cold cache, a lock wait).
        let slow = median * 8.0;
        if count < POINTS {
            // Few calls: each one drawn from the distribution (its own generator, so the
            // story's other numbers do not move), so merged rollups carry a real spread.
            let mut own = Rng(start.timestamp() as u64 ^ fingerprint_seed(q.sql));
            for _ in 0..count {
                let u = own.unit();
                if u > 0.99 {
                    add(slow, 1);
                } else {
                    add(median * (SIGMA * normal_quantile(u / 0.99)).exp(), 1);
                }
            }
        } else {
            let tail = count / 100;
            let body = count - tail;
            for k in 0..POINTS {
                let n = body / POINTS + u64::from(k < body % POINTS);
                let z = normal_quantile((k as f64 + 0.5) / POINTS as f64);
                add(median * (SIGMA * z).exp(), n);
            }
            add(slow, tail);
        }
        let rows_read = if q.scans_items {
            self.items
        } else {
            q.rows_read
        };
        Some(Rollup {
            start,
            resolution: res,
            env: PRODUCTION.into(),
            fingerprint: fingerprint(q.sql),
            count,
            errors: rng.round(count as f64 * error_rate).min(count),
            sum_ms,
            rows_read: (rows_read * count as f64).round() as u64,
            rows_written: q.rows_written * count,
            rows_returned: q.rows_returned * count,
            histogram: hist,
        })
    }
}

/// Hours (unix seconds of their start) written per minute.
fn minute_hours(story: &Story) -> BTreeSet<i64> {
    let hour = |t: DateTime<Utc>| Resolution::Hour.floor(t.timestamp());
    let mut out = BTreeSet::new();
    let mut t = story.likes_live - Duration::minutes(65);
    while t <= story.likes_live + Duration::minutes(45) {
        out.insert(hour(t));
        t += Duration::minutes(30);
    }
    out.insert(hour(story.now));
    out.insert(hour(story.now) - 3_600);
    out
}

/// Production's traffic from the launch until a minute ago.
fn rollups(story: &Story, launch: DateTime<Utc>) -> Vec<Rollup> {
    let mut rng = Rng(0x0D1_0DE5);
    let per_minute = minute_hours(story);
    let first_day = launch.date_naive() + chrono::Days::new(1);
    let mut out = Vec::new();
    let mut day = first_day;
    while day <= story.now.date_naive() {
        let factor = story.day_factor(day, &mut rng);
        for h in 0..24 {
            let Some(start) = day.and_hms_opt(h, 0, 0).map(|t| t.and_utc()) else {
                continue;
            };
            if start >= story.now {
                break;
            }
            let minutes = per_minute.contains(&start.timestamp());
            for q in QUERIES {
                let hourly = q.per_day * factor * Story::hour_share(h);
                if minutes {
                    for m in 0..60 {
                        let t = start + Duration::minutes(m);
                        if t + Duration::minutes(1) > story.now {
                            break;
                        }
                        if q.likes && t < story.likes_live {
                            continue;
                        }
                        let n = rng.round(hourly / 60.0);
                        out.extend(story.rollup(q, t, Resolution::Minute, n, &mut rng));
                    }
                } else if !(q.likes && start + Duration::hours(1) <= story.likes_live) {
                    let n = rng.round(hourly);
                    out.extend(story.rollup(q, start, Resolution::Hour, n, &mut rng));
                }
            }
        }
        day = day + chrono::Days::new(1);
    }
    out
}

/// A few raw errors in the last hour, so the Monitor's error details have something to show.
fn recent_errors(story: &Story, live: &str) -> Vec<QueryEvent> {
    [50, 31, 12, 4]
        .into_iter()
        .map(|ago| {
            let mut e = QueryEvent::for_sql(
                PRODUCTION,
                "INSERT INTO likes (user_id, item_id) VALUES (7, 137)",
                0.4,
            );
            e.at = story.now - Duration::minutes(ago);
            e.release = Some(live.to_string());
            e.error = Some(QueryError {
                code: "SQLITE_CONSTRAINT".into(),
                message: "UNIQUE constraint failed: likes.user_id, likes.item_id".into(),
            });
            e
        })
        .collect()
}

/// One usage sample per day per environment from the launch until yesterday (today's is
/// taken by the engine itself): production growing toward its size now, each preview from
/// its creation to its cleanup, and the recovery points from when each was taken.
fn usage_samples(
    engine: &Engine,
    story: &Story,
    launch: NaiveDate,
) -> anyhow::Result<Vec<UsageSample>> {
    let prod_now = engine
        .production_db()?
        .map(|db| engine.backend.size_bytes(&db))
        .transpose()?
        .unwrap_or(0) as f64;
    let today = story.now.date_naive();
    let span = (today - launch).num_days().max(1) as f64;
    let prod_on = |day: NaiveDate| {
        let progress = (day - launch).num_days() as f64 / span;
        prod_now * (0.45 + 0.55 * progress)
    };
    let day_of = |t: &str| parse_time(t).map(|t| t.date_naive());
    let mut samples = Vec::new();
    let envs = engine.store.envs(true)?;
    let snapshots = engine.store.snapshots(true)?;
    let mut day = launch + chrono::Days::new(1);
    while day < today {
        let prod = prod_on(day).round() as u64;
        samples.push(UsageSample {
            day,
            env: PRODUCTION.into(),
            storage_bytes: prod,
            databases: 1,
        });
        for env in envs.iter().filter(|e| e.kind == EnvKind::Preview) {
            let born = day_of(&env.created_at).unwrap_or(today);
            let gone = env.deleted_at.as_deref().and_then(day_of);
            if day < born || gone.is_some_and(|g| day >= g) {
                continue;
            }
            let size = match (&env.database_id, gone) {
                (Some(id), None) => engine
                    .backend
                    .size_bytes(&crate::backend::DatabaseRef::new(id.clone()))
                    .unwrap_or(prod),
                _ => prod,
            };
            samples.push(UsageSample {
                day,
                env: env.name.clone(),
                storage_bytes: size,
                databases: 1,
            });
        }
        let snapshot_bytes = (snapshots.iter())
            .filter(|s| day_of(&s.created_at).is_some_and(|c| c <= day))
            .filter(|s| {
                s.deleted_at
                    .as_deref()
                    .and_then(day_of)
                    .is_none_or(|d| d > day)
            })
            .map(|s| s.size_bytes)
            .sum();
        samples.push(UsageSample {
            day,
            env: crate::engine::capacity::SNAPSHOTS_ENV.into(),
            storage_bytes: snapshot_bytes,
            databases: 0,
        });
        day = day + chrono::Days::new(1);
    }
    Ok(samples)
}

/// Writes the month of metrics, samples today's usage, and settles the live release's
/// watch window (its verdict is stored, so it stays even after minute rollups age out).
pub fn write(dir: &Path, scale: Scale, launch_id: &str, likes_id: &str) -> anyhow::Result<()> {
    let engine = Engine::open(dir, crate::engine::EngineOptions::default())?;
    let promoted = |id: &str| -> anyhow::Result<DateTime<Utc>> {
        let r = engine.resolve(id)?;
        r.promoted_at
            .as_deref()
            .and_then(parse_time)
            .ok_or_else(|| anyhow::anyhow!("demo: release {id} was not promoted"))
    };
    let story = Story {
        now: now_utc().with_second(0).unwrap_or_else(now_utc),
        likes_live: promoted(likes_id)?,
        items: scale.items as f64,
    };
    let launch = promoted(launch_id)?;
    let mut metrics = MetricsStore::open(&engine.ws.state_dir())?;
    metrics.record_rollups(&rollups(&story, launch))?;
    metrics.record(&recent_errors(&story, likes_id))?;
    for s in usage_samples(&engine, &story, launch.date_naive())? {
        metrics.record_usage(&s)?;
    }
    engine.sample_usage()?;
    for id in [launch_id, likes_id] {
        engine.watch(&engine.resolve(id)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_regression_fades_over_six_hours() {
        assert_eq!(regression(Duration::minutes(-5)), 0.0);
        assert_eq!(regression(Duration::minutes(20)), 1.0);
        assert!((regression(Duration::hours(3)) - 0.6).abs() < 1e-9);
        assert_eq!(regression(Duration::hours(7)), 0.0);
    }

    #[test]
    fn normal_quantiles_are_right_where_it_matters() {
        for (p, z) in [
            (0.5, 0.0),
            (0.95, 1.644_854),
            (0.99, 2.326_348),
            (0.01, -2.326_348),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-5, "{p}");
        }
    }

    /// Issue 16 item 9: every demo fingerprint's history has p50 < p95 < p99, busy or rare.
    #[test]
    fn demo_rollups_carry_distributions() {
        let story = Story {
            now: Utc::now(),
            likes_live: Utc::now() - Duration::days(30),
            items: 1_000.0,
        };
        let start = Utc::now() - Duration::days(2);
        for (count, rollups) in [(5_000, 1), (3, 40), (1, 60)] {
            let mut rng = Rng(7);
            let mut merged = Histogram::new();
            for i in 0..rollups {
                let at = start + Duration::hours(i);
                let r = story
                    .rollup(&QUERIES[0], at, Resolution::Hour, count, &mut rng)
                    .unwrap();
                assert_eq!(r.histogram.count(), count);
                assert!(r.sum_ms > 0.0);
                merged.merge(&r.histogram);
            }
            let [p50, p95, p99] = merged.quantiles([0.5, 0.95, 0.99]).map(Option::unwrap);
            assert!(
                p50 < p95 && p95 < p99,
                "{count} × {rollups}: {p50} {p95} {p99}"
            );
        }
    }

    #[test]
    fn hours_share_a_day() {
        let total: f64 = (0..24).map(Story::hour_share).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
