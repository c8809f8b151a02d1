//! The `worker` target's steps on Cloudflare (feature `d1`): a release's bundled Worker is
//! uploaded as a version bound to the environment's D1 database (annotations: the release's
//! label as `workers/message`, its id as `workers/tag`) and made live by a deployment.
//!
//! - preview: a version bound to the preview's database, uploaded but not deployed (its
//!   preview URL when Cloudflare offers one). A Worker that does not exist yet cannot take a
//!   version (404, code 10007): the step is skipped and says so; the first production deploy
//!   creates the Worker with a script upload.
//! - deploy: a version bound to production's database, then a 100% deployment (or the
//!   rollout's first step, see `engine/rollout.rs`).
//! - revert / rollback: a deployment of the version recorded for that release at 100%; a
//!   release whose version is not recorded gets its pinned bundle uploaded again first.
use super::code::{CodeAction, CodeEnv, Op, StepPlan, failed_end};
use super::{Engine, Result};
use crate::cloudflare::workers::{Binding, VersionSpec, WorkerBundle, WorkerModule};
use crate::store::CodeStepEnd;

/// The Worker, its compatibility settings and the spec of a version for one step.
pub(super) struct WorkerPlan {
    pub script: String,
    pub spec: VersionSpec,
    pub bundle: WorkerBundle,
}

impl Engine {
    pub(super) fn run_worker_step(
        &self,
        plan: &StepPlan<'_>,
        op: Op<'_>,
        action: CodeAction,
        env: &CodeEnv,
    ) -> CodeStepEnd {
        match self.worker_step(plan, op, action, env) {
            Ok(end) => end,
            Err(e) => failed_end(e.to_string()),
        }
    }

    /// The Worker's name for target `t`: `script`, else wrangler's `name`.
    pub(super) fn worker_script(
        &self,
        t: &crate::workspace::config::TargetConfig,
    ) -> Result<String> {
        worker_script_of(t, &self.wrangler_defaults()?)
    }

    /// What wrangler's config says of the Worker (empty without a wrangler file).
    fn wrangler_defaults(&self) -> Result<crate::workspace::wrangler::WorkerDefaults> {
        Ok(crate::workspace::wrangler::worker_defaults(&self.ws.root)
            .map_err(|e| super::EngineError::Input(e.to_string()))?
            .unwrap_or_default())
    }

    /// What to upload for `plan` in `env`, tagged `tag`.
    fn worker_plan(&self, plan: &StepPlan<'_>, env: &CodeEnv, tag: &str) -> Result<WorkerPlan> {
        let t = plan.target;
        let defaults = self.wrangler_defaults()?;
        let script = worker_script_of(t, &defaults)?;
        let compatibility_date = t
            .compatibility_date
            .clone()
            .or(defaults.compatibility_date)
            .ok_or_else(|| {
                super::EngineError::Input(format!(
                    "target {}: no compatibility date: set compatibility_date = \"YYYY-MM-DD\" under its [[target]] or in wrangler.toml",
                    t.name
                ))
            })?;
        let flags = t
            .compatibility_flags
            .clone()
            .unwrap_or(defaults.compatibility_flags);
        let bundle = self.worker_bundle(plan)?;
        let label = self
            .store
            .release(plan.release)?
            .and_then(|r| r.label)
            .unwrap_or_else(|| format!("d1ops release {}", plan.release));
        let message: String = format!("{label} ({})", env.env).chars().take(100).collect();
        Ok(WorkerPlan {
            spec: VersionSpec {
                main_module: bundle.main_module.clone(),
                compatibility_date,
                compatibility_flags: flags,
                bindings: vec![Binding::D1 {
                    name: env.binding.clone(),
                    id: env.database_id.clone(),
                }],
                message,
                tag: tag.to_string(),
            },
            script,
            bundle,
        })
    }

    /// The bundle of a release's pinned artifact. The pinned copy is named by its sha256,
    /// so the module takes the name of the file given at deploy (`worker.js`); an artifact
    /// from before pinning is read where it was.
    fn worker_bundle(&self, plan: &StepPlan<'_>) -> Result<WorkerBundle> {
        let path = self.artifact_path(plan.artifact);
        if plan.artifact.pinned.is_none() {
            return WorkerBundle::read(&path, plan.target.main.as_deref())
                .map_err(|e| super::EngineError::Input(e.to_string()));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            super::EngineError::Input(format!(
                "release {}'s pinned artifact {} cannot be read at {}: {e}",
                plan.release,
                plan.artifact.name,
                path.display()
            ))
        })?;
        // A directory of modules was pinned as one bundle file.
        if WorkerBundle::is_archive(&bytes) {
            return WorkerBundle::from_archive(&bytes, &path)
                .map_err(|e| super::EngineError::Input(e.to_string()));
        }
        let name = std::path::Path::new(&plan.artifact.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.ends_with(".js") || name.ends_with(".mjs")) {
            return Err(super::EngineError::Input(format!(
                "target {}: artifact {} ({}) is not a bundled ES module: a worker target ships one .js or .mjs file or a directory of modules",
                plan.target.name, plan.artifact.name, plan.artifact.path
            )));
        }
        Ok(WorkerBundle {
            main_module: name.clone(),
            modules: vec![WorkerModule {
                name,
                bytes,
                content_type: "application/javascript+module".into(),
            }],
        })
    }

    fn worker_step(
        &self,
        plan: &StepPlan<'_>,
        op: Op<'_>,
        action: CodeAction,
        env: &CodeEnv,
    ) -> Result<CodeStepEnd> {
        let (client, _, _) = super::connect::cloudflare_client(&self.ws)?;
        let workers_err = |e: crate::cloudflare::workers::WorkersError| {
            super::EngineError::Input(client.redact(&e.to_string()))
        };
        match action {
            CodeAction::Preview => {
                let w = self.worker_plan(plan, env, &format!("{}-preview", plan.release))?;
                match client.upload_version(&w.script, &w.bundle, &w.spec) {
                    Ok(v) => Ok(CodeStepEnd {
                        status: "succeeded".into(),
                        detail: Some(format!(
                            "version {} of Worker {} uploaded, bound to {} ({}), not deployed{}",
                            v.id,
                            w.script,
                            env.env,
                            env.database_id,
                            if v.preview_url.is_some() {
                                ""
                            } else {
                                "; Cloudflare offers no preview URL for it (previews off or no workers.dev subdomain)"
                            }
                        )),
                        version_id: Some(v.id),
                        url: v.preview_url,
                        ..Default::default()
                    }),
                    Err(e) if e.is_missing_worker() => Ok(CodeStepEnd {
                        status: "skipped".into(),
                        detail: Some(format!(
                            "no preview version: Worker {} does not exist yet and Cloudflare refuses versions for it (404, code 10007); the first production deployment creates it with a script upload",
                            w.script
                        )),
                        ..Default::default()
                    }),
                    Err(e) => Err(workers_err(e)),
                }
            }
            CodeAction::Deploy => {
                let w = self.worker_plan(plan, env, plan.release)?;
                match client.upload_version(&w.script, &w.bundle, &w.spec) {
                    Ok(v) => {
                        if let Some(end) =
                            self.start_rollout(&client, plan, op, &w.script, &v.id)?
                        {
                            return Ok(end);
                        }
                        client
                            .create_deployment(&w.script, &[(v.id.clone(), 100.0)], &w.spec.message)
                            .map_err(workers_err)?;
                        Ok(CodeStepEnd {
                            status: "succeeded".into(),
                            detail: Some(format!(
                                "version {} of Worker {} deployed at 100%, bound to production's database {}",
                                v.id, w.script, env.database_id
                            )),
                            version_id: Some(v.id),
                            ..Default::default()
                        })
                    }
                    Err(e) if e.is_missing_worker() => {
                        let v = client
                            .upload_script(&w.script, &w.bundle, &w.spec)
                            .map_err(workers_err)?;
                        Ok(CodeStepEnd {
                            status: "succeeded".into(),
                            detail: Some(format!(
                                "Worker {} created by a script upload (its first deployment): version {} live at 100%, bound to production's database {}",
                                w.script, v.id, env.database_id
                            )),
                            version_id: Some(v.id),
                            ..Default::default()
                        })
                    }
                    Err(e) => Err(workers_err(e)),
                }
            }
            CodeAction::Revert | CodeAction::Rollback => {
                let script = self.worker_script(plan.target)?;
                let version = match plan.version {
                    Some(v) => v.to_string(),
                    None => {
                        // Not recorded (an interrupted upload): upload the pinned bundle again.
                        let w = self.worker_plan(
                            plan,
                            env,
                            &format!("{}-{}", plan.release, action.as_str()),
                        )?;
                        client
                            .upload_version(&w.script, &w.bundle, &w.spec)
                            .map_err(workers_err)?
                            .id
                    }
                };
                client
                    .create_deployment(
                        &script,
                        &[(version.clone(), 100.0)],
                        &format!("d1ops {} to release {}", action.as_str(), plan.release),
                    )
                    .map_err(workers_err)?;
                Ok(CodeStepEnd {
                    status: "succeeded".into(),
                    detail: Some(format!(
                        "version {version} of Worker {script} (release {}) deployed at 100%",
                        plan.release
                    )),
                    version_id: Some(version),
                    ..Default::default()
                })
            }
        }
    }
}

/// The Worker's name for target `t`: `script`, else wrangler's `name`.
fn worker_script_of(
    t: &crate::workspace::config::TargetConfig,
    defaults: &crate::workspace::wrangler::WorkerDefaults,
) -> Result<String> {
    t.script
        .clone()
        .or_else(|| defaults.name.clone())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            super::EngineError::Input(format!(
                "target {}: no Worker name: set script = \"…\" under its [[target]] or name = \"…\" in wrangler.toml",
                t.name
            ))
        })
}
