//! `fk.check` and `data.loss`: what the migrations did to the data on the preview.
use serde_json::json;

use super::{Check, CheckOutcome, GateContext, Phase, thousands};
use crate::schema::{Change, ObjectKind};

pub struct FkCheck;

impl Check for FkCheck {
    fn id(&self) -> &'static str {
        "fk.check"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        let violations = match &ctx.apply {
            None => return CheckOutcome::pass("no pending migrations"),
            Some(Err(f)) if !f.fk_violations.is_empty() => f.fk_violations.clone(),
            Some(Err(_)) => return CheckOutcome::skip("migrations did not apply"),
            // The apply ran PRAGMA foreign_key_check inside its transaction and would have
            // refused to commit on any violation: a successful apply is a clean check.
            Some(Ok(_)) => Vec::new(),
        };
        if violations.is_empty() {
            if let Some(f) = &ctx.production_figures {
                return CheckOutcome::pass(format!(
                    "schema-only preview: PRAGMA foreign_key_check is clean, but the preview holds no rows to check ({}); promotion's foreign-key guard checks production's rows",
                    f.rows_summary()
                ));
            }
            return CheckOutcome::pass("PRAGMA foreign_key_check is clean after migrations");
        }
        let mut by_table: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
        for v in &violations {
            *by_table
                .entry((v.table.as_str(), v.parent.as_str()))
                .or_default() += 1;
        }
        let summary: Vec<String> = by_table
            .iter()
            .map(|((t, p), n)| format!("{n} row(s) of {t} reference missing {p}"))
            .collect();
        // Where the violations came from, when the apply could place them (the statement
        // after which they appeared and stayed, and a sample of the rows).
        let left_by = match &ctx.apply {
            Some(Err(f)) => match (&f.path, f.line) {
                (Some(p), Some(l)) => format!(
                    "; left by {p}:{l}{}{}",
                    f.statement.as_deref().map_or(String::new(), |s| format!(
                        " ({})",
                        crate::backend::one_line(s, 80)
                    )),
                    f.error
                        .split_once("; violating rows: ")
                        .map_or(String::new(), |(_, rows)| format!("; rows: {rows}"))
                ),
                _ => String::new(),
            },
            _ => String::new(),
        };
        CheckOutcome::fail(format!(
            "foreign key violations: {}{left_by}",
            summary.join("; ")
        ))
        .with_details(json!({ "violations": violations.iter().take(100).collect::<Vec<_>>() }))
    }
}

pub struct DataLoss;

impl Check for DataLoss {
    fn id(&self) -> &'static str {
        "data.loss"
    }
    fn phase(&self) -> Phase {
        Phase::AfterApply
    }
    fn run(&self, ctx: &mut GateContext<'_>) -> CheckOutcome {
        if let Some(f) = &ctx.production_figures
            && ctx.apply.is_some()
        {
            return CheckOutcome::skip(format!(
                "schema-only preview: the preview holds no rows, so rows lost by the migrations cannot be measured ({}); set preview_seed = \"full\" to check",
                f.rows_summary()
            ));
        }
        let (Some(before), Some(after)) = (&ctx.counts_before, &ctx.counts_after) else {
            return if ctx.apply.is_none() {
                CheckOutcome::pass("no pending migrations")
            } else {
                CheckOutcome::skip("migrations did not apply, nothing to compare")
            };
        };
        let diff = ctx.schema_diff();
        let renamed = |name: &str| -> Option<String> {
            diff.as_ref()?.changes.iter().find_map(|c| match c {
                Change::Renamed {
                    kind: ObjectKind::Table,
                    from,
                    to,
                } if from == name => Some(to.clone()),
                _ => None,
            })
        };
        let allowed = |table: &str| -> Option<String> {
            ctx.pending
                .iter()
                .find(|m| {
                    m.allow_data_loss
                        .iter()
                        .any(|t| t == "*" || t.eq_ignore_ascii_case(table))
                })
                .map(|m| m.name.clone())
        };
        let mut losses = Vec::new();
        let mut declared = Vec::new();
        for (table, &n_before) in before {
            let now_name = if after.contains_key(table) {
                Some(table.clone())
            } else {
                renamed(table)
            };
            let n_after = now_name
                .as_ref()
                .and_then(|t| after.get(t))
                .copied()
                .unwrap_or(0);
            if n_after >= n_before {
                continue;
            }
            let lost = n_before - n_after;
            let entry = json!({
                "table": table,
                "before": n_before,
                "after": n_after,
                "lost": lost,
                "dropped": now_name.is_none(),
            });
            let text = format!(
                "{table} {} {} of {} rows",
                if now_name.is_none() {
                    "dropped with"
                } else {
                    "lost"
                },
                thousands(lost),
                thousands(n_before)
            );
            match allowed(table) {
                Some(by) => declared.push((text, by, entry)),
                None => losses.push((text, cascade_hint(ctx, table), entry)),
            }
        }
        if !losses.is_empty() {
            let mut reasons: Vec<String> = losses.iter().map(|(t, _, _)| t.clone()).collect();
            let mut hints: Vec<&String> =
                losses.iter().filter_map(|(_, h, _)| h.as_ref()).collect();
            hints.dedup();
            reasons.extend(hints.into_iter().cloned());
            let first_table = losses[0].2["table"].as_str().unwrap_or("TABLE").to_string();
            return CheckOutcome::fail(format!(
                "{}; if intended, add `-- d1ops:allow-data-loss {first_table}` to the migration",
                reasons.join("; ")
            ))
            .with_details(json!({
                "losses": losses.iter().map(|l| l.2.clone()).collect::<Vec<_>>(),
                "declared": declared.iter().map(|d| d.2.clone()).collect::<Vec<_>>(),
            }));
        }
        if !declared.is_empty() {
            let reasons: Vec<String> = declared
                .iter()
                .map(|(t, by, _)| format!("{t} (declared by {by})"))
                .collect();
            return CheckOutcome::warn(reasons.join("; ")).with_details(json!({
                "declared": declared.iter().map(|d| d.2.clone()).collect::<Vec<_>>(),
            }));
        }
        CheckOutcome::pass(format!(
            "no table lost rows ({} tables compared before/after)",
            before.len()
        ))
    }
}

/// Explains a loss caused by `ON DELETE CASCADE` from a parent that was rebuilt or dropped.
fn cascade_hint(ctx: &GateContext<'_>, table: &str) -> Option<String> {
    let before = ctx.schema_before.as_ref()?;
    let cascading: Vec<&str> = before
        .tables
        .get(table)?
        .foreign_keys
        .iter()
        .filter(|fk| fk.on_delete.eq_ignore_ascii_case("CASCADE"))
        .map(|fk| fk.table.as_str())
        .collect();
    // A pending DROP TABLE of a cascading parent (the create-copy-drop-rename rebuild).
    for m in &ctx.pending {
        for st in &m.statements {
            let words: Vec<String> = st
                .sql
                .split_whitespace()
                .take(5)
                .map(|w| {
                    w.trim_matches(['"', '`', '[', ']', ';'])
                        .to_ascii_lowercase()
                })
                .collect();
            let target = match words.as_slice() {
                [d, t, i, e, name, ..]
                    if d == "drop" && t == "table" && i == "if" && e == "exists" =>
                {
                    name
                }
                [d, t, name, ..] if d == "drop" && t == "table" => name,
                _ => continue,
            };
            if let Some(parent) = cascading.iter().find(|p| p.eq_ignore_ascii_case(target)) {
                return Some(format!(
                    "cause: ON DELETE CASCADE from DROP TABLE {parent} at {}:{} — DROP TABLE deletes the parent's rows first and the cascade follows even with defer_foreign_keys; use ALTER TABLE ... ADD/DROP/RENAME COLUMN instead of a rebuild, or copy the child rows out and back",
                    m.path, st.line
                ));
            }
        }
    }
    let diff = ctx.schema_diff()?;
    let t = before.tables.get(table)?;
    t.foreign_keys
        .iter()
        .filter(|fk| fk.on_delete.eq_ignore_ascii_case("CASCADE"))
        .find_map(|fk| {
            diff.changes.iter().find_map(|c| match c {
                Change::TableChanged { name, rebuilt: true, .. } if *name == fk.table => Some(format!(
                    "cause: ON DELETE CASCADE from rebuilding {}; DROP TABLE deletes the parent's rows first and the cascade follows even with defer_foreign_keys; use ALTER TABLE ... DROP COLUMN / RENAME COLUMN instead of a rebuild, or copy the child rows out and back",
                    fk.table
                )),
                Change::Removed { kind: ObjectKind::Table, name, .. } if *name == fk.table => {
                    Some(format!("cause: ON DELETE CASCADE from dropping {}", fk.table))
                }
                _ => None,
            })
        })
}
