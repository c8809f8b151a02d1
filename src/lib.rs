//! d1ops: the database side of a release lifecycle for migration-driven SQLite / Cloudflare D1.
//!
//! The library holds everything; `main.rs` is a thin clap face over [`cli`].
pub mod backend;
pub mod cli;
pub mod cloudflare;
pub mod demo;
pub mod engine;
pub mod fault;
pub mod gate;
pub mod model;
pub mod plans;
pub mod schema;
pub mod schema_upgrade;
pub mod serve;
pub mod store;
pub mod workspace;

pub mod console;

/// Opens the interactive console on a workspace.
pub fn console_entry(root: std::path::PathBuf, opts: engine::EngineOptions) -> anyhow::Result<()> {
    console::run(root, opts)
}
pub mod metrics;
