//! `d1ops rollout status|continue|abort` and the wait after `promote`: how a worker target's
//! gradual rollout reads on the terminal. The engine decides every step
//! (`engine/rollout.rs`); this module prints and maps a halt to exit 5.
use anyhow::bail;

use super::args::RolloutCommand;
use super::output::{CYAN, DIM, GREEN, RED, YELLOW, paint, safe};
use super::{Cli, Command, exit, print_json};
use crate::engine::{Engine, PromoteOutcome, RolloutMove, RolloutState, RolloutView};

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    let Command::Rollout { command } = cmd else {
        bail!("internal error: {cmd:?} reached the rollout handler");
    };
    match command {
        RolloutCommand::Status { id } => status(cli, engine, id.as_deref()),
        RolloutCommand::Continue { id, now } => {
            let m = engine.rollout_continue(id, *now)?;
            show_move(cli, &m)
        }
        RolloutCommand::Abort { id, reason, yes } => {
            if !*yes {
                let rel = engine.resolve(id)?;
                println!(
                    "abort the rollout of release {}: the previous version goes back to 100%, the previous release becomes active and {} fails at stage rollout",
                    paint(&rel.id, CYAN),
                    safe(&rel.id)
                );
                match super::lifecycle::ask(&format!(
                    "type the last 4 characters of the release id ({}) to confirm: ",
                    paint("....", DIM)
                )) {
                    Some(answer) if rel.confirms(&answer) => {}
                    Some(_) => bail!("confirmation did not match; the rollout goes on"),
                    None => bail!(
                        "rollout abort needs --yes when not run from a terminal; the rollout goes on"
                    ),
                }
            }
            let m = engine.rollout_abort(id, reason.as_deref())?;
            show_move(cli, &m)
        }
    }
}

fn status(cli: &Cli, engine: &Engine, id: Option<&str>) -> anyhow::Result<i32> {
    let views = match id {
        Some(id) => engine.release_rollouts(id)?,
        None => engine.rollouts()?,
    };
    if cli.json {
        print_json(&serde_json::json!({ "rollouts": views }))?;
        return Ok(exit::OK);
    }
    if views.is_empty() {
        match id {
            Some(id) => println!("release {} has no rollout", safe(id)),
            None => println!("no rollout in progress"),
        }
    }
    for v in &views {
        print_view(v);
    }
    Ok(exit::OK)
}

/// After `promote`: the first step's split with `--no-wait` (or from the console), else the
/// wait through every step. A halt is exit 5.
pub(super) fn after_promote(
    cli: &Cli,
    engine: &mut Engine,
    out: &PromoteOutcome,
    no_wait: bool,
) -> anyhow::Result<i32> {
    let rolling = engine.rolling_rollouts_of(&out.id)?;
    let mut code = exit::OK;
    let mut last = None;
    if !rolling.is_empty() && !no_wait {
        if !cli.json {
            println!(
                "rolling out: each step is watched before the next; stopping this command leaves the rollout where it is (`d1ops rollout status|continue|abort {}`)",
                safe(&out.id)
            );
        }
        let json = cli.json;
        let m = engine.rollout_wait(&out.id, &mut |m| {
            if !json {
                print_move_line(m);
            }
        })?;
        if m.as_ref().is_some_and(RolloutMove::halted) {
            code = exit::FAILED;
        }
        last = m;
    } else if !cli.json {
        for v in &rolling {
            print_view(v);
            println!(
                "  {}",
                paint(
                    &format!(
                        "drive it with `d1ops rollout continue {}` (or `rollout abort`)",
                        safe(&out.id)
                    ),
                    DIM
                )
            );
        }
    }
    if cli.json {
        let rollouts = engine.release_rollouts(&out.id)?;
        if rollouts.is_empty() {
            print_json(out)?;
            return Ok(code);
        }
        let mut v = serde_json::to_value(out)?;
        v["rollouts"] = serde_json::to_value(&rollouts)?;
        if let Some(m) = &last {
            v["rollout"] = serde_json::json!({"outcome": m.outcome, "detail": m.detail,
                "check": m.check, "active_release": m.active_release});
        }
        print_json(&v)?;
    } else if let Some(m) = &last
        && m.halted()
    {
        eprintln!("d1ops: {}", safe(&m.detail));
    }
    Ok(code)
}

fn show_move(cli: &Cli, m: &RolloutMove) -> anyhow::Result<i32> {
    if cli.json {
        print_json(m)?;
    } else {
        print_move_line(m);
        super::code::print_steps(&m.reverted);
        for v in &m.rollouts {
            print_view(v);
        }
    }
    Ok(if m.halted() { exit::FAILED } else { exit::OK })
}

fn print_move_line(m: &RolloutMove) {
    let (mark, colour) = match m.outcome {
        "advanced" => ("→", CYAN),
        "done" => ("✓", GREEN),
        "halted" => ("✗", RED),
        _ => ("■", YELLOW),
    };
    let check = m
        .check
        .as_ref()
        .map(|c| format!(" (check: {})", safe(&c.summary)))
        .unwrap_or_default();
    println!(
        "{} rollout of {} {}: {}{check}",
        paint(mark, colour),
        safe(&m.release),
        m.outcome,
        safe(&m.detail)
    );
}

fn print_view(v: &RolloutView) {
    let state = match v.status {
        RolloutState::Rolling => paint("rolling", CYAN),
        RolloutState::Done => paint("done", GREEN),
        RolloutState::Halted => paint("halted", RED),
        RolloutState::Aborted => paint("aborted", YELLOW),
    };
    println!(
        "rollout of release {} · target {} · Worker {}: {state}, step {} of {} {:?}",
        safe(&v.release),
        safe(&v.target),
        safe(&v.script),
        v.step,
        v.total_steps,
        v.steps
    );
    let split: Vec<String> = v
        .split
        .iter()
        .map(|s| format!("{}% {} {}", s.percentage, s.role, safe(&s.version_id)))
        .collect();
    println!("  split       {}", split.join(" · "));
    if let (Some(pct), Some(at)) = (v.next_percent, &v.next_at) {
        let when = if v.due {
            paint("due now", YELLOW)
        } else {
            format!("due at {}", safe(at))
        };
        println!("  next step   {pct}%, {when}");
    }
    match &v.last_check {
        Some(c) => println!("  last check  {} (at {})", safe(&c.summary), safe(&c.at)),
        None => println!("  last check  {}", paint("none yet", DIM)),
    }
    if let Some(d) = &v.detail {
        println!("  {}", safe(d));
    }
}
