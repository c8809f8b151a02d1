//! `d1ops ledger` (production's migrations ledger beside d1ops' record, and their
//! differences) and `d1ops ledger repair` (reconciles them after a typed confirmation), plus
//! the one warning line commands that read production print while the two disagree.
use anyhow::bail;

use super::args::LedgerCommand;
use super::lifecycle::ask;
use super::output::{BOLD, GREEN, RED, YELLOW, paint, safe, table};
use super::{Cli, Command, exit, print_json};
use crate::engine::{Engine, LedgerReport, RepairDecisions, RepairPlan};

/// The word `ledger repair` asks the operator to type.
const CONFIRM_WORD: &str = "repair";

/// The repair policy, as `ledger` and `ledger repair` explain it.
const POLICY: &str = "policy: d1ops' record is the truth for what it applied — recorded rows missing from the ledger are re-inserted in order; rows d1ops never applied are removed when no migration file of that name is in the workspace, and need --adopt NAME (keep, record the file's checksum) or --forget NAME (remove; the next release applies the file) when one is; the repair is proven on a throwaway copy of production first, then applied in one transaction under the production lock and audited";

/// Prints one warning line on stderr when production's ledger and d1ops' record disagree,
/// for the commands that read production. Best effort: a ledger that cannot be read here is
/// left to the command itself.
pub(super) fn warn_on_drift(cmd: &Command, engine: &Engine) {
    let reads_production = matches!(
        cmd,
        Command::Deploy { .. }
            | Command::Promote { .. }
            | Command::Approve { .. }
            | Command::Releases
            | Command::Release { .. }
            | Command::Envs
            | Command::Diff { .. }
            | Command::Rollback { .. }
            | Command::Restore { .. }
            | Command::Snapshots
    );
    if !reads_production {
        return;
    }
    match engine.ledger_warning() {
        Ok(Some(warning)) => eprintln!("d1ops: warning: {}", safe(&warning)),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "production's ledger could not be compared with the record")
        }
    }
}

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    let Command::Ledger { command } = cmd else {
        bail!("internal error: {cmd:?} reached the ledger handler");
    };
    match command {
        None => show(cli, engine),
        Some(LedgerCommand::Repair { adopt, forget, yes }) => repair(
            cli,
            engine,
            RepairDecisions {
                adopt: adopt.clone(),
                forget: forget.clone(),
            },
            *yes,
        ),
    }
}

fn show(cli: &Cli, engine: &Engine) -> anyhow::Result<i32> {
    let report = engine.ledger_report()?;
    if cli.json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    print_report(&report);
    Ok(exit::OK)
}

fn print_report(report: &LedgerReport) {
    println!(
        "{} {} of production ({}) beside d1ops' record",
        paint("ledger", BOLD),
        safe(&report.table),
        safe(report.database.as_deref().unwrap_or("no database yet"))
    );
    let mut names: Vec<&str> = report.ledger.iter().map(|r| r.name.as_str()).collect();
    for r in &report.record {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    let diff = &report.differences;
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let row = report.ledger.iter().find(|r| r.name == *name);
            let rec = report.record.iter().find(|r| r.name == *name);
            let status = if diff.unrecorded.iter().any(|n| n == name) {
                paint("never applied by d1ops", RED)
            } else if diff.missing.iter().any(|n| n == name) {
                paint("missing from the ledger", RED)
            } else if diff.out_of_order.iter().any(|n| n == name) {
                paint("out of order", YELLOW)
            } else if rec.is_none() {
                "not yet recorded".to_string()
            } else {
                paint("ok", GREEN)
            };
            vec![
                safe(name),
                row.map_or("—".into(), |r| {
                    format!("#{} {}", r.id, safe(&r.applied_at))
                }),
                rec.map_or("—".into(), |r| {
                    format!(
                        "{} {}",
                        safe(r.release_id.as_deref().unwrap_or("pinned")),
                        safe(&r.applied_at)
                    )
                }),
                status,
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("both are empty: nothing applied to production yet");
    } else {
        print!(
            "{}",
            table(&["MIGRATION", "LEDGER", "D1OPS RECORD", "STATUS"], &rows)
        );
    }
    match &report.warning {
        None if diff.untracked => println!(
            "d1ops has recorded nothing for production yet; the next promotion pins what its ledger holds"
        ),
        None => println!("{}: the ledger and d1ops' record agree", paint("ok", GREEN)),
        Some(w) => {
            println!("{}: {}", paint("disagree", RED), safe(w));
            print_plan(&report.repair, "`d1ops ledger repair` would:");
            println!("{POLICY}");
        }
    }
}

fn print_plan(plan: &RepairPlan, heading: &str) {
    let list = |v: &[String]| safe(&v.join(", "));
    println!("{heading}");
    if !plan.reinsert.is_empty() {
        println!(
            "  re-insert {} (recorded by d1ops as applied)",
            list(&plan.reinsert)
        );
    }
    if !plan.remove.is_empty() {
        println!(
            "  remove {} (never applied by d1ops, no such file in the workspace)",
            list(&plan.remove)
        );
    }
    if !plan.forget.is_empty() {
        println!("  remove {} (--forget)", list(&plan.forget));
    }
    if !plan.adopt.is_empty() {
        println!(
            "  keep {} and record its file's checksum (--adopt)",
            list(&plan.adopt)
        );
    }
    if !plan.reorder.is_empty() {
        println!(
            "  put {} back in the order d1ops applied them",
            list(&plan.reorder)
        );
    }
    if !plan.undecided.is_empty() {
        println!(
            "  wait for your decision on {}: never applied by d1ops but its file is in the workspace; pass --adopt NAME or --forget NAME",
            list(&plan.undecided)
        );
    }
    if !plan.ledger_remove.is_empty() || !plan.ledger_add.is_empty() {
        println!(
            "  ledger edit: delete [{}], then insert [{}]",
            list(&plan.ledger_remove),
            list(&plan.ledger_add)
        );
    }
}

fn repair(
    cli: &Cli,
    engine: &mut Engine,
    decisions: RepairDecisions,
    yes: bool,
) -> anyhow::Result<i32> {
    if !yes {
        // Show what would happen and ask, before the lock is taken.
        let report = engine.ledger_report()?;
        if report.agrees {
            println!("production's ledger and d1ops' record agree; nothing to repair");
            return Ok(exit::OK);
        }
        if !cli.json {
            print_report(&report);
        }
        if !decisions.adopt.is_empty() || !decisions.forget.is_empty() {
            println!(
                "your decisions: adopt [{}], forget [{}]",
                safe(&decisions.adopt.join(", ")),
                safe(&decisions.forget.join(", "))
            );
        }
        match ask(&format!(
            "type \"{CONFIRM_WORD}\" to repair production's ledger: "
        )) {
            Some(a) if a == CONFIRM_WORD => {}
            Some(_) => bail!("confirmation did not match; production's ledger was left as it is"),
            None => bail!(
                "ledger repair needs --yes when not run from a terminal; production's ledger was left as it is"
            ),
        }
    }
    let out = engine.repair_ledger(&decisions)?;
    if cli.json {
        print_json(&out)?;
        return Ok(exit::OK);
    }
    if !out.repaired {
        println!("production's ledger and d1ops' record agree; nothing to repair");
        return Ok(exit::OK);
    }
    print_plan(&out.plan, "ledger repair:");
    println!(
        "{}: proven on a throwaway copy ({}, deleted), then applied to production in one transaction; the ledger now holds {}",
        paint("repaired", GREEN),
        safe(out.proven_on.as_deref().unwrap_or("?")),
        safe(&out.ledger.join(", "))
    );
    Ok(exit::OK)
}
