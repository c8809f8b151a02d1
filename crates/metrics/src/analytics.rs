//! D1 analytics from Cloudflare as the metrics store keeps them: rollups of what Cloudflare
//! reported, applied so that fetching the same buckets again never counts them twice; D1's
//! daily totals (`usage_traffic`); per-database sync progress (`d1_sync`); the GraphQL call
//! log the budget is enforced from (`analytics_calls`); and the last sync's outcome
//! (`analytics_status`). It must not talk to Cloudflare or decide when to sync (that is the
//! engine's `analytics`).
//!
//! Idempotence. A sync fetches each database's buckets from its cursor (`settled_to`) to
//! now. Buckets starting at or after the new cursor may still change (Cloudflare's data
//! arrives with a delay, the current minute is still running), so what was recorded for them
//! is kept in `d1_ledger`. The next sync fetches them again; a bucket whose numbers changed
//! (or vanished) has its old numbers taken back out of every rollup tier before the new ones
//! go in, and an unchanged one is left alone. Buckets before the cursor are final and leave
//! the ledger. All of it is one transaction.
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::histogram::Histogram;
use super::record::{Batch, int, unwrite_batch, write_batch};
use super::rollup::{Resolution, Rollup};
use super::store::MetricsStore;
use super::usage::{UsageSample, upsert_sample};
use super::{MetricsError, Result, time_of};

/// Where one D1 database's sync stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncCursor {
    pub database_id: String,
    pub env: String,
    /// Buckets before this are final; the next sync fetches from here.
    pub settled_to: DateTime<Utc>,
    /// The first day whose daily totals the next sync fetches again.
    pub days_from: NaiveDate,
    /// Start of the newest bucket that held queries.
    pub newest_bucket: Option<DateTime<Utc>>,
    pub synced_at: DateTime<Utc>,
}

/// D1's daily totals for one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageTraffic {
    pub day: NaiveDate,
    pub env: String,
    pub queries: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// What one sync fetched for one database: every bucket in `[from, to)`.
#[derive(Debug, Clone)]
pub struct DatabasePull {
    /// The database's cursor after this sync.
    pub cursor: SyncCursor,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Minute or hour rollups starting in `[from, to)`; several may share a key (query texts
    /// that normalise alike), they are summed.
    pub rollups: Vec<Rollup>,
}

/// One sync, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsBatch {
    pub pulls: Vec<DatabasePull>,
    /// Daily totals; each replaces what was stored for its (day, environment).
    pub traffic: Vec<UsageTraffic>,
    /// Storage per (day, environment); each replaces the day's sample.
    pub storage: Vec<UsageSample>,
}

/// How applying a batch changed the rollups (counted in buckets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Buckets seen for the first time.
    pub added: usize,
    /// Buckets fetched again with different numbers (the old ones were taken out).
    pub replaced: usize,
    /// Buckets fetched before that are gone now (taken out).
    pub removed: usize,
    /// Buckets fetched again unchanged.
    pub unchanged: usize,
}

/// The last sync's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnalyticsStatus {
    /// When a sync last tried to reach Cloudflare.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When a sync last succeeded.
    pub synced_at: Option<DateTime<Utc>>,
    /// No call before this (Cloudflare answered 429).
    pub blocked_until: Option<DateTime<Utc>>,
    /// `synced`, `failed`, `budget` or `rate_limited`.
    pub outcome: Option<String>,
    /// Why the last attempt did not sync (an error sentence, never a credential).
    pub message: Option<String>,
}

/// The GraphQL budget is spent until `free_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpent {
    pub used: u32,
    pub limit: u32,
    pub free_at: DateTime<Utc>,
}

/// A ledger key: resolution, bucket start, normalised query text.
type Key = (Resolution, i64, String);

fn res_name(r: Resolution) -> &'static str {
    if r == Resolution::Minute {
        "minute"
    } else {
        "hour"
    }
}

fn ms_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn day_text(raw: String) -> Result<NaiveDate> {
    raw.parse::<NaiveDate>().map_err(|_| MetricsError::Corrupt {
        what: "a day",
        value: raw,
    })
}

/// Sums rollups per key (minute or hour; coarser counts as hour), keeping those starting in
/// `[from, to)`.
fn by_key(rollups: &[Rollup], from: i64, to: i64) -> BTreeMap<Key, Rollup> {
    let mut out: BTreeMap<Key, Rollup> = BTreeMap::new();
    for r in rollups.iter().filter(|r| r.count > 0) {
        let res = r.resolution.min(Resolution::Hour);
        let t = res.floor(r.start.timestamp());
        if t < from || t >= to {
            continue;
        }
        let key = (res, t, r.fingerprint.clone());
        match out.get_mut(&key) {
            Some(sum) => sum.merge(r),
            None => {
                let mut r = r.clone();
                r.resolution = res;
                r.start = time_of(t);
                out.insert(key, r);
            }
        }
    }
    out
}

/// The ledger rows of `db` with `from <= t < to`.
fn ledger(conn: &Connection, db: &str, from: i64, to: i64) -> Result<BTreeMap<Key, Rollup>> {
    let mut stmt = conn.prepare_cached(
        "SELECT res, t, env, fp_text, count, errors, sum_ms, rows_read, rows_written, \
         rows_returned, hist FROM d1_ledger WHERE db = ?1 AND t >= ?2 AND t < ?3",
    )?;
    let mut rows = stmt.query(params![db, from, to])?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let res = match r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)? {
            "minute" => Resolution::Minute,
            _ => Resolution::Hour,
        };
        let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
        let t: i64 = r.get(1)?;
        let fp: String = r.get(3)?;
        let hist = Histogram::from_bytes(r.get_ref(10)?.as_blob().map_err(rusqlite::Error::from)?)?;
        let rollup = Rollup {
            start: time_of(t),
            resolution: res,
            env: r.get(2)?,
            fingerprint: fp.clone(),
            count: u(4)?,
            errors: u(5)?,
            sum_ms: r.get(6)?,
            rows_read: u(7)?,
            rows_written: u(8)?,
            rows_returned: u(9)?,
            histogram: hist,
        };
        out.insert((res, t, fp), rollup);
    }
    Ok(out)
}

impl MetricsStore {
    /// Every database's sync progress.
    pub fn sync_cursors(&self) -> Result<Vec<SyncCursor>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT db, env, settled_to, days_from, newest_bucket, synced_at FROM d1_sync \
             ORDER BY db",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (db, env, settled, days, newest, synced) = row?;
            out.push(SyncCursor {
                database_id: db,
                env,
                settled_to: time_of(settled),
                days_from: day_text(days)?,
                newest_bucket: newest.map(time_of),
                synced_at: time_of(synced),
            });
        }
        Ok(out)
    }

    /// The last sync's outcome (all empty before the first).
    pub fn analytics_status(&self) -> Result<AnalyticsStatus> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT attempted_at, synced_at, blocked_until, outcome, message \
                 FROM analytics_status WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok(AnalyticsStatus {
                    attempted_at: r.get::<_, Option<i64>>(0)?.map(time_of),
                    synced_at: r.get::<_, Option<i64>>(1)?.map(time_of),
                    blocked_until: r.get::<_, Option<i64>>(2)?.map(time_of),
                    outcome: r.get(3)?,
                    message: r.get(4)?,
                })
            })
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// Replaces the last sync's outcome.
    pub fn set_analytics_status(&self, s: &AnalyticsStatus) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO analytics_status(id, attempted_at, synced_at, blocked_until, \
                 outcome, message) VALUES (1, ?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(id) DO UPDATE SET attempted_at = excluded.attempted_at, \
                 synced_at = excluded.synced_at, blocked_until = excluded.blocked_until, \
                 outcome = excluded.outcome, message = excluded.message",
            )?
            .execute(params![
                s.attempted_at.map(|t| t.timestamp()),
                s.synced_at.map(|t| t.timestamp()),
                s.blocked_until.map(|t| t.timestamp()),
                s.outcome,
                s.message
            ])?;
        Ok(())
    }

    /// GraphQL calls logged in the `window` before `now`, and the oldest of them.
    pub fn graphql_calls(
        &self,
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<(u32, Option<DateTime<Utc>>)> {
        let since = (now - window).timestamp_millis();
        let (n, oldest): (i64, Option<i64>) = self
            .conn
            .prepare_cached("SELECT count(*), min(at_ms) FROM analytics_calls WHERE at_ms >= ?1")?
            .query_row([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((u32::try_from(n).unwrap_or(u32::MAX), oldest.map(ms_time)))
    }

    /// Logs one GraphQL call at `now` if fewer than `limit` were logged in the `window`
    /// before it (checked and logged in one transaction, so processes sharing the store share
    /// the budget), returning the calls in the window including it; otherwise logs nothing
    /// and says when a call is free again.
    pub fn take_graphql_call(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
        window: chrono::Duration,
    ) -> Result<std::result::Result<u32, BudgetSpent>> {
        let now_ms = now.timestamp_millis();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached("DELETE FROM analytics_calls WHERE at_ms < ?1")?
            .execute([now_ms - 86_400_000])?;
        let (n, oldest): (i64, Option<i64>) = tx
            .prepare_cached("SELECT count(*), min(at_ms) FROM analytics_calls WHERE at_ms >= ?1")?
            .query_row([(now - window).timestamp_millis()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let used = u32::try_from(n).unwrap_or(u32::MAX);
        if used >= limit {
            return Ok(Err(BudgetSpent {
                used,
                limit,
                free_at: oldest.map_or(now, |t| ms_time(t) + window),
            }));
        }
        tx.prepare_cached("INSERT INTO analytics_calls(at_ms) VALUES (?1)")?
            .execute([now_ms])?;
        tx.commit()?;
        Ok(Ok(used + 1))
    }

    /// D1's daily totals for `from..=to`, by day then environment.
    pub fn usage_traffic(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<UsageTraffic>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, env, queries, rows_read, rows_written FROM usage_traffic \
             WHERE day >= ?1 AND day <= ?2 ORDER BY day, env",
        )?;
        let rows = stmt.query_map((from.to_string(), to.to_string()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (day, env, q, r, w) = row?;
            out.push(UsageTraffic {
                day: day_text(day)?,
                env,
                queries: q.max(0) as u64,
                rows_read: r.max(0) as u64,
                rows_written: w.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Applies one sync in one transaction (see the module's note on idempotence).
    pub fn apply_analytics(&mut self, batch: &AnalyticsBatch) -> Result<ApplyReport> {
        let capacity = self.settings.error_capacity;
        let now = d1ops_sql::clock::now_utc().timestamp();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut report = ApplyReport::default();
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for pull in &batch.pulls {
            let db = &pull.cursor.database_id;
            // Buckets before the stored cursor are final and recorded: a pull that started
            // from an older cursor (another process synced meanwhile, or the same pull is
            // applied twice) must not add them again.
            let stored: Option<i64> = tx
                .prepare_cached("SELECT settled_to FROM d1_sync WHERE db = ?1")?
                .query_row([db], |r| r.get(0))
                .optional()?;
            let to = pull.to.timestamp();
            let pulled_from = pull.from.timestamp();
            let from = stored.map_or(pulled_from, |s| s.max(pulled_from));
            // A pull's first hour bucket may start before its `from` and hold only the events
            // after it (they are filtered by exact time): it belongs to the pull. A stale
            // pull keeps only buckets starting at or after the stored cursor.
            let keep_from = if from > pulled_from { from } else { i64::MIN };
            let fresh = by_key(&pull.rollups, keep_from, to);
            let old = ledger(&tx, db, from, to)?;
            for (key, o) in &old {
                match fresh.get(key) {
                    Some(n) if n == o => report.unchanged += 1,
                    Some(_) => {
                        report.replaced += 1;
                        removed.push(o.clone());
                    }
                    None => {
                        report.removed += 1;
                        removed.push(o.clone());
                    }
                }
            }
            for (key, n) in &fresh {
                match old.get(key) {
                    Some(o) if o == n => {}
                    Some(_) => added.push(n.clone()),
                    None => {
                        report.added += 1;
                        added.push(n.clone());
                    }
                }
            }
            tx.prepare_cached("DELETE FROM d1_ledger WHERE db = ?1 AND t >= ?2 AND t < ?3")?
                .execute(params![db, from, to])?;
            let settled = pull.cursor.settled_to.timestamp();
            tx.prepare_cached("DELETE FROM d1_ledger WHERE db = ?1 AND t < ?2")?
                .execute(params![db, settled])?;
            let mut put = tx.prepare_cached(
                "INSERT INTO d1_ledger(db, res, t, env, fp_text, count, errors, sum_ms, \
                 rows_read, rows_written, rows_returned, hist) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for ((res, t, fp), r) in fresh.iter().filter(|((_, t, _), _)| *t >= settled) {
                put.execute(params![
                    db,
                    res_name(*res),
                    t,
                    r.env,
                    fp,
                    int(r.count),
                    int(r.errors),
                    r.sum_ms,
                    int(r.rows_read),
                    int(r.rows_written),
                    int(r.rows_returned),
                    r.histogram.to_bytes()
                ])?;
            }
            let c = &pull.cursor;
            tx.prepare_cached(
                "INSERT INTO d1_sync(db, env, settled_to, days_from, newest_bucket, synced_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(db) DO UPDATE SET \
                 env = excluded.env, settled_to = max(settled_to, excluded.settled_to), \
                 days_from = excluded.days_from, \
                 newest_bucket = max(coalesce(newest_bucket, excluded.newest_bucket), \
                     coalesce(excluded.newest_bucket, newest_bucket)), \
                 synced_at = excluded.synced_at",
            )?
            .execute(params![
                db,
                c.env,
                settled,
                c.days_from.to_string(),
                c.newest_bucket.map(|t| t.timestamp()),
                c.synced_at.timestamp()
            ])?;
        }
        let removed_batch = Batch::of_rollups(&removed);
        if !removed_batch.is_empty() {
            unwrite_batch(&tx, &removed_batch)?;
        }
        let added_batch = Batch::of_rollups(&added);
        if !added_batch.is_empty() {
            write_batch(&tx, &added_batch, &[], capacity)?;
        }
        for t in &batch.traffic {
            tx.prepare_cached(
                "INSERT INTO usage_traffic(day, env, queries, rows_read, rows_written, synced_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(day, env) DO UPDATE SET \
                 queries = excluded.queries, rows_read = excluded.rows_read, \
                 rows_written = excluded.rows_written, synced_at = excluded.synced_at",
            )?
            .execute(params![
                t.day.to_string(),
                t.env,
                int(t.queries),
                int(t.rows_read),
                int(t.rows_written),
                now
            ])?;
        }
        for s in &batch.storage {
            upsert_sample(&tx, s)?;
        }
        tx.commit()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
