//! `d1ops adopt --database-id ID`: switches production to the database d1ops.toml now names,
//! after showing its ledger beside d1ops' record and a typed confirmation. The engine refuses
//! under a lock, for an id the configuration does not name, or a database that is not there.
use anyhow::bail;

use super::lifecycle::ask;
use super::output::{BOLD, YELLOW, paint, safe};
use super::{Cli, engine_options, exit, print_json};
use crate::engine::Engine;

pub(super) fn run(cli: &Cli, database_id: &str, yes: bool) -> anyhow::Result<i32> {
    let mut engine = Engine::open_for_adopt(&cli.workspace, engine_options(cli))?;
    let plan = engine.adopt_plan(database_id)?;
    if !cli.json || !yes {
        println!(
            "{} {} as production (was {})",
            paint("adopt", BOLD),
            safe(&plan.database),
            safe(plan.from.as_deref().unwrap_or("none recorded"))
        );
        println!(
            "  ledger     {} migration(s){}",
            plan.ledger.len(),
            plan.ledger
                .last()
                .map_or(String::new(), |r| format!(", last {}", safe(&r.name)))
        );
        if let Some(b) = plan.size_bytes {
            println!("  size       {}", super::output::bytes(b));
        }
        for (what, names) in [
            ("applied there, not recorded by d1ops", &plan.unrecorded),
            ("recorded by d1ops, not in its ledger", &plan.missing),
        ] {
            if !names.is_empty() {
                let shown: Vec<String> = names.iter().map(|n| safe(n)).collect();
                println!("  {}: {}", paint(what, YELLOW), shown.join(", "));
            }
        }
    }
    if !yes {
        match ask("type the last 4 characters of the database id to adopt it: ") {
            Some(a) if crate::model::confirms(&plan.to, &a) => {}
            Some(_) => bail!("confirmation did not match; production was left as it is"),
            None => {
                bail!(
                    "adopt needs --yes when not run from a terminal; production was left as it is"
                )
            }
        }
    }
    let out = engine.adopt(&plan)?;
    if cli.json {
        print_json(&out)?;
    } else {
        println!(
            "production is now {} ({} ledger row(s)); `d1ops ledger` compares it with d1ops' record",
            safe(&out.to),
            out.ledger_rows
        );
    }
    Ok(exit::OK)
}
