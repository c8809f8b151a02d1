//! Migrations, probes and ad-hoc queries reach only their own database: what D1 refuses
//! (ATTACH, VACUUM INTO, load_extension, dangerous pragmas, writes to the ledger and to
//! `_cf_` tables) is refused by the sandbox on every connection that runs a user's SQL,
//! and at deploy before anything runs (`lint.d1`, exit 3), with production and d1ops'
//! state unchanged.
mod common;

use common::{Ws, check};

/// A live release with rows in production, so a side door would have something to take.
fn shipped() -> Ws {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n\
         INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');\n",
    );
    ws.ship();
    ws
}

/// Table-driven: each hostile migration is a `lint.d1` failure naming file, line and
/// statement; nothing ran on the preview or on production; no approval was forged.
#[test]
fn attach_in_migration_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let copy = outside.path().join("copy.sqlite");
    let cases: Vec<(String, &str)> = vec![
        (
            "ATTACH DATABASE '.d1ops/db/production.sqlite' AS p;\nDELETE FROM p.users;\n"
                .to_string(),
            "ATTACH",
        ),
        (
            "ATTACH DATABASE '.d1ops/state.sqlite' AS s;\nINSERT INTO s.approvals SELECT * FROM s.approvals;\n"
                .to_string(),
            "ATTACH",
        ),
        (format!("VACUUM INTO '{}';\n", copy.display()), "ATTACH"),
        ("SELECT load_extension('/tmp/evil.so');\n".to_string(), "load_extension"),
        ("PRAGMA writable_schema = 1;\n".to_string(), "writable_schema"),
        (
            "INSERT INTO d1_migrations (name) VALUES ('0003_future.sql');\n".to_string(),
            "ledger",
        ),
        ("DELETE FROM d1_migrations;\n".to_string(), "ledger"),
        ("CREATE TABLE _cf_mine (x INTEGER);\n".to_string(), "_cf_"),
    ];
    for (sql, needle) in &cases {
        let ws = shipped();
        let prod = ws.production_state();
        let approvals_before = approvals(&ws);
        ws.migration(
            "0002_hostile.sql",
            &format!("CREATE TABLE notes (id INTEGER PRIMARY KEY);\n{sql}"),
        );
        let (code, out) = ws.deploy();
        assert_eq!(code, Some(3), "{sql}: {out}");
        let lint = check(&out, "lint.d1");
        assert_eq!(lint["status"], "fail", "{sql}: {lint}");
        let reason = lint["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{sql}: {reason}");
        assert!(reason.contains("0002_hostile.sql:2"), "{sql}: {reason}");
        let apply = check(&out, "mig.apply");
        assert_eq!(apply["status"], "fail", "{sql}: {apply}");
        assert!(
            apply["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("not applied"),
            "{sql}: {apply}"
        );
        assert_eq!(ws.production_state(), prod, "{sql}: production changed");
        assert_eq!(approvals(&ws), approvals_before, "{sql}: approvals changed");
        let preview = ws
            .database_file(&format!(
                "preview-{}",
                out["id"].as_str().unwrap_or_default().to_lowercase()
            ))
            .expect("the preview exists");
        let tables: i64 = rusqlite::Connection::open(preview)
            .expect("preview")
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'notes'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(
            tables, 0,
            "{sql}: nothing of the migration ran on the preview"
        );
        assert_eq!(
            ws.run_as("alice", &["audit", "--verify"]).0,
            Some(0),
            "{sql}: the audit holds"
        );
        // `d1ops lint` says the same before any deploy.
        let (lint_code, lint_out, _) = ws.run_as("alice", &["lint"]);
        assert_ne!(lint_code, Some(0), "{sql}: lint passed: {lint_out}");
        assert!(lint_out.contains("d1.refused"), "{sql}: {lint_out}");
    }
    assert!(
        !copy.exists(),
        "VACUUM INTO wrote a copy outside the workspace"
    );
}

/// The refusal cannot be suppressed or re-graded: a statement the sandbox refuses would
/// not run anywhere, so the gate must not call the release ready.
#[test]
fn refused_statement_cannot_be_suppressed() {
    let ws = shipped();
    ws.migration(
        "0002_hostile.sql",
        "-- d1ops:allow d1.refused we know what we are doing\nATTACH DATABASE 'x.sqlite' AS x;\n",
    );
    std::fs::write(
        ws.path().join("d1ops.toml"),
        std::fs::read_to_string(ws.path().join("d1ops.toml")).expect("config")
            + "\n[gate.severity]\n\"lint.d1\" = \"off\"\n",
    )
    .expect("config");
    let (code, out) = ws.deploy();
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(check(&out, "mig.apply")["status"], "fail", "{out}");
}

/// `query` runs a user's SQL on an environment: the same refusals, no file written.
#[test]
fn query_cannot_attach_or_vacuum_into() {
    let ws = shipped();
    let outside = tempfile::tempdir().expect("tempdir");
    let copy = outside.path().join("copy.sqlite");
    for sql in [
        "ATTACH DATABASE '.d1ops/state.sqlite' AS s".to_string(),
        format!("VACUUM INTO '{}'", copy.display()),
        "PRAGMA writable_schema = 1".to_string(),
        "DELETE FROM d1_migrations".to_string(),
    ] {
        let before = ws.production_state();
        let (code, out, err) = ws.run_as("alice", &["query", "production", &sql, "--yes"]);
        assert_ne!(code, Some(0), "{sql}: {out}");
        assert!(err.contains("refused"), "{sql}: {err}");
        assert_eq!(ws.production_state(), before, "{sql}");
    }
    assert!(!copy.exists());
}

/// A probe is user SQL too: an ATTACH in a probe fails the probe and reaches nothing.
#[test]
fn probe_cannot_attach() {
    let ws = shipped();
    std::fs::write(
        ws.path().join("d1ops.toml"),
        std::fs::read_to_string(ws.path().join("d1ops.toml")).expect("config")
            + "\n[[probe]]\nname = \"sneaky\"\nsql = \"ATTACH DATABASE '.d1ops/state.sqlite' AS s\"\n",
    )
    .expect("config");
    ws.migration(
        "0002_notes.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n",
    );
    let (code, out) = ws.deploy();
    assert_eq!(code, Some(3), "{out}");
    let probe = check(&out, "probe.result");
    assert_eq!(probe["status"], "fail", "{probe}");
    assert!(
        probe.to_string().contains("refused"),
        "the probe's error says why: {probe}"
    );
}

fn approvals(ws: &Ws) -> i64 {
    rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
        .expect("state")
        .query_row("SELECT count(*) FROM approvals", [], |r| r.get(0))
        .expect("approvals")
}
