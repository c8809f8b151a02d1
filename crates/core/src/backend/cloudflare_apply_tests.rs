//! Tests of the D1 apply: the foreign-key guard and the statements of an apply.
use super::*;

#[test]
fn the_guard_carries_its_violations_out_of_a_rolled_back_batch() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE u(id INTEGER PRIMARY KEY);
             CREATE TABLE p(id INTEGER PRIMARY KEY, u INTEGER REFERENCES u(id));
             PRAGMA foreign_keys = OFF;
             INSERT INTO p VALUES (1, 999), (2, 998);",
    )
    .unwrap();
    assert!(
        conn.query_row(&fk_guard(2), [], |_| Ok(())).is_ok(),
        "no new violations"
    );
    let err = conn
        .query_row(&fk_guard(0), [], |_| Ok(()))
        .unwrap_err()
        .to_string();
    let found = guard_violations(&format!("{err}: SQLITE_ERROR")).expect(&err);
    assert_eq!(found.len(), 2);
    assert_eq!(
        (
            found[0].table.as_str(),
            found[0].rowid,
            found[0].parent.as_str()
        ),
        ("p", Some(1), "u")
    );
}
