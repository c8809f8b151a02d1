//! Hostile and unlucky input (issue 12, items 7, 8 and 11): every file is read or refused,
//! configuration errors never echo a secret, and settings that would silently switch a
//! safeguard off are refused. Each bad input ends in one sentence naming the file or key, exit
//! code 1, and nothing written (no release, state unchanged).
mod common;

use std::path::Path;
use std::time::Duration;

use common::Ws;

/// Anything here that would block (a FIFO, a device) must end well before this.
const NO_HANG: Duration = Duration::from_secs(120);

/// Runs `args` and asserts a clean refusal: exit 1, one line on stderr holding `needles`,
/// no release created and d1ops' state unchanged. Returns stderr.
fn assert_refused(ws: &Ws, args: &[&str], needles: &[&str]) -> String {
    let before_releases = release_count(ws);
    let before_state = ws.state_digest();
    let out = ws
        .cmd("alice")
        .args(args)
        .timeout(NO_HANG)
        .output()
        .expect("run");
    let (code, stdout, stderr) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        code,
        Some(1),
        "d1ops {args:?}: stdout {stdout} stderr {stderr}"
    );
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "one sentence: {line}");
    assert!(!line.contains("panicked"), "{line}");
    for n in needles {
        assert!(line.contains(n), "expected {n:?} in {line:?}");
    }
    assert_eq!(release_count(ws), before_releases, "a release was created");
    assert_eq!(
        ws.state_digest(),
        before_state,
        "state changed after {args:?}"
    );
    line.to_string()
}

/// Releases known to d1ops (0 when the configuration itself is refused: read the state).
fn release_count(ws: &Ws) -> usize {
    let out = ws
        .cmd("alice")
        .args(["--json", "releases"])
        .output()
        .expect("releases");
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("releases JSON");
        return v.as_array().map_or(0, Vec::len);
    }
    let state = ws.path().join(".d1ops/state.sqlite");
    if !state.exists() {
        return 0;
    }
    let c = rusqlite::Connection::open(state).expect("state");
    c.query_row("SELECT count(*) FROM releases", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as usize)
}

fn shipped() -> Ws {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws.ship();
    ws
}

fn edit_config(ws: &Ws, edit: impl FnOnce(String) -> String) {
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, edit(text)).expect("write config");
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path and a mode.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn dangling_symlink_migration_is_an_error() {
    let ws = shipped();
    std::os::unix::fs::symlink(
        ws.path().join("migrations/0002_gone.sql"),
        ws.path().join("migrations/0002_x.sql"),
    )
    .unwrap();
    for args in [&["deploy"][..], &["lint"]] {
        assert_refused(
            &ws,
            args,
            &["migrations/0002_x.sql", "symbolic link", "does not exist"],
        );
    }
}

#[cfg(unix)]
#[test]
fn fifo_migration_is_an_error_not_a_hang() {
    let ws = shipped();
    mkfifo(&ws.path().join("migrations/0002_x.sql"));
    assert_refused(
        &ws,
        &["deploy"],
        &["migrations/0002_x.sql", "FIFO", "not a regular file"],
    );
    // Nested layout: a `migration.sql` that is a FIFO is refused too.
    let ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("migrations/0001_a")).unwrap();
    mkfifo(&ws.path().join("migrations/0001_a/migration.sql"));
    assert_refused(
        &ws,
        &["deploy"],
        &["migrations/0001_a/migration.sql", "FIFO"],
    );
}

#[test]
fn directory_named_like_a_migration_is_an_error() {
    let ws = shipped();
    std::fs::create_dir_all(ws.path().join("migrations/0002_x.sql")).unwrap();
    assert_refused(
        &ws,
        &["deploy"],
        &[
            "migrations/0002_x.sql",
            "is a directory, not a regular file",
        ],
    );
}

#[cfg(unix)]
#[test]
fn device_named_like_a_migration_is_an_error() {
    let ws = shipped();
    std::os::unix::fs::symlink("/dev/zero", ws.path().join("migrations/0002_x.sql")).unwrap();
    assert_refused(
        &ws,
        &["deploy"],
        &["migrations/0002_x.sql", "character device"],
    );
}

#[test]
fn oversized_migration_is_refused_with_the_limit() {
    let ws = shipped();
    let big = format!("-- {}\nSELECT 1;\n", "x".repeat(10 * 1024 * 1024));
    ws.migration("0002_big.sql", &big);
    assert_refused(
        &ws,
        &["deploy"],
        &["migrations/0002_big.sql", "10 MiB", "migration file"],
    );
}

#[cfg(unix)]
#[test]
fn ingest_of_a_device_ends_with_an_error() {
    let ws = shipped();
    let out = ws
        .cmd("alice")
        .args(["ingest", "/dev/zero"])
        .timeout(NO_HANG)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(
        err.contains("line 1 is longer than 1 MiB") || err.contains("character device"),
        "{err}"
    );
    // A normal log still imports, and a line of the right shape after a good one counts.
    let log = ws.path().join("app.jsonl");
    std::fs::write(
        &log,
        "{\"at\":\"2025-03-01T12:00:00Z\",\"sql\":\"SELECT 1\",\"duration_ms\":1.5}\n\n{oops\n",
    )
    .unwrap();
    let v = ws.json(&["ingest", log.to_str().unwrap()]);
    assert_eq!(v["imported"], 1, "{v}");
    assert_eq!(v["bad"], 1, "{v}");
}

#[cfg(unix)]
#[test]
fn artifact_from_a_device_is_refused() {
    let ws = shipped();
    assert_refused(
        &ws,
        &["deploy", "--artifact", "app=/dev/zero"],
        &["artifact app", "/dev/zero", "character device"],
    );
    let fifo = ws.path().join("bundle.js");
    mkfifo(&fifo);
    assert_refused(
        &ws,
        &["deploy", "--artifact", &format!("bot={}", fifo.display())],
        &["artifact bot", "bundle.js", "FIFO"],
    );
    let dir = ws.path().join("dist");
    std::fs::create_dir_all(&dir).unwrap();
    assert_refused(
        &ws,
        &["deploy", "--artifact", &format!("api={}", dir.display())],
        &["artifact api", "directory"],
    );
    // A real artifact is hashed (streamed) and recorded.
    std::fs::write(dir.join("app.js"), "export default {}\n").unwrap();
    let (code, d) = {
        let (code, out, err) = ws.run_as(
            "alice",
            &[
                "--json",
                "deploy",
                "--artifact",
                &format!("app={}", dir.join("app.js").display()),
            ],
        );
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out} {err}"));
        (code, v)
    };
    assert_eq!(code, Some(0), "{d}");
    let id = d["id"].as_str().unwrap();
    let shown = ws.json(&["release", "show", id]);
    assert!(shown.to_string().contains("app.js"), "{shown}");
}

#[test]
fn missing_migrations_folder_is_an_error() {
    // `init` writes migrations_dir and creates the folder: a deploy right away is code-only.
    let ws = Ws::new();
    assert!(ws.path().join("migrations").is_dir());
    let config = std::fs::read_to_string(ws.path().join("d1ops.toml")).unwrap();
    assert!(
        config.contains("migrations_dir = \"migrations\""),
        "{config}"
    );
    // The configured folder gone: an error naming it and the fix, for deploy and lint.
    std::fs::remove_dir(ws.path().join("migrations")).unwrap();
    for args in [&["deploy"][..], &["lint"]] {
        assert_refused(
            &ws,
            args,
            &[
                "migrations folder migrations does not exist",
                "migrations_dir",
            ],
        );
    }
    edit_config(&ws, |t| {
        t.replace(
            "migrations_dir = \"migrations\"",
            "migrations_dir = \"db/sql\"",
        )
    });
    assert_refused(
        &ws,
        &["deploy"],
        &["migrations folder db/sql does not exist"],
    );
    // A file where the folder should be is not "no migrations" either.
    std::fs::write(ws.path().join("migrations"), "not a folder").unwrap();
    edit_config(&ws, |t| {
        t.replace(
            "migrations_dir = \"db/sql\"",
            "migrations_dir = \"migrations\"",
        )
    });
    assert_refused(&ws, &["deploy"], &["migrations", "not a folder"]);
    std::fs::remove_file(ws.path().join("migrations")).unwrap();
    // Without the key, a workspace without a folder is a code-only workspace.
    edit_config(&ws, |t| {
        t.lines()
            .filter(|l| !l.starts_with("migrations_dir"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    assert!(d["pending"].as_array().is_some_and(Vec::is_empty), "{d}");
}

#[test]
fn ledger_table_named_like_a_user_table_is_refused() {
    // A migration that creates the table the ledger is named after.
    let ws = Ws::new();
    edit_config(&ws, |t| {
        t.replace(
            "migrations_table = \"d1_migrations\"",
            "migrations_table = \"users\"",
        )
    });
    ws.migration(
        "0001_users.sql",
        "-- the app's users\nCREATE TABLE IF NOT EXISTS \"Users\" (id INTEGER PRIMARY KEY);\n",
    );
    for args in [&["deploy"][..], &["lint"]] {
        assert_refused(
            &ws,
            args,
            &[
                "migrations/0001_users.sql:2",
                "\"Users\"",
                "migrations_table",
            ],
        );
    }
    // The same for a live workspace whose ledger is renamed onto a user table.
    let ws = shipped();
    edit_config(&ws, |t| {
        t.replace(
            "migrations_table = \"d1_migrations\"",
            "migrations_table = \"users\"",
        )
    });
    assert_refused(&ws, &["deploy"], &["migrations/0001_users.sql:1", "users"]);
    // Names SQLite or D1 keep for themselves, and non-identifiers, are refused at load.
    let ws = Ws::new();
    for (name, needle) in [
        ("sqlite_ledger", "reserved by SQLite"),
        ("_cf_KV", "reserved by Cloudflare D1"),
        ("1ledger", "plain identifier"),
        ("ledger; DROP TABLE x", "plain identifier"),
    ] {
        std::fs::write(
            ws.path().join("d1ops.toml"),
            format!("migrations_table = {name:?}\n"),
        )
        .unwrap();
        assert_refused(
            &ws,
            &["releases"],
            &["d1ops.toml", "migrations_table", needle],
        );
    }
    // wrangler's migrations_table goes through the same rule at init.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrangler.toml"),
        "[[d1_databases]]\nbinding = \"DB\"\nmigrations_table = \"sqlite_master\"\n",
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("d1ops")
        .unwrap()
        .args(["--workspace", dir.path().to_str().unwrap(), "init"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("wrangler.toml") && err.contains("reserved by SQLite"),
        "{err}"
    );
    assert!(!dir.path().join("d1ops.toml").exists());
}

#[test]
fn zero_required_approvals_is_refused() {
    let ws = shipped();
    edit_config(&ws, |t| {
        t.replace("required_approvals = 1", "required_approvals = 0")
    });
    for args in [&["envs"][..], &["deploy"]] {
        assert_refused(
            &ws,
            args,
            &[
                "d1ops.toml",
                "required_approvals = 0",
                "allow_no_approval = true",
            ],
        );
    }
    // Said explicitly, it stands.
    edit_config(&ws, |t| {
        t.replace(
            "required_approvals = 0",
            "required_approvals = 0\nallow_no_approval = true",
        )
    });
    let envs = ws.json(&["envs"]);
    assert!(envs.is_array(), "{envs}");
}

#[test]
fn zero_statement_timeout_is_refused() {
    let ws = shipped();
    edit_config(&ws, |t| {
        t.replace("statement_timeout = \"30s\"", "statement_timeout = \"0s\"")
    });
    for args in [&["releases"][..], &["deploy"]] {
        assert_refused(
            &ws,
            args,
            &[
                "d1ops.toml",
                "statement_timeout",
                "allow_no_statement_timeout = true",
            ],
        );
    }
    // Said explicitly, "0s" means no limit: migrations still apply.
    edit_config(&ws, |t| {
        t.replace(
            "statement_timeout = \"0s\"",
            "statement_timeout = \"0s\"\nallow_no_statement_timeout = true",
        )
    });
    ws.migration(
        "0002_items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\nINSERT INTO items SELECT value FROM json_each('[1,2,3]');\n",
    );
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
}

/// Every file under `.d1ops/logs`, concatenated.
fn logs(ws: &Ws) -> String {
    let mut out = String::new();
    let dir = ws.path().join(".d1ops/logs");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        out.push_str(&String::from_utf8_lossy(
            &std::fs::read(entry.path()).unwrap_or_default(),
        ));
    }
    out
}

#[test]
fn token_in_config_error_is_never_printed() {
    const ENV_TOKEN: &str = "s3cr3tEnvTokenValue42";
    // (what is written under [cloudflare], the secret in it, CLOUDFLARE_API_TOKEN)
    let cases: [(&str, &str, Option<&str>); 10] = [
        ("token = \"s3cr3tQuoted01\"", "s3cr3tQuoted01", None),
        ("apiToken = \"s3cr3tCamel02\"", "s3cr3tCamel02", None),
        ("api_key = \"s3cr3tSnakeKey03\"", "s3cr3tSnakeKey03", None),
        ("api_token = s3cr3tUnquoted04", "s3cr3tUnquoted04", None),
        (
            "api_token = \"s3cr3tUnterminated05",
            "s3cr3tUnterminated05",
            None,
        ),
        ("api_token = 's3cr3tLiteral06", "s3cr3tLiteral06", None),
        ("api_token = \"s3cr3tValid07\"", "s3cr3tValid07", None),
        ("API-Token = 8s3cr3tNumberish08", "8s3cr3tNumberish08", None),
        ("password = [\"s3cr3tArray09\"]", "s3cr3tArray09", None),
        (
            "account_id = \"s3cr3tEnvTokenValue42 x\"",
            ENV_TOKEN,
            Some(ENV_TOKEN),
        ),
    ];
    let ws = Ws::new();
    // A state folder, so errors are logged as well.
    ws.ok(&["releases"]);
    let original = std::fs::read_to_string(ws.path().join("d1ops.toml")).unwrap();
    for (line, secret, env_token) in cases {
        std::fs::write(
            ws.path().join("d1ops.toml"),
            format!("{original}\n[cloudflare]\n{line}\n"),
        )
        .unwrap();
        for args in [&["releases"][..], &["--json", "deploy"], &["lint"]] {
            let mut cmd = ws.cmd("alice");
            if let Some(t) = env_token {
                cmd.env("CLOUDFLARE_API_TOKEN", t);
            }
            let out = cmd.args(args).timeout(NO_HANG).output().expect("run");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
            assert_eq!(out.status.code(), Some(1), "{line} {args:?}: {stderr}");
            assert!(stderr.contains("d1ops.toml"), "{line}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{line}: {stderr}");
            for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
                assert!(
                    !text.contains(secret),
                    "{line}: {what} shows the secret: {text}"
                );
            }
            assert!(
                !logs(&ws).contains(secret),
                "{line}: the log shows the secret:\n{}",
                logs(&ws)
            );
        }
        if env_token.is_none() {
            let (_, _, stderr) = ws.run_as("alice", &["releases"]);
            assert!(stderr.contains("line "), "{line}: no position in {stderr}");
        }
    }
}
