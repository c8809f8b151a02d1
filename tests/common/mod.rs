//! Shared helpers for the integration tests: real workspaces in temp dirs, the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// Variables a developer's shell may hold that must not reach the binary under test.
const CLOUDFLARE_ENV: [&str; 5] = [
    "D1OPS_CLOUDFLARE_API_BASE",
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_ACCOUNT_ID",
    "D1OPS_CLOUDFLARE_BACKOFF_MS",
    "D1OPS_WORKSPACE",
];

pub struct Ws {
    pub dir: tempfile::TempDir,
    /// Set when the workspace runs on the Cloudflare backend against a contract server.
    pub cf: Option<CloudflareSide>,
}

/// A lookup from a database name or id to the contract server's file for it.
pub type FileLookup<T> = Box<dyn Fn(&str) -> T + Send + Sync>;

/// What a workspace on the Cloudflare backend needs from the test's contract server (see
/// `d1ops_testkit::d1_contract`): where it listens, the credentials it accepts, and the SQLite
/// file behind each D1 database, so tests can read and change "Cloudflare's" databases directly.
pub struct CloudflareSide {
    pub base: String,
    pub token: String,
    pub account: String,
    pub production_id: String,
    /// The file of the D1 database with this exact name, when it exists.
    pub file_named: FileLookup<Option<PathBuf>>,
    /// The file of a D1 database by id.
    pub file_of: FileLookup<PathBuf>,
    /// Keeps the server alive as long as the workspace.
    pub keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Ws {
    /// A fresh workspace with `d1ops init` run in it.
    pub fn new() -> Ws {
        let ws = Ws {
            dir: tempfile::tempdir().expect("tempdir"),
            cf: None,
        };
        ws.ok(&["init"]);
        ws
    }

    /// A fresh workspace on the Cloudflare backend: `init`, then `backend = "cloudflare"`
    /// with the account and production database of the contract server.
    pub fn on_cloudflare(side: CloudflareSide) -> Ws {
        let ws = Ws {
            dir: tempfile::tempdir().expect("tempdir"),
            cf: Some(side),
        };
        ws.ok(&["init"]);
        let side = ws.cf.as_ref().expect("cloudflare side");
        let path = ws.path().join("d1ops.toml");
        let text = std::fs::read_to_string(&path)
            .expect("config")
            .replace("backend = \"local\"", "backend = \"cloudflare\"");
        std::fs::write(
            &path,
            format!(
                "{text}\n[cloudflare]\naccount_id = \"{}\"\ndatabase_id = \"{}\"\n",
                side.account, side.production_id
            ),
        )
        .expect("write config");
        ws
    }

    pub fn is_cloudflare(&self) -> bool {
        self.cf.is_some()
    }

    /// The environment a d1ops process of this workspace runs with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match &self.cf {
            Some(cf) => vec![
                ("D1OPS_CLOUDFLARE_API_BASE", cf.base.clone()),
                ("CLOUDFLARE_API_TOKEN", cf.token.clone()),
                ("D1OPS_CLOUDFLARE_BACKOFF_MS", "20".into()),
            ],
            None => Vec::new(),
        }
    }

    /// A plain process running the binary on this workspace (for spawning several at once).
    pub fn process(&self, user: &str) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("d1ops"));
        c.arg("--workspace").arg(self.path());
        c.env("D1OPS_USER", user);
        c.env("NO_COLOR", "1");
        for key in CLOUDFLARE_ENV {
            c.env_remove(key);
        }
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// The file behind the database d1ops calls `name` (a preview), when it exists.
    pub fn database_file(&self, name: &str) -> Option<PathBuf> {
        match &self.cf {
            Some(cf) => (cf.file_named)(&format!("d1ops-{}", name.to_lowercase())),
            None => {
                let p = self.path().join(format!(".d1ops/db/{name}.sqlite"));
                p.exists().then_some(p)
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, user: &str) -> Command {
        let mut c = Command::cargo_bin("d1ops").expect("binary");
        c.arg("--workspace").arg(self.path());
        c.env("D1OPS_USER", user);
        c.env("NO_COLOR", "1");
        c.env_remove("D1OPS_FAULT");
        c.env_remove("D1OPS_PAUSE");
        for key in CLOUDFLARE_ENV {
            c.env_remove(key);
        }
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// Runs as alice and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_as("alice", args)
    }

    pub fn ok_as(&self, user: &str, args: &[&str]) -> String {
        let out = self.cmd(user).args(args).output().expect("run");
        assert!(
            out.status.success(),
            "d1ops {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and returns (exit code, stdout, stderr).
    pub fn run_as(&self, user: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.cmd(user).args(args).output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn migration(&self, name: &str, sql: &str) {
        let dir = self.path().join("migrations");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), sql).expect("write migration");
    }

    /// `deploy --json` → (exit code, parsed JSON).
    pub fn deploy(&self) -> (Option<i32>, serde_json::Value) {
        let (code, out, err) = self.run_as("alice", &["--json", "deploy"]);
        let json = serde_json::from_str(&out)
            .unwrap_or_else(|_| panic!("deploy output is not JSON: {out}\nstderr: {err}"));
        (code, json)
    }

    /// Deploy (must be ready), approve as bob, promote; returns the release id.
    pub fn ship(&self) -> String {
        let (code, json) = self.deploy();
        assert_eq!(code, Some(0), "deploy blocked: {json}");
        let id = json["id"].as_str().expect("id").to_string();
        self.ok_as("bob", &["approve", &id]);
        self.ok_as("bob", &["promote", &id, "--yes"]);
        id
    }

    /// Production's database file (on Cloudflare: the contract server's file for it).
    pub fn production_path(&self) -> PathBuf {
        match &self.cf {
            Some(cf) => (cf.file_of)(&cf.production_id),
            None => self.path().join(".d1ops/db/production.sqlite"),
        }
    }

    pub fn production(&self) -> Connection {
        let c = Connection::open(self.production_path()).expect("open production");
        c.pragma_update(None, "foreign_keys", "ON").expect("fk");
        c
    }

    /// Names in production's `d1_migrations`, in apply order.
    pub fn production_ledger(&self) -> Vec<String> {
        self.production()
            .prepare("SELECT name FROM d1_migrations ORDER BY id")
            .expect("ledger")
            .query_map([], |r| r.get(0))
            .expect("ledger rows")
            .collect::<Result<_, _>>()
            .expect("ledger names")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.ok(&full);
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"))
    }

    pub fn release_state(&self, id: &str) -> String {
        self.json(&["release", "show", id])["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Everything about production that must not change on a failed promotion.
    pub fn production_state(&self) -> Option<String> {
        if !self.production_path().exists() {
            return None;
        }
        let state = Connection::open(self.path().join(".d1ops/state.sqlite")).expect("state");
        let active: Option<String> = state
            .query_row(
                "SELECT active_release FROM environments WHERE name = 'production'",
                [],
                |r| r.get(0),
            )
            .expect("production row");
        Some(format!(
            "{}\nactive={active:?}",
            db_digest(&self.production_path())
        ))
    }

    /// A digest of d1ops' own state (releases and audit), to prove "nothing changed".
    pub fn state_digest(&self) -> String {
        let p = self.path().join(".d1ops/state.sqlite");
        if !p.exists() {
            return "no state".into();
        }
        let c = Connection::open(p).expect("state");
        let mut h = Sha256::new();
        for table in [
            "releases",
            "environments",
            "audit",
            "approvals",
            "promotion_lock",
        ] {
            h.update(table_digest(&c, table).as_bytes());
        }
        hex::encode(h.finalize())
    }
}

fn table_digest(c: &Connection, table: &str) -> String {
    let mut stmt = c
        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
        .or_else(|_| c.prepare(&format!("SELECT * FROM \"{table}\"")))
        .expect("select");
    let n = stmt.column_count();
    let mut rows = stmt.query([]).expect("query");
    let mut h = Sha256::new();
    while let Some(r) = rows.next().expect("row") {
        for i in 0..n {
            h.update(format!("{:?}|", r.get_ref(i).expect("cell")).as_bytes());
        }
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The gate check `id` in a deploy outcome (or any JSON with a `checks` array).
pub fn check(outcome: &serde_json::Value, id: &str) -> serde_json::Value {
    outcome["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no check {id} in {outcome}"))
}

/// Schema SQL, the ledger and a checksum of every table's rows.
pub fn db_digest(path: &Path) -> String {
    let c = Connection::open(path).expect("open");
    let mut out = String::new();
    let mut stmt = c
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .expect("schema");
    let objects: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("q")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (ty, name, sql) in &objects {
        out.push_str(&format!("{ty} {name}: {}\n", sql.as_deref().unwrap_or("")));
        if ty == "table" {
            let count: i64 = c
                .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                    r.get(0)
                })
                .expect("count");
            out.push_str(&format!("  rows={count} sha={}\n", table_digest(&c, name)));
        }
    }
    out
}
