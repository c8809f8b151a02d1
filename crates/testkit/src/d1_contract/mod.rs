//! A stand-in for Cloudflare's D1 REST API and the D1 datasets of its GraphQL Analytics API,
//! for integration tests. It listens on loopback, answers in the shapes of Cloudflare's
//! documented examples (checked in under the workspace root's `tests/fixtures/cloudflare/` and
//! `tests/fixtures/cloudflare/d1/`, see the README there) and runs every statement on a real
//! SQLite file, so lifecycle assertions hold. Test code only: it owns no part of d1ops and
//! must not use d1ops' own executor (it is what d1ops is checked against).
//!
//! Use it as `d1ops_testkit::d1_contract` (a dev-dependency of the root package); its own
//! tests are `crates/testkit/tests/d1_contract_server.rs`.
//!
//! # Endpoints (all under `/client/v4`, v4 envelope `{success, errors, messages, result}`)
//!
//! | method and path | permission | answer |
//! |---|---|---|
//! | `GET /accounts/{a}/d1/database?page=&per_page=&name=` | read | `[{uuid, name, created_at, version, jurisdiction}]` + `result_info {page, per_page, count, total_count}`; `per_page` defaults to 1000, clamped to 1..=10000; `name` matches as a substring |
//! | `POST /accounts/{a}/d1/database` `{name}` | edit | the database object `{uuid, name, created_at, version: "production", num_tables, file_size, jurisdiction: null, read_replication: {mode: "disabled"}}` |
//! | `GET /accounts/{a}/d1/database/{id}` | read | the database object; `file_size` is the file's size, `num_tables` leaves out `_cf_*` and `sqlite_*`, `read_replication.mode` is `disabled` unless [`D1Server::set_read_replication`] set it |
//! | `DELETE /accounts/{a}/d1/database/{id}` | edit | `result: null` |
//! | `POST …/{id}/query` `{sql, params}` or `{batch: [{sql, params}]}` | edit | one `{results, success, meta}` per statement (rows as objects) |
//! | `POST …/{id}/raw` (same bodies) | edit | one `{results: {columns, rows}, success, meta}` per statement |
//! | `GET …/{id}/time_travel/bookmark[?timestamp=]` | read | `{bookmark}`: the current one, or the latest at or before the timestamp (RFC 3339 or Unix seconds) |
//! | `POST …/{id}/time_travel/restore?bookmark=` or `?timestamp=` | edit | `{bookmark, previous_bookmark, message}` |
//! | `POST …/{id}/export` `{output_format: "polling", current_bookmark?, dump_options?}` | edit | `{success, type: "export", at_bookmark, status, messages[, result: {filename, signed_url}][, error]}`; HTTP 202 while `status` is `"active"` (as wrangler's own mocks show), 200 once `"complete"` or `"error"` |
//! | `POST …/{id}/import` `{action: "init", etag}` | edit | `{success, type: "import", filename, upload_url}` |
//! | `POST …/{id}/import` `{action: "ingest", etag, filename}` / `{action: "poll", current_bookmark}` | edit | `{success, type: "import", at_bookmark, status, messages[, result: {final_bookmark, num_queries, meta}][, error]}`, HTTP 200 |
//! | `POST /accounts/{a}/workers/scripts/{s}/versions` multipart (`metadata` JSON + one part per module) | any | the version `{id, number, metadata {author_email, author_id, created_on, modified_on, source, has_preview, hasPreview}, annotations {workers/message, workers/tag, workers/triggered_by: "version_upload"}, resources {bindings, script {etag, handlers, last_deployed_from}, script_runtime {compatibility_date, compatibility_flags, usage_model, limits}}, startup_time_ms}`; D1 bindings answered with both `database_id` and (deprecated) `id` |
//! | `GET …/workers/scripts/{s}/versions?page=&per_page=` | any | `{items: [{id, number, metadata, annotations}]}`, newest first, + `result_info {page, per_page, count, total_count}`; `per_page` defaults to 10, clamped to 1..=100 |
//! | `GET …/workers/scripts/{s}/versions/{id}` | any | the version (as uploaded) |
//! | `POST …/workers/scripts/{s}/deployments` `{strategy: "percentage", versions: [{version_id, percentage}], annotations?}` | any | `{id, created_on, source: "api", strategy, author_email, versions[, annotations {workers/message}]}` |
//! | `GET …/workers/scripts/{s}/deployments` | any | `{deployments: [deployment]}`, the live one first |
//! | `PUT /accounts/{a}/workers/scripts/{s}` multipart | any | creates the Worker if needed, adds a version (`workers/triggered_by: "upload"`) and a 100% deployment; answers the SDK's `ScriptUpdateResponse` subset `{id: <script>, created_on, modified_on, etag, has_assets, has_modules, logpush, startup_time_ms, usage_model, compatibility_date, compatibility_flags, handlers}` (no version id) |
//! | `GET …/workers/scripts/{s}/subdomain` | any | `{enabled: true, previews_enabled: true}` |
//! | `GET /accounts/{a}/workers/subdomain` | any | `{subdomain}` once [`D1Server::set_workers_subdomain`] named one, else 404 code 10007 |
//! | `POST /graphql` `{query, variables}` | analytics | `{data: {viewer: {accounts: [{<dataset>: [groups]}]}}, errors: null}` |
//!
//! Outside `/client/v4` (no token expected, like R2 presigned URLs):
//! `GET /r2/exports/{file}?X-Amz-…&X-Amz-Signature=…` answers the export's SQL and
//! `PUT /r2/uploads/{file}?…` stores an import, answering `ETag: "<etag given at init>"`
//! (quoted, as R2 does; the server never checks the MD5). Both refuse a wrong signature with
//! 403 `AccessDenied` and a request that also carries `Authorization` with 400
//! `InvalidArgument` ("Only one auth mechanism allowed"), in S3's XML error format.
//! [`D1Server::requests`] records whether each request carried `Authorization`. A
//! [`Fault::Status`] on an `/r2/` path answers S3's XML (`SlowDown` for 429/503, else
//! `InternalError`).
//!
//! Workers (`workers.rs`): scripts, versions and deployments live in memory; the module
//! parts of each version are kept as sent ([`D1Server::version_modules`]). The server does
//! not model Workers permissions (any valid token may call these) nor run the Worker.
//! Faults ([`Fault::Status`], [`Fault::DelayAnswer`]) apply to these paths like any other.
//! [`D1Server::live_deployment`], [`D1Server::worker_versions`] and
//! [`D1Server::version_d1_bindings`] let tests read what was deployed.
//!
//! # SQL
//!
//! A request's statements (each `sql` split on the `;` that end complete statements) run in
//! one transaction on a fresh connection with `PRAGMA foreign_keys = ON`; `PRAGMA
//! defer_foreign_keys = on` works and a violation at COMMIT fails the request. The first
//! failure rolls everything back. Limits, as D1 sets them: 100,000 bytes per statement
//! (`statement too long: SQLITE_TOOBIG`), 100 bound parameters (`too many SQL variables`).
//! `meta` is `{served_by: "v3-prod", served_by_region: "WEUR", served_by_colo: "AMS",
//! served_by_primary, timings: {sql_duration_ms}, duration, changes (total_changes delta),
//! last_row_id, changed_db, size_after (the file's size after COMMIT), rows_read, rows_written,
//! total_attempts: 1}`. `rows_read` is approximate: full-scan and automatic-index steps, at
//! least the rows returned (or changed); `rows_written` is the rows changed.
//! Every database holds D1's internal table `_cf_KV` from birth.
//!
//! # Errors
//!
//! | case | HTTP | code | message | source |
//! |---|---|---|---|---|
//! | SQL error | 400 | 7500 | `<SQLite message>[ at offset N]: SQLITE_<PRIMARY CODE>`, `result: []` | live API (existing `sql_error.json`) |
//! | `BEGIN`/`COMMIT`/`END`/`ROLLBACK`/`SAVEPOINT`/`RELEASE`/`ATTACH`/`DETACH` | 400 | 7500 | `not authorized: SQLITE_AUTH` | D1 answers such statements "not authorized" (drizzle-orm#1270) |
//! | more statements than [`D1Server::set_max_batch_statements`] | 400 | 7500 | `too many statements in one request: N (the limit is M): SQLITE_TOOBIG` | plausible choice |
//! | wrong number of parameters | 400 | 7500 | `Wrong number of parameter bindings for SQL query.: SQLITE_RANGE` | plausible choice |
//! | several statements in one `sql` with `params` | 400 | 7500 | `params were given for SQL holding several statements: SQLITE_RANGE` | plausible choice |
//! | [`Fault::FailStatement`] | 400 | 7500 | `<message>: SQLITE_ERROR` (unless the message already names a `SQLITE_` code) | — |
//! | Worker script does not exist (every `…/workers/scripts/{s}/…` call but `PUT`) | 404 | 10007 | `This Worker does not exist on your account.` | code as wrangler handles it; message as briefed (issue 14) |
//! | upload without `metadata` or `main_module`, main module not among the parts or not `application/javascript+module`, a binding without type or name, a D1 binding (`database_id` or `id`) naming no database of the server; a deployment whose strategy is not `percentage`, with an unknown version, a percentage outside 0..=100, a version twice, not one or two versions, or percentages not adding up to 100 | 400 | 10021 | a sentence saying what is wrong | plausible choice (wrangler calls 10021 a validation error) |
//! | unknown version id | 404 | 10225 | `The version <id> does not exist on this Worker` | plausible choice |
//! | unknown database | 404 | 7404 | `The database <id> could not be found` | live API (`not_found.json`) |
//! | missing or wrong token | 401 | 10000 | `Authentication error` | code and message as the API answers them (workers-sdk#3977); 401 as briefed |
//! | token lacks the permission | 403 | 10000 | `Authentication error` | as the API answers (pages-action#112, a 403 with 10000) |
//! | account id not 32 hex digits | 404 | 7003 | `Could not route to /client/v4/accounts/<a>/d1/database, perhaps your object identifier is invalid?` | live API (workers-sdk#10609) |
//! | another (well-formed) account | 403 | 7403 | `The given account is not valid or is not authorized to access this service` | live API (workers-sdk#15467) |
//! | duplicate database name | 400 | 7502 | `A database with that name already exists` | code from workers-sdk#2143; message and HTTP status plausible |
//! | malformed body, unknown bookmark, bad timestamp, unknown import/export | 400 | 7400 | a sentence saying what is wrong | plausible choice (d1ops serve uses 7400 likewise) |
//! | unknown route | 404 | 7000 | `No route for that URI` | Cloudflare's generic answer |
//! | known route, wrong method | 405 | 7001 | `Method not allowed` | plausible choice |
//! | [`Fault::Status`] 429 | 429 | 971 | `Please wait and consider throttling your request speed` (+ `Retry-After`) | the API's rate-limit answer (lablabs/cloudflare-exporter#74) |
//! | [`Fault::Status`] other | that | that status | the status' reason phrase | plausible choice: clients must go by the HTTP status |
//! | server bug (never a panic) | 500 | 10002 | `Internal server error: <what>` | plausible choice |
//!
//! GraphQL failures answer `{data: null, errors: [{message, path, extensions: {timestamp}}]}`
//! (Cloudflare's GraphQL error shape): 401 `Unauthorized`, 403 `not authorized for that
//! account` (wrong `accountTag` or no analytics permission), 400 for what the server cannot
//! parse or does not know (`unknown field "x"`, `limit must be positive number and not greater
//! than 10000`, …), 429 `rate limiter budget depleted, try again after 5 minutes` with
//! `Retry-After` once [`D1Server::set_graphql_budget`] queries were made in the current
//! 5-minute window (default 300), and a [`Fault::Status`] on `/graphql` answers 429 with
//! that message or `unable to execute query, please try again later`.
//!
//! # GraphQL
//!
//! The server parses the query (fields, aliases, arguments, `$variables`; no fragments) and
//! honours `viewer { accounts(filter: {accountTag}) { <datasets> } }` where each dataset takes
//! `limit` (required, 1..=10000), `filter` and `orderBy`, inline or through variables.
//! Groups are formed, as Cloudflare does, by the dimensions selected in `dimensions { … }`
//! (none selected: one group); there is no `bucket` variable: select `date`,
//! `datetimeHour`, `datetimeMinute`, … to choose the bucket. Only the selected fields are
//! answered. `/graphql` takes POST only (405 otherwise).
//!
//! - `d1AnalyticsAdaptiveGroups` (one event per successful `/query` or `/raw` request):
//!   `count`; `sum {readQueries writeQueries rowsRead rowsWritten queryBatchResponseBytes}`;
//!   `avg {queryBatchTimeMs sampleInterval}`; `quantiles {queryBatchTimeMsP50
//!   queryBatchTimeMsP90 queryBatchTimeMsP99}`; `dimensions {date datetime datetimeMinute
//!   datetimeFiveMinutes datetimeFifteenMinutes datetimeHour databaseId servedByRegion}`
//!   (`servedByRegion`: `WEUR` for real requests, any region through
//!   [`D1Server::record_history_from`]).
//! - `d1StorageAdaptiveGroups` (a sample at creation, after every change and one per database
//!   at query time): `max {databaseSizeBytes}`; `dimensions {date datetimeHour databaseId}`.
//! - `d1QueriesAdaptiveGroups` (one event per executed statement, `query` = its SQL text):
//!   `count`; `sum {queryDurationMs rowsRead rowsWritten rowsReturned}`; `avg {queryDurationMs
//!   rowsRead rowsWritten rowsReturned sampleInterval}`; `quantiles {queryDurationMsP50
//!   queryDurationMsP95 queryDurationMsP99}`; `dimensions {query databaseId date datetime
//!   datetimeMinute datetimeFiveMinutes datetimeFifteenMinutes datetimeHour servedByRegion}`.
//!
//! `filter` keys (combined with AND; `AND: [{…}]` lists are merged): `databaseId`,
//! `databaseId_in`, `databaseId_neq`, `query` (queries dataset), and for each time dimension
//! `D` in `date datetime datetimeMinute datetimeFiveMinutes datetimeFifteenMinutes
//! datetimeHour`: `D`, `D_geq`, `D_gt`, `D_leq`, `D_lt` (the event's time truncated to `D`
//! compared with the bound; dates as `YYYY-MM-DD`, times as RFC 3339). A `null` value drops
//! the condition. Unknown keys answer 400. `orderBy`: `<dimension>_ASC|DESC`, `count_…`,
//! `sum_<f>_…`, `avg_<f>_…`, `max_<f>_…`, `quantiles_<f>_…`; default ascending by dimensions.
//! Integer metrics answer as JSON integers, times and averages as floats.
//! [`D1Server::record_history`] and [`D1Server::record_storage`] add synthetic events.
//!
//! # Time Travel, export, import
//!
//! The server copies a database file for each new state it sees: at creation, before and after
//! every `/query` and `/raw` (only when the content changed since the last copy), when a
//! bookmark is asked for, around imports and restores. A bookmark names one copy; restoring
//! copies it back. Exports dump the copy at `at_bookmark` like D1 does (its `dumpSql`: `PRAGMA
//! defer_foreign_keys=TRUE;`, each table's `CREATE` and `INSERT INTO "t" ("c",…) VALUES(…);`
//! rows, `_cf_*` tables left out, `sqlite_sequence` as `DELETE FROM sqlite_sequence;` plus
//! its rows, then indexes, triggers and views; `dump_options.tables` also filters those by
//! name, as D1's does). REAL values keep a decimal point so a round trip keeps their type.
//! Exports answer `"active"` [`D1Server::set_export_polls`] times (the first answer counts)
//! before `"complete"` (or `"error"`, `success: false`, for a virtual table, as D1 does).
//! A new export at the same bookmark replaces the old task; copies are kept while the
//! server runs (no 30-day horizon). Imports run the uploaded SQL in one transaction at `ingest` and answer
//! `"active"` [`D1Server::set_import_polls`] times (the ingest answer counts) before
//! `"complete"` (or `"error"` with `success: false` and `error`).
#![allow(dead_code)]

mod analytics;
mod dump;
mod filter;
mod graphql;
mod http;
mod rest;
mod sql;
mod state;
mod travel;
mod workers;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use state::State;

/// A failure the server plays instead of (or while) answering.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The next `times` requests whose path contains `path_contains` get this HTTP status
    /// before anything else happens (429 carries `Retry-After` when given).
    Status {
        path_contains: String,
        status: u16,
        retry_after_secs: Option<u64>,
        times: u32,
    },
    /// Every statement whose SQL contains `sql_contains` fails with `message` (its request is
    /// rolled back), until [`D1Server::clear_faults`].
    FailStatement {
        sql_contains: String,
        message: String,
    },
    /// The next `times` matching requests are answered only after `millis` (for timeouts).
    Delay {
        path_contains: String,
        millis: u64,
        times: u32,
    },
    /// The next `times` matching requests run to completion, then their answer waits
    /// `millis` (an answer lost after the work was done, when the client times out first).
    DelayAnswer {
        path_contains: String,
        millis: u64,
        times: u32,
    },
}

/// What the API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Account → D1 → Read: list and get databases, read bookmarks.
    D1Read,
    /// Account → D1 → Edit: everything D1 (implies read).
    D1Edit,
    /// Account → Account Analytics → Read: `/graphql`.
    AnalyticsRead,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Whether an `Authorization` header was sent.
    pub authorization: bool,
    pub body: String,
}

/// The running server; it stops when dropped.
pub struct D1Server {
    core: Arc<Mutex<State>>,
    base: String,
    origin: String,
    account: String,
    token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl D1Server {
    /// Starts a server with empty storage, a random account id and token.
    pub fn start() -> D1Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let account = random_hex(32);
        let token = format!("cf-test-token-{}", random_hex(24));
        let core = Arc::new(Mutex::new(State::new(
            dir.path().to_path_buf(),
            account.clone(),
            token.clone(),
            origin.clone(),
        )));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = core.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, http::router(served))
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        D1Server {
            core,
            base: format!("{origin}/client/v4"),
            origin,
            account,
            token,
            shutdown: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// What `D1OPS_CLOUDFLARE_API_BASE` is set to: `http://127.0.0.1:PORT/client/v4`.
    pub fn base(&self) -> String {
        self.base.clone()
    }

    /// `http://127.0.0.1:PORT`, where the presigned R2 URLs live.
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    pub fn account_id(&self) -> &str {
        &self.account
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Creates a database directly (no HTTP) and returns its uuid.
    pub fn create_database(&self, name: &str) -> String {
        self.lock()
            .create_database(name)
            .unwrap_or_else(|e| panic!("create_database({name}): {e}"))
    }

    /// The SQLite file holding a database (its state may be changed behind the server's
    /// back; the next request notices).
    pub fn db_path(&self, uuid: &str) -> PathBuf {
        self.lock().db_path(uuid)
    }

    /// `(uuid, name)` of every database, oldest first.
    pub fn databases(&self) -> Vec<(String, String)> {
        self.lock()
            .dbs
            .iter()
            .map(|d| (d.uuid.clone(), d.name.clone()))
            .collect()
    }

    /// Queues a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Drops every queued or standing fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// What the token may do (default: everything).
    pub fn set_permissions(&self, perms: &[Permission]) {
        self.lock().settings.permissions = perms.to_vec();
    }

    /// Most statements one `/query` or `/raw` request may hold (default 10,000).
    pub fn set_max_batch_statements(&self, n: usize) {
        self.lock().settings.max_batch_statements = n;
    }

    /// How many `"active"` answers an export gives before `"complete"` (default 1).
    pub fn set_export_polls(&self, n: u32) {
        self.lock().settings.export_polls = n;
    }

    /// How many `"active"` answers an import gives before `"complete"` (default 1).
    pub fn set_import_polls(&self, n: u32) {
        self.lock().settings.import_polls = n;
    }

    /// Answers `d1QueriesAdaptiveGroups` without `quantiles` (on) or with them (off, the
    /// default).
    pub fn set_omit_quantiles(&self, on: bool) {
        self.lock().analytics.omit_quantiles = on;
    }

    /// GraphQL queries allowed per 5-minute window (default 300).
    pub fn set_graphql_budget(&self, n: u32) {
        self.lock().settings.graphql_budget = n;
    }

    /// Sets a database's read-replication mode (`"auto"` or `"disabled"`, the default), as
    /// the get endpoint answers it in `read_replication.mode`.
    pub fn set_read_replication(&self, uuid: &str, mode: &str) {
        let mut st = self.lock();
        if let Some(db) = st.dbs.iter_mut().find(|d| d.uuid == uuid) {
            db.read_replication = mode.to_string();
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Adds `count` synthetic executions of `sql` on `uuid` at `at`, each taking
    /// `duration_ms` and reading/writing the given rows (one single-statement batch each, so
    /// they show in both `d1AnalyticsAdaptiveGroups` and `d1QueriesAdaptiveGroups`).
    #[allow(clippy::too_many_arguments)]
    pub fn record_history(
        &self,
        uuid: &str,
        at: DateTime<Utc>,
        sql: &str,
        count: u64,
        duration_ms: f64,
        rows_read: u64,
        rows_written: u64,
    ) {
        self.lock().analytics.record_history(
            uuid,
            at,
            sql,
            count,
            duration_ms,
            rows_read,
            rows_written,
        );
    }

    /// [`D1Server::record_history`] (no rows written) as answered from `region` — a read
    /// replica's region, say `ENAM` — which the datasets' `servedByRegion` dimension reports
    /// (real requests answer from `WEUR`, the region `meta.served_by_region` names).
    #[allow(clippy::too_many_arguments)]
    pub fn record_history_from(
        &self,
        region: &str,
        uuid: &str,
        at: DateTime<Utc>,
        sql: &str,
        count: u64,
        duration_ms: f64,
        rows_read: u64,
    ) {
        self.lock().analytics.record_history_from(
            region,
            uuid,
            at,
            sql,
            count,
            duration_ms,
            rows_read,
        );
    }

    /// Adds a synthetic storage sample (`d1StorageAdaptiveGroups`).
    pub fn record_storage(&self, uuid: &str, at: DateTime<Utc>, bytes: u64) {
        self.lock().analytics.record_storage(uuid, at, bytes);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for D1Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` random lowercase hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SALT: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < n {
        let seed = format!(
            "{}-{}",
            ulid::Ulid::generate(),
            SALT.fetch_add(1, Ordering::Relaxed)
        );
        out.push_str(&hex::encode(Sha256::digest(seed.as_bytes())));
    }
    out.truncate(n);
    out
}

/// A fixture under the workspace root's `tests/fixtures/cloudflare/` (`"query.json"`,
/// `"d1/database.json"`).
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/cloudflare/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks that `ours` has the shape of `theirs` (a documented example): same JSON types,
/// objects with exactly the same field names, array elements shaped like the documented
/// first one. Row data (`results[]` objects, `rows[]` arrays) is the query's, so only its
/// container type is compared. `path` names where we are in messages (start with `""`).
pub fn same_shape(ours: &Value, theirs: &Value, path: &str) {
    same_shape_but(ours, theirs, path, &[]);
}

/// [`same_shape`], except that `ours` may leave out the fields named in `may_omit` (a local
/// server has no region or colo to report).
pub fn same_shape_but(ours: &Value, theirs: &Value, path: &str, may_omit: &[&str]) {
    assert_eq!(
        kind(ours),
        kind(theirs),
        "{path}: ours is {}, Cloudflare's is {}",
        kind(ours),
        kind(theirs)
    );
    if path.ends_with("results[]") || path.ends_with("rows[]") {
        return;
    }
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let Some(t) = b.get(k) else {
                    panic!("{path}.{k}: not a field Cloudflare returns");
                };
                same_shape_but(v, t, &format!("{path}.{k}"), may_omit);
            }
            for k in b.keys() {
                assert!(
                    a.contains_key(k) || may_omit.contains(&k.as_str()),
                    "{path}.{k}: Cloudflare returns it, we do not"
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let Some(t) = b.first() {
                for v in a {
                    same_shape_but(v, t, &format!("{path}[]"), may_omit);
                }
            }
        }
        _ => {}
    }
}
