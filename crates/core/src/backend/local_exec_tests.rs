use std::time::Duration;

use serde_json::json;

use super::*;

fn session() -> LocalSession {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, x INT, y TEXT);
         CREATE INDEX t_x ON t(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO t(id, x, y) SELECT i, i % 10, 'v' || i FROM n;",
    )
    .unwrap();
    LocalSession::new(conn, Duration::from_secs(30)).unwrap()
}

fn run(s: &mut LocalSession, sql: &str, params: Vec<serde_json::Value>) -> StatementResult {
    let out = s.execute(
        &[ExecStatement::new(sql, params)],
        ExecOptions {
            allow_writes: true,
            rollback: false,
        },
    );
    assert!(out.failure.is_none(), "{sql}: {:?}", out.failure);
    out.results.into_iter().next().unwrap()
}

/// (sql, rows read, rows written) as D1's counters would report them: a cursor landing on a
/// table or index entry is a read (positioning or step), each table row and index entry
/// inserted is a write.
#[test]
fn rows_read_follows_d1_on_the_common_shapes() {
    let cases: &[(&str, u64, u64)] = &[
        // Rewind + 99 Next steps.
        ("SELECT * FROM t", 100, 0),
        // One SeekRowid.
        ("SELECT * FROM t WHERE id = 5", 1, 0),
        // SeekGE on t_x, 9 steps onto the other matches and one onto the first x = 4 entry.
        ("SELECT * FROM t WHERE x = 3", 11, 0),
        // OP_Count: every entry counted.
        ("SELECT count(*) FROM t", 100, 0),
        // A full scan of t_x (covering).
        ("SELECT x, count(*) FROM t GROUP BY x", 100, 0),
        // Scan (100) + sorter rewind and 99 sorter steps.
        ("SELECT * FROM t ORDER BY y", 200, 0),
        // Table row + t_x entry.
        ("INSERT INTO t(x, y) VALUES (1, 'a')", 0, 2),
        // One rowid lookup; y has no index.
        ("UPDATE t SET y = 'b' WHERE id = 1", 1, 1),
        // x is indexed: table row + new t_x entry.
        ("UPDATE t SET x = 5 WHERE id = 2", 1, 2),
    ];
    let mut s = session();
    for (sql, read, written) in cases {
        let r = run(&mut s, sql, vec![]);
        assert_eq!(
            (r.meta.rows_read, r.meta.rows_written),
            (*read, *written),
            "{sql}"
        );
    }
    // Parameters do not change the count.
    let r = run(&mut s, "SELECT * FROM t WHERE id = ?", vec![json!(7)]);
    assert_eq!(r.meta.rows_read, 1);
    // Deletes count rows, not index entries.
    let r = run(&mut s, "DELETE FROM t WHERE x = 9", vec![]);
    assert_eq!((r.meta.changes, r.meta.rows_written), (10, 10));
    assert!(r.meta.changed_db);
}

#[test]
fn results_carry_columns_rows_and_meta() {
    let mut s = session();
    let r = run(
        &mut s,
        "SELECT id, y, x * 1.5 AS f, NULL AS n, x'0102' AS b FROM t WHERE id = ?",
        vec![json!(3)],
    );
    assert_eq!(r.columns, ["id", "y", "f", "n", "b"]);
    assert_eq!(
        r.rows,
        vec![vec![
            json!(3),
            json!("v3"),
            json!(4.5),
            json!(null),
            json!([1, 2])
        ]]
    );
    assert!(r.readonly && !r.meta.changed_db);
    assert!(r.meta.size_after > 0);
    let w = run(
        &mut s,
        "INSERT INTO t(id, x, y) VALUES (?1, ?2, ?3)",
        vec![json!(500), json!(true), json!("z")],
    );
    assert_eq!((w.meta.changes, w.meta.last_row_id), (1, 500));
    assert!(!w.readonly && w.meta.changed_db);
}

#[test]
fn statements_split_where_sqlite_says_they_end() {
    assert_eq!(
        batch_statements("SELECT 1; SELECT 2;"),
        ["SELECT 1", "SELECT 2"]
    );
    assert_eq!(
        batch_statements("SELECT ';' AS a; -- c;\nSELECT 2"),
        ["SELECT ';' AS a", "-- c;\nSELECT 2"]
    );
    let trigger = "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET y = 'x'; END; SELECT 1";
    assert_eq!(
        batch_statements(trigger),
        [
            "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET y = 'x'; END",
            "SELECT 1"
        ]
    );
    assert!(batch_statements("  ;; ").is_empty());
}

#[test]
fn a_failing_batch_rolls_back_and_reports_like_d1() {
    let mut s = session();
    let out = s.execute(
        &[
            ExecStatement::new("INSERT INTO t(id, x) VALUES (1000, 1)", vec![]),
            ExecStatement::new("SELECT * FROM nope", vec![]),
        ],
        ExecOptions {
            allow_writes: true,
            rollback: false,
        },
    );
    let f = out.failure.unwrap();
    assert_eq!(
        (f.index, f.kind, f.code.as_str()),
        (1, FailureKind::Sql, "SQLITE_ERROR")
    );
    assert_eq!(f.d1_message(), "no such table: nope: SQLITE_ERROR");
    assert_eq!(out.results.len(), 1);
    let n = run(&mut s, "SELECT count(*) FROM t WHERE id = 1000", vec![]);
    assert_eq!(n.rows[0][0], json!(0), "the batch was rolled back");
    let out = s.execute(
        &[ExecStatement::new("SELECT nope FROM t", vec![])],
        ExecOptions::default(),
    );
    assert_eq!(
        out.failure.unwrap().d1_message(),
        "no such column: nope at offset 7: SQLITE_ERROR"
    );
    let out = s.execute(
        &[ExecStatement::new("SELECT nope FROM t", vec![])],
        ExecOptions::default(),
    );
    assert_eq!(
        out.failure.unwrap().d1_message(),
        "no such column: nope at offset 7: SQLITE_ERROR"
    );
    // Constraint errors name the primary code, as D1 does.
    let out = s.execute(
        &[ExecStatement::new("INSERT INTO t(id) VALUES (1)", vec![])],
        ExecOptions {
            allow_writes: true,
            rollback: false,
        },
    );
    assert_eq!(
        out.failure.unwrap().d1_message(),
        "UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT"
    );
}

#[test]
fn writes_refused_parameters_checked_transactions_owned() {
    let mut s = session();
    let read_only = ExecOptions::default();
    let out = s.execute(&[ExecStatement::new("DELETE FROM t", vec![])], read_only);
    assert_eq!(out.failure.unwrap().kind, FailureKind::Refused);
    let out = s.execute(&[ExecStatement::new("SELECT ?", vec![])], read_only);
    assert_eq!(out.failure.unwrap().code, "SQLITE_RANGE");
    let out = s.execute(
        &[ExecStatement::new("SELECT 1; SELECT ?", vec![json!(1)])],
        read_only,
    );
    assert!(out.failure.unwrap().message.contains("several statements"));
    let out = s.execute(&[ExecStatement::new("BEGIN", vec![])], read_only);
    assert!(
        out.failure
            .unwrap()
            .message
            .contains("BEGIN is not allowed")
    );
    // Rollback mode: the write runs, is measured, and leaves nothing behind.
    let out = s.execute(
        &[ExecStatement::new("DELETE FROM t WHERE x = 1", vec![])],
        ExecOptions {
            allow_writes: true,
            rollback: true,
        },
    );
    assert_eq!(out.results[0].meta.changes, 10);
    let n = run(&mut s, "SELECT count(*) FROM t", vec![]);
    assert_eq!(n.rows[0][0], json!(100));
    // A multi-statement item is one batch: the later statement sees the earlier one.
    let out = s.execute(
        &[ExecStatement::new(
            "CREATE TABLE u(a); INSERT INTO u VALUES (1); SELECT a FROM u",
            vec![],
        )],
        ExecOptions {
            allow_writes: true,
            rollback: false,
        },
    );
    assert!(out.is_ok(), "{:?}", out.failure);
    assert_eq!(out.results.len(), 3);
    assert_eq!(out.results[2].rows, vec![vec![json!(1)]]);
}

#[test]
fn a_runaway_statement_is_stopped() {
    let conn = Connection::open_in_memory().unwrap();
    let mut s = LocalSession::new(conn, Duration::from_millis(50)).unwrap();
    let out = s.execute(
        &[ExecStatement::new(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            vec![],
        )],
        ExecOptions::default(),
    );
    let f = out.failure.unwrap();
    assert_eq!(f.code, "SQLITE_INTERRUPT");
    assert!(f.message.contains("was stopped"), "{}", f.message);
}
