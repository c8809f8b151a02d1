//! Data-driven tests for the diff and its rendering: each case is a base schema, a
//! migration run on top of it, and the expected rendered lines.

use rusqlite::Connection;

use super::*;

const BASE: &str = "
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  legacy_flag INTEGER
);
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE,
  title TEXT
);
CREATE INDEX idx_items_owner ON items(owner);
CREATE TABLE scores (id INTEGER PRIMARY KEY, score INTEGER);
";

/// Runs `base`, reads it, runs `migration` on the same database, reads again, and checks
/// the rendered diff line by line.
fn check(base: &str, migration: &str, expected: &[&str]) -> SchemaDiff {
    let conn = Connection::open_in_memory().expect("open");
    conn.execute_batch(base).expect("base SQL");
    let before = read_schema(&conn, DEFAULT_LEDGER_TABLE).expect("read before");
    conn.execute_batch(migration).expect("migration SQL");
    let after = read_schema(&conn, DEFAULT_LEDGER_TABLE).expect("read after");
    let d = diff(&before, &after);
    let lines: Vec<String> = d.render_text().into_iter().map(|l| l.text).collect();
    assert_eq!(
        lines, expected,
        "\nmigration: {migration}\nchanges: {:#?}",
        d.changes
    );
    d
}

fn rebuilt_flags(d: &SchemaDiff) -> Vec<bool> {
    d.changes
        .iter()
        .filter_map(|c| match c {
            Change::TableChanged { rebuilt, .. } => Some(*rebuilt),
            _ => None,
        })
        .collect()
}

#[test]
fn no_change_is_empty() {
    let d = check(BASE, "", &[]);
    assert!(d.is_empty());
}

#[test]
fn add_table() {
    check(
        BASE,
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id), label TEXT DEFAULT 'x') STRICT;",
        &[
            "+ table tags (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id), label TEXT DEFAULT 'x') STRICT",
        ],
    );
}

#[test]
fn drop_table() {
    check(
        BASE,
        "DROP TABLE scores;",
        &["- table scores (id INTEGER PRIMARY KEY, score INTEGER)"],
    );
}

#[test]
fn add_column_is_not_a_rebuild() {
    let d = check(
        BASE,
        "ALTER TABLE users ADD COLUMN bio TEXT; ALTER TABLE users ADD COLUMN karma INTEGER NOT NULL DEFAULT 0;",
        &[
            "~ table users",
            "    + column bio TEXT",
            "    + column karma INTEGER NOT NULL DEFAULT 0",
        ],
    );
    assert_eq!(rebuilt_flags(&d), [false]);
}

#[test]
fn add_column_with_reference_is_not_a_rebuild() {
    let d = check(
        BASE,
        "ALTER TABLE scores ADD COLUMN user_id INTEGER REFERENCES users(id);",
        &[
            "~ table scores",
            "    + column user_id INTEGER",
            "    + foreign key (user_id) → users(id)",
        ],
    );
    assert_eq!(rebuilt_flags(&d), [false]);
}

#[test]
fn drop_column_by_rebuild_is_a_column_removal() {
    let d = check(
        BASE,
        "CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO users_new (id, name) SELECT id, name FROM users;
         DROP TABLE users;
         ALTER TABLE users_new RENAME TO users;",
        &[
            "~ table users (rebuilt)",
            "    - column legacy_flag INTEGER",
        ],
    );
    assert_eq!(rebuilt_flags(&d), [true]);
}

#[test]
fn native_drop_column_is_flagged_like_a_rebuild() {
    check(
        BASE,
        "ALTER TABLE users DROP COLUMN legacy_flag;",
        &[
            "~ table users (rebuilt)",
            "    - column legacy_flag INTEGER",
        ],
    );
}

#[test]
fn change_type() {
    check(
        BASE,
        "CREATE TABLE scores_new (id INTEGER PRIMARY KEY, score REAL);
         INSERT INTO scores_new SELECT * FROM scores;
         DROP TABLE scores;
         ALTER TABLE scores_new RENAME TO scores;",
        &[
            "~ table scores (rebuilt)",
            "    ~ column score: INTEGER → REAL",
        ],
    );
}

#[test]
fn add_check_constraint_shows_sql() {
    check(
        "CREATE TABLE t (a INTEGER);",
        "CREATE TABLE t2 (a INTEGER, CHECK (a > 0)); DROP TABLE t; ALTER TABLE t2 RENAME TO t;",
        &[
            "~ table t (rebuilt)",
            "    - CREATE TABLE t (a INTEGER)",
            "    + CREATE TABLE \"t\" (a INTEGER, CHECK (a > 0))",
        ],
    );
}

#[test]
fn noop_rebuild_is_no_change() {
    check(
        "CREATE TABLE t (a INTEGER, b TEXT);",
        "CREATE TABLE t_new (a INTEGER,\n b TEXT); DROP TABLE t; ALTER TABLE t_new RENAME TO t;",
        &[],
    );
}

#[test]
fn rename_table_is_one_change() {
    // SQLite rewrites the child's REFERENCES and the index's ON clause; neither is news.
    check(
        BASE,
        "ALTER TABLE users RENAME TO members; CREATE INDEX idx_users_name ON members(name);",
        &[
            "~ table users renamed → members",
            "+ index idx_users_name ON members(name)",
        ],
    );
}

#[test]
fn rename_column_is_in_place() {
    // Renaming a referenced column rewrites items' REFERENCES clause too.
    let d = check(
        &format!("{BASE} CREATE INDEX idx_users_name ON users(name);"),
        "ALTER TABLE users RENAME COLUMN name TO display_name; ALTER TABLE users RENAME COLUMN id TO user_id;",
        &[
            "~ table users",
            "    ~ column id renamed → user_id",
            "    ~ column name renamed → display_name",
        ],
    );
    assert_eq!(rebuilt_flags(&d), [false]);
}

#[test]
fn rename_and_add_column_together() {
    let d = check(
        BASE,
        "ALTER TABLE items RENAME COLUMN title TO label; ALTER TABLE items ADD COLUMN done INTEGER NOT NULL DEFAULT 0;",
        &[
            "~ table items",
            "    ~ column title renamed → label",
            "    + column done INTEGER NOT NULL DEFAULT 0",
        ],
    );
    assert_eq!(rebuilt_flags(&d), [false]);
}

#[test]
fn reordered_columns_are_a_rebuild() {
    let d = check(
        "CREATE TABLE t (a INTEGER, b TEXT);",
        "CREATE TABLE t2 (b TEXT, a INTEGER); DROP TABLE t; ALTER TABLE t2 RENAME TO t;",
        &[
            "~ table t (rebuilt)",
            "    - CREATE TABLE t (a INTEGER, b TEXT)",
            "    + CREATE TABLE \"t\" (b TEXT, a INTEGER)",
        ],
    );
    assert_eq!(rebuilt_flags(&d), [true]);
}

#[test]
fn add_and_drop_index() {
    check(
        BASE,
        "DROP INDEX idx_items_owner; CREATE UNIQUE INDEX idx_items_title ON items(title) WHERE title IS NOT NULL;",
        &[
            "- index idx_items_owner ON items(owner)",
            "+ index idx_items_title ON items(title) WHERE title IS NOT NULL (unique)",
        ],
    );
}

#[test]
fn index_recreated_under_new_name_is_a_rename() {
    check(
        BASE,
        "DROP INDEX idx_items_owner; CREATE INDEX items_by_owner ON items (owner);",
        &["~ index idx_items_owner renamed → items_by_owner"],
    );
}

const TRIGGER: &str = "CREATE TRIGGER trg_items_touch AFTER UPDATE ON items BEGIN
  UPDATE items SET title = trim(new.title) WHERE id = new.id;
  INSERT INTO scores (score) VALUES (1);
END;";

#[test]
fn trigger_with_inner_semicolons() {
    let d = check(BASE, TRIGGER, &["+ trigger trg_items_touch"]);
    let Change::Added { sql, .. } = &d.changes[0] else {
        panic!("expected an addition")
    };
    assert!(sql.contains("VALUES (1);\nEND"), "{sql}");
}

#[test]
fn changed_trigger_shows_both_versions() {
    check(
        &format!("{BASE}{TRIGGER}"),
        "DROP TRIGGER trg_items_touch;
         CREATE TRIGGER trg_items_touch AFTER UPDATE ON items BEGIN INSERT INTO scores (score) VALUES (2); END;",
        &[
            "~ trigger trg_items_touch",
            "    - CREATE TRIGGER trg_items_touch AFTER UPDATE ON items BEGIN UPDATE items SET title = trim(new.title) WHERE id = new.id; INSERT INTO scores (score) VALUES (1); END",
            "    + CREATE TRIGGER trg_items_touch AFTER UPDATE ON items BEGIN INSERT INTO scores (score) VALUES (2); END",
        ],
    );
}

#[test]
fn views_added_changed_removed() {
    let base = format!(
        "{BASE} CREATE VIEW v_named AS SELECT id, name FROM users; CREATE VIEW v_old AS SELECT 1;"
    );
    check(
        &base,
        "DROP VIEW v_named; CREATE VIEW v_named AS SELECT id FROM users;
         DROP VIEW v_old; CREATE VIEW v_new AS SELECT 2;",
        &[
            "~ view v_named",
            "    - CREATE VIEW v_named AS SELECT id, name FROM users",
            "    + CREATE VIEW v_named AS SELECT id FROM users",
            "+ view v_new",
            "- view v_old",
        ],
    );
}

#[test]
fn view_rewritten_by_table_rename_is_not_a_change() {
    check(
        &format!("{BASE} CREATE VIEW v_named AS SELECT id, name FROM users;"),
        "ALTER TABLE users RENAME TO members;",
        &["~ table users renamed → members"],
    );
}

#[test]
fn changes_are_ordered_by_kind_then_name() {
    let d = check(
        BASE,
        "CREATE VIEW a_view AS SELECT 1; CREATE INDEX a_idx ON scores(score); CREATE TABLE zz (x); CREATE TABLE aa (x);",
        &[
            "+ table aa (x)",
            "+ table zz (x)",
            "+ index a_idx ON scores(score)",
            "+ view a_view",
        ],
    );
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(json["changes"][0]["change"], "added");
    assert_eq!(json["changes"][0]["kind"], "table");
}

#[test]
fn json_shape_of_table_changes() {
    let d = check(
        BASE,
        "ALTER TABLE users ADD COLUMN bio TEXT;",
        &["~ table users", "    + column bio TEXT"],
    );
    let json = serde_json::to_value(&d).expect("json");
    let change = &json["changes"][0];
    assert_eq!(change["change"], "table_changed");
    assert_eq!(change["columns"][0]["change"], "added");
    assert_eq!(change["columns"][0]["name"], "bio");
    let back: SchemaDiff = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, d);
}
