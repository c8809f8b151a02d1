//! Seeded crash consistency: `deploy`, `promote`, `restore`, `restore --undo` and `rollback`
//! are killed many times at random points — a fault point (`D1OPS_FAULT`, like `kill -9`
//! there) or a real SIGKILL after a random delay — sometimes with the app writing a row to
//! production before d1ops runs again. After the next command recovers, production must be
//! exactly what it was before the operation or exactly what an uninterrupted run of it on a
//! copy of the workspace leaves (plus the app's row either way), with the release states of
//! that same side, and the ledger, d1ops' state, the files and the audit chain consistent.
//!
//! Ignored by default (a few minutes). Run it with
//! `cargo test --test crash -- --ignored` — `D1OPS_CRASH_TRIALS` sets the trials per
//! operation (default 50), `D1OPS_CRASH_SEED` the seed (printed on failure, so a failing
//! sequence can be replayed).
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::Ws;
use rusqlite::Connection;

/// A small linear congruential generator: reproducible without another crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone)]
enum Kill {
    /// `D1OPS_FAULT` at this point.
    Point(&'static str),
    /// SIGKILL after this many milliseconds (the run may have finished by then).
    After(u64),
}

/// A number from the environment, decimal or `0x` hex (the seed is printed in hex, so a
/// failing run's seed pastes back as printed). Unset means `default`; anything else that is
/// not a number stops the test rather than silently using the default.
fn env_number(name: &str, default: u64) -> u64 {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    let v = v.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => v.replace('_', "").parse().ok(),
    };
    parsed.unwrap_or_else(|| panic!("{name}={v:?} is not a number (decimal or 0x hex)"))
}

/// Copies a workspace folder (no d1ops process runs on it meanwhile).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn copy_ws(ws: &Ws) -> Ws {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(ws.path(), dir.path());
    Ws { dir, cf: None }
}

fn state(ws: &Ws) -> Connection {
    Connection::open(ws.path().join(".d1ops/state.sqlite")).unwrap()
}

/// Production's schema and rows; the ledger by names only (its timestamps differ per run).
fn content(ws: &Ws) -> String {
    if !ws.production_path().exists() {
        return "no database".into();
    }
    let c = ws.production();
    let mut out = String::new();
    let objects: Vec<(String, String, Option<String>)> = c
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (ty, name, sql) in &objects {
        out.push_str(&format!("{ty} {name}: {}\n", sql.as_deref().unwrap_or("")));
        if ty != "table" || name.starts_with("sqlite_") {
            continue;
        }
        let query = if name == "d1_migrations" {
            "SELECT name FROM d1_migrations ORDER BY id".to_string()
        } else {
            format!("SELECT * FROM \"{name}\" ORDER BY rowid")
        };
        let mut stmt = c.prepare(&query).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            out.push_str("  ");
            for i in 0..n {
                out.push_str(&format!("{:?}|", r.get_ref(i).unwrap()));
            }
            out.push('\n');
        }
    }
    out
}

/// Release states keyed by label (or id, for releases without one).
fn states(ws: &Ws) -> BTreeMap<String, String> {
    let c = state(ws);
    let mut stmt = c
        .prepare("SELECT coalesce(label, id), state FROM releases")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs d1ops with `args`, killed as `kill` says; whether it exited successfully.
fn run_killed(ws: &Ws, user: &str, args: &[&str], kill: &Kill) -> bool {
    let mut c = ws.process(user);
    c.args(args)
        .env_remove("D1OPS_FAULT")
        .env_remove("D1OPS_PAUSE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match kill {
        Kill::Point(p) => {
            c.env("D1OPS_FAULT", p);
            c.status().unwrap().success()
        }
        Kill::After(ms) => {
            let mut child = c.spawn().unwrap();
            std::thread::sleep(Duration::from_millis(*ms));
            let _ = child.kill();
            child.wait().unwrap().success()
        }
    }
}

/// The app writes a row to production (when it has the table).
fn app_write(ws: &Ws, what: &str) {
    if !ws.production_path().exists() {
        return;
    }
    let c = ws.production();
    let has_users: bool = c
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'users'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if has_users {
        c.execute("INSERT INTO users(name) VALUES (?1)", [what])
            .unwrap();
    }
}

/// What must hold after any recovery, whatever happened.
fn check_consistent(ws: &Ws, ctx: &str) {
    let verify = ws.json(&["audit", "--verify"]);
    assert_eq!(verify["ok"], true, "{ctx}: audit chain: {verify}");
    let s = state(ws);
    let one = |sql: &str| -> i64 { s.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        one("SELECT count(*) FROM promotion_lock"),
        0,
        "{ctx}: lock left"
    );
    assert_eq!(
        one("SELECT count(*) FROM deploy_runs"),
        0,
        "{ctx}: deploy left running"
    );
    assert_eq!(
        one("SELECT count(*) FROM releases WHERE state IN ('previewing', 'promoting')"),
        0,
        "{ctx}: a release stuck half-way"
    );
    assert_eq!(
        one("SELECT count(*) FROM restores WHERE status = 'applying'"),
        0,
        "{ctx}: a restore stuck half-way"
    );
    // The ledger is what d1ops recorded as applied, and a gapless prefix of the files.
    let ledger: Vec<String> = if ws.production_path().exists() {
        ws.production_ledger()
    } else {
        Vec::new()
    };
    let recorded: BTreeSet<String> = s
        .prepare("SELECT name FROM applied_migrations WHERE env = 'production'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ledger.iter().cloned().collect::<BTreeSet<_>>(),
        recorded,
        "{ctx}: ledger vs recorded checksums"
    );
    let mut files: Vec<String> = std::fs::read_dir(ws.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        ledger,
        files[..ledger.len().min(files.len())],
        "{ctx}: ledger is not a prefix of the migrations"
    );
    // The live release's migrations are all in production.
    let active: Option<String> = s
        .query_row(
            "SELECT active_release FROM environments WHERE name = 'production'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if let Some(active) = active {
        let carried: Vec<String> = s
            .prepare("SELECT name FROM release_migrations WHERE release_id = ?1")
            .unwrap()
            .query_map([&active], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for m in carried {
            assert!(
                ledger.contains(&m),
                "{ctx}: live release {active} carries {m}, production lacks it"
            );
        }
        let live: String = s
            .query_row("SELECT state FROM releases WHERE id = ?1", [&active], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(live, "live", "{ctx}: the active release is {live}");
    }
    // No temporary copy or unrecorded snapshot left; every recorded one still there.
    for dir in ["db", "snapshots"] {
        let Ok(entries) = std::fs::read_dir(ws.path().join(".d1ops").join(dir)) else {
            continue;
        };
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".sqlite.tmp"), "{ctx}: {dir}/{name} left");
            if dir == "snapshots" && name.ends_with(".sqlite") {
                let n: i64 = s
                    .query_row(
                        "SELECT count(*) FROM snapshots WHERE location = ?1",
                        [&name],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(n, 1, "{ctx}: snapshots/{name} is not recorded");
            }
        }
    }
    let locations: Vec<String> = s
        .prepare("SELECT location FROM snapshots WHERE deleted_at IS NULL AND location IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for l in locations {
        assert!(
            ws.path().join(".d1ops/snapshots").join(&l).exists(),
            "{ctx}: recovery point {l} is recorded but missing"
        );
    }
    // Every preview d1ops lists has its database, and no candidate has lost its preview.
    let previews: Vec<(String, Option<String>)> = s
        .prepare(
            "SELECT name, database_id FROM environments WHERE kind = 'preview' AND deleted_at IS NULL",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (name, db) in previews {
        if let Some(db) = db {
            assert!(
                ws.path().join(format!(".d1ops/db/{db}.sqlite")).exists(),
                "{ctx}: preview {name} lost its database"
            );
        }
    }
}

struct Trial<'a> {
    op: &'a str,
    user: &'a str,
    args: Vec<String>,
    kill: Kill,
    late_write: bool,
}

/// Runs one trial on `ws`: the operation uninterrupted on a copy, then killed on `ws`, then
/// recovered; checks the outcome is one of the two. Returns whether the change landed.
fn trial(ws: &Ws, t: &Trial<'_>, ctx: &str) -> bool {
    let args: Vec<&str> = t.args.iter().map(String::as_str).collect();
    let clean = copy_ws(ws);
    let pre = copy_ws(ws);
    let states_before = states(ws);
    let (code, out, err) = clean.run_as(t.user, &args);
    assert_eq!(
        code,
        Some(0),
        "{ctx}: the uninterrupted run failed: {out}{err}"
    );
    let finished = run_killed(ws, t.user, &args, &t.kill);
    if t.late_write {
        for w in [ws, &pre, &clean] {
            app_write(w, "late");
        }
    }
    let before = content(&pre);
    let after = content(&clean);
    let states_after = states(&clean);
    let (code, _, err) = ws.run_as("carol", &["envs"]);
    assert_eq!(code, Some(0), "{ctx}: recovery failed: {err}");
    let now = content(ws);
    assert!(
        now == before || now == after,
        "{ctx} (finished: {finished}): production is neither as before nor as after\n--- now\n{now}\n--- before\n{before}\n--- after\n{after}"
    );
    let landed = now == after && now != before;
    let now_states = states(ws);
    if t.op == "deploy" {
        // Production never changes; the new release is settled one way or the other.
        for (k, v) in &now_states {
            match states_before.get(k) {
                Some(old) => assert_eq!(v, old, "{ctx}: {k} changed"),
                None => assert!(
                    v == "ready" || v == "blocked",
                    "{ctx}: new release {k} is {v}"
                ),
            }
        }
    } else if before == after {
        assert!(
            now_states == states_before || now_states == states_after,
            "{ctx}: states {now_states:?} are neither {states_before:?} nor {states_after:?}"
        );
    } else if landed {
        assert_eq!(now_states, states_after, "{ctx}: landed, states differ");
    } else {
        assert_eq!(
            now_states, states_before,
            "{ctx}: did not land, states differ"
        );
    }
    check_consistent(ws, ctx);
    landed
}

fn pick_kill(rng: &mut Lcg, points: &[&'static str], max_ms: u64) -> Kill {
    let n = points.len() as u64;
    match rng.below(n + 2) {
        i if i < n => Kill::Point(points[i as usize]),
        _ => Kill::After(rng.below(max_ms)),
    }
}

fn last_restore_id(ws: &Ws) -> i64 {
    state(ws)
        .query_row("SELECT coalesce(max(id), 0) FROM restores", [], |r| {
            r.get(0)
        })
        .unwrap()
}

fn last_restore(ws: &Ws) -> (i64, String, Option<i64>) {
    state(ws)
        .query_row(
            "SELECT id, status, undo_of FROM restores ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap_or((0, String::new(), None))
}

/// R1 (users) and R2 (adds posts) shipped, with rows; returns (ws, r1, r2).
fn two_releases(probe: bool) -> (Ws, String, String) {
    let ws = Ws::new();
    if probe {
        let path = ws.path().join("d1ops.toml");
        let mut cfg = std::fs::read_to_string(&path).unwrap();
        cfg.push_str(
            "\n[[probe]]\nname = \"users_read\"\nsql = \"SELECT count(*) FROM users\"\nexpect_rows = 1\n",
        );
        std::fs::write(path, cfg).unwrap();
    }
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    let r1 = ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users(name) VALUES ('a'), ('b'), ('c');")
        .unwrap();
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT);\n",
    );
    let r2 = ws.ship();
    (ws, r1, r2)
}

#[test]
#[ignore = "minutes: cargo test --test crash -- --ignored (D1OPS_CRASH_TRIALS, D1OPS_CRASH_SEED)"]
fn random_kills_leave_production_ledger_state_and_audit_consistent() {
    let trials = env_number("D1OPS_CRASH_TRIALS", 50);
    let seed = env_number("D1OPS_CRASH_SEED", 0x00D1_0C5A);
    let mut rng = Lcg(seed);
    let started = std::time::Instant::now();
    let mut landed: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut tally = |op: &'static str, l: bool| {
        let e = landed.entry(op).or_default();
        if l { e.0 += 1 } else { e.1 += 1 }
    };

    // deploy: production never changes; the release ends ready or blocked, never previewing.
    {
        let ws = Ws::new();
        ws.migration(
            "0001_users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
        );
        ws.ship();
        ws.migration("0002_t.sql", "CREATE TABLE t (a INTEGER);\n");
        for i in 0..trials {
            let kill = pick_kill(
                &mut rng,
                &[
                    "deploy.before_clone",
                    "deploy.after_clone",
                    "deploy.before_gate",
                    "deploy.before_verdict",
                ],
                600,
            );
            let ctx = format!("seed {seed:#x} deploy #{i} {kill:?}");
            let t = Trial {
                op: "deploy",
                user: "alice",
                args: vec!["deploy".into(), "--label".into(), format!("d{i}")],
                late_write: rng.below(2) == 0,
                kill,
            };
            trial(&ws, &t, &ctx);
        }
    }

    // promote: a new migration each time, deployed and approved, then promoted.
    {
        let ws = Ws::new();
        ws.migration(
            "0001_users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
        );
        ws.ship();
        for i in 0..trials {
            ws.migration(
                &format!("{:04}_p{i}.sql", i + 2),
                &format!("CREATE TABLE p{i} (a INTEGER);\nINSERT INTO p{i} VALUES ({i});\n"),
            );
            app_write(&ws, "app");
            let (code, out, err) =
                ws.run_as("alice", &["--json", "deploy", "--label", &format!("p{i}")]);
            assert_eq!(code, Some(0), "{out}{err}");
            let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            ws.ok_as("bob", &["approve", &id]);
            let kill = pick_kill(
                &mut rng,
                &[
                    "promote.after_lock",
                    "promote.after_snapshot",
                    "promote.before_apply",
                    "apply.after_first_migration",
                    "apply.before_commit",
                    "promote.after_commit",
                ],
                500,
            );
            let ctx = format!("seed {seed:#x} promote #{i} {kill:?}");
            let t = Trial {
                op: "promote",
                user: "bob",
                args: vec!["promote".into(), id, "--yes".into()],
                late_write: rng.below(2) == 0,
                kill,
            };
            tally("promote", trial(&ws, &t, &ctx));
        }
    }

    // restore: rows written, then production restored to R2's recovery point — again and
    // again, so most restores keep the schema and ledger and change only rows.
    {
        let (ws, _r1, r2) = two_releases(false);
        for i in 0..trials {
            app_write(&ws, &format!("row{i}"));
            let kill = pick_kill(
                &mut rng,
                &[
                    "restore.after_lock",
                    "restore.before_apply",
                    "restore.after_apply",
                    "restore.before_finish",
                ],
                400,
            );
            let ctx = format!("seed {seed:#x} restore #{i} {kill:?}");
            let t = Trial {
                op: "restore",
                user: "carol",
                args: vec![
                    "restore".into(),
                    "--to-release".into(),
                    r2.clone(),
                    "--yes".into(),
                ],
                late_write: rng.below(2) == 0,
                kill,
            };
            let newest = last_restore_id(&ws);
            let l = trial(&ws, &t, &ctx);
            let (id, status, _) = last_restore(&ws);
            if id != newest {
                assert_eq!(
                    status,
                    if l { "done" } else { "aborted" },
                    "{ctx}: the restore record disagrees with production"
                );
            } else {
                assert!(!l, "{ctx}: production restored without a record");
            }
            tally("restore", l);
        }
    }

    // undo: a restore, rows, then the undo killed.
    {
        let (ws, _r1, r2) = two_releases(false);
        for i in 0..trials {
            app_write(&ws, &format!("before-restore{i}"));
            ws.ok_as("carol", &["restore", "--to-release", &r2, "--yes"]);
            let (undone, _, _) = last_restore(&ws);
            app_write(&ws, &format!("after-restore{i}"));
            let kill = pick_kill(
                &mut rng,
                &[
                    "restore.after_lock",
                    "restore.before_apply",
                    "restore.after_apply",
                    "restore.before_finish",
                ],
                400,
            );
            let ctx = format!("seed {seed:#x} undo #{i} {kill:?}");
            let t = Trial {
                op: "undo",
                user: "carol",
                args: vec!["restore".into(), "--undo".into(), "--yes".into()],
                late_write: rng.below(2) == 0,
                kill,
            };
            let l = trial(&ws, &t, &ctx);
            let undone_status: String = state(&ws)
                .query_row("SELECT status FROM restores WHERE id = ?1", [undone], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(
                undone_status,
                if l { "undone" } else { "done" },
                "{ctx}: the undone restore's record disagrees with production"
            );
            tally("undo", l);
        }
    }

    // rollback: code back and forth between R1 and R2; production is never touched.
    {
        let (ws, r1, r2) = two_releases(true);
        for i in 0..trials {
            let live: String = state(&ws)
                .query_row(
                    "SELECT active_release FROM environments WHERE name = 'production'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let target = if live == r2 { r1.clone() } else { r2.clone() };
            let kill = pick_kill(
                &mut rng,
                &["rollback.after_copy", "rollback.before_switch"],
                400,
            );
            let ctx = format!("seed {seed:#x} rollback #{i} {kill:?}");
            let t = Trial {
                op: "rollback",
                user: "alice",
                args: vec!["rollback".into(), target, "--yes".into()],
                late_write: rng.below(2) == 0,
                kill,
            };
            trial(&ws, &t, &ctx);
        }
    }
    eprintln!(
        "crash consistency: {trials} trial(s) per operation, seed {seed:#x}, landed/not per operation {landed:?}, {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
