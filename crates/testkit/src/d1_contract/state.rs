//! What the server holds between requests: the account, its databases (one SQLite file each
//! under the server's temp dir), settings, queued faults, the request log, analytics events
//! and Time Travel copies. Plain data behind one mutex; requests take turns on it.
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::analytics::Analytics;
use super::travel::Travel;
use super::workers::Workers;
use super::{Fault, Permission, Recorded, random_hex};

/// One D1 database.
pub struct Db {
    pub uuid: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// `read_replication.mode`: `disabled` (the default) or `auto`.
    pub read_replication: String,
}

/// What tests can tune.
pub struct Settings {
    pub permissions: Vec<Permission>,
    pub max_batch_statements: usize,
    pub export_polls: u32,
    pub import_polls: u32,
    pub graphql_budget: u32,
}

pub struct State {
    pub root: PathBuf,
    pub account: String,
    pub token: String,
    pub origin: String,
    /// Signs the presigned R2 URLs.
    pub secret: String,
    pub dbs: Vec<Db>,
    pub settings: Settings,
    pub faults: Vec<Fault>,
    pub requests: Vec<Recorded>,
    pub analytics: Analytics,
    pub travel: Travel,
    /// Start of the current GraphQL budget window and the queries made in it.
    pub graphql_window: Option<(Instant, u32)>,
    /// Workers scripts, versions and deployments (`workers.rs`).
    pub workers: Workers,
}

impl State {
    pub fn new(root: PathBuf, account: String, token: String, origin: String) -> State {
        for sub in ["dbs", "snapshots", "exports", "uploads"] {
            std::fs::create_dir_all(root.join(sub)).expect("server storage");
        }
        State {
            root,
            account,
            token,
            origin,
            secret: random_hex(32),
            dbs: Vec::new(),
            settings: Settings {
                permissions: vec![
                    Permission::D1Read,
                    Permission::D1Edit,
                    Permission::AnalyticsRead,
                ],
                max_batch_statements: 10_000,
                export_polls: 1,
                import_polls: 1,
                graphql_budget: 300,
            },
            faults: Vec::new(),
            requests: Vec::new(),
            analytics: Analytics::default(),
            travel: Travel::default(),
            graphql_window: None,
            workers: Workers::default(),
        }
    }

    pub fn db_path(&self, uuid: &str) -> PathBuf {
        self.root.join("dbs").join(format!("{uuid}.sqlite3"))
    }

    pub fn find(&self, uuid: &str) -> Option<&Db> {
        self.dbs.iter().find(|d| d.uuid == uuid)
    }

    /// Creates the database file with D1's `_cf_KV` table and takes its first copy.
    pub fn create_database(&mut self, name: &str) -> Result<String, String> {
        if self.dbs.iter().any(|d| d.name == name) {
            return Err(format!("a database named {name} exists"));
        }
        let uuid = new_uuid();
        let path = self.db_path(&uuid);
        let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
        conn.execute_batch("CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
            .map_err(|e| e.to_string())?;
        drop(conn);
        let now = Utc::now();
        self.dbs.push(Db {
            uuid: uuid.clone(),
            name: name.to_string(),
            created_at: now,
            read_replication: "disabled".into(),
        });
        self.snapshot(&uuid)?;
        let size = self.file_size(&uuid);
        self.analytics.record_storage(&uuid, now, size);
        Ok(uuid)
    }

    /// Forgets a database and deletes its file and copies.
    pub fn delete_database(&mut self, uuid: &str) {
        self.dbs.retain(|d| d.uuid != uuid);
        let _ = std::fs::remove_file(self.db_path(uuid));
        self.travel.forget(uuid);
    }

    pub fn file_size(&self, uuid: &str) -> u64 {
        std::fs::metadata(self.db_path(uuid)).map_or(0, |m| m.len())
    }

    /// Tables, less D1's `_cf_*` and SQLite's own.
    pub fn num_tables(&self, uuid: &str) -> Result<u64, String> {
        let conn = rusqlite::Connection::open(self.db_path(uuid)).map_err(|e| e.to_string())?;
        conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
        .map_err(|e| e.to_string())
    }

    /// The database object of get and create (the docs' `D1` model).
    pub fn database_json(&self, db: &Db) -> Result<Value, String> {
        Ok(json!({
            "uuid": db.uuid,
            "name": db.name,
            "created_at": iso(db.created_at),
            "version": "production",
            "num_tables": self.num_tables(&db.uuid)?,
            "file_size": self.file_size(&db.uuid),
            "jurisdiction": null,
            "read_replication": { "mode": db.read_replication },
        }))
    }

    /// A list entry (the docs' `DatabaseListResponse`).
    pub fn list_item(db: &Db) -> Value {
        json!({
            "uuid": db.uuid,
            "name": db.name,
            "created_at": iso(db.created_at),
            "version": "production",
            "jurisdiction": null,
        })
    }
}

/// `2023-05-23T08:33:54.590Z`, as the API writes times.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A random version-4 UUID.
fn new_uuid() -> String {
    let mut h: Vec<char> = random_hex(32).chars().collect();
    h[12] = '4';
    h[16] = ['8', '9', 'a', 'b'][h[16].to_digit(16).unwrap_or(0) as usize % 4];
    let s: String = h.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    )
}
