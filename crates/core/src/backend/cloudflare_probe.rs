//! A probe on D1: `EXPLAIN QUERY PLAN`, a warm-up, then timed runs measured by D1's
//! `meta.duration`; a write probe runs after a Time Travel bookmark restored after every
//! execution, and never on production.
use std::time::Instant;

use serde_json::Value;

use super::{CloudflareBackend, split_d1_message, to_backend};
use crate::backend::{DatabaseRef, PlanStep, ProbeRun, ProbeSpec, Result};
use crate::cloudflare::CloudflareError;
use crate::cloudflare::d1::Statement;

impl CloudflareBackend {
    /// EXPLAIN QUERY PLAN, a warm-up, then timed runs measured by D1's `meta.duration`. A
    /// write probe runs after a Time Travel bookmark that is restored after every execution,
    /// and never on production.
    pub(super) fn probe(&self, db: &DatabaseRef, probe: &ProbeSpec) -> Result<ProbeRun> {
        let mut run = ProbeRun::default();
        if probe.write && self.is_production(db) {
            run.error = Some("write probes never run on the production database on D1".into());
            return Ok(run);
        }
        let explain = Statement::with(
            format!("EXPLAIN QUERY PLAN {}", probe.sql),
            probe.params.clone(),
        );
        match self.client.raw(&db.id, &[explain], true) {
            Ok(rs) => {
                run.plan = rs
                    .into_iter()
                    .next()
                    .map(|r| {
                        r.results
                            .rows
                            .into_iter()
                            .map(|row| PlanStep {
                                id: row.first().and_then(Value::as_i64).unwrap_or(0),
                                parent: row.get(1).and_then(Value::as_i64).unwrap_or(0),
                                detail: row
                                    .get(3)
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
            Err(CloudflareError::Sql { message, .. }) => {
                run.error = Some(split_d1_message(&message).0);
                return Ok(run);
            }
            Err(e) => return Err(to_backend(e, db)),
        }
        let bookmark = if probe.write {
            Some(
                self.client
                    .bookmark(&db.id, None)
                    .map_err(|e| to_backend(e, db))?,
            )
        } else {
            None
        };
        let stmt = Statement::with(probe.sql.clone(), probe.params.clone());
        let execute =
            || -> Result<std::result::Result<crate::cloudflare::d1::RawResult, String>> {
                let r = match self
                    .client
                    .raw(&db.id, std::slice::from_ref(&stmt), !probe.write)
                {
                    Ok(rs) => Ok(rs.into_iter().next().unwrap_or_default()),
                    Err(CloudflareError::Sql { message, .. }) => Err(split_d1_message(&message).0),
                    Err(e) => return Err(to_backend(e, db)),
                };
                if let Some(b) = &bookmark {
                    self.client
                        .restore_bookmark(&db.id, b)
                        .map_err(|e| to_backend(e, db))?;
                }
                Ok(r)
            };
        match execute()? {
            Ok(first) => {
                run.rows = Some(first.results.rows.len() as u64);
                run.changes = Some(first.meta.changes);
            }
            Err(message) => {
                run.error = Some(message);
                return Ok(run);
            }
        }
        let mut spent = 0.0;
        for i in 0..probe.runs.max(1) {
            if i > 0 && spent >= probe.time_budget_ms {
                break;
            }
            let wall = Instant::now();
            match execute()? {
                Ok(r) => {
                    let ms = if r.meta.duration > 0.0 {
                        r.meta.sql_ms()
                    } else {
                        wall.elapsed().as_secs_f64() * 1000.0
                    };
                    spent += ms;
                    run.timings_ms.push(ms);
                }
                Err(message) => {
                    run.error = Some(message);
                    break;
                }
            }
        }
        Ok(run)
    }
}
