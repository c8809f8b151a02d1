//! Library-level lint cases: the gate-only rules (row counts, timings) and attribution, which
//! the binary-driven tests in `tests/lint.rs` cannot reach without a preview.
use std::collections::BTreeMap;

use super::*;
use crate::schema::schema_from_sql;

fn migrations(files: &[&str]) -> Vec<Migration> {
    files
        .iter()
        .enumerate()
        .map(|(i, sql)| {
            let name = format!("{:04}_m.sql", i + 1);
            let path = format!("migrations/{name}");
            Migration::from_sql(&name, &path, sql.to_string(), false).unwrap()
        })
        .collect()
}

fn lint(start: &str, files: &[&str], counts: Option<&BTreeMap<String, u64>>) -> LintReport {
    let gate = GateConfig::default();
    let ms = migrations(files);
    let timings = [StatementTiming {
        migration: "0001_m.sql".into(),
        path: "migrations/0001_m.sql".into(),
        line: 1,
        ms: 1234.0,
    }];
    lint_migrations(&LintInput {
        migrations: &ms,
        start: &schema_from_sql(start).unwrap(),
        ledger_table: "d1_migrations",
        gate: &gate,
        counts,
        timings: Some(&timings),
        report_apply_failures: false,
    })
    .unwrap()
}

fn ids(r: &LintReport) -> Vec<(String, usize)> {
    r.findings.iter().map(|f| (f.id.clone(), f.line)).collect()
}

#[test]
fn gate_only_rules_need_rows() {
    let start = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);";
    let sql = "CREATE UNIQUE INDEX ux ON users(name);";
    assert!(lint(start, &[sql], None).findings.is_empty());
    let counts = BTreeMap::from([("users".to_string(), 200_000u64)]);
    let r = lint(start, &[sql], Some(&counts));
    assert_eq!(
        ids(&r),
        [
            ("risk.unique-index-existing-data".into(), 1),
            ("risk.index-large-table".into(), 1)
        ]
    );
    assert!(
        r.findings[1].message.contains("built in 1.2 s"),
        "{:?}",
        r.findings[1]
    );
    let empty = BTreeMap::from([("users".to_string(), 0u64)]);
    assert!(lint(start, &[sql], Some(&empty)).findings.is_empty());
}

#[test]
fn rebuild_is_attributed_to_its_drop_table() {
    let start = "CREATE TABLE games (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
                 CREATE TABLE scores (game_id INTEGER REFERENCES games(id) ON DELETE CASCADE);";
    let sql = "CREATE TABLE games_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO games_new SELECT id, title FROM games;
DROP TABLE games;
ALTER TABLE games_new RENAME TO games;";
    let r = lint(start, &[sql], None);
    assert_eq!(
        ids(&r),
        [
            ("destructive.rename-column".into(), 3),
            ("risk.cascade-rebuild".into(), 3)
        ]
    );
    assert_eq!(r.fail, 1);
    assert_eq!(r.warn, 1);
}

#[test]
fn rebuild_keeping_every_column_is_not_destructive() {
    let start = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);";
    let sql = "CREATE TABLE t_new (id INTEGER PRIMARY KEY, a TEXT, CHECK (length(a) < 10));
INSERT INTO t_new SELECT * FROM t;
DROP TABLE t;
ALTER TABLE t_new RENAME TO t;";
    assert!(lint(start, &[sql], None).findings.is_empty());
}

#[test]
fn replay_failure_is_a_note_in_the_gate() {
    let r = lint("", &["DROP TABLE nope;", "DROP TABLE x;"], None);
    assert!(r.findings.is_empty());
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(
        r.notes[0].contains("migrations/0001_m.sql:1"),
        "{:?}",
        r.notes
    );
}

#[test]
fn dqs_names_double_quoted_strings() {
    let start = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";
    let sql = "CREATE TABLE `__new_users` (`id` integer PRIMARY KEY NOT NULL, `name` text NOT NULL, `bio` text);
INSERT INTO `__new_users`(\"id\", \"name\", \"bio\") SELECT \"id\", \"name\", \"bio\" FROM `users`;";
    let r = lint(start, &[sql], None);
    assert_eq!(ids(&r), [("lint.dqs".into(), 2)], "{r:#?}");
}
