//! Code steps and live code: every step that ships a release's code to an environment (a
//! target's preview, production deploy, revert or rollback) is a row written `running`
//! before the step starts and finished with its outcome, so a process killed mid-step leaves
//! a record recovery can act on. `code_live` says which release's code (and Worker version)
//! each target of an environment runs.
use rusqlite::params;

use super::{Result, Store, optional};
use crate::model::now;

/// One code step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CodeStep {
    pub id: i64,
    /// The release whose code this step ships.
    pub release_id: String,
    /// The release the operation is about (the one promoted or rolled back to).
    pub operation_release: String,
    /// `deploy` (the preview step), `promote`, `rollback` or `recovery`.
    pub operation: String,
    pub target: String,
    /// `command` or `worker`.
    pub kind: String,
    /// `production` or the preview's name.
    pub env: String,
    /// `preview`, `deploy`, `revert` or `rollback`.
    pub action: String,
    /// `running`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    pub artifact_sha256: Option<String>,
    pub version_id: Option<String>,
    pub url: Option<String>,
    pub exit_code: Option<i64>,
    /// One sentence: why it failed or was skipped, or what it did.
    pub detail: Option<String>,
    /// The last lines of the step's output (secrets redacted).
    pub output_tail: Option<String>,
    /// The step's log file, relative to the workspace.
    pub log_path: Option<String>,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// What a step is, before it runs.
#[derive(Debug, Clone)]
pub struct NewCodeStep<'a> {
    pub release_id: &'a str,
    pub operation_release: &'a str,
    pub operation: &'a str,
    pub target: &'a str,
    pub kind: &'a str,
    pub env: &'a str,
    pub action: &'a str,
    pub artifact_sha256: Option<&'a str>,
    pub log_path: Option<&'a str>,
    pub actor: &'a str,
}

/// How a step ended.
#[derive(Debug, Clone, Default)]
pub struct CodeStepEnd {
    pub status: String,
    pub version_id: Option<String>,
    pub url: Option<String>,
    pub exit_code: Option<i64>,
    pub detail: Option<String>,
    pub output_tail: Option<String>,
}

/// Which release's code a target of an environment runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiveCode {
    pub env: String,
    pub target: String,
    pub release_id: String,
    pub version_id: Option<String>,
    pub deployed_at: String,
}

const COLUMNS: &str = "id, release_id, operation_release, operation, target, kind, env, action, \
     status, artifact_sha256, version_id, url, exit_code, detail, output_tail, log_path, actor, \
     started_at, finished_at";

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CodeStep> {
    Ok(CodeStep {
        id: r.get(0)?,
        release_id: r.get(1)?,
        operation_release: r.get(2)?,
        operation: r.get(3)?,
        target: r.get(4)?,
        kind: r.get(5)?,
        env: r.get(6)?,
        action: r.get(7)?,
        status: r.get(8)?,
        artifact_sha256: r.get(9)?,
        version_id: r.get(10)?,
        url: r.get(11)?,
        exit_code: r.get(12)?,
        detail: r.get(13)?,
        output_tail: r.get(14)?,
        log_path: r.get(15)?,
        actor: r.get(16)?,
        started_at: r.get(17)?,
        finished_at: r.get(18)?,
    })
}

impl Store {
    /// Records a step as `running`, before it starts; returns its id.
    pub fn insert_code_step(&self, step: &NewCodeStep<'_>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO code_steps(release_id, operation_release, operation, target, kind, env, \
             action, status, artifact_sha256, log_path, actor, started_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?11)",
            params![
                step.release_id,
                step.operation_release,
                step.operation,
                step.target,
                step.kind,
                step.env,
                step.action,
                step.artifact_sha256,
                step.log_path,
                step.actor,
                now()
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a step ended.
    pub fn finish_code_step(&self, id: i64, end: &CodeStepEnd) -> Result<()> {
        self.conn.execute(
            "UPDATE code_steps SET status = ?2, version_id = COALESCE(?3, version_id), \
             url = COALESCE(?4, url), exit_code = ?5, detail = ?6, output_tail = ?7, \
             finished_at = ?8 WHERE id = ?1",
            params![
                id,
                end.status,
                end.version_id,
                end.url,
                end.exit_code,
                end.detail,
                end.output_tail,
                now()
            ],
        )?;
        Ok(())
    }

    /// Records an outcome for a step that never ran (a skipped target), in one row.
    pub fn record_code_step(&self, step: &NewCodeStep<'_>, end: &CodeStepEnd) -> Result<i64> {
        let id = self.insert_code_step(step)?;
        self.finish_code_step(id, end)?;
        Ok(id)
    }

    /// Every step that shipped `release`'s code, or was part of an operation about it,
    /// oldest first.
    pub fn code_steps(&self, release: &str) -> Result<Vec<CodeStep>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM code_steps WHERE release_id = ?1 OR operation_release = ?1 \
             ORDER BY id"
        ))?;
        let rows = stmt.query_map([release], step_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The steps of one operation (`promote`/`rollback` about `release`) started at or after
    /// `since`, oldest first: what an interrupted operation did.
    pub fn operation_code_steps(
        &self,
        release: &str,
        operation: &str,
        since: &str,
    ) -> Result<Vec<CodeStep>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM code_steps WHERE operation_release = ?1 AND operation = ?2 \
             AND started_at >= ?3 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![release, operation, since], step_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Marks steps still `running` of an operation as `failed` with `why` (their process is
    /// gone); returns how many.
    pub fn settle_running_code_steps(
        &self,
        release: &str,
        operation: &str,
        why: &str,
    ) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE code_steps SET status = 'failed', detail = ?3, finished_at = ?4 \
             WHERE operation_release = ?1 AND operation = ?2 AND status = 'running'",
            params![release, operation, why, now()],
        )?)
    }

    /// The newest successful step that made `release`'s code for `target` live in `env`
    /// (its Worker version, for a rollback).
    pub fn last_code_deploy(
        &self,
        release: &str,
        target: &str,
        env: &str,
    ) -> Result<Option<CodeStep>> {
        optional(self.conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM code_steps WHERE release_id = ?1 AND target = ?2 \
                 AND env = ?3 AND status = 'succeeded' AND version_id IS NOT NULL \
                 ORDER BY id DESC LIMIT 1"
            ),
            params![release, target, env],
            step_row,
        ))
    }

    /// Which release's code each target of `env` runs.
    pub fn live_code(&self, env: &str) -> Result<Vec<LiveCode>> {
        let mut stmt = self.conn.prepare(
            "SELECT env, target, release_id, version_id, deployed_at FROM code_live \
             WHERE env = ?1 ORDER BY target",
        )?;
        let rows = stmt.query_map([env], |r| {
            Ok(LiveCode {
                env: r.get(0)?,
                target: r.get(1)?,
                release_id: r.get(2)?,
                version_id: r.get(3)?,
                deployed_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records that `target` in `env` now runs `release`'s code.
    pub fn set_live_code(
        &self,
        env: &str,
        target: &str,
        release: &str,
        version_id: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO code_live(env, target, release_id, version_id, deployed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(env, target) DO UPDATE SET \
             release_id = excluded.release_id, version_id = excluded.version_id, \
             deployed_at = excluded.deployed_at",
            params![env, target, release, version_id, now()],
        )?;
        Ok(())
    }

    /// Pins the `[[target]]` configuration a release was deployed with (JSON), so its later
    /// deploys, reverts and rollbacks run what was reviewed, whatever d1ops.toml says then.
    pub fn set_release_targets(&self, id: &str, json: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE releases SET targets = ?2 WHERE id = ?1",
            params![id, json],
        )?;
        Ok(())
    }

    /// The `[[target]]` configuration pinned at deploy (`None` for releases deployed before
    /// targets existed).
    pub fn release_targets(&self, id: &str) -> Result<Option<String>> {
        Ok(optional(self.conn.query_row(
            "SELECT targets FROM releases WHERE id = ?1",
            [id],
            |r| r.get::<_, Option<String>>(0),
        ))?
        .flatten())
    }

    /// Forgets what a target of `env` runs (its previous code could not be restored to any
    /// release's).
    pub fn clear_live_code(&self, env: &str, target: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM code_live WHERE env = ?1 AND target = ?2",
            params![env, target],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_running_until_finished_and_live_code_is_upserted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let step = NewCodeStep {
            release_id: "R1",
            operation_release: "R1",
            operation: "promote",
            target: "app",
            kind: "command",
            env: "production",
            action: "deploy",
            artifact_sha256: Some("abc"),
            log_path: None,
            actor: "alice",
        };
        let id = store.insert_code_step(&step).unwrap();
        assert_eq!(store.code_steps("R1").unwrap()[0].status, "running");
        assert_eq!(
            store
                .settle_running_code_steps("R1", "promote", "gone")
                .unwrap(),
            1
        );
        store
            .finish_code_step(
                id,
                &CodeStepEnd {
                    status: "succeeded".into(),
                    version_id: Some("v1".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let found = store
            .last_code_deploy("R1", "app", "production")
            .unwrap()
            .unwrap();
        assert_eq!(found.version_id.as_deref(), Some("v1"));
        store
            .set_live_code("production", "app", "R1", Some("v1"))
            .unwrap();
        store
            .set_live_code("production", "app", "R2", None)
            .unwrap();
        let live = store.live_code("production").unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].release_id, "R2");
    }
}
