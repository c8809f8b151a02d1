//! Gradual rollout of worker targets (issue 14 item 3) against the D1 contract server's
//! Workers endpoints: `promote` walks `rollout = [10, 50, 100]` step by step (two-version
//! deployments) and ends at 100%; `promote --no-wait` stops at the first split, which
//! `rollout status|continue|abort` drive later; a regression in production's traffic during
//! a step halts the rollout and puts the previous version back at 100%.
//!
//! No test depends on the clock: `rollout_wait = "0s"` where steps must be due at once, "1h"
//! where they must not be.
mod cf_support;
mod common;

use std::sync::Arc;

use cf_support::cloudflare_ws;
use chrono::{DateTime, Duration, Utc};
use common::Ws;
use d1ops::metrics::{MetricsStore, QueryError, QueryEvent};
use d1ops_testkit::d1_contract::D1Server;

const SCRIPT: &str = "shop-api";

/// A worker target rolling out in three steps, `wait` apart.
fn with_rollout(ws: &Ws, wait: &str) {
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&format!(
        "\n[[target]]\nname = \"api\"\nkind = \"worker\"\nscript = \"{SCRIPT}\"\ncompatibility_date = \"2026-11-01\"\nrollout = [10, 50, 100]\nrollout_wait = \"{wait}\"\n"
    ));
    std::fs::write(&path, text).expect("write config");
}

/// Deploys a new bundle with one more migration; approved, not promoted.
fn approved(ws: &Ws, n: u32) -> String {
    ws.migration(
        &format!("{n:04}_t{n}.sql"),
        &format!("CREATE TABLE t{n}(id INTEGER PRIMARY KEY);"),
    );
    let dir = ws.path().join("dist");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join("worker.js");
    std::fs::write(
        &p,
        format!("export default {{ fetch() {{ return new Response(\"v{n}\"); }} }};\n"),
    )
    .expect("bundle");
    let spec = format!("api={}", p.display());
    let (code, out, err) = ws.run_as("alice", &["--json", "deploy", "--artifact", &spec]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("deploy JSON");
    let id = v["id"].as_str().expect("id").to_string();
    ws.ok_as("bob", &["approve", &id]);
    id
}

/// The live deployment of the Worker: `(version, percentage)`.
fn live(server: &Arc<D1Server>) -> Vec<(String, f64)> {
    server.live_deployment(SCRIPT).expect("a live deployment")
}

/// First release: creates the Worker (nothing to split with), live at 100%.
fn first(server: &Arc<D1Server>, ws: &Ws) -> (String, String) {
    let r1 = approved(ws, 1);
    let out = ws.ok_as("bob", &["promote", &r1, "--yes"]);
    assert!(out.contains("created by a script upload"), "{out}");
    let l = live(server);
    assert_eq!(l.len(), 1, "{l:?}");
    (r1, l[0].0.clone())
}

/// Audit actions about `release`, oldest first.
fn audit_actions(ws: &Ws, release: &str) -> Vec<String> {
    let state =
        rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).expect("state store");
    let mut stmt = state
        .prepare("SELECT action FROM audit WHERE release_id = ?1 ORDER BY seq")
        .expect("prepare");
    stmt.query_map([release], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn count(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

fn status(ws: &Ws, id: &str) -> serde_json::Value {
    ws.json(&["rollout", "status", id])["rollouts"][0].clone()
}

fn active_release(ws: &Ws) -> serde_json::Value {
    ws.json(&["envs"])[0]["active_release"].clone()
}

#[test]
fn promote_walks_every_step_to_100_percent() {
    let (server, ws) = cloudflare_ws();
    with_rollout(&ws, "0s");
    let (r1, v1) = first(&server, &ws);
    assert!(
        audit_actions(&ws, &r1)
            .iter()
            .all(|a| !a.starts_with("rollout.")),
        "the first deployment has nothing to split with"
    );

    let r2 = approved(&ws, 2);
    let out = ws.ok_as("bob", &["promote", &r2, "--yes"]);
    assert!(out.contains("takes 10% of requests"), "{out}");
    assert!(out.contains("rollout done"), "{out}");
    let l = live(&server);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_ne!(l[0].0, v1);
    assert!((l[0].1 - 100.0).abs() < 1e-9, "{l:?}");

    let actions = audit_actions(&ws, &r2);
    assert_eq!(count(&actions, "rollout.step"), 3, "{actions:?}");
    assert_eq!(count(&actions, "rollout.done"), 1, "{actions:?}");
    assert_eq!(ws.release_state(&r2), "live");
    let t = &ws.json(&["release", "show", &r2])["targets"][0];
    assert_eq!(t["rollout"]["status"], "done", "{t}");
    assert_eq!(t["rollout"]["percent"], 100, "{t}");
    assert_eq!(t["rollout"]["step"], 3, "{t}");
    assert!(
        ws.json(&["rollout", "status"])["rollouts"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[test]
fn no_wait_stops_at_the_first_split_and_rollout_drives_it() {
    let (server, ws) = cloudflare_ws();
    with_rollout(&ws, "1h");
    let (r1, v1) = first(&server, &ws);
    let r2 = approved(&ws, 2);
    let out = ws.json_as_bob(&["promote", &r2, "--yes", "--no-wait"]);
    assert_eq!(out["rollouts"][0]["status"], "rolling", "{out}");

    let l = live(&server);
    assert_eq!(l.len(), 2, "{l:?}");
    let v2 = l[0].0.clone();
    assert_ne!(v2, v1);
    assert_eq!(l, vec![(v2.clone(), 10.0), (v1.clone(), 90.0)]);
    let s = status(&ws, &r2);
    assert_eq!(s["status"], "rolling", "{s}");
    assert_eq!(
        (s["step"].as_u64(), s["total_steps"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(s["next_percent"], 50, "{s}");
    assert_eq!(s["due"], false, "{s}");
    assert_eq!(s["split"][0]["percentage"], 10, "{s}");
    assert_eq!(s["split"][1]["version_id"], v1.as_str(), "{s}");
    // The console's view: the rollouts in progress.
    assert_eq!(
        ws.json(&["rollout", "status"])["rollouts"][0]["release"],
        r2.as_str()
    );
    let t = &ws.json(&["release", "show", &r2])["targets"][0];
    assert_eq!(t["rollout"]["percent"], 10, "{t}");

    // While it rolls, no other release's code ships: the promotion is refused up front
    // (exit 4), before any migration runs.
    let r3 = approved(&ws, 3);
    let (code, _, err) = ws.run_as("bob", &["promote", &r3, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("rollout"), "{err}");
    assert!(!ws.production_ledger().iter().any(|m| m.contains("0003")));
    assert_eq!(live(&server), vec![(v2.clone(), 10.0), (v1.clone(), 90.0)]);

    // Not due yet: refused (exit 4), nothing moves; --now takes the step.
    let (code, _, err) = ws.run_as("bob", &["rollout", "continue", &r2]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--now"), "{err}");
    assert_eq!(live(&server), vec![(v2.clone(), 10.0), (v1.clone(), 90.0)]);
    let moved = ws.json_as_bob(&["rollout", "continue", &r2, "--now"]);
    assert_eq!(moved["outcome"], "advanced", "{moved}");
    assert_eq!(live(&server), vec![(v2.clone(), 50.0), (v1.clone(), 50.0)]);
    assert_eq!(status(&ws, &r2)["step"], 2);
    assert!(status(&ws, &r2)["last_check"]["status"].is_string());

    // Abort: the previous version at 100%, r2 failed at stage rollout, r1 active again.
    let (code, _, err) = ws.run_as("bob", &["rollout", "abort", &r2]);
    assert_ne!(code, Some(0), "abort needs --yes off a terminal: {err}");
    let aborted = ws.json_as_bob(&["rollout", "abort", &r2, "--yes", "--reason", "drill"]);
    assert_eq!(aborted["outcome"], "aborted", "{aborted}");
    assert_eq!(live(&server), vec![(v1.clone(), 100.0)]);
    assert_eq!(ws.release_state(&r2), "failed");
    let shown = ws.json(&["release", "show", &r2]);
    assert_eq!(shown["failure"]["stage"], "rollout", "{shown}");
    assert!(
        shown["failure"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("drill"),
        "{shown}"
    );
    assert_eq!(active_release(&ws), r1.as_str());
    assert_eq!(ws.release_state(&r1), "live");
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["code"][0]["release_id"], r1.as_str(), "{envs}");
    assert_eq!(envs[0]["code"][0]["version_id"], v1.as_str(), "{envs}");
    assert_eq!(status(&ws, &r2)["status"], "aborted");
    let actions = audit_actions(&ws, &r2);
    assert_eq!(count(&actions, "rollout.step"), 2, "{actions:?}");
    assert_eq!(count(&actions, "rollout.aborted"), 1, "{actions:?}");
    // Nothing left to drive.
    let (code, _, _) = ws.run_as("bob", &["rollout", "continue", &r2, "--now"]);
    assert_eq!(code, Some(4));
    // The schema stays: production keeps r2's migration.
    assert!(ws.production_ledger().iter().any(|m| m.contains("0002")));
}

/// Baseline traffic (fast, no errors) in the hour before the promotion, then slow,
/// error-heavy traffic after it: what the watch window calls a regression.
fn regression_after(ws: &Ws, promoted: DateTime<Utc>) {
    let sql = "SELECT id FROM t1 WHERE id = ?";
    let mut events = Vec::new();
    for m in 1..=50 {
        for _ in 0..4 {
            let mut e = QueryEvent::for_sql("production", sql, 1.0);
            e.at = promoted - Duration::minutes(m) - Duration::seconds(5);
            events.push(e);
        }
    }
    for k in 0..30 {
        let mut e = QueryEvent::for_sql("production", sql, 45.0);
        e.at = Utc::now();
        if k % 5 == 0 {
            e.error = Some(QueryError {
                code: "SQLITE_BUSY".into(),
                message: "database is locked".into(),
            });
        }
        events.push(e);
    }
    MetricsStore::open(&ws.path().join(".d1ops"))
        .expect("metrics store")
        .record(&events)
        .expect("record");
}

#[test]
fn a_regression_during_the_first_step_halts_and_restores_the_previous_version() {
    let (server, ws) = cloudflare_ws();
    with_rollout(&ws, "0s");
    let (r1, v1) = first(&server, &ws);
    let r2 = approved(&ws, 2);
    ws.ok_as("bob", &["promote", &r2, "--yes", "--no-wait"]);
    let l = live(&server);
    assert_eq!(l.len(), 2, "10/90 split: {l:?}");
    assert_eq!(l[1], (v1.clone(), 90.0));

    let promoted = ws.json(&["release", "show", &r2])["promoted_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .expect("promoted_at");
    regression_after(&ws, promoted);

    let (code, out, err) = ws.run_as("bob", &["--json", "rollout", "continue", &r2]);
    assert_eq!(code, Some(5), "{out}\n{err}");
    let m: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(m["outcome"], "halted", "{m}");
    assert_eq!(m["check"]["regressed"], true, "{m}");
    assert_eq!(live(&server), vec![(v1.clone(), 100.0)]);
    assert_eq!(ws.release_state(&r2), "failed");
    let shown = ws.json(&["release", "show", &r2]);
    assert_eq!(shown["failure"]["stage"], "rollout", "{shown}");
    assert!(
        shown["failure"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("regressed"),
        "{shown}"
    );
    assert_eq!(active_release(&ws), r1.as_str());
    let s = status(&ws, &r2);
    assert_eq!(s["status"], "halted", "{s}");
    assert_eq!(s["last_check"]["regressed"], true, "{s}");
    let actions = audit_actions(&ws, &r2);
    assert_eq!(count(&actions, "rollout.step"), 1, "{actions:?}");
    assert_eq!(count(&actions, "rollout.halted"), 1, "{actions:?}");
    assert!(
        ws.json(&["rollout", "status"])["rollouts"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

trait AsBob {
    fn json_as_bob(&self, args: &[&str]) -> serde_json::Value;
}

impl AsBob for Ws {
    /// `--json` as bob; must succeed.
    fn json_as_bob(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.ok_as("bob", &full);
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"))
    }
}

/// A `promote` killed while it waits between steps: the release is live, its rollout stays
/// `rolling` at the first split, and `rollout continue` drives it from another process.
#[test]
fn a_promote_killed_while_waiting_leaves_a_rollout_to_drive() {
    let (server, ws) = cloudflare_ws();
    with_rollout(&ws, "1h");
    let (_r1, v1) = first(&server, &ws);
    let r2 = approved(&ws, 2);
    let mut child = ws
        .process("bob")
        .args(["promote", &r2, "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn promote");
    // Poll (by state, not time) until the promotion finished and the wait began.
    let mut waiting = false;
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("promote ended instead of waiting: {status}");
        }
        let (_, out, _) = ws.run_as("alice", &["--json", "rollout", "status", &r2]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        if v["rollouts"][0]["status"] == "rolling" && ws.release_state(&r2) == "live" {
            waiting = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(waiting, "promote never reached its wait");
    child.kill().expect("kill promote");
    let _ = child.wait();

    let l = live(&server);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[1], (v1.clone(), 90.0));
    assert_eq!(status(&ws, &r2)["step"], 1);
    ws.ok_as("bob", &["rollout", "continue", &r2, "--now"]);
    assert_eq!(status(&ws, &r2)["step"], 2);
    assert_eq!(live(&server)[1], (v1, 50.0));
}

/// A rollback during a rollout ends it: the earlier version at 100%, and the rollout reads
/// `aborted` (recorded so by the next `rollout` command), with nothing left to drive.
#[test]
fn a_rollback_during_a_rollout_ends_it() {
    let (server, ws) = cloudflare_ws();
    with_rollout(&ws, "1h");
    let (r1, v1) = first(&server, &ws);
    let r2 = approved(&ws, 2);
    ws.ok_as("bob", &["promote", &r2, "--yes", "--no-wait"]);
    assert_eq!(status(&ws, &r2)["status"], "rolling");
    ws.ok_as("bob", &["rollback", "--yes"]);
    assert_eq!(live(&server), vec![(v1, 100.0)]);
    assert_eq!(active_release(&ws), r1.as_str());
    assert_eq!(status(&ws, &r2)["status"], "aborted");
    assert!(
        ws.json(&["rollout", "status"])["rollouts"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let (code, _, err) = ws.run_as("bob", &["rollout", "abort", &r2, "--yes"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(count(&audit_actions(&ws, &r2), "rollout.aborted"), 1);
    let (code, _, _) = ws.run_as("bob", &["rollout", "continue", &r2, "--now"]);
    assert_eq!(code, Some(4));
    // The rolled-back release stays rolled back: the abort only recorded the end.
    assert_eq!(ws.release_state(&r2), "rolled_back");
}

/// `rollout = [100]` is one step: the rollout is done at once and never holds back the next
/// promotion.
#[test]
fn a_one_step_rollout_is_done_at_once() {
    let (server, ws) = cloudflare_ws();
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&format!(
        "\n[[target]]\nname = \"api\"\nkind = \"worker\"\nscript = \"{SCRIPT}\"\ncompatibility_date = \"2026-11-01\"\nrollout = [100]\n"
    ));
    std::fs::write(&path, text).expect("write config");
    let (_r1, v1) = first(&server, &ws);
    let r2 = approved(&ws, 2);
    ws.ok_as("bob", &["promote", &r2, "--yes", "--no-wait"]);
    let l = live(&server);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_ne!(l[0].0, v1);
    let actions = audit_actions(&ws, &r2);
    assert_eq!(count(&actions, "rollout.done"), 1, "{actions:?}");
    assert_eq!(status(&ws, &r2)["status"], "done");
    let r3 = approved(&ws, 3);
    ws.ok_as("bob", &["promote", &r3, "--yes"]);
    assert_eq!(ws.release_state(&r3), "live");
}
