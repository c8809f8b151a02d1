//! Writing: a batch of events (or pre-aggregated rollups) is summed in memory per
//! (environment, fingerprint, minute), folded into its hour and day and into the
//! environment-wide rows, then upserted — counts added, histograms merged by
//! `d1ops_hist_merge` — in one IMMEDIATE transaction with the fingerprints and the error
//! ring. [`unwrite_batch`] takes a batch back out (subtracting, histograms by
//! `d1ops_hist_sub`), which is how re-fetched D1 analytics replace what was recorded before.
//! Must not read rollups back or apply retention (that is `maintain`).
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use rusqlite::params;

use super::Result;
use super::event::QueryEvent;
use super::fingerprint::fingerprint_id;
use super::rollup::{Resolution, Rollup, Sums};
use super::store::MetricsStore;

/// Longest error message kept in the ring, in bytes.
const MAX_MESSAGE: usize = 2_000;

/// One batch, summed: per-fingerprint and per-environment rows at every resolution.
#[derive(Default)]
pub(super) struct Batch<'a> {
    fp: BTreeMap<(Resolution, i64, &'a str, &'a str), Sums>,
    env: BTreeMap<(Resolution, i64, &'a str), Sums>,
    /// Fingerprint text → (first, last) seen, unix seconds.
    seen: HashMap<&'a str, (i64, i64)>,
    /// End of the newest span added (at the resolution it was added with).
    data_end: Option<i64>,
}

impl<'a> Batch<'a> {
    /// Adds `sums` for a row at `res` and to every coarser row and environment row holding it.
    fn add(&mut self, res: Resolution, t: i64, env: &'a str, fp: &'a str, sums: Sums) {
        let end = res.floor(t) + res.secs();
        self.data_end = Some(self.data_end.map_or(end, |e| e.max(end)));
        for coarser in Resolution::ALL.into_iter().filter(|r| *r >= res) {
            let start = coarser.floor(t);
            self.env
                .entry((coarser, start, env))
                .or_default()
                .merge(&sums);
            if coarser != res {
                self.fp
                    .entry((coarser, start, env, fp))
                    .or_default()
                    .merge(&sums);
            }
        }
        match self.fp.entry((res, res.floor(t), env, fp)) {
            Entry::Vacant(v) => {
                v.insert(sums);
            }
            Entry::Occupied(mut o) => o.get_mut().merge(&sums),
        }
    }

    fn see(&mut self, fp: &'a str, first: i64, last: i64) {
        let e = self.seen.entry(fp).or_insert((first, last));
        e.0 = e.0.min(first);
        e.1 = e.1.max(last);
    }

    /// Pre-aggregated rollups (minute or hour; coarser ones count as hours), summed.
    pub(super) fn of_rollups(rollups: &'a [Rollup]) -> Batch<'a> {
        let mut batch = Batch::default();
        for r in rollups.iter().filter(|r| r.count > 0) {
            let res = r.resolution.min(Resolution::Hour);
            let t = res.floor(r.start.timestamp());
            batch.add(res, t, &r.env, &r.fingerprint, r.sums());
            batch.see(&r.fingerprint, t, t + res.secs() - 1);
        }
        batch
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fp.is_empty()
    }
}

fn upsert_sql(table: &str, with_fp: bool) -> String {
    let (fp_col, fp_val, key) = if with_fp {
        (", fp", ", ?3", "t, env, fp")
    } else {
        ("", "", "t, env")
    };
    format!(
        "INSERT INTO {table}(t, env{fp_col}, count, errors, sum_ms, rows_read, rows_written, \
         rows_returned, hist) VALUES (?1, ?2{fp_val}, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT({key}) DO UPDATE SET count = count + excluded.count, \
         errors = errors + excluded.errors, sum_ms = sum_ms + excluded.sum_ms, \
         rows_read = rows_read + excluded.rows_read, \
         rows_written = rows_written + excluded.rows_written, \
         rows_returned = rows_returned + excluded.rows_returned, \
         hist = d1ops_hist_merge(hist, excluded.hist)"
    )
}

/// Takes one row's sums back out; `?3` (the fingerprint) is unused for environment rows.
fn subtract_sql(table: &str, with_fp: bool) -> String {
    let key = if with_fp {
        "t = ?1 AND env = ?2 AND fp = ?3"
    } else {
        "t = ?1 AND env = ?2 AND ?3 IS NULL"
    };
    format!(
        "UPDATE {table} SET count = max(count - ?4, 0), errors = max(errors - ?5, 0), \
         sum_ms = max(sum_ms - ?6, 0), rows_read = max(rows_read - ?7, 0), \
         rows_written = max(rows_written - ?8, 0), \
         rows_returned = max(rows_returned - ?9, 0), hist = d1ops_hist_sub(hist, ?10) \
         WHERE {key}"
    )
}

/// A u64 count as SQLite's i64 (saturating; no real count gets near).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MetricsStore {
    /// Records a batch of events: one transaction, rows upserted with merge. Any order of
    /// events and batches gives the same rollups.
    pub fn record(&mut self, events: &[QueryEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut minutes: HashMap<(i64, &str, &str), Sums> = HashMap::new();
        for e in events {
            let t = Resolution::Minute.floor(e.at.timestamp());
            minutes
                .entry((t, e.env.as_str(), e.fingerprint.as_str()))
                .or_default()
                .add_event(e);
        }
        let mut batch = Batch::default();
        for ((t, env, fp), sums) in minutes {
            batch.add(Resolution::Minute, t, env, fp, sums);
        }
        for e in events {
            let t = e.at.timestamp();
            batch.see(&e.fingerprint, t, t);
        }
        let mut errors: Vec<&QueryEvent> = events.iter().filter(|e| e.is_error()).collect();
        errors.sort_by_key(|e| e.at);
        let keep = errors.len().saturating_sub(self.settings.error_capacity);
        self.write(&batch, &errors[keep..])
    }

    /// Records pre-aggregated rollups (minute or hour), merged like events.
    pub fn record_rollups(&mut self, rollups: &[Rollup]) -> Result<()> {
        let batch = Batch::of_rollups(rollups);
        if batch.is_empty() {
            return Ok(());
        }
        self.write(&batch, &[])
    }

    /// Records only the errors of `events` in the recent-error ring, counting nothing in the
    /// rollups (for statements whose counts arrive from another source, such as D1's
    /// analytics).
    pub fn record_errors(&mut self, events: &[QueryEvent]) -> Result<()> {
        let mut errors: Vec<&QueryEvent> = events.iter().filter(|e| e.is_error()).collect();
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by_key(|e| e.at);
        let keep = errors.len().saturating_sub(self.settings.error_capacity);
        let mut batch = Batch::default();
        for e in &errors[keep..] {
            let t = e.at.timestamp();
            batch.see(&e.fingerprint, t, t);
        }
        self.write(&batch, &errors[keep..])
    }

    fn write(&mut self, batch: &Batch, errors: &[&QueryEvent]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        write_batch(&tx, batch, errors, self.settings.error_capacity)?;
        tx.commit()?;
        Ok(())
    }
}

/// Writes a batch inside `tx`: fingerprints, rollup rows (added), errors, `data_end`.
pub(super) fn write_batch(
    tx: &rusqlite::Transaction,
    batch: &Batch,
    errors: &[&QueryEvent],
    error_capacity: usize,
) -> Result<()> {
    let ids: HashMap<&str, String> = batch
        .seen
        .keys()
        .map(|fp| (*fp, fingerprint_id(fp)))
        .collect();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO fingerprints(id, text, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),
                     last_seen = max(last_seen, excluded.last_seen)",
        )?;
        for (fp, (first, last)) in &batch.seen {
            stmt.execute(params![id(&ids, fp), fp, first, last])?;
        }
        let mut fp_stmts = Vec::new();
        let mut env_stmts = Vec::new();
        for res in Resolution::ALL {
            fp_stmts.push(tx.prepare_cached(&upsert_sql(res.fp_table(), true))?);
            env_stmts.push(tx.prepare_cached(&upsert_sql(res.env_table(), false))?);
        }
        for ((res, t, env, fp), s) in &batch.fp {
            upsert(&mut fp_stmts[*res as usize], *t, env, Some(id(&ids, fp)), s)?;
        }
        for ((res, t, env), s) in &batch.env {
            upsert(&mut env_stmts[*res as usize], *t, env, None, s)?;
        }
        if !errors.is_empty() {
            push_errors(tx, errors, &ids, error_capacity)?;
        }
        // The end of the newest span recorded: readers may treat everything after it as
        // empty (see `rollup::cover`).
        if let Some(end) = batch.data_end {
            tx.prepare_cached(
                "INSERT INTO meta(key, value) VALUES ('data_end', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            )?
            .execute([end])?;
        }
    }
    Ok(())
}

/// Takes a batch that was written earlier back out of every rollup row it touched, inside
/// `tx`; rows left with no queries are deleted. Fingerprints, errors and `data_end` stay.
pub(super) fn unwrite_batch(tx: &rusqlite::Transaction, batch: &Batch) -> Result<()> {
    for res in Resolution::ALL {
        for with_fp in [true, false] {
            let table = if with_fp {
                res.fp_table()
            } else {
                res.env_table()
            };
            let mut stmt = tx.prepare_cached(&subtract_sql(table, with_fp))?;
            let mut empty = tx.prepare_cached(&format!(
                "DELETE FROM {table} WHERE t = ?1 AND env = ?2 AND count <= 0"
            ))?;
            let rows: Vec<(i64, &str, Option<String>, &Sums)> = if with_fp {
                (batch.fp.iter())
                    .filter(|((r, ..), _)| *r == res)
                    .map(|((_, t, env, fp), s)| (*t, *env, Some(fingerprint_id(fp)), s))
                    .collect()
            } else {
                (batch.env.iter())
                    .filter(|((r, ..), _)| *r == res)
                    .map(|((_, t, env), s)| (*t, *env, None, s))
                    .collect()
            };
            for (t, env, fp, s) in rows {
                upsert(&mut stmt, t, env, fp.as_deref(), s)?;
                empty.execute(params![t, env])?;
            }
        }
    }
    Ok(())
}

/// Runs an upsert prepared from [`upsert_sql`] for one row.
fn upsert(
    stmt: &mut rusqlite::Statement<'_>,
    t: i64,
    env: &str,
    fp: Option<&str>,
    s: &Sums,
) -> Result<()> {
    stmt.execute(params![
        t,
        env,
        fp,
        int(s.count),
        int(s.errors),
        s.sum_ms,
        int(s.rows_read),
        int(s.rows_written),
        int(s.rows_returned),
        s.hist.to_bytes()
    ])?;
    Ok(())
}

/// Schema v2: fills the week tier from the day rows (inside the upgrade's transaction).
pub(crate) fn backfill_weeks(tx: &rusqlite::Transaction) -> Result<()> {
    for with_fp in [true, false] {
        let (day, week) = if with_fp {
            (Resolution::Day.fp_table(), Resolution::Week.fp_table())
        } else {
            (Resolution::Day.env_table(), Resolution::Week.env_table())
        };
        let fp_col = if with_fp { "fp" } else { "NULL" };
        let mut weeks: BTreeMap<(i64, String, Option<String>), Sums> = BTreeMap::new();
        let mut read = tx.prepare(&format!(
            "SELECT t, env, {fp_col}, count, errors, sum_ms, rows_read, rows_written, \
             rows_returned, hist FROM {day}"
        ))?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let key = (Resolution::Week.floor(r.get(0)?), r.get(1)?, r.get(2)?);
            let s = weeks.entry(key).or_default();
            let u = |i: usize| -> Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
            s.count += u(3)?;
            s.errors += u(4)?;
            s.sum_ms += r.get::<_, f64>(5)?;
            s.rows_read += u(6)?;
            s.rows_written += u(7)?;
            s.rows_returned += u(8)?;
            s.hist
                .merge_bytes(r.get_ref(9)?.as_blob().map_err(rusqlite::Error::from)?)?;
        }
        let mut stmt = tx.prepare(&upsert_sql(week, with_fp))?;
        for ((t, env, fp), s) in &weeks {
            upsert(&mut stmt, *t, env, fp.as_deref(), s)?;
        }
    }
    Ok(())
}

fn id<'m>(ids: &'m HashMap<&str, String>, fp: &str) -> &'m str {
    ids.get(fp).map_or("", String::as_str)
}

/// Appends errors to the ring and drops the oldest beyond `capacity`.
fn push_errors(
    tx: &rusqlite::Transaction,
    errors: &[&QueryEvent],
    ids: &HashMap<&str, String>,
    capacity: usize,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO error_ring(at_ms, env, release, fp, code, message, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in errors {
        let Some(err) = &e.error else { continue };
        stmt.execute(params![
            e.at.timestamp_millis(),
            e.env,
            e.release,
            id(ids, &e.fingerprint),
            err.code,
            truncate(&err.message, MAX_MESSAGE),
            e.duration_ms
        ])?;
    }
    tx.execute(
        "DELETE FROM error_ring WHERE seq <= (SELECT max(seq) FROM error_ring) - ?1",
        [int(capacity as u64)],
    )?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
