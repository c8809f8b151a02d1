//! A bundled Worker read from disk, and the multipart body that uploads it.
//!
//! A single `.js`/`.mjs` file is one ES module. A directory contributes every file under it
//! (recursively, names relative to it with `/`): `.js`/`.mjs` as ES modules
//! (`application/javascript+module`), `.wasm` as compiled WebAssembly (`application/wasm`)
//! and `.map` as source maps (`application/source-map`), the content types wrangler uploads
//! them with. Any other file, a symlink or anything that is not a regular file is refused
//! rather than skipped, so what is uploaded is exactly what the directory holds. `main`
//! names the entry module (default: the single file, or `index.js`, else `index.mjs`).
//! The whole bundle may hold [`MAX_BUNDLE_BYTES`].
use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};
use serde_json::Value;

use super::{Result, WorkersError};

/// Most bytes a bundle may hold, uncompressed. Cloudflare allows Workers Paid 10 MB after
/// gzip; holding the uncompressed bundle to it is stricter, and catches a wrong directory
/// long before an upload.
pub const MAX_BUNDLE_BYTES: u64 = 10 * 1024 * 1024;

/// The first bytes of a bundle written as one file ([`WorkerBundle::to_archive`]).
pub const ARCHIVE_MAGIC: &[u8] = b"d1ops-worker-bundle/1\n";

const ESM: &str = "application/javascript+module";
const WASM: &str = "application/wasm";
const SOURCE_MAP: &str = "application/source-map";

/// One module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerModule {
    /// Its name in the upload (and in `import` statements): the path relative to the bundle.
    pub name: String,
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// A Worker ready to upload: its modules and which one is the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerBundle {
    pub main_module: String,
    pub modules: Vec<WorkerModule>,
}

fn bad(path: &Path, message: impl Into<String>) -> WorkersError {
    WorkersError::Bundle {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "js" | "mjs" => Some(ESM),
        "wasm" => Some(WASM),
        "map" => Some(SOURCE_MAP),
        _ => None,
    }
}

impl WorkerBundle {
    /// Reads a bundle from `path` (a file or a directory, see the module documentation).
    pub fn read(path: &Path, main: Option<&str>) -> Result<WorkerBundle> {
        let meta = std::fs::metadata(path).map_err(|e| bad(path, e.to_string()))?;
        let mut total = 0u64;
        if meta.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| bad(path, "the file name is not UTF-8"))?
                .to_string();
            if content_type(&name) != Some(ESM) {
                return Err(bad(
                    path,
                    "a single-file Worker must be an ES module (.js or .mjs)",
                ));
            }
            if let Some(m) = main
                && m != name
            {
                return Err(bad(
                    path,
                    format!("the main module '{m}' is not this file ('{name}')"),
                ));
            }
            let bytes = read_limited(path, &mut total)?;
            return Ok(WorkerBundle {
                main_module: name.clone(),
                modules: vec![WorkerModule {
                    name,
                    bytes,
                    content_type: ESM.into(),
                }],
            });
        }
        if !meta.is_dir() {
            return Err(bad(path, "not a regular file or a directory"));
        }
        let mut modules = Vec::new();
        walk(path, "", &mut modules, &mut total)?;
        if modules.is_empty() {
            return Err(bad(path, "the directory holds no module"));
        }
        modules.sort_by(|a, b| a.name.cmp(&b.name));
        let has = |n: &str| modules.iter().any(|m| m.name == n);
        let main_module = match main {
            Some(m) => m.to_string(),
            None if has("index.js") => "index.js".into(),
            None if has("index.mjs") => "index.mjs".into(),
            None => {
                return Err(bad(path, "no index.js or index.mjs: name the main module"));
            }
        };
        match modules.iter().find(|m| m.name == main_module) {
            None => {
                let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
                Err(bad(
                    path,
                    format!(
                        "the main module '{main_module}' is not in it (it holds {})",
                        names.join(", ")
                    ),
                ))
            }
            Some(m) if m.content_type != ESM => Err(bad(
                path,
                format!("the main module '{main_module}' is not a JavaScript module"),
            )),
            Some(_) => Ok(WorkerBundle {
                main_module,
                modules,
            }),
        }
    }

    /// Total bytes of the modules.
    pub fn size(&self) -> u64 {
        self.modules.iter().map(|m| m.bytes.len() as u64).sum()
    }

    /// The bundle as one file, so a directory of modules can be pinned like any artifact:
    /// [`ARCHIVE_MAGIC`], one JSON line (`main_module`, then each module's `name`,
    /// `content_type` and byte length, in order), then the modules' bytes back to back.
    /// Deterministic: the same modules give the same bytes (and so the same sha256).
    pub fn to_archive(&self) -> Vec<u8> {
        let manifest = serde_json::json!({
            "main_module": self.main_module,
            "modules": self.modules.iter().map(|m| serde_json::json!({
                "name": m.name, "content_type": m.content_type, "len": m.bytes.len(),
            })).collect::<Vec<_>>(),
        });
        let mut out = ARCHIVE_MAGIC.to_vec();
        out.extend_from_slice(manifest.to_string().as_bytes());
        out.push(b'\n');
        for m in &self.modules {
            out.extend_from_slice(&m.bytes);
        }
        out
    }

    /// Whether `bytes` is a bundle written by [`WorkerBundle::to_archive`].
    pub fn is_archive(bytes: &[u8]) -> bool {
        bytes.starts_with(ARCHIVE_MAGIC)
    }

    /// Reads back a bundle written by [`WorkerBundle::to_archive`]; `shown` names the file
    /// in errors.
    pub fn from_archive(bytes: &[u8], shown: &Path) -> Result<WorkerBundle> {
        let broken = |why: &str| bad(shown, format!("not a readable d1ops Worker bundle: {why}"));
        let rest = bytes
            .strip_prefix(ARCHIVE_MAGIC)
            .ok_or_else(|| broken("no header"))?;
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| broken("no manifest"))?;
        let manifest: Value =
            serde_json::from_slice(&rest[..end]).map_err(|e| broken(&e.to_string()))?;
        let main_module = manifest["main_module"]
            .as_str()
            .ok_or_else(|| broken("no main module"))?
            .to_string();
        let mut body = &rest[end + 1..];
        let mut modules = Vec::new();
        for m in manifest["modules"]
            .as_array()
            .ok_or_else(|| broken("no modules"))?
        {
            let len = m["len"]
                .as_u64()
                .ok_or_else(|| broken("a module without a length"))?;
            let len = usize::try_from(len).map_err(|_| broken("a module too large"))?;
            if body.len() < len {
                return Err(broken("truncated"));
            }
            let (bytes, tail) = body.split_at(len);
            body = tail;
            modules.push(WorkerModule {
                name: m["name"]
                    .as_str()
                    .ok_or_else(|| broken("a module without a name"))?
                    .into(),
                content_type: m["content_type"]
                    .as_str()
                    .ok_or_else(|| broken("a module without a content type"))?
                    .into(),
                bytes: bytes.to_vec(),
            });
        }
        if !body.is_empty() {
            return Err(broken("bytes after the last module"));
        }
        Ok(WorkerBundle {
            main_module,
            modules,
        })
    }

    /// The multipart body of an upload: `metadata` (JSON) then one part per module, each
    /// named and filed under the module's name. Returns the `Content-Type` (with its
    /// boundary) and the body.
    pub(super) fn multipart(&self, metadata: &Value, main: &str) -> Result<(String, Vec<u8>)> {
        if !self.modules.iter().any(|m| m.name == main) {
            return Err(WorkersError::Bundle {
                path: main.to_string(),
                message: "the main module is not one of the bundle's modules".into(),
            });
        }
        let meta = serde_json::to_vec(metadata).map_err(|e| WorkersError::Bundle {
            path: main.to_string(),
            message: format!("the metadata could not be written: {e}"),
        })?;
        let boundary = self.boundary(&meta);
        let mut body = Vec::with_capacity(self.size() as usize + meta.len() + 512);
        let mut part = |headers: String, bytes: &[u8]| {
            body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        };
        part(
            "Content-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json"
                .into(),
            &meta,
        );
        for m in &self.modules {
            part(
                format!(
                    "Content-Disposition: form-data; name=\"{0}\"; filename=\"{0}\"\r\nContent-Type: {1}",
                    m.name, m.content_type
                ),
                &m.bytes,
            );
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Ok((format!("multipart/form-data; boundary={boundary}"), body))
    }

    /// A boundary that occurs in no part.
    fn boundary(&self, meta: &[u8]) -> String {
        let mut salt = 0u32;
        loop {
            let mut h = Md5::new();
            h.update(salt.to_be_bytes());
            h.update(meta);
            for m in &self.modules {
                h.update(m.name.as_bytes());
                h.update(&m.bytes);
            }
            let b = format!("d1ops-{}", hex::encode(h.finalize()));
            let inside = |bytes: &[u8]| bytes.windows(b.len()).any(|w| w == b.as_bytes());
            if !inside(meta) && !self.modules.iter().any(|m| inside(&m.bytes)) {
                return b;
            }
            salt += 1;
        }
    }
}

/// Adds every module under `dir` (names prefixed by `prefix`).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<WorkerModule>, total: &mut u64) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(dir, e.to_string()))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            return Err(bad(&path, "the file name is not UTF-8"));
        };
        if file_name.contains(['"', '\r', '\n', '\\']) {
            return Err(bad(
                &path,
                "the file name holds a quote, backslash or line break",
            ));
        }
        let name = format!("{prefix}{file_name}");
        let kind = entry.file_type().map_err(|e| bad(&path, e.to_string()))?;
        if kind.is_dir() {
            walk(&path, &format!("{name}/"), out, total)?;
        } else if kind.is_file() {
            let Some(ct) = content_type(&name) else {
                return Err(bad(
                    &path,
                    "not a Worker module (.js, .mjs, .wasm or .map); remove it from the bundle",
                ));
            };
            let bytes = read_limited(&path, total)?;
            out.push(WorkerModule {
                name,
                bytes,
                content_type: ct.into(),
            });
        } else {
            return Err(bad(
                &path,
                "not a regular file (symlinks and special files are refused)",
            ));
        }
    }
    Ok(())
}

/// Reads a regular file, counting it against [`MAX_BUNDLE_BYTES`].
fn read_limited(path: &Path, total: &mut u64) -> Result<Vec<u8>> {
    let too_big = || {
        bad(
            path,
            format!(
                "the bundle is larger than {} bytes (the Workers Paid limit)",
                MAX_BUNDLE_BYTES
            ),
        )
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| bad(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(bad(path, "not a regular file"));
    }
    let room = MAX_BUNDLE_BYTES.saturating_sub(*total);
    if meta.len() > room {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(room + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(path, e.to_string()))?;
    if bytes.len() as u64 > room {
        return Err(too_big());
    }
    *total += bytes.len() as u64;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_reads_back_as_the_same_bundle() {
        let bundle = WorkerBundle {
            main_module: "index.js".into(),
            modules: vec![
                WorkerModule {
                    name: "index.js".into(),
                    bytes: b"import x from './lib/x.js';\nexport default x;\n".to_vec(),
                    content_type: ESM.into(),
                },
                WorkerModule {
                    name: "lib/x.js".into(),
                    bytes: b"export default {}".to_vec(),
                    content_type: ESM.into(),
                },
            ],
        };
        let bytes = bundle.to_archive();
        assert!(WorkerBundle::is_archive(&bytes));
        assert_eq!(bytes, bundle.to_archive(), "deterministic");
        let back = WorkerBundle::from_archive(&bytes, Path::new("x")).unwrap();
        assert_eq!(back, bundle);
        let cut = &bytes[..bytes.len() - 3];
        assert!(WorkerBundle::from_archive(cut, Path::new("x")).is_err());
    }

    #[test]
    fn multipart_names_each_part_and_ends_with_the_closing_boundary() {
        let bundle = WorkerBundle {
            main_module: "index.js".into(),
            modules: vec![WorkerModule {
                name: "index.js".into(),
                bytes: b"export default {}".to_vec(),
                content_type: ESM.into(),
            }],
        };
        let (ct, body) = bundle
            .multipart(&serde_json::json!({"main_module": "index.js"}), "index.js")
            .unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
        assert!(text.contains("name=\"metadata\""));
        assert!(text.contains(
            "name=\"index.js\"; filename=\"index.js\"\r\nContent-Type: application/javascript+module"
        ));
        assert!(
            bundle
                .multipart(&serde_json::json!({}), "other.js")
                .is_err()
        );
    }
}
