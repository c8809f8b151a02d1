//! Time Travel, export and import: copies of each database file named by bookmarks, the
//! polling export and import tasks, and the presigned R2 URLs they hand out (served on this
//! same server, outside `/client/v4`).
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Fault;
use super::dump::{DumpOptions, dump};
use super::filter::parse_time;
use super::http::{Reject, Req, Resp, success};
use super::sql;
use super::state::State;

/// A copy of a database file as it was at `at`.
pub struct Snapshot {
    pub db: String,
    pub bookmark: String,
    pub at: DateTime<Utc>,
    pub path: PathBuf,
    pub hash: String,
}

struct ExportTask {
    db: String,
    bookmark: String,
    answered: u32,
    options: DumpOptions,
    filename: String,
}

struct ImportTask {
    db: String,
    at_bookmark: String,
    answered: u32,
    outcome: Result<Value, String>,
}

struct Upload {
    db: String,
    filename: String,
    etag: String,
    body: Option<Vec<u8>>,
}

#[derive(Default)]
pub struct Travel {
    pub snapshots: Vec<Snapshot>,
    seq: u64,
    exports: Vec<ExportTask>,
    imports: Vec<ImportTask>,
    uploads: Vec<Upload>,
}

impl Travel {
    pub fn forget(&mut self, db: &str) {
        for s in self.snapshots.iter().filter(|s| s.db == db) {
            let _ = std::fs::remove_file(&s.path);
        }
        self.snapshots.retain(|s| s.db != db);
        self.exports.retain(|t| t.db != db);
        self.imports.retain(|t| t.db != db);
        self.uploads.retain(|u| u.db != db);
    }
}

/// A Unix time (seconds or milliseconds) or an RFC 3339 time.
fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(n) = raw.parse::<i64>() {
        let ms = if raw.len() > 11 { n } else { n * 1000 };
        return Utc.timestamp_millis_opt(ms).single();
    }
    // A client that does not percent-encode `+` sends a space.
    parse_time(raw).or_else(|| parse_time(&raw.replace(' ', "+")))
}

impl State {
    /// The bookmark of the database's current content, copying the file when it changed
    /// since the last copy.
    pub fn snapshot(&mut self, uuid: &str) -> Result<String, String> {
        let bytes = std::fs::read(self.db_path(uuid)).map_err(|e| e.to_string())?;
        let hash = hex::encode(Sha256::digest(&bytes));
        if let Some(last) = self.travel.snapshots.iter().rev().find(|s| s.db == uuid)
            && last.hash == hash
        {
            return Ok(last.bookmark.clone());
        }
        self.travel.seq += 1;
        let now = Utc::now();
        let bookmark = format!(
            "{:08x}-{:08x}-{:08x}-{}",
            self.travel.seq,
            (now.timestamp() as u64) & 0xffff_ffff,
            now.timestamp_subsec_millis(),
            &hash[..32]
        );
        let path = self
            .root
            .join("snapshots")
            .join(format!("{uuid}-{}.sqlite3", self.travel.seq));
        std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
        self.travel.snapshots.push(Snapshot {
            db: uuid.to_string(),
            bookmark: bookmark.clone(),
            at: now,
            path,
            hash,
        });
        Ok(bookmark)
    }

    /// The current bookmark, or the latest at or before `timestamp`.
    pub fn bookmark_at(&mut self, uuid: &str, timestamp: Option<&str>) -> Result<String, Reject> {
        let current = self.snapshot(uuid).map_err(Reject::internal)?;
        let Some(raw) = timestamp else {
            return Ok(current);
        };
        let at = parse_timestamp(raw)
            .ok_or_else(|| Reject::bad(format!("Invalid timestamp '{raw}'")))?;
        self.travel
            .snapshots
            .iter()
            .rev()
            .find(|s| s.db == uuid && s.at <= at)
            .map(|s| s.bookmark.clone())
            .ok_or_else(|| Reject::bad(format!("No bookmark exists at or before {raw}")))
    }

    /// Copies the state named by `bookmark` (or current at `timestamp`) back.
    pub fn restore(
        &mut self,
        uuid: &str,
        bookmark: Option<&str>,
        timestamp: Option<&str>,
    ) -> Result<Resp, Reject> {
        let target = match (bookmark, timestamp) {
            (Some(b), _) => b.to_string(),
            (None, Some(_)) => self.bookmark_at(uuid, timestamp)?,
            (None, None) => return Err(Reject::bad("Provide either a bookmark or a timestamp")),
        };
        let source = self
            .travel
            .snapshots
            .iter()
            .find(|s| s.db == uuid && s.bookmark == target)
            .map(|s| s.path.clone())
            .ok_or_else(|| Reject::bad(format!("The bookmark {target} does not exist")))?;
        let previous = self.snapshot(uuid).map_err(Reject::internal)?;
        std::fs::copy(&source, self.db_path(uuid)).map_err(Reject::internal)?;
        let bookmark = self.snapshot(uuid).map_err(Reject::internal)?;
        let size = self.file_size(uuid);
        self.analytics.record_storage(uuid, Utc::now(), size);
        Ok(Resp::json(
            200,
            &success(json!({
                "bookmark": bookmark,
                "previous_bookmark": previous,
                "message": "Database restored successfully",
            })),
        ))
    }

    fn signed_url(&self, kind: &str, filename: &str) -> String {
        format!(
            "{}/r2/{kind}/{filename}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=contract%2Fauto%2Fs3%2Faws4_request&X-Amz-Date={}&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
            self.origin,
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            self.signature(kind, filename)
        )
    }

    fn signature(&self, kind: &str, filename: &str) -> String {
        hex::encode(Sha256::digest(
            format!("{}/{kind}/{filename}", self.secret).as_bytes(),
        ))
    }

    /// `POST …/export`.
    pub fn export(&mut self, uuid: &str, body: &Value) -> Result<Resp, Reject> {
        if body.get("output_format").and_then(Value::as_str) != Some("polling") {
            return Err(Reject::bad("output_format must be \"polling\""));
        }
        let i = match body.get("current_bookmark").and_then(Value::as_str) {
            Some(b) => self
                .travel
                .exports
                .iter()
                .position(|t| t.db == uuid && t.bookmark == b)
                .ok_or_else(|| Reject::bad(format!("No export is running at bookmark {b}")))?,
            None => {
                let opts = body.get("dump_options").cloned().unwrap_or(Value::Null);
                let flag = |k: &str| opts.get(k).and_then(Value::as_bool).unwrap_or(false);
                let options = DumpOptions {
                    no_data: flag("no_data"),
                    no_schema: flag("no_schema"),
                    tables: opts
                        .get("tables")
                        .and_then(Value::as_array)
                        .map(|t| {
                            t.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let bookmark = self.snapshot(uuid).map_err(Reject::internal)?;
                self.travel
                    .exports
                    .retain(|t| t.db != uuid || t.bookmark != bookmark);
                self.travel.exports.push(ExportTask {
                    db: uuid.to_string(),
                    filename: format!("{uuid}-{bookmark}.sql"),
                    bookmark,
                    answered: 0,
                    options,
                });
                self.travel.exports.len() - 1
            }
        };
        let polls = self.settings.export_polls;
        let task = &mut self.travel.exports[i];
        let mut out = json!({
            "success": true,
            "type": "export",
            "at_bookmark": task.bookmark,
            "messages": [],
        });
        if task.answered < polls {
            if task.answered == 0 {
                out["messages"] = json!([format!("Generating {}", task.filename)]);
            }
            task.answered += 1;
            out["status"] = json!("active");
            return Ok(Resp::json(202, &success(out)));
        }
        let (filename, options, bookmark) = (
            task.filename.clone(),
            task.options.clone(),
            task.bookmark.clone(),
        );
        let source = self
            .travel
            .snapshots
            .iter()
            .find(|s| s.db == uuid && s.bookmark == bookmark)
            .map(|s| s.path.clone())
            .ok_or_else(|| Reject::internal("the export's copy is gone"))?;
        match dump(&source, &options) {
            Ok(text) => {
                std::fs::write(self.root.join("exports").join(&filename), text)
                    .map_err(Reject::internal)?;
                out["status"] = json!("complete");
                out["messages"] = json!([
                    "Uploaded part 1",
                    format!("Finished uploading {filename} in 1 parts.")
                ]);
                out["result"] = json!({
                    "filename": filename,
                    "signed_url": self.signed_url("exports", &filename),
                });
            }
            Err(e) => {
                out["success"] = json!(false);
                out["status"] = json!("error");
                out["error"] = json!(e);
            }
        }
        Ok(Resp::json(200, &success(out)))
    }

    /// `POST …/import`: `init`, `ingest` or `poll`.
    pub fn import(&mut self, uuid: &str, body: &Value) -> Result<Resp, Reject> {
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| Reject::bad(format!("{k} is required")))
        };
        let i = match body.get("action").and_then(Value::as_str) {
            Some("init") => {
                let etag = text("etag")?;
                let digest = hex::encode(Sha256::digest(format!("{uuid}/{etag}").as_bytes()));
                let filename = format!("{uuid}-{}.sql", &digest[..32]);
                self.travel.uploads.retain(|u| u.filename != filename);
                self.travel.uploads.push(Upload {
                    db: uuid.to_string(),
                    filename: filename.clone(),
                    etag,
                    body: None,
                });
                let result = json!({
                    "success": true,
                    "type": "import",
                    "filename": filename,
                    "upload_url": self.signed_url("uploads", &filename),
                });
                return Ok(Resp::json(200, &success(result)));
            }
            Some("ingest") => self.ingest(uuid, &text("etag")?, &text("filename")?)?,
            Some("poll") => {
                let b = text("current_bookmark")?;
                self.travel
                    .imports
                    .iter()
                    .position(|t| t.db == uuid && t.at_bookmark == b)
                    .ok_or_else(|| Reject::bad(format!("No import is running at bookmark {b}")))?
            }
            _ => return Err(Reject::bad("action must be init, ingest or poll")),
        };
        let polls = self.settings.import_polls;
        let task = &mut self.travel.imports[i];
        let mut out = json!({
            "success": true,
            "type": "import",
            "at_bookmark": task.at_bookmark,
            "messages": [],
        });
        if task.answered < polls {
            task.answered += 1;
            out["status"] = json!("active");
            out["messages"] = json!(["Importing SQL"]);
            return Ok(Resp::json(200, &success(out)));
        }
        match &task.outcome {
            Ok(result) => {
                out["status"] = json!("complete");
                out["result"] = result.clone();
            }
            Err(e) => {
                out["success"] = json!(false);
                out["status"] = json!("error");
                out["error"] = json!(e);
            }
        }
        Ok(Resp::json(200, &success(out)))
    }

    /// Runs an uploaded file in one transaction; the index of its task.
    fn ingest(&mut self, uuid: &str, etag: &str, filename: &str) -> Result<usize, Reject> {
        let upload = self
            .travel
            .uploads
            .iter()
            .find(|u| u.db == uuid && u.filename == filename)
            .ok_or_else(|| Reject::bad(format!("No upload named {filename} was started")))?;
        if upload.etag != etag {
            return Err(Reject::bad("The etag does not match the one given at init"));
        }
        let Some(bytes) = &upload.body else {
            return Err(Reject::bad(format!("{filename} has not been uploaded")));
        };
        let stmts: Vec<sql::Stmt> = sql::split(&String::from_utf8_lossy(bytes))
            .into_iter()
            .map(|s| sql::Stmt {
                sql: s,
                params: Vec::new(),
            })
            .collect();
        let fail: Vec<(String, String)> = self
            .faults
            .iter()
            .filter_map(|f| match f {
                Fault::FailStatement {
                    sql_contains,
                    message,
                } => Some((sql_contains.clone(), message.clone())),
                _ => None,
            })
            .collect();
        let at_bookmark = self.snapshot(uuid).map_err(Reject::internal)?;
        let outcome = match sql::run_batch(&self.db_path(uuid), &stmts, &fail) {
            Ok(ran) => {
                let final_bookmark = self.snapshot(uuid).map_err(Reject::internal)?;
                let size = self.file_size(uuid);
                self.analytics.record_storage(uuid, Utc::now(), size);
                Ok(json!({
                    "final_bookmark": final_bookmark,
                    "num_queries": ran.len(),
                    "meta": {
                        "served_by": "v3-prod",
                        "duration": ran.iter().map(|r| r.duration_ms).sum::<f64>(),
                        "changes": ran.iter().map(|r| r.changes).sum::<u64>(),
                        "last_row_id": ran.last().map_or(0, |r| r.last_row_id),
                        "changed_db": ran.iter().any(|r| r.changed_db),
                        "size_after": size,
                        "rows_read": ran.iter().map(|r| r.rows_read).sum::<u64>(),
                        "rows_written": ran.iter().map(|r| r.rows_written).sum::<u64>(),
                    },
                }))
            }
            Err(e) => Err(e.d1_message()),
        };
        self.travel
            .imports
            .retain(|t| t.db != uuid || t.at_bookmark != at_bookmark);
        self.travel.imports.push(ImportTask {
            db: uuid.to_string(),
            at_bookmark,
            answered: 0,
            outcome,
        });
        Ok(self.travel.imports.len() - 1)
    }

    /// `GET /r2/exports/{file}` and `PUT /r2/uploads/{file}` (presigned, no token).
    pub fn r2(&mut self, req: &Req) -> Resp {
        let Some((kind, filename)) = req
            .path
            .strip_prefix("/r2/")
            .and_then(|p| p.split_once('/'))
        else {
            return Resp::xml(404, "NoSuchKey", "The specified key does not exist.");
        };
        if req.auth.is_some() {
            return Resp::xml(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
            );
        }
        if req.param("X-Amz-Signature").as_deref() != Some(self.signature(kind, filename).as_str())
        {
            return Resp::xml(403, "AccessDenied", "Access Denied");
        }
        match (req.method.as_str(), kind) {
            ("GET", "exports") => match std::fs::read(self.root.join("exports").join(filename)) {
                Ok(body) => Resp {
                    status: 200,
                    headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                    body,
                },
                Err(_) => Resp::xml(404, "NoSuchKey", "The specified key does not exist."),
            },
            ("PUT", "uploads") => {
                let Some(u) = self
                    .travel
                    .uploads
                    .iter_mut()
                    .find(|u| u.filename == filename)
                else {
                    return Resp::xml(403, "AccessDenied", "Access Denied");
                };
                u.body = Some(req.body.clone());
                let etag = format!("\"{}\"", u.etag);
                Resp {
                    status: 200,
                    headers: vec![("etag".into(), etag)],
                    body: Vec::new(),
                }
            }
            _ => Resp::xml(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed",
            ),
        }
    }
}
