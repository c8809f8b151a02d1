//! Snapshots (recovery points) and the checksums of migrations applied to an environment.
use rusqlite::params;

use super::{Result, Store};
use crate::model::{Snapshot, now};

/// What d1ops recorded when it applied a migration to an environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppliedChecksum {
    pub name: String,
    pub sha256: String,
    pub sha256_normalized: String,
    pub release_id: Option<String>,
    pub applied_at: String,
}

impl Store {
    /// Records a recovery point of `env`.
    pub fn insert_snapshot(
        &self,
        release_id: Option<&str>,
        env: &str,
        location: Option<&str>,
        size_bytes: u64,
        kind: &str,
        previous_release: Option<&str>,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO snapshots(release_id, env, location, size_bytes, created_at, kind, \
             previous_release) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                release_id,
                env,
                location,
                size_bytes,
                now(),
                kind,
                previous_release
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn snapshot(&self, id: i64) -> Result<Option<Snapshot>> {
        Ok(self.snapshots(true)?.into_iter().find(|s| s.id == id))
    }

    /// Recovery points, newest first.
    pub fn snapshots(&self, include_deleted: bool) -> Result<Vec<Snapshot>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, release_id, env, location, size_bytes, created_at, deleted_at, kind, \
             previous_release FROM snapshots WHERE ?1 OR deleted_at IS NULL ORDER BY id DESC",
        )?;
        let rows = stmt
            .query_map([include_deleted], |r| {
                Ok(Snapshot {
                    id: r.get(0)?,
                    release_id: r.get(1)?,
                    env: r.get(2)?,
                    location: r.get(3)?,
                    size_bytes: r.get(4)?,
                    created_at: r.get(5)?,
                    deleted_at: r.get(6)?,
                    kind: r.get(7)?,
                    previous_release: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn mark_snapshot_deleted(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE snapshots SET deleted_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        Ok(())
    }

    pub fn record_applied(
        &self,
        env: &str,
        name: &str,
        sha256: &str,
        sha256_normalized: &str,
        release_id: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO applied_migrations(env, name, sha256, sha256_normalized, \
             release_id, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![env, name, sha256, sha256_normalized, release_id, now()],
        )?;
        Ok(())
    }

    /// Replaces what d1ops recorded for `env` (a restore puts the ledger back in time).
    pub fn replace_applied(&self, env: &str, rows: &[AppliedChecksum]) -> Result<()> {
        self.conn
            .execute("DELETE FROM applied_migrations WHERE env = ?1", [env])?;
        for a in rows {
            self.conn.execute(
                "INSERT INTO applied_migrations(env, name, sha256, sha256_normalized, release_id, \
                 applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    env,
                    a.name,
                    a.sha256,
                    a.sha256_normalized,
                    a.release_id,
                    a.applied_at
                ],
            )?;
        }
        Ok(())
    }

    /// What d1ops recorded for `env`, by migration name.
    pub fn applied_checksums(
        &self,
        env: &str,
    ) -> Result<std::collections::BTreeMap<String, AppliedChecksum>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, sha256, sha256_normalized, release_id, applied_at \
             FROM applied_migrations WHERE env = ?1",
        )?;
        let rows = stmt
            .query_map([env], |r| {
                Ok(AppliedChecksum {
                    name: r.get(0)?,
                    sha256: r.get(1)?,
                    sha256_normalized: r.get(2)?,
                    release_id: r.get(3)?,
                    applied_at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|a| (a.name.clone(), a)).collect())
    }
}
