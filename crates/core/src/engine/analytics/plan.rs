//! Which spans a sync asks Cloudflare for: per database from its cursor (or 30 days back for
//! a database never synced) up to the end of the current minute, in hour buckets where that
//! reaches back further than [`MINUTE_DETAIL`] and minute buckets after; daily totals and
//! storage from the earliest day any database still needs. Databases that start at the same
//! time share a node (`databaseId_in`). Pure: no clock, no I/O.
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::cloudflare::analytics::{Bucket, Node};
use crate::metrics::Resolution;
use crate::metrics::analytics::SyncCursor;

/// How far back a database never synced is read (D1 keeps 31 days).
pub const BACKFILL_DAYS: i64 = 30;
/// Buckets younger than this may still change (Cloudflare's data arrives with a delay, the
/// current minute is still running): they are fetched again by the next sync.
pub const SETTLE: Duration = Duration::minutes(10);
/// The stretch before now fetched per minute; older spans come per hour.
pub const MINUTE_DETAIL: Duration = Duration::hours(2);

/// Databases read from the same start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `(environment, database id)`.
    pub databases: Vec<(String, String)>,
    pub from: DateTime<Utc>,
    /// Where hour buckets end and minute buckets begin (`from` when all are minutes).
    pub minutes_from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Group {
    /// The query nodes reading this group: hours, then minutes (either may be absent).
    pub fn nodes(&self) -> Vec<Node> {
        let ids: Vec<String> = self.databases.iter().map(|(_, db)| db.clone()).collect();
        let mut out = Vec::new();
        for (from, to, bucket) in [
            (self.from, self.minutes_from, Bucket::Hour),
            (self.minutes_from, self.to, Bucket::Minute),
        ] {
            if from < to {
                out.push(Node::Queries {
                    databases: ids.clone(),
                    from,
                    to,
                    bucket,
                });
            }
        }
        out
    }
}

/// What one sync reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub groups: Vec<Group>,
    /// Buckets starting before this are final after the sync.
    pub settle: DateTime<Utc>,
    pub days_from: NaiveDate,
    pub days_to: NaiveDate,
}

impl Plan {
    /// The daily-totals and storage nodes, for every database.
    pub fn day_nodes(&self) -> Vec<Node> {
        let ids: Vec<String> = (self.groups.iter())
            .flat_map(|g| g.databases.iter().map(|(_, db)| db.clone()))
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        vec![
            Node::Daily {
                databases: ids.clone(),
                from: self.days_from,
                to: self.days_to,
            },
            Node::Storage {
                databases: ids,
                from: self.days_from,
                to: self.days_to,
            },
        ]
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Plans a sync at `now` of `databases` (`(environment, database id)`) given their cursors.
pub fn plan(now: DateTime<Utc>, databases: &[(String, String)], cursors: &[SyncCursor]) -> Plan {
    let to = at(Resolution::Minute.ceil(now.timestamp()));
    let oldest = at(Resolution::Hour.floor((now - Duration::days(BACKFILL_DAYS)).timestamp()));
    let detail = at(Resolution::Hour.floor((now - MINUTE_DETAIL).timestamp()));
    let today = now.date_naive();
    let mut days_from = today;
    let mut by_start: BTreeMap<DateTime<Utc>, Vec<(String, String)>> = BTreeMap::new();
    for (env, db) in databases {
        let cursor = cursors.iter().find(|c| &c.database_id == db);
        let from = cursor.map_or(oldest, |c| c.settled_to.max(oldest)).min(to);
        days_from = days_from.min(cursor.map_or(oldest.date_naive(), |c| c.days_from));
        by_start
            .entry(from)
            .or_default()
            .push((env.clone(), db.clone()));
    }
    let groups = by_start
        .into_iter()
        .map(|(from, databases)| Group {
            databases,
            from,
            minutes_from: detail.clamp(from, to),
            to,
        })
        .collect();
    Plan {
        groups,
        settle: at(Resolution::Minute.floor((now - SETTLE).timestamp())),
        days_from: days_from.max(oldest.date_naive()),
        days_to: today,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 34, 20)
            .single()
            .unwrap()
    }

    fn dbs(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (format!("env-{n}"), n.to_string()))
            .collect()
    }

    fn cursor(db: &str, settled: DateTime<Utc>) -> SyncCursor {
        SyncCursor {
            database_id: db.into(),
            env: format!("env-{db}"),
            settled_to: settled,
            days_from: settled.date_naive() - chrono::Days::new(1),
            newest_bucket: None,
            synced_at: settled,
        }
    }

    #[test]
    fn a_first_sync_backfills_thirty_days_in_hours_then_minutes() {
        let p = plan(now(), &dbs(&["a", "b"]), &[]);
        assert_eq!(p.groups.len(), 1, "both start at the same time: one node");
        let g = &p.groups[0];
        assert_eq!(
            g.from,
            Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0)
                .single()
                .unwrap()
        );
        assert_eq!(
            g.minutes_from,
            Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap()
        );
        assert_eq!(
            g.to,
            Utc.with_ymd_and_hms(2026, 3, 2, 12, 35, 0)
                .single()
                .unwrap()
        );
        let nodes = g.nodes();
        assert!(matches!(
            nodes[0],
            Node::Queries {
                bucket: Bucket::Hour,
                ..
            }
        ));
        assert!(matches!(
            nodes[1],
            Node::Queries {
                bucket: Bucket::Minute,
                ..
            }
        ));
        assert_eq!(
            p.settle,
            Utc.with_ymd_and_hms(2026, 3, 2, 12, 24, 0)
                .single()
                .unwrap()
        );
        assert_eq!(p.days_from, NaiveDate::from_ymd_opt(2026, 1, 31).unwrap());
        assert_eq!(p.day_nodes().len(), 2);
    }

    #[test]
    fn later_syncs_read_minutes_from_the_cursor_and_new_databases_backfill() {
        let settled = Utc
            .with_ymd_and_hms(2026, 3, 2, 12, 20, 0)
            .single()
            .unwrap();
        let p = plan(now(), &dbs(&["a", "new"]), &[cursor("a", settled)]);
        assert_eq!(p.groups.len(), 2);
        let a = p.groups.iter().find(|g| g.databases[0].1 == "a").unwrap();
        assert_eq!((a.from, a.minutes_from), (settled, settled));
        assert_eq!(a.nodes().len(), 1, "minutes only");
        let new = p.groups.iter().find(|g| g.databases[0].1 == "new").unwrap();
        assert_eq!(new.nodes().len(), 2);
        assert_eq!(
            p.days_from,
            NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            "the new database needs every day"
        );
    }

    #[test]
    fn a_long_pause_reads_hours_from_the_cursor_and_never_past_retention() {
        let settled = Utc.with_ymd_and_hms(2026, 3, 1, 8, 13, 0).single().unwrap();
        let p = plan(now(), &dbs(&["a"]), &[cursor("a", settled)]);
        let g = &p.groups[0];
        assert_eq!(g.from, settled, "the partial hour is read by exact times");
        assert_eq!(g.nodes().len(), 2);
        let ancient = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap();
        let p = plan(now(), &dbs(&["a"]), &[cursor("a", ancient)]);
        assert_eq!(
            p.groups[0].from,
            Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0)
                .single()
                .unwrap()
        );
        assert_eq!(p.days_from, NaiveDate::from_ymd_opt(2026, 1, 31).unwrap());
    }

    #[test]
    fn nothing_to_read_without_databases() {
        let p = plan(now(), &[], &[]);
        assert!(p.groups.is_empty());
        assert!(p.day_nodes().is_empty());
    }
}
