//! What `audit --verify` reports: the chain points it compares ([`ChainHead`]), each problem
//! found ([`Finding`], [`FindingKind`]) with the sentence that names it, and the summary
//! ([`ChainStatus`]). Only words and shapes: finding the problems is `audit_verify`'s job.
use serde::{Deserialize, Serialize};

use super::{AUDIT_KEY_ENV, HEAD_FILE};

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
    pub(super) fn seq(&self) -> Option<i64> {
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
    pub(super) fn message(&self) -> String {
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
