//! The in-memory replay lint runs migrations on: a private SQLite database built from a
//! starting [`Schema`] (no rows), on which migrations are executed statement by statement so
//! each migration's schema before and after can be read and diffed.
//!
//! Writes only to its own in-memory database and never opens a file: the connection carries
//! the same sandbox as every connection that runs a user's SQL (ATTACH, `VACUUM INTO`,
//! dangerous pragmas, writes to the ledger refused), so a statement it refuses here is one
//! the preview and production would refuse; a statement running longer than
//! [`STATEMENT_LIMIT`] is stopped.
//! Foreign keys are off: the replay is about schema, and the data it holds is only what
//! migrations insert themselves.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::scope::Scope;
use crate::backend::sandbox::{self, Sandbox};
use crate::schema::sqltext::{TokKind, tokenize, unquote};
use crate::schema::{Schema, SchemaError, read_schema, read_tables};

/// A replayed statement running longer than this is stopped (the replay holds no production
/// data, so only a runaway statement, e.g. an unbounded recursive CTE, gets near it).
pub(super) const STATEMENT_LIMIT: Duration = Duration::from_secs(10);

pub(super) struct Replay {
    conn: Connection,
    ledger_table: String,
    /// When the current statement started, for the progress handler.
    started: Arc<Mutex<Instant>>,
}

/// A statement SQLite refused during the replay.
#[derive(Debug, Clone)]
pub(super) struct ReplayError {
    pub message: String,
    /// Why the sandbox refused the statement, when it did (the statement did not run).
    pub refused: Option<String>,
}

impl Replay {
    /// A database holding `start`'s tables, then its indexes, views and triggers. Objects
    /// that cannot be recreated (a virtual table of a missing module, say) are left out and
    /// named in the second value.
    pub fn new(start: &Schema, ledger_table: &str) -> Result<(Replay, Vec<String>), SchemaError> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let sandbox = Sandbox::install(&mut conn, ledger_table)?;
        // The ledger exists wherever migrations run, so a statement touching it prepares
        // (and is refused) here as it would there.
        sandbox.trusted(|| conn.execute_batch(&crate::backend::local::ledger_ddl(ledger_table)))?;
        let started = Arc::new(Mutex::new(Instant::now()));
        let clock = Arc::clone(&started);
        conn.progress_handler(
            10_000,
            Some(move || clock.lock().is_ok_and(|t| t.elapsed() > STATEMENT_LIMIT)),
        )?;
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
            pending.retain(|(_, sql)| sandbox.trusted(|| conn.execute_batch(sql)).is_err());
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        let missing = pending.into_iter().map(|(what, _)| what).collect();
        Ok((
            Replay {
                conn,
                ledger_table: ledger_table.to_string(),
                started,
            },
            missing,
        ))
    }

    /// The replay's current user schema.
    pub fn schema(&self) -> Result<Schema, SchemaError> {
        read_schema(&self.conn, &self.ledger_table)
    }

    /// The tables `scope` names as they are now (the whole schema for [`Scope::All`]).
    pub fn tables(&self, scope: &Scope) -> Result<Schema, SchemaError> {
        match scope {
            Scope::All => self.schema(),
            Scope::Tables(names) => {
                let names: Vec<String> = names.iter().cloned().collect();
                Ok(Schema {
                    tables: read_tables(&self.conn, &self.ledger_table, &names)?,
                    ..Schema::default()
                })
            }
        }
    }

    /// Executes one migration statement.
    pub fn execute(&self, sql: &str) -> Result<(), ReplayError> {
        if let Ok(mut t) = self.started.lock() {
            *t = Instant::now();
        }
        sandbox::take_refusal();
        self.conn.execute_batch(sql).map_err(|e| ReplayError {
            refused: sandbox::refusal_of(&e),
            message: match &e {
                _ if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
                    format!(
                        "ran longer than {} s in the replay and was stopped",
                        STATEMENT_LIMIT.as_secs()
                    )
                }
                rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
                other => other.to_string(),
            },
        })
    }

    /// The double-quoted names in `sql` that SQLite reads as string literals because they
    /// resolve to no column in scope (SQLite's "double-quoted string" misfeature, which D1
    /// shares): the statement is prepared, not run, with double-quoted strings off
    /// (`DQS_DML`/`DQS_DDL`), where such a name is "no such column"; each one found is
    /// rewritten as a string literal and the statement prepared again, so all are named.
    /// Empty when the statement prepares as written, or fails for another reason (what the
    /// replay then reports). Call it before executing the statement.
    pub fn dq_strings(&self, sql: &str) -> Vec<String> {
        if !sql.contains('"') {
            return Vec::new();
        }
        let configs = [
            DbConfig::SQLITE_DBCONFIG_DQS_DML,
            DbConfig::SQLITE_DBCONFIG_DQS_DDL,
        ];
        let saved: Vec<bool> = configs
            .iter()
            .map(|c| self.conn.db_config(*c).unwrap_or(true))
            .collect();
        let off = configs
            .iter()
            .all(|c| self.conn.set_db_config(*c, false).is_ok());
        let mut found: Vec<String> = Vec::new();
        let mut text = sql.to_string();
        // Bounded: each round names a new token or stops.
        while off && found.len() < MAX_DQ_NAMED {
            let Err(e) = self.conn.prepare(&text) else {
                break;
            };
            let Some(name) = no_such_column(&e) else {
                break;
            };
            match as_string_literal(&text, &name) {
                Some(rewritten) if !found.contains(&name) => {
                    found.push(name);
                    text = rewritten;
                }
                _ => break,
            }
        }
        for (c, v) in configs.iter().zip(saved) {
            let _ = self.conn.set_db_config(*c, v);
        }
        sandbox::take_refusal();
        found
    }

    /// Tables whose foreign keys reference `parent` with a row-changing `ON DELETE` action
    /// (CASCADE, SET NULL, SET DEFAULT), as (child, action); the parent itself is left out.
    pub fn dependent_children(&self, parent: &str) -> Vec<(String, String)> {
        // A child names its parent in its own SQL, so tables whose text lacks the name are
        // skipped before their foreign keys are listed (a string search instead of a pragma
        // per table: rebuild-heavy histories drop many tables). Not for a name with quote
        // characters, which the text may hold escaped.
        let sql = "SELECT DISTINCT s.name, upper(f.on_delete) \
                   FROM main.sqlite_schema AS s, pragma_foreign_key_list(s.name, 'main') AS f \
                   WHERE s.type = 'table' AND (?2 OR instr(lower(s.sql), lower(?1)) > 0) \
                     AND f.\"table\" = ?1 COLLATE NOCASE \
                     AND s.name <> ?1 COLLATE NOCASE \
                     AND upper(f.on_delete) IN ('CASCADE', 'SET NULL', 'SET DEFAULT') \
                   ORDER BY s.name";
        let quoted = parent.contains(['"', '\'', '`', '[', ']']);
        let Ok(mut stmt) = self.conn.prepare(sql) else {
            return Vec::new();
        };
        stmt.query_map(rusqlite::params![parent, quoted], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
    }
}

/// At most this many double-quoted strings are named per statement.
const MAX_DQ_NAMED: usize = 20;

/// The name in SQLite's "no such column: X" (unqualified only: `"a"."b"` is never a
/// string). Recent SQLite versions write it `"X" - should this be a string literal in
/// single-quotes?`.
fn no_such_column(e: &rusqlite::Error) -> Option<String> {
    let m = match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m,
        rusqlite::Error::SqlInputError { msg, .. } => msg,
        _ => return None,
    };
    let rest = m.strip_prefix("no such column: ")?;
    let name = match rest.strip_prefix('"') {
        Some(quoted) => quoted.rsplit_once("\" - should")?.0,
        None => rest,
    };
    (!name.contains('.')).then(|| name.to_string())
}

/// `sql` with every double-quoted token naming `name` written as a string literal, or `None`
/// when the statement has no such token (the error came from elsewhere: a trigger, a view).
fn as_string_literal(sql: &str, name: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for t in tokenize(sql) {
        if t.kind == TokKind::Quoted && t.raw.starts_with('"') && unquote(t.raw) == name {
            out.push_str(&sql[at..t.offset]);
            out.push('\'');
            out.push_str(&name.replace('\'', "''"));
            out.push('\'');
            at = t.offset + t.raw.len();
        }
    }
    if at == 0 {
        return None;
    }
    out.push_str(&sql[at..]);
    Some(out)
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
        assert_eq!(
            replay.dependent_children("P"),
            replay.dependent_children("p")
        );
        assert!(replay.execute("DROP TABLE nope").is_err());
        // A name the SQL text holds escaped is still found.
        replay
            .execute("CREATE TABLE \"we\"\"ird\" (id INTEGER PRIMARY KEY)")
            .unwrap();
        replay
            .execute("CREATE TABLE k (w INTEGER REFERENCES \"we\"\"ird\"(id) ON DELETE CASCADE)")
            .unwrap();
        assert_eq!(
            replay.dependent_children("we\"ird"),
            [("k".to_string(), "CASCADE".to_string())]
        );
    }

    #[test]
    fn never_touches_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (replay, _) = Replay::new(&Schema::default(), "d1_migrations").unwrap();
        for sql in [
            format!("ATTACH '{}' AS other", dir.path().join("a.db").display()),
            format!("VACUUM INTO '{}'", dir.path().join("b.db").display()),
        ] {
            assert!(replay.execute(&sql).is_err(), "{sql}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
