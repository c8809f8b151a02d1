//! d1ops' own state: `.d1ops/state.sqlite` (WAL), with a versioned schema and its own upgrade
//! path. Owns the rows for environments, releases, release migrations, artifacts, approvals,
//! gate reports, snapshots, applied-migration checksums, the promotion lock and the audit log.
//! It knows nothing of backends or the console; it never touches a managed database.
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

mod audit;
mod code;
mod envs;
mod lock;
mod records;
mod releases;
mod restores;
mod rollouts;
mod watch;

pub use audit::ChainStatus;
pub use code::{CodeStep, CodeStepEnd, LiveCode, NewCodeStep};
pub use lock::{
    DeployRun, Heartbeat, Holder, LEASE, LockOperation, LockRow, LockStep, deploy_holder,
    holder_alive_row, hostname, lock_holder,
};
pub use records::AppliedChecksum;
pub use restores::RestoreRecord;
pub use rollouts::{NewRollout, RolloutRow};

/// File name of the state database inside `.d1ops/`.
pub const STATE_FILE: &str = "state.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state store {path} has schema version {found}, newer than this d1ops understands ({known}); upgrade d1ops"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("state store is locked by another d1ops process (busy for more than 10 s)")]
    Busy,
    #[error("state store: {0}")]
    Sql(#[source] rusqlite::Error),
    #[error("state store holds an unreadable value in {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy
            }
            _ => StoreError::Sql(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Schema upgrades, one per version; `user_version` counts how many have run.
const UPGRADES: &[&str] = &[
    // v1
    r#"
    CREATE TABLE environments(
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('production', 'preview')),
        database_id TEXT,
        active_release TEXT,
        release_id TEXT,
        base_fingerprint TEXT,
        created_at TEXT NOT NULL,
        last_activity_at TEXT NOT NULL,
        deleted_at TEXT
    );
    CREATE TABLE releases(
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        author TEXT NOT NULL,
        label TEXT,
        commit_sha TEXT,
        supersedes TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        verdict TEXT,
        preview_env TEXT,
        base_fingerprint TEXT,
        failure TEXT,
        root_cause TEXT,
        guardrail TEXT,
        promoted_at TEXT,
        promoted_by TEXT,
        recovery_snapshot INTEGER,
        pending_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX releases_state ON releases(state);
    CREATE TABLE release_migrations(
        release_id TEXT NOT NULL REFERENCES releases(id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        sha256_normalized TEXT NOT NULL,
        pending INTEGER NOT NULL,
        sql TEXT NOT NULL,
        PRIMARY KEY (release_id, position)
    );
    CREATE TABLE artifacts(
        release_id TEXT NOT NULL REFERENCES releases(id),
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        PRIMARY KEY (release_id, name)
    );
    CREATE TABLE approvals(
        id INTEGER PRIMARY KEY,
        release_id TEXT NOT NULL REFERENCES releases(id),
        approver TEXT NOT NULL,
        note TEXT,
        at TEXT NOT NULL,
        UNIQUE (release_id, approver)
    );
    CREATE TABLE gate_reports(
        release_id TEXT PRIMARY KEY REFERENCES releases(id),
        verdict TEXT NOT NULL,
        report TEXT NOT NULL,
        total_ms REAL NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE snapshots(
        id INTEGER PRIMARY KEY,
        release_id TEXT,
        env TEXT NOT NULL,
        location TEXT,
        size_bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        deleted_at TEXT
    );
    CREATE TABLE applied_migrations(
        env TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        sha256_normalized TEXT NOT NULL,
        release_id TEXT,
        applied_at TEXT NOT NULL,
        PRIMARY KEY (env, name)
    );
    CREATE TABLE promotion_lock(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        release_id TEXT NOT NULL,
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        since TEXT NOT NULL,
        step TEXT NOT NULL,
        snapshot_id INTEGER,
        prev_active TEXT,
        created_database INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE audit(
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        release_id TEXT,
        env TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_release ON audit(release_id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // v2: a release carries its probes (the live release's probes check the candidate).
    r#"
    ALTER TABLE releases ADD COLUMN probes TEXT;
    "#,
    // v3: recovery: snapshot kinds and the release live before them, restores (undoable),
    // and the lock row records which operation holds it.
    r#"
    ALTER TABLE snapshots ADD COLUMN kind TEXT NOT NULL DEFAULT 'pre-promote';
    ALTER TABLE snapshots ADD COLUMN previous_release TEXT;
    ALTER TABLE promotion_lock ADD COLUMN operation TEXT NOT NULL DEFAULT 'promote';
    ALTER TABLE promotion_lock ADD COLUMN fingerprint_before TEXT;
    CREATE TABLE restores(
        id INTEGER PRIMARY KEY,
        to_release TEXT,
        snapshot_id INTEGER NOT NULL,
        pre_snapshot_id INTEGER,
        status TEXT NOT NULL,
        actor TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        previous_states TEXT NOT NULL,
        previous_active TEXT,
        previous_applied TEXT NOT NULL,
        undo_of INTEGER
    );
    "#,
    // v4: the post-promotion watch window's verdict per release (JSON, see engine/capacity).
    r#"
    ALTER TABLE releases ADD COLUMN watch TEXT;
    "#,
    // v5: nothing stays stuck: lock heartbeats (a lease that tells a dead holder on another
    // host), deploys in progress with their holder (a killed deploy is settled), and the
    // fingerprints a restore expects before and after its apply (recovery decides by them).
    // Previews already `previewing` get a run whose lease starts now: settled in a minute
    // unless their deploy (by an older d1ops) finishes first.
    r#"
    ALTER TABLE promotion_lock ADD COLUMN heartbeat_at TEXT;
    ALTER TABLE promotion_lock ADD COLUMN lease TEXT;
    ALTER TABLE restores ADD COLUMN fingerprint_before TEXT;
    ALTER TABLE restores ADD COLUMN target_fingerprint TEXT;
    CREATE TABLE deploy_runs(
        release_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT,
        lease TEXT NOT NULL
    );
    INSERT INTO deploy_runs(release_id, holder, pid, host, started_at, heartbeat_at, lease)
        SELECT id, author, 0, '', created_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'upgrade-' || id
        FROM releases WHERE state = 'previewing';
    "#,
    // v6: the audit chain's head outside the audit table (each release keeps the head after its
    // latest event), and each event's chain scheme (`sha256`, or `hmac-sha256` under
    // D1OPS_AUDIT_KEY). See store/audit.rs.
    r#"
    ALTER TABLE audit ADD COLUMN scheme TEXT NOT NULL DEFAULT 'sha256';
    ALTER TABLE releases ADD COLUMN audit_head_seq INTEGER;
    ALTER TABLE releases ADD COLUMN audit_head_hash TEXT;
    "#,
    // v7: deploy pins a copy of each artifact (`.d1ops/artifacts/<sha256>`, content-addressed,
    // shared by releases); NULL for artifacts recorded before pinning.
    r#"
    ALTER TABLE artifacts ADD COLUMN pinned TEXT;
    "#,
    // v8: code targets. Every step that ships a release's code (a preview, a production
    // deploy, a revert, a rollback) is a row, written `running` before it starts; `code_live`
    // says which release's code each target of an environment runs. See store/code.rs.
    r#"
    CREATE TABLE code_steps(
        id INTEGER PRIMARY KEY,
        release_id TEXT NOT NULL,
        operation_release TEXT NOT NULL,
        operation TEXT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        env TEXT NOT NULL,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        artifact_sha256 TEXT,
        version_id TEXT,
        url TEXT,
        exit_code INTEGER,
        detail TEXT,
        output_tail TEXT,
        log_path TEXT,
        actor TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX code_steps_by_release ON code_steps(release_id, target);
    CREATE INDEX code_steps_by_operation ON code_steps(operation_release, operation);
    CREATE TABLE code_live(
        env TEXT NOT NULL,
        target TEXT NOT NULL,
        release_id TEXT NOT NULL,
        version_id TEXT,
        deployed_at TEXT NOT NULL,
        PRIMARY KEY(env, target)
    );
    ALTER TABLE releases ADD COLUMN targets TEXT;
    "#,
    // v9: gradual rollouts of worker targets: the two versions sharing the traffic, the
    // steps, the step live now and the next one's due time. See store/rollouts.rs.
    r#"
    CREATE TABLE rollouts(
        id INTEGER PRIMARY KEY,
        release_id TEXT NOT NULL,
        target TEXT NOT NULL,
        script TEXT NOT NULL,
        previous_version TEXT NOT NULL,
        new_version TEXT NOT NULL,
        steps TEXT NOT NULL,
        step INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('rolling', 'done', 'halted', 'aborted')),
        wait_secs INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        next_at TEXT,
        last_check TEXT,
        detail TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX rollouts_by_release ON rollouts(release_id, target);
    CREATE INDEX rollouts_by_status ON rollouts(status);
    "#,
    // v10: a deleted environment keeps the id of the database it had, so D1's analytics
    // of a preview created and deleted between two syncs are still fetched (they count
    // toward the account's daily caps). See store/envs.rs.
    r#"
    ALTER TABLE environments ADD COLUMN last_database_id TEXT;
    "#,
];

/// The state store: one connection, used from one thread at a time.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating when absent) the state store in `state_dir` and upgrades its schema.
    pub fn open(state_dir: &Path) -> Result<Store> {
        let path = state_dir.join(STATE_FILE);
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Open {
            path: shown.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let mut store = Store { conn };
        store.upgrade(&shown)?;
        Ok(store)
    }

    /// Runs the schema upgrades this store has not seen yet, each in its own transaction.
    fn upgrade(&mut self, shown: &str) -> Result<()> {
        let too_new = |found, known| StoreError::TooNew {
            path: shown.to_string(),
            found,
            known,
        };
        crate::schema_upgrade::upgrade(&mut self.conn, UPGRADES, too_new, |_, _| Ok(()))
    }

    /// The schema version of the store.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Runs `f` inside one IMMEDIATE transaction: all of its writes land together or not at all.
    pub fn atomically<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Store) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| E::from(e.into()))?;
        match f(self) {
            Ok(v) => {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| E::from(e.into()))?;
                // After the commit, never before: the head file may lag the log, never lead it.
                self.publish_audit_head();
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// Reads an optional single value.
pub(crate) fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    Ok(r.optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_store_is_at_the_latest_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), UPGRADES.len() as i64);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Reopening runs no upgrade twice (the DDL would fail if it did).
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), UPGRADES.len() as i64);
    }

    #[test]
    fn a_store_from_a_newer_d1ops_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let raw = Connection::open(dir.path().join(STATE_FILE)).unwrap();
        raw.pragma_update(None, "user_version", 99).unwrap();
        drop(raw);
        let err = Store::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("schema version 99") && err.contains("upgrade d1ops"),
            "{err}"
        );
    }

    #[test]
    fn audit_chain_links_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..3 {
            store
                .audit(
                    "alice",
                    "test.event",
                    None,
                    None,
                    &serde_json::json!({ "i": i }),
                )
                .unwrap();
        }
        let events = store.audit_events(None, 10).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].prev_hash, events[1].hash);
        assert!(store.verify_audit().unwrap().ok);
    }
}
