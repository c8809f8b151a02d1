//! Crash recovery: an operation whose process died is finished or undone on the next start,
//! never left half-way, never applied twice, and never at the cost of rows written since.
//!
//! The production lock records each step before it runs (see ARCHITECTURE.md, "Recovery
//! decisions"). Promote: up to `snapshotted` production was not touched: roll back. At
//! `applying`, SQLite's own journal already undid an uncommitted transaction when production
//! is next opened, so the ledger (written in the same transaction as the migrations) tells
//! the truth: every pending migration recorded → roll forward; none → roll back. Restore:
//! see `restore.rs`. Rollback: one state transaction, so an interrupted one changed nothing.
//!
//! A holder is gone when its process no longer runs on this host or its heartbeat lease
//! expired (`store::lock`). Deploys in progress are recorded the same way: one whose holder
//! is gone is settled (release `blocked`, "deploy interrupted", preview removed, audited).
//! Temporary copies (`*.sqlite.tmp`) no live operation owns are removed.
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, PRODUCTION, Result};
use crate::backend::DatabaseRef;
use crate::model::{CheckResult, CheckStatus, GateReport, ReleaseState, Verdict};
use crate::store::{
    DeployRun, Holder, LEASE, LockOperation, LockRow, LockStep, deploy_holder, lock_holder,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    pub release: String,
    pub operation: LockOperation,
    /// `rolled_forward` or `rolled_back`.
    pub outcome: String,
    pub step: String,
    pub holder: String,
}

/// What `d1ops unlock` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct UnlockOutcome {
    pub operation: LockOperation,
    pub release: String,
    pub holder: String,
    pub pid: u32,
    pub host: String,
    pub since: String,
    pub heartbeat_at: Option<String>,
    /// Why the holder was judged gone.
    pub judged: String,
    pub recovery: RecoveryReport,
}

/// The suffix of the temporary copies the local backend writes before renaming them.
const TMP_SUFFIX: &str = ".sqlite.tmp";

impl Engine {
    /// Everything `Engine::open` settles: an interrupted lock holder (errors are fatal: the
    /// command must not run on a half-state), interrupted deploys and stale temporary files
    /// (best effort: logged, never blocking the command).
    pub fn recover_on_open(&mut self) -> Result<Option<RecoveryReport>> {
        // When the lock's holder was judged gone: the copies it was writing stopped before.
        let dead_lock = match self.store.lock()? {
            Some(l) if !lock_holder(&l).alive() => Some(std::time::SystemTime::now()),
            _ => None,
        };
        let report = self.recover()?;
        if let Err(e) = self.settle_interrupted_deploys() {
            tracing::warn!(error = %e, "interrupted deploys not settled");
        }
        let removed = self.remove_stale_temp_files(dead_lock);
        if !removed.is_empty() {
            tracing::warn!(files = ?removed, "removed temporary files left by interrupted operations");
            let files: Vec<&str> = removed.iter().map(|(p, _)| p.as_str()).collect();
            if let Err(e) = self.audit(
                "temp_files.removed",
                None,
                None,
                json!({"files": files, "by": "recovery"}),
            ) {
                tracing::warn!(error = %e, "removal of temporary files not audited");
            }
        }
        Ok(report)
    }

    /// Recovers an interrupted operation whose holder is gone; `None` when there is nothing to do.
    pub fn recover(&mut self) -> Result<Option<RecoveryReport>> {
        let Some(lock) = self.store.lock()? else {
            return Ok(None);
        };
        if lock_holder(&lock).alive() {
            return Ok(None);
        }
        // Another process got there first: it is recovering (or did), and holds the lock.
        let Some(_claim) = self.claim_for_recovery(&lock)? else {
            return Ok(None);
        };
        self.recover_lock(&lock).map(Some)
    }

    /// Takes over a dead holder's lock for this process, with a heartbeat while recovery
    /// runs; `None` when another process claimed or settled it first.
    fn claim_for_recovery(&self, lock: &LockRow) -> Result<Option<crate::store::Heartbeat>> {
        let claimed = self.store.claim_lock(lock)?;
        match claimed {
            Some(lease) => Ok(Some(self.store.lock_heartbeat(&lease)?)),
            None => Ok(None),
        }
    }

    /// Runs the recovery of `lock`'s operation (its holder was judged gone, and this process
    /// claimed the lock).
    pub(super) fn recover_lock(&mut self, lock: &LockRow) -> Result<RecoveryReport> {
        let outcome = match lock.operation {
            LockOperation::LedgerRepair => return self.recover_ledger_repair(lock),
            LockOperation::Promote => return self.recover_promotion(lock),
            LockOperation::Restore => self.recover_restore(lock)?,
            LockOperation::Rollback => self.recover_rollback(lock)?,
        };
        tracing::warn!(outcome, operation = %lock.operation, "recovered an interrupted operation");
        Ok(RecoveryReport {
            release: lock.release_id.clone(),
            operation: lock.operation,
            outcome: outcome.into(),
            step: lock.step.as_str().into(),
            holder: lock.holder.clone(),
        })
    }

    fn recover_promotion(&mut self, lock: &LockRow) -> Result<RecoveryReport> {
        let lock = lock.clone();
        let pending = self.pending_migrations(&lock.release_id)?;
        let db = match self.production_db()? {
            Some(db) => Some(db),
            None if lock.created_database => {
                let db = self.backend.production_ref();
                self.backend.exists(&db)?.then_some(db)
            }
            None => None,
        };
        let committed = match (lock.step, &db) {
            (LockStep::Applying | LockStep::Applied, Some(db)) if !pending.is_empty() => {
                // Opening production rolls back a hot journal left by the dead process.
                let ledger = self.backend.ledger(db, &self.ws.config.migrations_table)?;
                let present = pending
                    .iter()
                    .filter(|m| ledger.iter().any(|r| r.name == m.name))
                    .count();
                if present != 0 && present != pending.len() {
                    // Only a release applied in several D1 batches can stop half-way: put
                    // production back to the recovery point taken just before the apply.
                    let snapshot = match lock.snapshot_id {
                        Some(sid) => self.store.snapshot(sid)?,
                        None => None,
                    };
                    let Some(snap) = snapshot else {
                        return Err(EngineError::Input(format!(
                            "production's ledger holds {present} of the {} migrations of interrupted release {} and no recovery point was taken; inspect production",
                            pending.len(),
                            lock.release_id
                        )));
                    };
                    self.backend.restore(
                        db,
                        &crate::backend::SnapshotRef {
                            location: snap.location.clone(),
                            size_bytes: snap.size_bytes,
                        },
                    )?;
                    tracing::warn!(release = %lock.release_id, present, "interrupted partial apply undone from its recovery point");
                    self.audit(
                        "promotion.partial_undone",
                        Some(&lock.release_id),
                        Some(PRODUCTION),
                        json!({"present": present, "pending": pending.len(), "snapshot": snap.id}),
                    )?;
                    false
                } else {
                    present == pending.len()
                }
            }
            _ => false,
        };
        let ships_code = lock.step == LockStep::Code
            || (committed && !self.shipped_code(&lock.release_id)?.is_empty());
        let outcome = if ships_code {
            // Migrations committed; code was (or was about to be) shipped: engine/code.rs.
            self.recover_code_promotion(&lock)?
        } else if committed {
            self.finish_promotion(
                &lock.release_id,
                &pending,
                lock.snapshot_id,
                lock.prev_active.as_deref(),
                Some(&lock.holder),
            )?;
            "rolled_forward"
        } else {
            self.roll_back(&lock)?;
            "rolled_back"
        };
        let report = RecoveryReport {
            release: lock.release_id.clone(),
            operation: lock.operation,
            outcome: outcome.into(),
            step: lock.step.as_str().into(),
            holder: lock.holder.clone(),
        };
        self.audit(
            "promotion.recovered",
            Some(&lock.release_id),
            Some(PRODUCTION),
            json!({"outcome": outcome, "step": lock.step.as_str(), "holder": lock.holder, "pid": lock.pid}),
        )?;
        tracing::warn!(release = %lock.release_id, outcome, "recovered an interrupted promotion");
        Ok(report)
    }

    fn roll_back(&mut self, lock: &LockRow) -> Result<()> {
        if lock.created_database {
            // The database this promotion created holds nothing of its own (the apply did
            // not commit) — unless someone wrote to it since: then it stays.
            let db = self.backend.production_ref();
            if self.backend.exists(&db)? {
                let rows: u64 = self
                    .backend
                    .row_counts(&db, &self.ws.config.migrations_table)
                    .map(|c| c.values().sum())
                    .unwrap_or(0);
                if rows == 0 {
                    self.backend.delete_database(&db)?;
                } else {
                    tracing::warn!(
                        rows,
                        "kept the production database an interrupted promotion created: rows were written to it"
                    );
                }
            }
        }
        let state = self.store.release(&lock.release_id)?.map(|r| r.state);
        self.store.atomically(|s| -> Result<()> {
            if state == Some(ReleaseState::Promoting) {
                s.set_release_state(&lock.release_id, ReleaseState::Approved)?;
            }
            if let Some(sid) = lock.snapshot_id {
                // The recovery point of a promotion that never happened is not a recovery point.
                s.mark_snapshot_deleted(sid)?;
            }
            s.delete_lock()?;
            Ok(())
        })?;
        if let Some(sid) = lock.snapshot_id
            && let Some(snap) = self.store.snapshot(sid)?
        {
            let _ = self.backend.delete_snapshot(&crate::backend::SnapshotRef {
                location: snap.location,
                size_bytes: snap.size_bytes,
            });
        }
        Ok(())
    }

    /// Settles every deploy whose holder is gone: its release becomes `blocked` ("deploy
    /// interrupted"), its preview and temporary copies are removed, and that is audited.
    pub fn settle_interrupted_deploys(&mut self) -> Result<Vec<String>> {
        let mut settled = Vec::new();
        for run in self.store.deploy_runs()? {
            let holder = deploy_holder(&run);
            if holder.alive() {
                continue;
            }
            self.settle_deploy(&run, &format!("deploy interrupted: {}", holder.describe()))?;
            settled.push(run.release_id.clone());
        }
        Ok(settled)
    }

    /// Settles the deploys this process started since `since` (a deploy that returned an
    /// error before its verdict was saved). Best effort: what fails here is settled by the
    /// next command once this process's lease runs out.
    pub(super) fn settle_own_deploys(&mut self, since: &str, error: &str) {
        let me = std::process::id();
        let host = crate::store::hostname();
        let runs = match self.store.deploy_runs() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "interrupted deploy not settled");
                return;
            }
        };
        for run in runs
            .iter()
            .filter(|r| r.pid == me && r.host == host && r.started_at.as_str() >= since)
        {
            if let Err(e) = self.settle_deploy(run, &format!("deploy interrupted: {error}")) {
                tracing::warn!(error = %e, release = %run.release_id, "interrupted deploy not settled");
            }
        }
    }

    /// Settles one deploy that stopped before its gate verdict was saved.
    pub(super) fn settle_deploy(&mut self, run: &DeployRun, reason: &str) -> Result<()> {
        let name = super::deploy::preview_name(&run.release_id);
        let env = self.store.env(&name)?.filter(|e| e.deleted_at.is_none());
        let db = match env.as_ref().and_then(|e| e.database_id.clone()) {
            Some(id) => Some(DatabaseRef::new(id)),
            None => self.backend.lookup(&name).ok().flatten(),
        };
        let mut removed = Vec::new();
        if let Some(db) = &db {
            let shown = self.backend.describe(db);
            match self.backend.delete_database(db) {
                Ok(()) => removed.push(shown),
                Err(e) => {
                    tracing::warn!(error = %e, preview = %name, "preview of an interrupted deploy not removed")
                }
            }
        }
        removed.extend(self.remove_temp_files_named(&name));
        let report = GateReport {
            verdict: Verdict::Blocked,
            checks: vec![CheckResult {
                id: "mig.apply".into(),
                status: CheckStatus::Fail,
                reason: format!("{reason}; its preview was removed, deploy again"),
                details: serde_json::Value::Null,
                duration_ms: 0.0,
            }],
            total_ms: 0.0,
        };
        let actor = self.actor.clone();
        let settled = self.store.atomically(|s| -> Result<bool> {
            if !s.delete_deploy_run_held(&run.release_id, &run.lease)? {
                // Another process settled it first (its audit event is the one).
                return Ok(false);
            }
            let state = s.release(&run.release_id)?.map(|r| r.state);
            if state == Some(ReleaseState::Previewing) {
                s.save_gate_report(&run.release_id, &report)?;
            }
            if env.is_some() {
                s.mark_env_deleted(&name)?;
            }
            s.audit(
                &actor,
                "deploy.interrupted",
                Some(&run.release_id),
                Some(&name),
                &json!({"reason": reason, "holder": run.holder, "pid": run.pid, "host": run.host,
                    "started_at": run.started_at, "heartbeat_at": run.heartbeat_at,
                    "state": if state == Some(ReleaseState::Previewing) { "blocked" } else { "unchanged" },
                    "removed": removed}),
            )?;
            Ok(true)
        })?;
        if settled {
            tracing::warn!(release = %run.release_id, reason, "settled an interrupted deploy");
        }
        Ok(())
    }

    /// The production lock and what can be told about its holder.
    pub fn lock_status(&self) -> Result<Option<(LockRow, Holder)>> {
        Ok(self.store.lock()?.map(|l| {
            let h = lock_holder(&l);
            (l, h)
        }))
    }

    /// Why `unlock` must not release `lock`, if it must not.
    pub fn unlock_refusal(&self, lock: &LockRow, holder: Holder) -> Option<String> {
        let what = format!(
            "the {} of {} by {} (pid {} on {}, since {})",
            lock.operation, lock.release_id, lock.holder, lock.pid, lock.host, lock.since
        );
        match holder {
            Holder::RunningHere => Some(format!(
                "{what} is still running on this host; unlock refuses while its holder lives"
            )),
            Holder::LeaseFresh => Some(format!(
                "{what} renewed its heartbeat at {} (lease {} s); unlock refuses while the lease is fresh",
                lock.heartbeat_at.as_deref().unwrap_or("?"),
                LEASE.as_secs()
            )),
            Holder::Unknown | Holder::Gone | Holder::LeaseExpired => None,
        }
    }

    /// Releases a lock whose holder cannot be shown alive (another host without heartbeat,
    /// or gone) and runs the normal recovery of its operation; audited with `reason`.
    /// `expected_lease` guards against the lock changing hands since it was shown.
    pub fn unlock(&mut self, reason: &str, expected_lease: Option<&str>) -> Result<UnlockOutcome> {
        self.ensure_writable("unlock")?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(EngineError::Input(
                "unlock needs --reason: say why the holder is known to be gone".into(),
            ));
        }
        let Some(lock) = self.store.lock()? else {
            return Err(EngineError::Refused(
                "no operation holds the production lock; nothing to unlock".into(),
            ));
        };
        if lock.lease.as_deref() != expected_lease {
            return Err(EngineError::Refused(format!(
                "the production lock changed hands ({} of {} by {} since {}); run unlock again",
                lock.operation, lock.release_id, lock.holder, lock.since
            )));
        }
        let holder = lock_holder(&lock);
        if let Some(why) = self.unlock_refusal(&lock, holder) {
            return Err(EngineError::Refused(why));
        }
        self.audit(
            "lock.unlocked",
            Some(&lock.release_id),
            Some(PRODUCTION),
            json!({"reason": reason, "operation": lock.operation, "holder": lock.holder,
                "pid": lock.pid, "host": lock.host, "since": lock.since, "step": lock.step.as_str(),
                "heartbeat_at": lock.heartbeat_at, "judged": holder.describe()}),
        )?;
        let Some(_claim) = self.claim_for_recovery(&lock)? else {
            return Err(EngineError::Refused(
                "another d1ops is settling this lock right now; nothing to unlock".into(),
            ));
        };
        let recovery = self.recover_lock(&lock)?;
        Ok(UnlockOutcome {
            operation: lock.operation,
            release: lock.release_id.clone(),
            holder: lock.holder.clone(),
            pid: lock.pid,
            host: lock.host.clone(),
            since: lock.since.clone(),
            heartbeat_at: lock.heartbeat_at.clone(),
            judged: holder.describe().into(),
            recovery,
        })
    }

    /// The folders where the local backend writes temporary copies.
    fn temp_dirs(&self) -> Vec<std::path::PathBuf> {
        if self.backend.kind() != "local" {
            return Vec::new();
        }
        let state = self.ws.state_dir();
        vec![state.join("db"), state.join("snapshots")]
    }

    /// Removes the temporary copies of database `name` (a crashed clone of it).
    fn remove_temp_files_named(&self, name: &str) -> Vec<String> {
        let mut removed = Vec::new();
        for dir in self.temp_dirs() {
            let p = dir.join(format!("{name}{TMP_SUFFIX}"));
            if p.is_file() && std::fs::remove_file(&p).is_ok() {
                removed.push(p.display().to_string());
            }
        }
        removed
    }

    /// Removes the temporary copies (`*.sqlite.tmp`, and artifact copies `.pin-*.tmp` a killed
    /// deploy left) and unrecorded snapshot files that no live operation can be writing. A copy is written only under the production lock
    /// (snapshots, restores, rollback checks) or by a recorded deploy (its preview), and a
    /// snapshot file is recorded right after it is complete. A file is left alone while its
    /// owner may be alive; it is removed when its owner was judged gone after the file was
    /// last written (`dead_lock_judged`: when an interrupted lock holder was judged gone
    /// before its lock was recovered), or, with no recorded owner, once it is older than the
    /// lease (a copy being written is touched continuously).
    pub fn remove_stale_temp_files(
        &self,
        dead_lock_judged: Option<std::time::SystemTime>,
    ) -> Vec<(String, u64)> {
        let mut removed = self.remove_stale_pin_files();
        removed.extend(self.remove_stale_copies(dead_lock_judged));
        removed
    }

    /// Removes artifact copies a killed deploy left half-written (`.pin-*.tmp` in
    /// `.d1ops/artifacts/`). A pin being written is written continuously, so one untouched
    /// for longer than the lease has no writer left (the pid in its name may be another
    /// host's, so it is not consulted).
    fn remove_stale_pin_files(&self) -> Vec<(String, u64)> {
        let dir = self.ws.state_dir().join(super::deploy::ARTIFACTS_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(".pin-") && name.ends_with(".tmp")) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let stale = meta.is_file()
                && meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > LEASE);
            if !stale {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push((path.display().to_string(), meta.len())),
                Err(e) => {
                    tracing::warn!(error = %e, file = %path.display(), "temporary artifact copy not removed")
                }
            }
        }
        removed
    }

    /// The `*.sqlite.tmp` copies and unrecorded snapshot files (see
    /// [`Engine::remove_stale_temp_files`]).
    fn remove_stale_copies(
        &self,
        dead_lock_judged: Option<std::time::SystemTime>,
    ) -> Vec<(String, u64)> {
        let dirs = self.temp_dirs();
        if dirs.is_empty() {
            return Vec::new();
        }
        let judged = std::time::SystemTime::now();
        let lock = self.store.lock().ok().flatten();
        let lock_live = lock.as_ref().is_some_and(|l| lock_holder(l).alive());
        let lock_dead_at = match &lock {
            Some(_) if lock_live => None,
            Some(_) => Some(judged),
            None => dead_lock_judged,
        };
        let runs = self.store.deploy_runs().unwrap_or_default();
        let Ok(snapshots) = self.store.snapshots(true) else {
            return Vec::new();
        };
        let recorded: std::collections::BTreeSet<String> =
            snapshots.into_iter().filter_map(|s| s.location).collect();
        let mut removed = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let snapshot_dir = i == 1;
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let stem = match file.strip_suffix(TMP_SUFFIX) {
                    Some(stem) => stem,
                    None if snapshot_dir
                        && file.ends_with(".sqlite")
                        && !recorded.contains(&file) =>
                    {
                        file.as_str()
                    }
                    None => continue,
                };
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let run = runs
                    .iter()
                    .find(|r| !snapshot_dir && super::deploy::preview_name(&r.release_id) == stem);
                let (owner_live, owner_dead_at) = match run {
                    Some(r) => {
                        let alive = deploy_holder(r).alive();
                        (alive, (!alive).then_some(judged))
                    }
                    // Everything else is written under the production lock.
                    None => (lock_live, lock_dead_at),
                };
                if owner_live {
                    continue;
                }
                let modified = meta.modified().ok();
                let before_owner_died =
                    owner_dead_at.is_some_and(|t| modified.is_some_and(|m| m < t));
                let old = modified
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > LEASE);
                if !(before_owner_died || old) {
                    continue;
                }
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => removed.push((path.display().to_string(), meta.len())),
                    Err(e) => {
                        tracing::warn!(error = %e, file = %path.display(), "temporary file not removed")
                    }
                }
            }
        }
        removed
    }
}
