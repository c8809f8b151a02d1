//! d1ops-core: the database side of a release lifecycle — the model, the workspace
//! (`d1ops.toml`, migrations), the state store, the gate, the backends (local SQLite and
//! Cloudflare D1) and the engine with its observability services. No terminal I/O: the CLI
//! and the console are faces over [`engine::Engine`].
pub mod backend;
pub mod engine;
pub mod fault;
pub mod gate;
pub mod model;
pub mod progress;
pub mod store;
pub mod targets;
pub mod workspace;

// The crates below the core, under the names the core's modules use.
#[cfg(feature = "d1")]
pub use d1ops_cloudflare as cloudflare;
pub use d1ops_metrics as metrics;
pub use d1ops_metrics::plans;
pub use d1ops_sql::{schema, schema_upgrade};
// The one text module (`bytes`, `age`, `secs`, `thousands`, `one_line`), for the faces too.
pub use d1ops_sql::text;
