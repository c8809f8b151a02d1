//! A foreign-key failure names its migration, on both backends: the statement after which
//! the violations appeared and stayed (found by replaying the rolled-back apply), the table
//! and a sample of the rows — for violations `foreign_key_check` sees, and for a COMMIT
//! refused by SQLite's deferred counter (a parent rebuilt while its children hold rows).
mod cf_support;
mod common;

use common::{Ws, check};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[test] fn $name() { super::$name(super::Ws::new()); } )*
        }
        mod cloudflare {
            $( #[test] fn $name() { super::$name(cf_support_ws()); } )*
            fn cf_support_ws() -> super::Ws {
                super::cf_support::cloudflare_ws().1
            }
        }
    };
}

on_both_backends!(
    orphans_name_the_statement_that_left_them,
    a_parent_rebuilt_under_its_children_names_the_drop
);

const SCHEMA: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n\
     CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);\n";

fn shipped(ws: &Ws) {
    ws.migration("0001_schema.sql", SCHEMA);
    ws.ship();
    ws.production()
        .execute_batch(
            "INSERT INTO users VALUES (1, 'ann'), (2, 'ben');\
             INSERT INTO posts VALUES (1, 1, 'hi'), (2, 2, 'yo');",
        )
        .unwrap();
}

fn orphans_name_the_statement_that_left_them(ws: Ws) {
    shipped(&ws);
    ws.migration(
        "0002_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);\n\
         INSERT INTO posts (id, user_id, body) VALUES (7, 999, 'orphan');\n\
         INSERT INTO tags (name) VALUES ('x');\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    let fk = check(&deploy, "fk.check");
    assert_eq!(fk["status"], "fail", "{fk}");
    let reason = fk["reason"].as_str().unwrap();
    assert!(
        reason.contains("1 row(s) of posts reference missing users")
            && reason.contains("left by")
            && reason.contains("0002_tags.sql:2")
            && reason.contains("posts row 7"),
        "{reason}"
    );
}

fn a_parent_rebuilt_under_its_children_names_the_drop(ws: Ws) {
    shipped(&ws);
    // Drizzle-style rebuild of the parent; posts has no ON DELETE CASCADE, so DROP TABLE's
    // implicit DELETE counts its rows as deferred violations the rename does not clear.
    ws.migration(
        "0002_users_email.sql",
        "CREATE TABLE __new_users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);\n\
         INSERT INTO __new_users (id, name) SELECT id, name FROM users;\n\
         DROP TABLE users;\n\
         ALTER TABLE __new_users RENAME TO users;\n",
    );
    let (code, deploy) = ws.deploy();
    assert_eq!(code, Some(3), "{deploy}");
    let apply = check(&deploy, "mig.apply");
    assert_eq!(apply["status"], "fail", "{apply}");
    let reason = apply["reason"].as_str().unwrap();
    assert!(
        reason.contains("0002_users_email.sql:3")
            && reason.contains("DROP TABLE users")
            && reason.contains("FOREIGN KEY")
            && reason.contains("posts row 1 (user_id = 1)"),
        "{reason}"
    );
}
