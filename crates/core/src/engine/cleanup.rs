//! `cleanup`: deletes stale preview databases (never production; never a candidate awaiting a
//! decision unless asked), reporting each with its size and the total freed.
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{Engine, Result};
use crate::backend::DatabaseRef;
use crate::model::{EnvKind, Environment, Release, parse_time};

/// A preview that cleanup would delete (or refuses to, with the reason).
#[derive(Debug, Clone, Serialize)]
pub struct CleanupItem {
    pub env: String,
    pub release_id: Option<String>,
    pub release_state: Option<String>,
    pub database: Option<String>,
    pub size_bytes: u64,
    pub idle_seconds: u64,
    pub reason: String,
    /// Why the backend could not say how large the database is (`size_bytes` is then 0
    /// because it is unknown, not because the database is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CleanupReport {
    pub deleted: Vec<CleanupItem>,
    /// Recovery points deleted by the retention policy.
    pub snapshots_deleted: Vec<crate::model::Snapshot>,
    pub freed_bytes: u64,
    pub errors: Vec<String>,
    /// Temporary copies (`*.sqlite.tmp`) left by interrupted operations, removed.
    pub temp_files_removed: Vec<String>,
    /// Pinned artifact copies (`.d1ops/artifacts/<sha256>`) no remaining release records.
    pub artifacts_removed: Vec<String>,
}

/// A pinned copy younger than this is never removed: a deploy pins its artifacts moments
/// before the transaction that records its release, and cleanup must not take them between.
pub const PIN_GRACE: Duration = Duration::from_secs(3600);

/// A pinned artifact copy that no remaining release records (cleanup removes it).
#[derive(Debug, Clone, Serialize)]
pub struct UnreferencedArtifact {
    /// `.d1ops/artifacts/<sha256>`, relative to the workspace root.
    pub path: String,
    pub size_bytes: u64,
}

/// A recovery point and whether retention keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotView {
    #[serde(flatten)]
    pub snapshot: crate::model::Snapshot,
    /// Why it is kept regardless of retention (`None`: only the policy decides).
    pub protected: Option<String>,
    /// Outside the retention policy and not protected: `cleanup` deletes it.
    pub expired: bool,
    /// Whether the recovery point takes storage: a local copy does, a D1 Time Travel
    /// bookmark does not (its `size_bytes` is then no size: show "no storage", count nothing).
    pub uses_storage: bool,
}

/// Why a preview is stale, if it is: its release is no longer a candidate, or it has been
/// idle longer than the TTL.
pub fn stale_reason(env: &Environment, release: Option<&Release>, ttl: Duration) -> Option<String> {
    if env.kind != EnvKind::Preview || env.deleted_at.is_some() {
        return None;
    }
    match release {
        None => return Some("its release no longer exists".into()),
        Some(r) if !r.state.is_candidate() => return Some(format!("release is {}", r.state)),
        _ => {}
    }
    let idle = idle_for(env);
    (idle > ttl).then(|| {
        format!(
            "idle {} (ttl {})",
            humantime::format_duration(Duration::from_secs(idle.as_secs() / 3600 * 3600)),
            humantime::format_duration(ttl)
        )
    })
}

/// How long an environment has been idle.
pub fn idle_for(env: &Environment) -> Duration {
    parse_time(&env.last_activity_at)
        .map(|t| (crate::model::now_utc() - t).to_std().unwrap_or_default())
        .unwrap_or_default()
}

impl Engine {
    /// Pinned artifact copies no release in the releases table records, older than
    /// [`PIN_GRACE`]. Only regular files named by a sha256 are considered; when the store
    /// cannot say which copies are recorded, the answer is an error, never "all of them".
    pub fn unreferenced_artifacts(&self) -> Result<Vec<UnreferencedArtifact>> {
        let dir = self.ws.state_dir().join(super::deploy::ARTIFACTS_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let recorded = self.store.pinned_artifacts()?;
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_sha = name.len() == 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !is_sha {
                continue;
            }
            let path = super::deploy::pinned_name(&name);
            if recorded.contains(&path) {
                continue;
            }
            // symlink_metadata: a link or a folder placed here is not ours to remove.
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let young = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_none_or(|age| age < PIN_GRACE);
            if young {
                continue;
            }
            out.push(UnreferencedArtifact {
                path,
                size_bytes: meta.len(),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Removes the pinned copies no remaining release records (judged again now).
    fn remove_unreferenced_artifacts(&mut self, report: &mut CleanupReport) -> Result<()> {
        let mut removed = Vec::new();
        for a in self.unreferenced_artifacts()? {
            match std::fs::remove_file(self.ws.root.join(&a.path)) {
                Ok(()) => {
                    report.freed_bytes += a.size_bytes;
                    removed.push(a.path);
                }
                Err(e) => report.errors.push(format!("{}: {e}", a.path)),
            }
        }
        if !removed.is_empty() {
            self.store.audit(
                &self.actor,
                "artifacts.removed",
                None,
                None,
                &json!({"files": removed, "reason": "no release records them"}),
            )?;
        }
        report.artifacts_removed = removed;
        Ok(())
    }

    /// Recovery points (newest first) with what retention decides for each.
    pub fn snapshots(&self) -> Result<Vec<SnapshotView>> {
        let keep = &self.ws.config.snapshots;
        let live = self.store.production()?.active_release;
        let live_point = match &live {
            Some(id) => self.store.release(id)?.and_then(|r| r.recovery_snapshot),
            None => None,
        };
        let undo = self.store.last_undoable_restore()?;
        let now = crate::model::now_utc();
        let mut out = Vec::new();
        for (i, snap) in self.store.snapshots(false)?.into_iter().enumerate() {
            let protected = if Some(snap.id) == live_point {
                Some("recovery point of the live release".to_string())
            } else if undo
                .as_ref()
                .is_some_and(|u| u.pre_snapshot_id == Some(snap.id))
            {
                Some("undo point of the last restore".to_string())
            } else {
                None
            };
            let age_days = parse_time(&snap.created_at)
                .map(|t| (now - t).num_days())
                .unwrap_or(0);
            let kept = (i as u32) < keep.keep_last || age_days < i64::from(keep.keep_days);
            out.push(SnapshotView {
                uses_storage: self.backend.recovery_points_use_storage(),
                expired: protected.is_none() && !kept,
                protected,
                snapshot: snap,
            });
        }
        Ok(out)
    }

    /// Deletes the expired recovery points among `views`.
    fn delete_expired_snapshots(
        &mut self,
        views: &[SnapshotView],
        report: &mut CleanupReport,
    ) -> Result<()> {
        for v in views.iter().filter(|v| v.expired) {
            let snap = crate::backend::SnapshotRef {
                location: v.snapshot.location.clone(),
                size_bytes: v.snapshot.size_bytes,
            };
            if let Err(e) = self.backend.delete_snapshot(&snap) {
                report
                    .errors
                    .push(format!("snapshot {}: {e}", v.snapshot.id));
                continue;
            }
            let actor = self.actor.clone();
            self.store.atomically(|s| -> Result<()> {
                s.mark_snapshot_deleted(v.snapshot.id)?;
                s.audit(&actor, "snapshot.deleted", v.snapshot.release_id.as_deref(), Some(&v.snapshot.env),
                    &json!({"snapshot": v.snapshot.id, "size_bytes": v.snapshot.size_bytes, "reason": "retention"}))?;
                Ok(())
            })?;
            report.freed_bytes += v.snapshot.size_bytes;
            report.snapshots_deleted.push(v.snapshot.clone());
        }
        Ok(())
    }

    /// The stale previews, optionally only those idle longer than `older_than`; candidates
    /// awaiting a decision are left out unless `include_pending`.
    pub fn cleanup_plan(
        &self,
        older_than: Option<Duration>,
        include_pending: bool,
    ) -> Result<Vec<CleanupItem>> {
        let ttl = self.ws.config.preview_ttl();
        let mut items = Vec::new();
        for env in self.store.envs(false)? {
            let release = match &env.release_id {
                Some(id) => self.store.release(id)?,
                None => None,
            };
            let Some(reason) = stale_reason(&env, release.as_ref(), ttl) else {
                continue;
            };
            if release.as_ref().is_some_and(|r| r.state.is_candidate()) && !include_pending {
                continue;
            }
            let idle = idle_for(&env);
            if older_than.is_some_and(|min| idle < min) {
                continue;
            }
            let db = env.database_id.clone().map(DatabaseRef::new);
            let (size_bytes, unreadable) = match db.as_ref().map(|d| self.backend.database_info(d))
            {
                Some(Ok(info)) => (info.and_then(|i| i.size_bytes).unwrap_or(0), None),
                Some(Err(e)) => (0, Some(e.to_string())),
                None => (0, None),
            };
            items.push(CleanupItem {
                env: env.name.clone(),
                release_id: env.release_id.clone(),
                release_state: release.map(|r| r.state.as_str().to_string()),
                database: db.as_ref().map(|d| self.backend.describe(d)),
                size_bytes,
                idle_seconds: idle.as_secs(),
                reason,
                unreadable,
            });
        }
        Ok(items)
    }

    /// Deletes the previews in `items` (as planned by [`Engine::cleanup_plan`]).
    pub fn cleanup(&mut self, items: &[CleanupItem]) -> Result<CleanupReport> {
        self.cleanup_with_snapshots(items, &[])
    }

    /// Deletes the previews in `items` and the expired recovery points among `snapshots`.
    pub fn cleanup_with_snapshots(
        &mut self,
        items: &[CleanupItem],
        snapshots: &[SnapshotView],
    ) -> Result<CleanupReport> {
        self.ensure_writable("cleanup")?;
        let mut report = CleanupReport::default();
        for (path, size) in self.remove_stale_temp_files(None) {
            report.freed_bytes += size;
            report.temp_files_removed.push(path);
        }
        if !report.temp_files_removed.is_empty() {
            self.store.audit(
                &self.actor,
                "temp_files.removed",
                None,
                None,
                &json!({"files": report.temp_files_removed, "by": "cleanup"}),
            )?;
        }
        self.delete_expired_snapshots(snapshots, &mut report)?;
        self.remove_unreferenced_artifacts(&mut report)?;
        for item in items {
            let Some(env) = self.store.env(&item.env)? else {
                continue;
            };
            if env.kind != EnvKind::Preview || env.deleted_at.is_some() {
                continue;
            }
            if let Some(id) = &env.database_id
                && let Err(e) = self.backend.delete_database(&DatabaseRef::new(id.clone()))
            {
                report.errors.push(format!("{}: {e}", item.env));
                continue;
            }
            let actor = self.actor.clone();
            self.store.atomically(|s| -> Result<()> {
                s.mark_env_deleted(&item.env)?;
                s.audit(
                    &actor,
                    "preview.deleted",
                    item.release_id.as_deref(),
                    Some(&item.env),
                    &json!({"size_bytes": item.size_bytes, "reason": item.reason}),
                )?;
                Ok(())
            })?;
            report.freed_bytes += item.size_bytes;
            report.deleted.push(item.clone());
        }
        Ok(report)
    }
}
