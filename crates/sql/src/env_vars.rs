//! Environment variables that more than one crate names: the Cloudflare client reads the
//! token from here, and the core's configuration and secret redaction name it whether or not
//! the build has the D1 backend. One definition; `d1ops_cloudflare` re-exports it.

/// Where the Cloudflare API token comes from (never from a config file).
pub const TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";
