//! Restore records: what a restore changed, so it can be finished after a crash and undone.
use rusqlite::params;

use super::{Result, Store, StoreError, optional};
use crate::model::now;

/// One restore of production to a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreRecord {
    pub id: i64,
    /// The release whose pre-promotion snapshot was restored (`None` for an undo).
    pub to_release: Option<String>,
    pub snapshot_id: i64,
    /// The snapshot of production taken just before this restore (what `--undo` restores).
    pub pre_snapshot_id: Option<i64>,
    /// `applying`, `done`, `aborted` or `undone`.
    pub status: String,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// JSON object: release id → its state before the restore.
    pub previous_states: String,
    pub previous_active: Option<String>,
    /// JSON array of the applied-migration records before the restore.
    pub previous_applied: String,
    /// For an undo: the restore it undoes.
    pub undo_of: Option<i64>,
    /// Production's fingerprint (applied set and schema) just before this restore: what its
    /// pre-restore snapshot holds.
    pub fingerprint_before: Option<String>,
    /// The fingerprint production has once the recovery point is back, when known (the
    /// restored release's base fingerprint; for an undo, the undone restore's
    /// `fingerprint_before`).
    pub target_fingerprint: Option<String>,
}

const COLUMNS: &str = "id, to_release, snapshot_id, pre_snapshot_id, status, actor, started_at, \
     finished_at, previous_states, previous_active, previous_applied, undo_of, fingerprint_before, \
     target_fingerprint";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreRecord> {
    Ok(RestoreRecord {
        id: r.get(0)?,
        to_release: r.get(1)?,
        snapshot_id: r.get(2)?,
        pre_snapshot_id: r.get(3)?,
        status: r.get(4)?,
        actor: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        previous_states: r.get(8)?,
        previous_active: r.get(9)?,
        previous_applied: r.get(10)?,
        undo_of: r.get(11)?,
        fingerprint_before: r.get(12)?,
        target_fingerprint: r.get(13)?,
    })
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub fn insert_restore(
        &self,
        to_release: Option<&str>,
        snapshot_id: i64,
        pre_snapshot_id: Option<i64>,
        actor: &str,
        previous_states: &str,
        previous_active: Option<&str>,
        previous_applied: &str,
        undo_of: Option<i64>,
        fingerprints: (Option<&str>, Option<&str>),
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO restores(to_release, snapshot_id, pre_snapshot_id, status, actor, \
             started_at, previous_states, previous_active, previous_applied, undo_of, \
             fingerprint_before, target_fingerprint) \
             VALUES (?1, ?2, ?3, 'applying', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                to_release,
                snapshot_id,
                pre_snapshot_id,
                actor,
                now(),
                previous_states,
                previous_active,
                previous_applied,
                undo_of,
                fingerprints.0,
                fingerprints.1
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_restore_status(&self, id: i64, status: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE restores SET status = ?2, finished_at = ?3 WHERE id = ?1",
            params![id, status, now()],
        )?;
        Ok(())
    }

    /// Links a restore to the recovery point of what it replaced, when the backend names that
    /// point only in the restore's own answer (D1's `previous_bookmark`).
    pub fn set_restore_pre_snapshot(&self, id: i64, snapshot_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE restores SET pre_snapshot_id = ?2 WHERE id = ?1",
            params![id, snapshot_id],
        )?;
        Ok(())
    }

    pub fn restore_record(&self, id: i64) -> Result<Option<RestoreRecord>> {
        optional(self.conn.query_row(
            &format!("SELECT {COLUMNS} FROM restores WHERE id = ?1"),
            [id],
            from_row,
        ))
    }

    /// The newest finished restore that has not been undone (what `restore --undo` reverts).
    pub fn last_undoable_restore(&self) -> Result<Option<RestoreRecord>> {
        optional(self.conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM restores WHERE status = 'done' AND undo_of IS NULL \
                 ORDER BY id DESC LIMIT 1"
            ),
            [],
            from_row,
        ))
    }

    /// Restores still marked `applying` (at most one, under the lock).
    pub fn restores_applying(&self) -> Result<Vec<RestoreRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM restores WHERE status = 'applying' ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Parses a record's `previous_states` JSON.
    pub fn restore_previous_states(
        rec: &RestoreRecord,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        serde_json::from_str(&rec.previous_states).map_err(|_| StoreError::Corrupt {
            what: "restores.previous_states",
            value: rec.previous_states.chars().take(80).collect(),
        })
    }
}
