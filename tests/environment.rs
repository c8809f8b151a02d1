//! The environment is not the migration: a lock another process holds, a read-only or
//! immutable path, or a full disk stops a promotion as a refusal (exit 4, release still
//! approved, production unchanged, nothing marked failed) whose sentence names the obstacle,
//! never a migration line. Real binary, real files; the file-system obstacles are real where
//! the machine allows them (`chattr +i`, a small tmpfs) and fall back to the documented
//! `D1OPS_FAKE_FREE_BYTES` fault point where it does not.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Ws;

/// A workspace whose production has 0001, with `second` deployed, ready and approved.
fn approved_in(ws: Ws, second: &str) -> (Ws, String) {
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users(name) VALUES ('a'), ('b');\n",
    );
    ws.ship();
    ws.migration("0002_rewrite.sql", second);
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().expect("id").to_string();
    ws.ok_as("bob", &["approve", &id]);
    (ws, id)
}

fn approved() -> (Ws, String) {
    approved_in(
        Ws::new(),
        "ALTER TABLE users ADD COLUMN email TEXT;\nUPDATE users SET email = name || '@x';\n",
    )
}

fn state_db(ws: &Ws) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.path().join(".d1ops/state.sqlite")).expect("state")
}

fn audit_details(ws: &Ws, action: &str) -> Vec<String> {
    let c = state_db(ws);
    let mut stmt = c
        .prepare("SELECT detail FROM audit WHERE action = ?1 ORDER BY seq")
        .expect("audit");
    stmt.query_map([action], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("details")
}

fn lock_rows(ws: &Ws) -> i64 {
    state_db(ws)
        .query_row("SELECT count(*) FROM promotion_lock", [], |r| r.get(0))
        .expect("lock")
}

fn snapshot_files(ws: &Ws) -> usize {
    std::fs::read_dir(ws.path().join(".d1ops/snapshots"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A refusal: exit 4, the sentence names `needles`, and nothing else moved — production,
/// the release (approved, no failure), the lock, the recovery points; audited as
/// `promotion.refused` with `obstacle`, never `promotion.failed`.
fn assert_refused(
    ws: &Ws,
    id: &str,
    run: (Option<i32>, String, String),
    before: &Option<String>,
    snapshots_before: usize,
    obstacle: &str,
    needles: &[&str],
) -> String {
    let (code, out, err) = run;
    eprintln!("refused: {err}");
    assert_eq!(code, Some(4), "stdout: {out}\nstderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        !err.contains("0002_rewrite.sql") && !err.contains("failed and was rolled back"),
        "a refusal blames no migration: {err}"
    );
    assert_eq!(&ws.production_state(), before, "production changed");
    assert_eq!(ws.release_state(id), "approved");
    let show = ws.json(&["release", "show", id]);
    assert!(show["failure"].is_null(), "{show}");
    assert!(audit_details(ws, "promotion.failed").is_empty());
    let refused = audit_details(ws, "promotion.refused");
    let last = refused.last().expect("promotion.refused audited");
    assert!(
        last.contains(&format!("\"obstacle\":\"{obstacle}\"")),
        "{last}"
    );
    assert_eq!(lock_rows(ws), 0, "the lock is released");
    assert_eq!(
        snapshot_files(ws),
        snapshots_before,
        "no recovery point is left behind"
    );
    err
}

#[test]
fn reader_holding_production_is_a_refusal_not_a_failure() {
    let (ws, id) = approved();
    let before = ws.production_state();
    let snaps = snapshot_files(&ws);
    let holder = ws.production();
    let mode: String = holder
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    // With a rollback journal (d1ops' default for production) a reader's SHARED lock keeps a
    // writer from committing: this test holds exactly that, a `BEGIN; SELECT` read
    // transaction. Under WAL a reader blocks nobody, so it would hold the write lock instead.
    let (sql, lock) = if mode.eq_ignore_ascii_case("wal") {
        ("BEGIN IMMEDIATE; SELECT count(*) FROM users;", "write")
    } else {
        ("BEGIN; SELECT count(*) FROM users;", "read transaction")
    };
    holder.execute_batch(sql).expect("hold production");
    let run = ws.run_as("bob", &["promote", &id, "--yes"]);
    let me = format!("locked by pid {}", std::process::id());
    let err = assert_refused(
        &ws,
        &id,
        run,
        &before,
        snaps,
        "locked",
        &[&me, lock, "production.sqlite"],
    );
    assert!(
        err.contains("environment-"),
        "names the holder's command: {err}"
    );
    holder.execute_batch("ROLLBACK").expect("release");
    drop(holder);
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.release_state(&id), "live");
}

#[test]
fn writer_holding_production_in_wal_mode_is_a_refusal() {
    let (ws, id) = approved();
    let holder = ws.production();
    let mode: String = holder
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    let before = ws.production_state();
    let snaps = snapshot_files(&ws);
    // Under WAL a reader blocks no writer; another writer does.
    holder
        .execute_batch("BEGIN IMMEDIATE; SELECT count(*) FROM users;")
        .expect("hold the write lock");
    let run = ws.run_as("bob", &["promote", &id, "--yes"]);
    let me = format!("locked by pid {}", std::process::id());
    assert_refused(
        &ws,
        &id,
        run,
        &before,
        snaps,
        "locked",
        &[&me, "the WAL write lock"],
    );
    holder.execute_batch("ROLLBACK").expect("release");
    drop(holder);
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.release_state(&id), "live");
}

/// Undoes `chattr +i` / `chmod` on a path when dropped (even when the test fails).
struct Restore {
    path: PathBuf,
    chattr: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.chattr {
            let _ = Command::new("chattr").arg("-i").arg(&self.path).status();
        } else {
            let _ = std::fs::set_permissions(
                &self.path,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            );
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Makes `path` unwritable: `chattr +i` (which stops root too), else `chmod 0555` when not
/// root. `None` when neither works here.
fn make_unwritable(path: &Path) -> Option<Restore> {
    let chattr = Command::new("chattr")
        .arg("+i")
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if chattr {
        return Some(Restore {
            path: path.to_path_buf(),
            chattr: true,
        });
    }
    if is_root() {
        return None;
    }
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o555)).ok()?;
    Some(Restore {
        path: path.to_path_buf(),
        chattr: false,
    })
}

#[test]
fn readonly_production_folder_is_a_refusal() {
    let (ws, id) = approved();
    let before = ws.production_state();
    let snaps = snapshot_files(&ws);
    let folder = ws.path().join(".d1ops/db");
    let Some(guard) = make_unwritable(&folder) else {
        // Root without chattr: the classification is covered by the backend's unit test
        // (`readonly_is_an_obstacle_not_a_migration_failure` in src/backend/local.rs).
        eprintln!("skipped: no way to make a folder read-only for root here");
        return;
    };
    let run = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_refused(
        &ws,
        &id,
        run,
        &before,
        snaps,
        "read_only",
        &[
            "its folder",
            &folder.display().to_string(),
            "production.sqlite-journal",
        ],
    );
    drop(guard);

    // The file itself read-only: the sentence names the file.
    let file = ws.path().join(".d1ops/db/production.sqlite");
    if let Some(guard) = make_unwritable(&file) {
        let run = ws.run_as("bob", &["promote", &id, "--yes"]);
        assert_refused(
            &ws,
            &id,
            run,
            &before,
            snaps,
            "read_only",
            &["the file", &file.display().to_string()],
        );
        drop(guard);
    }
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.release_state(&id), "live");
}

/// A small tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        if !is_root() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        let c = std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: zeroed statvfs is valid; `c` is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Leaves about `free` bytes free, with one filler file.
    fn fill_to(&self, free: u64) {
        let filler = self.path().join("filler");
        let _ = std::fs::remove_file(&filler);
        let size = self.free().saturating_sub(free);
        let f = std::fs::File::create(&filler).expect("filler");
        // Written, not sparse: tmpfs counts written pages only.
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        let chunk = vec![0x5au8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n]).expect("fill");
            left -= n as u64;
        }
        w.flush().expect("flush");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn full_disk_is_a_refusal_naming_space() {
    let Some(fs) = Tmpfs::mount(64) else {
        // No tmpfs here: the free-space check is driven by its fault point instead.
        let (ws, id) = approved();
        let before = ws.production_state();
        let snaps = snapshot_files(&ws);
        let out = ws
            .cmd("bob")
            .env("D1OPS_FAKE_FREE_BYTES", MIB.to_string())
            .args(["promote", &id, "--yes"])
            .output()
            .expect("run");
        let run = (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_refused(
            &ws,
            &id,
            run,
            &before,
            snaps,
            "no_space",
            &["needs", "1 MiB free on"],
        );
        return;
    };
    let mount = fs.path().display().to_string();
    let ws = Ws {
        dir: tempfile::tempdir_in(fs.path()).expect("workspace on the tmpfs"),
        cf: None,
    };
    ws.ok(&["init"]);

    // 1. Deploy: a migration larger than the disk stops the preview apply. That is the
    // environment's fault, not the migration's: exit 1, the sentence names the full disk
    // and no migration line, the release is settled (blocked), its preview removed.
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users(name) VALUES ('a'), ('b');\n",
    );
    ws.ship();
    let blob = |mib: u32| {
        format!(
            "CREATE TABLE blobs (b BLOB);\nWITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {mib}) INSERT INTO blobs SELECT randomblob(1048576) FROM n;\n"
        )
    };
    ws.migration("0002_rewrite.sql", &blob(96));
    let (code, out, err) = ws.run_as("alice", &["deploy"]);
    eprintln!("deploy: {err}");
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("disk is full"), "{err}");
    assert!(err.contains(&mount), "names the file system: {err}");
    assert!(!err.contains("0002_rewrite.sql:"), "blames no line: {err}");
    let releases = ws.json(&["releases"]);
    let newest = releases
        .as_array()
        .and_then(|r| r.iter().find(|r| r["state"] != "live"))
        .cloned()
        .expect("the deploy's release");
    assert_eq!(newest["state"], "blocked", "{newest}");
    let blocked = newest["id"].as_str().expect("id");
    assert!(
        ws.database_file(&format!("preview-{}", blocked.to_lowercase()))
            .is_none(),
        "the preview is removed"
    );

    // 2. A release that fits, approved.
    ws.migration("0002_rewrite.sql", &blob(24));
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().expect("id").to_string();
    ws.ok_as("bob", &["approve", &id]);
    let before = ws.production_state();
    let snaps = snapshot_files(&ws);

    // 3. Too little room for a recovery point and the apply: refused before anything.
    fs.fill_to(8 * MIB);
    let run = ws.run_as("bob", &["promote", &id, "--yes"]);
    let err = assert_refused(
        &ws,
        &id,
        run,
        &before,
        snaps,
        "no_space",
        &["needs", "free on", &mount],
    );
    assert!(err.contains("recovery point"), "{err}");

    // 4. Room to start, not to finish: the disk fills during the apply. Still a refusal.
    fs.fill_to(20 * MIB);
    let run = ws.run_as("bob", &["promote", &id, "--yes"]);
    assert_refused(
        &ws,
        &id,
        run,
        &before,
        snaps,
        "no_space",
        &["disk is full", "needs more than", &mount],
    );

    // 5. Space freed: the same release promotes.
    let _ = std::fs::remove_file(fs.path().join("filler"));
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.release_state(&id), "live");
    drop(ws);
}

#[test]
fn release_stays_approved_after_a_refusal() {
    let (ws, id) = approved();
    let before = ws.production_state();
    let snaps = snapshot_files(&ws);
    // Refused twice (no room), each time audited, never failed.
    for _ in 0..2 {
        let out = ws
            .cmd("bob")
            .env("D1OPS_FAKE_FREE_BYTES", "4096")
            .args(["promote", &id, "--yes"])
            .output()
            .expect("run");
        let run = (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_refused(
            &ws,
            &id,
            run,
            &before,
            snaps,
            "no_space",
            &["needs", "4 KiB free on"],
        );
    }
    assert_eq!(audit_details(&ws, "promotion.refused").len(), 2);
    assert!(audit_details(&ws, "promotion.started").len() == 1);
    // The approval still counts: no new approval is needed.
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert_eq!(ws.release_state(&id), "live");
    assert_eq!(
        ws.production_ledger(),
        vec!["0001_users.sql", "0002_rewrite.sql"]
    );
}

#[test]
fn deploy_without_room_for_a_preview_is_settled_not_stuck() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws.ship();
    ws.migration(
        "0002_rewrite.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    let out = ws
        .cmd("alice")
        .env("D1OPS_FAKE_FREE_BYTES", "4096")
        .arg("deploy")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("deploy: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("needs") && err.contains("4 KiB free on") && err.contains("preview"),
        "{err}"
    );
    let releases = ws.json(&["releases"]);
    let newest = releases
        .as_array()
        .and_then(|r| r.iter().find(|r| r["state"] != "live"))
        .cloned()
        .expect("the deploy's release");
    assert_eq!(newest["state"], "blocked", "{newest}");
    let id = newest["id"].as_str().expect("id");
    assert!(
        ws.database_file(&format!("preview-{}", id.to_lowercase()))
            .is_none()
    );
    let leftovers: Vec<_> = std::fs::read_dir(ws.path().join(".d1ops/db"))
        .expect("db folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Item 11: the state cannot be written AFTER production committed (a full disk there, here
/// made deterministic by `chattr +i` on the state store: a full disk cannot be timed, as the
/// store's WAL reuses space it already holds). The sentence says production already has the
/// migrations and that the next command completes it; the next command does.
#[test]
fn state_unwritable_after_commit_says_production_has_the_migrations() {
    let (ws, id) = approved();
    let mut child = ws
        .process("bob")
        .env("D1OPS_PAUSE", "promote.after_commit:4000")
        .args(["promote", &id, "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn promote");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ws
        .production_ledger()
        .contains(&"0002_rewrite.sql".to_string())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the apply never committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let state = ws.path().join(".d1ops/state.sqlite");
    let wal = ws.path().join(".d1ops/state.sqlite-wal");
    let guards: Vec<Restore> = [&state, &wal]
        .into_iter()
        .filter(|p| p.exists())
        .map_while(|p| make_unwritable(p))
        .collect();
    if guards.is_empty() || !guards.iter().all(|g| g.chattr) {
        drop(guards);
        let _ = child.wait();
        eprintln!("skipped: chattr is not available to make the state unwritable");
        return;
    }
    let out = child.wait_with_output().expect("promote");
    drop(guards);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("after commit: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("production already has release")
            && err.contains("0002_rewrite.sql")
            && err.contains("next d1ops command"),
        "{err}"
    );
    assert!(!err.contains("rolled back"), "{err}");
    // The next command rolls the promotion forward; nothing is applied twice.
    let (code, _, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ws.release_state(&id), "live");
    assert_eq!(
        ws.production_ledger(),
        vec!["0001_users.sql", "0002_rewrite.sql"]
    );
}
