//! The in-memory replay lint runs migrations on: a private SQLite database built from a
//! starting [`Schema`] (no rows), on which migrations are executed statement by statement so
//! each migration's schema before and after can be read and diffed.
//!
//! Writes only to its own in-memory database; never opens a file. Foreign keys are off: the
//! replay is about schema, and the data it holds is only what migrations insert themselves.
use rusqlite::Connection;

use crate::schema::{Schema, SchemaError, read_schema};

pub(super) struct Replay {
    conn: Connection,
    ledger_table: String,
}

/// A statement SQLite refused during the replay.
#[derive(Debug, Clone)]
pub(super) struct ReplayError {
    pub message: String,
}

impl Replay {
    /// A database holding `start`'s tables, then its indexes, views and triggers. Objects
    /// that cannot be recreated (a virtual table of a missing module, say) are left out and
    /// named in the second value.
    pub fn new(start: &Schema, ledger_table: &str) -> Result<(Replay, Vec<String>), SchemaError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let mut pending: Vec<(String, &str)> = Vec::new();
        for t in start.tables.values() {
            pending.push((format!("table {}", t.name), &t.sql));
        }
        for i in start.indexes.values() {
            if let Some(sql) = &i.sql {
                pending.push((format!("index {}", i.name), sql));
            }
        }
        for v in start.views.values() {
            pending.push((format!("view {}", v.name), &v.sql));
        }
        for t in start.triggers.values() {
            pending.push((format!("trigger {}", t.name), &t.sql));
        }
        // Views and triggers may depend on each other in any name order: retry until no
        // progress is made.
        loop {
            let before = pending.len();
            pending.retain(|(_, sql)| conn.execute_batch(sql).is_err());
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        let missing = pending.into_iter().map(|(what, _)| what).collect();
        Ok((
            Replay {
                conn,
                ledger_table: ledger_table.to_string(),
            },
            missing,
        ))
    }

    /// The replay's current user schema.
    pub fn schema(&self) -> Result<Schema, SchemaError> {
        read_schema(&self.conn, &self.ledger_table)
    }

    /// Executes one migration statement.
    pub fn execute(&self, sql: &str) -> Result<(), ReplayError> {
        self.conn.execute_batch(sql).map_err(|e| ReplayError {
            message: match &e {
                rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
                other => other.to_string(),
            },
        })
    }

    /// Tables whose foreign keys reference `parent` with a row-changing `ON DELETE` action
    /// (CASCADE, SET NULL, SET DEFAULT), as (child, action); the parent itself is left out.
    pub fn dependent_children(&self, parent: &str) -> Vec<(String, String)> {
        let sql = "SELECT DISTINCT s.name, upper(f.on_delete) \
                   FROM main.sqlite_schema AS s, pragma_foreign_key_list(s.name, 'main') AS f \
                   WHERE s.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE \
                     AND s.name <> ?1 COLLATE NOCASE \
                     AND upper(f.on_delete) IN ('CASCADE', 'SET NULL', 'SET DEFAULT') \
                   ORDER BY s.name";
        let Ok(mut stmt) = self.conn.prepare(sql) else {
            return Vec::new();
        };
        stmt.query_map([parent], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .unwrap_or_default()
    }
}

/// The schema after applying `migrations` on an empty database, or `None` when one of them
/// does not replay.
pub(super) fn schema_of(
    migrations: &[crate::workspace::Migration],
    ledger_table: &str,
) -> Option<Schema> {
    let (replay, _) = Replay::new(&Schema::default(), ledger_table).ok()?;
    for m in migrations {
        for st in &m.statements {
            if matches!(
                super::sql::classify(&st.sql),
                super::sql::Kind::Transaction(_)
            ) {
                continue;
            }
            replay.execute(&st.sql).ok()?;
        }
    }
    replay.schema().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::schema_from_sql;

    #[test]
    fn rebuilds_a_schema_and_finds_cascading_children() {
        let start = schema_from_sql(
            "CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (p INTEGER REFERENCES p(id) ON DELETE CASCADE);
             CREATE TABLE n (p INTEGER REFERENCES P(id) ON DELETE SET NULL);
             CREATE TABLE r (p INTEGER REFERENCES p(id));
             CREATE VIEW v2 AS SELECT * FROM v1;
             CREATE VIEW v1 AS SELECT * FROM p;
             CREATE INDEX ic ON c(p);
             CREATE TRIGGER tr AFTER INSERT ON p BEGIN DELETE FROM c; END;",
        )
        .unwrap();
        let (replay, missing) = Replay::new(&start, "d1_migrations").unwrap();
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(replay.schema().unwrap(), start);
        assert_eq!(
            replay.dependent_children("p"),
            [
                ("c".to_string(), "CASCADE".to_string()),
                ("n".to_string(), "SET NULL".to_string())
            ]
        );
        assert!(replay.execute("DROP TABLE nope").is_err());
    }
}
