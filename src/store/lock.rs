//! The promotion lock: one row that says who is promoting what, since when, and how far the
//! promotion got (the recorded intent that crash recovery reads).
use rusqlite::params;

use super::{Result, Store, optional};
use crate::model::now;

/// How far a promotion got; recorded before each step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStep {
    /// Lock taken, nothing done to production yet.
    Locked,
    /// Recovery point taken; production still untouched.
    Snapshotted,
    /// The production apply may be running or committed: recovery must look at the ledger.
    Applying,
}

impl LockStep {
    pub fn as_str(self) -> &'static str {
        match self {
            LockStep::Locked => "locked",
            LockStep::Snapshotted => "snapshotted",
            LockStep::Applying => "applying",
        }
    }

    fn parse(s: &str) -> LockStep {
        match s {
            "locked" => LockStep::Locked,
            "snapshotted" => LockStep::Snapshotted,
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
    /// `promote`, `restore` or `rollback`: which operation holds the lock.
    pub operation: String,
    /// Production's fingerprint when the operation started (restore recovery compares it).
    pub fingerprint_before: Option<String>,
}

impl Store {
    pub fn lock(&self) -> Result<Option<LockRow>> {
        optional(self.conn.query_row(
            "SELECT release_id, holder, pid, host, since, step, snapshot_id, prev_active, \
             created_database, operation, fingerprint_before FROM promotion_lock WHERE id = 1",
            [],
            |r| {
                let step: String = r.get(5)?;
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
                    operation: r.get(9)?,
                    fingerprint_before: r.get(10)?,
                })
            },
        ))
    }

    /// Inserts the lock row; fails (constraint) when one exists — call inside `atomically`
    /// after checking `lock()`.
    pub fn insert_lock(
        &self,
        release_id: &str,
        holder: &str,
        prev_active: Option<&str>,
        operation: &str,
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
            operation: operation.to_string(),
            fingerprint_before: fingerprint_before.map(str::to_string),
        };
        self.conn.execute(
            "INSERT INTO promotion_lock(id, release_id, holder, pid, host, since, step, \
             prev_active, operation, fingerprint_before) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                row.release_id,
                row.holder,
                row.pid,
                row.host,
                row.since,
                row.step.as_str(),
                row.prev_active,
                row.operation,
                row.fingerprint_before
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

    pub fn delete_lock(&self) -> Result<()> {
        self.conn
            .execute("DELETE FROM promotion_lock WHERE id = 1", [])?;
        Ok(())
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

/// Whether the process that holds a lock row is still running (same host only; a lock from
/// another host is assumed alive).
pub fn holder_alive_row(row: &LockRow) -> bool {
    if row.host != hostname() {
        return true;
    }
    if row.pid == std::process::id() {
        return true;
    }
    let proc_root = std::path::Path::new("/proc");
    if !proc_root.is_dir() {
        return true;
    }
    let stat = proc_root.join(row.pid.to_string()).join("stat");
    match std::fs::read_to_string(stat) {
        // A zombie (state Z) has exited; only its parent has not reaped it yet.
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
