//! A console batch on D1: splitting it into D1's statements, refusing writes without `--yes`
//! and rollbacks D1 cannot do, and mapping D1's answer (or the failing statement) into a
//! [`BatchOutcome`].
use serde_json::Value;

use super::{
    BackendError, BatchOutcome, CloudflareBackend, DatabaseRef, ExecMeta, ExecOptions,
    ExecStatement, FailureKind, Result, StatementFailure, StatementResult, reads_only,
    split_d1_message, to_backend,
};
use crate::cloudflare::CloudflareError;
use crate::cloudflare::d1::Statement;

impl CloudflareBackend {
    /// `Backend::execute` on D1.
    pub(super) fn execute_batch(
        &self,
        db: &DatabaseRef,
        batch: &[ExecStatement],
        opts: ExecOptions,
    ) -> Result<BatchOutcome> {
        // One entry per statement, as D1 answers them.
        let mut pieces: Vec<(String, Vec<Value>)> = Vec::new();
        for item in batch {
            let parts = d1ops_sql::splitter::batch_statements(&item.sql);
            let single = parts.len() == 1;
            for p in parts {
                pieces.push((
                    p.to_string(),
                    if single {
                        item.params.clone()
                    } else {
                        Vec::new()
                    },
                ));
            }
        }
        if opts.rollback {
            return Err(BackendError::Other(
                "D1 cannot run statements and roll them back; replay writes on the local backend"
                    .into(),
            ));
        }
        if !opts.allow_writes
            && let Some((i, (sql, _))) =
                pieces.iter().enumerate().find(|(_, (s, _))| !reads_only(s))
        {
            return Ok(BatchOutcome::failed(StatementFailure {
                kind: FailureKind::Refused,
                index: i,
                sql: sql.clone(),
                code: "SQLITE_READONLY".into(),
                message: "this statement writes; writes need --yes".into(),
                offset: None,
                duration_ms: 0.0,
            }));
        }
        let read_only = pieces.iter().all(|(s, _)| reads_only(s));
        let statements: Vec<Statement> = pieces
            .iter()
            .map(|(s, p)| Statement::with(s.clone(), p.clone()))
            .collect();
        match self.client.raw(&db.id, &statements, read_only) {
            Ok(results) => Ok(BatchOutcome {
                results: pieces
                    .iter()
                    .zip(results)
                    .map(|((sql, _), r)| StatementResult {
                        sql: sql.clone(),
                        columns: r.results.columns,
                        rows: r.results.rows,
                        meta: meta_of(&r.meta),
                        readonly: reads_only(sql),
                    })
                    .collect(),
                failure: None,
            }),
            Err(CloudflareError::Sql { message, .. }) => {
                let index = if statements.len() > 1 {
                    self.locate_failure(db, &statements)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                } else {
                    0
                };
                let (message, code) = split_d1_message(&message);
                Ok(BatchOutcome::failed(StatementFailure {
                    kind: FailureKind::Sql,
                    index,
                    sql: pieces.get(index).map(|p| p.0.clone()).unwrap_or_default(),
                    code,
                    message,
                    offset: None,
                    duration_ms: 0.0,
                }))
            }
            Err(e) => Err(to_backend(e, db)),
        }
    }
}

fn meta_of(m: &crate::cloudflare::d1::Meta) -> ExecMeta {
    ExecMeta {
        duration_ms: m.sql_ms(),
        rows_read: m.rows_read,
        rows_written: m.rows_written,
        changes: m.changes,
        last_row_id: m.last_row_id,
        changed_db: m.changed_db,
        size_after: m.size_after,
    }
}
