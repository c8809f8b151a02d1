//! The audit log's tamper evidence, through the real binary on real workspaces: a cut tail (the
//! last events or all of them), a forged event with a recomputed chain, dropped triggers, the
//! optional HMAC key, and no false alarm from a crash between the commit and the head file.
mod common;

use common::Ws;
use rusqlite::{Connection, params};
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY_ENV: &str = "D1OPS_AUDIT_KEY";
const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n";

/// Runs d1ops as `user` with the audit key set to `key` (or unset): (exit code, stdout, stderr).
fn run(ws: &Ws, user: &str, key: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = ws.cmd(user);
    match key {
        Some(k) => c.env(KEY_ENV, k),
        None => c.env_remove(KEY_ENV),
    };
    let out = c.args(args).output().expect("run d1ops");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(ws: &Ws, user: &str, key: Option<&str>, args: &[&str]) -> String {
    let (code, out, err) = run(ws, user, key, args);
    assert_eq!(
        code,
        Some(0),
        "d1ops {args:?} failed:\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// Deploys the migrations as alice, approves and promotes as bob; returns the release id.
fn ship(ws: &Ws, key: Option<&str>) -> String {
    let out = ok(ws, "alice", key, &["--json", "deploy"]);
    let v: Value = serde_json::from_str(&out).expect("deploy JSON");
    let id = v["id"].as_str().expect("release id").to_string();
    ok(ws, "bob", key, &["approve", &id]);
    ok(ws, "bob", key, &["promote", &id, "--yes"]);
    id
}

/// `audit --verify --json` → (exit code, parsed report).
fn verify(ws: &Ws, key: Option<&str>) -> (Option<i32>, Value) {
    let (code, out, err) = run(ws, "alice", key, &["--json", "audit", "--verify"]);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|_| panic!("verify output is not JSON: {out}\nstderr: {err}"));
    (code, v)
}

/// `audit --verify` as text → (exit code, stdout).
fn verify_text(ws: &Ws, key: Option<&str>) -> (Option<i32>, String) {
    let (code, out, _) = run(ws, "alice", key, &["audit", "--verify"]);
    (code, out)
}

fn state(ws: &Ws) -> Connection {
    Connection::open(ws.path().join(".d1ops/state.sqlite")).expect("open state")
}

fn head_file(ws: &Ws) -> std::path::PathBuf {
    ws.path().join(".d1ops/audit.head")
}

/// The last event's (seq, hash).
fn last_event(c: &Connection) -> (i64, String) {
    c.query_row(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("last event")
}

fn findings(v: &Value) -> Vec<Value> {
    v["findings"].as_array().cloned().unwrap_or_default()
}

fn finding<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["kind"] == kind).collect())
        .unwrap_or_default()
}

/// The plain (unkeyed) chain hash, recomputed the way an attacker who read the source would.
fn plain_hash(prev: &str, seq: i64, fields: [&str; 6]) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for part in [prev, seq.as_str()].into_iter().chain(fields) {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends a forged event after the last one with a correctly recomputed plain hash, claiming
/// `scheme`, and moves the head file onto it as a careful attacker would. Returns its seq.
fn forge_event(ws: &Ws, scheme: &str) -> i64 {
    let c = state(ws);
    let (seq, prev) = last_event(&c);
    let seq = seq + 1;
    let fields = [
        "2026-01-01T00:00:00.000Z",
        "bob",
        "release.approved",
        "",
        "",
        "{}",
    ];
    let hash = plain_hash(&prev, seq, fields);
    c.execute(
        "INSERT INTO audit(seq, at, actor, action, release_id, env, detail, prev_hash, hash, scheme) \
         VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5, ?6, ?7, ?8)",
        params![seq, fields[0], fields[1], fields[2], fields[5], prev, hash, scheme],
    )
    .expect("forge");
    std::fs::write(
        head_file(ws),
        format!(r#"{{"seq":{seq},"hash":"{hash}","at":"2026-01-01T00:00:00.000Z"}}"#),
    )
    .expect("rewrite head file");
    seq
}

#[test]
fn deleting_the_last_events_is_detected() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    let id = ship(&ws, None);
    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);

    let c = state(&ws);
    let (last, last_hash) = last_event(&c);
    c.execute_batch("DROP TRIGGER audit_no_delete;")
        .expect("drop guard");
    c.execute("DELETE FROM audit WHERE seq > ?1", [last - 2])
        .expect("cut the tail");
    drop(c);

    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false);
    let cut = finding(&v, "tail_cut");
    let from_file = cut
        .iter()
        .find(|f| f["source"] == "head_file")
        .unwrap_or_else(|| panic!("no tail cut from the head file: {v}"));
    assert_eq!(from_file["recorded"]["seq"], last);
    assert_eq!(from_file["recorded"]["hash"], last_hash.as_str());
    assert_eq!(from_file["table_ends_at"], last - 2);
    // The promoted release recorded the head after its last event too.
    assert!(
        cut.iter()
            .any(|f| f["source"] == "release" && f["release"] == id.as_str()),
        "{v}"
    );
    assert!(!finding(&v, "missing_triggers").is_empty(), "{v}");

    let (code, out) = verify_text(&ws, None);
    assert_eq!(code, Some(1));
    assert!(
        out.contains(&format!("tail cut: the head file says seq {last} hash "))
            && out.contains(&format!("but the table ends at seq {}", last - 2)),
        "{out}"
    );
    assert!(out.contains("missing trigger(s) audit_no_delete"), "{out}");

    // Later changes do not paper over the cut: the head file keeps the lost head.
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    ok(&ws, "alice", None, &["deploy"]);
    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["head_file"]["seq"], last, "{v}");
}

#[test]
fn deleting_every_event_is_detected() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    ship(&ws, None);
    let c = state(&ws);
    let (last, _) = last_event(&c);
    c.execute_batch(
        "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; DELETE FROM audit;",
    )
    .expect("wipe the log");
    drop(c);

    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["events"], 0);
    let cut = finding(&v, "tail_cut");
    assert!(
        cut.iter()
            .any(|f| f["source"] == "head_file" && f["recorded"]["seq"] == last),
        "{v}"
    );
    assert!(cut.iter().all(|f| f["table_ends_at"] == 0), "{v}");
    let (code, out) = verify_text(&ws, None);
    assert_eq!(code, Some(1));
    assert!(
        out.contains(&format!("tail cut: the head file says seq {last} hash "))
            && out.contains("the table holds no event"),
        "{out}"
    );
}

#[test]
fn appended_forged_event_with_recomputed_chain_is_detected_with_key() {
    let key = "forging-needs-this-key";
    // A forged event that admits it is unkeyed, and one that claims to be keyed.
    for (scheme, kind) in [("sha256", "downgraded"), ("hmac-sha256", "mac_mismatch")] {
        let ws = Ws::new();
        ws.migration("0001_users.sql", USERS);
        ship(&ws, Some(key));
        let (code, v) = verify(&ws, Some(key));
        assert_eq!(code, Some(0), "{v}");
        assert!(v["keyed"].as_u64().unwrap_or(0) > 0, "{v}");

        let forged = forge_event(&ws, scheme);
        let (code, v) = verify(&ws, Some(key));
        assert_eq!(code, Some(1), "{scheme}: {v}");
        let found = finding(&v, kind);
        assert!(
            found.iter().any(|f| f["seq"] == forged),
            "{scheme}: expected {kind} at seq {forged}: {v}"
        );
        // Only the forged event is blamed: the chain before it holds.
        assert_eq!(v["first_bad_seq"], forged, "{v}");
        let (_, out) = verify_text(&ws, Some(key));
        assert!(out.contains(&format!("seq {forged}")), "{out}");
    }
}

#[test]
fn dropped_triggers_are_reported() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    ship(&ws, None);
    state(&ws)
        .execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .expect("drop guards");
    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(findings(&v).len(), 1, "only the triggers are wrong: {v}");
    assert_eq!(
        finding(&v, "missing_triggers")[0]["names"],
        serde_json::json!(["audit_no_update", "audit_no_delete"])
    );
    let (code, out) = verify_text(&ws, None);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("missing trigger(s) audit_no_update and audit_no_delete"),
        "{out}"
    );
}

#[test]
fn crash_between_commit_and_head_file_is_not_a_false_alarm() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    ship(&ws, None);
    let c = state(&ws);
    let (last, _) = last_event(&c);
    let before: String = c
        .query_row("SELECT hash FROM audit WHERE seq = ?1", [last - 1], |r| {
            r.get(0)
        })
        .expect("previous event");
    drop(c);
    // The last commit landed; the process died before it moved the head file on.
    std::fs::write(
        head_file(&ws),
        format!(
            r#"{{"seq":{},"hash":"{before}","at":"2026-01-01T00:00:00.000Z"}}"#,
            last - 1
        ),
    )
    .expect("head file one step behind");
    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["head_file"]["seq"], last - 1);
    // The next audited change moves the head file on from there.
    ok(
        &ws,
        "alice",
        None,
        &["annotate", &last_release(&ws), "--cause", "test"],
    );
    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["head_file"]["seq"], v["head"]["seq"], "{v}");

    // A crash during the very first commit leaves only the genesis head file.
    let fresh = Ws::new();
    fresh.migration("0001_users.sql", USERS);
    ok(&fresh, "alice", None, &["deploy"]);
    std::fs::write(
        head_file(&fresh),
        format!(
            r#"{{"seq":0,"hash":"{}","at":"2026-01-01T00:00:00.000Z"}}"#,
            "0".repeat(64)
        ),
    )
    .expect("genesis head file");
    let (code, v) = verify(&fresh, None);
    assert_eq!(code, Some(0), "{v}");
}

fn last_release(ws: &Ws) -> String {
    state(ws)
        .query_row(
            "SELECT id FROM releases ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a release")
}

#[test]
fn wrong_audit_key_is_reported() {
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    let id = ship(&ws, Some("the-right-key"));
    assert_eq!(verify(&ws, Some("the-right-key")).0, Some(0));

    let (code, v) = verify(&ws, Some("a-wrong-key"));
    assert_eq!(code, Some(1), "{v}");
    let mismatch = finding(&v, "mac_mismatch");
    assert_eq!(mismatch.len(), 1, "one finding, not one per event: {v}");
    assert_eq!(mismatch[0]["seq"], 1);
    assert_eq!(mismatch[0]["wrong_key"], true);
    let (_, out) = verify_text(&ws, Some("a-wrong-key"));
    assert!(out.contains("the MAC does not match at seq 1"), "{out}");

    // Without any key the keyed events cannot be checked, and verify says so.
    let (code, v) = verify(&ws, None);
    assert_eq!(code, Some(1), "{v}");
    let events = v["keyed"].as_u64().expect("keyed count");
    let (_, out) = verify_text(&ws, None);
    assert!(
        out.contains(&format!(
            "{events} events are keyed; set D1OPS_AUDIT_KEY to verify them"
        )),
        "{out}"
    );

    // Recording a change on a keyed log without the key is refused, and changes nothing.
    let before = ws.state_digest();
    let (code, _, err) = run(&ws, "alice", None, &["annotate", &id, "--cause", "x"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("D1OPS_AUDIT_KEY"), "{err}");
    assert_eq!(ws.state_digest(), before);
}

#[test]
fn audit_key_is_never_printed_or_stored() {
    let key = "k3y-must-not-leak-5c2e9a71";
    let ws = Ws::new();
    ws.migration("0001_users.sql", USERS);
    let id = ship(&ws, Some(key));
    let mut printed = String::new();
    for k in [Some(key), Some("another-key"), None] {
        for args in [
            &["audit"][..],
            &["--json", "audit"],
            &["audit", "--verify"],
            &["--json", "audit", "--verify"],
            &["release", "show", &id],
            &["--json", "release", "show", &id],
        ] {
            let (_, out, err) = run(&ws, "alice", k, args);
            printed.push_str(&out);
            printed.push_str(&err);
        }
    }
    assert!(!printed.is_empty());
    let hex_key = hex::encode(key);
    assert!(
        !printed.contains(key) && !printed.contains(&hex_key),
        "the key was printed"
    );
    let mut files = 0;
    let mut stack = vec![ws.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read file");
            files += 1;
            for needle in [key.as_bytes(), hex_key.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "the key is stored in {}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 3, "walked {files} files");
    assert!(head_file(&ws).exists());
}
