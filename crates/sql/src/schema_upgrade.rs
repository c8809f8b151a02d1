//! Versioned schemas for d1ops' own SQLite files (the state store and the metrics store):
//! `PRAGMA user_version` counts the upgrade steps that have run; each step runs in its own
//! IMMEDIATE transaction, and a file newer than this binary is refused.
//!
//! Owns only the upgrade loop; each store owns its steps and its error type.
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Runs the steps of `steps` this database has not seen yet. `too_new(found, known)` builds
/// the error for a file written by a newer d1ops; `after_step(i, tx)` runs inside step `i`'s
/// transaction, after its SQL (for data backfills).
pub fn upgrade<S: AsRef<str>, E: From<rusqlite::Error>>(
    conn: &mut Connection,
    steps: &[S],
    too_new: impl FnOnce(i64, i64) -> E,
    after_step: impl Fn(usize, &Transaction<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let known = steps.len() as i64;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > known {
        return Err(too_new(version, known));
    }
    for (i, sql) in steps.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have upgraded while we waited for the write lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql.as_ref())?;
        after_step(i, &tx)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
