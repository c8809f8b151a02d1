//! Managed runtime binding: `d1ops env binding ENV` prints what an app needs to reach that
//! environment's database — wrangler's `[[d1_databases]]` block on Cloudflare, the `serve`
//! URL and the file locally — as TOML, JSON or shell assignments, and never a token.
mod cf_support;
mod common;

use common::Ws;

/// Generates `local::<test>` and `cloudflare::<test>` for each test function (as in
/// `tests/ledger.rs`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[test] fn $name() { super::$name(super::Ws::new()); } )*
        }
        mod cloudflare {
            $( #[test] fn $name() { super::$name(super::cf_support::cloudflare_ws().1); } )*
        }
    };
}

on_both_backends!(
    binding_prints_the_wrangler_block_of_production,
    binding_of_a_preview_points_at_the_preview,
    binding_formats_env_and_json,
);

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n";

/// Production's database id as `envs --json` reports it.
fn env_database_id(ws: &Ws, name: &str) -> String {
    ws.json(&["envs"])
        .as_array()
        .expect("envs")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["database_id"].as_str())
        .unwrap_or_else(|| panic!("no database id for {name}"))
        .to_string()
}

fn set_binding(ws: &Ws, name: &str) {
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, format!("{text}\n[database]\nbinding = \"{name}\"\n")).expect("write");
}

fn binding_prints_the_wrangler_block_of_production(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    let out = ws.ok(&["env", "binding", "production"]);
    let id = env_database_id(&ws, "production");
    let (name, expected_id) = match &ws.cf {
        Some(cf) => ("app-production", cf.production_id.clone()),
        None => ("production", "production".to_string()),
    };
    assert_eq!(id, expected_id);
    assert!(
        out.contains(&format!(
            "[[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"{name}\"\ndatabase_id = \"{id}\"\n"
        )),
        "{out}"
    );
    if ws.is_cloudflare() {
        assert!(out.starts_with("[[d1_databases]]"), "{out}");
    } else {
        assert!(
            out.contains("http://127.0.0.1:8787/accounts/local/d1/database/production/query"),
            "{out}"
        );
        assert!(
            out.contains(&ws.production_path().display().to_string()),
            "{out}"
        );
    }
    // The binding name comes from [database] binding.
    set_binding(&ws, "APP_DB");
    let out = ws.ok(&["env", "binding", "production", "--format", "toml"]);
    assert!(out.contains("binding = \"APP_DB\"\n"), "{out}");
}

fn binding_of_a_preview_points_at_the_preview(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration(
        "0002_notes.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n",
    );
    let (code, out) = ws.deploy();
    assert_eq!(code, Some(0), "{out}");
    let preview = out["preview"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            ws.json(&["envs"])
                .as_array()
                .expect("envs")
                .iter()
                .find(|e| e["kind"] == "preview")
                .and_then(|e| e["name"].as_str())
                .expect("a preview")
                .to_string()
        });
    let preview_id = env_database_id(&ws, &preview);
    let production_id = env_database_id(&ws, "production");
    assert_ne!(preview_id, production_id);
    let b = ws.json(&["env", "binding", &preview]);
    assert_eq!(b["env"], preview.as_str());
    assert_eq!(b["database_id"], preview_id.as_str());
    let toml = ws.ok(&["env", "binding", &preview]);
    assert!(
        toml.contains(&format!("database_id = \"{preview_id}\"\n")),
        "{toml}"
    );
    assert!(
        !toml.contains(&production_id) || !ws.is_cloudflare(),
        "{toml}"
    );
    match &ws.cf {
        Some(_) => {
            assert_eq!(b["database"], preview_id.as_str());
            assert_eq!(
                b["database_name"],
                format!("d1ops-{}", preview.to_lowercase()).as_str()
            );
            assert!(b.get("d1_url").is_none(), "{b}");
        }
        None => {
            let file = ws.database_file(&preview).expect("preview file");
            assert_eq!(b["database"], file.display().to_string().as_str());
            assert_eq!(
                b["d1_url"],
                format!("http://127.0.0.1:8787/accounts/local/d1/database/{preview}/query")
                    .as_str()
            );
        }
    }
}

fn binding_formats_env_and_json(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    let id = env_database_id(&ws, "production");
    let env = ws.ok(&["env", "binding", "production", "--format", "env"]);
    let json = ws.json(&["env", "binding", "production"]);
    let explicit: serde_json::Value =
        serde_json::from_str(&ws.ok(&["env", "binding", "production", "--format", "json"]))
            .expect("json");
    assert_eq!(json, explicit);
    assert_eq!(json["binding"], "DB");
    assert_eq!(json["database_id"], id.as_str());
    let database = json["database"].as_str().expect("database").to_string();
    let name = json["database_name"].as_str().expect("name").to_string();
    let mut expected =
        format!("D1OPS_DATABASE='{database}'\nD1OPS_DATABASE_NAME='{name}'\nD1OPS_BINDING='DB'\n");
    if ws.is_cloudflare() {
        assert_eq!(database, id);
        assert_eq!(json["backend"], "cloudflare");
    } else {
        assert_eq!(database, ws.production_path().display().to_string());
        assert_eq!(json["backend"], "local");
        let url = json["d1_url"].as_str().expect("url");
        expected.push_str(&format!("D1OPS_D1_URL='{url}'\n"));
    }
    assert_eq!(env, expected);
    // The assignments are valid shell.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{env}\ntest \"$D1OPS_BINDING\" = DB"))
        .status()
        .expect("sh");
    assert!(status.success());
}

#[test]
fn binding_before_production_exists_is_a_clear_error() {
    let ws = Ws::new();
    for format in ["toml", "json", "env"] {
        let (code, out, err) = ws.run_as(
            "alice",
            &["env", "binding", "production", "--format", format],
        );
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(
            err.trim(),
            "d1ops: production has no database yet: it is created by the first promotion whose release has migrations"
        );
    }
    let (code, _, err) = ws.run_as("alice", &["env", "binding", "staging"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no environment \"staging\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn binding_never_prints_the_token() {
    let (_server, ws) = cf_support::cloudflare_ws();
    let token = ws.cf.as_ref().expect("cloudflare").token.clone();
    assert!(!token.is_empty());
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration(
        "0002_notes.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n",
    );
    let (code, out) = ws.deploy();
    assert_eq!(code, Some(0), "{out}");
    let preview = ws
        .json(&["envs"])
        .as_array()
        .expect("envs")
        .iter()
        .find(|e| e["kind"] == "preview")
        .and_then(|e| e["name"].as_str())
        .expect("a preview")
        .to_string();
    for env in ["production", preview.as_str(), "nope"] {
        for args in [
            vec!["env", "binding", env],
            vec!["env", "binding", env, "--format", "env"],
            vec!["env", "binding", env, "--format", "json"],
            vec!["--json", "env", "binding", env],
        ] {
            let (_, out, err) = ws.run_as("alice", &args);
            assert!(!out.contains(&token), "{args:?}: {out}");
            assert!(!err.contains(&token), "{args:?}: {err}");
            assert!(!out.to_lowercase().contains("token"), "{args:?}: {out}");
        }
    }
}
