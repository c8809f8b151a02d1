//! Reads on an open local connection: a query with JSON parameters and rows, `EXPLAIN QUERY
//! PLAN`, and a probe's timed runs on the thread's CPU clock (like D1's `meta.duration`). A
//! write probe runs inside a transaction the caller rolls back.
use std::time::Instant;

use rusqlite::{Connection, types::ValueRef};

use super::local_apply::StatementClock;
use super::local_errors::{map_sql_error, sqlite_message};
use super::{ProbeRun, ProbeSpec, QueryResult, Result};
use crate::backend::PlanStep;

fn json_param(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .unwrap_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

fn json_value(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
    }
}

/// Runs one statement on an open connection and collects its rows.
pub fn run_query(
    conn: &Connection,
    sql: &str,
    params: &[serde_json::Value],
) -> Result<QueryResult> {
    let started = Instant::now();
    let mut stmt = conn.prepare(sql).map_err(|e| map_sql_error("query", e))?;
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let values: Vec<rusqlite::types::Value> = params.iter().map(json_param).collect();
    let mut rows_out = Vec::new();
    {
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values.iter()))
            .map_err(|e| map_sql_error("query", e))?;
        while let Some(row) = rows.next().map_err(|e| map_sql_error("query", e))? {
            let mut out = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                out.push(json_value(
                    row.get_ref(i).map_err(|e| map_sql_error("query", e))?,
                ));
            }
            rows_out.push(out);
        }
    }
    Ok(QueryResult {
        columns,
        rows: rows_out,
        changes: conn.changes(),
        last_row_id: conn.last_insert_rowid(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// `EXPLAIN QUERY PLAN` of one statement, as (id, parent, detail) rows.
fn explain_plan(
    conn: &Connection,
    sql: &str,
    values: &[rusqlite::types::Value],
) -> rusqlite::Result<Vec<PlanStep>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    // A statement with fewer placeholders than parameters fails the run below, not here.
    let bound = values.len().min(stmt.parameter_count());
    let rows = stmt.query_map(rusqlite::params_from_iter(&values[..bound]), |r| {
        Ok(PlanStep {
            id: r.get(0)?,
            parent: r.get(1)?,
            detail: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Executes a prepared statement once, stepping every row; returns the row count.
fn step_all(
    stmt: &mut rusqlite::Statement<'_>,
    values: &[rusqlite::types::Value],
) -> rusqlite::Result<u64> {
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Times one probe execution by the time the thread spent on a CPU running it (user and
/// system), so a run that waits for a CPU on a busy machine is not charged for the wait —
/// like D1's `meta.duration`, the statement's own time. Falls back to wall-clock time where
/// the thread clock is unavailable.
struct RunClock {
    cpu: Option<f64>,
    wall: Instant,
}

impl RunClock {
    fn start() -> RunClock {
        RunClock {
            cpu: thread_cpu_ms(),
            wall: Instant::now(),
        }
    }

    fn ms(&self) -> f64 {
        match (self.cpu, thread_cpu_ms()) {
            (Some(a), Some(b)) if b >= a => b - a,
            _ => self.wall.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

/// The calling thread's CPU time in milliseconds.
#[cfg(unix)]
fn thread_cpu_ms() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6)
}

#[cfg(not(unix))]
fn thread_cpu_ms() -> Option<f64> {
    None
}

/// A probe on an open connection (see [`Backend::run_probe`]).
pub(super) fn probe_on(conn: &Connection, clock: &StatementClock, probe: &ProbeSpec) -> ProbeRun {
    let values: Vec<rusqlite::types::Value> = probe.params.iter().map(json_param).collect();
    let mut out = ProbeRun::default();
    clock.start();
    match explain_plan(conn, &probe.sql, &values) {
        Ok(plan) => out.plan = plan,
        Err(e) => {
            out.error = Some(clock.explain(&e));
            return out;
        }
    }
    let mut stmt = match conn.prepare(&probe.sql) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(clock.explain(&e));
            return out;
        }
    };
    if !probe.write && !stmt.readonly() {
        out.error = Some(
            "the statement writes but the probe is kind = \"read\"; declare kind = \"write\" so it runs in a rolled-back savepoint".into(),
        );
        return out;
    }
    // One outer transaction for all runs: each run's savepoint is nested in it, so no run
    // commits (or syncs a journal), and the final ROLLBACK drops anything left.
    if probe.write
        && let Err(e) = conn.execute_batch("BEGIN")
    {
        out.error = Some(sqlite_message(&e));
        return out;
    }
    let started = Instant::now();
    // Run 0 warms the connection's page cache and is not timed (a new connection's first
    // run measures page faults, not the query); its rows and changes are the ones reported.
    for i in 0..=probe.runs.max(1) {
        if i > 1 && started.elapsed().as_secs_f64() * 1000.0 > probe.time_budget_ms {
            break;
        }
        if probe.write
            && let Err(e) = conn.execute_batch("SAVEPOINT d1ops_probe")
        {
            out.error = Some(sqlite_message(&e));
            break;
        }
        clock.start();
        let run = RunClock::start();
        let result = step_all(&mut stmt, &values);
        let ms = run.ms();
        let changes = conn.changes();
        if probe.write
            && let Err(e) = conn.execute_batch("ROLLBACK TO d1ops_probe; RELEASE d1ops_probe")
        {
            out.error = Some(format!("rolling back the probe: {}", sqlite_message(&e)));
            break;
        }
        match result {
            Ok(rows) if i == 0 => {
                out.rows = Some(rows);
                out.changes = probe.write.then_some(changes);
            }
            Ok(_) => out.timings_ms.push(ms),
            Err(e) => {
                out.error = Some(clock.explain(&e));
                break;
            }
        }
    }
    out
}
