//! Workers scripts, versions and deployments: enough of Cloudflare's Workers API for d1ops'
//! worker targets (a version uploaded with its D1 binding, a percentage deployment, the
//! script upload that creates a Worker, the workers.dev settings a preview URL is built
//! from). Shapes follow Cloudflare's TypeScript SDK (`src/resources/workers/scripts/
//! {versions,deployments,scripts,subdomain}.ts`) and what wrangler reads
//! (`packages/wrangler/src/versions/types.ts`); the endpoint table is in the module
//! documentation of `d1_contract`.
//!
//! Multipart bodies are parsed here (no multipart crate): the boundary is taken from the
//! body's first line, which a well-formed body starts with; each part's
//! `Content-Disposition` gives its `name` (and `filename`), `Content-Type` its type.
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::http::{Reject, Req, Resp, success};
use super::state::{State, iso};
use super::{D1Server, random_hex};

/// The code and message Cloudflare answers for a Worker that does not exist.
const NO_WORKER: (u32, &str) = (10007, "This Worker does not exist on your account.");
/// The code used for every refused upload or deployment (wrangler names 10021 a
/// "validation error").
const INVALID: u32 = 10021;
const ESM: &str = "application/javascript+module";

/// One module of a version as sent: `(name, content type, bytes)`.
pub type ModulePart = (String, String, Vec<u8>);

/// The Workers side of the account.
#[derive(Default)]
pub struct Workers {
    pub scripts: Vec<Script>,
    /// The account's workers.dev subdomain (`None`: none registered).
    pub subdomain: Option<String>,
}

pub struct Script {
    pub name: String,
    pub created_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
    /// Oldest first.
    pub versions: Vec<Version>,
    /// Oldest first; the last one is live.
    pub deployments: Vec<Deployment>,
}

pub struct Version {
    pub id: String,
    pub number: u64,
    pub created_on: DateTime<Utc>,
    pub message: Option<String>,
    pub tag: Option<String>,
    pub triggered_by: &'static str,
    pub main_module: String,
    pub compatibility_date: Option<String>,
    pub compatibility_flags: Vec<String>,
    /// As sent, except that D1 bindings carry both `database_id` and `id`.
    pub bindings: Vec<Value>,
    /// `(name, content type, bytes)`.
    pub modules: Vec<ModulePart>,
    pub etag: String,
}

pub struct Deployment {
    pub id: String,
    pub created_on: DateTime<Utc>,
    pub versions: Vec<(String, f64)>,
    pub message: Option<String>,
}

/// One part of a multipart body.
struct Part {
    name: String,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// What an upload (version or script) carries.
struct Upload {
    main_module: String,
    compatibility_date: Option<String>,
    compatibility_flags: Vec<String>,
    bindings: Vec<Value>,
    message: Option<String>,
    tag: Option<String>,
    modules: Vec<ModulePart>,
}

fn uuid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_multipart(body: &[u8]) -> Result<Vec<Part>, Reject> {
    let malformed = || Reject::new(400, INVALID, "The request body is not multipart/form-data");
    let first = find(body, b"\r\n").ok_or_else(malformed)?;
    let delim = &body[..first];
    if delim.len() < 3 || !delim.starts_with(b"--") {
        return Err(malformed());
    }
    let mut sep = b"\r\n".to_vec();
    sep.extend_from_slice(delim);
    let mut rest = &body[first + 2..];
    let mut parts = Vec::new();
    loop {
        let head_end = find(rest, b"\r\n\r\n").ok_or_else(malformed)?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, &sep).ok_or_else(malformed)?;
        let mut name = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    name = v.split(';').find_map(|p| {
                        let p = p.trim();
                        p.strip_prefix("name=\"")
                            .and_then(|n| n.strip_suffix('"'))
                            .map(str::to_string)
                    });
                }
                "content-type" => content_type = Some(v.trim().to_string()),
                _ => {}
            }
        }
        parts.push(Part {
            name: name.ok_or_else(malformed)?,
            content_type,
            bytes: content[..end].to_vec(),
        });
        let after = &content[end + sep.len()..];
        if after.starts_with(b"--") {
            return Ok(parts);
        }
        rest = after.strip_prefix(b"\r\n").ok_or_else(malformed)?;
    }
}

fn invalid(message: impl Into<String>) -> Reject {
    Reject::new(400, INVALID, message)
}

/// Reads and checks an upload: `metadata` with a `main_module` naming an ES module part,
/// D1 bindings naming databases of this server.
fn read_upload(st: &State, req: &Req) -> Result<Upload, Reject> {
    let parts = parse_multipart(&req.body)?;
    let meta = parts
        .iter()
        .find(|p| p.name == "metadata")
        .ok_or_else(|| invalid("The metadata part is missing"))?;
    let meta: Value = serde_json::from_slice(&meta.bytes)
        .map_err(|e| invalid(format!("The metadata part is not valid JSON: {e}")))?;
    let main_module = meta
        .get("main_module")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid("metadata.main_module is required (service-worker syntax is not modelled)")
        })?
        .to_string();
    let modules: Vec<ModulePart> = parts
        .into_iter()
        .filter(|p| p.name != "metadata")
        .map(|p| {
            let ct = p
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into());
            (p.name, ct, p.bytes)
        })
        .collect();
    match modules.iter().find(|(n, _, _)| *n == main_module) {
        None => {
            return Err(invalid(format!(
                "No such module \"{main_module}\": the main module is not among the uploaded parts"
            )));
        }
        Some((_, ct, _)) if ct != ESM => {
            return Err(invalid(format!(
                "The main module \"{main_module}\" must be sent as {ESM}, not {ct}"
            )));
        }
        Some(_) => {}
    }
    let mut bindings = Vec::new();
    for b in meta
        .get("bindings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
        let kind = b.get("type").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() || kind.is_empty() {
            return Err(invalid("Every binding needs a type and a name"));
        }
        if kind != "d1" {
            bindings.push(b);
            continue;
        }
        let id = b
            .get("database_id")
            .or_else(|| b.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if st.find(id).is_none() {
            return Err(invalid(format!(
                "D1 binding {name} refers to database '{id}', which does not exist on this account"
            )));
        }
        bindings.push(json!({ "type": "d1", "name": name, "database_id": id, "id": id }));
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let annotations = meta.get("annotations");
    Ok(Upload {
        main_module,
        compatibility_date: text(meta.get("compatibility_date")),
        compatibility_flags: meta
            .get("compatibility_flags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        bindings,
        message: text(annotations.and_then(|a| a.get("workers/message"))),
        tag: text(annotations.and_then(|a| a.get("workers/tag"))),
        modules,
    })
}

impl Script {
    fn add_version(&mut self, up: Upload, triggered_by: &'static str) -> &Version {
        let now = Utc::now();
        self.modified_on = now;
        let number = self.versions.len() as u64 + 1;
        self.versions.push(Version {
            id: uuid(),
            number,
            created_on: now,
            message: up.message,
            tag: up.tag,
            triggered_by,
            main_module: up.main_module,
            compatibility_date: up.compatibility_date,
            compatibility_flags: up.compatibility_flags,
            bindings: up.bindings,
            modules: up.modules,
            etag: random_hex(64),
        });
        &self.versions[self.versions.len() - 1]
    }

    fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }
}

impl Version {
    fn metadata(&self, has_preview: bool) -> Value {
        json!({
            "author_email": "d1ops-test@example.com",
            "author_id": "0123456789abcdef0123456789abcdef",
            "created_on": iso(self.created_on),
            "modified_on": iso(self.created_on),
            "source": "api",
            // wrangler reads `has_preview`; the SDK's schema says `hasPreview`.
            "has_preview": has_preview,
            "hasPreview": has_preview,
        })
    }

    fn annotations(&self) -> Value {
        let mut a = json!({ "workers/triggered_by": self.triggered_by });
        if let Some(m) = &self.message {
            a["workers/message"] = json!(m);
        }
        if let Some(t) = &self.tag {
            a["workers/tag"] = json!(t);
        }
        a
    }

    /// A list entry.
    fn list_json(&self) -> Value {
        json!({
            "id": self.id,
            "number": self.number,
            "metadata": self.metadata(true),
            "annotations": self.annotations(),
        })
    }

    /// The full version (get and create).
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "number": self.number,
            "metadata": self.metadata(true),
            "annotations": self.annotations(),
            "resources": {
                "bindings": self.bindings,
                "script": {
                    "etag": self.etag,
                    "handlers": ["fetch"],
                    "last_deployed_from": "api",
                },
                "script_runtime": {
                    "compatibility_date": self.compatibility_date,
                    "compatibility_flags": self.compatibility_flags,
                    "usage_model": "standard",
                    "limits": {},
                },
            },
        })
    }
}

impl Deployment {
    fn json(&self) -> Value {
        let mut d = json!({
            "id": self.id,
            "created_on": iso(self.created_on),
            "source": "api",
            "strategy": "percentage",
            "author_email": "d1ops-test@example.com",
            "versions": self.versions.iter()
                .map(|(id, pct)| json!({ "version_id": id, "percentage": pct }))
                .collect::<Vec<_>>(),
        });
        if let Some(m) = &self.message {
            d["annotations"] = json!({ "workers/message": m });
        }
        d
    }
}

/// Routes `/accounts/{account}/workers/{rest…}`.
pub fn route(st: &mut State, req: &Req, account: &str, rest: &[&str]) -> Result<Resp, Reject> {
    if account.len() != 32 || !account.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reject::new(
            404,
            7003,
            format!(
                "Could not route to /client/v4/accounts/{account}/workers, perhaps your object identifier is invalid?"
            ),
        ));
    }
    if account != st.account {
        return Err(Reject::new(
            403,
            7403,
            "The given account is not valid or is not authorized to access this service",
        ));
    }
    let m = req.method.as_str();
    match (m, rest) {
        ("GET", ["subdomain"]) => match &st.workers.subdomain {
            Some(s) => Ok(Resp::json(200, &success(json!({ "subdomain": s })))),
            None => Err(Reject::new(
                404,
                10007,
                "This account does not have a workers.dev subdomain",
            )),
        },
        ("PUT", ["scripts", name]) => put_script(st, req, name),
        (_, ["scripts", name, tail @ ..]) => {
            let known = matches!(
                (m, tail),
                ("GET" | "POST", ["versions"])
                    | ("GET", ["versions", _])
                    | ("GET" | "POST", ["deployments"])
                    | ("GET", ["subdomain"])
            );
            if !known {
                return Err(
                    if matches!(
                        tail,
                        ["versions"] | ["versions", _] | ["deployments"] | ["subdomain"] | []
                    ) {
                        Reject::new(405, 7001, "Method not allowed")
                    } else {
                        Reject::new(404, 7000, "No route for that URI")
                    },
                );
            }
            let Some(i) = st.workers.scripts.iter().position(|s| s.name == *name) else {
                return Err(Reject::new(404, NO_WORKER.0, NO_WORKER.1));
            };
            match (m, tail) {
                ("POST", ["versions"]) => {
                    let up = read_upload(st, req)?;
                    let v = st.workers.scripts[i].add_version(up, "version_upload");
                    let mut body = v.json();
                    body["startup_time_ms"] = json!(1);
                    Ok(Resp::json(200, &success(body)))
                }
                ("GET", ["versions"]) => Ok(list_versions(&st.workers.scripts[i], req)),
                ("GET", ["versions", id]) => match st.workers.scripts[i].version(id) {
                    Some(v) => Ok(Resp::json(200, &success(v.json()))),
                    None => Err(Reject::new(
                        404,
                        10225,
                        format!("The version {id} does not exist on this Worker"),
                    )),
                },
                ("POST", ["deployments"]) => deploy(&mut st.workers.scripts[i], req),
                ("GET", ["deployments"]) => {
                    let list: Vec<Value> = st.workers.scripts[i]
                        .deployments
                        .iter()
                        .rev()
                        .map(Deployment::json)
                        .collect();
                    Ok(Resp::json(200, &success(json!({ "deployments": list }))))
                }
                _ => Ok(Resp::json(
                    200,
                    &success(json!({ "enabled": true, "previews_enabled": true })),
                )),
            }
        }
        _ => Err(Reject::new(404, 7000, "No route for that URI")),
    }
}

fn list_versions(script: &Script, req: &Req) -> Resp {
    let number = |k: &str, default: usize| {
        req.param(k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let page = number("page", 1).max(1);
    let per_page = number("per_page", 10).clamp(1, 100);
    let items: Vec<Value> = script
        .versions
        .iter()
        .rev()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(Version::list_json)
        .collect();
    let mut body = success(json!({ "items": items }));
    body["result_info"] = json!({
        "page": page,
        "per_page": per_page,
        "count": items.len(),
        "total_count": script.versions.len(),
    });
    Resp::json(200, &body)
}

fn deploy(script: &mut Script, req: &Req) -> Result<Resp, Reject> {
    let body = req.json()?;
    if body.get("strategy").and_then(Value::as_str) != Some("percentage") {
        return Err(invalid("strategy must be \"percentage\""));
    }
    let mut versions = Vec::new();
    for v in body
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let id = v
            .get("version_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(pct) = v.get("percentage").and_then(Value::as_f64) else {
            return Err(invalid(format!("version {id} has no percentage")));
        };
        if script.version(id).is_none() {
            return Err(invalid(format!(
                "The version {id} does not exist on this Worker"
            )));
        }
        if !(0.0..=100.0).contains(&pct) {
            return Err(invalid(format!("Percentage {pct} is out of range")));
        }
        if versions.iter().any(|(seen, _)| seen == id) {
            return Err(invalid(format!("The version {id} is named twice")));
        }
        versions.push((id.to_string(), pct));
    }
    if versions.is_empty() || versions.len() > 2 {
        return Err(invalid("A deployment takes one or two versions"));
    }
    let sum: f64 = versions.iter().map(|(_, p)| p).sum();
    if (sum - 100.0).abs() > 1e-6 {
        return Err(invalid(format!(
            "The percentages must add up to 100, not {sum}"
        )));
    }
    let message = body
        .get("annotations")
        .and_then(|a| a.get("workers/message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    script.deployments.push(Deployment {
        id: uuid(),
        created_on: Utc::now(),
        versions,
        message,
    });
    let d = &script.deployments[script.deployments.len() - 1];
    Ok(Resp::json(200, &success(d.json())))
}

fn put_script(st: &mut State, req: &Req, name: &str) -> Result<Resp, Reject> {
    let up = read_upload(st, req)?;
    let message = up.message.clone();
    let now = Utc::now();
    let i = match st.workers.scripts.iter().position(|s| s.name == name) {
        Some(i) => i,
        None => {
            st.workers.scripts.push(Script {
                name: name.to_string(),
                created_on: now,
                modified_on: now,
                versions: Vec::new(),
                deployments: Vec::new(),
            });
            st.workers.scripts.len() - 1
        }
    };
    let script = &mut st.workers.scripts[i];
    let (id, etag, date, flags) = {
        let v = script.add_version(up, "upload");
        (
            v.id.clone(),
            v.etag.clone(),
            v.compatibility_date.clone(),
            v.compatibility_flags.clone(),
        )
    };
    script.deployments.push(Deployment {
        id: uuid(),
        created_on: now,
        versions: vec![(id, 100.0)],
        message,
    });
    // The SDK's `ScriptUpdateResponse`: no version or deployment id.
    let body = json!({
        "id": name,
        "created_on": iso(script.created_on),
        "modified_on": iso(script.modified_on),
        "etag": etag,
        "has_assets": false,
        "has_modules": true,
        "logpush": false,
        "startup_time_ms": 1,
        "usage_model": "standard",
        "compatibility_date": date,
        "compatibility_flags": flags,
        "handlers": ["fetch"],
    });
    Ok(Resp::json(200, &success(body)))
}

impl D1Server {
    /// The account's workers.dev subdomain (default: none, so no version has a preview URL).
    pub fn set_workers_subdomain(&self, subdomain: Option<&str>) {
        self.lock().workers.subdomain = subdomain.map(str::to_string);
    }

    /// Ids of every version of Worker `script`, oldest first (empty: no such Worker).
    pub fn worker_versions(&self, script: &str) -> Vec<String> {
        let st = self.lock();
        st.workers
            .scripts
            .iter()
            .find(|s| s.name == script)
            .map(|s| s.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// `(version id, percentage)` of Worker `script`'s live deployment.
    pub fn live_deployment(&self, script: &str) -> Option<Vec<(String, f64)>> {
        let st = self.lock();
        let s = st.workers.scripts.iter().find(|s| s.name == script)?;
        s.deployments.last().map(|d| d.versions.clone())
    }

    /// `(binding name, database id)` of each D1 binding of a version.
    pub fn version_d1_bindings(&self, script: &str, version: &str) -> Vec<(String, String)> {
        let st = self.lock();
        let Some(v) = st
            .workers
            .scripts
            .iter()
            .find(|s| s.name == script)
            .and_then(|s| s.version(version))
        else {
            return Vec::new();
        };
        v.bindings
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("d1"))
            .filter_map(|b| {
                Some((
                    b.get("name")?.as_str()?.to_string(),
                    b.get("database_id")?.as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// `(name, content type, bytes)` of each module of a version, and its main module.
    pub fn version_modules(
        &self,
        script: &str,
        version: &str,
    ) -> Option<(String, Vec<ModulePart>)> {
        let st = self.lock();
        let v = st
            .workers
            .scripts
            .iter()
            .find(|s| s.name == script)?
            .version(version)?;
        Some((v.main_module.clone(), v.modules.clone()))
    }
}
