//! `d1ops unlock --reason T`: releases the production lock of an operation whose holder is
//! gone but cannot be shown gone automatically, after a typed confirmation, then runs that
//! operation's normal recovery. The engine refuses while the holder lives.
use anyhow::bail;

use super::lifecycle::ask;
use super::output::{BOLD, paint, safe};
use super::{Cli, Command, exit, print_json};
use crate::engine::{Engine, EngineError};

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    let Command::Unlock { reason, yes } = cmd else {
        bail!("internal error: {cmd:?} reached the unlock handler");
    };
    if reason.trim().is_empty() {
        bail!("unlock needs --reason: say why the holder is known to be gone");
    }
    let Some((lock, holder)) = engine.lock_status()? else {
        if cli.json {
            print_json(&serde_json::json!({"unlocked": false, "reason": "no lock held"}))?;
        } else {
            println!("no operation holds the production lock; nothing to unlock");
        }
        return Ok(exit::OK);
    };
    if let Some(why) = engine.unlock_refusal(&lock, holder) {
        return Err(EngineError::Refused(safe(&why)).into());
    }
    if !cli.json || !*yes {
        println!(
            "{} the {} of {} held by {} (pid {} on {}) since {}, stopped at step {}; last heartbeat: {} — {}",
            paint("unlock", BOLD),
            safe(lock.operation.as_str()),
            safe(&lock.release_id),
            safe(&lock.holder),
            lock.pid,
            safe(&lock.host),
            safe(&lock.since),
            lock.step.as_str(),
            safe(lock.heartbeat_at.as_deref().unwrap_or("none recorded")),
            holder.describe()
        );
        println!("its normal recovery runs next (rolled forward or back from what it recorded)");
    }
    if !*yes {
        match ask("type the last 4 characters of the lock's release id to unlock: ") {
            Some(a) if crate::model::confirms(&lock.release_id, &a) => {}
            Some(_) => bail!("confirmation did not match; the lock was left as it is"),
            None => {
                bail!("unlock needs --yes when not run from a terminal; the lock was left as it is")
            }
        }
    }
    let out = engine.unlock(reason, lock.lease.as_deref())?;
    if cli.json {
        print_json(&out)?;
    } else {
        println!(
            "unlocked: the interrupted {} of {} was {}",
            safe(out.operation.as_str()),
            safe(&out.release),
            out.recovery.outcome.replace('_', " ")
        );
    }
    Ok(exit::OK)
}
