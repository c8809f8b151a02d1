//! d1ops-sql: what every d1ops crate shares and nothing of d1ops' own: the schema model,
//! introspection and diff (`schema`), the one statement splitter (`splitter`), the
//! versioned-schema upgrade loop (`schema_upgrade`), the one clock (`clock`) and the text
//! helpers (`text`), and the names of environment variables several crates read
//! (`env_vars`). Depends on no other d1ops crate.
pub mod clock;
pub mod env_vars;
pub mod schema;
pub mod schema_upgrade;
pub mod splitter;
pub mod text;
