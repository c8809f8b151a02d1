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
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CleanupReport {
    pub deleted: Vec<CleanupItem>,
    pub freed_bytes: u64,
    pub errors: Vec<String>,
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
            let size_bytes = db
                .as_ref()
                .and_then(|d| self.backend.size_bytes(d).ok())
                .unwrap_or(0);
            items.push(CleanupItem {
                env: env.name.clone(),
                release_id: env.release_id.clone(),
                release_state: release.map(|r| r.state.as_str().to_string()),
                database: db.as_ref().map(|d| self.backend.describe(d)),
                size_bytes,
                idle_seconds: idle.as_secs(),
                reason,
            });
        }
        Ok(items)
    }

    /// Deletes the previews in `items` (as planned by [`Engine::cleanup_plan`]).
    pub fn cleanup(&mut self, items: &[CleanupItem]) -> Result<CleanupReport> {
        self.ensure_writable("cleanup")?;
        let mut report = CleanupReport::default();
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
