//! The ledger belongs to d1ops: when production's `d1_migrations` and d1ops' record of what
//! it applied disagree (a row inserted or deleted by hand, an old d1ops, wrangler run by
//! hand), every command that reads production says so, promotion is refused with the plain
//! reason, and `d1ops ledger repair` reconciles them — proven on a throwaway copy first,
//! after a typed confirmation, audited. Drift is made by editing production's file directly.
mod cf_support;
mod common;
mod console_support;

use common::{Ws, check, db_digest};

/// Generates `local::<test>` and `cloudflare::<test>` for each test function (as in
/// `tests/lifecycle.rs`).
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
    hand_inserted_ledger_row_is_reported_by_every_command,
    deleted_ledger_row_blocks_promote_with_a_plain_reason,
    ledger_repair_restores_the_record_and_is_audited,
    ledger_repair_is_proven_on_a_copy_first,
);

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n";
const NOTES: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n";

/// R1 (0001_users.sql) live; R2 (0002_notes.sql) deployed and approved, not promoted.
fn live_with_approved_candidate(ws: Ws) -> (Ws, String, String) {
    ws.migration("0001_users.sql", USERS);
    let r1 = ws.ship();
    ws.migration("0002_notes.sql", NOTES);
    let (code, out) = ws.deploy();
    assert_eq!(code, Some(0), "{out}");
    let r2 = out["id"].as_str().expect("id").to_string();
    ws.ok_as("bob", &["approve", &r2]);
    (ws, r1, r2)
}

fn edit_production(ws: &Ws, sql: &str) {
    ws.production().execute_batch(sql).expect("edit production");
}

fn audit_actions(ws: &Ws) -> Vec<serde_json::Value> {
    ws.json(&["audit", "--limit", "500"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn repaired_events(ws: &Ws) -> Vec<serde_json::Value> {
    audit_actions(ws)
        .into_iter()
        .filter(|e| e["action"] == "ledger.repaired")
        .collect()
}

fn lock_rows(ws: &Ws) -> i64 {
    rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
        .expect("state")
        .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
        .expect("lock rows")
}

fn hand_inserted_ledger_row_is_reported_by_every_command(ws: Ws) {
    let (ws, r1, r2) = live_with_approved_candidate(ws);
    // Healthy: no warning anywhere.
    let (_, _, err) = ws.run_as("alice", &["releases"]);
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(ws.json(&["ledger"])["agrees"], true);

    edit_production(
        &ws,
        "INSERT INTO d1_migrations (name) VALUES ('0007_forged.sql');",
    );
    for args in [
        &["releases"][..],
        &["--json", "releases"],
        &["envs"],
        &["--json", "envs"],
        &["release", "show", &r1],
        &["diff", &r2],
        &["snapshots"],
    ] {
        let (code, _, err) = ws.run_as("alice", args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.contains("warning")).count(),
            1,
            "{args:?} must print exactly one warning line: {err}"
        );
        assert!(
            err.contains("0007_forged.sql")
                && err.contains("never applied by d1ops")
                && err.contains("d1ops ledger repair"),
            "{args:?}: {err}"
        );
    }
    // Promotion is refused (exit 4) with the plain reason; the release stays approved.
    let before = ws.production_state();
    let (code, _, err) = ws.run_as("bob", &["promote", &r2, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("0007_forged.sql") && err.contains("d1ops ledger repair"),
        "{err}"
    );
    assert_eq!(ws.release_state(&r2), "approved");
    assert_eq!(ws.production_state(), before);
    // A new deploy is blocked by the gate with the same plain reason.
    let (code, _, err) = ws.run_as("alice", &["--json", "deploy"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("0007_forged.sql"), "{err}");
    let (_, out) = ws.deploy();
    let drift = check(&out, "mig.drift");
    assert_eq!(drift["status"], "fail", "{drift}");
    assert!(
        drift["reason"]
            .as_str()
            .is_some_and(|r| r.contains("0007_forged.sql") && r.contains("d1ops ledger repair")),
        "{drift}"
    );
    // `ledger` shows both sides and what a repair would do.
    let report = ws.json(&["ledger"]);
    assert_eq!(report["agrees"], false, "{report}");
    assert_eq!(report["differences"]["unrecorded"][0], "0007_forged.sql");
    assert_eq!(report["repair"]["remove"][0], "0007_forged.sql", "{report}");
    assert_eq!(report["ledger"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["record"].as_array().map(Vec::len), Some(1));
    let text = ws.ok(&["ledger"]);
    assert!(
        text.contains("0007_forged.sql") && text.contains("never applied by d1ops"),
        "{text}"
    );
    assert!(text.contains("policy:"), "{text}");
}

fn deleted_ledger_row_blocks_promote_with_a_plain_reason(ws: Ws) {
    let (ws, _r1, r2) = live_with_approved_candidate(ws);
    edit_production(
        &ws,
        "DELETE FROM d1_migrations WHERE name = '0001_users.sql';",
    );
    let before = ws.production_state();
    let (code, _, err) = ws.run_as("bob", &["promote", &r2, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("0001_users.sql")
            && err.contains("missing from the ledger")
            && err.contains("d1ops ledger repair"),
        "{err}"
    );
    assert!(
        !err.contains("production changed since"),
        "the reason must be the ledger, not an unrelated one: {err}"
    );
    assert_eq!(ws.release_state(&r2), "approved");
    assert_eq!(ws.production_state(), before);
    // The next deploy names the real cause too (before: only "table users already exists").
    let (code, out) = ws.deploy();
    assert_eq!(code, Some(3), "{out}");
    let drift = check(&out, "mig.drift");
    assert_eq!(drift["status"], "fail", "{drift}");
    assert!(
        drift["reason"]
            .as_str()
            .is_some_and(|r| r.contains("0001_users.sql") && r.contains("missing from the ledger")),
        "{drift}"
    );
}

fn ledger_repair_restores_the_record_and_is_audited(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration("0002_notes.sql", NOTES);
    ws.ship();
    edit_production(
        &ws,
        "DELETE FROM d1_migrations WHERE name = '0001_users.sql';\n\
         INSERT INTO d1_migrations (name) VALUES ('0009_forged.sql');",
    );
    let out = ws.ok(&["ledger", "repair", "--yes"]);
    assert!(out.contains("repaired"), "{out}");
    assert!(out.contains("throwaway copy"), "{out}");
    assert_eq!(
        ws.production_ledger(),
        ["0001_users.sql", "0002_notes.sql"],
        "d1ops' record is the truth for what it applied"
    );
    assert_eq!(ws.json(&["ledger"])["agrees"], true);
    let (_, _, err) = ws.run_as("alice", &["releases"]);
    assert!(!err.contains("warning"), "{err}");
    // Audited, with the differences, by the operator; the chain still verifies.
    let events = repaired_events(&ws);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], "alice");
    let detail = events[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("0009_forged.sql") && detail.contains("0001_users.sql"),
        "{detail}"
    );
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
    assert_eq!(lock_rows(&ws), 0);
    // No throwaway copy is left behind.
    assert!(ws.database_file("ledger-repair-check").is_none());
    // Promotion works again.
    ws.migration(
        "0003_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
    );
    ws.ship();
    assert_eq!(
        ws.production_ledger(),
        ["0001_users.sql", "0002_notes.sql", "0003_tags.sql"]
    );
    // Nothing left to do: a second repair says so and audits nothing.
    let out = ws.ok(&["ledger", "repair", "--yes"]);
    assert!(out.contains("nothing to repair"), "{out}");
    assert_eq!(repaired_events(&ws).len(), 1);
}

#[test]
fn ledger_row_whose_file_is_in_the_workspace_waits_for_the_operator() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    // Someone applied 0002 by hand (wrangler): schema and ledger row, no d1ops record.
    ws.migration("0002_notes.sql", NOTES);
    edit_production(
        &ws,
        &format!("{NOTES}INSERT INTO d1_migrations (name) VALUES ('0002_notes.sql');"),
    );
    let before = db_digest(&ws.production_path());
    let (code, _, err) = ws.run_as("alice", &["ledger", "repair", "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("0002_notes.sql") && err.contains("--adopt") && err.contains("--forget"),
        "{err}"
    );
    assert_eq!(db_digest(&ws.production_path()), before);
    assert!(repaired_events(&ws).is_empty());
    // A decision about a name that is not such a row is refused.
    let (code, _, err) = ws.run_as(
        "alice",
        &["ledger", "repair", "--yes", "--adopt", "0001_users.sql"],
    );
    assert_eq!(code, Some(1), "{err}");
    // Adopting keeps the row and records the file's checksum: the two sides agree.
    ws.ok(&["ledger", "repair", "--yes", "--adopt", "0002_notes.sql"]);
    assert_eq!(ws.production_ledger(), ["0001_users.sql", "0002_notes.sql"]);
    let report = ws.json(&["ledger"]);
    assert_eq!(report["agrees"], true, "{report}");
    assert_eq!(report["record"].as_array().map(Vec::len), Some(2));
    // The next release sees 0002 as applied and carries on after it.
    ws.migration(
        "0003_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
    );
    ws.ship();
    assert_eq!(
        ws.production_ledger(),
        ["0001_users.sql", "0002_notes.sql", "0003_tags.sql"]
    );
}

#[test]
fn ledger_repair_needs_confirmation() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    edit_production(
        &ws,
        "INSERT INTO d1_migrations (name) VALUES ('0007_forged.sql');",
    );
    let before = db_digest(&ws.production_path());
    // No terminal to type the confirmation on, and no --yes: refused, nothing changed.
    let (code, out, err) = ws.run_as("alice", &["ledger", "repair"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(
        out.contains("0007_forged.sql"),
        "shows what it would do first: {out}"
    );
    assert_eq!(db_digest(&ws.production_path()), before);
    assert!(repaired_events(&ws).is_empty());
    // Read-only mode refuses it too.
    let (code, _, err) = ws.run_as("alice", &["--readonly", "ledger", "repair", "--yes"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(db_digest(&ws.production_path()), before);
    assert_eq!(lock_rows(&ws), 0);
}

fn ledger_repair_is_proven_on_a_copy_first(ws: Ws) {
    ws.migration("0001_users.sql", USERS);
    ws.ship();
    ws.migration("0002_notes.sql", NOTES);
    ws.ship();
    // A hand-made trigger makes every ledger insert fail: the repair fails on the copy,
    // so production is never touched.
    edit_production(
        &ws,
        "DELETE FROM d1_migrations WHERE name = '0001_users.sql';\n\
         CREATE TRIGGER ledger_frozen BEFORE INSERT ON d1_migrations \
         BEGIN SELECT RAISE(ABORT, 'ledger frozen'); END;",
    );
    let before = db_digest(&ws.production_path());
    let (code, _, err) = ws.run_as("alice", &["ledger", "repair", "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("throwaway copy") && err.contains("ledger frozen"),
        "{err}"
    );
    assert_eq!(db_digest(&ws.production_path()), before);
    assert!(ws.database_file("ledger-repair-check").is_none());
    assert_eq!(lock_rows(&ws), 0);
    assert!(repaired_events(&ws).is_empty());

    // Killed after the copy was proven and before production was touched: production is as
    // it was, and the next command releases the lock.
    edit_production(&ws, "DROP TRIGGER ledger_frozen;");
    let before = db_digest(&ws.production_path());
    let status = ws
        .process("alice")
        .args(["ledger", "repair", "--yes"])
        .env("D1OPS_FAULT", "ledger.before_production")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run");
    assert!(!status.success());
    assert_eq!(db_digest(&ws.production_path()), before);
    assert_eq!(lock_rows(&ws), 1);
    let (code, _, err) = ws.run_as("alice", &["ledger"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("recovered"), "{err}");
    assert_eq!(lock_rows(&ws), 0);
    assert!(ws.database_file("ledger-repair-check").is_none());
    // Then the repair goes through.
    ws.ok(&["ledger", "repair", "--yes"]);
    assert_eq!(ws.production_ledger(), ["0001_users.sql", "0002_notes.sql"]);
}

/// The console counts the disagreement as an alert and says it on the Environments view.
#[test]
fn console_shows_a_ledger_disagreement() {
    let f = console_support::populated();
    let (mut state, _engine) = console_support::loaded(&f, false);
    assert!(state.data.ledger.is_none());
    let alerts = state.alerts();
    let prod = f.root().join(".d1ops/db/production.sqlite");
    rusqlite::Connection::open(&prod)
        .expect("production")
        .execute_batch("DELETE FROM d1_migrations WHERE name = '0001_users.sql';")
        .expect("edit");
    let (mut state2, _engine) = console_support::loaded(&f, false);
    let why = state2.data.ledger.clone().unwrap_or_default();
    assert!(why.contains("0001_users.sql"), "{why}");
    assert_eq!(state2.alerts(), alerts + 1);
    state2.tab = d1ops::console::state::Tab::Environments;
    let screen = console_support::render(&mut state2, &f.ids, 200, 40);
    assert!(screen.contains("ledger disagrees"), "{screen}");
    let _ = console_support::render(&mut state, &f.ids, 120, 40);
}
