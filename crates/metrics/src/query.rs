//! Reading rollups for the Monitor, the watch window and capacity: latency/QPS/error series,
//! top queries, window statistics, daily traffic and the recent-error ring. Every reader
//! covers its window with the coarsest rows that fit (`rollup::cover`), so cost follows the
//! window's shape, not the event count. Must not write, and must not read raw events (there
//! are none: only rollups and the bounded error ring are stored).
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::rollup::{Resolution, Span, Sums, cover};
use super::source::{APP_SOURCE, D1OPS_SOURCE};
use super::store::MetricsStore;
use super::{MetricsError, Result, day_of, day_start, time_of};

/// Most points one series call returns.
pub const MAX_POINTS: i64 = 10_000;

/// One bucket of a series. Percentiles are `None` for a bucket without queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Bucket start.
    pub t: DateTime<Utc>,
    pub count: u64,
    pub errors: u64,
    /// Queries per second over the bucket (the part of it before `to`).
    pub qps: f64,
    /// errors / count (0 when empty).
    pub error_rate: f64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// The order of [`MetricsStore::top_queries`] (descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopBy {
    TotalTime,
    P95,
    RowsRead,
    /// Failing queries only, most errors first.
    Errors,
}

/// One fingerprint over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryStat {
    pub fingerprint_id: String,
    /// `app`, or `d1ops` for d1ops' own statements (shown only when asked for).
    #[serde(default)]
    pub source: String,
    pub text: String,
    pub count: u64,
    pub errors: u64,
    pub total_ms: f64,
    /// Percentiles in milliseconds; `None` (JSON `null`) when any of the window's executions
    /// came without a distribution (D1 analytics answered without `quantiles`): unknown,
    /// never 0.
    #[serde(rename = "p50")]
    pub p50_ms: Option<f64>,
    #[serde(rename = "p95")]
    pub p95_ms: Option<f64>,
    #[serde(rename = "p99")]
    pub p99_ms: Option<f64>,
    /// Executions that came with a distribution (≤ `count`; below it, percentiles unknown).
    #[serde(default)]
    pub sampled: u64,
    /// Legacy: the percentiles with unknown read as 0 (not serialised). Read `p50_ms` etc.
    #[serde(skip)]
    pub p50: f64,
    #[serde(skip)]
    pub p95: f64,
    #[serde(skip)]
    pub p99: f64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// Totals of one environment (or all) over a window: what the watch window compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub count: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p95: Option<f64>,
}

/// One UTC day of traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyTraffic {
    pub day: NaiveDate,
    pub queries: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// One raw error from the ring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentError {
    pub at: DateTime<Utc>,
    pub env: String,
    pub release: Option<String>,
    pub fingerprint_id: String,
    /// Fingerprint text (empty if the fingerprint has aged out).
    pub text: String,
    pub code: String,
    pub message: String,
    pub duration_ms: f64,
}

fn rate(errors: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        errors as f64 / count as f64
    }
}

/// p50, p95 and p99 of `s`, or all unknown when some of its executions came without a
/// distribution (D1 analytics answered without `quantiles`): percentiles of the part that
/// had one would pass for the whole.
fn known_quantiles(s: &Sums) -> [Option<f64>; 3] {
    if s.hist.count() < s.count {
        return [None; 3];
    }
    s.hist.quantiles([0.50, 0.95, 0.99])
}

/// Reads the sums columns starting at `first` (count, errors, sum_ms, rows_read,
/// rows_written, rows_returned, hist) and adds them to `into`.
fn add_row(row: &rusqlite::Row, first: usize, into: &mut Sums) -> Result<()> {
    let u = |i: usize| -> Result<u64> { Ok(row.get::<_, i64>(first + i)?.max(0) as u64) };
    into.count += u(0)?;
    into.errors += u(1)?;
    into.sum_ms += row.get::<_, f64>(first + 2)?;
    into.rows_read += u(3)?;
    into.rows_written += u(4)?;
    into.rows_returned += u(5)?;
    match row.get_ref(first + 6)? {
        rusqlite::types::ValueRef::Blob(b) => into.hist.merge_bytes(b)?,
        other => {
            return Err(MetricsError::Corrupt {
                what: "rollup histogram",
                value: format!("{:?}", other.data_type()),
            });
        }
    }
    Ok(())
}

const SUMS: &str = "count, errors, sum_ms, rows_read, rows_written, rows_returned, hist";

/// Which rows a reader takes: `?3` the environment (NULL: all), `?4` whether d1ops' own
/// statements (keys `<env>@d1ops`) count.
const ENV_FILTER: &str = "(CASE WHEN ?3 IS NULL THEN (?4 OR env NOT LIKE '%@d1ops') \
     ELSE (env = ?3 OR (?4 AND env = ?3 || '@d1ops')) END)";

impl MetricsStore {
    /// Environment-wide rows of `res` with `from <= t < to`, each passed to `f(t, row)`;
    /// the sums start at column 1.
    fn scan_env(
        &self,
        res: Resolution,
        env: Option<&str>,
        include_d1ops: bool,
        from: i64,
        to: i64,
        f: &mut dyn FnMut(i64, &rusqlite::Row) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT t, {SUMS} FROM {} WHERE t >= ?1 AND t < ?2 AND {ENV_FILTER} ORDER BY t",
            res.env_table()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query((from, to, env, include_d1ops))?;
        while let Some(row) = rows.next()? {
            f(row.get(0)?, row)?;
        }
        Ok(())
    }

    /// Latency, QPS and error-rate series for one environment (or all), buckets of `step`
    /// aligned to multiples of it. `step` is rounded up to whole minutes, and to whole hours
    /// when the window reaches back past minute retention. At most [`MAX_POINTS`] buckets.
    pub fn series(
        &self,
        env: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: chrono::Duration,
    ) -> Result<Vec<SeriesPoint>> {
        let (from, to) = (from.timestamp(), to.timestamp());
        if to <= from {
            return Ok(Vec::new());
        }
        let mut step = (step.num_seconds().max(60) + 59) / 60 * 60;
        let tier = |step: i64| {
            [Resolution::Day, Resolution::Hour]
                .into_iter()
                .find(|r| step % r.secs() == 0)
                .unwrap_or(Resolution::Minute)
        };
        let mut t0 = from.div_euclid(step) * step;
        if tier(step) == Resolution::Minute && t0 < self.watermark("env_minutes_from")? {
            step = (step + 3_599) / 3_600 * 3_600;
            t0 = from.div_euclid(step) * step;
        }
        let res = tier(step);
        let n = (to - t0 + step - 1) / step;
        if n > MAX_POINTS {
            return Err(MetricsError::Invalid(format!(
                "a series of {n} points is too long (at most {MAX_POINTS}); use a larger step"
            )));
        }
        let point = |i: usize, s: &Sums| {
            let t = t0 + i as i64 * step;
            let [p50, p95, p99] = known_quantiles(s);
            let secs = ((t + step).min(to) - t).max(1);
            SeriesPoint {
                t: time_of(t),
                count: s.count,
                errors: s.errors,
                qps: s.count as f64 / secs as f64,
                error_rate: rate(s.errors, s.count),
                p50,
                p95,
                p99,
            }
        };
        let empty = Sums::default();
        let mut points: Vec<SeriesPoint> = (0..n as usize).map(|i| point(i, &empty)).collect();
        // Rows arrive in time order, so buckets fill one after another: one accumulator,
        // reused, instead of a histogram per bucket.
        let (mut current, mut at) = (Sums::default(), None::<usize>);
        let end = -res.floor(-to);
        self.scan_env(res, env, self.include_d1ops, t0, end, &mut |t, row| {
            let i = (((t - t0) / step) as usize).min(points.len() - 1);
            if let Some(prev) = at.filter(|p| *p != i) {
                points[prev] = point(prev, &current);
                current.clear();
            }
            at = Some(i);
            add_row(row, 1, &mut current)
        })?;
        if let Some(last) = at {
            points[last] = point(last, &current);
        }
        Ok(points)
    }

    /// Totals over `[from, to)` (whole minutes; whole hours where minutes have been dropped).
    pub fn window_stats(
        &self,
        env: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<WindowStats> {
        let mut total = Sums::default();
        let spans = cover(
            from.timestamp(),
            to.timestamp(),
            self.watermark("env_minutes_from")?,
            self.watermark("data_end")?,
        );
        for Span { res, from, to } in spans {
            self.scan_env(res, env, self.include_d1ops, from, to, &mut |_, row| {
                add_row(row, 1, &mut total)
            })?;
        }
        Ok(WindowStats {
            count: total.count,
            errors: total.errors,
            error_rate: rate(total.errors, total.count),
            p95: known_quantiles(&total)[1],
        })
    }

    /// The first minute (hour, where minutes were dropped) of `[from, to)` at which the
    /// running total of rows read (`written == false`) or written, all environments and
    /// d1ops' own statements together (they count against the plan), reaches `limit`; `None` when the rollups never reach it.
    pub fn running_total_reaches(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        written: bool,
        limit: u64,
    ) -> Result<Option<DateTime<Utc>>> {
        let (from, to) = (from.timestamp(), to.timestamp());
        let res = if from >= self.watermark("env_minutes_from")? {
            Resolution::Minute
        } else {
            Resolution::Hour
        };
        let (mut total, mut reached) = (0u64, None);
        self.scan_env(res, None, true, res.floor(from), to, &mut |t, row| {
            if reached.is_none() {
                let column = if written { 5 } else { 4 };
                total = total.saturating_add(row.get::<_, i64>(column)?.max(0) as u64);
                if total >= limit {
                    reached = Some(time_of(t));
                }
            }
            Ok(())
        })?;
        Ok(reached)
    }

    /// The `limit` heaviest fingerprints over `[from, to)` by `order`.
    pub fn top_queries(
        &self,
        env: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        order: TopBy,
        limit: usize,
    ) -> Result<Vec<QueryStat>> {
        let mut by_fp: HashMap<(String, bool), Sums> = HashMap::new();
        let spans = cover(
            from.timestamp(),
            to.timestamp(),
            self.watermark("fp_minutes_from")?,
            self.watermark("data_end")?,
        );
        for Span { res, from, to } in spans {
            let sql = format!(
                "SELECT fp, {SUMS}, env LIKE '%@d1ops' FROM {} WHERE t >= ?1 AND t < ?2 \
                 AND {ENV_FILTER}",
                res.fp_table()
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query((from, to, env, self.include_d1ops))?;
            while let Some(row) = rows.next()? {
                let fp = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let own: bool = row.get(8)?;
                match by_fp.get_mut(&(fp.to_string(), own)) {
                    Some(s) => add_row(row, 1, s)?,
                    None => {
                        let mut s = Sums::default();
                        add_row(row, 1, &mut s)?;
                        by_fp.insert((fp.to_string(), own), s);
                    }
                }
            }
        }
        let mut stats: Vec<QueryStat> = by_fp
            .into_iter()
            .filter(|(_, s)| s.count > 0 && (order != TopBy::Errors || s.errors > 0))
            .map(|((id, own), s)| {
                let [p50, p95, p99] = known_quantiles(&s);
                QueryStat {
                    fingerprint_id: id,
                    source: if own { D1OPS_SOURCE } else { APP_SOURCE }.to_string(),
                    text: String::new(),
                    count: s.count,
                    errors: s.errors,
                    total_ms: s.sum_ms,
                    p50_ms: p50,
                    p95_ms: p95,
                    p99_ms: p99,
                    sampled: s.hist.count(),
                    p50: p50.unwrap_or(0.0),
                    p95: p95.unwrap_or(0.0),
                    p99: p99.unwrap_or(0.0),
                    rows_read: s.rows_read,
                    rows_written: s.rows_written,
                }
            })
            .collect();
        let key = |q: &QueryStat| match order {
            TopBy::TotalTime => q.total_ms,
            // Unknown percentiles rank last, not as the fastest.
            TopBy::P95 => q.p95_ms.unwrap_or(f64::NEG_INFINITY),
            TopBy::RowsRead => q.rows_read as f64,
            TopBy::Errors => q.errors as f64,
        };
        // Keys are compared to the microsecond: sums of the same latencies added in another
        // order differ in the last bits, and two equal totals must tie (then count, then id
        // decide), or the order would change from run to run.
        let rounded = |q: &QueryStat| (key(q) * 1000.0).round();
        stats.sort_by(|a, b| {
            rounded(b)
                .total_cmp(&rounded(a))
                .then(b.count.cmp(&a.count))
                .then_with(|| a.fingerprint_id.cmp(&b.fingerprint_id))
                .then_with(|| a.source.cmp(&b.source))
        });
        stats.truncate(limit);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT text FROM fingerprints WHERE id = ?1")?;
        for q in &mut stats {
            let mut rows = stmt.query([&q.fingerprint_id])?;
            if let Some(row) = rows.next()? {
                q.text = row.get(0)?;
            }
        }
        Ok(stats)
    }

    /// Daily traffic for one environment (or all) for the UTC days `from..=to`; days without
    /// traffic are absent.
    pub fn daily(
        &self,
        env: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyTraffic>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t, sum(count), sum(rows_read), sum(rows_written) FROM env_day
             WHERE t >= ?1 AND t < ?2 AND (?3 IS NULL OR env = ?3 OR env = ?3 || '@d1ops')
             GROUP BY t ORDER BY t",
        )?;
        let rows = stmt.query_map((day_start(from), day_start(to) + 86_400, env), |r| {
            Ok(DailyTraffic {
                day: day_of(r.get(0)?),
                queries: r.get::<_, i64>(1)?.max(0) as u64,
                rows_read: r.get::<_, i64>(2)?.max(0) as u64,
                rows_written: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest `limit` raw errors, newest first.
    pub fn recent_errors(&self, env: Option<&str>, limit: usize) -> Result<Vec<RecentError>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.at_ms, e.env, e.release, e.fp, coalesce(f.text, ''), e.code, e.message,
                    e.duration_ms
             FROM error_ring e LEFT JOIN fingerprints f ON f.id = e.fp
             WHERE (?1 IS NULL OR e.env = ?1) ORDER BY e.seq DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map((env, limit), |r| {
            Ok(RecentError {
                at: DateTime::from_timestamp_millis(r.get(0)?).unwrap_or_default(),
                env: r.get(1)?,
                release: r.get(2)?,
                fingerprint_id: r.get(3)?,
                text: r.get(4)?,
                code: r.get(5)?,
                message: r.get(6)?,
                duration_ms: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The start of the newest minute (hour, where minutes were dropped) in which `env` ran a
    /// statement; `None` without recorded traffic.
    pub fn last_traffic(&self, env: &str) -> Result<Option<DateTime<Utc>>> {
        for res in [Resolution::Minute, Resolution::Hour] {
            let sql = format!(
                "SELECT max(t) FROM {} WHERE env = ?1 AND count > 0",
                res.env_table()
            );
            let t: Option<i64> = self.conn.query_row(&sql, [env], |r| r.get(0))?;
            if let Some(t) = t {
                return Ok(Some(time_of(t)));
            }
        }
        Ok(None)
    }

    /// Environments with traffic in the retained day rollups, by name.
    pub fn environments(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT env FROM env_day WHERE env NOT LIKE '%@d1ops' ORDER BY env",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The text of a fingerprint id, if known.
    pub fn fingerprint_text(&self, id: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT text FROM fingerprints WHERE id = ?1")?;
        let mut rows = stmt.query([id])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }
}
