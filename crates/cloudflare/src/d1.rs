//! D1's REST calls, typed: databases, `/query`, `/raw`, Time Travel, export and import.
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::client::{Call, Client, Result};
use super::error::{CloudflareError, Permission};

/// A D1 database as the API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub uuid: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub num_tables: Option<u64>,
    #[serde(default)]
    pub file_size: Option<u64>,
    /// Read replication (`{mode: "auto" | "disabled"}`); only `get` answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_replication: Option<ReadReplication>,
}

/// A database's read-replication setting as D1 reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReplication {
    /// `auto` (replicas serve reads near the caller) or `disabled` (the primary serves all).
    #[serde(default)]
    pub mode: String,
}

/// One statement with positional parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    pub fn with(sql: impl Into<String>, params: Vec<Value>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// `meta` of one statement's result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub duration: f64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub changes: u64,
    pub last_row_id: i64,
    pub changed_db: bool,
    pub size_after: u64,
    pub timings: Option<Timings>,
    /// The region of the instance that answered (`WEUR`, …).
    pub served_by_region: Option<String>,
    /// Whether the primary answered (not a read replica).
    pub served_by_primary: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Timings {
    pub sql_duration_ms: Option<f64>,
}

impl Meta {
    /// Time spent running SQL, in milliseconds (`timings.sql_duration_ms`, else `duration`).
    pub fn sql_ms(&self) -> f64 {
        self.timings
            .as_ref()
            .and_then(|t| t.sql_duration_ms)
            .unwrap_or(self.duration)
    }
}

/// One result of `/query`: rows as objects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueryResult {
    pub results: Vec<Map<String, Value>>,
    pub success: bool,
    pub meta: Meta,
}

/// One result of `/raw`: column names and rows as arrays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawResult {
    pub results: RawRows,
    pub success: bool,
    pub meta: Meta,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// What a Time Travel restore answered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RestoreResult {
    pub bookmark: Option<String>,
    pub previous_bookmark: Option<String>,
    pub message: Option<String>,
}

/// Answer of an export or import step (the two share their polling shape).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Progress {
    at_bookmark: Option<String>,
    status: Option<String>,
    error: Option<String>,
    success: Option<bool>,
    upload_url: Option<String>,
    filename: Option<String>,
    result: Option<Value>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOutcome {
    pub final_bookmark: Option<String>,
    pub num_queries: Option<u64>,
}

/// What to export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DumpOptions {
    pub no_data: bool,
    pub no_schema: bool,
    pub tables: Vec<String>,
}

/// Page size of list calls.
const PER_PAGE: u64 = 100;
/// How long an export or import may keep answering "active".
const POLL_DEADLINE: Duration = Duration::from_secs(30 * 60);

impl Client {
    fn db_path(&self, id: &str, rest: &str) -> String {
        self.account_path(&format!("/d1/database/{id}{rest}"))
    }

    /// Every database of the account (all pages), or those whose name contains `name`.
    pub fn list_databases(&self, name: Option<&str>) -> Result<Vec<Database>> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let mut call = Call::new(
                "list D1 databases",
                Method::GET,
                self.account_path("/d1/database"),
                Permission::D1Read,
            )
            .query("page", page)
            .query("per_page", PER_PAGE);
            if let Some(n) = name {
                call = call.query("name", n);
            }
            let env = self.send::<Vec<Database>>(&call)?;
            let got = env.result.unwrap_or_default();
            let n = got.len() as u64;
            out.extend(got);
            let info = env.result_info.unwrap_or_default();
            let total = info.total_count;
            let more = match (total, info.total_pages) {
                (Some(total), _) => (out.len() as u64) < total,
                (None, Some(pages)) => page < pages,
                (None, None) => n == PER_PAGE,
            };
            if !more || n == 0 {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// The database named exactly `name`.
    pub fn find_database(&self, name: &str) -> Result<Option<Database>> {
        Ok(self
            .list_databases(Some(name))?
            .into_iter()
            .find(|d| d.name == name))
    }

    pub fn get_database(&self, id: &str) -> Result<Database> {
        let call = Call::new(
            format!("read database {id}"),
            Method::GET,
            self.db_path(id, ""),
            Permission::D1Read,
        );
        required(self.send::<Database>(&call)?.result, &call)
    }

    pub fn create_database(&self, name: &str) -> Result<Database> {
        let call = Call::new(
            format!("create database {name}"),
            Method::POST,
            self.account_path("/d1/database"),
            Permission::D1Edit,
        )
        .body(json!({ "name": name }));
        required(self.send::<Database>(&call)?.result, &call)
    }

    pub fn delete_database(&self, id: &str) -> Result<()> {
        let call = Call::new(
            format!("delete database {id}"),
            Method::DELETE,
            self.db_path(id, ""),
            Permission::D1Edit,
        );
        self.send::<Value>(&call).map(|_| ())
    }

    /// Runs statements through `/query`; several go as one `batch` (one transaction).
    /// `read_only` batches may be retried after a 5xx.
    pub fn query(
        &self,
        id: &str,
        statements: &[Statement],
        read_only: bool,
    ) -> Result<Vec<QueryResult>> {
        self.run_sql(id, "/query", statements, read_only)
    }

    /// Runs statements through `/raw` (rows as arrays, column order kept).
    pub fn raw(
        &self,
        id: &str,
        statements: &[Statement],
        read_only: bool,
    ) -> Result<Vec<RawResult>> {
        self.run_sql(id, "/raw", statements, read_only)
    }

    fn run_sql<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        endpoint: &str,
        statements: &[Statement],
        read_only: bool,
    ) -> Result<Vec<T>> {
        let call = Call::new(
            format!("run SQL on database {id}"),
            Method::POST,
            self.db_path(id, endpoint),
            Permission::D1Edit,
        )
        .body(body_for(statements))
        .idempotent(read_only);
        self.send::<Vec<T>>(&call)
            .map(|e| e.result.unwrap_or_default())
            .map_err(|e| with_statement(e, statements))
    }

    /// A Time Travel bookmark for now (or for `at`, an RFC 3339 time).
    pub fn bookmark(&self, id: &str, at: Option<&str>) -> Result<String> {
        let mut call = Call::new(
            format!("take a Time Travel bookmark of database {id}"),
            Method::GET,
            self.db_path(id, "/time_travel/bookmark"),
            Permission::D1Read,
        );
        if let Some(t) = at {
            call = call.query("timestamp", t);
        }
        let v = required(self.send::<Value>(&call)?.result, &call)?;
        v.get("bookmark")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| unexpected(&call, "no bookmark in the answer"))
    }

    /// Puts database `id` back to `bookmark`.
    pub fn restore_bookmark(&self, id: &str, bookmark: &str) -> Result<RestoreResult> {
        let call = Call::new(
            format!("restore database {id} to bookmark {bookmark}"),
            Method::POST,
            self.db_path(id, "/time_travel/restore"),
            Permission::D1Edit,
        )
        .query("bookmark", bookmark);
        Ok(self
            .send::<RestoreResult>(&call)?
            .result
            .unwrap_or_default())
    }

    /// Exports database `id` as SQL (polling until done) and downloads the dump.
    pub fn export_sql(&self, id: &str, options: &DumpOptions) -> Result<String> {
        let mut poll = Poller::new(format!("export database {id}"));
        let mut body = json!({ "output_format": "polling" });
        if options.no_data || options.no_schema || !options.tables.is_empty() {
            body["dump_options"] = json!({
                "no_data": options.no_data,
                "no_schema": options.no_schema,
                "tables": options.tables,
            });
        }
        loop {
            let call = Call::new(
                poll.operation.clone(),
                Method::POST,
                self.db_path(id, "/export"),
                Permission::D1Edit,
            )
            .body(body.clone())
            .idempotent(true);
            let p = required(self.send::<Progress>(&call)?.result, &call)?;
            if poll.complete(&p)? {
                let url = p
                    .result
                    .as_ref()
                    .and_then(|r| r.get("signed_url"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected(&call, "the finished export has no signed_url"))?;
                let bytes = self.download(&format!("download the export of {id}"), url)?;
                return String::from_utf8(bytes)
                    .map_err(|_| poll.failed("the export is not UTF-8 text"));
            }
            if let Some(b) = p.at_bookmark {
                body["current_bookmark"] = Value::String(b);
            }
            poll.pause()?;
        }
    }

    /// Imports `sql` into database `id`: init → upload → ingest → poll until complete.
    pub fn import_sql(&self, id: &str, sql: &str) -> Result<ImportOutcome> {
        let operation = format!("import into database {id}");
        let mut poll = Poller::new(operation.clone());
        let etag = hex::encode(Md5::digest(sql.as_bytes()));
        let path = self.db_path(id, "/import");
        let step = |body: Value| -> Result<Progress> {
            let call = Call::new(
                operation.clone(),
                Method::POST,
                path.clone(),
                Permission::D1Edit,
            )
            .body(body);
            required(self.send::<Progress>(&call)?.result, &call)
        };
        let init = step(json!({ "action": "init", "etag": etag }))?;
        let upload_url = init
            .upload_url
            .ok_or_else(|| poll.failed("the import did not give an upload URL"))?;
        let filename = init.filename.unwrap_or_default();
        self.upload(
            &format!("upload the import for {id}"),
            &upload_url,
            sql.as_bytes().to_vec(),
        )?;
        let mut p = step(json!({ "action": "ingest", "etag": etag, "filename": filename }))?;
        while !poll.complete(&p)? {
            poll.pause()?;
            let mut body = json!({ "action": "poll" });
            if let Some(b) = &p.at_bookmark {
                body["current_bookmark"] = Value::String(b.clone());
            }
            let next = step(body)?;
            p = Progress {
                at_bookmark: next.at_bookmark.or(p.at_bookmark),
                ..next
            };
        }
        let r = p.result.unwrap_or(Value::Null);
        Ok(ImportOutcome {
            final_bookmark: r
                .get("final_bookmark")
                .and_then(Value::as_str)
                .map(str::to_string),
            num_queries: r.get("num_queries").and_then(Value::as_u64),
        })
    }
}

/// Paces the polls of an export or import and gives up after [`POLL_DEADLINE`].
struct Poller {
    operation: String,
    started: Instant,
    wait: Duration,
}

impl Poller {
    fn new(operation: String) -> Poller {
        Poller {
            operation,
            started: Instant::now(),
            wait: Duration::from_millis(100),
        }
    }

    /// Whether the step finished; `Err` when it reports a failure.
    fn complete(&self, p: &Progress) -> Result<bool> {
        match p.status.as_deref() {
            Some("complete") => Ok(true),
            Some("error") => Err(self.failed(p.error.as_deref().unwrap_or("it failed"))),
            _ if p.success == Some(false) => {
                Err(self.failed(p.error.as_deref().unwrap_or("it failed")))
            }
            _ => Ok(false),
        }
    }

    /// Sleeps before the next poll (100 ms, doubling up to 2 s).
    fn pause(&mut self) -> Result<()> {
        if self.started.elapsed() > POLL_DEADLINE {
            return Err(self.failed(&format!(
                "still running after {} minutes",
                POLL_DEADLINE.as_secs() / 60
            )));
        }
        std::thread::sleep(self.wait);
        self.wait = (self.wait * 2).min(Duration::from_secs(2));
        Ok(())
    }

    fn failed(&self, message: &str) -> CloudflareError {
        CloudflareError::Incomplete {
            operation: self.operation.clone(),
            message: message.to_string(),
        }
    }
}

fn body_for(statements: &[Statement]) -> Value {
    match statements {
        [one] => json!({ "sql": one.sql, "params": one.params }),
        many => json!({ "batch": many }),
    }
}

/// A one-statement SQL error names its statement.
fn with_statement(e: CloudflareError, statements: &[Statement]) -> CloudflareError {
    match (e, statements) {
        (
            CloudflareError::Sql {
                message,
                statement: None,
            },
            [one],
        ) => CloudflareError::Sql {
            message,
            statement: Some(one.sql.clone()),
        },
        (e, _) => e,
    }
}

fn required<T>(v: Option<T>, call: &Call) -> Result<T> {
    v.ok_or_else(|| unexpected(call, "the answer has no result"))
}

fn unexpected(call: &Call, message: &str) -> CloudflareError {
    CloudflareError::Api {
        operation: call.operation.clone(),
        status: 200,
        code: None,
        message: message.into(),
    }
}
