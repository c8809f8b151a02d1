//! The CLI face: parses arguments, opens the engine, prints tables or JSON, maps errors to
//! the documented exit codes. Holds no lifecycle logic of its own.
use std::path::Path;

use anyhow::Context;
use clap::Parser;

use crate::engine::{Engine, EngineError, EngineOptions};
use crate::store::LockOperation;

mod adopt;
pub mod args;
mod binding;
mod capacity;
mod code;
mod ledger;
mod lifecycle;
mod lint;
mod listings;
mod monitor;
mod observe;
pub mod output;
mod progress;
mod recovery;
mod rollout;
mod unlock;

pub use args::{Cli, Command};

/// Exit codes (documented in README).
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const BLOCKED: i32 = 3;
    pub const REFUSED: i32 = 4;
    pub const FAILED: i32 = 5;
}

/// The documented exit code of an engine error: a refusal (nothing changed) 4, a promotion
/// that failed and was rolled back 5, anything else 1.
fn exit_code(e: &EngineError) -> i32 {
    match e {
        EngineError::Refused(_) => exit::REFUSED,
        EngineError::Ledger(l) if l.is_refusal() => exit::REFUSED,
        EngineError::PromotionFailed { .. } | EngineError::CodeFailed { .. } => exit::FAILED,
        _ => exit::ERROR,
    }
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main_with_args() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // Usage errors quote the offending argument: shown escaped, like every error.
            eprint!("{}", output::safe_lines(&e.render().to_string()));
            return 2;
        }
        Err(e) => {
            // --help and --version: our own text.
            let _ = e.print();
            return exit::OK;
        }
    };
    reset_sigpipe();
    let _guard = init_logging(&cli.workspace);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<EngineError>()
                .map_or(exit::ERROR, exit_code);
            tracing::error!(error = %format!("{e:#}"), code, "command failed");
            eprintln!("d1ops: {}", error_sentence(&e));
            if let Some(EngineError::CodeFailed { failure, .. }) = e.downcast_ref::<EngineError>()
                && let Some(tail) = &failure.output_tail
            {
                eprintln!("  last lines of its output:");
                code::print_tail(tail, true);
            }
            code
        }
    }
}

/// The error and its causes as one line. Errors quote user input (an id, a path, a user
/// name, an SQL error about a hostile file), so control characters are shown escaped: the
/// sentence can neither drive the terminal nor forge a second line.
fn error_sentence(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<EngineError>() {
            // The engine's wording speaks of the console; on the command line the refusal
            // names the mode the operator chose.
            Some(EngineError::ReadOnly(what)) => {
                format!("{what} refused: read-only mode (--readonly)")
            }
            _ => cause.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    output::safe(&parts.join(": "))
}

/// Logs to `.d1ops/logs/d1ops.log` under the workspace when the workspace has a state folder;
/// never to the terminal.
fn init_logging(workspace: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let state = workspace.join(crate::workspace::STATE_DIR);
    if !state.is_dir() {
        return None;
    }
    let dir = state.join("logs");
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::never(&dir, "d1ops.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("D1OPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// Options every engine open shares.
pub(crate) fn engine_options(cli: &Cli) -> EngineOptions {
    EngineOptions {
        actor: cli.actor.clone(),
        readonly: cli.readonly,
    }
}

pub(crate) fn open(cli: &Cli) -> anyhow::Result<Engine> {
    let engine = Engine::open(&cli.workspace, engine_options(cli))?;
    if let Some(r) = &engine.recovered {
        eprintln!(
            "d1ops: recovered an interrupted {} of {} (by {}, stopped at step {}): {}",
            if r.operation == LockOperation::Promote {
                "promotion"
            } else {
                r.operation.as_str()
            },
            output::safe(&r.release),
            output::safe(&r.holder),
            r.step,
            output::safe(&r.outcome.replace('_', " "))
        );
    }
    Ok(engine)
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("serialising output")?
    );
    Ok(())
}

/// Runs one parsed command, with progress bars on stderr when it is a terminal (not under
/// `--json`, not for the console).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match progress::sink(&cli) {
        Some(sink) => crate::progress::with_sink(sink, || run_command(cli)),
        None => run_command(cli),
    }
}

fn run_command(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        None | Some(Command::Console) => {
            let opts = engine_options(&cli);
            // Open once here so a bad workspace fails with a clear sentence before the
            // terminal is taken over.
            drop(open(&cli)?);
            crate::console_entry(cli.workspace.clone(), opts)?;
            Ok(exit::OK)
        }
        Some(Command::Demo {
            dir,
            no_console,
            fresh,
        }) => {
            let built = crate::demo::build_or_reuse(dir, *fresh)?;
            if cli.json {
                print_json(&built)?;
            } else {
                println!("{}", output::safe_lines(&built.describe()));
            }
            if !*no_console {
                crate::demo::open_console(&built.root, engine_options(&cli))?;
            }
            Ok(exit::OK)
        }
        Some(Command::Init { dir }) => {
            let dir = dir.clone().unwrap_or_else(|| cli.workspace.clone());
            let outcome = crate::workspace::init(&dir)?;
            if cli.json {
                print_json(&outcome)?;
            } else {
                println!("wrote {}", output::safe(&outcome.config_path));
                if let Some(from) = &outcome.imported_from {
                    println!(
                        "imported the first d1_databases entry from {}",
                        output::safe(from)
                    );
                }
                println!(
                    "migrations folder: {} (put NNNN_name.sql files there, then run `d1ops deploy`)",
                    output::safe(&outcome.migrations_dir)
                );
            }
            Ok(exit::OK)
        }
        Some(Command::Lint) => lint::run(&cli),
        Some(Command::Adopt { database_id, yes }) => adopt::run(&cli, database_id, *yes),
        Some(cmd) => {
            let mut engine = match open(&cli) {
                Ok(engine) => engine,
                Err(e) if matches!(cmd, Command::Releases) => listings::open_unsettled(&cli, e)?,
                Err(e) => return Err(e),
            };
            ledger::warn_on_drift(cmd, &engine);
            match cmd {
                Command::Deploy { .. }
                | Command::Approve { .. }
                | Command::Abandon { .. }
                | Command::Annotate { .. }
                | Command::Promote { .. }
                | Command::Cleanup { .. } => lifecycle::run(&cli, cmd, &mut engine),
                Command::Restore { .. } | Command::Snapshots | Command::Rollback { .. } => {
                    recovery::run(&cli, cmd, &mut engine)
                }
                Command::Unlock { .. } => unlock::run(&cli, cmd, &mut engine),
                Command::Rollout { .. } => rollout::run(&cli, cmd, &mut engine),
                Command::Env { .. } => binding::run(&cli, cmd, &engine),
                Command::Ledger { .. } => ledger::run(&cli, cmd, &mut engine),
                Command::Query { .. }
                | Command::Serve { .. }
                | Command::Traffic { .. }
                | Command::Ingest { .. } => observe::run(&cli, cmd, &mut engine),
                Command::Usage { .. }
                | Command::Forecast { .. }
                | Command::Report { .. }
                | Command::Watch { .. } => capacity::run(&cli, cmd, &mut engine),
                Command::Monitor { .. } | Command::Analytics { .. } => {
                    monitor::run(&cli, cmd, &engine)
                }
                _ => listings::run(&cli, cmd, &engine),
            }
        }
    }
}

/// Restores the default SIGPIPE action so `d1ops releases | head` ends quietly instead of
/// failing to print (Rust ignores SIGPIPE by default).
fn reset_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to SIG_DFL at startup, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
