//! Domain records shared by the store, the engine and both faces: releases, environments,
//! approvals, snapshots, audit events and gate results. Plain data, no I/O.
use serde::{Deserialize, Serialize};

/// The production environment's name (and, locally, its database id).
pub const PRODUCTION: &str = "production";

/// Where a release is in its lifecycle (see DESIGN.md "Release lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    Previewing,
    Ready,
    Blocked,
    Approved,
    Promoting,
    Live,
    Superseded,
    Failed,
    Abandoned,
    RolledBack,
    Reverted,
}

impl ReleaseState {
    pub const ALL: [ReleaseState; 11] = [
        ReleaseState::Previewing,
        ReleaseState::Ready,
        ReleaseState::Blocked,
        ReleaseState::Approved,
        ReleaseState::Promoting,
        ReleaseState::Live,
        ReleaseState::Superseded,
        ReleaseState::Failed,
        ReleaseState::Abandoned,
        ReleaseState::RolledBack,
        ReleaseState::Reverted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Previewing => "previewing",
            ReleaseState::Ready => "ready",
            ReleaseState::Blocked => "blocked",
            ReleaseState::Approved => "approved",
            ReleaseState::Promoting => "promoting",
            ReleaseState::Live => "live",
            ReleaseState::Superseded => "superseded",
            ReleaseState::Failed => "failed",
            ReleaseState::Abandoned => "abandoned",
            ReleaseState::RolledBack => "rolled_back",
            ReleaseState::Reverted => "reverted",
        }
    }

    pub fn parse(s: &str) -> Option<ReleaseState> {
        ReleaseState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A candidate still awaits a decision (approve, promote or abandon).
    pub fn is_candidate(self) -> bool {
        matches!(
            self,
            ReleaseState::Previewing | ReleaseState::Ready | ReleaseState::Approved
        )
    }
}

impl std::fmt::Display for ReleaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate's overall decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ready,
    Blocked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::Blocked => "blocked",
        }
    }
}

/// One check's status. `skip` means the check could not run (an earlier step failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Skip => "skip",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        }
    }

    /// ✓ / ! / ✗ / - as printed in checklists.
    pub fn mark(self) -> &'static str {
        match self {
            CheckStatus::Pass => "✓",
            CheckStatus::Warn => "!",
            CheckStatus::Fail => "✗",
            CheckStatus::Skip => "-",
        }
    }
}

/// One gate check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub status: CheckStatus,
    pub reason: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    pub duration_ms: f64,
}

/// The gate's report for one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub verdict: Verdict,
    pub checks: Vec<CheckResult>,
    pub total_ms: f64,
}

/// Why a promotion (or preview apply) failed: which migration, which statement, what error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    pub error: String,
    pub at: String,
    /// Stage `code`: the target whose step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Stage `code`: the last lines of the failing step's output (secrets redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// Stage `code`: what became of production's schema and code, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// A migration as carried by a release (content pinned at deploy time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseMigration {
    pub position: u32,
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub sha256_normalized: String,
    /// Not yet applied to production when the release was deployed.
    pub pending: bool,
    #[serde(skip_serializing)]
    pub sql: String,
}

/// A component artifact and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// The copy deploy pinned (`.d1ops/artifacts/<sha256>`, relative to the workspace root);
    /// `None` for releases deployed before artifacts were pinned.
    #[serde(default)]
    pub pinned: Option<String>,
}

/// Whether two user names are the same person. Identities are compared trimmed and without
/// regard to case, so `ALICE` (or ` alice`) cannot approve what `alice` deployed, nor approve
/// a second time. Every identity comparison (self-approval, duplicate approval) goes here.
pub fn same_person(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// How many different people approved: approvals recorded under two spellings of one name
/// (before names were compared without case) count once.
pub fn distinct_approvers(approvals: &[Approval]) -> usize {
    let mut seen: Vec<&str> = Vec::new();
    for a in approvals {
        if !seen.iter().any(|s| same_person(s, &a.approver)) {
            seen.push(&a.approver);
        }
    }
    seen.len()
}

/// Characters no user name may hold and terminal output never prints raw: C0 controls (ESC,
/// BEL, CR, LF, TAB, …), DEL, C1 controls (U+0080–U+009F), the bidi embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C), and the
/// Unicode line and paragraph separators (U+2028, U+2029). They drive a terminal, forge lines
/// or make a name read differently than it is.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub at: String,
}

/// A release record (immutable content; state and decisions change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub state: ReleaseState,
    pub author: String,
    pub label: Option<String>,
    pub commit: Option<String>,
    pub supersedes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub verdict: Option<Verdict>,
    pub preview_env: Option<String>,
    pub base_fingerprint: Option<String>,
    pub failure: Option<Failure>,
    pub root_cause: Option<String>,
    pub guardrail: Option<String>,
    pub promoted_at: Option<String>,
    pub promoted_by: Option<String>,
    pub recovery_snapshot: Option<i64>,
    /// Number of migrations pending against production at deploy time.
    pub pending_count: u32,
}

impl Release {
    /// What an operator types to confirm a dangerous action on this release (promote,
    /// roll back to, restore before): see [`confirmation_code`].
    pub fn confirmation_code(&self) -> &str {
        confirmation_code(&self.id)
    }

    /// Whether `typed` confirms a dangerous action on this release: see [`confirms`].
    pub fn confirms(&self, typed: &str) -> bool {
        confirms(&self.id, typed)
    }
}

/// The confirmation code of release `id`: its last 4 characters (the whole id if shorter).
/// The CLI's prompts and the console's dialog ask for it.
pub fn confirmation_code(id: &str) -> &str {
    let start = id.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    &id[start..]
}

/// Whether `typed` is release `id`'s confirmation code: surrounding whitespace ignored,
/// ASCII case-insensitive (ids are ULIDs), never for an empty code.
pub fn confirms(id: &str, typed: &str) -> bool {
    let code = confirmation_code(id);
    !code.is_empty() && typed.trim().eq_ignore_ascii_case(code)
}

/// Production or a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvKind {
    Production,
    Preview,
}

impl EnvKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvKind::Production => "production",
            EnvKind::Preview => "preview",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub kind: EnvKind,
    /// Backend database id; `None` when no database exists (yet, or any more).
    pub database_id: Option<String>,
    pub active_release: Option<String>,
    /// The release a preview was made for.
    pub release_id: Option<String>,
    pub base_fingerprint: Option<String>,
    pub created_at: String,
    pub last_activity_at: String,
    pub deleted_at: Option<String>,
}

/// A recovery point taken before a production apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: i64,
    pub release_id: Option<String>,
    pub env: String,
    /// Backend location; `None` when the database did not exist at that point.
    pub location: Option<String>,
    pub size_bytes: u64,
    pub created_at: String,
    pub deleted_at: Option<String>,
    /// `pre-promote` (taken before a release's migrations reached production) or
    /// `pre-restore` (taken before a restore, so the restore can be undone).
    pub kind: String,
    /// The release production pointed at when the snapshot was taken.
    pub previous_release: Option<String>,
}

/// One append-only, hash-chained audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub release_id: Option<String>,
    pub env: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

// The clock lives in d1ops-sql (every crate reads it); the model re-exports it.
pub use d1ops_sql::clock::{freeze_clock, now, now_utc, parse_time, set_clock_offset};

/// A new release id for a release created at `at`: a ULID, strictly greater than every id
/// this process made before (two deploys in one millisecond still sort in deploy order).
pub fn new_release_id(at: chrono::DateTime<chrono::Utc>) -> String {
    static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let made = IDS.lock().ok().and_then(|mut g| {
        g.get_or_insert_with(ulid::Generator::new)
            .generate_from_datetime(at.into())
            .ok()
    });
    made.unwrap_or_else(|| ulid::Ulid::from_datetime(at.into()))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bob` and `BOB` recorded before names were compared without case are one approver.
    #[test]
    fn case_twins_count_as_one_approver() {
        let a = |name: &str| Approval {
            approver: name.into(),
            note: None,
            at: String::new(),
        };
        assert_eq!(distinct_approvers(&[a("bob"), a("BOB"), a(" carol ")]), 2);
        assert_eq!(distinct_approvers(&[]), 0);
    }

    /// Two ids made in the same millisecond still sort in the order they were made.
    #[test]
    fn release_ids_made_in_one_millisecond_stay_ordered() {
        let at = chrono::Utc::now();
        let ids: Vec<String> = (0..100).map(|_| new_release_id(at)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    /// The one confirmation rule of the CLI and the console: the id's last 4 characters,
    /// trimmed, in any case; nothing confirms an empty code.
    #[test]
    fn confirmation_is_the_ids_last_four_characters() {
        let id = "01JABCDEFGHJKMNPQRSTVWXYZ";
        assert_eq!(confirmation_code(id), "WXYZ");
        for typed in ["WXYZ", "wxyz", " wXyZ\n"] {
            assert!(confirms(id, typed), "{typed:?}");
        }
        for typed in ["", "XYZ", "VWXYZ", "wxy z"] {
            assert!(!confirms(id, typed), "{typed:?}");
        }
        assert_eq!(confirmation_code("abc"), "abc");
        assert_eq!(confirmation_code("aéßçd"), "éßçd");
        assert!(!confirms("", ""));
    }
}
