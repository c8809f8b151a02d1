//! The metrics database `.d1ops/metrics.sqlite` (WAL): its versioned schema (`PRAGMA
//! user_version`, upgrades like the state store's), retention settings and watermarks. It is
//! separate from `state.sqlite` so a flood of traffic never contends with the promotion lock.
//! Writing lives in `record.rs`, reading in `query.rs`, retention in `maintain.rs`; this file
//! must not aggregate or interpret rollups.
//!
//! Layout. Times are unix seconds (rollup starts are aligned to their resolution), rollup rows
//! are keyed `(t, env[, fp])` so every reader is a range scan on time:
//! - `fp_minute` / `fp_hour` / `fp_day` / `fp_week`: per (environment, fingerprint id) sums
//!   and a histogram BLOB; `env_minute` … `env_week`: the same per environment over all
//!   fingerprints. All eight are written together by every batch (write-time downsampling),
//!   so a 30-day window reads ~20 rows per fingerprint (hours, days, weeks), never 43,200
//!   minutes.
//! - `fingerprints`: id → normalised text, first and last seen.
//! - `error_ring`: the most recent raw errors, bounded (oldest dropped).
//! - `usage_daily`: sampled storage and database count per (day, environment).
//! - `meta`: watermarks (`fp_minutes_from`, `env_minutes_from`: minute rows before these were
//!   dropped by retention, so readers use hours there; `data_end`: the end of the newest span
//!   recorded, after which a reader may assume nothing exists).
//! - `usage_traffic`, `d1_ledger`, `d1_sync`, `analytics_calls`, `analytics_status`: D1
//!   analytics pulled from Cloudflare (v3; see `analytics.rs`).
//!
//! 16 KiB pages, incremental auto-vacuum, a memory-mapped file and a 16 MiB page cache: the
//! readers scan thousands of 0.3–2 KB rows per call.
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use super::histogram::Histogram;
use super::{MetricsError, Result};

/// File name of the metrics database inside `.d1ops/`.
pub const METRICS_FILE: &str = "metrics.sqlite";

const ROLLUP_COLUMNS: &str = "count INTEGER NOT NULL, errors INTEGER NOT NULL, \
    sum_ms REAL NOT NULL, rows_read INTEGER NOT NULL, rows_written INTEGER NOT NULL, \
    rows_returned INTEGER NOT NULL, hist BLOB NOT NULL";

/// Schema upgrades, one per version; `user_version` counts how many have run.
fn upgrades() -> Vec<String> {
    let mut v1 = String::new();
    for table in ["fp_minute", "fp_hour", "fp_day"] {
        v1.push_str(&format!(
            "CREATE TABLE {table}(t INTEGER NOT NULL, env TEXT NOT NULL, fp TEXT NOT NULL, \
             {ROLLUP_COLUMNS}, PRIMARY KEY (t, env, fp)) WITHOUT ROWID;\n"
        ));
    }
    for table in ["env_minute", "env_hour", "env_day"] {
        v1.push_str(&format!(
            "CREATE TABLE {table}(t INTEGER NOT NULL, env TEXT NOT NULL, {ROLLUP_COLUMNS}, \
             PRIMARY KEY (t, env)) WITHOUT ROWID;\n"
        ));
    }
    v1.push_str(
        "CREATE TABLE fingerprints(id TEXT PRIMARY KEY, text TEXT NOT NULL, \
            first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE error_ring(seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, \
            env TEXT NOT NULL, release TEXT, fp TEXT NOT NULL, code TEXT NOT NULL, \
            message TEXT NOT NULL, duration_ms REAL NOT NULL);
         CREATE INDEX error_ring_env ON error_ring(env, seq);
         CREATE TABLE usage_daily(day TEXT NOT NULL, env TEXT NOT NULL, \
            storage_bytes INTEGER NOT NULL, databases INTEGER NOT NULL, \
            sampled_at INTEGER NOT NULL, PRIMARY KEY (day, env)) WITHOUT ROWID;
         CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
    );
    // v2: a week tier (Monday-based), filled from the day rows by `backfill_weeks`.
    let mut v2 = String::new();
    v2.push_str(&format!(
        "CREATE TABLE fp_week(t INTEGER NOT NULL, env TEXT NOT NULL, fp TEXT NOT NULL, \
         {ROLLUP_COLUMNS}, PRIMARY KEY (t, env, fp)) WITHOUT ROWID;\n\
         CREATE TABLE env_week(t INTEGER NOT NULL, env TEXT NOT NULL, {ROLLUP_COLUMNS}, \
         PRIMARY KEY (t, env)) WITHOUT ROWID;\n"
    ));
    // v3: D1 analytics from Cloudflare (see `analytics.rs`): daily traffic as Cloudflare
    // counts it, the buckets that may still change, per-database sync progress, the
    // GraphQL call log behind the budget, and the last sync's outcome.
    let v3 = format!(
        "CREATE TABLE usage_traffic(day TEXT NOT NULL, env TEXT NOT NULL, \
            queries INTEGER NOT NULL, rows_read INTEGER NOT NULL, rows_written INTEGER NOT NULL, \
            synced_at INTEGER NOT NULL, PRIMARY KEY (day, env)) WITHOUT ROWID;
         CREATE TABLE d1_ledger(db TEXT NOT NULL, res TEXT NOT NULL, t INTEGER NOT NULL, \
            env TEXT NOT NULL, fp_text TEXT NOT NULL, {ROLLUP_COLUMNS}, \
            PRIMARY KEY (db, res, t, fp_text)) WITHOUT ROWID;
         CREATE TABLE d1_sync(db TEXT PRIMARY KEY, env TEXT NOT NULL, \
            settled_to INTEGER NOT NULL, days_from TEXT NOT NULL, newest_bucket INTEGER, \
            synced_at INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE analytics_calls(seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);
         CREATE TABLE analytics_status(id INTEGER PRIMARY KEY CHECK (id = 1), \
            attempted_at INTEGER, synced_at INTEGER, blocked_until INTEGER, \
            outcome TEXT, message TEXT);"
    );
    vec![v1, v2, v3]
}

/// Retention and ring sizes. Defaults: per-fingerprint minutes 48 h, environment minutes
/// 7 days, hours, days and weeks 400 days, 1,000 recent errors.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    /// Age after which per-fingerprint detail is hourly: `maintain` drops per-fingerprint
    /// minute rollups older than this (their hour and day rollups already hold the data).
    pub downsample_after: Duration,
    /// Age after which per-environment minute rollups (the minute-resolution charts) are
    /// dropped. Also caps `downsample_after`.
    pub minute_retention: Duration,
    /// Age after which hour rollups are dropped.
    pub hour_retention: Duration,
    /// Age after which day rollups (daily traffic for capacity) and usage samples are
    /// dropped; a week rollup goes when all of its days have.
    pub day_retention: Duration,
    /// Raw errors kept in the ring.
    pub error_capacity: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        const HOUR: u64 = 3_600;
        MetricsSettings {
            downsample_after: Duration::from_secs(48 * HOUR),
            minute_retention: Duration::from_secs(7 * 24 * HOUR),
            hour_retention: Duration::from_secs(400 * 24 * HOUR),
            day_retention: Duration::from_secs(400 * 24 * HOUR),
            error_capacity: 1_000,
        }
    }
}

/// The metrics database. One connection, used from one thread at a time; several processes
/// may open the same file (WAL, 10 s busy timeout).
pub struct MetricsStore {
    pub(crate) conn: Connection,
    pub(crate) settings: MetricsSettings,
    /// Whether readers of traffic (series, window totals, top queries) include d1ops' own
    /// statements (see `source.rs`); off by default: they show the app's.
    pub(crate) include_d1ops: bool,
}

impl MetricsStore {
    /// Readers of traffic include d1ops' own statements (`true`) or show the app's only.
    pub fn including_d1ops(mut self, include: bool) -> MetricsStore {
        self.include_d1ops = include;
        self
    }
}

impl MetricsStore {
    /// Opens (creating when absent) `state_dir/metrics.sqlite` with default settings.
    pub fn open(state_dir: &Path) -> Result<MetricsStore> {
        MetricsStore::open_with(state_dir, MetricsSettings::default())
    }

    /// Opens with explicit retention settings.
    pub fn open_with(state_dir: &Path, settings: MetricsSettings) -> Result<MetricsStore> {
        let path = state_dir.join(METRICS_FILE);
        let shown = path.display().to_string();
        std::fs::create_dir_all(state_dir).map_err(|source| MetricsError::Folder {
            path: shown.clone(),
            source,
        })?;
        let open_err = |source| MetricsError::Open {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version == 0 {
            // Before the first table and before WAL. 16 KiB pages hold day and hour rows
            // (histograms of ~0.3–2 KB) without overflow pages; incremental auto-vacuum lets
            // `maintain` hand freed pages back.
            conn.pragma_update(None, "page_size", 16_384i64)
                .map_err(open_err)?;
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(open_err)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        // Readers scan thousands of rollup rows: map the file and keep a larger page cache.
        conn.pragma_update(None, "mmap_size", 256i64 << 20)
            .map_err(open_err)?;
        conn.pragma_update(None, "cache_size", -16_384i64)
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        register_functions(&conn).map_err(open_err)?;
        let mut store = MetricsStore {
            conn,
            settings,
            include_d1ops: false,
        };
        store.upgrade(&shown)?;
        Ok(store)
    }

    /// Runs the schema upgrades this database has not seen yet, each in its own transaction.
    fn upgrade(&mut self, shown: &str) -> Result<()> {
        let too_new = |found, known| MetricsError::TooNew {
            path: shown.to_string(),
            found,
            known,
        };
        // Step 1 (v2) adds the week tier; its rows are backfilled from the day rows.
        d1ops_sql::schema_upgrade::upgrade(&mut self.conn, &upgrades(), too_new, |i, tx| {
            if i == 1 {
                super::record::backfill_weeks(tx)?;
            }
            Ok(())
        })
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    pub fn settings(&self) -> &MetricsSettings {
        &self.settings
    }

    /// A watermark from `meta` (`i64::MIN` when never set).
    pub(crate) fn watermark(&self, key: &str) -> Result<i64> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
        let mut rows = stmt.query([key])?;
        match rows.next()? {
            Some(row) => Ok(row.get(0)?),
            None => Ok(i64::MIN),
        }
    }
}

/// `d1ops_hist_merge(a, b)`: the merge of two serialised histograms (NULL counts as empty),
/// so an upsert merges in SQLite without a read round trip. `d1ops_hist_sub(a, b)`: `a`
/// with `b`'s counts taken back out ([`Histogram::subtract`]).
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("d1ops_hist_merge", 2, flags, |ctx| {
        let mut h = Histogram::new();
        for i in 0..2 {
            let raw = ctx.get_raw(i);
            if raw == rusqlite::types::ValueRef::Null {
                continue;
            }
            let bytes = raw
                .as_blob()
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            h.merge_bytes(bytes)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
        }
        Ok(h.to_bytes())
    })?;
    conn.create_scalar_function("d1ops_hist_sub", 2, flags, |ctx| {
        let mut h = hist_arg(ctx, 0)?.unwrap_or_default();
        if let Some(other) = hist_arg(ctx, 1)? {
            h.subtract(&other);
        }
        Ok(h.to_bytes())
    })
}

/// Argument `i` of a histogram function as a histogram (`None` for NULL).
fn hist_arg(ctx: &rusqlite::functions::Context, i: usize) -> rusqlite::Result<Option<Histogram>> {
    let raw = ctx.get_raw(i);
    if raw == rusqlite::types::ValueRef::Null {
        return Ok(None);
    }
    let bytes = raw
        .as_blob()
        .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
    Histogram::from_bytes(bytes)
        .map(Some)
        .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_store_is_current_in_wal_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricsStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), upgrades().len() as i64);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let vacuum: i64 = store
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(vacuum, 2, "incremental");
        let page: i64 = store
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(page, 16_384);
        drop(store);
        let store = MetricsStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), upgrades().len() as i64);
        assert_eq!(store.watermark("fp_minutes_from").unwrap(), i64::MIN);
    }

    #[test]
    fn upgrading_to_v2_fills_the_week_tier_from_the_days() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        let start = chrono::DateTime::from_timestamp(1_740_787_200, 0).unwrap();
        let events: Vec<_> = (0..20 * 24)
            .map(|h| crate::QueryEvent {
                at: start + chrono::Duration::hours(h),
                env: if h % 3 == 0 { "preview" } else { "production" }.into(),
                ..crate::QueryEvent::for_sql("production", "SELECT 1", h as f64)
            })
            .collect();
        store.record(&events).unwrap();
        type WeekRow = (i64, String, Option<String>, i64, Vec<u8>);
        let weeks = |s: &MetricsStore| -> Vec<WeekRow> {
            let mut out = Vec::new();
            for sql in [
                "SELECT t, env, fp, count, hist FROM fp_week ORDER BY 1, 2, 3",
                "SELECT t, env, NULL, count, hist FROM env_week ORDER BY 1, 2",
            ] {
                let mut stmt = s.conn.prepare(sql).unwrap();
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .unwrap();
                out.extend(rows.map(Result::unwrap));
            }
            out
        };
        let written = weeks(&store);
        assert_eq!(
            written.len(),
            4 * 2 + 4 * 2,
            "4 weeks × 2 environments, per fp and env"
        );
        drop(store);
        let raw = Connection::open(dir.path().join(METRICS_FILE)).unwrap();
        raw.execute_batch(
            "DROP TABLE fp_week; DROP TABLE env_week; DROP TABLE usage_traffic; \
             DROP TABLE d1_ledger; DROP TABLE d1_sync; DROP TABLE analytics_calls; \
             DROP TABLE analytics_status; PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(raw);
        let store = MetricsStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), upgrades().len() as i64);
        assert_eq!(weeks(&store), written);
    }

    #[test]
    fn a_newer_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(MetricsStore::open(dir.path()).unwrap());
        let raw = Connection::open(dir.path().join(METRICS_FILE)).unwrap();
        raw.pragma_update(None, "user_version", 42).unwrap();
        drop(raw);
        let err = MetricsStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("schema version 42") && err.contains("upgrade d1ops"),
            "{err}"
        );
    }

    #[test]
    fn the_merge_function_merges_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricsStore::open(dir.path()).unwrap();
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.record(1.0);
        b.record(2.0);
        let merged: Vec<u8> = store
            .conn
            .query_row(
                "SELECT d1ops_hist_merge(?1, ?2)",
                (a.to_bytes(), b.to_bytes()),
                |r| r.get(0),
            )
            .unwrap();
        a.merge(&b);
        assert_eq!(Histogram::from_bytes(&merged).unwrap(), a);
        let bad = store
            .conn
            .query_row("SELECT d1ops_hist_merge(x'07', NULL)", [], |r| {
                r.get::<_, Vec<u8>>(0)
            });
        assert!(bad.is_err());
    }
}
