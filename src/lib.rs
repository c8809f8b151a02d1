//! d1ops: the database side of a release lifecycle for migration-driven SQLite / Cloudflare D1.
//!
//! The binary's library: the CLI (`cli`), the demo (`demo`) and the local D1 API (`serve`)
//! over the core; `main.rs` is a thin clap face over [`cli`]. The workspace's crates are
//! re-exported under the module names the binary (and the tests) use.
pub use d1ops_console as console;
pub use d1ops_core::{
    backend, cloudflare, engine, fault, gate, metrics, model, plans, progress, schema,
    schema_upgrade, store, workspace,
};

pub mod cli;
pub mod demo;
pub mod serve;

/// Opens the interactive console on a workspace.
pub fn console_entry(root: std::path::PathBuf, opts: engine::EngineOptions) -> anyhow::Result<()> {
    console::run(root, opts)
}
