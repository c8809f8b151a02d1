//! Cloudflare's APIs for D1: the REST client (databases, SQL, Time Travel, export/import),
//! D1's datasets in the GraphQL Analytics API (`analytics`) and the token that authenticates
//! both. The `cloudflare` backend and the analytics sync are built on this; nothing here
//! knows of releases or the engine.
pub mod analytics;
mod client;
pub mod d1;
mod envelope;
mod error;
mod token;
pub mod workers;

pub use client::{ACCOUNT_ENV, API_BASE, BASE_ENV, Call, Client, Settings};
pub use envelope::{ApiMessage, Envelope, ResultInfo};
pub use error::{CloudflareError, Permission};
pub use token::{ApiToken, TOKEN_ENV};
