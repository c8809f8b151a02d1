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
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Result, Store, StoreError, optional};
use crate::model::{AuditEvent, now};

/// The environment variable holding the optional audit key.
pub const AUDIT_KEY_ENV: &str = "D1OPS_AUDIT_KEY";

/// File name of the chain head kept next to the state store.
pub const HEAD_FILE: &str = "audit.head";

/// The hash before the first event.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Chain schemes, recorded per event.
const PLAIN: &str = "sha256";
const KEYED: &str = "hmac-sha256";

/// The triggers that make the table append-only, with the statement each must refuse.
const GUARDS: [(&str, &str); 2] = [("audit_no_update", "UPDATE"), ("audit_no_delete", "DELETE")];

/// At most this many chain problems are listed one by one.
const MAX_LISTED: usize = 20;

/// A head file is a few hundred bytes; anything much larger is not one.
const HEAD_FILE_LIMIT: u64 = 64 * 1024;

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

/// A point of the chain: an event's seq and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// One problem `verify_audit` found, with the sentence that names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    #[serde(flatten)]
    pub kind: FindingKind,
    pub message: String,
}

/// What was found. `source` of a recorded head is `head_file` or `release` (with `release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingKind {
    /// Seqs `from_seq..=to_seq` are absent between two present events.
    MissingEvents {
        from_seq: i64,
        to_seq: i64,
    },
    /// The event's `prev_hash` is not the hash of the event before it.
    BrokenLink {
        seq: i64,
    },
    /// The event's hash does not match its content.
    Altered {
        seq: i64,
    },
    /// The event names a chain scheme this d1ops does not know.
    UnknownScheme {
        seq: i64,
        scheme: String,
    },
    /// An unkeyed event after a keyed one: appended without the key.
    Downgraded {
        seq: i64,
    },
    /// The event's MAC does not match under the given key; `wrong_key` when no keyed event
    /// matches at all.
    MacMismatch {
        seq: i64,
        wrong_key: bool,
    },
    /// More chain problems than are listed.
    MoreProblems {
        count: usize,
    },
    /// Keyed events exist and no key was given to check them.
    KeyedWithoutKey {
        events: u64,
    },
    MissingTriggers {
        names: Vec<String>,
    },
    /// Triggers present under the expected names that no longer refuse the change.
    NeuteredTriggers {
        names: Vec<String>,
    },
    /// A recorded head lies beyond the table's last event.
    TailCut {
        source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        release: Option<String>,
        recorded: ChainHead,
        table_ends_at: i64,
    },
    /// A recorded head's seq is in the table, with another hash (or absent in a gap).
    HeadNotInChain {
        source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        release: Option<String>,
        recorded: ChainHead,
        table_hash: Option<String>,
    },
    /// The head file is gone though this log has written one.
    HeadFileMissing {
        table_ends_at: i64,
    },
    HeadFileUnreadable {
        reason: String,
    },
    /// The head file names a keyed event but its MAC is missing or does not match.
    HeadFileMac {
        seq: i64,
        missing: bool,
    },
}

impl FindingKind {
    /// The first event seq this problem concerns, when there is one.
    fn seq(&self) -> Option<i64> {
        match self {
            FindingKind::MissingEvents { from_seq, .. } => Some(*from_seq),
            FindingKind::BrokenLink { seq }
            | FindingKind::Altered { seq }
            | FindingKind::UnknownScheme { seq, .. }
            | FindingKind::Downgraded { seq }
            | FindingKind::MacMismatch { seq, .. } => Some(*seq),
            FindingKind::TailCut { table_ends_at, .. } => Some(table_ends_at + 1),
            FindingKind::HeadNotInChain { recorded, .. } => Some(recorded.seq),
            _ => None,
        }
    }

    /// The sentence naming the problem.
    fn message(&self) -> String {
        match self {
            FindingKind::MissingEvents { from_seq, to_seq } if from_seq == to_seq => {
                format!("event {from_seq} is missing from the chain")
            }
            FindingKind::MissingEvents { from_seq, to_seq } => {
                format!("events {from_seq} to {to_seq} are missing from the chain")
            }
            FindingKind::BrokenLink { seq } => {
                format!(
                    "broken link at seq {seq}: event {seq} does not link to the event before it"
                )
            }
            FindingKind::Altered { seq } => {
                format!(
                    "event {seq} was altered after it was written (its hash does not match its content)"
                )
            }
            FindingKind::UnknownScheme { seq, scheme } => {
                format!("event {seq} names an unknown chain scheme {scheme:?}")
            }
            FindingKind::Downgraded { seq } => format!(
                "forged event at seq {seq}: it is not keyed but follows keyed events (appended without the key)"
            ),
            FindingKind::MacMismatch {
                seq,
                wrong_key: true,
            } => format!(
                "the MAC does not match at seq {seq} (the first keyed event) nor at any later keyed event: \
                 {AUDIT_KEY_ENV} is not the key this log was written with"
            ),
            FindingKind::MacMismatch { seq, .. } => format!(
                "the MAC does not match at seq {seq}: event {seq} was forged or altered, or {AUDIT_KEY_ENV} is not the key it was written with"
            ),
            FindingKind::MoreProblems { count } => {
                format!("and {count} more problem(s) of the kind above")
            }
            FindingKind::KeyedWithoutKey { events } => {
                format!("{events} events are keyed; set {AUDIT_KEY_ENV} to verify them")
            }
            FindingKind::MissingTriggers { names } => format!(
                "missing trigger(s) {}: the audit table no longer refuses UPDATE/DELETE",
                names.join(" and ")
            ),
            FindingKind::NeuteredTriggers { names } => format!(
                "trigger(s) {} were replaced and no longer refuse UPDATE/DELETE",
                names.join(" and ")
            ),
            FindingKind::TailCut {
                release,
                recorded,
                table_ends_at,
                ..
            } => {
                let ends = if *table_ends_at == 0 {
                    "the table holds no event".to_string()
                } else {
                    format!("the table ends at seq {table_ends_at}")
                };
                format!(
                    "tail cut: {} seq {} hash {} but {ends}",
                    says(release),
                    recorded.seq,
                    short(&recorded.hash)
                )
            }
            FindingKind::HeadNotInChain {
                release,
                recorded,
                table_hash,
                ..
            } => {
                let found = match table_hash {
                    Some(h) => format!("event {} has hash {}", recorded.seq, short(h)),
                    None => format!("event {} is missing", recorded.seq),
                };
                let what = match release {
                    Some(r) => format!("release {r}'s recorded head"),
                    None => "the head file's head".to_string(),
                };
                format!(
                    "{what} (seq {} hash {}) is not in the chain: {found}; the tail was rewritten or forged",
                    recorded.seq,
                    short(&recorded.hash)
                )
            }
            FindingKind::HeadFileMissing { table_ends_at } => format!(
                "the head file .d1ops/{HEAD_FILE} is missing while the table ends at seq {table_ends_at} (deleted?)"
            ),
            FindingKind::HeadFileUnreadable { reason } => format!(
                "the head file .d1ops/{HEAD_FILE} cannot be read ({reason}); remove it only after checking the log"
            ),
            FindingKind::HeadFileMac { seq, missing: true } => format!(
                "the head file names keyed event {seq} but carries no MAC: it was rewritten without the key"
            ),
            FindingKind::HeadFileMac { seq, .. } => format!(
                "the head file's MAC (seq {seq}) does not match: it was rewritten, or {AUDIT_KEY_ENV} is not the key it was written with"
            ),
        }
    }
}

/// "the head file says" / "release R recorded".
fn says(release: &Option<String>) -> String {
    match release {
        Some(r) => format!("release {r} recorded head"),
        None => "the head file says".to_string(),
    }
}

/// The first 16 hex digits of a hash, enough to tell two apart on screen (JSON has all).
fn short(hash: &str) -> String {
    match hash.get(..16) {
        Some(s) if hash.len() > 16 => format!("{s}…"),
        _ => hash.to_string(),
    }
}

/// What `audit --verify` found. `ok` when `findings` is empty; `first_bad_seq` and `problem`
/// (the first finding's sentence) summarise for one-line displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStatus {
    pub events: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The table's last event.
    pub head: Option<ChainHead>,
    /// The head recorded in `.d1ops/audit.head`, when it could be read.
    pub head_file: Option<ChainHead>,
    /// How many releases record a head (each was checked against the chain).
    pub release_heads: u64,
    /// Events whose hash is an HMAC under the audit key.
    pub keyed: u64,
    /// Whether a key was given (never the key itself).
    pub key_given: bool,
    pub findings: Vec<Finding>,
    /// Facts that are not problems (a log keyed only from some seq on, no head file yet).
    pub notes: Vec<String>,
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

/// `.d1ops/audit.head`.
#[derive(Debug, Serialize, Deserialize)]
struct HeadFile {
    seq: i64,
    hash: String,
    at: String,
    /// HMAC of (seq, hash) under the audit key, when the head event is keyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

enum HeadRead {
    Absent,
    Unreadable(String),
    Present(HeadFile),
}

fn read_head_file(path: &Path) -> HeadRead {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HeadRead::Absent,
        Err(e) => return HeadRead::Unreadable(e.to_string()),
    };
    if !meta.file_type().is_file() {
        return HeadRead::Unreadable("not a regular file".into());
    }
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(HEAD_FILE_LIMIT + 1).read_to_string(&mut text));
    match read {
        Err(e) => HeadRead::Unreadable(e.to_string()),
        Ok(n) if n as u64 > HEAD_FILE_LIMIT => {
            HeadRead::Unreadable(format!("larger than {HEAD_FILE_LIMIT} bytes"))
        }
        Ok(_) => match serde_json::from_str::<HeadFile>(&text) {
            Ok(h) => HeadRead::Present(h),
            Err(e) => HeadRead::Unreadable(format!("not a head record: {e}")),
        },
    }
}

/// Distinguishes temporary files of concurrent writers in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces the head file atomically: temp file, fsync, rename, fsync of the folder.
fn write_head_file(path: &Path, head: &HeadFile) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        "{HEAD_FILE}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut text = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Makes the store's committed WAL frames durable (the store runs `synchronous = NORMAL`, which
/// does not fsync at commit): the head file must never survive a power loss that the commit it
/// names did not.
fn sync_wal(db: &Path) -> std::io::Result<()> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::File::open(PathBuf::from(wal)) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a trigger's SQL still refuses `op` on the audit table unconditionally.
fn guards(sql: &str, op: &str) -> bool {
    let s: String = sql
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '`' | '[' | ']'))
        .collect::<String>()
        .to_uppercase();
    s.contains(&format!("BEFORE{op}ONAUDIT")) && s.contains("RAISE(ABORT") && !s.contains("WHEN")
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

    /// Checks the chain, the head file, every release's recorded head and the guard triggers,
    /// with the key from `D1OPS_AUDIT_KEY` when set.
    pub fn verify_audit(&self) -> Result<ChainStatus> {
        self.verify_with(AuditKey::from_env().as_ref())
    }

    fn verify_with(&self, key: Option<&AuditKey>) -> Result<ChainStatus> {
        // The file first, then one snapshot of the table: the file is written only after the
        // commit it names, so that commit is in the snapshot even if another process appends
        // meanwhile (no false "tail cut" from a race).
        let file = self.head_path().map(|p| read_head_file(&p));
        let tx = if self.conn.is_autocommit() {
            Some(self.conn.unchecked_transaction()?)
        } else {
            None
        };
        let walk = self.walk_chain(key)?;
        let triggers = self.trigger_findings()?;
        let releases = self.release_heads()?;
        drop(tx);

        let mut findings = walk.findings;
        let mut notes = Vec::new();
        if key.is_none() && walk.keyed > 0 {
            findings.push(FindingKind::KeyedWithoutKey { events: walk.keyed });
        }
        if key.is_some() && walk.keyed > 0 && walk.plain_before_keyed > 0 {
            notes.push(format!(
                "events 1 to {} were written before {AUDIT_KEY_ENV} was set (plain SHA-256 chain); later events are keyed",
                walk.plain_before_keyed
            ));
        }
        findings.extend(triggers);

        let ends = walk.table.last().map_or(0, |e| e.0);
        let recorded = |source: &str, release: Option<&str>, head: ChainHead| {
            check_recorded(&walk.table, ends, source, release, head)
        };
        let mut head_file = None;
        match file {
            None | Some(HeadRead::Absent) => {
                if ends > 0 && (!releases.is_empty() || walk.keyed > 0) {
                    findings.push(FindingKind::HeadFileMissing {
                        table_ends_at: ends,
                    });
                } else if ends > 0 {
                    notes.push(format!(
                        "no head file yet: .d1ops/{HEAD_FILE} is written at the next audited change"
                    ));
                }
            }
            Some(HeadRead::Unreadable(reason)) => {
                findings.push(FindingKind::HeadFileUnreadable { reason })
            }
            Some(HeadRead::Present(f)) => {
                let head = ChainHead {
                    seq: f.seq,
                    hash: f.hash.clone(),
                };
                head_file = Some(head.clone());
                let problem = recorded("head_file", None, head);
                let in_chain = problem.is_none();
                findings.extend(problem);
                let keyed_head = walk
                    .table
                    .binary_search_by_key(&f.seq, |e| e.0)
                    .ok()
                    .is_some_and(|i| walk.table[i].2);
                let wrong_key = walk.findings_wrong_key;
                match (&f.mac, key) {
                    (None, _) if in_chain && keyed_head => {
                        findings.push(FindingKind::HeadFileMac {
                            seq: f.seq,
                            missing: true,
                        })
                    }
                    (Some(mac), Some(k))
                        if !wrong_key && !mac_matches(head_mac(k, f.seq, &f.hash), mac) =>
                    {
                        findings.push(FindingKind::HeadFileMac {
                            seq: f.seq,
                            missing: false,
                        })
                    }
                    _ => {}
                }
            }
        }
        let mut release_problems: Vec<FindingKind> = releases
            .iter()
            .filter_map(|(id, head)| recorded("release", Some(id), head.clone()))
            .collect();
        if release_problems.len() > MAX_LISTED {
            let more = release_problems.len() - MAX_LISTED;
            release_problems.truncate(MAX_LISTED);
            release_problems.push(FindingKind::MoreProblems { count: more });
        }
        findings.extend(release_problems);

        let findings: Vec<Finding> = findings
            .into_iter()
            .map(|kind| Finding {
                message: kind.message(),
                kind,
            })
            .collect();
        let first_bad_seq = findings.iter().find_map(|f| f.kind.seq());
        let problem = findings.first().map(|f| match findings.len() {
            1 => f.message.clone(),
            n => format!("{} (and {} more problem(s))", f.message, n - 1),
        });
        Ok(ChainStatus {
            events: walk.table.len() as u64,
            ok: findings.is_empty(),
            first_bad_seq,
            problem,
            head: walk.table.last().map(|e| ChainHead {
                seq: e.0,
                hash: e.1.clone(),
            }),
            head_file,
            release_heads: releases.len() as u64,
            keyed: walk.keyed,
            key_given: key.is_some(),
            findings,
            notes,
        })
    }

    /// Recomputes the chain from the first event.
    fn walk_chain(&self, key: Option<&AuditKey>) -> Result<Walk> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, actor, action, release_id, env, detail, prev_hash, hash, scheme \
             FROM audit ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut w = Walk::default();
        let mut prev = GENESIS.to_string();
        let mut expected = 1i64;
        let mut mac_failures = Vec::new();
        let mut problems = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let at: String = r.get(1)?;
            let actor: String = r.get(2)?;
            let action: String = r.get(3)?;
            let release: Option<String> = r.get(4)?;
            let env: Option<String> = r.get(5)?;
            let detail: String = r.get(6)?;
            let prev_hash: String = r.get(7)?;
            let hash: String = r.get(8)?;
            let scheme: String = r.get(9)?;
            let fields = [
                at.as_str(),
                actor.as_str(),
                action.as_str(),
                release.as_deref().unwrap_or(""),
                env.as_deref().unwrap_or(""),
                detail.as_str(),
            ];
            if seq > expected {
                problems.push(FindingKind::MissingEvents {
                    from_seq: expected,
                    to_seq: seq - 1,
                });
            } else if prev_hash != prev {
                problems.push(FindingKind::BrokenLink { seq });
            }
            // The content is checked against the event's own `prev_hash`: a bad link is
            // reported above, an edited field here.
            let keyed = match scheme.as_str() {
                PLAIN => {
                    if w.keyed > 0 {
                        problems.push(FindingKind::Downgraded { seq });
                    } else {
                        w.plain_before_keyed = seq;
                    }
                    if hash != event_hash(&prev_hash, seq, &fields) {
                        problems.push(FindingKind::Altered { seq });
                    }
                    false
                }
                KEYED => {
                    w.keyed += 1;
                    if let Some(k) = key
                        && !mac_matches(event_mac(k, &prev_hash, seq, &fields), &hash)
                    {
                        mac_failures.push(seq);
                    }
                    true
                }
                other => {
                    problems.push(FindingKind::UnknownScheme {
                        seq,
                        scheme: other.to_string(),
                    });
                    false
                }
            };
            w.table.push((seq, hash.clone(), keyed));
            prev = hash;
            expected = seq + 1;
        }
        match mac_failures.first() {
            Some(&first) if w.keyed >= 2 && mac_failures.len() as u64 == w.keyed => {
                w.findings_wrong_key = true;
                problems.push(FindingKind::MacMismatch {
                    seq: first,
                    wrong_key: true,
                });
            }
            _ => problems.extend(
                mac_failures
                    .into_iter()
                    .map(|seq| FindingKind::MacMismatch {
                        seq,
                        wrong_key: false,
                    }),
            ),
        }
        problems.sort_by_key(|p| p.seq());
        if problems.len() > MAX_LISTED {
            let more = problems.len() - MAX_LISTED;
            problems.truncate(MAX_LISTED);
            problems.push(FindingKind::MoreProblems { count: more });
        }
        w.findings = problems;
        Ok(w)
    }

    /// The guard triggers that are missing or no longer refuse their change.
    fn trigger_findings(&self) -> Result<Vec<FindingKind>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND lower(tbl_name) = 'audit'",
        )?;
        let present = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut missing = Vec::new();
        let mut neutered = Vec::new();
        for (name, op) in GUARDS {
            match present.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                None => missing.push(name.to_string()),
                Some((_, sql)) if !guards(sql.as_deref().unwrap_or(""), op) => {
                    neutered.push(name.to_string())
                }
                Some(_) => {}
            }
        }
        let mut out = Vec::new();
        if !missing.is_empty() {
            out.push(FindingKind::MissingTriggers { names: missing });
        }
        if !neutered.is_empty() {
            out.push(FindingKind::NeuteredTriggers { names: neutered });
        }
        Ok(out)
    }

    /// Every release's recorded head.
    fn release_heads(&self) -> Result<Vec<(String, ChainHead)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, audit_head_seq, audit_head_hash FROM releases \
             WHERE audit_head_seq IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ChainHead {
                        seq: r.get(1)?,
                        hash: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// The chain as read by verify.
#[derive(Default)]
struct Walk {
    /// (seq, hash, keyed) of every event, in seq order.
    table: Vec<(i64, String, bool)>,
    keyed: u64,
    /// The last seq of the unkeyed prefix.
    plain_before_keyed: i64,
    findings: Vec<FindingKind>,
    /// Whether no keyed event matched the given key (reported once, not per event).
    findings_wrong_key: bool,
}

/// A recorded head is fine when the chain holds that event with that hash (the chain may go
/// on after it); beyond the table's end it is a cut tail, and with another hash a rewrite.
fn check_recorded(
    table: &[(i64, String, bool)],
    ends: i64,
    source: &str,
    release: Option<&str>,
    recorded: ChainHead,
) -> Option<FindingKind> {
    if recorded.seq == 0 && recorded.hash == GENESIS {
        // Written before the first event: an ancestor of every chain.
        return None;
    }
    let release = release.map(str::to_string);
    if recorded.seq > ends {
        return Some(FindingKind::TailCut {
            source: source.to_string(),
            release,
            recorded,
            table_ends_at: ends,
        });
    }
    let table_hash = table
        .binary_search_by_key(&recorded.seq, |e| e.0)
        .ok()
        .map(|i| table[i].1.clone());
    (table_hash.as_deref() != Some(recorded.hash.as_str())).then(|| FindingKind::HeadNotInChain {
        source: source.to_string(),
        release,
        recorded,
        table_hash,
    })
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
