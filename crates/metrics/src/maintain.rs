//! Retention: drops rollups older than their tier keeps them and moves the watermarks that
//! tell readers where minute rows end. Hours and days are written together with minutes (see
//! `store.rs`), so downsampling a minute to its hour is already done when `maintain` drops the
//! minute; nothing is recomputed here. Cutoffs are aligned to whole hours (minutes) and whole
//! days (hours, days) so a reader never sees half of an hour's minutes. Must not write rollups.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::int;
use super::rollup::Resolution;
use super::store::MetricsStore;
use super::{Result, day_of};

/// What one `maintain` run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainReport {
    pub minute_rows: usize,
    pub hour_rows: usize,
    pub day_rows: usize,
    pub week_rows: usize,
    pub fingerprints: usize,
    pub usage_rows: usize,
    pub errors: usize,
}

fn ago(now: i64, d: std::time::Duration) -> i64 {
    now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl MetricsStore {
    /// Applies retention as of `now` in one transaction (cheap when there is nothing to do;
    /// callers may run it on every start or every few minutes).
    pub fn maintain(&mut self, now: DateTime<Utc>) -> Result<MaintainReport> {
        let now = now.timestamp();
        let s = &self.settings;
        let hour = Resolution::Hour;
        let day = Resolution::Day;
        let fp_minutes_cut = hour.floor(ago(now, s.downsample_after.min(s.minute_retention)));
        let env_minutes_cut = hour.floor(ago(now, s.minute_retention));
        let hours_cut = day.floor(ago(now, s.hour_retention));
        let days_cut = day.floor(ago(now, s.day_retention));
        let weeks_cut = days_cut - Resolution::Week.secs() + 1;
        let capacity = int(s.error_capacity as u64);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let delete = |table: &str, cut: i64| -> Result<usize> {
            Ok(tx.execute(&format!("DELETE FROM {table} WHERE t < ?1"), [cut])?)
        };
        let mut report = MaintainReport {
            minute_rows: delete("fp_minute", fp_minutes_cut)?
                + delete("env_minute", env_minutes_cut)?,
            hour_rows: delete("fp_hour", hours_cut)? + delete("env_hour", hours_cut)?,
            day_rows: delete("fp_day", days_cut)? + delete("env_day", days_cut)?,
            // A week row goes when all of its days have gone.
            week_rows: delete("fp_week", weeks_cut)? + delete("env_week", weeks_cut)?,
            ..MaintainReport::default()
        };
        report.fingerprints = tx.execute(
            "DELETE FROM fingerprints WHERE last_seen < ?1",
            [hours_cut.min(weeks_cut)],
        )?;
        report.usage_rows = tx.execute(
            "DELETE FROM usage_daily WHERE day < ?1",
            [day_of(days_cut).to_string()],
        )?;
        report.errors = tx.execute(
            "DELETE FROM error_ring WHERE seq <= (SELECT max(seq) FROM error_ring) - ?1",
            [capacity],
        )?;
        {
            let mut mark = tx.prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            )?;
            mark.execute(("fp_minutes_from", fp_minutes_cut))?;
            mark.execute(("env_minutes_from", env_minutes_cut))?;
        }
        tx.commit()?;
        if report.minute_rows + report.hour_rows + report.day_rows + report.week_rows > 0 {
            // Return the freed pages to the file system (the store is `auto_vacuum =
            // INCREMENTAL`); the rows are gone either way, so a busy store only skips this.
            let _ = self.incremental_vacuum();
        }
        Ok(report)
    }

    /// `PRAGMA incremental_vacuum` yields one row per freed page: step it to the end.
    fn incremental_vacuum(&self) -> Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryEvent;

    #[test]
    fn dropped_rows_give_their_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        let start = DateTime::from_timestamp(1_740_787_200, 0).unwrap();
        let events: Vec<QueryEvent> = (0..5 * 1_440)
            .flat_map(|m| {
                (0..20).map(move |q| QueryEvent {
                    at: start + chrono::Duration::minutes(m),
                    ..QueryEvent::for_sql("production", &format!("SELECT {q} FROM t{q}"), 1.0)
                })
            })
            .collect();
        store.record(&events).unwrap();
        let pragma = |s: &MetricsStore, p: &str| -> i64 {
            s.conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .unwrap()
        };
        let pages = pragma(&store, "page_count");
        let report = store.maintain(start + chrono::Duration::days(5)).unwrap();
        assert!(report.minute_rows > 50_000, "{report:?}");
        assert_eq!(pragma(&store, "freelist_count"), 0);
        assert!(pragma(&store, "page_count") < pages / 2);
    }
}
