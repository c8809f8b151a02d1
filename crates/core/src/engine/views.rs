//! Read-only views for listings, `release show`, `envs`, `diff` and the console. Never writes,
//! with one deliberate exception: reading a promoted release settles its watch window, whose
//! verdict is stored once the window has closed (`capacity/watch.rs`; no daemon needed).
use serde::Serialize;

use super::cleanup::stale_reason;
use super::{Engine, PRODUCTION, Result};
use crate::backend::DatabaseRef;
use crate::model::{
    Approval, Artifact, AuditEvent, EnvKind, Environment, GateReport, Release, ReleaseMigration,
};
use crate::schema::{Schema, SchemaDiff};
use crate::store::ChainStatus;

/// Everything about one release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub release: Release,
    pub gate: Option<GateReport>,
    pub migrations: Vec<ReleaseMigration>,
    pub artifacts: Vec<Artifact>,
    pub approvals: Vec<Approval>,
    pub required_approvals: u32,
    pub history: Vec<AuditEvent>,
    /// The post-promotion watch window (promoted releases only).
    pub watch: Option<super::WatchReport>,
    /// Each `[[target]]` the release was deployed with: its preview and production steps.
    pub targets: Vec<super::code::TargetView>,
}

/// An environment with what its database looks like right now.
#[derive(Debug, Clone, Serialize)]
pub struct EnvView {
    #[serde(flatten)]
    pub env: Environment,
    /// File path (local) or database id (D1).
    pub database: Option<String>,
    pub size_bytes: Option<u64>,
    /// The last applied migration.
    pub schema_head: Option<String>,
    pub applied: usize,
    pub stale: Option<String>,
    pub release_state: Option<String>,
    /// D1's read-replication mode of the database (`auto`, `disabled`); `None` locally or
    /// when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_replication: Option<String>,
    /// Why the backend could not say what the database holds (a refused token, an account
    /// the token cannot reach, no answer): size, head and applied count are then unknown,
    /// not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Which release's code each target of this environment runs.
    pub code: Vec<crate::store::LiveCode>,
}

/// What promoting a release would change.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDiff {
    pub release: String,
    pub pending: Vec<PendingSql>,
    pub schema: SchemaDiff,
    /// `preview` (read from the preview database) or `computed` (production's schema plus
    /// the pending SQL, in memory, when the preview is gone).
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PendingSql {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub sql: String,
}

impl Engine {
    pub fn releases(&self) -> Result<Vec<Release>> {
        Ok(self.store.releases()?)
    }

    pub fn release_detail(&self, id: &str) -> Result<ReleaseDetail> {
        let release = self.resolve(id)?;
        // A watch that cannot be read (metrics store busy) must not hide the release.
        let watch = self.watch(&release).unwrap_or_else(|e| {
            tracing::warn!(error = %e, release = %release.id, "watch window not evaluated");
            None
        });
        Ok(ReleaseDetail {
            watch,
            targets: self.target_views(&release.id)?,
            gate: self.store.gate_report(&release.id)?,
            migrations: self.store.release_migrations(&release.id)?,
            artifacts: self.store.artifacts(&release.id)?,
            approvals: self.store.approvals(&release.id)?,
            required_approvals: self.ws.config.policy.required_approvals,
            history: self.store.audit_events(Some(&release.id), 200)?,
            release,
        })
    }

    /// Production first, then live previews newest first.
    pub fn envs(&self) -> Result<Vec<EnvView>> {
        let ttl = self.ws.config.preview_ttl();
        let table = &self.ws.config.migrations_table;
        let mut out = Vec::new();
        for env in self.store.envs(false)? {
            let db = env.database_id.clone().map(DatabaseRef::new);
            // "Could not read" is kept apart from "no database": a refused token must not
            // look like an empty environment.
            let (info, mut unreadable) = match &db {
                Some(d) => match self.backend.database_info(d) {
                    Ok(info) => (info, None),
                    Err(e) => (None, Some(e.to_string())),
                },
                None => (None, None),
            };
            let ledger = match (&db, &info) {
                (Some(d), Some(_)) => match self.backend.ledger(d, table) {
                    Ok(l) => l,
                    Err(e) => {
                        unreadable.get_or_insert_with(|| e.to_string());
                        Vec::new()
                    }
                },
                _ => Vec::new(),
            };
            let release = match &env.release_id {
                Some(id) => self.store.release(id)?,
                None => None,
            };
            out.push(EnvView {
                code: self.store.live_code(&env.name)?,
                database: db
                    .as_ref()
                    .filter(|_| info.is_some() || unreadable.is_some())
                    .map(|d| self.backend.describe(d)),
                size_bytes: info.as_ref().and_then(|i| i.size_bytes),
                schema_head: ledger.last().map(|r| r.name.clone()),
                applied: ledger.len(),
                read_replication: info.and_then(|i| i.read_replication),
                unreadable,
                stale: stale_reason(&env, release.as_ref(), ttl),
                release_state: release.map(|r| r.state.as_str().to_string()),
                env,
            });
        }
        self.count_app_queries_as_activity(&mut out);
        Ok(out)
    }

    /// Production's last activity includes the app's queries, not only lifecycle actions:
    /// an IDLE that ignored traffic would call a busy database idle. Best effort: a metrics
    /// store that cannot be read leaves the lifecycle time.
    fn count_app_queries_as_activity(&self, envs: &mut [EnvView]) {
        let Some(prod) = envs.iter_mut().find(|e| e.env.name == PRODUCTION) else {
            return;
        };
        let last =
            super::capacity::open_metrics(&self.ws).and_then(|m| Ok(m.last_traffic(PRODUCTION)?));
        match last {
            Ok(Some(t)) => {
                let newer =
                    crate::model::parse_time(&prod.env.last_activity_at).is_none_or(|a| t > a);
                if newer {
                    prod.env.last_activity_at =
                        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "production's last query could not be read"),
        }
    }

    /// Pending migration SQL plus the schema diff preview-vs-production.
    pub fn diff(&self, id: &str) -> Result<ReleaseDiff> {
        let rel = self.resolve(id)?;
        let table = self.ws.config.migrations_table.clone();
        let carried = self.store.release_migrations(&rel.id)?;
        let pending: Vec<PendingSql> = carried
            .iter()
            .filter(|m| m.pending)
            .map(|m| PendingSql {
                name: m.name.clone(),
                path: m.path.clone(),
                sha256: m.sha256.clone(),
                sql: m.sql.clone(),
            })
            .collect();
        let production = match self.production_db()? {
            Some(db) if self.backend.exists(&db)? => self.backend.schema(&db, &table)?,
            _ => Schema::default(),
        };
        let preview = rel
            .preview_env
            .as_deref()
            .and_then(|name| self.store.env(name).ok().flatten())
            .filter(|e| e.deleted_at.is_none() && e.kind == EnvKind::Preview)
            .and_then(|e| e.database_id)
            .map(DatabaseRef::new);
        // A live release's preview equals production; compute instead so the diff shows what
        // the release changed relative to the schema before it.
        let preview_applied = preview.as_ref().is_some_and(|db| {
            self.backend
                .ledger(db, &table)
                .map(|l| pending.iter().all(|p| l.iter().any(|r| r.name == p.name)))
                .unwrap_or(false)
        });
        let (after, before, source) = match preview {
            Some(db) if preview_applied && rel.state.is_candidate() => {
                (self.backend.schema(&db, &table)?, production, "preview")
            }
            _ => {
                let base = schema_before_release(&rel, &production, &carried);
                (computed_after(&base, &carried), base, "computed")
            }
        };
        Ok(ReleaseDiff {
            release: rel.id,
            schema: crate::schema::diff(&before, &after),
            pending,
            source: source.into(),
        })
    }

    pub fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>> {
        Ok(self.store.audit_events(None, limit)?)
    }

    pub fn verify_audit(&self) -> Result<ChainStatus> {
        Ok(self.store.verify_audit()?)
    }

    /// The production environment's row.
    pub fn production(&self) -> Result<Environment> {
        Ok(self.store.production()?)
    }

    /// Whether production currently points at `id`.
    pub fn is_live(&self, id: &str) -> Result<bool> {
        Ok(self
            .store
            .env(PRODUCTION)?
            .and_then(|e| e.active_release)
            .as_deref()
            == Some(id))
    }
}

/// The schema as it was before the release's pending migrations: production's schema while
/// the release is still a candidate; afterwards, rebuilt from the migrations it found applied.
fn schema_before_release(
    rel: &Release,
    production: &Schema,
    carried: &[ReleaseMigration],
) -> Schema {
    if rel.state.is_candidate() || rel.state == crate::model::ReleaseState::Blocked {
        return production.clone();
    }
    let replay: Vec<&str> = carried
        .iter()
        .filter(|m| !m.pending)
        .map(|m| m.sql.as_str())
        .collect();
    crate::schema::schema_from_sql(&replay.join(";\n")).unwrap_or_else(|_| production.clone())
}

/// `base` plus every pending migration's SQL, applied in memory.
fn computed_after(base: &Schema, carried: &[ReleaseMigration]) -> Schema {
    let mut sql = schema_sql(base);
    for m in carried.iter().filter(|m| m.pending) {
        sql.push_str(&m.sql);
        sql.push_str(";\n");
    }
    crate::schema::schema_from_sql(&sql).unwrap_or_else(|_| base.clone())
}

/// The DDL that recreates a schema (tables, then indexes, views, triggers).
fn schema_sql(s: &Schema) -> String {
    let mut out = String::new();
    for t in s.tables.values() {
        out.push_str(&t.sql);
        out.push_str(";\n");
    }
    for i in s.indexes.values().filter_map(|i| i.sql.as_ref()) {
        out.push_str(i);
        out.push_str(";\n");
    }
    for v in s.views.values() {
        out.push_str(&v.sql);
        out.push_str(";\n");
    }
    for t in s.triggers.values() {
        out.push_str(&t.sql);
        out.push_str(";\n");
    }
    out
}
