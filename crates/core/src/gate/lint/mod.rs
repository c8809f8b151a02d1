//! Lint of migration SQL: `lint.d1` (D1 compatibility), `lint.destructive` (from the
//! per-migration schema diff, seeing through table rebuilds) and `lint.risk` (statements that
//! are dangerous on live data). Each finding has a stable id, a severity, the file:line of the
//! statement responsible and a one-line fix hint; `-- d1ops:allow <id> <reason>` suppresses
//! one, `[gate] severity` re-grades or silences them.
//!
//! Migrations are replayed once, in order, on a private in-memory database (from the
//! preview's schema in the gate, from an empty one for `d1ops lint`), so lint never touches a
//! real database and never writes state; each migration's schema diff covers only the tables
//! it may change (`scope.rs`), so lint grows with the migrations, not with their square. The
//! rules live in `rules.rs` (per statement), `destructive.rs` (per schema diff) and the
//! replay itself (`lint.dqs`: double-quoted names SQLite reads as strings); `catalogue.rs`
//! is the id table; `gate.rs` is the face the gate runner sees.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Check;
use crate::backend::StatementTiming;
use crate::schema::{Schema, SchemaError};
use crate::workspace::config::GateConfig;
use crate::workspace::{DiscoveryError, Migration, Workspace};

mod catalogue;
mod destructive;
mod gate;
mod replay;
mod rules;
mod scope;
mod sql;
mod suppress;

pub use catalogue::{CHECK_D1, CHECK_DESTRUCTIVE, CHECK_RISK, RULES, Rule};

/// The lint checks, in catalogue order.
pub fn checks() -> Vec<Box<dyn Check>> {
    [CHECK_D1, CHECK_DESTRUCTIVE, CHECK_RISK]
        .into_iter()
        .map(|id| Box::new(gate::LintCheck { id }) as Box<dyn Check>)
        .collect()
}

/// How bad a finding is. (`off` in config removes the finding instead.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fail => "fail",
            Severity::Warn => "warn",
        }
    }
}

/// One lint finding, attributed to the statement responsible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id, e.g. `destructive.drop-column` (see [`RULES`]).
    pub id: String,
    /// After `[gate] severity` overrides.
    pub severity: Severity,
    /// `lint.d1`, `lint.destructive` or `lint.risk`.
    pub check: String,
    pub migration: String,
    /// The migration file, relative to the workspace.
    pub path: String,
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// The statement on one line, shortened.
    pub statement: String,
    pub message: String,
    pub hint: String,
    /// Suppressed by `-- d1ops:allow <id> <reason>`: reported, but without effect on status.
    pub suppressed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression_reason: Option<String>,
}

impl Finding {
    /// Counts toward the status (not suppressed) at fail severity.
    pub fn blocks(&self) -> bool {
        !self.suppressed && self.severity == Severity::Fail
    }
}

/// The result of linting a list of migrations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LintReport {
    /// In migration order, then line, then catalogue order.
    pub findings: Vec<Finding>,
    /// Unsuppressed findings at fail severity.
    pub fail: usize,
    /// Unsuppressed findings at warn severity.
    pub warn: usize,
    pub suppressed: usize,
    pub migrations: usize,
    pub statements: usize,
    /// What the replay could not do (statements it refused, objects it could not recreate),
    /// when those are not findings themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("lint replay: {0}")]
    Replay(#[from] SchemaError),
}

/// What to lint and what lint may use.
pub struct LintInput<'a> {
    pub migrations: &'a [Migration],
    /// The schema before the first migration.
    pub start: &'a Schema,
    pub ledger_table: &'a str,
    pub gate: &'a GateConfig,
    /// Rows per table before the first migration (the gate's preview); enables the rules
    /// that need data.
    pub counts: Option<&'a BTreeMap<String, u64>>,
    /// Measured statement times from the preview apply, when it succeeded.
    pub timings: Option<&'a [StatementTiming]>,
    /// A statement the replay refuses becomes a `lint.apply-failed` finding (lint alone);
    /// otherwise a note (the gate, where `mig.apply` reports the real failure).
    pub report_apply_failures: bool,
}

/// Lints every migration of the workspace from an empty schema: no database, no state.
pub fn lint_workspace(ws: &Workspace) -> Result<LintReport, LintError> {
    let migrations = ws.migrations()?;
    lint_migrations(&LintInput {
        migrations: &migrations,
        start: &Schema::default(),
        ledger_table: &ws.config.migrations_table,
        gate: &ws.config.gate,
        counts: None,
        timings: None,
        report_apply_failures: true,
    })
}

/// A finding before severity overrides and suppressions.
struct Draft {
    rule: Rule,
    migration: usize,
    statement: Option<usize>,
    message: String,
}

/// Where the rules put their findings.
struct Drafts<'a> {
    migration: usize,
    out: &'a mut Vec<Draft>,
}

impl Drafts<'_> {
    fn push(&mut self, id: &str, statement: Option<usize>, message: String) {
        if let Some(rule) = catalogue::rule_of(id) {
            self.out.push(Draft {
                rule: *rule,
                migration: self.migration,
                statement,
                message,
            });
        }
    }

    /// Like `push`, reported under another lint check (a meta finding about that check).
    fn push_in_check(&mut self, id: &str, check: &str, statement: Option<usize>, message: String) {
        let check = [CHECK_D1, CHECK_DESTRUCTIVE, CHECK_RISK]
            .into_iter()
            .find(|c| *c == check);
        if let (Some(rule), Some(check)) = (catalogue::rule_of(id), check) {
            self.out.push(Draft {
                rule: Rule { check, ..*rule },
                migration: self.migration,
                statement,
                message,
            });
        }
    }
}

/// Lints `input.migrations` in order on a replay of `input.start`.
pub fn lint_migrations(input: &LintInput<'_>) -> Result<LintReport, LintError> {
    let (replay, missing) = replay::Replay::new(input.start, input.ledger_table)?;
    let mut notes: Vec<String> = missing
        .iter()
        .map(|what| format!("the replay could not recreate {what}"))
        .collect();
    let rows = |table: &str| -> Option<u64> {
        let counts = input.counts?;
        Some(
            counts
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(table))
                .map_or(0, |(_, n)| *n),
        )
    };
    let kinds: Vec<Vec<sql::Kind>> = input
        .migrations
        .iter()
        .map(|m| m.statements.iter().map(|s| sql::classify(&s.sql)).collect())
        .collect();
    let scopes: Vec<scope::Scope> = input
        .migrations
        .iter()
        .zip(&kinds)
        .map(|(m, k)| scope::of(m, k))
        .collect();
    let mut drafts = Vec::new();
    let mut directives = Vec::new();
    let mut replaying = true;
    // The tables the next migration compares, read with the previous migration's result
    // (the replay's state between the two is the same): one read per migration.
    let mut carried: Option<Schema> = None;
    let mut progress = crate::progress::stage(
        "lint",
        Some(input.migrations.len() as u64),
        crate::progress::Unit::Migrations,
    );
    for (mi, m) in input.migrations.iter().enumerate() {
        progress.set(mi as u64);
        let kinds = &kinds[mi];
        let mut out = Drafts {
            migration: mi,
            out: &mut drafts,
        };
        let found = suppress::directives(m);
        suppress::check_directives(&found, &mut out);
        directives.push(found);
        rules::statement_rules(m, kinds, &rows, input, &mut out);
        if !replaying {
            continue;
        }
        let scopes = Scopes {
            this: &scopes[mi],
            next: scopes.get(mi + 1),
        };
        let step = Step {
            m,
            kinds,
            rows: &rows,
            input,
        };
        replaying = replay_migration(&replay, &step, scopes, &mut carried, &mut out, &mut notes)?;
    }
    Ok(finish(input, drafts, &directives, notes))
}

/// One migration being replayed, and what its rules read.
struct Step<'a> {
    m: &'a Migration,
    kinds: &'a [sql::Kind],
    rows: &'a rules::Rows<'a>,
    input: &'a LintInput<'a>,
}

/// The tables this migration may change, and those the next one may.
#[derive(Clone, Copy)]
struct Scopes<'a> {
    this: &'a scope::Scope,
    next: Option<&'a scope::Scope>,
}

/// A statement the sandbox refuses, found by replaying migrations before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub migration: String,
    pub path: String,
    pub line: usize,
    pub statement: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} — {}",
            self.path, self.line, self.statement, self.reason
        )
    }
}

/// The statements of `migrations` that the sandbox refuses, replayed in order on `start`
/// (cheap: schema and whatever rows the migrations insert themselves, in memory). The
/// gate runs this before the preview apply, so a refused statement never runs anywhere.
/// Stops at the first statement that fails for another reason (later ones may need it).
pub fn refusals(
    migrations: &[Migration],
    start: &Schema,
    ledger_table: &str,
) -> Result<Vec<Refusal>, LintError> {
    let (replay, _) = replay::Replay::new(start, ledger_table)?;
    let mut out = Vec::new();
    for m in migrations {
        for st in &m.statements {
            if matches!(sql::classify(&st.sql), sql::Kind::Transaction(_)) {
                continue;
            }
            match replay.execute(&st.sql) {
                Ok(()) => {}
                Err(e) => match e.refused {
                    Some(reason) => out.push(Refusal {
                        migration: m.name.clone(),
                        path: m.path.clone(),
                        line: st.line,
                        statement: sql::one_line(&st.sql, 120),
                        reason,
                    }),
                    None => return Ok(out),
                },
            }
        }
    }
    Ok(out)
}

/// Replays one migration statement by statement and applies the rules that need the replay
/// (cascades at each DROP TABLE, the schema diff of the tables it may change at the end).
/// Returns whether the replay could apply all of it, i.e. whether later migrations can still
/// be diffed. `carried` holds the tables this migration compares as the previous one left
/// them, and receives those the next one compares.
fn replay_migration(
    replay: &replay::Replay,
    step: &Step<'_>,
    scopes: Scopes<'_>,
    carried: &mut Option<Schema>,
    out: &mut Drafts<'_>,
    notes: &mut Vec<String>,
) -> Result<bool, LintError> {
    let Step {
        m,
        kinds,
        rows,
        input,
    } = *step;
    let before = match carried.take() {
        Some(s) => s,
        None => replay.tables(scopes.this)?,
    };
    for (si, st) in m.statements.iter().enumerate() {
        if let sql::Kind::DropTable(table) = &kinds[si] {
            let children = replay.dependent_children(table);
            rules::cascade(table, si, &children, rows, out);
        }
        if matches!(kinds[si], sql::Kind::Transaction(_)) {
            continue;
        }
        let dq = replay.dq_strings(&st.sql);
        let Err(e) = replay.execute(&st.sql) else {
            if !dq.is_empty() {
                out.push(catalogue::DQS, Some(si), dqs_message(&dq));
            }
            continue;
        };
        if let Some(reason) = e.refused {
            // Refused statements do nothing; the rest of the migration still replays.
            out.push(catalogue::REFUSED, Some(si), reason);
            continue;
        }
        if input.report_apply_failures {
            out.push(
                "lint.apply-failed",
                Some(si),
                format!(
                    "does not apply after the migrations before it: {}; schema rules skipped from here on",
                    e.message
                ),
            );
        } else {
            notes.push(format!(
                "schema rules stopped at {}:{}: the replay refused it: {}",
                m.path, st.line, e.message
            ));
        }
        return Ok(false);
    }
    let read = match scopes.next {
        Some(next) => scopes.this.union(next),
        None => scopes.this.clone(),
    };
    let both = replay.tables(&read)?;
    let after = scopes.this.restrict(&both);
    *carried = scopes.next.map(|next| next.restrict(&both));
    destructive::schema_rules(kinds, &before, &after, rows, out);
    Ok(true)
}

/// The `lint.dqs` message for the double-quoted names SQLite read as strings.
fn dqs_message(names: &[String]) -> String {
    let quoted = |f: fn(&str) -> String| names.iter().map(|n| f(n)).collect::<Vec<_>>().join(", ");
    let dq = quoted(|n| format!("\"{n}\""));
    let sq = quoted(|n| format!("'{}'", n.replace('\'', "''")));
    if names.len() == 1 {
        format!(
            "{dq} is not a column here, so SQLite reads it as the string {sq} (no error: every row gets that text)"
        )
    } else {
        format!(
            "{dq} are not columns here, so SQLite reads them as the strings {sq} (no error: every row gets that text)"
        )
    }
}

/// Applies severity overrides and suppressions, orders and counts.
fn finish(
    input: &LintInput<'_>,
    drafts: Vec<Draft>,
    directives: &[Vec<Vec<suppress::Directive>>],
    notes: Vec<String>,
) -> LintReport {
    let mut keyed = Vec::new();
    for d in drafts {
        let refused = d.rule.id == catalogue::REFUSED;
        let severity = if refused {
            Some(Severity::Fail)
        } else {
            catalogue::effective_severity(&d.rule, &input.gate.severity)
        };
        let Some(severity) = severity else {
            continue;
        };
        let m = &input.migrations[d.migration];
        let st = d.statement.and_then(|i| m.statements.get(i));
        let allowed = d
            .statement
            .and_then(|i| directives[d.migration].get(i))
            .and_then(|list| suppress::matching(list, &d.rule))
            .filter(|_| !refused);
        let order = RULES.iter().position(|r| r.id == d.rule.id);
        let finding = Finding {
            id: d.rule.id.to_string(),
            severity,
            check: d.rule.check.to_string(),
            migration: m.name.clone(),
            path: m.path.clone(),
            line: st.map_or(1, |s| s.line),
            statement: st.map_or_else(String::new, |s| sql::one_line(&s.sql, 120)),
            message: d.message,
            hint: d.rule.hint.to_string(),
            suppressed: allowed.is_some(),
            suppression_reason: allowed,
        };
        keyed.push(((d.migration, finding.line, order), finding));
    }
    keyed.sort_by_key(|a| a.0);
    let findings: Vec<Finding> = keyed.into_iter().map(|(_, f)| f).collect();
    let count = |sev: Severity| {
        findings
            .iter()
            .filter(|f| !f.suppressed && f.severity == sev)
            .count()
    };
    LintReport {
        fail: count(Severity::Fail),
        warn: count(Severity::Warn),
        suppressed: findings.iter().filter(|f| f.suppressed).count(),
        migrations: input.migrations.len(),
        statements: input.migrations.iter().map(|m| m.statements.len()).sum(),
        findings,
        notes,
    }
}

#[cfg(test)]
mod tests;
