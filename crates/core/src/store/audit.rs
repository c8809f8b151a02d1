//! The append-only, hash-chained audit log, and the evidence that it was neither cut nor forged.
//!
//! - **The chain.** Each event's hash covers the previous hash and the event's fields, so
//!   editing or removing any past event breaks the chain from there on. With `D1OPS_AUDIT_KEY`
//!   set, the hash is an HMAC-SHA256 under that key (each event's `scheme` says which), so a
//!   forged event needs the key. Once the log is keyed, appending without the key is refused,
//!   and an unkeyed event after a keyed one is reported as forged.
//! - **The head, kept outside the table.** Deleting the *last* events leaves a valid chain, so
//!   the head (seq and hash) is kept twice more: in `.d1ops/audit.head`, written atomically
//!   after the commit that appended it (MAC'd when keyed), and on the release row an event is
//!   about, in the same transaction as the event. The file may lag behind the table (a crash
//!   between the commit and the file write, or a concurrent writer); it may never be ahead of
//!   the table nor name an event the table holds with another hash.
//! - **The guards.** Triggers reject UPDATE and DELETE; verify reports them missing or neutered.
//!
//! The key is never stored or printed: it is turned into an HMAC state when read and its bytes
//! wiped; only MACs reach the disk.
//!
//! This file owns appending (the chain and its head) and reading events; its siblings own
//! the rest: `audit_findings` (what verify reports, in sentences), `audit_head` (the head file
//! and its durable writes) and `audit_verify` (walking the chain, the recorded heads and the
//! guard triggers).

use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use rusqlite::params;
use sha2::{Digest, Sha256};

use super::{Result, Store, StoreError, optional};
use crate::model::{AuditEvent, now};

#[path = "audit_findings.rs"]
mod audit_findings;
#[path = "audit_head.rs"]
mod audit_head;
#[path = "audit_verify.rs"]
mod audit_verify;

pub use audit_findings::{ChainHead, ChainStatus, Finding, FindingKind};
use audit_head::{HeadFile, sync_wal, write_head_file};
use audit_head::{HeadRead, read_head_file};

/// The environment variable holding the optional audit key.
pub const AUDIT_KEY_ENV: &str = "D1OPS_AUDIT_KEY";

/// File name of the chain head kept next to the state store.
pub const HEAD_FILE: &str = "audit.head";

/// The hash before the first event.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Chain schemes, recorded per event.
const PLAIN: &str = "sha256";
const KEYED: &str = "hmac-sha256";

type HmacSha256 = Hmac<Sha256>;

/// The audit key as an HMAC state keyed once; the raw bytes are wiped as soon as it is made.
/// Deliberately neither `Debug` nor serialisable, so it cannot be printed or stored by accident.
#[derive(Clone)]
pub(crate) struct AuditKey(HmacSha256);

impl AuditKey {
    /// The key from `D1OPS_AUDIT_KEY`; unset or empty means no key.
    pub(crate) fn from_env() -> Option<AuditKey> {
        let mut bytes = std::env::var_os(AUDIT_KEY_ENV)?.into_encoded_bytes();
        let key = AuditKey::from_bytes(&bytes);
        bytes.fill(0);
        std::hint::black_box(&bytes);
        key
    }

    fn from_bytes(bytes: &[u8]) -> Option<AuditKey> {
        if bytes.is_empty() {
            return None;
        }
        HmacSha256::new_from_slice(bytes).ok().map(AuditKey)
    }
}

/// Why an audit append or a head-file write could not happen.
#[derive(Debug, thiserror::Error)]
enum AuditError {
    #[error(
        "the audit log is keyed (HMAC-SHA256) and {AUDIT_KEY_ENV} is not set: set it to record changes"
    )]
    KeyRequired,
    #[error("audit head file {path}: {source}")]
    HeadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Feeds length-prefixed parts to a hash or MAC.
fn feed<'a>(u: &mut impl sha2::digest::Update, parts: impl IntoIterator<Item = &'a str>) {
    for part in parts {
        u.update(&part.len().to_le_bytes());
        u.update(part.as_bytes());
    }
}

/// The parts one event's hash covers, in order.
fn event_parts<'a>(prev: &'a str, seq: &'a str, fields: &[&'a str; 6]) -> [&'a str; 8] {
    [
        prev, seq, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
    ]
}

/// The plain hash of one event: its fields, length-prefixed, after the previous event's hash.
fn event_hash(prev: &str, seq: i64, fields: &[&str; 6]) -> String {
    let seq = seq.to_string();
    let mut h = Sha256::new();
    feed(&mut h, event_parts(prev, &seq, fields));
    hex::encode(h.finalize())
}

/// The keyed hash (HMAC-SHA256) of one event, over the same parts.
fn event_mac(key: &AuditKey, prev: &str, seq: i64, fields: &[&str; 6]) -> HmacSha256 {
    let seq = seq.to_string();
    let mut m = key.0.clone();
    feed(&mut m, event_parts(prev, &seq, fields));
    m
}

/// The MAC of a head file's (seq, hash).
fn head_mac(key: &AuditKey, seq: i64, hash: &str) -> HmacSha256 {
    let seq = seq.to_string();
    let mut m = key.0.clone();
    feed(&mut m, ["d1ops audit head", seq.as_str(), hash]);
    m
}

/// Constant-time comparison of a computed MAC with a stored hex tag.
fn mac_matches(m: HmacSha256, stored_hex: &str) -> bool {
    hex::decode(stored_hex).is_ok_and(|tag| m.verify_slice(&tag).is_ok())
}

/// The last event: (seq, hash, scheme).
type Last = (i64, String, String);

impl Store {
    /// Appends one event. Call inside the same transaction as the change it records; the head
    /// file follows after the commit (`atomically`), or right away outside a transaction.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        release: Option<&str>,
        env: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let key = AuditKey::from_env();
        self.append(key.as_ref(), actor, action, release, env, detail)?;
        if self.conn.is_autocommit() {
            self.publish_audit_head();
        }
        Ok(())
    }

    fn last_event(&self) -> Result<Option<Last>> {
        optional(self.conn.query_row(
            "SELECT seq, hash, scheme FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        ))
    }

    fn append(
        &self,
        key: Option<&AuditKey>,
        actor: &str,
        action: &str,
        release: Option<&str>,
        env: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let last = self.last_event()?;
        if key.is_none() && last.as_ref().is_some_and(|l| l.2 != PLAIN) {
            return Err(StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(
                Box::new(AuditError::KeyRequired),
            )));
        }
        if let Some(path) = self.head_path()
            && matches!(read_head_file(&path), HeadRead::Absent)
        {
            // The head file exists from the first event on, so a missing one is evidence. It
            // starts at genesis (seq 0), an ancestor of every chain: safe to write before the
            // commit, and a crash before the commit leaves nothing ahead of the table.
            let genesis = HeadFile {
                seq: 0,
                hash: GENESIS.to_string(),
                at: now(),
                mac: None,
            };
            if let Err(e) = write_head_file(&path, &genesis) {
                tracing::warn!(error = %e, path = %path.display(), "audit head file not created");
            }
        }
        let (last_seq, prev) = last.map_or((0, GENESIS.to_string()), |l| (l.0, l.1));
        let seq = last_seq + 1;
        let at = now();
        let detail = detail.to_string();
        let fields = [
            at.as_str(),
            actor,
            action,
            release.unwrap_or(""),
            env.unwrap_or(""),
            detail.as_str(),
        ];
        let (scheme, hash) = match key {
            Some(k) => (
                KEYED,
                hex::encode(event_mac(k, &prev, seq, &fields).finalize().into_bytes()),
            ),
            None => (PLAIN, event_hash(&prev, seq, &fields)),
        };
        self.conn.execute(
            "INSERT INTO audit(seq, at, actor, action, release_id, env, detail, prev_hash, hash, scheme) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![seq, at, actor, action, release, env, detail, prev, hash, scheme],
        )?;
        if let Some(release) = release {
            // The release row keeps the head after its latest event, in the same transaction.
            self.conn.execute(
                "UPDATE releases SET audit_head_seq = ?1, audit_head_hash = ?2 WHERE id = ?3",
                params![seq, hash, release],
            )?;
        }
        Ok(())
    }

    /// `.d1ops/audit.head`, beside the state file.
    fn head_path(&self) -> Option<PathBuf> {
        let db = self.conn.path().filter(|p| !p.is_empty())?;
        Some(Path::new(db).with_file_name(HEAD_FILE))
    }

    /// Writes the committed chain head to the head file when it moved on. Best effort: a head
    /// file left behind is what a crash leaves too, and verify accepts it; the state change is
    /// already committed and must not be reported as failed.
    pub(crate) fn publish_audit_head(&self) {
        if let Err(e) = self.try_publish_audit_head(AuditKey::from_env().as_ref()) {
            tracing::warn!(error = %e, "audit head file not updated (it stays behind the log)");
        }
    }

    fn try_publish_audit_head(&self, key: Option<&AuditKey>) -> Result<(), AuditError> {
        // Inside a transaction nothing is committed yet: `atomically` calls again after COMMIT.
        if !self.conn.is_autocommit() {
            return Ok(());
        }
        let (Some(path), Some((seq, hash, scheme))) = (self.head_path(), self.last_event()?) else {
            return Ok(());
        };
        let mac = match (scheme.as_str(), key) {
            (KEYED, Some(k)) => Some(hex::encode(head_mac(k, seq, &hash).finalize().into_bytes())),
            // A keyed head cannot be signed without the key: leave it to a process that has it.
            (KEYED, None) => return Ok(()),
            _ => None,
        };
        match read_head_file(&path) {
            // Kept as evidence for verify.
            HeadRead::Unreadable(_) => return Ok(()),
            HeadRead::Present(file) => {
                if file.seq >= seq {
                    return Ok(());
                }
                // Advance only from a head the chain still holds: one it lost is evidence.
                let genesis = file.seq == 0 && file.hash == GENESIS;
                if !genesis && self.hash_at(file.seq)?.as_deref() != Some(file.hash.as_str()) {
                    return Ok(());
                }
            }
            HeadRead::Absent => {}
        }
        let io = |source| AuditError::HeadFile {
            path: path.display().to_string(),
            source,
        };
        if let Some(db) = self.conn.path() {
            sync_wal(Path::new(db)).map_err(io)?;
        }
        write_head_file(
            &path,
            &HeadFile {
                seq,
                hash,
                at: now(),
                mac,
            },
        )
        .map_err(io)
    }

    fn hash_at(&self, seq: i64) -> Result<Option<String>> {
        optional(
            self.conn
                .query_row("SELECT hash FROM audit WHERE seq = ?1", [seq], |r| r.get(0)),
        )
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn append(store: &Store, key: Option<&AuditKey>, n: usize) {
        for i in 0..n {
            store
                .append(
                    key,
                    "alice",
                    "test.event",
                    None,
                    None,
                    &serde_json::json!({ "i": i }),
                )
                .unwrap();
            store.try_publish_audit_head(key).unwrap();
        }
    }

    fn kinds(s: &ChainStatus) -> Vec<&FindingKind> {
        s.findings.iter().map(|f| &f.kind).collect()
    }

    #[test]
    fn plain_hash_is_unchanged_for_existing_logs() {
        // The hash of events written before keyed chains existed must not change.
        let fields = ["2026-01-01T00:00:00.000Z", "alice", "a", "", "", "{}"];
        let mut h = Sha256::new();
        for part in [GENESIS, "1"].into_iter().chain(fields) {
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
        assert_eq!(event_hash(GENESIS, 1, &fields), hex::encode(h.finalize()));
    }

    #[test]
    fn head_file_follows_the_log_and_verify_is_clean() {
        let (dir, store) = store();
        append(&store, None, 3);
        let status = store.verify_with(None).unwrap();
        assert!(status.ok, "{status:?}");
        assert_eq!(status.head_file.as_ref().map(|h| h.seq), Some(3));
        assert!(dir.path().join(HEAD_FILE).exists());
    }

    #[test]
    fn a_head_file_behind_is_fine_and_one_ahead_is_a_cut() {
        let (dir, store) = store();
        append(&store, None, 3);
        let second = store.hash_at(2).unwrap().unwrap();
        let behind = format!(r#"{{"seq":2,"hash":"{second}","at":"x"}}"#);
        std::fs::write(dir.path().join(HEAD_FILE), behind).unwrap();
        assert!(store.verify_with(None).unwrap().ok);
        // The next append moves it on from that ancestor.
        append(&store, None, 1);
        assert_eq!(store.verify_with(None).unwrap().head_file.unwrap().seq, 4);
        let ahead = r#"{"seq":9,"hash":"ab","at":"x"}"#;
        std::fs::write(dir.path().join(HEAD_FILE), ahead).unwrap();
        let status = store.verify_with(None).unwrap();
        assert!(
            matches!(
                kinds(&status)[..],
                [FindingKind::TailCut {
                    table_ends_at: 4,
                    ..
                }]
            ),
            "{status:?}"
        );
        // A head the chain lost is never overwritten by later appends.
        append(&store, None, 6);
        let status = store.verify_with(None).unwrap();
        assert!(!status.ok);
        assert_eq!(status.head_file.unwrap().seq, 9);
    }

    #[test]
    fn keyed_chain_needs_the_right_key() {
        let (_dir, store) = store();
        let key = AuditKey::from_bytes(b"right").unwrap();
        let wrong = AuditKey::from_bytes(b"wrong").unwrap();
        append(&store, None, 2);
        append(&store, Some(&key), 3);
        let status = store.verify_with(Some(&key)).unwrap();
        assert!(status.ok, "{status:?}");
        assert_eq!(status.keyed, 3);
        assert_eq!(status.notes.len(), 1, "{status:?}");
        let status = store.verify_with(Some(&wrong)).unwrap();
        assert_eq!(
            kinds(&status),
            [&FindingKind::MacMismatch {
                seq: 3,
                wrong_key: true
            }]
        );
        let status = store.verify_with(None).unwrap();
        assert_eq!(
            kinds(&status),
            [&FindingKind::KeyedWithoutKey { events: 3 }]
        );
        // Appending without the key to a keyed log is refused.
        let err = store
            .append(None, "mallory", "x", None, None, &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains(AUDIT_KEY_ENV), "{err}");
    }

    #[test]
    fn neutered_and_missing_triggers_are_named() {
        let (_dir, store) = store();
        append(&store, None, 1);
        store
            .conn
            .execute_batch(
                "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; \
                 CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit WHEN 0 \
                 BEGIN SELECT RAISE(ABORT, 'no'); END;",
            )
            .unwrap();
        let status = store.verify_with(None).unwrap();
        assert_eq!(
            kinds(&status),
            [
                &FindingKind::MissingTriggers {
                    names: vec!["audit_no_update".into()]
                },
                &FindingKind::NeuteredTriggers {
                    names: vec!["audit_no_delete".into()]
                }
            ]
        );
    }
}
