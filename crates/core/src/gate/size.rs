//! `limit.size`: the preview's size after migrations against the plan's per-database limit
//! (warn at 80 %, fail at 100 %), counting the room a table rebuild needs while both copies
//! of the table exist.
use serde_json::json;

use super::{Check, CheckOutcome, GateContext, Phase};
use crate::schema::{Change, ObjectKind};

pub struct LimitSize;

/// Share of the limit at which the check warns.
const WARN_AT: f64 = 0.8;

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

impl Check for LimitSize {
    fn id(&self) -> &'static str {
        "limit.size"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let Some(plan) = ctx.config.plan() else {
            return CheckOutcome::skip("no plan selected");
        };
        let Some(preview) = ctx.preview.clone() else {
            return CheckOutcome::pass("no pending migrations: size unchanged");
        };
        if !ctx.applied_ok() {
            return CheckOutcome::skip("migrations did not apply");
        }
        let after = match ctx.backend.size_bytes(&preview) {
            Ok(s) => s,
            Err(e) => return CheckOutcome::warn(format!("could not read the preview's size: {e}")),
        };
        // Tables that were dropped and created again under the same name needed room for
        // both copies during the migration.
        let rebuilt: Vec<(String, u64)> = ctx
            .schema_diff()
            .map(|d| {
                d.changes
                    .iter()
                    .filter_map(|c| match c {
                        Change::TableChanged {
                            name,
                            rebuilt: true,
                            ..
                        } => Some(name.clone()),
                        Change::Removed {
                            kind: ObjectKind::Table,
                            name,
                            ..
                        } => Some(name.clone()),
                        _ => None,
                    })
                    .filter_map(|t| ctx.table_bytes_before.get(&t).map(|b| (t, *b)))
                    .collect()
            })
            .unwrap_or_default();
        let mut before = ctx.size_before.unwrap_or(after);
        let mut after = after;
        // A schema-only preview is a few pages: production's size (D1's metadata) plus what
        // the migrations added to the preview is the size to judge.
        let schema_only = match ctx.production_figures.as_ref().map(|f| f.size_bytes) {
            Some(Some(production)) => {
                after = production + after.saturating_sub(before);
                before = production;
                "schema-only preview: production's size from D1 plus the migrations' growth on the preview: "
            }
            Some(None) => {
                return CheckOutcome::warn(format!(
                    "schema-only preview: production's size is unknown (D1 did not report it); the preview grew by {} with no rows in it",
                    mb(after.saturating_sub(before))
                ));
            }
            None => "",
        };
        let transient: u64 = rebuilt.iter().map(|(_, b)| *b).sum();
        let peak = after.max(before + transient);
        let limit = plan.database_size_bytes;
        let share = peak as f64 / limit as f64;
        let details = json!({
            "size_before": before, "size_after": after, "peak": peak, "limit": limit,
            "plan": ctx.config.plan, "rebuilt_tables": rebuilt,
        });
        let peak_note = if peak > after {
            format!(
                ", {} at peak while rebuilding {}",
                mb(peak),
                rebuilt
                    .iter()
                    .map(|r| r.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        let text = format!(
            "{schema_only}{} after migrations{peak_note}: {:.0}% of {}'s {} per database",
            mb(after),
            share * 100.0,
            ctx.config.plan,
            mb(limit)
        );
        let outcome = if share >= 1.0 {
            CheckOutcome::fail(format!(
                "{text}; the database would not fit — clean up data or move to a larger plan"
            ))
        } else if share >= WARN_AT {
            CheckOutcome::warn(text)
        } else {
            CheckOutcome::pass(text)
        };
        outcome.with_details(details)
    }
}
