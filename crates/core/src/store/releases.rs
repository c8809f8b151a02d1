//! Release rows: create, read, list, state changes, carried migrations and artifacts.
use rusqlite::{Row, params};

use super::{Result, Store, StoreError, optional};
use crate::model::{
    Approval, Artifact, Failure, GateReport, Release, ReleaseMigration, ReleaseState, Verdict, now,
};
use crate::workspace::config::ProbeConfig;

const RELEASE_COLUMNS: &str = "id, state, author, label, commit_sha, supersedes, created_at, \
     updated_at, verdict, preview_env, base_fingerprint, failure, root_cause, guardrail, \
     promoted_at, promoted_by, recovery_snapshot, pending_count";

fn release_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<(Release, String, Option<String>, Option<String>)> {
    let state: String = r.get(1)?;
    let verdict: Option<String> = r.get(8)?;
    let failure: Option<String> = r.get(11)?;
    Ok((
        Release {
            id: r.get(0)?,
            state: ReleaseState::Previewing,
            author: r.get(2)?,
            label: r.get(3)?,
            commit: r.get(4)?,
            supersedes: r.get(5)?,
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
            verdict: None,
            preview_env: r.get(9)?,
            base_fingerprint: r.get(10)?,
            failure: None,
            root_cause: r.get(12)?,
            guardrail: r.get(13)?,
            promoted_at: r.get(14)?,
            promoted_by: r.get(15)?,
            recovery_snapshot: r.get(16)?,
            pending_count: r.get(17)?,
        },
        state,
        verdict,
        failure,
    ))
}

fn finish(raw: (Release, String, Option<String>, Option<String>)) -> Result<Release> {
    let (mut rel, state, verdict, failure) = raw;
    rel.state = ReleaseState::parse(&state).ok_or(StoreError::Corrupt {
        what: "releases.state",
        value: state,
    })?;
    rel.verdict = match verdict.as_deref() {
        None => None,
        Some("ready") => Some(Verdict::Ready),
        Some("blocked") => Some(Verdict::Blocked),
        Some(other) => {
            return Err(StoreError::Corrupt {
                what: "releases.verdict",
                value: other.to_string(),
            });
        }
    };
    rel.failure = match failure {
        None => None,
        Some(f) => Some(
            serde_json::from_str::<Failure>(&f).map_err(|_| StoreError::Corrupt {
                what: "releases.failure",
                value: f,
            })?,
        ),
    };
    Ok(rel)
}

impl Store {
    /// Inserts a new release with its carried migrations and artifacts.
    pub fn insert_release(
        &self,
        rel: &Release,
        migrations: &[ReleaseMigration],
        artifacts: &[Artifact],
    ) -> Result<()> {
        self.conn.execute(
            &format!(
                "INSERT INTO releases({RELEASE_COLUMNS}) VALUES \
                 (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)"
            ),
            params![
                rel.id,
                rel.state.as_str(),
                rel.author,
                rel.label,
                rel.commit,
                rel.supersedes,
                rel.created_at,
                rel.updated_at,
                rel.verdict.map(Verdict::as_str),
                rel.preview_env,
                rel.base_fingerprint,
                rel.failure
                    .as_ref()
                    .and_then(|f| serde_json::to_string(f).ok()),
                rel.root_cause,
                rel.guardrail,
                rel.promoted_at,
                rel.promoted_by,
                rel.recovery_snapshot,
                rel.pending_count,
            ],
        )?;
        let mut stmt = self.conn.prepare(
            "INSERT INTO release_migrations(release_id, position, name, path, sha256, \
             sha256_normalized, pending, sql) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
        )?;
        for m in migrations {
            stmt.execute(params![
                rel.id,
                m.position,
                m.name,
                m.path,
                m.sha256,
                m.sha256_normalized,
                m.pending,
                m.sql
            ])?;
        }
        let mut stmt = self.conn.prepare(
            "INSERT INTO artifacts(release_id, name, path, sha256, size_bytes, pinned) \
             VALUES (?1,?2,?3,?4,?5,?6)",
        )?;
        for a in artifacts {
            stmt.execute(params![
                rel.id,
                a.name,
                a.path,
                a.sha256,
                a.size_bytes,
                a.pinned
            ])?;
        }
        Ok(())
    }

    pub fn release(&self, id: &str) -> Result<Option<Release>> {
        let raw = optional(self.conn.query_row(
            &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = ?1"),
            [id],
            release_from_row,
        ))?;
        raw.map(finish).transpose()
    }

    /// Release ids starting with `prefix` (case-insensitive), at most `limit`.
    pub fn release_ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM releases WHERE id LIKE ?1 || '%' ORDER BY id LIMIT ?2")?;
        let ids = stmt
            .query_map(params![prefix.to_uppercase(), limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    /// Every release, newest first.
    pub fn releases(&self) -> Result<Vec<Release>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases ORDER BY id DESC"
        ))?;
        let rows = stmt
            .query_map([], release_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// Releases in `state`, newest first.
    pub fn releases_in_state(&self, state: ReleaseState) -> Result<Vec<Release>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE state = ?1 ORDER BY id DESC"
        ))?;
        let rows = stmt
            .query_map([state.as_str()], release_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    pub fn set_release_state(&self, id: &str, state: ReleaseState) -> Result<()> {
        self.conn.execute(
            "UPDATE releases SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, state.as_str(), now()],
        )?;
        Ok(())
    }

    pub fn set_release_preview(&self, id: &str, env: &str, fingerprint: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE releases SET preview_env = ?2, base_fingerprint = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, env, fingerprint, now()],
        )?;
        Ok(())
    }

    pub fn set_release_failure(&self, id: &str, failure: &Failure) -> Result<()> {
        let json = serde_json::to_string(failure).unwrap_or_default();
        self.conn.execute(
            "UPDATE releases SET state = 'failed', failure = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, json, now()],
        )?;
        Ok(())
    }

    pub fn set_release_note(&self, id: &str, cause: &str, guardrail: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE releases SET root_cause = ?2, guardrail = COALESCE(?3, guardrail), \
             updated_at = ?4 WHERE id = ?1",
            params![id, cause, guardrail, now()],
        )?;
        Ok(())
    }

    pub fn set_release_promoted(&self, id: &str, by: &str, snapshot: Option<i64>) -> Result<()> {
        let at = now();
        self.conn.execute(
            "UPDATE releases SET state = 'live', promoted_at = ?2, promoted_by = ?3, \
             recovery_snapshot = ?4, updated_at = ?2 WHERE id = ?1",
            params![id, at, by, snapshot],
        )?;
        Ok(())
    }

    /// Stores the gate report and the verdict-driven state.
    pub fn save_gate_report(&self, id: &str, report: &GateReport) -> Result<()> {
        let json = serde_json::to_string(report).unwrap_or_default();
        let at = now();
        self.conn.execute(
            "INSERT OR REPLACE INTO gate_reports(release_id, verdict, report, total_ms, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, report.verdict.as_str(), json, report.total_ms, at],
        )?;
        let state = match report.verdict {
            Verdict::Ready => ReleaseState::Ready,
            Verdict::Blocked => ReleaseState::Blocked,
        };
        self.conn.execute(
            "UPDATE releases SET verdict = ?2, state = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, report.verdict.as_str(), state.as_str(), at],
        )?;
        Ok(())
    }

    pub fn gate_report(&self, id: &str) -> Result<Option<GateReport>> {
        let json: Option<String> = optional(self.conn.query_row(
            "SELECT report FROM gate_reports WHERE release_id = ?1",
            [id],
            |r| r.get(0),
        ))?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|_| StoreError::Corrupt {
                what: "gate_reports.report",
                value: j.chars().take(80).collect(),
            })
        })
        .transpose()
    }

    pub fn release_migrations(&self, id: &str) -> Result<Vec<ReleaseMigration>> {
        let mut stmt = self.conn.prepare(
            "SELECT position, name, path, sha256, sha256_normalized, pending, sql \
             FROM release_migrations WHERE release_id = ?1 ORDER BY position",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(ReleaseMigration {
                    position: r.get(0)?,
                    name: r.get(1)?,
                    path: r.get(2)?,
                    sha256: r.get(3)?,
                    sha256_normalized: r.get(4)?,
                    pending: r.get(5)?,
                    sql: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn artifacts(&self, id: &str) -> Result<Vec<Artifact>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, path, sha256, size_bytes, pinned FROM artifacts WHERE release_id = ?1 \
             ORDER BY name",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(Artifact {
                    name: r.get(0)?,
                    path: r.get(1)?,
                    sha256: r.get(2)?,
                    size_bytes: r.get(3)?,
                    pinned: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every pinned copy a remaining release (one in the releases table) records.
    pub fn pinned_artifacts(&self) -> Result<std::collections::BTreeSet<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT a.pinned FROM artifacts a JOIN releases r ON r.id = a.release_id \
             WHERE a.pinned IS NOT NULL",
        )?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Stores the probes a release carries (its `d1ops.toml` probes at deploy time).
    pub fn set_release_probes(&self, id: &str, probes: &[ProbeConfig]) -> Result<()> {
        let json = serde_json::to_string(probes).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "UPDATE releases SET probes = ?2 WHERE id = ?1",
            params![id, json],
        )?;
        Ok(())
    }

    /// The probes a release carries (empty for releases deployed without any).
    pub fn release_probes(&self, id: &str) -> Result<Vec<ProbeConfig>> {
        let json: Option<String> = optional(self.conn.query_row(
            "SELECT probes FROM releases WHERE id = ?1",
            [id],
            |r| r.get(0),
        ))?
        .flatten();
        match json {
            None => Ok(Vec::new()),
            Some(j) => serde_json::from_str(&j).map_err(|_| StoreError::Corrupt {
                what: "releases.probes",
                value: j.chars().take(80).collect(),
            }),
        }
    }

    pub fn add_approval(&self, id: &str, approver: &str, note: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO approvals(release_id, approver, note, at) VALUES (?1, ?2, ?3, ?4)",
            params![id, approver, note, now()],
        )?;
        Ok(())
    }

    pub fn approvals(&self, id: &str) -> Result<Vec<Approval>> {
        let mut stmt = self.conn.prepare(
            "SELECT approver, note, at FROM approvals WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(Approval {
                    approver: r.get(0)?,
                    note: r.get(1)?,
                    at: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
