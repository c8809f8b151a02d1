//! A migration apply on a local database: every migration of the batch in one `BEGIN
//! IMMEDIATE` transaction with the ledger rows, the statement clock that interrupts a
//! statement running past the limit, the foreign-key checks of the touched tables, and the
//! sentence for a failed COMMIT. An obstacle of the machine is never reported as a
//! migration's failure.
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::local_errors::{
    environment_error, map_sql_error, obstacle_of, shown_db, sqlite_message,
};
use super::{
    ApplyReport, Backend, BackendError, DatabaseRef, FkViolation, LocalBackend, Result, ledger_ddl,
    source_bytes, sql,
};
use crate::backend::sandbox::Sandbox;
use crate::backend::space::{self, human as human_bytes};
use crate::backend::{ApplyFailure, Obstacle};
use crate::schema::{self, Schema};
use crate::workspace::Migration;

#[path = "local_fk.rs"]
mod local_fk;

impl LocalBackend {
    /// `Backend::apply_migrations`: the batch in one transaction, within the room check and the
    /// statement clock.
    pub(super) fn apply_in_one_transaction(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
    ) -> Result<ApplyReport> {
        for m in migrations {
            if let Some(st) = m.statements.iter().find(|s| transaction_control(&s.sql)) {
                return Err(BackendError::Apply(Box::new(ApplyFailure {
                    migration: Some(m.name.clone()),
                    path: Some(m.path.clone()),
                    line: Some(st.line),
                    statement: Some(st.sql.clone()),
                    error: "transaction control statements (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) are not allowed in a migration; d1ops (and D1) already run it in one transaction".into(),
                    fk_violations: Vec::new(),
                })));
            }
        }
        let (mut conn, sandbox) = self.open_guarded(db)?;
        let path = self.path(db)?;
        // The journal and the file's growth need room; a disk too full to start is refused
        // before anything is written, and one that fills up during the apply is reported as
        // the full disk it is, never as a migration's failure.
        let size = source_bytes(&path);
        self.ensure_room(
            &self.db_dir,
            space::apply_needs(size),
            &format!(
                "applying migrations to {} ({})",
                shown_db(&path),
                human_bytes(size)
            ),
        )?;
        let free_before = space::room(&self.db_dir).ok().map(|r| r.free);
        let clock = StatementClock::install(&mut conn, self.statement_timeout)
            .map_err(|e| map_sql_error(&self.describe(db), e))?;
        let started = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql(&path))?;
        let outcome = apply_in_transaction(&conn, &sandbox, &clock, migrations, ledger_table);
        let outcome = match outcome {
            Ok(statements) => conn
                .execute_batch("COMMIT")
                .map(|()| statements)
                .map_err(|e| {
                    stop(e, |e| {
                        Box::new(ApplyFailure {
                            migration: None,
                            path: None,
                            line: None,
                            statement: None,
                            error: commit_error(e),
                            fk_violations: Vec::new(),
                        })
                    })
                }),
            Err(f) => Err(f),
        };
        match outcome {
            Ok((statements, slow_statements)) => Ok(ApplyReport {
                migrations: migrations.len(),
                statements,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                slow_statements,
                transactions: 1,
            }),
            Err(stopped) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(match stopped {
                    Stop::Failed(mut failure) => {
                        if local_fk::is_fk_failure(&failure) {
                            local_fk::locate(&conn, &clock, migrations, &mut failure);
                        }
                        BackendError::Apply(failure)
                    }
                    Stop::Obstacle(obstacle, e) => {
                        environment_error(&path, obstacle, &e, free_before)
                    }
                })
            }
        }
    }
}

/// Explains a failed COMMIT. With foreign_key_check clean, a FOREIGN KEY failure here is the
/// deferred-violation counter left by DROP TABLE on a parent during a table rebuild.
fn commit_error(e: &rusqlite::Error) -> String {
    let msg = sqlite_message(e);
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
        && msg.contains("FOREIGN KEY")
    {
        format!(
            "commit failed: {msg}; deferred foreign-key violations remain (typically DROP TABLE of a parent in a table rebuild: its implicit DELETE counts violations that renaming the new table does not clear); use ALTER TABLE ... DROP/RENAME COLUMN instead of a rebuild"
        )
    } else {
        format!("commit failed: {msg}")
    }
}

/// Statements that would end or nest our transaction; D1 rejects them too.
fn transaction_control(sql: &str) -> bool {
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
}

/// Interrupts any statement that runs longer than a limit (via SQLite's progress handler).
pub(super) struct StatementClock {
    base: Instant,
    started_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limit: Duration,
}

impl StatementClock {
    pub(super) fn install(
        conn: &mut Connection,
        limit: Duration,
    ) -> rusqlite::Result<StatementClock> {
        let base = Instant::now();
        let started_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = started_ms.clone();
        let limit_ms = limit.as_millis() as u64;
        conn.progress_handler(
            20_000,
            Some(move || {
                let now = base.elapsed().as_millis() as u64;
                now.saturating_sub(started.load(std::sync::atomic::Ordering::Relaxed)) > limit_ms
            }),
        )?;
        Ok(StatementClock {
            base,
            started_ms,
            limit,
        })
    }

    pub(super) fn start(&self) {
        self.started_ms.store(
            self.base.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(super) fn explain(&self, e: &rusqlite::Error) -> String {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) {
            format!(
                "statement ran longer than {} s and was stopped (D1 stops queries after 30 s; see statement_timeout in d1ops.toml)",
                self.limit.as_secs()
            )
        } else {
            sqlite_message(e)
        }
    }
}

/// Why an apply stopped: the SQL (a migration's failure, with its location), or the machine
/// (another connection's lock, a read-only path, a full disk), which is no migration's fault.
pub(super) enum Stop {
    Failed(Box<ApplyFailure>),
    Obstacle(Obstacle, rusqlite::Error),
}

impl From<Box<ApplyFailure>> for Stop {
    fn from(f: Box<ApplyFailure>) -> Stop {
        Stop::Failed(f)
    }
}

/// An SQLite error during an apply: an obstacle of the environment, else `failure`.
pub(super) fn stop(
    e: rusqlite::Error,
    failure: impl FnOnce(&rusqlite::Error) -> Box<ApplyFailure>,
) -> Stop {
    match obstacle_of(&e) {
        Some(obstacle) => Stop::Obstacle(obstacle, e),
        None => Stop::Failed(failure(&e)),
    }
}

fn apply_in_transaction(
    conn: &Connection,
    sandbox: &Sandbox,
    clock: &StatementClock,
    migrations: &[Migration],
    ledger_table: &str,
) -> std::result::Result<(usize, Vec<crate::backend::StatementTiming>), Stop> {
    let fail = |m: Option<&Migration>, line: Option<usize>, stmt: Option<&str>, error: String| {
        Box::new(ApplyFailure {
            migration: m.map(|m| m.name.clone()),
            path: m.map(|m| m.path.clone()),
            line,
            statement: stmt.map(str::to_string),
            error,
            fk_violations: Vec::new(),
        })
    };
    conn.execute_batch("PRAGMA defer_foreign_keys = ON")
        .map_err(|e| stop(e, |e| fail(None, None, None, sqlite_message(e))))?;
    (sandbox.trusted(|| conn.execute_batch(&ledger_ddl(ledger_table)))).map_err(|e| {
        stop(e, |e| {
            fail(
                None,
                None,
                None,
                format!("creating the ledger table: {}", sqlite_message(e)),
            )
        })
    })?;
    let insert = format!(
        "INSERT INTO {}(name) VALUES (?1)",
        schema::quote_ident(ledger_table)
    );
    let schema_before = schema::read_schema(conn, ledger_table)
        .map_err(|e| fail(None, None, None, format!("reading the schema: {e}")))?;
    let mut statements = 0usize;
    let mut slow = Vec::new();
    let mut progress = crate::progress::stage(
        "apply",
        Some(migrations.len() as u64),
        crate::progress::Unit::Migrations,
    );
    for (i, m) in migrations.iter().enumerate() {
        progress.set(i as u64);
        for st in &m.statements {
            clock.start();
            let started = Instant::now();
            conn.execute_batch(&st.sql).map_err(|e| {
                stop(e, |e| {
                    fail(Some(m), Some(st.line), Some(&st.sql), clock.explain(e))
                })
            })?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if ms >= crate::backend::SLOW_STATEMENT_MS {
                slow.push(crate::backend::StatementTiming {
                    migration: m.name.clone(),
                    path: m.path.clone(),
                    line: st.line,
                    ms,
                });
            }
            statements += 1;
        }
        (sandbox.trusted(|| conn.execute(&insert, [&m.name]))).map_err(|e| {
            stop(e, |e| {
                fail(
                    Some(m),
                    None,
                    None,
                    format!(
                        "recording {} in {ledger_table}: {}",
                        m.name,
                        sqlite_message(e)
                    ),
                )
            })
        })?;
        if i == 0 {
            crate::fault::point("apply.after_first_migration");
        }
    }
    let schema_after = schema::read_schema(conn, ledger_table)
        .map_err(|e| fail(None, None, None, format!("reading the schema: {e}")))?;
    let violations = if deferred_fk_violations(conn) {
        // Something this transaction did left violations: find every row, to report them.
        fk_check(conn, None)
    } else {
        // Statement-level enforcement saw no violation; what it cannot see is a table whose
        // definition changed (new constraints over old rows), so check exactly those tables.
        touched_tables(&schema_before, &schema_after)
            .iter()
            .try_fold(Vec::new(), |mut all, t| {
                all.extend(fk_check(conn, Some(t))?);
                Ok(all)
            })
    }
    .map_err(|e: BackendError| fail(None, None, None, e.to_string()))?;
    if !violations.is_empty() {
        let first = &violations[0];
        let mut f = fail(
            None,
            None,
            None,
            format!(
                "foreign_key_check found {} violation(s), first: {} row {} references missing {}",
                violations.len(),
                first.table,
                first.rowid.map_or("?".into(), |r| r.to_string()),
                first.parent
            ),
        );
        f.fk_violations = violations;
        return Err(Stop::Failed(f));
    }
    crate::fault::point("apply.before_commit");
    Ok((statements, slow))
}

/// Whether the open transaction holds unresolved deferred foreign-key violations (SQLite's
/// own counter; unknown counts as yes).
pub(super) fn deferred_fk_violations(conn: &Connection) -> bool {
    let (mut current, mut high) = (0, 0);
    // SAFETY: the handle is valid while `conn` lives; sqlite3_db_status only writes the two
    // integers we pass.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
            &mut current,
            &mut high,
            0,
        )
    };
    rc != rusqlite::ffi::SQLITE_OK || current > 0
}

/// Tables whose definition changed (or that are new), plus the tables whose foreign keys
/// point at them.
fn touched_tables(before: &Schema, after: &Schema) -> Vec<String> {
    let changed: std::collections::BTreeSet<&str> = after
        .tables
        .values()
        .filter(|t| before.tables.get(&t.name).is_none_or(|b| b.sql != t.sql))
        .map(|t| t.name.as_str())
        .collect();
    after
        .tables
        .values()
        .filter(|t| {
            changed.contains(t.name.as_str())
                || t.foreign_keys.iter().any(|fk| {
                    changed.iter().any(|c| c.eq_ignore_ascii_case(&fk.table))
                        || !after
                            .tables
                            .keys()
                            .any(|k| k.eq_ignore_ascii_case(&fk.table))
                })
        })
        .map(|t| t.name.clone())
        .collect()
}

/// `PRAGMA foreign_key_check`, for one table or all of them.
pub(super) fn fk_check(conn: &Connection, table: Option<&str>) -> Result<Vec<FkViolation>> {
    let sql = match table {
        Some(t) => format!("PRAGMA foreign_key_check({})", schema::quote_ident(t)),
        None => "PRAGMA foreign_key_check".to_string(),
    };
    let mut stmt = conn
        .prepare(&sql)
        .map_err(|e| map_sql_error("foreign_key_check", e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(FkViolation {
                table: r.get(0)?,
                rowid: r.get(1)?,
                parent: r.get(2)?,
                fk_index: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| map_sql_error("foreign_key_check", e))?;
    Ok(rows)
}
