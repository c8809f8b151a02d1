//! Test support shared by d1ops' integration tests, compiled once instead of into every test
//! binary: [`d1_contract`], an HTTP server standing in for Cloudflare's D1 REST API and the
//! D1 datasets of its GraphQL Analytics API, answering in the shapes of the documented
//! examples under `tests/fixtures/cloudflare/` (at the workspace root) and executing on real
//! SQLite files. Its own tests are in `crates/testkit/tests/d1_contract_server.rs`.
//!
//! The workspace helpers (`tests/common`, `tests/cf_support`, `tests/console_support`) stay
//! with the root package's integration tests: they run the `d1ops` binary through
//! `assert_cmd`'s `cargo_bin`, or use d1ops' own types, which a crate the root package
//! depends on cannot.
pub mod d1_contract;
