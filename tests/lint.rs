//! Migration lint through the real binary: every rule triggered by one fixture and not by
//! another (`d1ops lint --json` on a fresh workspace), suppression, severity overrides, exit
//! codes, the human output, and the gate's lint checks on a preview of production with rows.
mod common;

use common::Ws;
use serde_json::Value;

/// Writes `files` as `0001_m.sql`, `0002_m.sql`, ... and runs `d1ops lint --json`.
fn lint_with(config: &str, files: &[&str]) -> (Option<i32>, Value, Ws) {
    let ws = Ws::new();
    if !config.is_empty() {
        let path = ws.path().join("d1ops.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[gate]\n"), "{text}");
        let text = text.replacen("[gate]\n", &format!("[gate]\n{config}\n"), 1);
        std::fs::write(&path, text).unwrap();
    }
    for (i, sql) in files.iter().enumerate() {
        ws.migration(&format!("{:04}_m.sql", i + 1), sql);
    }
    let (code, out, err) = ws.run_as("alice", &["--json", "lint"]);
    let json: Value = serde_json::from_str(&out)
        .unwrap_or_else(|_| panic!("lint output is not JSON: {out}\nstderr: {err}"));
    (code, json, ws)
}

/// `file:line id` of each finding, `(suppressed)` appended when it is.
fn found(json: &Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["path"]
                .as_str()
                .unwrap()
                .trim_start_matches("migrations/");
            let mark = if f["suppressed"] == true {
                " (suppressed)"
            } else {
                ""
            };
            format!("{file}:{} {}{mark}", f["line"], f["id"].as_str().unwrap())
        })
        .collect()
}

/// Lints `files` with `config` added under `[gate]`; the findings must be exactly `expected`
/// and the exit code must be 1 exactly when an unsuppressed finding is at fail severity.
fn check_with(config: &str, files: &[&str], expected: &[&str]) -> Value {
    let (code, json, _ws) = lint_with(config, files);
    let shown: Vec<String> = files
        .iter()
        .map(|f| f.chars().take(300).collect())
        .collect();
    assert_eq!(found(&json), expected, "findings of {shown:#?}");
    let blocking = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "fail" && f["suppressed"] == false);
    assert_eq!(code, Some(i32::from(blocking)), "exit code for {json:#}");
    assert_eq!(json["fail"].as_u64().unwrap() > 0, blocking);
    json
}

fn check(files: &[&str], expected: &[&str]) -> Value {
    check_with("", files, expected)
}

const A: &str = "CREATE TABLE a (id INTEGER PRIMARY KEY, b TEXT, c TEXT);";

fn columns(n: usize) -> String {
    (1..=n)
        .map(|i| format!("c{i} TEXT"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn d1_transaction() {
    check(
        &["BEGIN TRANSACTION;\nCREATE TABLE a (id INTEGER PRIMARY KEY);\nCOMMIT;"],
        &["0001_m.sql:1 d1.transaction", "0001_m.sql:3 d1.transaction"],
    );
    check(
        &["SAVEPOINT s;\nRELEASE s;"],
        &["0001_m.sql:1 d1.transaction", "0001_m.sql:2 d1.transaction"],
    );
    // What D1 refuses is refused by the sandbox, found by the replay (not by text): every
    // refused statement is named, and the rest of the file still replays.
    check(
        &[
            "ATTACH DATABASE 'prod.sqlite' AS p;\nCREATE TABLE a (id INTEGER PRIMARY KEY);\nPRAGMA writable_schema = 1;\nINSERT INTO d1_migrations (name) VALUES ('0009_x.sql');\nSELECT load_extension('x');",
        ],
        &[
            "0001_m.sql:1 d1.refused",
            "0001_m.sql:3 d1.refused",
            "0001_m.sql:4 d1.refused",
            "0001_m.sql:5 d1.refused",
        ],
    );
    // A trigger's BEGIN ... END and RAISE(ROLLBACK) are not transaction control.
    check(
        &[
            "CREATE TABLE a (id INTEGER PRIMARY KEY);\nCREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n  SELECT RAISE(ROLLBACK, 'no');\nEND;",
        ],
        &[],
    );
}

#[test]
fn d1_pragma_foreign_keys() {
    let json = check(
        &["PRAGMA foreign_keys = OFF;\nCREATE TABLE a (id INTEGER PRIMARY KEY);"],
        &["0001_m.sql:1 d1.pragma-foreign-keys"],
    );
    let f = &json["findings"][0];
    assert_eq!(f["check"], "lint.d1");
    assert_eq!(f["severity"], "fail");
    assert_eq!(f["statement"], "PRAGMA foreign_keys = OFF");
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("PRAGMA defer_foreign_keys = on")
    );
    check(
        &[
            "PRAGMA defer_foreign_keys = on;\nCREATE TABLE a (id INTEGER PRIMARY KEY);\nPRAGMA foreign_key_check;",
        ],
        &[],
    );
}

#[test]
fn d1_statement_size() {
    let insert = |bytes: usize| {
        format!(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO a (v) VALUES ('{}');",
            "x".repeat(bytes - "INSERT INTO a (v) VALUES ('')".len())
        )
    };
    let json = check(&[&insert(100_001)], &["0001_m.sql:2 d1.statement-size"]);
    assert!(
        json["findings"][0]["statement"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 120
    );
    check(&[&insert(100_000)], &[]);
}

#[test]
fn d1_too_many_columns() {
    let table = |n| {
        format!(
            "CREATE TABLE wide (id INTEGER PRIMARY KEY, {});",
            columns(n)
        )
    };
    check(&[&table(100)], &["0001_m.sql:1 d1.too-many-columns"]);
    check(&[&table(99)], &[]);
    // Growing past the limit is attributed to the ALTER that did it.
    check(
        &[&table(99), "ALTER TABLE wide ADD COLUMN extra TEXT;"],
        &["0002_m.sql:1 d1.too-many-columns"],
    );
}

#[test]
fn d1_crlf_in_trigger() {
    let trigger = |eol: &str| {
        format!(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER);{eol}CREATE TRIGGER t AFTER INSERT ON a{eol}BEGIN{eol}  UPDATE a SET n = 1 WHERE id = NEW.id;{eol}END;{eol}"
        )
    };
    check(&[&trigger("\r\n")], &["0001_m.sql:2 d1.crlf-in-trigger"]);
    check(&[&trigger("\n")], &[]);
}

#[test]
fn destructive_drop_table() {
    let json = check(
        &[A, "DROP TABLE a;"],
        &["0002_m.sql:1 destructive.drop-table"],
    );
    assert_eq!(json["findings"][0]["check"], "lint.destructive");
    check(
        &[
            A,
            "DROP TABLE IF EXISTS nothing_here;\nDROP INDEX IF EXISTS nor_here;",
        ],
        &[],
    );
}

#[test]
fn destructive_drop_column() {
    check(
        &[A, "ALTER TABLE a DROP COLUMN c;"],
        &["0002_m.sql:1 destructive.drop-column"],
    );
    // Through the create-copy-drop-rename rebuild: attributed to its DROP TABLE.
    check(
        &[
            A,
            "CREATE TABLE a_new (id INTEGER PRIMARY KEY, b TEXT);\nINSERT INTO a_new SELECT id, b FROM a;\nDROP TABLE a;\nALTER TABLE a_new RENAME TO a;",
        ],
        &["0002_m.sql:3 destructive.drop-column"],
    );
    // A rebuild that keeps every column is not destructive.
    check(
        &[
            A,
            "CREATE TABLE a_new (id INTEGER PRIMARY KEY, b TEXT, c TEXT, CHECK (length(b) < 64));\nINSERT INTO a_new SELECT * FROM a;\nDROP TABLE a;\nALTER TABLE a_new RENAME TO a;",
        ],
        &[],
    );
}

#[test]
fn destructive_alter_column() {
    let json = check(
        &[
            A,
            "CREATE TABLE a_new (id INTEGER PRIMARY KEY, b INTEGER NOT NULL, c TEXT);\nINSERT INTO a_new SELECT id, b, c FROM a;\nDROP TABLE a;\nALTER TABLE a_new RENAME TO a;",
        ],
        &["0002_m.sql:3 destructive.alter-column"],
    );
    let message = json["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("type TEXT → INTEGER") && message.contains("NOT NULL added"),
        "{message}"
    );
    check(&[A, "ALTER TABLE a ADD COLUMN d TEXT;"], &[]);
}

#[test]
fn destructive_rename_table() {
    let json = check(
        &[A, "ALTER TABLE a RENAME TO a2;"],
        &["0002_m.sql:1 destructive.rename-table"],
    );
    let f = &json["findings"][0];
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("breaks the live code")
    );
    assert!(f["hint"].as_str().unwrap().contains("expand/contract"));
    // Renaming a table created in the same migration breaks nothing.
    check(&[&format!("{A}\nALTER TABLE a RENAME TO a2;")], &[]);
}

#[test]
fn destructive_rename_column() {
    check(
        &[A, "ALTER TABLE a RENAME COLUMN b TO b2;"],
        &["0002_m.sql:1 destructive.rename-column"],
    );
    check(
        &[
            A,
            "CREATE TABLE a_new (id INTEGER PRIMARY KEY, b2 TEXT, c TEXT);\nINSERT INTO a_new SELECT * FROM a;\nDROP TABLE a;\nALTER TABLE a_new RENAME TO a;",
        ],
        &["0002_m.sql:3 destructive.rename-column"],
    );
    check(
        &[&format!("{A}\nALTER TABLE a RENAME COLUMN b TO b2;")],
        &[],
    );
}

#[test]
fn risk_add_not_null_column() {
    let json = check(
        &[A, "ALTER TABLE a ADD COLUMN d TEXT NOT NULL;"],
        &["0002_m.sql:1 risk.add-not-null-column"],
    );
    assert_eq!(json["findings"][0]["severity"], "fail");
    assert_eq!(json["findings"][0]["check"], "lint.risk");
    check(
        &[
            A,
            "ALTER TABLE a ADD COLUMN d TEXT NOT NULL DEFAULT '';\nALTER TABLE a ADD COLUMN e TEXT CHECK (e IS NOT NULL);",
        ],
        &[],
    );
}

#[test]
fn risk_update_and_delete_without_where() {
    let json = check(
        &[A, "UPDATE a SET b = lower(b);\nDELETE FROM a;"],
        &[
            "0002_m.sql:1 risk.update-without-where",
            "0002_m.sql:2 risk.delete-without-where",
        ],
    );
    assert_eq!(json["warn"], 2);
    check(
        &[
            A,
            "UPDATE a SET b = (SELECT 'x' WHERE 1) WHERE b IS NULL;\nDELETE FROM a WHERE c = '';\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  DELETE FROM a;\nEND;",
        ],
        &[],
    );
}

#[test]
fn risk_cascade_rebuild() {
    let parent = |action: &str| {
        format!(
            "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT);\nCREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id){action});"
        )
    };
    let rebuild = "CREATE TABLE p_new (id INTEGER PRIMARY KEY, name TEXT, CHECK (name <> ''));\nINSERT INTO p_new SELECT * FROM p;\nDROP TABLE p;\nALTER TABLE p_new RENAME TO p;";
    let json = check(
        &[&parent(" ON DELETE CASCADE"), rebuild],
        &["0002_m.sql:3 risk.cascade-rebuild"],
    );
    assert!(
        json["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("c (ON DELETE CASCADE)")
    );
    check(&[&parent(""), rebuild], &[]);
}

#[test]
fn row_count_rules_only_apply_in_the_gate() {
    check(
        &[
            A,
            "CREATE UNIQUE INDEX ux_a_b ON a(b);\nCREATE INDEX ix_a_c ON a(c);",
        ],
        &[],
    );
}

#[test]
fn apply_failure_is_a_finding() {
    check(
        &[A, "ALTER TABLE nope ADD COLUMN x TEXT;", "DROP TABLE a;"],
        &["0002_m.sql:1 lint.apply-failed"],
    );
}

#[test]
fn suppression_needs_a_reason() {
    let json = check(
        &[
            A,
            "-- d1ops:allow destructive.drop-table replaced by b2 in release 41\nDROP TABLE a;",
        ],
        &["0002_m.sql:2 destructive.drop-table (suppressed)"],
    );
    assert_eq!(json["suppressed"], 1);
    assert_eq!(
        json["findings"][0]["suppression_reason"],
        "replaced by b2 in release 41"
    );
    // The check id works too, and so does a comment after the `;` on the same line.
    check(
        &[
            A,
            "DROP TABLE a; -- d1ops:allow lint.destructive no reader left",
        ],
        &["0002_m.sql:1 destructive.drop-table (suppressed)"],
    );
    let json = check(
        &[A, "-- d1ops:allow destructive.drop-table\nDROP TABLE a;"],
        &[
            "0002_m.sql:2 lint.suppression-without-reason",
            "0002_m.sql:2 destructive.drop-table",
        ],
    );
    assert_eq!(json["findings"][0]["check"], "lint.destructive");
    assert_eq!(json["findings"][0]["severity"], "fail");
    check(
        &[
            A,
            "-- d1ops:allow destructive.drop-tabel typo here\nDROP TABLE a;",
        ],
        &[
            "0002_m.sql:2 lint.suppression-unknown-id",
            "0002_m.sql:2 destructive.drop-table",
        ],
    );
    // A suppression applies to its own statement only.
    check(
        &[
            A,
            "-- d1ops:allow destructive.drop-column c is unused\nALTER TABLE a DROP COLUMN c;\nALTER TABLE a DROP COLUMN b;",
        ],
        &[
            "0002_m.sql:2 destructive.drop-column (suppressed)",
            "0002_m.sql:3 destructive.drop-column",
        ],
    );
}

#[test]
fn severity_overrides() {
    let files = [
        A,
        "ALTER TABLE a RENAME COLUMN b TO b2;\nUPDATE a SET c = 'x';",
    ];
    let json = check_with(
        r#"severity = { "destructive.rename-column" = "warn", "lint.risk" = "off" }"#,
        &files,
        &["0002_m.sql:1 destructive.rename-column"],
    );
    assert_eq!(json["findings"][0]["severity"], "warn");
    // A finding id beats its check id; a check id re-grades all of its findings.
    let json = check_with(
        r#"severity = { "lint.risk" = "fail", "risk.update-without-where" = "warn", "lint.destructive" = "off" }"#,
        &[A, "UPDATE a SET c = 'x';\nDELETE FROM a;\nDROP TABLE a;"],
        &[
            "0002_m.sql:1 risk.update-without-where",
            "0002_m.sql:2 risk.delete-without-where",
        ],
    );
    assert_eq!(json["findings"][0]["severity"], "warn");
    assert_eq!(json["findings"][1]["severity"], "fail");
}

#[test]
fn every_rule_has_fixtures_here() {
    let source = include_str!("lint.rs");
    for rule in d1ops::gate::lint::RULES {
        assert!(
            source.contains(&format!(" {}\"", rule.id)),
            "{} needs a fixture in tests/lint.rs",
            rule.id
        );
    }
}

#[test]
fn human_output_and_exit_codes() {
    let (code, _, ws) = lint_with(
        "",
        &[A, "ALTER TABLE a DROP COLUMN c;\nUPDATE a SET b = 1;"],
    );
    assert_eq!(code, Some(1));
    let (code, out, _) = ws.run_as("alice", &["lint"]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "migrations/0002_m.sql:1: fail destructive.drop-column: drops column a.c and its data; the live code still uses it during rollout"
    );
    assert_eq!(lines[1], "    ALTER TABLE a DROP COLUMN c");
    assert!(lines[2].starts_with("    hint: "), "{out}");
    assert!(lines[3].starts_with("migrations/0002_m.sql:2: warn risk.update-without-where: "));
    assert_eq!(
        lines.last().unwrap(),
        &"1 fail, 1 warn, 0 suppressed in 3 statement(s) in 2 migration(s)"
    );

    // Warnings alone exit 0; a clean folder says so.
    let (code, _, _) = lint_with("", &[A, "UPDATE a SET b = 1;"]);
    assert_eq!(code, Some(0));
    let ws = Ws::new();
    ws.migration("0001_a.sql", A);
    let out = ws.ok(&["lint"]);
    assert_eq!(
        out.trim(),
        "no findings in 1 statement(s) in 1 migration(s)"
    );

    // Discovery errors are errors (exit 1, one sentence), not findings.
    ws.migration("0001_b.sql", A);
    let (code, out, err) = ws.run_as("alice", &["lint"]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("share migration number 1"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("d1ops")
        .unwrap()
        .arg("--workspace")
        .arg(empty.path())
        .arg("lint")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("d1ops init"));
}

/// The lint check `id` of a deploy's gate.
fn gate_check<'a>(deploy: &'a Value, id: &str) -> &'a Value {
    deploy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {deploy:#}"))
}

fn gate_ids(check: &Value) -> Vec<String> {
    check["details"]
        .as_array()
        .unwrap_or_else(|| panic!("details of {check:#}"))
        .iter()
        .map(|f| {
            format!(
                "{}:{} {}",
                f["path"].as_str().unwrap(),
                f["line"],
                f["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn gate_lints_pending_migrations_on_production_data() {
    let ws = Ws::new();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT, bio TEXT);\n",
    );
    let first = ws.ship();
    let prod = ws.production();
    prod.execute_batch(
        "INSERT INTO users (username, bio) VALUES ('ann', 'a'), ('ben', 'b'), ('cat', 'c');",
    )
    .unwrap();
    drop(prod);

    // A unique index on a table with rows: a warning, the release stays ready.
    ws.migration(
        "0002_unique.sql",
        "-- Usernames are unique for @mentions.\nCREATE UNIQUE INDEX ux_users_username ON users(username);\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy:#}");
    assert_eq!(deploy["state"], "ready");
    let risk = gate_check(&deploy, "lint.risk");
    assert_eq!(risk["status"], "warn", "{risk:#}");
    assert_eq!(
        gate_ids(risk),
        ["migrations/0002_unique.sql:2 risk.unique-index-existing-data"]
    );
    assert!(
        risk["reason"]
            .as_str()
            .unwrap()
            .contains("migrations/0002_unique.sql:2 risk.unique-index-existing-data")
    );
    assert!(
        risk["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("3 rows")
    );
    for id in ["lint.d1", "lint.destructive"] {
        let c = gate_check(&deploy, id);
        assert_eq!(c["status"], "pass", "{c:#}");
        assert!(
            c["reason"]
                .as_str()
                .unwrap()
                .starts_with("no findings in 1 statement")
        );
    }
    // Only pending migrations are linted: 0001 is production's already.
    assert_ne!(deploy["id"], first.as_str());
    ws.ok(&["abandon", deploy["id"].as_str().unwrap()]);
    std::fs::remove_file(ws.path().join("migrations/0002_unique.sql")).unwrap();

    // DROP COLUMN: lint.destructive fails and blocks the deploy.
    ws.migration("0002_drop_bio.sql", "ALTER TABLE users DROP COLUMN bio;\n");
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy:#}");
    assert_eq!(deploy["state"], "blocked");
    let destructive = gate_check(&deploy, "lint.destructive");
    assert_eq!(destructive["status"], "fail", "{destructive:#}");
    assert_eq!(
        gate_ids(destructive),
        ["migrations/0002_drop_bio.sql:1 destructive.drop-column"]
    );
    ws.ok(&["abandon", deploy["id"].as_str().unwrap()]);

    // The same drop, suppressed with a reason: reported, but ready.
    ws.migration(
        "0002_drop_bio.sql",
        "-- d1ops:allow destructive.drop-column bio is unread since the profile redesign\nALTER TABLE users DROP COLUMN bio;\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy:#}");
    let destructive = gate_check(&deploy, "lint.destructive");
    assert_eq!(destructive["status"], "pass", "{destructive:#}");
    assert!(
        destructive["reason"]
            .as_str()
            .unwrap()
            .contains("1 suppressed")
    );
    assert_eq!(destructive["details"][0]["suppressed"], true);
}

#[test]
fn gate_reports_index_build_time_on_large_tables() {
    let ws = Ws::new();
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("index_rows_warn = 100000", "index_rows_warn = 2"),
    )
    .unwrap();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT);\n",
    );
    ws.ship();
    ws.production()
        .execute_batch("INSERT INTO users (username) VALUES ('a'), ('b'), ('c');")
        .unwrap();
    ws.migration(
        "0002_index.sql",
        "CREATE INDEX ix_users_username ON users(username);\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(0), "{deploy:#}");
    let risk = gate_check(&deploy, "lint.risk");
    assert_eq!(risk["status"], "warn", "{risk:#}");
    assert_eq!(
        gate_ids(risk),
        ["migrations/0002_index.sql:1 risk.index-large-table"]
    );
    let message = risk["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("3 rows") && message.contains("on the preview"),
        "{message}"
    );
}

/// The table rebuild drizzle-kit writes (tests/fixtures/drizzle_rebuild), after a snapshot
/// that believed `users` had a `bio` column: `SELECT ..., "bio" FROM users` names no column,
/// so SQLite reads `"bio"` as the string 'bio' and writes it into every row, with no error.
#[test]
fn lint_dqs_drizzle_rebuild() {
    let init = include_str!("fixtures/drizzle_rebuild/0000_init.sql");
    let rebuild = include_str!("fixtures/drizzle_rebuild/0001_users_bio.sql");
    let json = check(
        &[init, rebuild],
        &[
            "0002_m.sql:1 d1.pragma-foreign-keys",
            "0002_m.sql:8 lint.dqs",
            "0002_m.sql:11 d1.pragma-foreign-keys",
        ],
    );
    let f = &json["findings"][1];
    assert_eq!(f["check"], "lint.d1");
    assert_eq!(f["severity"], "fail");
    assert_eq!(
        f["message"],
        "\"bio\" is not a column here, so SQLite reads it as the string 'bio' (no error: every row gets that text)"
    );
    assert!(f["hint"].as_str().unwrap().contains("single quotes"), "{f}");
    assert!(
        f["statement"]
            .as_str()
            .unwrap()
            .starts_with("INSERT INTO `__new_users`")
    );

    // The same rebuild when users has the column: double quotes name columns, no finding.
    let with_bio = init.replace("NOT NULL\n);", "NOT NULL,\n\t`bio` text\n);");
    check(
        &[&with_bio, rebuild],
        &[
            "0002_m.sql:1 d1.pragma-foreign-keys",
            "0002_m.sql:11 d1.pragma-foreign-keys",
        ],
    );
    // Every string read from double quotes is named, in DDL too; a suppression with a
    // reason works as for any finding.
    let json = check(
        &[
            A,
            "INSERT INTO a (b, c) VALUES (\"x\", \"y's\");\nCREATE TABLE s (v TEXT CHECK (v IN (\"on\", 'off')));",
            "-- d1ops:allow lint.dqs the legacy importer relies on it\nUPDATE a SET b = \"z\" WHERE id = 1;",
        ],
        &[
            "0002_m.sql:1 lint.dqs",
            "0002_m.sql:2 lint.dqs",
            "0003_m.sql:2 lint.dqs (suppressed)",
        ],
    );
    assert!(
        json["findings"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("\"x\", \"y's\" are not columns here, so SQLite reads them as the strings 'x', 'y''s'"),
        "{json:#}"
    );
}

/// A scaling guard, not a timing claim: lint replays the schema once through all pending
/// migrations and reads only the tables each one touches, so 2,000 migrations (a first
/// deploy of a long-lived project) lint in seconds; reading the whole schema around every
/// migration took minutes. The bound is generous (debug build, a loaded machine).
#[test]
fn lint_scales_to_2000_migrations() {
    const N: usize = 2_000;
    let ws = Ws::new();
    let dir = ws.path().join("migrations");
    for i in 1..=N {
        let mut sql = format!(
            "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, v INTEGER);\n\
             CREATE INDEX ix_t{i}_name ON t{i}(name);\n\
             INSERT INTO t{i} (name, v) VALUES ('a', {i});\n"
        );
        if i > 1 {
            sql.push_str(&format!("ALTER TABLE t{} ADD COLUMN note TEXT;\n", i - 1));
        }
        if i.is_multiple_of(100) {
            // A rebuild of an earlier table that renames a column: one finding each.
            let t = i - 50;
            sql.push_str(&format!(
                "CREATE TABLE t{t}_new (id INTEGER PRIMARY KEY, title TEXT NOT NULL, v INTEGER, note TEXT);\n\
                 INSERT INTO t{t}_new SELECT id, name, v, note FROM t{t};\n\
                 DROP TABLE t{t};\n\
                 ALTER TABLE t{t}_new RENAME TO t{t};\n"
            ));
        }
        std::fs::write(dir.join(format!("{i:05}_m.sql")), sql).unwrap();
    }
    let started = std::time::Instant::now();
    let (code, out, err) = ws.run_as("alice", &["--json", "lint"]);
    let took = started.elapsed();
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    assert_eq!(code, Some(1), "{err}");
    let ids = found(&json);
    assert_eq!(ids.len(), N / 100, "{ids:?}");
    assert!(
        ids.iter()
            .all(|f| f.ends_with(" destructive.rename-column")),
        "{ids:?}"
    );
    eprintln!("linted {N} migrations in {took:?}");
    assert!(took.as_secs() < 60, "linting {N} migrations took {took:?}");
}
