use super::*;

fn guarded(dir: &std::path::Path) -> (Connection, Sandbox) {
    let mut conn = Connection::open(dir.join("db.sqlite")).expect("open");
    let sandbox = Sandbox::install(&mut conn, "d1_migrations").expect("install");
    sandbox
        .trusted(|| {
            conn.execute_batch(
                "CREATE TABLE d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TEXT);
                 CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT);
                 INSERT INTO users(email) VALUES ('a@example.com');",
            )
        })
        .expect("setup");
    (conn, sandbox)
}

/// Each hostile statement is refused with a reason naming what it tried.
#[test]
fn hostile_statements_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("other.sqlite");
    let cases: &[(&str, &str)] = &[
        (
            &format!("ATTACH DATABASE '{}' AS p", target.display()),
            "ATTACH",
        ),
        ("DETACH DATABASE main", "DETACH"),
        (&format!("VACUUM INTO '{}'", target.display()), "ATTACH"),
        ("VACUUM", "ATTACH"),
        ("SELECT load_extension('/tmp/x.so')", "load_extension"),
        ("PRAGMA writable_schema = ON", "writable_schema"),
        ("PRAGMA journal_mode = OFF", "journal_mode"),
        ("PRAGMA schema_version = 7", "may only be read"),
        (
            "INSERT INTO d1_migrations(name) VALUES ('0009_fake.sql')",
            "ledger",
        ),
        ("DELETE FROM d1_migrations", "ledger"),
        ("UPDATE d1_migrations SET name = 'x'", "ledger"),
        ("DROP TABLE d1_migrations", "ledger"),
        ("ALTER TABLE d1_migrations ADD COLUMN x", "ledger"),
        (
            "CREATE TRIGGER t AFTER INSERT ON d1_migrations BEGIN SELECT 1; END",
            "ledger",
        ),
        ("CREATE TABLE _cf_mine(x)", "_cf_"),
        ("PRAGMA main.writable_schema = 1", "writable_schema"),
    ];
    for (sql, why) in cases {
        let (conn, _sandbox) = guarded(dir.path());
        let err = conn.execute_batch(sql).expect_err(sql);
        let reason = refusal_of(&err).unwrap_or_else(|| panic!("{sql}: not a refusal: {err}"));
        assert!(reason.contains(why), "{sql}: {reason}");
        drop(conn);
        std::fs::remove_file(dir.path().join("db.sqlite")).expect("reset");
    }
    assert!(!target.exists(), "nothing was written outside the database");
}

/// What D1 allows still runs: DDL, DML with AUTOINCREMENT, D1's pragmas, reads of
/// introspection pragmas (also as table-valued functions), ANALYZE and optimize.
#[test]
fn ordinary_statements_still_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (conn, _sandbox) = guarded(dir.path());
    for sql in [
        "CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id))",
        "CREATE INDEX posts_user ON posts(user_id)",
        "INSERT INTO users(email) VALUES ('b@example.com')",
        "UPDATE users SET email = 'c@example.com' WHERE id = 2",
        "PRAGMA defer_foreign_keys = ON",
        "PRAGMA foreign_key_check",
        "PRAGMA table_info(users)",
        "PRAGMA schema_version",
        "SELECT * FROM pragma_table_info('users')",
        "SELECT name FROM d1_migrations",
        "ANALYZE",
        "PRAGMA optimize",
        "ALTER TABLE posts RENAME TO articles",
        "DROP INDEX posts_user",
        "DROP TABLE articles",
        "DELETE FROM users",
        "DROP TABLE users",
    ] {
        if let Err(e) = conn.execute_batch(sql) {
            panic!("{sql}: {e}: {:?}", take_refusal());
        }
    }
}

/// Our own statements, marked trusted, may write the ledger.
#[test]
fn trusted_statements_write_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (conn, sandbox) = guarded(dir.path());
    sandbox
        .trusted(|| conn.execute("INSERT INTO d1_migrations(name) VALUES ('0001_a.sql')", []))
        .expect("trusted insert");
    assert!(
        conn.execute("INSERT INTO d1_migrations(name) VALUES ('0002_b.sql')", [])
            .is_err(),
        "the guard is back after the trusted call"
    );
}

/// A trigger a migration created cannot write the ledger for a later user statement.
#[test]
fn trigger_cannot_reach_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (conn, _sandbox) = guarded(dir.path());
    conn.execute_batch(
        "CREATE TRIGGER sneaky AFTER INSERT ON users BEGIN DELETE FROM d1_migrations; END",
    )
    .expect("the trigger itself is created");
    let err = conn
        .execute("INSERT INTO users(email) VALUES ('x')", [])
        .expect_err("the firing statement is refused");
    assert!(
        refusal_of(&err).is_some_and(|r| r.contains("ledger")),
        "{err}"
    );
}
