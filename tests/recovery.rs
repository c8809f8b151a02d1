//! Crash safety: the process is killed at every step of a promotion; the next invocation
//! recovers production to exactly the old or exactly the new state.
mod common;

use common::Ws;

const POINTS: &[&str] = &[
    "promote.after_lock",
    "promote.after_snapshot",
    "promote.before_apply",
    "apply.after_first_migration",
    "apply.before_commit",
    "promote.after_commit",
];

fn staged() -> (Ws, String, String) {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    let first = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(name) VALUES ('a'), ('b');")
        .unwrap();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\nUPDATE users SET email = name || '@x';\n",
    );
    ws.migration(
        "0003_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    (ws, first, id)
}

#[test]
fn killed_at_every_step_recovers_to_old_or_new() {
    for point in POINTS {
        let (ws, first, id) = staged();
        let old = ws.production_state().unwrap();
        let out = ws
            .cmd("bob")
            .env("D1OPS_FAULT", point)
            .args(["promote", &id, "--yes"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the process should have died"
        );
        // The next invocation (any command) recovers.
        let (code, _, err) = ws.run_as("carol", &["envs"]);
        assert_eq!(code, Some(0), "{point}: {err}");
        assert!(
            err.contains("recovered an interrupted promotion"),
            "{point}: {err}"
        );
        let now = ws.production_state().unwrap();
        let state = ws.release_state(&id);
        if now == old {
            assert_eq!(
                state, "approved",
                "{point}: rolled back, so the release awaits promotion again"
            );
            assert_eq!(ws.release_state(&first), "live", "{point}");
            // ...and promoting again works, exactly once.
            ws.ok_as("bob", &["promote", &id, "--yes"]);
        } else {
            assert_eq!(
                state, "live",
                "{point}: production changed, so it must be the new state"
            );
            assert_eq!(ws.release_state(&first), "superseded", "{point}");
        }
        assert_eq!(
            ws.production_ledger(),
            ["0001_users.sql", "0002_email.sql", "0003_posts.sql"],
            "{point}"
        );
        assert_eq!(ws.release_state(&id), "live");
        let lock: i64 = rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite"))
            .unwrap()
            .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(lock, 0, "{point}: lock released");
        assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
    }
}

#[test]
fn killed_first_promotion_leaves_no_database_behind() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let (_, d) = ws.deploy();
    let id = d["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    let out = ws
        .cmd("bob")
        .env("D1OPS_FAULT", "apply.before_commit")
        .args(["promote", &id, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    ws.ok(&["envs"]);
    assert!(
        !ws.production_path().exists(),
        "a rolled-back first promotion must not leave an empty production"
    );
    assert_eq!(ws.release_state(&id), "approved");
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert!(ws.production_path().exists());
}

fn state_db(ws: &Ws) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap()
}

fn count(ws: &Ws, sql: &str) -> i64 {
    state_db(ws).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The details of every audit event named `action`.
fn audit_details(ws: &Ws, action: &str) -> Vec<String> {
    let c = state_db(ws);
    let mut stmt = c
        .prepare("SELECT detail FROM audit WHERE action = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([action], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A lock row as a d1ops process on another host (a container) leaves it.
fn foreign_lock(ws: &Ws, release: &str, heartbeat_at: Option<&str>) {
    state_db(ws)
        .execute(
            "INSERT INTO promotion_lock(id, release_id, holder, pid, host, since, step, \
             operation, heartbeat_at, lease) VALUES (1, ?1, 'dave', 4242, 'ci-runner-9f8e', ?2, \
             'locked', 'promote', ?3, 'lease-of-dave')",
            rusqlite::params![release, ago(900), heartbeat_at],
        )
        .unwrap();
}

/// A workspace whose production has 0001 and a second migration waiting in the folder.
fn with_production() -> Ws {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws.ship();
    ws.migration(
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    ws
}

fn previewing(ws: &Ws) -> Option<String> {
    state_db(ws)
        .query_row(
            "SELECT id FROM releases WHERE state = 'previewing'",
            [],
            |r| r.get(0),
        )
        .ok()
}

#[test]
fn killed_deploy_is_settled_as_blocked() {
    for point in [
        "deploy.before_clone",
        "deploy.after_clone",
        "deploy.before_gate",
        "deploy.before_verdict",
    ] {
        let ws = with_production();
        let out = ws
            .cmd("alice")
            .env("D1OPS_FAULT", point)
            .args(["deploy"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: should have died");
        let id = previewing(&ws).unwrap_or_else(|| panic!("{point}: no previewing release"));
        let preview = format!("preview-{}", id.to_lowercase());
        // The next command, whatever it is, settles it.
        let (code, _, err) = ws.run_as("carol", &["releases"]);
        assert_eq!(code, Some(0), "{point}: {err}");
        assert_eq!(ws.release_state(&id), "blocked", "{point}");
        let show = ws.json(&["release", "show", &id]);
        assert!(
            show.to_string().contains("deploy interrupted"),
            "{point}: {show}"
        );
        assert!(
            ws.database_file(&preview).is_none(),
            "{point}: preview left behind"
        );
        let envs = ws.json(&["envs"]);
        assert!(
            !envs.to_string().contains(&preview),
            "{point}: preview environment still listed: {envs}"
        );
        assert_eq!(count(&ws, "SELECT count(*) FROM deploy_runs"), 0, "{point}");
        let audited = audit_details(&ws, "deploy.interrupted");
        assert_eq!(audited.len(), 1, "{point}: {audited:?}");
        assert!(audited[0].contains("process has exited"), "{audited:?}");
        assert_eq!(ws.json(&["audit", "--verify"])["ok"], true, "{point}");
        // Deploying again works and is ready.
        let (code, d) = ws.deploy();
        assert_eq!(code, Some(0), "{point}: {d}");
    }
}

#[test]
fn deploy_in_progress_is_not_settled_by_another_process() {
    let ws = with_production();
    let mut slow = ws.cmd("alice");
    slow.env("D1OPS_PAUSE", "deploy.before_gate:4000")
        .args(["--json", "deploy"]);
    let child = std::thread::spawn(move || slow.output().unwrap());
    let started = std::time::Instant::now();
    let id = loop {
        if let Some(id) = previewing(&ws) {
            break id;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the deploy never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let preview = format!("preview-{}", id.to_lowercase());
    // Another process runs meanwhile: the deploy's holder is alive, so nothing is settled.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ws.release_state(&id), "previewing");
    assert!(ws.database_file(&preview).is_some(), "preview removed");
    assert!(audit_details(&ws, "deploy.interrupted").is_empty());
    let out = child.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ws.release_state(&id), "ready");
    assert_eq!(count(&ws, "SELECT count(*) FROM deploy_runs"), 0);
}

#[test]
fn expired_lock_from_another_host_is_recovered() {
    let (ws, first, id) = staged();
    // A fresh heartbeat from another host: that holder is alive, promotion refuses.
    foreign_lock(&ws, &id, Some(&ago(3)));
    let (code, _, err) = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("in progress") && err.contains("ci-runner-9f8e"),
        "{err}"
    );
    // Its lease expires (the container is gone): the next command recovers the lock.
    state_db(&ws)
        .execute("UPDATE promotion_lock SET heartbeat_at = ?1", [ago(600)])
        .unwrap();
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("recovered an interrupted promotion") && err.contains("rolled back"),
        "{err}"
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 0);
    assert_eq!(ws.release_state(&id), "approved");
    assert_eq!(ws.release_state(&first), "live");
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.release_state(&id), "live");
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
}

#[test]
fn unlock_refuses_while_holder_is_alive() {
    let (ws, _first, id) = staged();
    let mut slow = ws.cmd("bob");
    slow.env("D1OPS_PAUSE", "promote.after_lock:3000")
        .args(["promote", &id, "--yes"]);
    let child = std::thread::spawn(move || slow.output().unwrap());
    let started = std::time::Instant::now();
    while count(&ws, "SELECT count(*) FROM promotion_lock") == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, _, err) = ws.run_as("carol", &["unlock", "--reason", "looks stuck", "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("still running on this host"), "{err}");
    assert!(child.join().unwrap().status.success());
    assert_eq!(ws.release_state(&id), "live");
    assert!(audit_details(&ws, "lock.unlocked").is_empty());

    // A holder on another host with a fresh heartbeat is refused too.
    ws.migration("0004_x.sql", "CREATE TABLE x (a INTEGER);\n");
    let (_, d) = ws.deploy();
    let next = d["id"].as_str().unwrap().to_string();
    foreign_lock(&ws, &next, Some(&ago(2)));
    let (code, _, err) = ws.run_as("carol", &["unlock", "--reason", "looks stuck", "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("lease is fresh"), "{err}");
    assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 1);
}

#[test]
fn unlock_with_reason_is_audited() {
    let (ws, first, id) = staged();
    state_db(&ws)
        .execute(
            "UPDATE releases SET state = 'promoting' WHERE id = ?1",
            [&id],
        )
        .unwrap();
    // A lock from a d1ops on another host that records no heartbeat: it cannot be judged,
    // so nothing recovers it on its own.
    foreign_lock(&ws, &id, None);
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 1);
    let (code, _, err) = ws.run_as("bob", &["restore", "--to-release", &first, "--yes"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("in progress") && err.contains("d1ops unlock"),
        "{err}"
    );
    // Without --yes and without a terminal: refused, nothing changed.
    let (code, out, err) = ws.run_as("carol", &["unlock", "--reason", "runner deleted"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("ci-runner-9f8e"), "{out}");
    assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 1);
    // A reason is required.
    let (code, _, _) = ws.run_as("carol", &["unlock", "--yes"]);
    assert_eq!(code, Some(2));

    let (code, out, err) = ws.run_as(
        "carol",
        &[
            "unlock",
            "--reason",
            "runner ci-runner-9f8e was deleted",
            "--yes",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 0);
    assert_eq!(ws.release_state(&id), "approved");
    assert_eq!(ws.release_state(&first), "live");
    let audited = audit_details(&ws, "lock.unlocked");
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].contains("runner ci-runner-9f8e was deleted") && audited[0].contains("dave"),
        "{audited:?}"
    );
    let actor: String = state_db(&ws)
        .query_row(
            "SELECT actor FROM audit WHERE action = 'lock.unlocked'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(actor, "carol");
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
    // Nothing left to unlock.
    let out = ws.ok_as("carol", &["unlock", "--reason", "again", "--yes"]);
    assert!(out.contains("nothing to unlock"), "{out}");
    ws.ok_as("bob", &["promote", &id, "--yes"]);
}

#[test]
fn tmp_files_are_removed_by_recovery() {
    let ws = with_production();
    ws.ship();
    let db = ws.path().join(".d1ops/db");
    let snaps = ws.path().join(".d1ops/snapshots");
    let recorded: Vec<std::path::PathBuf> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    let stale = [
        db.join("preview-01jdeadbeef.sqlite.tmp"),
        snaps.join("production-01jdeadbeef-20260101T000000000Z.sqlite.tmp"),
        db.join("production.sqlite.tmp"),
        // A complete snapshot no row records (killed between the copy and its record).
        snaps.join("production-pre-restore-20260101T000000000Z.sqlite"),
    ];
    for p in &stale {
        std::fs::write(p, b"half a copy").unwrap();
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    // A copy being written right now (fresh, no recorded owner) is left alone.
    let fresh = db.join("rollback-check-01jfresh.sqlite.tmp");
    std::fs::write(&fresh, b"in progress").unwrap();
    // Files that merely look alike are not touched.
    let other = db.join("notes.tmp");
    std::fs::write(&other, b"keep").unwrap();

    ws.ok_as("carol", &["envs"]);
    for p in &stale {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert!(fresh.exists());
    assert!(other.exists());
    assert!(
        recorded[0].exists(),
        "a recorded recovery point was removed"
    );
    assert!(ws.production_path().exists());
    let audited = audit_details(&ws, "temp_files.removed");
    assert_eq!(audited.len(), 1);
    assert!(audited[0].contains("production.sqlite.tmp"), "{audited:?}");

    // `cleanup` removes them too, and reports them.
    std::fs::File::options()
        .write(true)
        .open(&fresh)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let report = ws.json(&["cleanup", "--yes"]);
    assert!(report["temp_files_removed"].is_array(), "{report}");
    assert!(!fresh.exists());
    assert_eq!(audit_details(&ws, "temp_files.removed").len(), 2);
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
}

/// The holder's background heartbeat keeps the lease fresh while it works (here: paused for
/// longer than one heartbeat period), for a lock and for a running deploy alike.
#[test]
fn heartbeats_are_refreshed_while_the_work_runs() {
    let (ws, _first, id) = staged();
    ws.migration("0004_x.sql", "CREATE TABLE x (a INTEGER);\n");
    let mut promote = ws.cmd("bob");
    promote
        .env("D1OPS_PAUSE", "promote.after_lock:7500")
        .args(["promote", &id, "--yes"]);
    let promoting = std::thread::spawn(move || promote.output().unwrap());
    let mut deploy = ws.cmd("alice");
    deploy
        .env("D1OPS_PAUSE", "deploy.before_clone:7500")
        .args(["deploy"]);
    let deploying = std::thread::spawn(move || deploy.output().unwrap());
    let started = std::time::Instant::now();
    let beats = || -> Option<(String, String)> {
        let c = state_db(&ws);
        let lock = c
            .query_row("SELECT heartbeat_at FROM promotion_lock", [], |r| r.get(0))
            .ok()?;
        let run = c
            .query_row("SELECT heartbeat_at FROM deploy_runs", [], |r| r.get(0))
            .ok()?;
        Some((lock, run))
    };
    let first = loop {
        if let Some(b) = beats() {
            break b;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_millis(6000));
    let later = beats().expect("both still running");
    assert!(
        later.0 > first.0,
        "lock heartbeat not refreshed: {first:?} {later:?}"
    );
    assert!(
        later.1 > first.1,
        "deploy heartbeat not refreshed: {first:?} {later:?}"
    );
    let p = promoting.join().unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    // The deploy ran alongside the promotion: its gate may block it, or production may be
    // busy with the apply when it is cloned (an error its own process settles at once).
    // Either way it ends settled, never left previewing.
    deploying.join().unwrap();
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM releases WHERE state = 'previewing'"
        ),
        0
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 0);
    assert_eq!(count(&ws, "SELECT count(*) FROM deploy_runs"), 0);
}

/// A holder paused past its lease (a suspended laptop, a stopped container) was recovered by
/// another process; when it resumes it notices before touching production and stops.
#[test]
fn holder_whose_lease_expired_stops_before_touching_production() {
    let (ws, first, id) = staged();
    let old = ws.production_state().unwrap();
    let mut slow = ws.cmd("bob");
    slow.env("D1OPS_PAUSE", "promote.after_snapshot:3000")
        .args(["promote", &id, "--yes"]);
    let child = std::thread::spawn(move || slow.output().unwrap());
    let started = std::time::Instant::now();
    while count(
        &ws,
        "SELECT count(*) FROM promotion_lock WHERE step = 'snapshotted'",
    ) == 0
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    state_db(&ws)
        .execute("UPDATE promotion_lock SET heartbeat_at = ?1", [ago(600)])
        .unwrap();
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    let out = child.join().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lease expired"), "{err}");
    assert_eq!(ws.production_state().unwrap(), old);
    assert_eq!(ws.release_state(&id), "approved");
    assert_eq!(ws.release_state(&first), "live");
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.json(&["audit", "--verify"])["ok"], true);
}

/// Several commands start at once after a crash: exactly one recovers (it claims the lock
/// first); the others see it working or find nothing left to do.
#[test]
fn concurrent_commands_recover_once() {
    for point in [
        "apply.before_commit",
        "promote.after_commit",
        "deploy.after_clone",
    ] {
        let (ws, _first, id) = staged();
        ws.migration("0004_x.sql", "CREATE TABLE x (a INTEGER);\n");
        let args: Vec<&str> = if point.starts_with("deploy") {
            vec!["deploy"]
        } else {
            vec!["promote", &id, "--yes"]
        };
        let out = ws
            .cmd("bob")
            .env("D1OPS_FAULT", point)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}");
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut c = ws.cmd("carol");
                c.args(["envs"]);
                std::thread::spawn(move || c.output().unwrap())
            })
            .collect();
        for c in children {
            let out = c.join().unwrap();
            assert!(
                out.status.success(),
                "{point}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let recovered = audit_details(&ws, "promotion.recovered").len()
            + audit_details(&ws, "deploy.interrupted").len();
        assert_eq!(recovered, 1, "{point}: recovered more than once");
        assert_eq!(count(&ws, "SELECT count(*) FROM promotion_lock"), 0);
        assert_eq!(count(&ws, "SELECT count(*) FROM deploy_runs"), 0);
        assert_eq!(ws.json(&["audit", "--verify"])["ok"], true, "{point}");
    }
}

/// Issue 15 item 5: a promotion completed by recovery keeps its promoter — `promoted_by` and
/// the `promotion.succeeded` actor are the operator who ran it (from the lock); whoever
/// settled it is recorded apart (`settled_by`, and the actor of `promotion.recovered`).
#[test]
fn who_promoted_stays_who_promoted_after_a_roll_forward() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = ws.deploy();
    assert_eq!(code, Some(0), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    let killed = ws
        .cmd("bob")
        .env("D1OPS_FAULT", "promote.after_commit")
        .args(["promote", &id, "--yes"])
        .output()
        .unwrap();
    assert!(!killed.status.success());
    ws.ok_as("carol", &["releases"]);
    let shown = ws.json(&["release", "show", &id]);
    assert_eq!(shown["state"], "live");
    assert_eq!(shown["promoted_by"], "bob", "{shown}");
    let audit = ws.json(&["audit"]);
    let events = audit.as_array().unwrap();
    let succeeded = events
        .iter()
        .find(|e| e["action"] == "promotion.succeeded")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(succeeded["actor"], "bob", "{succeeded}");
    let detail: serde_json::Value =
        serde_json::from_str(succeeded["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["settled_by"], "carol", "{succeeded}");
    let recovered = events
        .iter()
        .find(|e| e["action"] == "promotion.recovered")
        .unwrap();
    assert_eq!(recovered["actor"], "carol");
}
