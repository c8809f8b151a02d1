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
