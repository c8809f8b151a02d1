//! Tests for introspection, row counts, fingerprints and identifier quoting: what
//! `read_schema` sees and leaves out on real in-memory databases.

use rusqlite::Connection;

use super::*;

#[test]
fn internal_objects_are_excluded() {
    let conn = Connection::open_in_memory().expect("open");
    conn.execute_batch(
        "CREATE TABLE my_ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);
         CREATE INDEX my_ledger_at ON my_ledger(applied_at);
         CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
         CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT UNIQUE);
         INSERT INTO events (body) VALUES ('a');
         ANALYZE;",
    )
    .expect("setup");
    let schema = read_schema(&conn, "MY_LEDGER").expect("read");
    assert_eq!(schema.tables.keys().collect::<Vec<_>>(), ["events"]);
    assert!(schema.indexes.is_empty(), "{:?}", schema.indexes);
    let counts = table_row_counts(&conn, "my_ledger").expect("counts");
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("events".to_string(), 1)]
    );
}

#[test]
fn introspection_details() {
    let schema = schema_from_sql(
        "CREATE TABLE p (a INTEGER, b TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
         CREATE TABLE c (
           x INTEGER, y TEXT, total REAL GENERATED ALWAYS AS (x * 2) STORED,
           FOREIGN KEY (x, y) REFERENCES p (a, b) ON DELETE CASCADE ON UPDATE SET NULL
         ) STRICT;
         CREATE UNIQUE INDEX c_expr ON c (lower(y), x) WHERE x > 0;",
    )
    .expect("schema");
    let p = &schema.tables["p"];
    assert!(p.without_rowid && !p.strict);
    assert_eq!(p.columns.iter().map(|c| c.pk).collect::<Vec<_>>(), [1, 2]);
    let c = &schema.tables["c"];
    assert!(c.strict && !c.without_rowid);
    assert_eq!(c.columns[2].hidden, 3);
    assert_eq!(
        c.foreign_keys,
        [ForeignKey {
            id: 0,
            table: "p".into(),
            from: vec!["x".into(), "y".into()],
            to: vec!["a".into(), "b".into()],
            on_delete: "CASCADE".into(),
            on_update: "SET NULL".into(),
        }]
    );
    let idx = &schema.indexes["c_expr"];
    assert!(idx.unique && idx.partial);
    assert_eq!(idx.columns, ["<expr>", "x"]);
    assert_eq!(idx.table, "c");
}

#[test]
fn virtual_table_shadows_are_excluded() {
    let conn = Connection::open_in_memory().expect("open");
    conn.execute_batch(
        "CREATE VIRTUAL TABLE docs USING fts5(title, body); INSERT INTO docs VALUES ('a', 'b');",
    )
    .expect("fts5");
    let schema = read_schema(&conn, DEFAULT_LEDGER_TABLE).expect("read");
    assert_eq!(schema.tables.keys().collect::<Vec<_>>(), ["docs"]);
    let counts = table_row_counts(&conn, DEFAULT_LEDGER_TABLE).expect("counts");
    assert_eq!(counts["docs"], 1);
    let d = diff(&Schema::default(), &schema);
    assert_eq!(
        d.render_text()[0].text,
        "+ table docs USING fts5(title, body)"
    );
}

#[test]
fn row_counts_quote_odd_names() {
    let conn = Connection::open_in_memory().expect("open");
    conn.execute_batch(
        r#"CREATE TABLE "odd ""name""" (a); INSERT INTO "odd ""name""" VALUES (1), (2);
           CREATE TABLE "select" (a); CREATE VIEW v AS SELECT 1;"#,
    )
    .expect("setup");
    let counts = table_row_counts(&conn, DEFAULT_LEDGER_TABLE).expect("counts");
    assert_eq!(counts.get(r#"odd "name""#), Some(&2));
    assert_eq!(counts.get("select"), Some(&0));
    assert_eq!(counts.len(), 2);
}

#[test]
fn fingerprint_ignores_whitespace_only() {
    let a = schema_from_sql("CREATE TABLE t(a INT, b TEXT); CREATE INDEX i ON t(a);").expect("a");
    let b = schema_from_sql(
        "CREATE TABLE t (\n  a INT , -- first\n  b TEXT\n);\nCREATE INDEX i ON t ( a );",
    )
    .expect("b");
    let c = schema_from_sql("CREATE TABLE t(a INT, b TEXT); CREATE INDEX i ON t(b);").expect("c");
    assert_eq!(schema_fingerprint(&a), schema_fingerprint(&b));
    assert_ne!(schema_fingerprint(&a), schema_fingerprint(&c));
    assert_eq!(schema_fingerprint(&a).len(), 64);
    assert_ne!(
        schema_fingerprint(&a),
        schema_fingerprint(&Schema::default())
    );
}

#[test]
fn quote_ident_doubles_quotes() {
    assert_eq!(quote_ident("users"), r#""users""#);
    assert_eq!(quote_ident(r#"my "t""#), r#""my ""t""""#);
    assert_eq!(quote_ident(""), r#""""#);
}

#[test]
fn schema_from_sql_reports_bad_sql() {
    let err = schema_from_sql("CREATE TABLE (").expect_err("bad SQL");
    assert!(
        err.to_string()
            .starts_with("could not execute the schema SQL"),
        "{err}"
    );
}

/// `read_tables` reads the tables it is asked for as `read_schema` reads them, names matched
/// case-insensitively, internal tables and unknown names left out.
#[test]
fn read_tables_matches_read_schema() {
    let conn = Connection::open_in_memory().expect("open");
    conn.execute_batch(
        "CREATE TABLE d1_migrations (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE Parent (a INTEGER, b TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
         CREATE TABLE child (
           x INTEGER, y TEXT, note TEXT DEFAULT 'strict)',
           FOREIGN KEY (x, y) REFERENCES Parent (a, b) ON DELETE CASCADE
         ) STRICT;
         CREATE TABLE other (z);
         CREATE VIRTUAL TABLE docs USING fts5(title, body);",
    )
    .expect("setup");
    let all = read_schema(&conn, DEFAULT_LEDGER_TABLE).expect("read");
    let names: Vec<String> = ["PARENT", "child", "docs", "nope", "D1_MIGRATIONS"]
        .map(String::from)
        .to_vec();
    let some = read_tables(&conn, DEFAULT_LEDGER_TABLE, &names).expect("read some");
    assert_eq!(
        some.keys().collect::<Vec<_>>(),
        ["Parent", "child", "docs"],
        "{some:?}"
    );
    for (name, table) in &some {
        assert_eq!(table, &all.tables[name], "{name}");
    }
    assert!(
        read_tables(&conn, DEFAULT_LEDGER_TABLE, &[])
            .expect("none")
            .is_empty()
    );
}
