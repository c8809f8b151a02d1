//! Applying migrations on D1, all or nothing (probes are `cloudflare_probe.rs`).
//!
//! A release that fits one request goes as ONE `/query` batch — `PRAGMA defer_foreign_keys`,
//! the ledger table, every statement, every ledger row, then a foreign-key guard — which D1
//! runs as one transaction. A larger release is applied migration by migration after a Time
//! Travel bookmark; any failure restores the bookmark, so production never keeps part of a
//! release. D1 does not say which statement of a failed batch failed, so it is found by
//! replaying prefixes that end in a statement that always fails (each one rolled back).
use std::time::Instant;

use serde_json::{Value, json};

use super::cloudflare::{CloudflareBackend, split_d1_message, to_backend};
use super::{
    ApplyFailure, ApplyReport, BackendError, DatabaseRef, FkViolation, Result, SLOW_STATEMENT_MS,
    StatementTiming,
};
use crate::cloudflare::CloudflareError;
use crate::cloudflare::d1::Statement;
use crate::schema;
use crate::workspace::Migration;

/// A statement that always fails when it runs (a table that cannot exist), so a batch ending
/// in it is always rolled back.
const STOP: &str = "SELECT * FROM \"d1ops rollback marker\"";
const STOP_MARK: &str = "d1ops rollback marker";

#[path = "cloudflare_fk.rs"]
mod cloudflare_fk;
/// Marks the violations an [`fk_guard`] reports in its error message.
const FK_MARK: &str = "d1ops-fk:";

/// A statement that fails the batch (so D1 rolls it back) when the database holds more than
/// `before` foreign-key violations, and puts up to 50 of them in its error message: an
/// invalid JSON path built from the rows (`JSON path error near 'd1ops-fk:[[table, rowid,
/// parent, fkid], …]'`) — the only way rows can leave a transaction that must roll back.
fn fk_guard(before: u64) -> String {
    format!(
        "SELECT CASE WHEN (SELECT count(*) FROM pragma_foreign_key_check) > {before} \
         THEN json_extract('{{}}', (SELECT '{FK_MARK}' || json_group_array(json_array(\"table\", rowid, parent, fkid)) \
         FROM (SELECT * FROM pragma_foreign_key_check LIMIT 50))) END"
    )
}

/// The violations a tripped [`fk_guard`] put in D1's error message.
fn guard_violations(message: &str) -> Option<Vec<FkViolation>> {
    let start = message.find(FK_MARK)? + FK_MARK.len();
    let mut rows = serde_json::Deserializer::from_str(&message[start..]).into_iter::<Vec<Value>>();
    let rows = rows.next()?.ok()?;
    Some(
        rows.into_iter()
            .filter_map(|r| {
                let v: Vec<Value> = serde_json::from_value(r).ok()?;
                Some(FkViolation {
                    table: v.first()?.as_str()?.to_string(),
                    rowid: v.get(1).and_then(Value::as_i64),
                    parent: v
                        .get(2)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    fk_index: v.get(3).and_then(Value::as_i64).unwrap_or(0),
                })
            })
            .collect(),
    )
}

/// Where one statement of an apply batch came from.
#[derive(Debug, Clone)]
enum Origin {
    Setup,
    Statement { migration: usize, line: usize },
    Ledger { migration: usize },
    FkGuard,
}

impl CloudflareBackend {
    pub(super) fn apply(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
    ) -> Result<ApplyReport> {
        let started = Instant::now();
        // Violations already there are not this release's; only new ones refuse it.
        let before = self.violation_count(db)?;
        let plan = plan(migrations, ledger_table, before);
        let statements: Vec<Statement> = plan.iter().map(|(s, _)| s.clone()).collect();
        let bytes: usize = statements.iter().map(|s| s.sql.len()).sum();
        let fits = statements.len() <= self.max_batch_statements && bytes <= self.max_batch_bytes;
        let (timings, transactions) = if fits {
            (self.apply_batch(db, migrations, &plan, ledger_table)?, 1)
        } else {
            self.apply_in_parts(db, migrations, ledger_table, before)?
        };
        let slow = timings
            .into_iter()
            .filter(|t| t.ms >= SLOW_STATEMENT_MS)
            .collect();
        Ok(ApplyReport {
            migrations: migrations.len(),
            statements: migrations.iter().map(|m| m.statements.len()).sum(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            slow_statements: slow,
            transactions,
        })
    }

    /// One request, one transaction.
    fn apply_batch(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        plan: &[(Statement, Origin)],
        ledger_table: &str,
    ) -> Result<Vec<StatementTiming>> {
        let statements: Vec<Statement> = plan.iter().map(|(s, _)| s.clone()).collect();
        let sent = Instant::now();
        match self.client.query(&db.id, &statements, false) {
            Ok(results) => Ok(plan
                .iter()
                .zip(results)
                .filter_map(|((_, origin), r)| match origin {
                    Origin::Statement { migration, line } => Some(StatementTiming {
                        migration: migrations[*migration].name.clone(),
                        path: migrations[*migration].path.clone(),
                        line: *line,
                        ms: r.meta.sql_ms(),
                    }),
                    _ => None,
                })
                .collect()),
            Err(CloudflareError::Sql { message, .. }) => {
                Err(self.failure(db, migrations, plan, ledger_table, &message))
            }
            Err(e) if e.is_ambiguous() => {
                self.settle(db, migrations, plan, ledger_table, sent, &e.to_string())
            }
            Err(e) => Err(to_backend(e, db)),
        }
    }

    /// A batch sent without an answer: once D1's query limit has passed since it was sent,
    /// it either committed or never will, and the ledger rows it carried say which.
    fn settle(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        plan: &[(Statement, Origin)],
        ledger_table: &str,
        sent: Instant,
        why: &str,
    ) -> Result<Vec<StatementTiming>> {
        let carried: Vec<&str> = plan
            .iter()
            .filter_map(|(_, o)| match o {
                Origin::Ledger { migration } => Some(migrations[*migration].name.as_str()),
                _ => None,
            })
            .collect();
        if let Some(rest) = self.query_limit.checked_sub(sent.elapsed()) {
            tracing::warn!(db = %db.id, wait_ms = rest.as_millis() as u64, "batch unanswered; waiting out D1's query limit before reading the ledger");
            std::thread::sleep(rest);
        }
        let ledger = match super::Backend::ledger(self, db, ledger_table) {
            Ok(l) => l,
            Err(e) => {
                return Err(BackendError::Ambiguous(format!(
                    "{why}; D1 did not answer and its ledger cannot be read now ({e}): whether the release landed is unknown until production's ledger is read again"
                )));
            }
        };
        let landed = carried
            .iter()
            .filter(|n| ledger.iter().any(|r| r.name == **n))
            .count();
        if landed == carried.len() && !carried.is_empty() {
            tracing::warn!(db = %db.id, "the batch's answer was lost, but production's ledger shows it committed");
            Ok(Vec::new())
        } else if landed == 0 {
            Err(BackendError::Apply(Box::new(ApplyFailure {
                migration: None,
                path: None,
                line: None,
                statement: None,
                error: format!(
                    "{why}; production's ledger shows the batch did not commit, nothing was applied"
                ),
                fk_violations: Vec::new(),
            })))
        } else {
            Err(BackendError::Ambiguous(format!(
                "{why}; production's ledger holds {landed} of the {} migrations this batch carried, which one D1 transaction cannot do: inspect production",
                carried.len()
            )))
        }
    }

    /// Migration by migration (each as one batch, or in chunks when one migration alone is
    /// too large), after a bookmark that any failure restores.
    fn apply_in_parts(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        ledger_table: &str,
        before: u64,
    ) -> Result<(Vec<StatementTiming>, usize)> {
        let bookmark = self
            .client
            .bookmark(&db.id, None)
            .map_err(|e| to_backend(e, db))?;
        tracing::info!(db = %db.id, %bookmark, migrations = migrations.len(), "release too large for one D1 batch; applying in parts");
        let mut timings = Vec::new();
        let mut batches = 0;
        for (i, m) in migrations.iter().enumerate() {
            let mut one = plan(std::slice::from_ref(m), ledger_table, before);
            for (_, origin) in one.iter_mut() {
                match origin {
                    Origin::Statement { migration, .. } | Origin::Ledger { migration } => {
                        *migration = i
                    }
                    _ => {}
                }
            }
            for chunk in chunks(&one, self.max_batch_statements, self.max_batch_bytes) {
                if let Err(e) = self
                    .apply_batch(db, migrations, &chunk, ledger_table)
                    .map(|t| timings.extend(t))
                {
                    return Err(self.restore_after(db, &bookmark, e));
                }
                batches += 1;
            }
        }
        Ok((timings, batches))
    }

    /// Puts `db` back to `bookmark` after a failed partial apply and says so.
    fn restore_after(&self, db: &DatabaseRef, bookmark: &str, e: BackendError) -> BackendError {
        match self.client.restore_bookmark(&db.id, bookmark) {
            Ok(_) => {
                tracing::warn!(db = %db.id, %bookmark, "partial apply undone by Time Travel restore");
                match e {
                    BackendError::Apply(mut f) => {
                        f.error = format!(
                            "{} (the migrations applied before it were undone by restoring Time Travel bookmark {bookmark})",
                            f.error
                        );
                        BackendError::Apply(f)
                    }
                    other => BackendError::Other(format!(
                        "{other} (the migrations applied before it were undone by restoring Time Travel bookmark {bookmark})"
                    )),
                }
            }
            Err(r) => BackendError::Other(format!(
                "{e}; restoring Time Travel bookmark {bookmark} also failed ({r}): D1 database {} may hold part of the release — restore it with `wrangler d1 time-travel restore --bookmark={bookmark}`",
                db.id
            )),
        }
    }

    /// Turns a failed batch into an [`ApplyFailure`] naming the migration, line and statement.
    fn failure(
        &self,
        db: &DatabaseRef,
        migrations: &[Migration],
        plan: &[(Statement, Origin)],
        ledger_table: &str,
        message: &str,
    ) -> BackendError {
        let statements: Vec<Statement> = plan.iter().map(|(s, _)| s.clone()).collect();
        let (text, _) = split_d1_message(message);
        if let Some(violations) = guard_violations(message) {
            // The batch rolled back: what production holds now is what it held before.
            let before = self.violation_count(db).unwrap_or(0);
            let setup = plan
                .iter()
                .take_while(|(_, o)| matches!(o, Origin::Setup))
                .count();
            let at = self
                .locate_violations(db, &statements, setup, before)
                .ok()
                .flatten();
            let mut f = self.located(migrations, plan, at, String::new());
            f.error = format!(
                "foreign_key_check found {} new violation(s) before commit, nothing was applied; violating rows: {}",
                violations.len(),
                cloudflare_fk::sample(&violations)
            );
            f.fk_violations = violations;
            return BackendError::Apply(Box::new(f));
        }
        let at = self.locate_failure(db, &statements).ok().flatten();
        if at.is_none() && text.contains("FOREIGN KEY") {
            // A COMMIT refused by the deferred counter: no row to see, so the statement is
            // the parent's DROP TABLE whose children hold rows.
            if let Some((i, rows)) = self.dropped_parent(db, &statements, ledger_table) {
                let mut f = self.located(migrations, plan, Some(i), String::new());
                f.error = format!(
                    "{text}: deferred foreign-key violations remain at commit (DROP TABLE of a parent in a table rebuild counts its children's rows as violations; renaming the new table does not clear them); violating rows: {rows}; use ALTER TABLE ... DROP/RENAME COLUMN instead of a rebuild, or delete or re-point those rows in the migration"
                );
                return BackendError::Apply(Box::new(f));
            }
        }
        BackendError::Apply(Box::new(self.located(migrations, plan, at, text)))
    }

    /// An [`ApplyFailure`] at plan index `at` (migration, line and statement when it is one
    /// of a migration's statements), with `text` as its error.
    fn located(
        &self,
        migrations: &[Migration],
        plan: &[(Statement, Origin)],
        at: Option<usize>,
        text: String,
    ) -> ApplyFailure {
        let origin = at.and_then(|i| plan.get(i)).map(|(s, o)| (s, o.clone()));
        match origin {
            Some((s, Origin::Statement { migration, line })) => {
                let m = &migrations[migration];
                ApplyFailure {
                    migration: Some(m.name.clone()),
                    path: Some(m.path.clone()),
                    line: Some(line),
                    statement: Some(s.sql.clone()),
                    error: text,
                    fk_violations: Vec::new(),
                }
            }
            Some((_, Origin::Ledger { migration })) => ApplyFailure {
                migration: Some(migrations[migration].name.clone()),
                path: Some(migrations[migration].path.clone()),
                line: None,
                statement: None,
                error: format!(
                    "recording {} in the ledger: {text}",
                    migrations[migration].name
                ),
                fk_violations: Vec::new(),
            },
            Some((_, Origin::FkGuard)) => ApplyFailure {
                migration: None,
                path: None,
                line: None,
                statement: None,
                error: "foreign_key_check found violations before commit; nothing was applied"
                    .into(),
                fk_violations: Vec::new(),
            },
            _ => ApplyFailure {
                migration: None,
                path: None,
                line: None,
                statement: None,
                error: text,
                fk_violations: Vec::new(),
            },
        }
    }

    /// How many foreign-key violations `db` holds now.
    fn violation_count(&self, db: &DatabaseRef) -> Result<u64> {
        let r = self
            .client
            .raw(
                &db.id,
                &[Statement::new(
                    "SELECT count(*) FROM pragma_foreign_key_check",
                )],
                true,
            )
            .map_err(|e| to_backend(e, db))?;
        Ok(r.first()
            .and_then(|r| r.results.rows.first())
            .and_then(|row| row.first())
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    /// The index of the statement that makes `statements` fail, found by binary search over
    /// prefixes that end in [`STOP`] (so every probe is rolled back and nothing changes).
    /// `None` when every prefix runs: the failure was at commit (deferred foreign keys).
    pub(super) fn locate_failure(
        &self,
        db: &DatabaseRef,
        statements: &[Statement],
    ) -> Result<Option<usize>> {
        // Invariant: prefix `lo` runs clean; prefix `hi` fails on its own.
        let runs_clean = |n: usize| -> Result<bool> {
            let mut probe: Vec<Statement> = statements[..n].to_vec();
            probe.push(Statement::new(STOP));
            match self.client.query(&db.id, &probe, false) {
                Ok(_) => Err(BackendError::Other(
                    "a batch ending in a failing statement succeeded; D1 did not behave as documented".into(),
                )),
                Err(CloudflareError::Sql { message, .. }) => Ok(message.contains(STOP_MARK)),
                Err(e) => Err(to_backend(e, db)),
            }
        };
        let n = statements.len();
        if runs_clean(n)? {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if runs_clean(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(hi - 1))
    }
}

/// The statements of an apply with where each came from.
fn plan(migrations: &[Migration], ledger_table: &str, fk_before: u64) -> Vec<(Statement, Origin)> {
    let mut out = vec![
        (
            Statement::new("PRAGMA defer_foreign_keys = on"),
            Origin::Setup,
        ),
        (
            Statement::new(super::local::ledger_ddl(ledger_table)),
            Origin::Setup,
        ),
    ];
    let insert = format!(
        "INSERT INTO {}(name) VALUES (?)",
        schema::quote_ident(ledger_table)
    );
    for (i, m) in migrations.iter().enumerate() {
        for st in &m.statements {
            out.push((
                Statement::new(st.sql.clone()),
                Origin::Statement {
                    migration: i,
                    line: st.line,
                },
            ));
        }
        out.push((
            Statement::with(insert.clone(), vec![json!(m.name)]),
            Origin::Ledger { migration: i },
        ));
    }
    out.push((Statement::new(fk_guard(fk_before)), Origin::FkGuard));
    out
}

/// Splits one migration's plan into batches within the limits; each batch starts with the
/// setup statements and ends with the foreign-key guard.
fn chunks(
    plan: &[(Statement, Origin)],
    max_statements: usize,
    max_bytes: usize,
) -> Vec<Vec<(Statement, Origin)>> {
    let setup: Vec<_> = plan
        .iter()
        .filter(|(_, o)| matches!(o, Origin::Setup))
        .cloned()
        .collect();
    let guard: Vec<_> = plan
        .iter()
        .filter(|(_, o)| matches!(o, Origin::FkGuard))
        .cloned()
        .collect();
    let body: Vec<_> = plan
        .iter()
        .filter(|(_, o)| !matches!(o, Origin::Setup | Origin::FkGuard))
        .cloned()
        .collect();
    let room = max_statements
        .saturating_sub(setup.len() + guard.len())
        .max(1);
    let fixed: usize = setup.iter().chain(&guard).map(|(s, _)| s.sql.len()).sum();
    let mut out = Vec::new();
    let mut current: Vec<(Statement, Origin)> = Vec::new();
    let mut bytes = fixed;
    for item in body {
        let len = item.0.sql.len();
        if !current.is_empty() && (current.len() >= room || bytes + len > max_bytes) {
            out.push(current);
            current = Vec::new();
            bytes = fixed;
        }
        bytes += len;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out.into_iter()
        .map(|c| {
            setup
                .iter()
                .cloned()
                .chain(c)
                .chain(guard.iter().cloned())
                .collect()
        })
        .collect()
}

#[cfg(test)]
#[path = "cloudflare_apply_tests.rs"]
mod tests;
