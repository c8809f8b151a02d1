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
/// Φ⁻¹((k + 0.5) / 16): sixteen equal-mass points of a standard normal.
const Z16: [f64; 16] = [
    -1.8627, -1.3180, -1.0100, -0.7764, -0.5791, -0.4023, -0.2372, -0.0784, 0.0784, 0.2372, 0.4023,
    0.5791, 0.7764, 1.0100, 1.3180, 1.8627,
];

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
        if count < 16 {
            // Too few calls for a spread: they all take the median.
            hist.record_n(median, count);
        }
        let count_spread = if count < 16 { 0 } else { count };
        let tail = count_spread / 100;
        let body = count_spread - tail;
        let mut sum_ms = if count < 16 {
            median * count as f64
        } else {
            0.0
        };
        for (k, z) in Z16.iter().enumerate() {
            let n = body / 16 + u64::from((k as u64) < body % 16);
            let v = median * (SIGMA * z).exp();
            hist.record_n(v, n);
            sum_ms += v * n as f64;
        }
        let slow = median * 8.0;
        hist.record_n(slow, tail);
        sum_ms += slow * tail as f64;
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
    fn hours_share_a_day() {
        let total: f64 = (0..24).map(Story::hour_share).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
