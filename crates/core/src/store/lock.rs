//! The production lock and the running-deploy records: who is changing what, since when, how
//! far it got (the recorded intent that crash recovery reads), and a heartbeat that tells a
//! live holder from a dead one, also across hosts.
//!
//! Liveness: a holder refreshes `heartbeat_at` every [`HEARTBEAT_EVERY`] from a background
//! thread (see [`Heartbeat`]) while it holds the lock or runs the deploy. A heartbeat older
//! than [`LEASE`] means the holder is gone, wherever it ran; on the same host a holder whose
//! process no longer exists is gone at once. A row without a heartbeat comes from an older
//! d1ops: on another host it cannot be judged (`d1ops unlock` settles it).
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{Result, Store, StoreError, optional};
use crate::model::{now, parse_time};

/// How often a holder refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A heartbeat older than this means the holder is gone (hosts' clocks are assumed to agree
/// to within a few seconds, as NTP keeps them).
pub const LEASE: Duration = Duration::from_secs(60);

/// Which operation holds the lock: each changes production, so one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockOperation {
    Promote,
    Restore,
    Rollback,
    LedgerRepair,
}

impl LockOperation {
    pub const ALL: [LockOperation; 4] = [
        LockOperation::Promote,
        LockOperation::Restore,
        LockOperation::Rollback,
        LockOperation::LedgerRepair,
    ];

    /// The name in the lock row's `operation` column, in JSON and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LockOperation::Promote => "promote",
            LockOperation::Restore => "restore",
            LockOperation::Rollback => "rollback",
            LockOperation::LedgerRepair => "ledger-repair",
        }
    }

    pub fn parse(s: &str) -> Option<LockOperation> {
        LockOperation::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl std::fmt::Display for LockOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for LockOperation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How far an operation holding the lock got; recorded before each step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStep {
    /// Lock taken, nothing done to production yet.
    Locked,
    /// Recovery point taken; production still untouched.
    Snapshotted,
    /// The production write may be running or committed: recovery must look at production.
    Applying,
    /// The production write returned successfully; only the state transaction is missing.
    Applied,
    /// The migrations are committed (or there were none); the release's code is being
    /// shipped target by target (each step recorded in `code_steps`).
    Code,
}

impl LockStep {
    pub fn as_str(self) -> &'static str {
        match self {
            LockStep::Locked => "locked",
            LockStep::Snapshotted => "snapshotted",
            LockStep::Applying => "applying",
            LockStep::Applied => "applied",
            LockStep::Code => "code",
        }
    }

    fn parse(s: &str) -> LockStep {
        match s {
            "locked" => LockStep::Locked,
            "snapshotted" => LockStep::Snapshotted,
            "applied" => LockStep::Applied,
            "code" => LockStep::Code,
            // Unknown means "assume the worst": recovery inspects production.
            _ => LockStep::Applying,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub release_id: String,
    pub holder: String,
    pub pid: u32,
    pub host: String,
    pub since: String,
    pub step: LockStep,
    pub snapshot_id: Option<i64>,
    pub prev_active: Option<String>,
    /// The promotion created production's database (lazy provisioning).
    pub created_database: bool,
    /// Which operation holds the lock.
    pub operation: LockOperation,
    /// Production's fingerprint when the operation started (restore recovery compares it).
    pub fingerprint_before: Option<String>,
    /// The holder's last heartbeat (`None`: a lock taken by a d1ops without heartbeats).
    pub heartbeat_at: Option<String>,
    /// A random token naming this holding of the lock (the heartbeat refreshes only it).
    pub lease: Option<String>,
}

/// A deploy in progress: its release is `previewing` until the gate's verdict is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRun {
    pub release_id: String,
    pub holder: String,
    pub pid: u32,
    pub host: String,
    pub started_at: String,
    pub heartbeat_at: Option<String>,
    pub lease: String,
}

/// What can be told about the process behind a lock or a running deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// This host, and its process is running.
    RunningHere,
    /// Another host, heartbeat younger than the lease.
    LeaseFresh,
    /// Another host and no heartbeat recorded (an older d1ops): cannot be told.
    Unknown,
    /// This host, and its process is gone.
    Gone,
    /// Its heartbeat is older than the lease.
    LeaseExpired,
}

impl Holder {
    /// Whether recovery must leave the holder's work alone.
    pub fn alive(self) -> bool {
        matches!(
            self,
            Holder::RunningHere | Holder::LeaseFresh | Holder::Unknown
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Holder::RunningHere => "its process is running on this host",
            Holder::LeaseFresh => "its heartbeat is fresh",
            Holder::Unknown => "it runs on another host and records no heartbeat",
            Holder::Gone => "its process has exited",
            Holder::LeaseExpired => "its heartbeat lease expired",
        }
    }
}

/// The current time of the heartbeat clock (the real clock: the demo's offset is per process).
fn beat_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Judges a holder by its host, pid and last heartbeat.
pub fn holder_state(pid: u32, host: &str, heartbeat_at: Option<&str>) -> Holder {
    let beat = heartbeat_at.and_then(parse_time);
    if let Some(t) = beat {
        let age = chrono::Utc::now() - t;
        if age.to_std().is_ok_and(|a| a > LEASE) {
            return Holder::LeaseExpired;
        }
    }
    if host == hostname() {
        return if pid == std::process::id() || process_running(pid) {
            Holder::RunningHere
        } else {
            Holder::Gone
        };
    }
    match beat {
        Some(_) => Holder::LeaseFresh,
        None => Holder::Unknown,
    }
}

/// Whether process `pid` runs on this host (a zombie has exited). Without `/proc` nothing
/// can be told, so the process is assumed to run.
fn process_running(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let proc_root = std::path::Path::new("/proc");
    if !proc_root.is_dir() {
        return true;
    }
    let stat = proc_root.join(pid.to_string()).join("stat");
    match std::fs::read_to_string(stat) {
        // A zombie (state Z) has exited; only its parent has not reaped it yet.
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

const LOCK_COLUMNS: &str = "release_id, holder, pid, host, since, step, snapshot_id, prev_active, \
     created_database, operation, fingerprint_before, heartbeat_at, lease";

fn lock_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LockRow> {
    let step: String = r.get(5)?;
    let operation: String = r.get(9)?;
    Ok(LockRow {
        release_id: r.get(0)?,
        holder: r.get(1)?,
        pid: r.get(2)?,
        host: r.get(3)?,
        since: r.get(4)?,
        step: LockStep::parse(&step),
        snapshot_id: r.get(6)?,
        prev_active: r.get(7)?,
        created_database: r.get(8)?,
        // Unknown (a newer d1ops's): recovered as a promotion, which reads production's
        // ledger to decide, as before the operation was recorded at all.
        operation: LockOperation::parse(&operation).unwrap_or(LockOperation::Promote),
        fingerprint_before: r.get(10)?,
        heartbeat_at: r.get(11)?,
        lease: r.get(12)?,
    })
}

fn new_lease() -> String {
    ulid::Ulid::from_datetime(std::time::SystemTime::now()).to_string()
}

impl Store {
    pub fn lock(&self) -> Result<Option<LockRow>> {
        optional(self.conn.query_row(
            &format!("SELECT {LOCK_COLUMNS} FROM promotion_lock WHERE id = 1"),
            [],
            lock_from_row,
        ))
    }

    /// Inserts the lock row; fails (constraint) when one exists — call inside `atomically`
    /// after checking `lock()`.
    pub fn insert_lock(
        &self,
        release_id: &str,
        holder: &str,
        prev_active: Option<&str>,
        operation: LockOperation,
        fingerprint_before: Option<&str>,
    ) -> Result<LockRow> {
        let row = LockRow {
            release_id: release_id.to_string(),
            holder: holder.to_string(),
            pid: std::process::id(),
            host: hostname(),
            since: now(),
            step: LockStep::Locked,
            snapshot_id: None,
            prev_active: prev_active.map(str::to_string),
            created_database: false,
            operation,
            fingerprint_before: fingerprint_before.map(str::to_string),
            heartbeat_at: Some(beat_now()),
            lease: Some(new_lease()),
        };
        self.conn.execute(
            "INSERT INTO promotion_lock(id, release_id, holder, pid, host, since, step, \
             prev_active, operation, fingerprint_before, heartbeat_at, lease) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                row.release_id,
                row.holder,
                row.pid,
                row.host,
                row.since,
                row.step.as_str(),
                row.prev_active,
                row.operation.as_str(),
                row.fingerprint_before,
                row.heartbeat_at,
                row.lease
            ],
        )?;
        Ok(row)
    }

    pub fn set_lock_step(
        &self,
        step: LockStep,
        snapshot_id: Option<i64>,
        created_database: bool,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE promotion_lock SET step = ?1, snapshot_id = COALESCE(?2, snapshot_id), \
             created_database = ?3 WHERE id = 1",
            params![step.as_str(), snapshot_id, created_database],
        )?;
        Ok(())
    }

    /// Records `step` only while the lock is still the holding named `lease`; `false` when
    /// it is not (its lease expired while this process was paused, and another process
    /// recovered it). The step before touching production is recorded this way.
    pub fn set_lock_step_if_held(
        &self,
        lease: &str,
        step: LockStep,
        snapshot_id: Option<i64>,
        created_database: bool,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE promotion_lock SET step = ?1, snapshot_id = COALESCE(?2, snapshot_id), \
             created_database = ?3 WHERE id = 1 AND lease = ?4",
            params![step.as_str(), snapshot_id, created_database, lease],
        )?;
        Ok(n > 0)
    }

    /// Whether the lock is still the holding named `lease`.
    pub fn lock_held(&self, lease: &str) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM promotion_lock WHERE id = 1 AND lease = ?1",
            [lease],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    pub fn delete_lock(&self) -> Result<()> {
        self.conn
            .execute("DELETE FROM promotion_lock WHERE id = 1", [])?;
        Ok(())
    }

    /// Records that this process starts deploying `release_id` (inside the transaction that
    /// inserts the release).
    pub fn insert_deploy_run(&self, release_id: &str, holder: &str) -> Result<DeployRun> {
        let run = DeployRun {
            release_id: release_id.to_string(),
            holder: holder.to_string(),
            pid: std::process::id(),
            host: hostname(),
            started_at: now(),
            heartbeat_at: Some(beat_now()),
            lease: new_lease(),
        };
        self.conn.execute(
            "INSERT OR REPLACE INTO deploy_runs(release_id, holder, pid, host, started_at, \
             heartbeat_at, lease) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                run.release_id,
                run.holder,
                run.pid,
                run.host,
                run.started_at,
                run.heartbeat_at,
                run.lease
            ],
        )?;
        Ok(run)
    }

    /// Deploys recorded as in progress (their holder may have died).
    pub fn deploy_runs(&self) -> Result<Vec<DeployRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT release_id, holder, pid, host, started_at, heartbeat_at, lease \
             FROM deploy_runs ORDER BY started_at",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DeployRun {
                    release_id: r.get(0)?,
                    holder: r.get(1)?,
                    pid: r.get(2)?,
                    host: r.get(3)?,
                    started_at: r.get(4)?,
                    heartbeat_at: r.get(5)?,
                    lease: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn delete_deploy_run(&self, release_id: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM deploy_runs WHERE release_id = ?1",
            [release_id],
        )?;
        Ok(())
    }

    /// Deletes a run only while it is still the one named `lease`; `false` when another
    /// process settled it first.
    pub fn delete_deploy_run_held(&self, release_id: &str, lease: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM deploy_runs WHERE release_id = ?1 AND lease = ?2",
            params![release_id, lease],
        )?;
        Ok(n > 0)
    }

    /// Takes over the lock of a holder judged gone, for this process to recover it: its pid,
    /// host, heartbeat and lease become this process's (the holder's name, step and intent
    /// stay). `None` when the lock is no longer that holding — another process is settling
    /// it, or already did. While this process recovers, others see a live holder; if it dies
    /// too, the next one recovers again from the same recorded step.
    pub fn claim_lock(&self, old: &LockRow) -> Result<Option<String>> {
        let lease = new_lease();
        let n = self.conn.execute(
            "UPDATE promotion_lock SET pid = ?1, host = ?2, heartbeat_at = ?3, lease = ?4 \
             WHERE id = 1 AND lease IS ?5 AND pid = ?6 AND host = ?7 AND since = ?8",
            params![
                std::process::id(),
                hostname(),
                beat_now(),
                lease,
                old.lease,
                old.pid,
                old.host,
                old.since
            ],
        )?;
        Ok((n > 0).then_some(lease))
    }

    /// Starts refreshing the heartbeat of the lock holding named `lease`.
    pub fn lock_heartbeat(&self, lease: &str) -> Result<Heartbeat> {
        Heartbeat::start(
            self.path()?,
            "UPDATE promotion_lock SET heartbeat_at = ?1 WHERE id = 1 AND lease = ?2",
            lease.to_string(),
        )
    }

    /// Starts refreshing the heartbeat of a running deploy.
    pub fn deploy_heartbeat(&self, run: &DeployRun) -> Result<Heartbeat> {
        Heartbeat::start(
            self.path()?,
            "UPDATE deploy_runs SET heartbeat_at = ?1 WHERE lease = ?2",
            run.lease.clone(),
        )
    }

    fn path(&self) -> Result<PathBuf> {
        self.conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or(StoreError::Corrupt {
                what: "state store path",
                value: String::new(),
            })
    }
}

/// Refreshes one heartbeat from a background thread, over its own connection, until the
/// row is gone or this value is dropped (then the lease runs out on its own).
#[derive(Debug)]
pub struct Heartbeat {
    stop: mpsc::Sender<()>,
    lease: String,
}

impl Heartbeat {
    fn start(path: PathBuf, sql: &'static str, lease: String) -> Result<Heartbeat> {
        // Opened here so that a holder that cannot beat fails before it starts working.
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let mine = lease.clone();
        let spawned = std::thread::Builder::new()
            .name("d1ops-heartbeat".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(HEARTBEAT_EVERY) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        // Dropped or told to stop.
                        _ => return,
                    }
                    match conn.execute(sql, params![beat_now(), lease]) {
                        // The row is gone (released or settled): nothing left to keep alive.
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "heartbeat not recorded"),
                    }
                }
            });
        if let Err(e) = spawned {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            });
        }
        Ok(Heartbeat { stop, lease: mine })
    }

    /// The token of the holding this heartbeat keeps alive.
    pub fn lease(&self) -> &str {
        &self.lease
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// This machine's name, for lock ownership.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the holder of a lock row may still be working (see [`holder_state`]).
pub fn holder_alive_row(row: &LockRow) -> bool {
    lock_holder(row).alive()
}

/// What can be told about a lock row's holder.
pub fn lock_holder(row: &LockRow) -> Holder {
    holder_state(row.pid, &row.host, row.heartbeat_at.as_deref())
}

/// What can be told about a running deploy's holder.
pub fn deploy_holder(run: &DeployRun) -> Holder {
    holder_state(run.pid, &run.host, run.heartbeat_at.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ago(secs: i64) -> String {
        (chrono::Utc::now() - chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    #[test]
    fn holders_are_judged_by_process_and_lease() {
        let me = std::process::id();
        let here = hostname();
        assert_eq!(holder_state(me, &here, Some(&ago(1))), Holder::RunningHere);
        assert_eq!(holder_state(me, &here, None), Holder::RunningHere);
        assert_eq!(
            holder_state(me, &here, Some(&ago(600))),
            Holder::LeaseExpired
        );
        assert_eq!(holder_state(0, &here, Some(&ago(1))), Holder::Gone);
        assert_eq!(
            holder_state(1, "elsewhere-7f3a", Some(&ago(2))),
            Holder::LeaseFresh
        );
        assert_eq!(
            holder_state(1, "elsewhere-7f3a", Some(&ago(61))),
            Holder::LeaseExpired
        );
        assert_eq!(holder_state(1, "elsewhere-7f3a", None), Holder::Unknown);
        assert!(Holder::Unknown.alive() && !Holder::LeaseExpired.alive());
    }

    #[test]
    fn lock_operations_round_trip_through_the_column() {
        for op in LockOperation::ALL {
            assert_eq!(LockOperation::parse(op.as_str()), Some(op));
            assert_eq!(serde_json::to_value(op).unwrap(), op.as_str());
        }
        assert_eq!(LockOperation::LedgerRepair.to_string(), "ledger-repair");
        assert_eq!(LockOperation::parse("promotion"), None);
    }
}
