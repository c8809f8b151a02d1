//! Cloudflare Workers versions and deployments, typed: a bundled Worker read from disk, a
//! version uploaded with its D1 binding and annotations, a percentage deployment that makes
//! one or two versions live, and the script upload that creates a Worker. Nothing here knows
//! of releases or environments; the engine decides what to upload and when.
//!
//! Shapes, checked against Cloudflare's TypeScript SDK (`cloudflare/cloudflare-typescript`,
//! `src/resources/workers/scripts/{versions,deployments,scripts,subdomain}.ts`) and against
//! what wrangler sends and reads (`cloudflare/workers-sdk`, `packages/wrangler/src/versions/
//! {api,types,upload}.ts`, `deployment-bundle/create-worker-upload-form.ts`):
//!
//! - `POST /accounts/{a}/workers/scripts/{s}/versions`, multipart: a `metadata` part (JSON:
//!   `main_module`, `compatibility_date`, `compatibility_flags`, `bindings`, `annotations
//!   {workers/message, workers/tag}`) and one part per module, named and filed under the
//!   module's name, `application/javascript+module` for ES modules (wrangler's
//!   `moduleTypeMimeType`). Answer: the version `{id, number, metadata {author_email,
//!   created_on, source, has_preview}, annotations, resources {bindings, script, script_runtime}}`
//!   (the SDK spells the preview flag `hasPreview`, wrangler reads `has_preview`; both are read).
//! - `GET …/versions?page=&per_page=`: `result {items: [version]}`, newest first (the SDK's
//!   `V4PagePagination`; wrangler reads `items`). `GET …/versions/{id}`: one version.
//! - D1 bindings are sent as `{"type": "d1", "name", "id"}` (what wrangler sends); the SDK's
//!   newer schema names the id `database_id` and keeps `id` as deprecated, so both are read.
//! - `POST …/deployments` `{strategy: "percentage", versions: [{version_id, percentage}],
//!   annotations {workers/message}}`; `GET …/deployments`: `{deployments: [{id, created_on,
//!   source, strategy, versions, annotations, author_email}]}`, the live one first.
//! - `PUT /accounts/{a}/workers/scripts/{s}`, the same multipart, creates (or replaces) the
//!   Worker and deploys it at 100%. Its answer (`ScriptUpdateResponse`: `id` = the script's
//!   name, `etag`, `created_on`, `modified_on`, …) carries no version id, so the live
//!   deployment is read afterwards to learn it.
//! - Preview URLs are not in any answer: like wrangler, a version whose metadata says it has
//!   a preview gets `https://<first 8 of its id>-<script>.<subdomain>.workers.dev` when the
//!   script's `GET …/subdomain` says `previews_enabled` and the account's `GET
//!   /accounts/{a}/workers/subdomain` names a `subdomain`.
//! - A version upload (or any call under the script) for a Worker that does not exist answers
//!   404 with code 10007 ("This Worker does not exist on your account."): [`WorkersError::
//!   MissingWorker`].
mod bundle;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Call, Client};
use super::error::{CloudflareError, Permission};

pub use bundle::{ARCHIVE_MAGIC, MAX_BUNDLE_BYTES, WorkerBundle, WorkerModule};

/// The permission Workers calls need, as Cloudflare's token editor names it.
pub const WORKERS_PERMISSION: &str = "Account · Workers Scripts · Edit";

/// Page size of the versions list.
const PER_PAGE: u64 = 100;

/// What can go wrong with a Worker, in sentences an operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkersError {
    #[error(
        "Worker '{script}' does not exist yet on this account; its first production deployment creates it"
    )]
    MissingWorker { script: String },
    #[error("the Worker bundle {path}: {message}")]
    Bundle { path: String, message: String },
    #[error("the deployment of Worker '{script}' is not valid: {message}")]
    InvalidDeployment { script: String, message: String },
    #[error(
        "the API token may not {operation} (HTTP 403): it needs the \"{WORKERS_PERMISSION}\" permission on account {account}"
    )]
    Forbidden { operation: String, account: String },
    #[error("{operation}: Cloudflare's answer is missing {what}")]
    Unexpected { operation: String, what: String },
    #[error(transparent)]
    Cloudflare(#[from] CloudflareError),
}

impl WorkersError {
    /// Whether the Worker does not exist yet (Cloudflare's 404 with code 10007).
    pub fn is_missing_worker(&self) -> bool {
        matches!(self, WorkersError::MissingWorker { .. })
    }
}

pub type Result<T, E = WorkersError> = std::result::Result<T, E>;

/// A binding of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `{"type": "d1", "name": <binding>, "id": <database id>}`.
    D1 { name: String, id: String },
}

impl Binding {
    fn to_json(&self) -> Value {
        match self {
            Binding::D1 { name, id } => json!({ "type": "d1", "name": name, "id": id }),
        }
    }
}

/// What a version (or a script upload) is made of besides its modules.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSpec {
    /// Must name one of the bundle's modules.
    pub main_module: String,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    pub bindings: Vec<Binding>,
    /// `workers/message` (Cloudflare truncates it to 100 bytes).
    pub message: String,
    /// `workers/tag`: how a lost upload is found again (the release id); unique per version.
    pub tag: String,
}

impl VersionSpec {
    fn metadata(&self) -> Value {
        json!({
            "main_module": self.main_module,
            "compatibility_date": self.compatibility_date,
            "compatibility_flags": self.compatibility_flags,
            "bindings": self.bindings.iter().map(Binding::to_json).collect::<Vec<_>>(),
            "annotations": { "workers/message": self.message, "workers/tag": self.tag },
        })
    }
}

/// A Worker version as d1ops reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerVersion {
    pub id: String,
    pub number: Option<u64>,
    pub tag: Option<String>,
    pub message: Option<String>,
    /// Cloudflare says the version can be previewed (`metadata.has_preview`).
    pub has_preview: bool,
    /// Filled by [`Client::upload_version`] when the version, the script and the account
    /// allow a preview (see the module documentation); `None` otherwise.
    pub preview_url: Option<String>,
    /// `(binding name, database id)` of each D1 binding, when the answer lists bindings.
    pub d1_bindings: Vec<(String, String)>,
}

/// A deployment: which versions take what share of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub created_on: Option<String>,
    /// `(version id, percentage)`.
    pub versions: Vec<(String, f64)>,
    pub message: Option<String>,
}

impl Deployment {
    /// The version taking all the traffic, if one does.
    pub fn sole_version(&self) -> Option<&str> {
        match self.versions.as_slice() {
            [(id, pct)] if (*pct - 100.0).abs() < 1e-6 => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawVersion {
    id: Option<String>,
    number: Option<u64>,
    metadata: Option<RawMetadata>,
    annotations: Option<RawAnnotations>,
    resources: Option<RawResources>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMetadata {
    has_preview: Option<bool>,
    /// The SDK's spelling; an answer may carry both.
    #[serde(rename = "hasPreview")]
    has_preview_sdk: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAnnotations {
    #[serde(rename = "workers/message")]
    message: Option<String>,
    #[serde(rename = "workers/tag")]
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawResources {
    bindings: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawVersionList {
    items: Vec<RawVersion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDeployment {
    id: Option<String>,
    created_on: Option<String>,
    versions: Vec<RawDeploymentVersion>,
    annotations: Option<RawAnnotations>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDeploymentVersion {
    version_id: String,
    percentage: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDeploymentList {
    deployments: Vec<RawDeployment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawScriptSubdomain {
    previews_enabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAccountSubdomain {
    subdomain: Option<String>,
}

impl RawVersion {
    fn into_version(self, operation: &str) -> Result<WorkerVersion> {
        let id = self.id.ok_or_else(|| WorkersError::Unexpected {
            operation: operation.to_string(),
            what: "the version's id".into(),
        })?;
        let annotations = self.annotations.unwrap_or_default();
        let d1_bindings = self
            .resources
            .map(|r| r.bindings)
            .unwrap_or_default()
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("d1"))
            .filter_map(|b| {
                let name = b.get("name").and_then(Value::as_str)?;
                let id = b
                    .get("database_id")
                    .or_else(|| b.get("id"))
                    .and_then(Value::as_str)?;
                Some((name.to_string(), id.to_string()))
            })
            .collect();
        Ok(WorkerVersion {
            id,
            number: self.number,
            tag: annotations.tag,
            message: annotations.message,
            has_preview: self
                .metadata
                .and_then(|m| m.has_preview.or(m.has_preview_sdk))
                .unwrap_or(false),
            preview_url: None,
            d1_bindings,
        })
    }
}

impl RawDeployment {
    fn into_deployment(self, operation: &str) -> Result<Deployment> {
        let id = self.id.ok_or_else(|| WorkersError::Unexpected {
            operation: operation.to_string(),
            what: "the deployment's id".into(),
        })?;
        Ok(Deployment {
            id,
            created_on: self.created_on,
            versions: self
                .versions
                .into_iter()
                .map(|v| (v.version_id, v.percentage))
                .collect(),
            message: self.annotations.and_then(|a| a.message),
        })
    }
}

impl Client {
    fn script_path(&self, script: &str, rest: &str) -> String {
        self.account_path(&format!("/workers/scripts/{script}{rest}"))
    }

    /// Sends a call about `script`, mapping a 404 to [`WorkersError::MissingWorker`] and a 403
    /// to the Workers permission (the D1 `Permission` a Workers call carries is never shown:
    /// a 403 names [`WORKERS_PERMISSION`]).
    fn workers_send<T: serde::de::DeserializeOwned>(&self, script: &str, call: &Call) -> Result<T> {
        match self.send::<T>(call) {
            Ok(env) => env.result.ok_or_else(|| WorkersError::Unexpected {
                operation: call.operation.clone(),
                what: "its result".into(),
            }),
            Err(e) => Err(self.workers_error(script, e)),
        }
    }

    fn workers_error(&self, script: &str, e: CloudflareError) -> WorkersError {
        match e {
            // 10007 is the only 404 a call under an existing account's script answers; the
            // routing refusal (7003, a malformed account id) says "Could not route".
            CloudflareError::NotFound { ref message, .. }
                if !message.starts_with("Could not route") =>
            {
                WorkersError::MissingWorker {
                    script: script.to_string(),
                }
            }
            CloudflareError::Forbidden {
                operation, account, ..
            } => WorkersError::Forbidden { operation, account },
            other => WorkersError::Cloudflare(other),
        }
    }

    /// Uploads `bundle` as a new version of `script` without deploying it. Not retried
    /// blindly: after an answer that may have been lost (a transport failure, a 5xx) the
    /// version is looked up by `spec.tag` first and returned if the upload landed; otherwise
    /// the upload is repeated, at most [`Client::retries`] times. 429 is retried by the
    /// client (nothing ran). The preview URL is filled in when Cloudflare allows one (a
    /// failure to read it leaves it `None`).
    pub fn upload_version(
        &self,
        script: &str,
        bundle: &WorkerBundle,
        spec: &VersionSpec,
    ) -> Result<WorkerVersion> {
        let operation = format!("upload a version of Worker {script}");
        let (content_type, body) = bundle.multipart(&spec.metadata(), &spec.main_module)?;
        let call = Call::new(
            operation.clone(),
            Method::POST,
            self.script_path(script, "/versions"),
            Permission::D1Edit,
        )
        .raw_body(content_type, body);
        let mut attempt = 0u32;
        let raw = loop {
            attempt += 1;
            match self.send::<RawVersion>(&call) {
                Ok(env) => {
                    break env.result.ok_or_else(|| WorkersError::Unexpected {
                        operation: operation.clone(),
                        what: "its result".into(),
                    })?;
                }
                Err(e) if e.is_ambiguous() => {
                    tracing::warn!(%operation, attempt, "version upload answer lost; looking it up by tag");
                    if let Some(found) = self.find_version_by_tag(script, &spec.tag)? {
                        return Ok(self.with_preview(script, found));
                    }
                    if attempt > self.retries() {
                        return Err(WorkersError::Cloudflare(e));
                    }
                    self.pause(attempt);
                }
                Err(e) => return Err(self.workers_error(script, e)),
            }
        };
        let version = raw.into_version(&operation)?;
        Ok(self.with_preview(script, version))
    }

    fn with_preview(&self, script: &str, mut version: WorkerVersion) -> WorkerVersion {
        match self.preview_url(script, &version) {
            Ok(url) => version.preview_url = url,
            Err(e) => tracing::debug!(script, error = %e, "no preview URL"),
        }
        version
    }

    /// The version's preview URL, when its metadata says it has one, the script's preview
    /// URLs are enabled and the account has a workers.dev subdomain (how wrangler builds it).
    pub fn preview_url(&self, script: &str, version: &WorkerVersion) -> Result<Option<String>> {
        if !version.has_preview || version.id.len() < 8 {
            return Ok(None);
        }
        let call = Call::new(
            format!("read the workers.dev settings of Worker {script}"),
            Method::GET,
            self.script_path(script, "/subdomain"),
            Permission::D1Read,
        );
        let settings: RawScriptSubdomain = self.workers_send(script, &call)?;
        if !settings.previews_enabled {
            return Ok(None);
        }
        let call = Call::new(
            "read the account's workers.dev subdomain",
            Method::GET,
            self.account_path("/workers/subdomain"),
            Permission::D1Read,
        );
        let sub = match self.send::<RawAccountSubdomain>(&call) {
            Ok(env) => env.result.and_then(|r| r.subdomain),
            // No workers.dev subdomain registered: no preview URL.
            Err(CloudflareError::NotFound { .. }) => None,
            Err(e) => return Err(self.workers_error(script, e)),
        };
        Ok(sub
            .filter(|s| !s.is_empty())
            .map(|s| format!("https://{}-{script}.{s}.workers.dev", &version.id[..8])))
    }

    /// The newest version of `script` annotated with `workers/tag` = `tag` (among the newest
    /// [`PER_PAGE`] versions: the one looked for was just uploaded). `None` when there is no
    /// such version or no such Worker.
    pub fn find_version_by_tag(&self, script: &str, tag: &str) -> Result<Option<WorkerVersion>> {
        let page = match self.versions_page(script, 1) {
            Ok((items, _)) => items,
            Err(WorkersError::MissingWorker { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        for raw in page {
            // A list entry without annotations (the SDK's list schema has none) is read in full.
            let version = if raw.annotations.is_some() {
                raw.into_version("list Worker versions")?
            } else {
                let Some(id) = raw.id else { continue };
                self.get_version(script, &id)?
            };
            if version.tag.as_deref() == Some(tag) {
                let full = self.get_version(script, &version.id)?;
                return Ok(Some(full));
            }
        }
        Ok(None)
    }

    fn versions_page(&self, script: &str, page: u64) -> Result<(Vec<RawVersion>, bool)> {
        let call = Call::new(
            format!("list the versions of Worker {script}"),
            Method::GET,
            self.script_path(script, "/versions"),
            Permission::D1Read,
        )
        .query("page", page)
        .query("per_page", PER_PAGE);
        let env = self
            .send::<RawVersionList>(&call)
            .map_err(|e| self.workers_error(script, e))?;
        let items = env.result.unwrap_or_default().items;
        let n = items.len() as u64;
        let info = env.result_info.unwrap_or_default();
        let more = match (info.total_count, info.total_pages) {
            (Some(total), _) => page * PER_PAGE < total,
            (None, Some(pages)) => page < pages,
            (None, None) => n == PER_PAGE,
        };
        Ok((items, more && n > 0))
    }

    /// Every version of `script`, newest first (all pages).
    pub fn list_versions(&self, script: &str) -> Result<Vec<WorkerVersion>> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let (items, more) = self.versions_page(script, page)?;
            for raw in items {
                out.push(raw.into_version("list Worker versions")?);
            }
            if !more {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// One version of `script`, with its bindings.
    pub fn get_version(&self, script: &str, id: &str) -> Result<WorkerVersion> {
        let operation = format!("read version {id} of Worker {script}");
        let call = Call::new(
            operation.clone(),
            Method::GET,
            self.script_path(script, &format!("/versions/{id}")),
            Permission::D1Read,
        );
        let raw: RawVersion = match self.send::<RawVersion>(&call) {
            Ok(env) => env.result.ok_or_else(|| WorkersError::Unexpected {
                operation: operation.clone(),
                what: "its result".into(),
            })?,
            // A 404 here is an unknown version or an unknown Worker: the deployments tell.
            Err(e @ CloudflareError::NotFound { .. }) => {
                self.current_deployment(script)?;
                return Err(WorkersError::Cloudflare(e));
            }
            Err(e) => return Err(self.workers_error(script, e)),
        };
        raw.into_version(&operation)
    }

    /// Makes `versions` (`(version id, percentage)`, one or two, summing to 100) live.
    /// Repeating it is harmless (the same split again), so it is retried like a read.
    pub fn create_deployment(
        &self,
        script: &str,
        versions: &[(String, f64)],
        message: &str,
    ) -> Result<Deployment> {
        check_split(script, versions)?;
        let operation = format!("deploy Worker {script}");
        let call = Call::new(
            operation.clone(),
            Method::POST,
            self.script_path(script, "/deployments"),
            Permission::D1Edit,
        )
        .body(json!({
            "strategy": "percentage",
            "versions": versions
                .iter()
                .map(|(id, pct)| json!({ "version_id": id, "percentage": pct }))
                .collect::<Vec<_>>(),
            "annotations": { "workers/message": message },
        }))
        .idempotent(true);
        let raw: RawDeployment = self.workers_send(script, &call)?;
        raw.into_deployment(&operation)
    }

    /// The live deployment of `script` (the first of `GET …/deployments`), `None` when it
    /// has none.
    pub fn current_deployment(&self, script: &str) -> Result<Option<Deployment>> {
        let operation = format!("read the deployments of Worker {script}");
        let call = Call::new(
            operation.clone(),
            Method::GET,
            self.script_path(script, "/deployments"),
            Permission::D1Read,
        );
        let list: RawDeploymentList = self.workers_send(script, &call)?;
        list.deployments
            .into_iter()
            .next()
            .map(|d| d.into_deployment(&operation))
            .transpose()
    }

    /// Uploads `bundle` as the Worker `script` itself (`PUT`), creating it if it does not
    /// exist and deploying the new version at 100%, and returns that version (read from the
    /// live deployment, since the answer names none). After a lost answer the live version is
    /// checked against `spec.tag` before the upload is repeated.
    pub fn upload_script(
        &self,
        script: &str,
        bundle: &WorkerBundle,
        spec: &VersionSpec,
    ) -> Result<WorkerVersion> {
        let operation = format!("upload Worker {script}");
        let (content_type, body) = bundle.multipart(&spec.metadata(), &spec.main_module)?;
        let call = Call::new(
            operation.clone(),
            Method::PUT,
            self.script_path(script, ""),
            Permission::D1Edit,
        )
        .raw_body(content_type, body);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.send::<Value>(&call) {
                Ok(_) => break,
                Err(e) if e.is_ambiguous() => {
                    if let Some(v) = self.live_with_tag(script, &spec.tag)? {
                        return Ok(v);
                    }
                    if attempt > self.retries() {
                        return Err(WorkersError::Cloudflare(e));
                    }
                    self.pause(attempt);
                }
                Err(e) => return Err(self.workers_error(script, e)),
            }
        }
        let live = self
            .current_deployment(script)?
            .ok_or_else(|| WorkersError::Unexpected {
                operation: operation.clone(),
                what: "a deployment after the upload".into(),
            })?;
        let id = live
            .sole_version()
            .ok_or_else(|| WorkersError::Unexpected {
                operation: operation.clone(),
                what: "a version at 100% after the upload".into(),
            })?;
        self.get_version(script, id)
    }

    /// The live version of `script` if it takes all traffic and carries `tag`.
    fn live_with_tag(&self, script: &str, tag: &str) -> Result<Option<WorkerVersion>> {
        let live = match self.current_deployment(script) {
            Ok(d) => d,
            Err(WorkersError::MissingWorker { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(id) = live.as_ref().and_then(Deployment::sole_version) else {
            return Ok(None);
        };
        let version = self.get_version(script, id)?;
        Ok((version.tag.as_deref() == Some(tag)).then_some(version))
    }
}

/// A deployment's split: one or two distinct versions, each 0..=100, summing to 100.
fn check_split(script: &str, versions: &[(String, f64)]) -> Result<()> {
    let bad = |message: String| {
        Err(WorkersError::InvalidDeployment {
            script: script.to_string(),
            message,
        })
    };
    if versions.is_empty() || versions.len() > 2 {
        return bad(format!(
            "a deployment takes one or two versions, not {}",
            versions.len()
        ));
    }
    if versions.len() == 2 && versions[0].0 == versions[1].0 {
        return bad(format!("version {} is named twice", versions[0].0));
    }
    for (id, pct) in versions {
        if id.is_empty() {
            return bad("a version id is empty".into());
        }
        if !pct.is_finite() || *pct < 0.0 || *pct > 100.0 {
            return bad(format!("version {id} gets {pct}%, not 0 to 100"));
        }
    }
    let sum: f64 = versions.iter().map(|(_, p)| p).sum();
    if (sum - 100.0).abs() > 1e-6 {
        return bad(format!("the percentages add up to {sum}, not 100"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_must_add_up_to_one_hundred() {
        let v = |a: &str, p: f64| (a.to_string(), p);
        assert!(check_split("w", &[v("a", 100.0)]).is_ok());
        assert!(check_split("w", &[v("a", 10.0), v("b", 90.0)]).is_ok());
        for bad in [
            vec![],
            vec![v("a", 90.0)],
            vec![v("a", 10.0), v("b", 80.0)],
            vec![v("a", 50.0), v("a", 50.0)],
            vec![v("a", -10.0), v("b", 110.0)],
            vec![v("a", 50.0), v("b", 25.0), v("c", 25.0)],
            vec![v("a", f64::NAN)],
        ] {
            let err = check_split("w", &bad).unwrap_err();
            assert!(
                matches!(err, WorkersError::InvalidDeployment { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn d1_bindings_are_read_under_either_id_name() {
        let raw: RawVersion = serde_json::from_value(json!({
            "id": "0123456789abcdef",
            "number": 3,
            "metadata": { "hasPreview": true },
            "annotations": { "workers/tag": "r1", "workers/message": "m" },
            "resources": { "bindings": [
                { "type": "d1", "name": "DB", "database_id": "new" },
                { "type": "d1", "name": "OLD", "id": "old" },
                { "type": "kv_namespace", "name": "KV", "namespace_id": "k" },
            ]},
        }))
        .unwrap();
        let v = raw.into_version("t").unwrap();
        assert!(v.has_preview);
        assert_eq!(v.tag.as_deref(), Some("r1"));
        assert_eq!(
            v.d1_bindings,
            [
                ("DB".to_string(), "new".to_string()),
                ("OLD".to_string(), "old".to_string())
            ]
        );
    }
}
