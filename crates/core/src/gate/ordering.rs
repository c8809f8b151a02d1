//! `mig.order`, `mig.drift`, `mig.apply`: the migrations themselves — sequence, pinned
//! content, and whether they applied on the preview.
use serde_json::json;

use super::{Check, CheckOutcome, GateContext, Phase};

pub struct MigOrder;

impl Check for MigOrder {
    fn id(&self) -> &'static str {
        "mig.order"
    }
    fn phase(&self) -> Phase {
        Phase::BeforeApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let mut problems = Vec::new();
        for pair in ctx.migrations.windows(2) {
            if let (Some(a), Some(b)) = (pair[0].number, pair[1].number)
                && b <= a
            {
                problems.push(format!(
                    "{} is numbered {b}, not above {} ({a})",
                    pair[1].name, pair[0].name
                ));
            }
        }
        let head = ctx
            .migrations
            .iter()
            .filter(|m| ctx.production_ledger.iter().any(|r| r.name == m.name))
            .filter_map(|m| m.number.map(|n| (n, m.name.clone())))
            .max();
        if let Some((head_n, head_name)) = &head {
            for m in &ctx.pending {
                if let Some(n) = m.number
                    && n <= *head_n
                {
                    problems.push(format!(
                        "{} is new but numbered {n}, at or below production's head {head_name}; renumber it after {head_n}",
                        m.name
                    ));
                }
            }
        }
        let missing: Vec<&str> = ctx
            .production_ledger
            .iter()
            .filter(|r| !ctx.migrations.iter().any(|m| m.name == r.name))
            .map(|r| r.name.as_str())
            .collect();
        if !problems.is_empty() {
            return CheckOutcome::fail(problems.join("; "))
                .with_details(json!({ "problems": problems }));
        }
        let summary = match &head {
            Some((_, name)) => format!(
                "{} migration(s) in order; {} pending after production's head {name}",
                ctx.migrations.len(),
                ctx.pending.len()
            ),
            None => format!(
                "{} migration(s) in order; {} pending (production has none applied yet)",
                ctx.migrations.len(),
                ctx.pending.len()
            ),
        };
        if !missing.is_empty() {
            return CheckOutcome::warn(format!(
                "{summary}; production has applied {} that no file carries any more: {}",
                missing.len(),
                missing.join(", ")
            ))
            .with_details(json!({ "applied_without_file": missing }));
        }
        CheckOutcome::pass(summary)
    }
}

pub struct MigDrift;

impl Check for MigDrift {
    fn id(&self) -> &'static str {
        "mig.drift"
    }
    fn phase(&self) -> Phase {
        Phase::BeforeApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        // Production's ledger must agree with d1ops' record of what it applied: a row it never
        // applied or a recorded row gone from the ledger would make the gate judge the wrong
        // pending set.
        let record = super::ledger_diff::record_order(ctx.applied_checksums.values());
        let diff = super::ledger_diff::LedgerDiff::compare(ctx.production_ledger, &record);
        if let Some(warning) = diff.warning(&ctx.config.migrations_table) {
            return CheckOutcome::fail(warning).with_details(json!({ "ledger": diff }));
        }
        let mut drifted = Vec::new();
        let mut unpinned = Vec::new();
        for row in ctx.production_ledger {
            let Some(file) = ctx.migrations.iter().find(|m| m.name == row.name) else {
                continue;
            };
            match ctx.applied_checksums.get(&row.name) {
                Some(rec) if rec.sha256_normalized != file.sha256_normalized => {
                    drifted.push(json!({
                        "migration": row.name,
                        "path": file.path,
                        "applied_sha256": rec.sha256_normalized,
                        "file_sha256": file.sha256_normalized,
                    }));
                }
                Some(_) => {}
                None => unpinned.push(row.name.clone()),
            }
        }
        if !drifted.is_empty() {
            let names: Vec<String> = drifted
                .iter()
                .map(|d| {
                    format!(
                        "{} (sha256 {}… when applied, {}… now)",
                        d["path"].as_str().unwrap_or(""),
                        &d["applied_sha256"]
                            .as_str()
                            .unwrap_or("")
                            .get(..12)
                            .unwrap_or(""),
                        &d["file_sha256"]
                            .as_str()
                            .unwrap_or("")
                            .get(..12)
                            .unwrap_or("")
                    )
                })
                .collect();
            return CheckOutcome::fail(format!(
                "edited after it was applied to production: {}; restore the file and put the change in a new migration",
                names.join(", ")
            ))
            .with_details(json!({ "drifted": drifted }));
        }
        if !unpinned.is_empty() {
            return CheckOutcome::warn(format!(
                "{} applied migration(s) have no recorded checksum (applied outside d1ops): {}; they are pinned at the next promotion",
                unpinned.len(),
                unpinned.join(", ")
            ))
            .with_details(json!({ "unpinned": unpinned }));
        }
        if ctx.production_ledger.is_empty() {
            return CheckOutcome::pass("production has no applied migrations to compare");
        }
        CheckOutcome::pass(format!(
            "{} applied migration(s) match their recorded sha256",
            ctx.production_ledger.len()
        ))
    }
}

pub struct MigApply;

impl Check for MigApply {
    fn id(&self) -> &'static str {
        "mig.apply"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        match &ctx.apply {
            None if ctx.pending.is_empty() => {
                CheckOutcome::pass("no pending migrations (code-only release)")
            }
            None => CheckOutcome::skip("no preview database to apply on"),
            Some(Ok(report)) => CheckOutcome::pass(format!(
                "applied {} migration(s), {} statement(s) {} in {:.1} ms",
                report.migrations,
                report.statements,
                if report.transactions <= 1 {
                    "in one transaction".to_string()
                } else {
                    format!(
                        "in {} D1 batches after a Time Travel bookmark (restored on any failure)",
                        report.transactions
                    )
                },
                report.duration_ms
            ))
            .with_details(json!(report)),
            Some(Err(failure)) if !failure.fk_violations.is_empty() => CheckOutcome::warn(
                "every statement ran, then the commit was refused by foreign_key_check and rolled back (see fk.check)",
            ),
            Some(Err(failure)) => {
                CheckOutcome::fail(failure.to_string()).with_details(json!(failure))
            }
        }
    }
}
