//! Environment rows: production (exactly one) and previews.
use rusqlite::{Row, params};

use super::{Result, Store, StoreError, optional};
use crate::model::{EnvKind, Environment, PRODUCTION, now};

const ENV_COLUMNS: &str = "name, kind, database_id, active_release, release_id, base_fingerprint, \
     created_at, last_activity_at, deleted_at";

fn env_from_row(r: &Row<'_>) -> rusqlite::Result<(Environment, String)> {
    Ok((
        Environment {
            name: r.get(0)?,
            kind: EnvKind::Production,
            database_id: r.get(2)?,
            active_release: r.get(3)?,
            release_id: r.get(4)?,
            base_fingerprint: r.get(5)?,
            created_at: r.get(6)?,
            last_activity_at: r.get(7)?,
            deleted_at: r.get(8)?,
        },
        r.get(1)?,
    ))
}

fn finish((mut env, kind): (Environment, String)) -> Result<Environment> {
    env.kind = match kind.as_str() {
        "production" => EnvKind::Production,
        "preview" => EnvKind::Preview,
        _ => {
            return Err(StoreError::Corrupt {
                what: "environments.kind",
                value: kind,
            });
        }
    };
    Ok(env)
}

impl Store {
    /// Production's row, created (with no database) the first time it is asked for.
    pub fn production(&self) -> Result<Environment> {
        let at = now();
        self.conn.execute(
            "INSERT OR IGNORE INTO environments(name, kind, created_at, last_activity_at) \
             VALUES (?1, 'production', ?2, ?2)",
            params![PRODUCTION, at],
        )?;
        self.env(PRODUCTION)?.ok_or(StoreError::Corrupt {
            what: "environments",
            value: PRODUCTION.into(),
        })
    }

    pub fn env(&self, name: &str) -> Result<Option<Environment>> {
        let raw = optional(self.conn.query_row(
            &format!("SELECT {ENV_COLUMNS} FROM environments WHERE name = ?1"),
            [name],
            env_from_row,
        ))?;
        raw.map(finish).transpose()
    }

    /// Production first, then previews newest first; deleted previews included only on request.
    pub fn envs(&self, include_deleted: bool) -> Result<Vec<Environment>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ENV_COLUMNS} FROM environments WHERE ?1 OR deleted_at IS NULL \
             ORDER BY kind = 'preview', created_at DESC, name DESC"
        ))?;
        let rows = stmt
            .query_map([include_deleted], env_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    pub fn insert_preview(
        &self,
        name: &str,
        release_id: &str,
        database_id: Option<&str>,
        fingerprint: &str,
    ) -> Result<()> {
        let at = now();
        self.conn.execute(
            "INSERT INTO environments(name, kind, database_id, active_release, release_id, \
             base_fingerprint, created_at, last_activity_at) \
             VALUES (?1, 'preview', ?2, ?3, ?3, ?4, ?5, ?5)",
            params![name, database_id, release_id, fingerprint, at],
        )?;
        Ok(())
    }

    pub fn set_env_database(&self, name: &str, database_id: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE environments SET database_id = ?2, last_activity_at = ?3 WHERE name = ?1",
            params![name, database_id, now()],
        )?;
        Ok(())
    }

    pub fn set_env_active(&self, name: &str, release: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE environments SET active_release = ?2, last_activity_at = ?3 WHERE name = ?1",
            params![name, release, now()],
        )?;
        Ok(())
    }

    pub fn touch_env(&self, name: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE environments SET last_activity_at = ?2 WHERE name = ?1",
            params![name, now()],
        )?;
        Ok(())
    }

    /// Sets an environment's last activity to a given time (the demo ages its previews).
    pub fn set_env_activity(&self, name: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE environments SET last_activity_at = ?2, created_at = MIN(created_at, ?2) WHERE name = ?1",
            params![name, at],
        )?;
        Ok(())
    }

    pub fn mark_env_deleted(&self, name: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE environments SET deleted_at = ?2, \
             last_database_id = COALESCE(database_id, last_database_id), database_id = NULL \
             WHERE name = ?1",
            params![name, now()],
        )?;
        Ok(())
    }

    /// `(environment, the database it had, when it was deleted)` of every deleted
    /// environment whose database id is known (v10 on).
    pub fn deleted_databases(&self) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, last_database_id, deleted_at FROM environments \
             WHERE deleted_at IS NOT NULL AND last_database_id IS NOT NULL ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
