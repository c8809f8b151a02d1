//! The append-only, hash-chained audit log. Each event's hash covers the previous hash and the
//! event's fields, so editing or deleting any past event breaks the chain from there on.
use rusqlite::params;
use sha2::{Digest, Sha256};

use super::{Result, Store, optional};
use crate::model::{AuditEvent, now};

/// The hash before the first event.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the chain verifies, and where it first breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainStatus {
    pub events: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The hash of one event: its fields, length-prefixed, after the previous event's hash.
fn event_hash(prev: &str, seq: i64, fields: [&str; 6]) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for part in [prev, seq.as_str()].into_iter().chain(fields) {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Store {
    /// Appends one event. Call inside the same transaction as the change it records.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        release: Option<&str>,
        env: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let (last_seq, prev): (i64, String) = optional(self.conn.query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))?
        .unwrap_or((0, GENESIS.to_string()));
        let seq = last_seq + 1;
        let at = now();
        let detail = detail.to_string();
        let hash = event_hash(
            &prev,
            seq,
            [
                &at,
                actor,
                action,
                release.unwrap_or(""),
                env.unwrap_or(""),
                &detail,
            ],
        );
        self.conn.execute(
            "INSERT INTO audit(seq, at, actor, action, release_id, env, detail, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![seq, at, actor, action, release, env, detail, prev, hash],
        )?;
        Ok(())
    }

    /// Events, newest first; `release` filters to one release.
    pub fn audit_events(&self, release: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, actor, action, release_id, env, detail, prev_hash, hash FROM audit \
             WHERE ?1 IS NULL OR release_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![release, limit as i64], |r| {
                Ok(AuditEvent {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    release_id: r.get(4)?,
                    env: r.get(5)?,
                    detail: r.get(6)?,
                    prev_hash: r.get(7)?,
                    hash: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Recomputes the chain from the first event.
    pub fn verify_audit(&self) -> Result<ChainStatus> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, actor, action, release_id, env, detail, prev_hash, hash FROM audit ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut prev = GENESIS.to_string();
        let mut expected_seq = 1i64;
        let mut events = 0u64;
        while let Some(r) = rows.next()? {
            events += 1;
            let seq: i64 = r.get(0)?;
            let at: String = r.get(1)?;
            let actor: String = r.get(2)?;
            let action: String = r.get(3)?;
            let release: Option<String> = r.get(4)?;
            let env: Option<String> = r.get(5)?;
            let detail: String = r.get(6)?;
            let prev_hash: String = r.get(7)?;
            let hash: String = r.get(8)?;
            let problem = if seq != expected_seq {
                Some(format!("event {expected_seq} is missing"))
            } else if prev_hash != prev {
                Some(format!("event {seq} does not link to the event before it"))
            } else if hash
                != event_hash(
                    &prev,
                    seq,
                    [
                        &at,
                        &actor,
                        &action,
                        release.as_deref().unwrap_or(""),
                        env.as_deref().unwrap_or(""),
                        &detail,
                    ],
                )
            {
                Some(format!("event {seq} was altered after it was written"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Ok(ChainStatus {
                    events,
                    ok: false,
                    first_bad_seq: Some(seq),
                    problem: Some(problem),
                });
            }
            prev = hash;
            expected_seq += 1;
        }
        Ok(ChainStatus {
            events,
            ok: true,
            first_bad_seq: None,
            problem: None,
        })
    }
}
