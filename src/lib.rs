//! d1ops: the database side of a release lifecycle for migration-driven SQLite / Cloudflare D1.
//!
//! The library holds everything; `main.rs` is a thin clap face over [`cli`].
pub mod schema;
pub mod workspace;
pub mod model;
pub mod store;
pub mod backend;
pub mod fault;
pub mod gate;
pub mod engine;
pub mod cli;
pub mod demo;

/// Opens the interactive console on a workspace (the console issue provides it).
pub fn console_entry(
    root: std::path::PathBuf,
    opts: engine::EngineOptions,
) -> anyhow::Result<()> {
    let _ = (root, opts);
    anyhow::bail!("the console is not part of this build yet; use the CLI commands (d1ops --help)")
}
