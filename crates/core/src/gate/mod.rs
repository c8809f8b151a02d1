//! The gate: an ordered list of pluggable checks that decides `ready` or `blocked`.
//!
//! A check implements [`Check`] and reads a [`GateContext`]; the runner applies the release's
//! pending migrations to the preview between the `BeforeApply` and `AfterApply` phases, so
//! checks never mutate a database themselves. Severity overrides from `d1ops.toml` are applied
//! here. The gate never touches production and never writes state.
use std::collections::BTreeMap;
use std::time::Instant;

use crate::backend::{ApplyFailure, ApplyReport, Backend, BackendError, DatabaseRef, LedgerRow};
use crate::model::{CheckResult, CheckStatus, GateReport, Verdict};
use crate::schema::{Schema, SchemaDiff};
use crate::store::AppliedChecksum;
use crate::workspace::config::ProbeConfig;
use crate::workspace::{Config, Migration};

mod integrity;
pub mod ledger_diff;
pub mod lint;
mod ordering;
pub mod probes;
mod size;

/// When a check runs relative to the preview apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sees the preview as cloned from production (baseline).
    BeforeApply,
    /// Sees the preview after the pending migrations (and the apply outcome).
    AfterApply,
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    pub status: CheckStatus,
    pub reason: String,
    pub details: serde_json::Value,
}

impl CheckOutcome {
    fn new(status: CheckStatus, reason: impl Into<String>) -> Self {
        CheckOutcome {
            status,
            reason: reason.into(),
            details: serde_json::Value::Null,
        }
    }
    pub fn pass(reason: impl Into<String>) -> Self {
        Self::new(CheckStatus::Pass, reason)
    }
    pub fn warn(reason: impl Into<String>) -> Self {
        Self::new(CheckStatus::Warn, reason)
    }
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::new(CheckStatus::Fail, reason)
    }
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::new(CheckStatus::Skip, reason)
    }
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// One gate check. Ids are stable (see DESIGN.md's gate catalogue).
pub trait Check: Send + Sync {
    fn id(&self) -> &'static str;
    fn phase(&self) -> Phase;
    /// Called before the preview apply, for checks that need a baseline of the preview as
    /// cloned from production (probes, plans). Not reported; only runs when there is a
    /// preview with pending migrations.
    fn baseline(&self, _ctx: &mut GateContext<'_>) {}
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome;
}

/// Everything a check may look at.
pub struct GateContext<'a> {
    pub config: &'a Config,
    pub backend: &'a dyn Backend,
    /// The preview database; `None` for a code-only release.
    pub preview: Option<DatabaseRef>,
    /// Every migration the release carries, in order.
    pub migrations: &'a [Migration],
    /// The subset not yet applied to production, in order.
    pub pending: Vec<Migration>,
    pub production_ledger: &'a [LedgerRow],
    pub applied_checksums: &'a BTreeMap<String, AppliedChecksum>,
    /// The probes this release carries (from `d1ops.toml` at deploy time).
    pub probes: Vec<ProbeConfig>,
    /// The live release and its probes: the code still running during rollout.
    pub live_probes: Option<(String, Vec<ProbeConfig>)>,
    /// Filled by the runner around the preview apply.
    pub apply: Option<Result<ApplyReport, ApplyFailure>>,
    pub counts_before: Option<BTreeMap<String, u64>>,
    pub counts_after: Option<BTreeMap<String, u64>>,
    pub schema_before: Option<Schema>,
    pub schema_after: Option<Schema>,
    /// The preview's size before the apply.
    pub size_before: Option<u64>,
    /// Bytes per table before the apply, measured only when a pending migration drops a
    /// table (a rebuild needs room for both copies at once).
    pub table_bytes_before: BTreeMap<String, u64>,
    /// Free-form data a BeforeApply check leaves for its AfterApply partner.
    pub scratch: BTreeMap<String, serde_json::Value>,
    /// Probe measurements before and after the apply, shared by the probe checks.
    pub probe_runs: probes::ProbeRuns,
    /// Production's own size and row counts when the preview was seeded schema only
    /// (`preview_seed = "schema"`): the data-dependent checks say "schema-only preview: …"
    /// and use these instead of the empty preview's. `None`: the preview holds the rows.
    pub production_figures: Option<crate::backend::ProductionFigures>,
    /// Set when the machine, not the migrations, stopped the preview apply (the preview
    /// locked by another process, a read-only path, a full disk): the gate has no verdict on
    /// the migrations, and the deploy reports the obstacle instead of blaming one.
    pub obstacle: Option<BackendError>,
}

impl<'a> GateContext<'a> {
    pub fn new(
        config: &'a Config,
        backend: &'a dyn Backend,
        preview: Option<DatabaseRef>,
        migrations: &'a [Migration],
        production_ledger: &'a [LedgerRow],
        applied_checksums: &'a BTreeMap<String, AppliedChecksum>,
    ) -> Self {
        let applied: std::collections::BTreeSet<&str> =
            production_ledger.iter().map(|r| r.name.as_str()).collect();
        let pending = migrations
            .iter()
            .filter(|m| !applied.contains(m.name.as_str()))
            .cloned()
            .collect();
        GateContext {
            config,
            backend,
            preview,
            migrations,
            pending,
            production_ledger,
            applied_checksums,
            probes: config.probes.clone(),
            live_probes: None,
            apply: None,
            counts_before: None,
            production_figures: None,
            counts_after: None,
            schema_before: None,
            schema_after: None,
            size_before: None,
            table_bytes_before: BTreeMap::new(),
            scratch: BTreeMap::new(),
            probe_runs: probes::ProbeRuns::default(),
            obstacle: None,
        }
    }

    /// Whether the preview apply ran and succeeded.
    pub fn applied_ok(&self) -> bool {
        matches!(self.apply, Some(Ok(_)))
    }

    /// The schema diff preview-before → preview-after, when both are known.
    pub fn schema_diff(&self) -> Option<SchemaDiff> {
        Some(crate::schema::diff(
            self.schema_before.as_ref()?,
            self.schema_after.as_ref()?,
        ))
    }
}

/// The checks this build ships, in catalogue order (DESIGN.md's gate table).
pub fn default_checks() -> Vec<Box<dyn Check>> {
    let mut checks: Vec<Box<dyn Check>> =
        vec![Box::new(ordering::MigOrder), Box::new(ordering::MigDrift)];
    checks.extend(lint::checks());
    checks.push(Box::new(ordering::MigApply));
    checks.push(Box::new(integrity::DataLoss));
    checks.push(Box::new(integrity::FkCheck));
    checks.extend(probes::checks());
    checks.push(Box::new(size::LimitSize));
    checks
}

/// Runs `checks` against `ctx`, applying the pending migrations to the preview between the
/// two phases. Infrastructure errors while preparing the apply become a failed `mig.apply`.
pub fn run(checks: &[Box<dyn Check>], ctx: &mut GateContext<'_>) -> GateReport {
    let started = Instant::now();
    let mut results = Vec::with_capacity(checks.len());
    for check in checks.iter().filter(|c| c.phase() == Phase::BeforeApply) {
        results.push(run_one(check.as_ref(), ctx));
    }
    if ctx.preview.is_some() && !ctx.pending.is_empty() {
        for check in checks {
            let started = Instant::now();
            check.baseline(ctx);
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            ctx.scratch
                .insert(format!("baseline_ms.{}", check.id()), serde_json::json!(ms));
        }
    }
    let apply_started = Instant::now();
    apply_on_preview(ctx);
    let apply_ms = apply_started.elapsed().as_secs_f64() * 1000.0;
    ctx.scratch
        .insert("apply_total_ms".into(), serde_json::json!(apply_ms));
    for check in checks.iter().filter(|c| c.phase() == Phase::AfterApply) {
        results.push(run_one(check.as_ref(), ctx));
    }
    // Keep the catalogue order whatever the phases were.
    let order: Vec<&str> = checks.iter().map(|c| c.id()).collect();
    results.sort_by_key(|r: &CheckResult| order.iter().position(|id| *id == r.id));
    let verdict = if results.iter().any(|r| r.status == CheckStatus::Fail) {
        Verdict::Blocked
    } else {
        Verdict::Ready
    };
    GateReport {
        verdict,
        checks: results,
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

fn run_one(check: &dyn Check, ctx: &mut GateContext<'_>) -> CheckResult {
    let started = Instant::now();
    let severity = ctx.config.gate.severity.get(check.id()).map(String::as_str);
    let mut outcome = if severity == Some("off") {
        CheckOutcome::skip("disabled in d1ops.toml (gate.severity)")
    } else {
        check.run(ctx)
    };
    if severity == Some("warn") && outcome.status == CheckStatus::Fail {
        outcome.status = CheckStatus::Warn;
        outcome.reason = format!("{} (downgraded to warn in d1ops.toml)", outcome.reason);
    }
    CheckResult {
        id: check.id().to_string(),
        status: outcome.status,
        reason: outcome.reason,
        details: outcome.details,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

fn apply_on_preview(ctx: &mut GateContext<'_>) {
    let Some(preview) = ctx.preview.clone() else {
        return;
    };
    if ctx.pending.is_empty() {
        return;
    }
    let ledger = ctx.config.migrations_table.clone();
    let infra = |stage: &str, e: &BackendError| ApplyFailure {
        migration: None,
        path: None,
        line: None,
        statement: None,
        error: format!("{stage}: {e}"),
        fk_violations: Vec::new(),
    };
    let before = ctx
        .backend
        .row_counts(&preview, &ledger)
        .and_then(|c| Ok((c, ctx.backend.schema(&preview, &ledger)?)));
    let (counts, schema) = match before {
        Ok(v) => v,
        Err(e) => {
            ctx.apply = Some(Err(infra("reading the preview before apply", &e)));
            if e.obstacle().is_some() {
                ctx.obstacle = Some(e);
            }
            return;
        }
    };
    ctx.counts_before = Some(counts);
    ctx.schema_before = Some(schema);
    ctx.size_before = ctx.backend.size_bytes(&preview).ok();
    if ctx
        .pending
        .iter()
        .any(|m| m.statements.iter().any(|s| drops_table(&s.sql)))
    {
        ctx.table_bytes_before = ctx.backend.table_sizes(&preview).unwrap_or_default();
    }
    if let Some(refused) = screen(ctx, &ledger) {
        ctx.apply = Some(Err(refused));
        return;
    }
    let outcome = ctx
        .backend
        .apply_migrations(&preview, &ctx.pending, &ledger);
    ctx.apply = Some(match outcome {
        Ok(report) => Ok(report),
        Err(BackendError::Apply(f)) => Err(*f),
        Err(e) => {
            let failure = infra("applying on the preview", &e);
            if e.obstacle().is_some() {
                // The environment's fault, not the migrations': no file or line is blamed.
                ctx.obstacle = Some(e);
            }
            Err(failure)
        }
    });
    if ctx.applied_ok() {
        match ctx
            .backend
            .row_counts(&preview, &ledger)
            .and_then(|c| Ok((c, ctx.backend.schema(&preview, &ledger)?)))
        {
            Ok((c, s)) => {
                ctx.counts_after = Some(c);
                ctx.schema_after = Some(s);
            }
            Err(e) => {
                ctx.apply = Some(Err(infra("reading the preview after apply", &e)));
                if e.obstacle().is_some() {
                    ctx.obstacle = Some(e);
                }
            }
        }
    }
}

/// Replays the pending migrations in memory under the sandbox before any of them runs on
/// the preview: a refused statement (ATTACH, VACUUM INTO, a dangerous pragma, a write to the
/// ledger…) means nothing is applied, `mig.apply` fails naming it and `lint.d1` lists each.
fn screen(ctx: &GateContext<'_>, ledger: &str) -> Option<ApplyFailure> {
    let start = ctx.schema_before.clone().unwrap_or_default();
    let failure = |error: String, first: Option<&lint::Refusal>| ApplyFailure {
        migration: first.map(|r| r.migration.clone()),
        path: first.map(|r| r.path.clone()),
        line: first.map(|r| r.line),
        statement: first.map(|r| r.statement.clone()),
        error,
        fk_violations: Vec::new(),
    };
    match lint::refusals(&ctx.pending, &start, ledger) {
        Ok(refused) => refused.first().map(|first| {
            failure(
                format!(
                    "not applied: {} statement(s) refused before anything ran (see lint.d1); first: {}",
                    refused.len(),
                    first.reason
                ),
                Some(first),
            )
        }),
        Err(e) => Some(failure(
            format!("not applied: the migrations could not be screened: {e}"),
            None,
        )),
    }
}

/// Whether a statement is `DROP TABLE ...` (the middle of a create-copy-drop-rename rebuild).
pub fn drops_table(sql: &str) -> bool {
    let mut words = sql.split_whitespace();
    matches!(
        (words.next(), words.next()),
        (Some(a), Some(b)) if a.eq_ignore_ascii_case("drop") && b.eq_ignore_ascii_case("table")
    )
}

/// Thousands separators, from the one text module (kept here for the gate's users).
pub use d1ops_sql::text::thousands;
