//! CLI handlers for recovery: `restore` (with its loss report and typed confirmation) and
//! `snapshots`.
use anyhow::bail;

use super::lifecycle::ask;
use super::output::{self, BOLD, CYAN, GREEN, RED, YELLOW, age, paint, safe, safe_opt};
use super::{Cli, Command, exit, print_json};
use crate::engine::{Engine, RestorePlan};
use d1ops_sql::text::thousands;

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    match cmd {
        Command::Restore {
            to_release,
            undo,
            yes,
        } => restore(cli, engine, to_release, undo, yes),
        Command::Rollback {
            id,
            yes,
            force,
            reason,
        } => rollback(cli, engine, id, yes, force, reason),
        Command::Snapshots => snapshots(cli, engine),
        other => anyhow::bail!("internal error: {other:?} reached the wrong handler"),
    }
}

/// `restore --to-release ID | --undo`: the plan and its loss report, the typed confirmation,
/// then the restore.
fn restore(
    cli: &Cli,
    engine: &mut Engine,
    to_release: &Option<String>,
    undo: &bool,
    yes: &bool,
) -> anyhow::Result<i32> {
    let plan = match (to_release, undo) {
        (_, true) => engine.undo_plan()?,
        (Some(id), false) => engine.restore_plan(id)?,
        (None, false) => bail!("give --to-release ID or --undo"),
    };
    if !cli.json || !*yes {
        print_plan(&plan);
    }
    if !*yes {
        let confirmed = |a: &str| match &plan.to_release {
            Some(id) => crate::model::confirms(id, a),
            None => a.eq_ignore_ascii_case("undo"),
        };
        let prompt = match &plan.to_release {
            Some(_) => "type the last 4 characters of the release id to restore: ".to_string(),
            None => "type undo to put back what the last restore replaced: ".to_string(),
        };
        match ask(&prompt) {
            Some(a) if confirmed(&a) => {}
            Some(_) => bail!("confirmation did not match; nothing was restored"),
            None => bail!("restore needs --yes when not run from a terminal; nothing was restored"),
        }
    }
    let out = engine.restore(&plan)?;
    if cli.json {
        print_json(&serde_json::json!({"plan": plan, "outcome": out}))?;
    } else {
        println!(
            "production restored to snapshot {} in {:.0} ms; live release: {}",
            plan.snapshot.id,
            out.duration_ms,
            safe_opt(&out.live)
        );
        if let Some(pre) = out.pre_restore_snapshot {
            println!(
                "the state before the restore is snapshot {pre}: `d1ops restore --undo` puts it back"
            );
        }
    }
    Ok(exit::OK)
}

/// `rollback [ID]`: production's code back to an earlier release after the typed
/// confirmation; the schema stays.
fn rollback(
    cli: &Cli,
    engine: &mut Engine,
    id: &Option<String>,
    yes: &bool,
    force: &bool,
    reason: &Option<String>,
) -> anyhow::Result<i32> {
    let target = match id {
        Some(id) => engine.resolve(id)?,
        None => engine.rollback_target()?,
    };
    let from = engine.production()?.active_release.unwrap_or_default();
    if !*yes {
        println!(
            "{} production's code from {} to {} — the schema stays as it is",
            paint("roll back", BOLD),
            paint(&from, CYAN),
            paint(&target.id, CYAN)
        );
        match ask("type the last 4 characters of the target release id to confirm: ") {
            Some(a) if target.confirms(&a) => {}
            Some(_) => bail!("confirmation did not match; nothing was rolled back"),
            None => {
                bail!("rollback needs --yes when not run from a terminal; nothing was rolled back")
            }
        }
    }
    let out = engine.rollback(Some(&target.id), *force, reason.as_deref())?;
    if cli.json {
        print_json(&out)?;
    } else {
        println!(
            "release {} is {} again; {} is rolled back ({} probe(s) of {} passed on a copy of production{})",
            safe(&out.to),
            paint("live", GREEN),
            safe(&out.from),
            out.probes_run.saturating_sub(out.probe_failures.len()),
            safe(&out.to),
            if out.forced {
                "; FORCED past failing probes"
            } else {
                ""
            }
        );
        for f in &out.probe_failures {
            println!(
                "  {} {}: {}",
                paint("✗", RED),
                safe(&f.probe),
                safe(&f.problem)
            );
        }
        super::code::print_steps(&out.code);
    }
    Ok(exit::OK)
}

/// `snapshots`: the recovery points, with what keeps each one.
fn snapshots(cli: &Cli, engine: &Engine) -> anyhow::Result<i32> {
    let views = engine.snapshots()?;
    if cli.json {
        print_json(&views)?;
        return Ok(exit::OK);
    }
    if views.is_empty() {
        println!(
            "no recovery points yet: one is taken before every promotion that applies migrations"
        );
        return Ok(exit::OK);
    }
    // Time Travel bookmarks take no storage: they are neither sized nor counted.
    let total: u64 = (views.iter())
        .filter(|v| v.uses_storage)
        .map(|v| v.snapshot.size_bytes)
        .sum();
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let keep = match (&v.protected, v.expired) {
                (Some(p), _) => safe(p),
                (None, true) => paint("expired: cleanup deletes it", YELLOW),
                (None, false) => "kept by retention".into(),
            };
            vec![
                v.snapshot.id.to_string(),
                safe(&v.snapshot.kind),
                safe_opt(&v.snapshot.release_id),
                safe(&v.snapshot.created_at),
                age(&v.snapshot.created_at),
                match (&v.snapshot.location, v.uses_storage) {
                    (None, _) => "no database then".into(),
                    (Some(_), false) => "no storage".into(),
                    (Some(_), true) => output::bytes(v.snapshot.size_bytes),
                },
                keep,
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["ID", "KIND", "RELEASE", "TAKEN", "AGE", "SIZE", "RETENTION"],
            &rows
        )
    );
    if views.iter().any(|v| v.uses_storage) {
        println!(
            "{}, {} in total",
            d1ops_sql::text::count_of(views.len() as u64, "recovery point", "recovery points"),
            output::bytes(total)
        );
    } else {
        println!(
            "{}: Time Travel bookmarks, no storage",
            d1ops_sql::text::count_of(views.len() as u64, "recovery point", "recovery points")
        );
    }
    Ok(exit::OK)
}

fn print_plan(plan: &RestorePlan) {
    match &plan.to_release {
        Some(id) => println!(
            "{} production to the recovery point taken before release {} was promoted (snapshot {}, {})",
            paint("restore", BOLD),
            paint(id, CYAN),
            plan.snapshot.id,
            safe(&plan.snapshot.created_at)
        ),
        None => println!(
            "{} the last restore: production back to snapshot {} ({})",
            paint("undo", BOLD),
            plan.snapshot.id,
            safe(&plan.snapshot.created_at)
        ),
    }
    println!("{}", paint("what would be lost", BOLD));
    if plan.losses.is_empty() {
        println!("  nothing: no row changed since the recovery point");
    }
    let rows: Vec<Vec<String>> = plan
        .losses
        .tables
        .iter()
        .filter(|t| {
            t.inserted > 0 || t.deleted > 0 || t.updated.unwrap_or(0) > 0 || t.note.is_some()
        })
        .map(|t| {
            // Table names are the user's: escaped like any other user text.
            // Not countable (D1): unknown, `?`, never 0.
            let counted = t.countable();
            vec![
                safe(&t.table),
                if counted {
                    paint(
                        &thousands(t.inserted),
                        if t.inserted > 0 { RED } else { GREEN },
                    )
                } else {
                    paint("?", YELLOW)
                },
                t.updated.filter(|_| counted).map_or("?".into(), thousands),
                if counted {
                    thousands(t.deleted)
                } else {
                    "?".into()
                },
                safe(t.note.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print!(
            "{}",
            output::table(
                &[
                    "TABLE",
                    "INSERTED (lost)",
                    "UPDATED (reverted)",
                    "DELETED (back)",
                    ""
                ],
                &rows
            )
        );
    }
    if !plan.migrations_undone.is_empty() {
        println!(
            "migrations undone: {}",
            safe(&plan.migrations_undone.join(", "))
        );
    }
    for (id, state) in &plan.state_changes {
        println!("release {} becomes {}", safe(id), safe(state));
    }
    println!("production will point at: {}", safe_opt(&plan.becomes_live));
}
