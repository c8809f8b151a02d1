//! CLI handlers that change things: deploy, approve, abandon, annotate, promote, cleanup.
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::bail;
use serde_json::json;

use super::output::{self, CYAN, DIM, GREEN, RED, YELLOW, paint, safe};
use super::{Cli, Command, exit, print_json};
use crate::engine::{DeployRequest, Engine};
use crate::model::{CheckResult, CheckStatus, Verdict};

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    match cmd {
        Command::Deploy {
            label,
            commit,
            artifacts,
            supersedes,
        } => {
            let artifacts = artifacts
                .iter()
                .map(|a| match a.split_once('=') {
                    Some((n, p)) => Ok((n.trim().to_string(), PathBuf::from(p))),
                    None => bail!(
                        "--artifact {}: give it as NAME=PATH (e.g. app=dist/app.js)",
                        safe(a)
                    ),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let outcome = engine.deploy(DeployRequest {
                label: label.clone(),
                commit: commit.clone(),
                artifacts,
                supersedes: supersedes.clone(),
            })?;
            if cli.json {
                print_json(&outcome)?;
            } else {
                let what = if outcome.pending.is_empty() && outcome.preview.is_some() {
                    format!(
                        "code-only release (no pending migrations); its code's preview ran on {}",
                        safe(outcome.preview.as_deref().unwrap_or("-"))
                    )
                } else if outcome.pending.is_empty() {
                    "code-only release (no pending migrations, no preview needed)".to_string()
                } else {
                    let applied = outcome
                        .checks
                        .iter()
                        .any(|c| c.id == "mig.apply" && c.status == CheckStatus::Pass);
                    format!(
                        "{} pending migration(s) {} on preview {}",
                        outcome.pending.len(),
                        if applied { "applied" } else { "did not apply" },
                        safe(outcome.preview.as_deref().unwrap_or("-"))
                    )
                };
                println!("release {} deployed: {what}", paint(&outcome.id, CYAN));
                print_checklist(&outcome.checks);
                let verdict = outcome.verdict.as_str().to_uppercase();
                let colour = if outcome.verdict == Verdict::Ready {
                    GREEN
                } else {
                    RED
                };
                println!(
                    "gate: {} in {:.0} ms",
                    paint(&verdict, colour),
                    outcome.total_ms
                );
                if outcome.verdict == Verdict::Ready {
                    println!(
                        "next: another operator runs `d1ops approve {}`, then `d1ops promote {}`",
                        outcome.id, outcome.id
                    );
                } else {
                    println!(
                        "fix the failing checks and deploy again (`d1ops diff {}` shows what it would change)",
                        outcome.id
                    );
                }
            }
            Ok(if outcome.verdict == Verdict::Ready {
                exit::OK
            } else {
                exit::BLOCKED
            })
        }
        Command::Approve { id, note } => {
            let out = engine.approve(id, note.as_deref())?;
            if cli.json {
                print_json(&out)?;
            } else {
                println!(
                    "release {} approved by {} ({} of {} required); state: {}",
                    safe(&out.id),
                    safe(&engine.actor),
                    crate::model::distinct_approvers(&out.approvals),
                    out.required,
                    out.state
                );
            }
            Ok(exit::OK)
        }
        Command::Abandon { id, note } => {
            let rel = engine.resolve(id)?;
            let state = engine.abandon(&rel.id, note.as_deref())?;
            if cli.json {
                print_json(&json!({"id": rel.id, "state": state}))?;
            } else {
                println!(
                    "release {} abandoned; its preview is now stale (`d1ops cleanup`)",
                    rel.id
                );
            }
            Ok(exit::OK)
        }
        Command::Annotate {
            id,
            cause,
            guardrail,
        } => {
            let rel = engine.resolve(id)?;
            engine.annotate(&rel.id, cause, guardrail.as_deref())?;
            if cli.json {
                print_json(&json!({"id": rel.id, "root_cause": cause, "guardrail": guardrail}))?;
            } else {
                println!("root cause recorded on release {}", rel.id);
            }
            Ok(exit::OK)
        }
        Command::Promote { id, yes, no_wait } => promote(cli, engine, id, *yes, *no_wait),
        Command::Cleanup {
            older_than,
            dry_run,
            yes,
            include_pending,
        } => cleanup(
            cli,
            engine,
            older_than.as_deref(),
            *dry_run,
            *yes,
            *include_pending,
        ),
        other => anyhow::bail!("internal error: {other:?} reached the wrong handler"),
    }
}

/// ✓ / ! / ✗ lines for gate checks.
pub(super) fn print_checklist(checks: &[CheckResult]) {
    let width = checks.iter().map(|c| safe(&c.id).len()).max().unwrap_or(0);
    for c in checks {
        let mark = c.status.mark();
        // A reason quotes migration names, statements and SQLite errors about them.
        println!(
            "  {} {:width$}  {}",
            paint(mark, output::status_colour(mark)),
            safe(&c.id),
            safe(&c.reason)
        );
    }
}

/// Asks on the terminal; `None` when there is no terminal to ask on.
pub(super) fn ask(prompt: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

fn promote(
    cli: &Cli,
    engine: &mut Engine,
    id: &str,
    yes: bool,
    no_wait: bool,
) -> anyhow::Result<i32> {
    let rel = engine.resolve(id)?;
    if !yes {
        if let Some(why) = engine.promotion_blocker(&rel)? {
            return Err(crate::engine::EngineError::Refused(why).into());
        }
        let pending: Vec<String> = engine
            .store
            .release_migrations(&rel.id)?
            .into_iter()
            .filter(|m| m.pending)
            .map(|m| m.name)
            .collect();
        println!("promote release {} to production", paint(&rel.id, CYAN));
        let code = engine.shipped_code(&rel.id)?;
        if pending.is_empty() {
            println!("  code only: no migrations to apply");
        } else {
            println!(
                "  applies, in one transaction: {}",
                safe(&pending.join(", "))
            );
        }
        if !code.is_empty() {
            let names: Vec<String> = code
                .iter()
                .map(|(t, _)| format!("{} ({})", t.name, t.kind.as_str()))
                .collect();
            println!(
                "  then ships its code, in this order: {}",
                safe(&names.join(", "))
            );
        }
        match ask(&format!(
            "type the last 4 characters of the release id ({}) to confirm: ",
            paint("....", DIM)
        )) {
            Some(answer) if rel.confirms(&answer) => {}
            Some(_) => bail!("confirmation did not match; nothing was promoted"),
            None => bail!("promote needs --yes when not run from a terminal; nothing was promoted"),
        }
    }
    let out = engine.promote(&rel.id)?;
    if cli.json {
        // The rollout's steps (when a worker target rolls out) join the promotion's JSON.
        return super::rollout::after_promote(cli, engine, &out, no_wait);
    } else {
        println!(
            "release {} is {} in production ({} migration(s) applied in {:.0} ms{})",
            out.id,
            paint("live", GREEN),
            out.applied.len(),
            out.duration_ms,
            out.snapshot
                .map_or(String::new(), |s| format!("; recovery point: snapshot {s}"))
        );
        super::code::print_steps(&out.code);
        if let Some(prev) = &out.previous {
            println!("previous release {} is superseded", safe(prev));
        }
    }
    super::rollout::after_promote(cli, engine, &out, no_wait)
}

fn cleanup(
    cli: &Cli,
    engine: &mut Engine,
    older_than: Option<&str>,
    dry_run: bool,
    yes: bool,
    include_pending: bool,
) -> anyhow::Result<i32> {
    let older = match older_than {
        Some(s) => Some(humantime::parse_duration(s).map_err(|e| {
            anyhow::anyhow!(
                "--older-than {} is not a duration ({e}); try 3d or 12h",
                safe(s)
            )
        })?),
        None => None,
    };
    let plan = engine.cleanup_plan(older, include_pending)?;
    let snapshots: Vec<_> = engine
        .snapshots()?
        .into_iter()
        .filter(|v| v.expired)
        .collect();
    let artifacts = engine.unreferenced_artifacts()?;
    let total: u64 = plan.iter().map(|i| i.size_bytes).sum::<u64>()
        + snapshots.iter().map(|v| v.snapshot.size_bytes).sum::<u64>()
        + artifacts.iter().map(|a| a.size_bytes).sum::<u64>();
    if !cli.json {
        print_cleanup_plan(&plan, &snapshots, total);
        for a in &artifacts {
            println!(
                "pinned artifact no release records: {} ({})",
                safe(&a.path),
                output::bytes(a.size_bytes)
            );
        }
    }
    if dry_run {
        if cli.json {
            print_json(&json!({
                "dry_run": true, "would_delete": plan,
                "would_delete_snapshots": snapshots,
                "would_remove_artifacts": artifacts.iter().map(|a| &a.path).collect::<Vec<_>>(),
                "would_free_bytes": total,
            }))?;
        } else {
            println!("dry run: nothing deleted");
        }
        // A size D1 could not read is unknown, not 0 B: say which and why, exit 1.
        let unreadable: Vec<_> = plan.iter().filter(|i| i.unreadable.is_some()).collect();
        for i in &unreadable {
            eprintln!(
                "d1ops: {}: {} could not be read, its size is unknown: {}",
                safe(&i.env),
                safe(i.database.as_deref().unwrap_or("-")),
                safe(i.unreadable.as_deref().unwrap_or_default())
            );
        }
        return Ok(if unreadable.is_empty() {
            exit::OK
        } else {
            exit::ERROR
        });
    }
    if plan.is_empty() && snapshots.is_empty() && artifacts.is_empty() {
        if cli.json {
            print_json(&crate::engine::CleanupReport::default())?;
        }
        return Ok(exit::OK);
    }
    if !yes {
        let what = format!(
            "{} preview(s), {} recovery point(s) and {} pinned artifact(s)",
            plan.len(),
            snapshots.len(),
            artifacts.len()
        );
        match ask(&format!("delete {what}? [y/N] ")) {
            Some(a) if a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes") => {}
            Some(_) => {
                println!("nothing deleted");
                return Ok(exit::OK);
            }
            None => bail!(
                "cleanup needs --yes when not run from a terminal (or --dry-run); nothing was deleted"
            ),
        }
    }
    let report = engine.cleanup_with_snapshots(&plan, &snapshots)?;
    if cli.json {
        print_json(&report)?;
    } else {
        for item in &report.deleted {
            println!(
                "deleted {} ({})",
                safe(&item.env),
                output::bytes(item.size_bytes)
            );
        }
        for snap in &report.snapshots_deleted {
            println!(
                "deleted snapshot {} ({})",
                snap.id,
                output::bytes(snap.size_bytes)
            );
        }
        for path in &report.artifacts_removed {
            println!("removed pinned artifact {}", safe(path));
        }
        for e in &report.errors {
            eprintln!("{}", paint(&format!("could not delete {e}"), YELLOW));
        }
        println!("freed {}", output::bytes(report.freed_bytes));
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

fn print_cleanup_plan(
    plan: &[crate::engine::CleanupItem],
    snapshots: &[crate::engine::SnapshotView],
    total: u64,
) {
    if plan.is_empty() {
        println!("no stale previews");
    } else {
        let rows: Vec<Vec<String>> = plan
            .iter()
            .map(|i| {
                vec![
                    safe(&i.env),
                    safe(i.release_state.as_deref().unwrap_or_default()),
                    match &i.unreadable {
                        Some(_) => "unknown".into(),
                        None => output::bytes(i.size_bytes),
                    },
                    safe(&i.reason),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(&["PREVIEW", "RELEASE", "SIZE", "WHY STALE"], &rows)
        );
    }
    if !snapshots.is_empty() {
        let rows: Vec<Vec<String>> = snapshots
            .iter()
            .map(|v| {
                vec![
                    v.snapshot.id.to_string(),
                    safe(v.snapshot.release_id.as_deref().unwrap_or_default()),
                    safe(&v.snapshot.created_at),
                    output::bytes(v.snapshot.size_bytes),
                ]
            })
            .collect();
        println!("recovery points past retention:");
        print!(
            "{}",
            output::table(&["SNAPSHOT", "RELEASE", "TAKEN", "SIZE"], &rows)
        );
    }
    let unknown = plan.iter().filter(|i| i.unreadable.is_some()).count();
    println!(
        "{} preview(s), {} recovery point(s), {}",
        plan.len(),
        snapshots.len(),
        if unknown == 0 {
            format!("{} in total", output::bytes(total))
        } else {
            format!(
                "{} known in total ({unknown} size(s) unknown)",
                output::bytes(total)
            )
        }
    );
}
