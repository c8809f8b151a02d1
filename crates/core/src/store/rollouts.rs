//! Gradual rollouts of `worker` targets: one row per (release, target) whose production
//! deploy went live in steps (`rollout = [10, 50, 100]`). The row says which two versions
//! share the traffic, the steps, the step live now, when the next one is due and the latest
//! regression check, so a rollout outlives the process that started it (`d1ops rollout
//! status|continue|abort`). Moves are compare-and-set on (status, step): two processes
//! driving one rollout never both advance it. The engine decides; this module only keeps
//! the rows.
use rusqlite::params;

use super::{Result, Store, StoreError, optional};
use crate::model::now;

/// One rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RolloutRow {
    pub id: i64,
    pub release_id: String,
    pub target: String,
    /// The Worker's name.
    pub script: String,
    /// The version that served all the traffic before (it takes the rest of each split).
    pub previous_version: String,
    /// The release's version.
    pub new_version: String,
    /// The new version's percentage at each step, ending at 100.
    pub steps: Vec<u32>,
    /// The index in `steps` of the step live now.
    pub step: usize,
    /// `rolling`, `done`, `halted` or `aborted`.
    pub status: String,
    /// How long each step is watched before the next (seconds).
    pub wait_secs: u64,
    pub started_at: String,
    /// When the next step is due (`None` once the rollout ended).
    pub next_at: Option<String>,
    /// The latest regression check (the engine's JSON).
    pub last_check: Option<String>,
    /// Why it ended, when it did not end at 100%.
    pub detail: Option<String>,
    pub updated_at: String,
}

/// A rollout about to start.
#[derive(Debug, Clone)]
pub struct NewRollout<'a> {
    pub release_id: &'a str,
    pub target: &'a str,
    pub script: &'a str,
    pub previous_version: &'a str,
    pub new_version: &'a str,
    pub steps: &'a [u32],
    pub wait_secs: u64,
    pub next_at: Option<&'a str>,
}

const COLUMNS: &str = "id, release_id, target, script, previous_version, new_version, steps, \
     step, status, wait_secs, started_at, next_at, last_check, detail, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RolloutRow, String)> {
    let steps: String = r.get(6)?;
    let step: i64 = r.get(7)?;
    let wait: i64 = r.get(9)?;
    Ok((
        RolloutRow {
            id: r.get(0)?,
            release_id: r.get(1)?,
            target: r.get(2)?,
            script: r.get(3)?,
            previous_version: r.get(4)?,
            new_version: r.get(5)?,
            steps: Vec::new(),
            step: usize::try_from(step).unwrap_or(0),
            status: r.get(8)?,
            wait_secs: u64::try_from(wait).unwrap_or(0),
            started_at: r.get(10)?,
            next_at: r.get(11)?,
            last_check: r.get(12)?,
            detail: r.get(13)?,
            updated_at: r.get(14)?,
        },
        steps,
    ))
}

fn decode(rows: Vec<(RolloutRow, String)>) -> Result<Vec<RolloutRow>> {
    rows.into_iter()
        .map(|(mut r, steps)| {
            r.steps = serde_json::from_str(&steps).map_err(|_| StoreError::Corrupt {
                what: "rollouts.steps",
                value: steps.clone(),
            })?;
            Ok(r)
        })
        .collect()
}

impl Store {
    /// Records a rollout at its first step (`rolling`, or `done` when that step is 100%)
    /// and its audit event, in one transaction; returns its id.
    pub fn insert_rollout(
        &self,
        new: &NewRollout<'_>,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        let steps = serde_json::to_string(new.steps).unwrap_or_else(|_| "[]".into());
        let status = if new.steps.first() == Some(&100) {
            "done"
        } else {
            "rolling"
        };
        let tx = self.conn.unchecked_transaction()?;
        let at = now();
        tx.execute(
            "INSERT INTO rollouts(release_id, target, script, previous_version, new_version, \
             steps, step, status, wait_secs, started_at, next_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?9)",
            params![
                new.release_id,
                new.target,
                new.script,
                new.previous_version,
                new.new_version,
                steps,
                status,
                i64::try_from(new.wait_secs).unwrap_or(i64::MAX),
                at,
                if status == "done" { None } else { new.next_at },
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        self.audit(
            actor,
            action,
            Some(new.release_id),
            Some(crate::model::PRODUCTION),
            detail,
        )?;
        tx.commit()?;
        self.publish_audit_head();
        Ok(id)
    }

    /// Every rollout of `release`, oldest first.
    pub fn release_rollouts(&self, release: &str) -> Result<Vec<RolloutRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM rollouts WHERE release_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([release], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        decode(rows)
    }

    /// Every rollout still `rolling`, oldest first.
    pub fn rolling_rollouts(&self) -> Result<Vec<RolloutRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM rollouts WHERE status = 'rolling' ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        decode(rows)
    }

    /// One rollout by id.
    pub fn rollout(&self, id: i64) -> Result<Option<RolloutRow>> {
        let found = optional(self.conn.query_row(
            &format!("SELECT {COLUMNS} FROM rollouts WHERE id = ?1"),
            [id],
            row,
        ))?;
        Ok(decode(found.into_iter().collect())?.into_iter().next())
    }

    /// Moves a `rolling` rollout from step `from` to step `to` (`done` when `done`), if no
    /// one moved it first; returns whether this call moved it. Call inside the transaction
    /// that audits the step.
    pub fn advance_rollout(
        &self,
        id: i64,
        from: usize,
        to: usize,
        done: bool,
        next_at: Option<&str>,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE rollouts SET step = ?3, status = ?4, next_at = ?5, updated_at = ?6 \
             WHERE id = ?1 AND step = ?2 AND status = 'rolling'",
            params![
                id,
                i64::try_from(from).unwrap_or(-1),
                i64::try_from(to).unwrap_or(-1),
                if done { "done" } else { "rolling" },
                if done { None } else { next_at },
                now()
            ],
        )?;
        Ok(n == 1)
    }

    /// Ends a `rolling` rollout as `halted` or `aborted` with why; returns whether this call
    /// ended it.
    pub fn end_rollout(&self, id: i64, status: &str, detail: &str) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE rollouts SET status = ?2, detail = ?3, next_at = NULL, updated_at = ?4 \
             WHERE id = ?1 AND status = 'rolling'",
            params![id, status, detail, now()],
        )?;
        Ok(n == 1)
    }

    /// [`Store::end_rollout`] and its audit event in one transaction, for callers outside
    /// [`Store::atomically`] (a promotion's code step); returns whether this call ended it.
    pub fn end_rollout_audited(
        &self,
        id: i64,
        status: &str,
        why: &str,
        actor: &str,
        release: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        let tx = self.conn.unchecked_transaction()?;
        let ended = self.end_rollout(id, status, why)?;
        if ended {
            self.audit(
                actor,
                &format!("rollout.{status}"),
                Some(release),
                Some(crate::model::PRODUCTION),
                detail,
            )?;
        }
        tx.commit()?;
        self.publish_audit_head();
        Ok(ended)
    }

    /// Records the latest regression check of a rollout (the engine's JSON).
    pub fn set_rollout_check(&self, id: i64, check: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE rollouts SET last_check = ?2 WHERE id = ?1",
            params![id, check],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_moves_once_per_step_and_ends_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let new = NewRollout {
            release_id: "R1",
            target: "api",
            script: "shop",
            previous_version: "v1",
            new_version: "v2",
            steps: &[10, 50, 100],
            wait_secs: 300,
            next_at: Some("2030-01-01T00:00:00.000Z"),
        };
        let id = store
            .insert_rollout(&new, "alice", "rollout.step", &serde_json::json!({}))
            .unwrap();
        let r = store.rollout(id).unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.step), ("rolling", 0));
        assert_eq!(r.steps, vec![10, 50, 100]);
        assert_eq!(store.rolling_rollouts().unwrap().len(), 1);
        assert!(store.advance_rollout(id, 0, 1, false, Some("x")).unwrap());
        // A second process holding the old step moves nothing.
        assert!(!store.advance_rollout(id, 0, 1, false, Some("x")).unwrap());
        assert!(store.end_rollout(id, "halted", "regressed").unwrap());
        assert!(!store.end_rollout(id, "aborted", "again").unwrap());
        let r = &store.release_rollouts("R1").unwrap()[0];
        assert_eq!((r.status.as_str(), r.step), ("halted", 1));
        assert_eq!(r.next_at, None);
        assert!(store.rolling_rollouts().unwrap().is_empty());
        assert_eq!(store.audit_events(Some("R1"), 10).unwrap().len(), 1);
    }
}
