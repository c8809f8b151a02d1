//! Self-tests of the D1 contract server (`src/d1_contract/`): every endpoint answers in the
//! shape of Cloudflare's documented examples, and its faults, limits, Time Travel,
//! export/import and GraphQL analytics behave as its module documentation says.
use std::path::Path;
use std::time::Duration;

use d1ops_testkit::d1_contract::{D1Server, Fault, Permission, fixture, same_shape};
use serde_json::{Value, json};

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A client that talks to one server with its token.
struct Api {
    agent: ureq::Agent,
    base: String,
    db_base: String,
    token: String,
}

impl Api {
    fn new(s: &D1Server) -> Api {
        Api {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            base: s.base(),
            db_base: format!("{}/accounts/{}/d1/database", s.base(), s.account_id()),
            token: s.token().to_string(),
        }
    }

    /// Any request; `url` absolute, `auth` the bearer token to send (if any).
    fn send(&self, method: &str, url: &str, auth: Option<&str>, body: Option<Vec<u8>>) -> Answer {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        if let Some(t) = auth {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = match body {
            Some(b) => {
                let req = req.header("content-type", "application/json");
                self.agent.run(req.body(b).expect("request"))
            }
            None => self.agent.run(req.body(()).expect("request")),
        };
        let mut resp = resp.expect("HTTP exchange");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.body_mut().read_to_string().expect("body"),
        }
    }

    /// A request under `/accounts/{a}/d1/database` with the token.
    fn d1(&self, method: &str, rest: &str, body: Option<&Value>) -> (u16, Value) {
        let a = self.send(
            method,
            &format!("{}{rest}", self.db_base),
            Some(&self.token),
            body.map(|b| serde_json::to_vec(b).unwrap()),
        );
        (a.status, a.json())
    }

    fn query(&self, db: &str, body: Value) -> (u16, Value) {
        self.d1("POST", &format!("/{db}/query"), Some(&body))
    }

    fn graphql(&self, query: &str, variables: Value) -> Answer {
        let body = json!({ "query": query, "variables": variables });
        self.send(
            "POST",
            &format!("{}/graphql", self.base),
            Some(&self.token),
            Some(serde_json::to_vec(&body).unwrap()),
        )
    }
}

/// Schema and rows of a database file (less `_cf_*` and SQLite's tables), values typed.
fn content(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = String::new();
    let mut stmt = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
        )
        .unwrap();
    let schema: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name, sql) in &schema {
        out.push_str(&format!("{kind} {name}: {sql:?}\n"));
        if kind != "table" {
            continue;
        }
        let rows = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let width = rows.column_count();
        let order: Vec<String> = (1..=width).map(|i| i.to_string()).collect();
        let mut rows = conn
            .prepare(&format!(
                "SELECT * FROM \"{name}\" ORDER BY {}",
                order.join(", ")
            ))
            .unwrap();
        let mut cursor = rows.raw_query();
        while let Some(row) = cursor.next().unwrap() {
            let cells: Vec<String> = (0..width)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            out.push_str(&format!("  {}\n", cells.join(" | ")));
        }
    }
    out
}

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, score REAL);\
     INSERT INTO users(email, name, score) VALUES ('ann@example.com', 'Ann', 4.5), ('bob@example.com', 'Bob', NULL)";

/// A server with one database holding `users`.
fn server_with_users() -> (D1Server, Api, String) {
    let s = D1Server::start();
    let api = Api::new(&s);
    let db = s.create_database("app");
    let (status, body) = api.query(&db, json!({ "sql": USERS }));
    assert_eq!(status, 200, "{body}");
    (s, api, db)
}

/// Polls an export to completion and downloads it (no token), returning the SQL.
fn export(api: &Api, db: &str, options: Value) -> (String, usize) {
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/export"),
        Some(&json!({ "output_format": "polling", "dump_options": options })),
    );
    assert_eq!(status, 202, "{body}");
    let bookmark = body["result"]["at_bookmark"].as_str().unwrap().to_string();
    let mut actives = 1;
    let done = loop {
        let (status, body) = api.d1(
            "POST",
            &format!("/{db}/export"),
            Some(&json!({ "output_format": "polling", "current_bookmark": bookmark })),
        );
        match body["result"]["status"].as_str() {
            Some("active") => {
                assert_eq!(status, 202);
                actives += 1;
            }
            Some("complete") => break body,
            other => panic!("{other:?}: {body}"),
        }
        assert!(actives < 20, "the export never completes");
    };
    let url = done["result"]["result"]["signed_url"].as_str().unwrap();
    let sql = api.send("GET", url, None, None);
    assert_eq!(sql.status, 200, "{}", sql.text);
    (sql.text, actives)
}

/// Imports `sql` into `db` through init, upload, ingest and polls; the final answer.
fn import(api: &Api, db: &str, sql: &str) -> (Value, usize) {
    let etag = "0123456789abcdef0123456789abcdef";
    let (status, init) = api.d1(
        "POST",
        &format!("/{db}/import"),
        Some(&json!({ "action": "init", "etag": etag })),
    );
    assert_eq!(status, 200, "{init}");
    let url = init["result"]["upload_url"].as_str().unwrap();
    let put = api.send("PUT", url, None, Some(sql.as_bytes().to_vec()));
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        put.header("etag").as_deref(),
        Some(format!("\"{etag}\"").as_str())
    );
    let filename = init["result"]["filename"].as_str().unwrap();
    let (status, mut answer) = api.d1(
        "POST",
        &format!("/{db}/import"),
        Some(&json!({ "action": "ingest", "etag": etag, "filename": filename })),
    );
    assert_eq!(status, 200, "{answer}");
    let mut actives = 0;
    while answer["result"]["status"] == "active" {
        actives += 1;
        assert!(actives < 20, "the import never completes");
        let bookmark = answer["result"]["at_bookmark"].clone();
        answer = api
            .d1(
                "POST",
                &format!("/{db}/import"),
                Some(&json!({ "action": "poll", "current_bookmark": bookmark })),
            )
            .1;
    }
    (answer, actives)
}

#[test]
fn every_endpoint_answers_in_cloudflares_shapes() {
    let s = D1Server::start();
    let api = Api::new(&s);
    let (status, created) = api.d1("POST", "", Some(&json!({ "name": "shapes" })));
    assert_eq!(status, 200, "{created}");
    same_shape(&created, &fixture("d1/database.json"), "");
    let db = created["result"]["uuid"].as_str().unwrap().to_string();

    let (status, body) = api.d1("GET", "", None);
    assert_eq!(status, 200);
    same_shape(&body, &fixture("d1/database_list.json"), "");
    let (status, body) = api.d1("GET", &format!("/{db}"), None);
    assert_eq!(status, 200);
    same_shape(&body, &fixture("d1/database.json"), "");

    assert_eq!(api.query(&db, json!({ "sql": USERS })).0, 200);
    let (status, body) = api.query(
        &db,
        json!({ "sql": "SELECT id, email, name, score FROM users WHERE id = ?", "params": [1] }),
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("query.json"), "");
    assert_eq!(
        body["result"][0]["results"],
        json!([{ "id": 1, "email": "ann@example.com", "name": "Ann", "score": 4.5 }])
    );
    let (status, body) = api.query(
        &db,
        json!({ "batch": [
            { "sql": "INSERT INTO users(email) VALUES (?)", "params": ["cy@example.com"] },
            { "sql": "SELECT count(*) AS n FROM users" },
        ] }),
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("batch.json"), "");
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/raw"),
        Some(&json!({ "sql": "SELECT id, email, score FROM users ORDER BY id" })),
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("raw.json"), "");
    assert_eq!(
        body["result"][0]["results"]["rows"][1],
        json!([2, "bob@example.com", null])
    );
    let (status, body) = api.query(&db, json!({ "sql": "SELECT nope FROM users" }));
    assert_eq!(status, 400);
    same_shape(&body, &fixture("sql_error.json"), "");
    let (status, body) = api.d1("GET", "/5b1a8d0e-0000-4000-8000-000000000000", None);
    assert_eq!(status, 404);
    same_shape(&body, &fixture("not_found.json"), "");

    let (status, body) = api.d1("GET", &format!("/{db}/time_travel/bookmark"), None);
    assert_eq!(status, 200);
    same_shape(&body, &fixture("d1/bookmark.json"), "");
    let bookmark = body["result"]["bookmark"].as_str().unwrap().to_string();
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?bookmark={bookmark}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("d1/restore.json"), "");

    let start = json!({ "output_format": "polling" });
    let (status, body) = api.d1("POST", &format!("/{db}/export"), Some(&start));
    assert_eq!(status, 202, "{body}");
    same_shape(&body, &fixture("d1/export_active.json"), "");
    let poll =
        json!({ "output_format": "polling", "current_bookmark": body["result"]["at_bookmark"] });
    let (status, body) = api.d1("POST", &format!("/{db}/export"), Some(&poll));
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("d1/export_complete.json"), "");

    let init = json!({ "action": "init", "etag": "abc" });
    let (status, body) = api.d1("POST", &format!("/{db}/import"), Some(&init));
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("d1/import_init.json"), "");
    let url = body["result"]["upload_url"].as_str().unwrap();
    let filename = body["result"]["filename"].clone();
    assert_eq!(
        api.send("PUT", url, None, Some(b"SELECT 1;".to_vec()))
            .status,
        200
    );
    let ingest = json!({ "action": "ingest", "etag": "abc", "filename": filename });
    let (status, body) = api.d1("POST", &format!("/{db}/import"), Some(&ingest));
    assert_eq!(status, 200, "{body}");
    same_shape(&body, &fixture("d1/import_active.json"), "");
    let poll = json!({ "action": "poll", "current_bookmark": body["result"]["at_bookmark"] });
    let (_, body) = api.d1("POST", &format!("/{db}/import"), Some(&poll));
    same_shape(&body, &fixture("d1/import_complete.json"), "");
    let (body, _) = import(&api, &db, "INSERT INTO missing VALUES (1);");
    same_shape(&body, &fixture("d1/import_error.json"), "");
    assert_eq!(
        body["result"]["error"],
        json!("no such table: missing: SQLITE_ERROR")
    );

    let a = api.send("GET", &api.db_base, None, None);
    assert_eq!(a.status, 401);
    same_shape(&a.json(), &fixture("d1/auth_error.json"), "");
    s.inject(Fault::Status {
        path_contains: "/d1/database".into(),
        status: 429,
        retry_after_secs: Some(2),
        times: 1,
    });
    let (status, body) = api.d1("GET", "", None);
    assert_eq!(status, 429);
    same_shape(&body, &fixture("d1/rate_limited.json"), "");

    let everything = "query Everything($accountTag: string!) { viewer { accounts(filter: { accountTag: $accountTag }) {
        d1AnalyticsAdaptiveGroups(limit: 100) { count
          sum { readQueries writeQueries rowsRead rowsWritten queryBatchResponseBytes }
          avg { queryBatchTimeMs sampleInterval }
          quantiles { queryBatchTimeMsP50 queryBatchTimeMsP90 queryBatchTimeMsP99 }
          dimensions { date datetime datetimeMinute datetimeFiveMinutes datetimeFifteenMinutes datetimeHour databaseId } }
        d1StorageAdaptiveGroups(limit: 100) { max { databaseSizeBytes } dimensions { date datetimeHour databaseId } }
        d1QueriesAdaptiveGroups(limit: 100) { count
          sum { queryDurationMs rowsRead rowsWritten rowsReturned }
          avg { queryDurationMs rowsRead rowsWritten rowsReturned sampleInterval }
          quantiles { queryDurationMsP50 queryDurationMsP95 queryDurationMsP99 }
          dimensions { query databaseId date datetime datetimeMinute datetimeFiveMinutes datetimeFifteenMinutes datetimeHour } }
      } } }";
    let a = api.graphql(everything, json!({ "accountTag": s.account_id() }));
    assert_eq!(a.status, 200, "{}", a.text);
    same_shape(&a.json(), &fixture("d1/graphql.json"), "");
    let a = api.graphql(everything, json!({ "accountTag": "0".repeat(32) }));
    assert_eq!(a.status, 403, "{}", a.text);
    same_shape(&a.json(), &fixture("d1/graphql_error.json"), "");

    let (status, body) = api.d1("DELETE", &format!("/{db}"), None);
    assert_eq!(status, 200);
    same_shape(&body, &fixture("d1/database_deleted.json"), "");
    assert!(s.databases().is_empty());
}

#[test]
fn listing_pages_through_more_databases_than_fit_on_a_page() {
    let s = D1Server::start();
    let api = Api::new(&s);
    let mut made: Vec<String> = (0..25)
        .map(|i| s.create_database(&format!("db-{i:02}")))
        .collect();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, body) = api.d1("GET", &format!("?page={page}&per_page=10"), None);
        assert_eq!(status, 200, "{body}");
        let info = &body["result_info"];
        let count = if page < 3 { 10 } else { 5 };
        assert_eq!(
            info,
            &json!({ "page": page, "per_page": 10, "count": count, "total_count": 25 })
        );
        for d in body["result"].as_array().unwrap() {
            seen.push(d["uuid"].as_str().unwrap().to_string());
        }
    }
    let (_, past_the_end) = api.d1("GET", "?page=4&per_page=10", None);
    assert_eq!(past_the_end["result"], json!([]));
    seen.sort();
    made.sort();
    assert_eq!(seen, made);
    let (_, named) = api.d1("GET", "?name=db-07", None);
    assert_eq!(named["result"][0]["name"], json!("db-07"));
    assert_eq!(named["result_info"]["total_count"], json!(1));
}

#[test]
fn missing_or_wrong_token_is_401_and_missing_permission_is_403() {
    let (s, api, db) = server_with_users();
    let url = format!("{}/{db}/query", api.db_base);
    let body = Some(br#"{"sql":"SELECT 1"}"#.to_vec());
    for token in [None, Some("cf-test-token-wrong")] {
        let a = api.send("POST", &url, token, body.clone());
        assert_eq!(a.status, 401, "{}", a.text);
        assert_eq!(
            a.json()["errors"][0],
            json!({ "code": 10000, "message": "Authentication error" })
        );
    }
    s.set_permissions(&[Permission::D1Read]);
    let (status, body) = api.query(&db, json!({ "sql": "SELECT 1" }));
    assert_eq!(
        (status, body["errors"][0]["code"].clone()),
        (403, json!(10000))
    );
    assert_eq!(
        api.d1("GET", &format!("/{db}"), None).0,
        200,
        "reading is allowed"
    );
    let a = api.graphql("{ viewer { accounts(filter: {accountTag: \"x\"}) { d1AnalyticsAdaptiveGroups(limit: 1) { count } } } }", json!({}));
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(
        a.json()["errors"][0]["message"],
        json!("not authorized for that account")
    );
    s.set_permissions(&[Permission::AnalyticsRead]);
    assert_eq!(api.d1("GET", "", None).0, 403);

    let a = api.send(
        "POST",
        &format!("{}/graphql", api.base),
        None,
        Some(b"{}".to_vec()),
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["errors"][0]["message"], json!("Unauthorized"));

    let other = format!("{}/accounts/{}/d1/database", api.base, "f".repeat(32));
    let a = api.send("GET", &other, Some(&api.token), None);
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["errors"][0]["code"], json!(7403));
    let malformed = format!("{}/accounts/nope/d1/database", api.base);
    let a = api.send("GET", &malformed, Some(&api.token), None);
    assert_eq!(
        (a.status, a.json()["errors"][0]["code"].clone()),
        (404, json!(7003))
    );
}

#[test]
fn unknown_database_is_7404_and_duplicate_name_7502() {
    let (_s, api, _db) = server_with_users();
    for (method, rest) in [
        ("GET", "/00000000-0000-4000-8000-000000000000"),
        ("POST", "/00000000-0000-4000-8000-000000000000/query"),
        (
            "GET",
            "/00000000-0000-4000-8000-000000000000/time_travel/bookmark",
        ),
    ] {
        let (status, body) = api.d1(method, rest, Some(&json!({ "sql": "SELECT 1" })));
        assert_eq!(status, 404, "{method} {rest}");
        assert_eq!(
            body["errors"][0]["message"],
            json!("The database 00000000-0000-4000-8000-000000000000 could not be found")
        );
        assert_eq!(body["result"], Value::Null);
    }
    let (status, body) = api.d1("POST", "", Some(&json!({ "name": "app" })));
    assert_eq!(
        (status, body["errors"][0]["code"].clone()),
        (400, json!(7502))
    );
}

#[test]
fn sql_errors_answer_7500_and_a_batch_failing_midway_changes_nothing() {
    let (s, api, db) = server_with_users();
    let path = s.db_path(&db);
    let before = content(&path);
    let (status, body) = api.query(
        &db,
        json!({ "batch": [
            { "sql": "INSERT INTO users(email) VALUES ('dan@example.com')" },
            { "sql": "INSERT INTO users(email) VALUES ('ann@example.com')" },
        ] }),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0],
        json!({ "code": 7500, "message": "UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)" })
    );
    assert_eq!(body["result"], json!([]));
    assert_eq!(content(&path), before, "the first insert was rolled back");

    s.inject(Fault::FailStatement {
        sql_contains: "DELETE FROM users".into(),
        message: "disk I/O error".into(),
    });
    let (status, body) = api.query(
        &db,
        json!({ "sql": "UPDATE users SET name = 'x'; DELETE FROM users; SELECT 1" }),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        json!("disk I/O error: SQLITE_ERROR")
    );
    assert_eq!(content(&path), before);
    s.clear_faults();

    let (status, body) = api.query(&db, json!({ "sql": "SELECT nope FROM users" }));
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        json!("no such column: nope at offset 7: SQLITE_ERROR")
    );
    let (status, body) = api.query(&db, json!({ "sql": "BEGIN; DELETE FROM users; COMMIT" }));
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        json!("not authorized: SQLITE_AUTH")
    );
    assert_eq!(content(&path), before);

    // Foreign keys are enforced; deferred ones are checked at COMMIT.
    let fk = "CREATE TABLE teams(id INTEGER PRIMARY KEY); \
              CREATE TABLE members(id INTEGER PRIMARY KEY, team INTEGER NOT NULL REFERENCES teams(id))";
    assert_eq!(api.query(&db, json!({ "sql": fk })).0, 200);
    let (status, body) = api.query(&db, json!({ "sql": "INSERT INTO members VALUES (1, 7)" }));
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        json!(
            "FOREIGN KEY constraint failed: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_FOREIGNKEY)"
        )
    );
    let deferred = "PRAGMA defer_foreign_keys = on; INSERT INTO members VALUES (1, 7); INSERT INTO teams VALUES (7)";
    let (status, body) = api.query(&db, json!({ "sql": deferred }));
    assert_eq!(status, 200, "{body}");
    let broken = "PRAGMA defer_foreign_keys = on; INSERT INTO members VALUES (2, 8)";
    let (status, body) = api.query(&db, json!({ "sql": broken }));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        json!(
            "FOREIGN KEY constraint failed: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_FOREIGNKEY)"
        )
    );
    let (_, count) = api.query(&db, json!({ "sql": "SELECT count(*) AS n FROM members" }));
    assert_eq!(count["result"][0]["results"][0]["n"], json!(1));
}

#[test]
fn statement_count_and_length_limits_are_enforced() {
    let (s, api, db) = server_with_users();
    s.set_max_batch_statements(3);
    let batch: Vec<Value> = (0..4).map(|_| json!({ "sql": "SELECT 1" })).collect();
    let (status, body) = api.query(&db, json!({ "batch": batch }));
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        json!("too many statements in one request: 4 (the limit is 3): SQLITE_TOOBIG")
    );
    assert_eq!(
        api.query(&db, json!({ "sql": "SELECT 1; SELECT 2; SELECT 3" }))
            .0,
        200
    );
    let long = format!("SELECT '{}'", "x".repeat(100_000));
    let (status, body) = api.query(&db, json!({ "sql": long }));
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        json!("statement too long: SQLITE_TOOBIG")
    );
    let params: Vec<Value> = (0..101).map(Value::from).collect();
    let marks = vec!["?"; 101].join(",");
    let (status, body) = api.query(
        &db,
        json!({ "sql": format!("SELECT {marks}"), "params": params }),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], json!(7500));
}

#[test]
fn meta_reports_what_each_statement_did() {
    let (s, api, db) = server_with_users();
    let (_, body) = api.query(
        &db,
        json!({ "batch": [
            { "sql": "INSERT INTO users(email) VALUES ('cy@example.com')" },
            { "sql": "SELECT * FROM users" },
        ] }),
    );
    let (insert, select) = (&body["result"][0]["meta"], &body["result"][1]["meta"]);
    assert_eq!(
        (
            insert["changes"].clone(),
            insert["changed_db"].clone(),
            insert["last_row_id"].clone()
        ),
        (json!(1), json!(true), json!(3))
    );
    assert_eq!(insert["rows_written"], json!(1));
    assert_eq!(
        (select["changes"].clone(), select["changed_db"].clone()),
        (json!(0), json!(false))
    );
    assert_eq!(select["rows_read"], json!(3), "a full scan of three rows");
    let size = std::fs::metadata(s.db_path(&db)).unwrap().len();
    assert_eq!(select["size_after"], json!(size));
    let (_, info) = api.d1("GET", &format!("/{db}"), None);
    assert_eq!(
        info["result"]["num_tables"],
        json!(1),
        "_cf_KV is not counted"
    );
    assert_eq!(info["result"]["file_size"], json!(size));
    let kv = rusqlite::Connection::open(s.db_path(&db))
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = '_cf_KV'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    assert_eq!(
        kv,
        "CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID"
    );
}

#[test]
fn time_travel_restores_the_exact_previous_content() {
    let (s, api, db) = server_with_users();
    let path = s.db_path(&db);
    let original = content(&path);
    let (_, b) = api.d1("GET", &format!("/{db}/time_travel/bookmark"), None);
    let bookmark = b["result"]["bookmark"].as_str().unwrap().to_string();
    let (_, again) = api.d1("GET", &format!("/{db}/time_travel/bookmark"), None);
    assert_eq!(
        again["result"]["bookmark"],
        json!(bookmark),
        "no change, same bookmark"
    );
    std::thread::sleep(Duration::from_millis(20));
    let between = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(Duration::from_millis(20));

    let wreck =
        "UPDATE users SET name = 'gone'; CREATE TABLE extra(x); INSERT INTO extra VALUES (1)";
    assert_eq!(api.query(&db, json!({ "sql": wreck })).0, 200);
    let wrecked = content(&path);
    assert_ne!(wrecked, original);
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?bookmark={bookmark}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(content(&path), original);
    let undo = body["result"]["previous_bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        body["result"]["bookmark"],
        json!(bookmark),
        "a restore makes a new bookmark"
    );

    // The previous bookmark undoes the restore; a timestamp restores what was current then.
    api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?bookmark={undo}"),
        None,
    );
    assert_eq!(content(&path), wrecked);
    let encoded = between.replace('+', "%2B");
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?timestamp={encoded}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(content(&path), original);

    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?bookmark=00000000-nope"),
        None,
    );
    assert_eq!(
        (status, body["errors"][0]["code"].clone()),
        (400, json!(7400))
    );
}

#[test]
fn export_then_import_into_another_database_gives_identical_content() {
    let (s, api, db) = server_with_users();
    s.set_export_polls(3);
    s.set_import_polls(2);
    let extra = "CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT, user INTEGER REFERENCES users(id), body TEXT, raw BLOB, weight REAL);\
                 CREATE INDEX notes_user ON notes(user);\
                 CREATE VIEW named AS SELECT name FROM users;\
                 CREATE TRIGGER touch AFTER INSERT ON notes BEGIN UPDATE users SET score = 1.0 WHERE id = NEW.user; END;\
                 INSERT INTO notes(user, body, raw, weight) VALUES (1, 'it''s
two lines', X'00ff10', 2.0), (2, NULL, NULL, 0.1)";
    let (status, body) = api.query(&db, json!({ "sql": extra }));
    assert_eq!(status, 200, "{body}");
    let (sql, actives) = export(&api, &db, json!({}));
    assert_eq!(actives, 3, "three active answers, then complete");
    assert!(
        sql.starts_with("PRAGMA defer_foreign_keys=TRUE;\n"),
        "{sql}"
    );
    assert!(!sql.contains("_cf_KV"), "{sql}");

    let copy = s.create_database("copy");
    let (done, polls) = import(&api, &copy, &sql);
    assert_eq!(done["result"]["status"], json!("complete"), "{done}");
    assert_eq!(polls, 2);
    let result = &done["result"]["result"];
    assert_eq!(result["num_queries"], json!(sql.lines().count()), "{sql}");
    assert_eq!(content(&s.db_path(&copy)), content(&s.db_path(&db)));

    // Nobody sent the token to R2; sending it is refused, and recorded.
    let r2: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/r2/"))
        .collect();
    assert_eq!(r2.len(), 2);
    assert!(
        r2.iter().all(|r| !r.authorization && r.status == 200),
        "{r2:?}"
    );
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/export"),
        Some(&json!({ "output_format": "polling" })),
    );
    assert_eq!(status, 202, "{body}");
    let mut last = body;
    for _ in 0..3 {
        last = api
            .d1(
                "POST",
                &format!("/{db}/export"),
                Some(&json!({ "output_format": "polling", "current_bookmark": last["result"]["at_bookmark"] })),
            )
            .1;
    }
    let url = last["result"]["result"]["signed_url"].as_str().unwrap();
    let leaked = api.send("GET", url, Some(&api.token), None);
    assert_eq!(leaked.status, 400, "{}", leaked.text);
    assert!(leaked.text.contains("InvalidArgument"));
    assert!(s.requests().last().unwrap().authorization);
    let forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(api.send("GET", &forged, None, None).status, 403);

    // An import that fails part-way leaves the database as it was.
    let before = content(&s.db_path(&copy));
    let (failed, _) = import(
        &api,
        &copy,
        "INSERT INTO users(email) VALUES ('zed@example.com');\nINSERT INTO missing VALUES (1);",
    );
    assert_eq!(failed["result"]["status"], json!("error"), "{failed}");
    assert_eq!(failed["result"]["success"], json!(false));
    assert_eq!(content(&s.db_path(&copy)), before);
}

#[test]
fn export_follows_d1s_dump_format() {
    let s = D1Server::start();
    let api = Api::new(&s);
    let db = s.create_database("dump");
    let setup = "CREATE TABLE foo(id INTEGER PRIMARY KEY, value TEXT);\
                 CREATE TABLE bar(id INTEGER PRIMARY KEY, value TEXT);\
                 INSERT INTO foo (value) VALUES ('xxx'),('yyy');\
                 INSERT INTO bar (value) VALUES ('aaa')";
    assert_eq!(api.query(&db, json!({ "sql": setup })).0, 200);
    let (full, _) = export(&api, &db, json!({}));
    assert_eq!(
        full,
        [
            "PRAGMA defer_foreign_keys=TRUE;",
            "CREATE TABLE foo(id INTEGER PRIMARY KEY, value TEXT);",
            "INSERT INTO \"foo\" (\"id\",\"value\") VALUES(1,'xxx');",
            "INSERT INTO \"foo\" (\"id\",\"value\") VALUES(2,'yyy');",
            "CREATE TABLE bar(id INTEGER PRIMARY KEY, value TEXT);",
            "INSERT INTO \"bar\" (\"id\",\"value\") VALUES(1,'aaa');",
        ]
        .join("\n")
    );
    let (schema, _) = export(&api, &db, json!({ "no_data": true, "tables": ["bar"] }));
    assert_eq!(
        schema,
        "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE bar(id INTEGER PRIMARY KEY, value TEXT);"
    );
}

#[test]
fn rate_limits_and_server_errors_are_played_then_requests_succeed() {
    let (s, api, db) = server_with_users();
    s.inject(Fault::Status {
        path_contains: "/query".into(),
        status: 429,
        retry_after_secs: Some(7),
        times: 2,
    });
    for _ in 0..2 {
        let a = api.send(
            "POST",
            &format!("{}/{db}/query", api.db_base),
            Some(&api.token),
            Some(br#"{"sql":"SELECT 1"}"#.to_vec()),
        );
        assert_eq!(a.status, 429);
        assert_eq!(a.header("retry-after").as_deref(), Some("7"));
        assert_eq!(a.json()["errors"][0]["code"], json!(971));
    }
    assert_eq!(api.query(&db, json!({ "sql": "SELECT 1" })).0, 200);
    s.inject(Fault::Status {
        path_contains: "/time_travel".into(),
        status: 503,
        retry_after_secs: None,
        times: 1,
    });
    let (status, body) = api.d1("GET", &format!("/{db}/time_travel/bookmark"), None);
    assert_eq!((status, body["success"].clone()), (503, json!(false)));
    assert_eq!(
        api.d1("GET", &format!("/{db}/time_travel/bookmark"), None)
            .0,
        200
    );
    let statuses: Vec<u16> = s.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 429, 200, 503, 200]);

    s.inject(Fault::Delay {
        path_contains: "/query".into(),
        millis: 300,
        times: 1,
    });
    let started = std::time::Instant::now();
    assert_eq!(api.query(&db, json!({ "sql": "SELECT 1" })).0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(api.query(&db, json!({ "sql": "SELECT 1" })).0, 200);
    assert!(started.elapsed() < Duration::from_millis(300), "only once");
}

#[test]
fn graphql_answers_with_aggregates_of_the_statements_really_run() {
    let (s, api, db) = server_with_users();
    let other = s.create_database("other");
    for _ in 0..3 {
        api.query(&db, json!({ "sql": "SELECT * FROM users" }));
    }
    api.query(&other, json!({ "sql": "SELECT 1" }));
    let query = "query Insights($accountTag: string!, $filter: AccountD1QueriesAdaptiveGroupsFilter_InputObject) {
      viewer { accounts(filter: { accountTag: $accountTag }) {
        d1QueriesAdaptiveGroups(limit: 10, filter: $filter, orderBy: [count_DESC]) {
          count sum { rowsRead rowsReturned } dimensions { query } } } } }";
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let vars = json!({
        "accountTag": s.account_id(),
        "filter": { "AND": [{ "datetimeHour_geq": since, "databaseId": db }] },
    });
    let a = api.graphql(query, vars);
    assert_eq!(a.status, 200, "{}", a.text);
    let groups = &a.json()["data"]["viewer"]["accounts"][0]["d1QueriesAdaptiveGroups"];
    assert_eq!(
        groups[0],
        json!({ "count": 3, "sum": { "rowsRead": 6, "rowsReturned": 6 }, "dimensions": { "query": "SELECT * FROM users" } })
    );
    assert_eq!(groups.as_array().unwrap().len(), 3, "{groups}");

    // Thirty days of history, daily buckets for one database.
    let now = chrono::Utc::now();
    for day in 0..30 {
        let at = now - chrono::Duration::days(day);
        s.record_history(&db, at, "SELECT * FROM users WHERE id = ?", 10, 2.0, 1, 0);
        s.record_history(&db, at, "UPDATE users SET score = ?", 2, 4.0, 2, 2);
    }
    let daily = "query Daily($accountTag: string!, $start: Date, $end: Date, $databaseId: string) {
      viewer { accounts(filter: { accountTag: $accountTag }) {
        d1AnalyticsAdaptiveGroups(limit: 10000, filter: { date_geq: $start, date_leq: $end, databaseId: $databaseId }, orderBy: [date_ASC]) {
          sum { readQueries writeQueries rowsRead rowsWritten }
          quantiles { queryBatchTimeMsP90 }
          dimensions { date databaseId } }
        d1StorageAdaptiveGroups(limit: 10000, filter: { date_geq: $start, date_leq: $end, databaseId: $databaseId }) {
          max { databaseSizeBytes } dimensions { date } } } } }";
    let a = api.graphql(
        daily,
        json!({
            "accountTag": s.account_id(),
            "start": (now - chrono::Duration::days(40)).format("%Y-%m-%d").to_string(),
            "end": (now - chrono::Duration::days(1)).format("%Y-%m-%d").to_string(),
            "databaseId": db,
        }),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let account = &a.json()["data"]["viewer"]["accounts"][0];
    let days = account["d1AnalyticsAdaptiveGroups"].as_array().unwrap();
    assert_eq!(days.len(), 29, "yesterday and the 28 days before");
    assert_eq!(
        days[0]["sum"],
        json!({ "readQueries": 10, "writeQueries": 2, "rowsRead": 14, "rowsWritten": 4 })
    );
    assert_eq!(days[0]["quantiles"]["queryBatchTimeMsP90"], json!(4.0));
    assert!(days[0]["dimensions"]["date"].as_str() < days[1]["dimensions"]["date"].as_str());
    assert_eq!(days[0]["dimensions"]["databaseId"], json!(db));
    assert_eq!(
        account["d1StorageAdaptiveGroups"],
        json!([]),
        "no samples before today"
    );

    let a = api.graphql(
        "{ viewer { accounts(filter: {accountTag: $a}) { d1StorageAdaptiveGroups(limit: 5) { max { databaseSizeBytes } dimensions { databaseId } } } } }",
        json!({ "a": s.account_id() }),
    );
    let storage = &a.json()["data"]["viewer"]["accounts"][0]["d1StorageAdaptiveGroups"];
    let size = std::fs::metadata(s.db_path(&db)).unwrap().len();
    let mine = storage
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["dimensions"]["databaseId"] == json!(db))
        .unwrap();
    assert_eq!(mine["max"]["databaseSizeBytes"], json!(size));

    let a = api.graphql(
        "{ viewer { accounts(filter: {accountTag: $a}) { d1AnalyticsAdaptiveGroups(limit: 5) { sum { nope } } } } }",
        json!({ "a": s.account_id() }),
    );
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["errors"][0]["message"],
        json!("unknown field \"nope\"")
    );
}

#[test]
fn graphql_budget_runs_out_with_429_and_retry_after() {
    let s = D1Server::start();
    let api = Api::new(&s);
    s.set_graphql_budget(2);
    let q = "{ viewer { accounts(filter: {accountTag: $a}) { d1AnalyticsAdaptiveGroups(limit: 1) { count } } } }";
    let vars = json!({ "a": s.account_id() });
    assert_eq!(api.graphql(q, vars.clone()).status, 200);
    assert_eq!(api.graphql(q, vars.clone()).status, 200);
    let a = api.graphql(q, vars);
    assert_eq!(a.status, 429, "{}", a.text);
    let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    same_shape(&a.json(), &fixture("d1/graphql_error.json"), "");
    assert_eq!(
        a.json()["errors"][0]["message"],
        json!("rate limiter budget depleted, try again after 5 minutes")
    );
}

#[test]
fn listings_refuse_a_wrong_token_with_401_and_a_missing_permission_with_403() {
    let s = D1Server::start();
    s.create_database("app");
    let api = Api::new(&s);
    let url = format!("{}?page=1&per_page=100", api.db_base);
    let a = api.send("GET", &url, Some("cf-wrong-token"), None);
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["code"], json!(10000));
    s.set_permissions(&[Permission::AnalyticsRead]);
    let a = api.send("GET", &url, Some(s.token()), None);
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(
        a.json()["errors"][0],
        json!({ "code": 10000, "message": "Authentication error" })
    );
    s.set_permissions(&[Permission::D1Read]);
    assert_eq!(api.send("GET", &url, Some(s.token()), None).status, 200);
}

#[test]
fn the_database_object_carries_its_read_replication_mode() {
    let s = D1Server::start();
    let db = s.create_database("app");
    let api = Api::new(&s);
    let (status, body) = api.d1("GET", &format!("/{db}"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["read_replication"],
        json!({ "mode": "disabled" })
    );
    s.set_read_replication(&db, "auto");
    let (_, body) = api.d1("GET", &format!("/{db}"), None);
    assert_eq!(
        body["result"]["read_replication"],
        json!({ "mode": "auto" })
    );
}

#[test]
fn a_restore_answers_the_bookmark_it_replaced() {
    let s = D1Server::start();
    let db = s.create_database("app");
    let api = Api::new(&s);
    assert_eq!(
        api.query(&db, json!({ "sql": "CREATE TABLE t (x)" })).0,
        200
    );
    let (_, b) = api.d1("GET", &format!("/{db}/time_travel/bookmark"), None);
    let first = b["result"]["bookmark"].as_str().unwrap().to_string();
    assert_eq!(
        api.query(&db, json!({ "sql": "INSERT INTO t VALUES (1)" }))
            .0,
        200
    );
    let (_, b) = api.d1("GET", &format!("/{db}/time_travel/bookmark"), None);
    let second = b["result"]["bookmark"].as_str().unwrap().to_string();
    let (status, body) = api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?bookmark={first}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["previous_bookmark"], json!(second));
    // Restoring the previous bookmark undoes the restore.
    let (status, _) = api.d1(
        "POST",
        &format!("/{db}/time_travel/restore?bookmark={second}"),
        None,
    );
    assert_eq!(status, 200);
    let (_, rows) = api.query(&db, json!({ "sql": "SELECT count(*) AS n FROM t" }));
    assert_eq!(rows["result"][0]["results"][0]["n"], json!(1));
}

#[test]
fn analytics_split_by_served_by_region() {
    let s = D1Server::start();
    let db = s.create_database("app");
    let api = Api::new(&s);
    assert_eq!(api.query(&db, json!({ "sql": "SELECT 1" })).0, 200);
    let at = chrono::Utc::now();
    s.record_history_from("ENAM", &db, at, "SELECT 2", 4, 3.0, 1);
    let query = "{ viewer { accounts(filter: {accountTag: $a}) {
        d1AnalyticsAdaptiveGroups(limit: 10, orderBy: [servedByRegion_ASC]) {
          count quantiles { queryBatchTimeMsP50 } dimensions { servedByRegion } }
        d1QueriesAdaptiveGroups(limit: 10, orderBy: [servedByRegion_ASC]) {
          count dimensions { servedByRegion } } } } }";
    let a = api.graphql(query, json!({ "a": s.account_id() }));
    assert_eq!(a.status, 200, "{}", a.text);
    let account = &a.json()["data"]["viewer"]["accounts"][0];
    let batches = account["d1AnalyticsAdaptiveGroups"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "{account}");
    assert_eq!(batches[0]["dimensions"]["servedByRegion"], json!("ENAM"));
    assert_eq!(batches[0]["count"], json!(4));
    assert_eq!(batches[0]["quantiles"]["queryBatchTimeMsP50"], json!(3.0));
    assert_eq!(batches[1]["dimensions"]["servedByRegion"], json!("WEUR"));
    let statements = account["d1QueriesAdaptiveGroups"].as_array().unwrap();
    assert_eq!(statements[0]["dimensions"]["servedByRegion"], json!("ENAM"));
}
