//! Cloudflare's APIs for D1: the REST client (databases, SQL, Time Travel, export/import)
//! and the token that authenticates it. The `cloudflare` backend is built on this; nothing
//! here knows of releases or the engine.
mod client;
pub mod d1;
mod envelope;
mod error;
mod token;

pub use client::{ACCOUNT_ENV, API_BASE, BASE_ENV, Call, Client, Settings};
pub use envelope::{ApiMessage, Envelope, ResultInfo};
pub use error::{CloudflareError, Permission};
pub use token::{ApiToken, TOKEN_ENV};
