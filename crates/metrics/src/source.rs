//! Who sent a statement: the app, or d1ops itself (ledger reads and writes, schema
//! introspection, foreign-key checks, the migrations it applies, gate probes). d1ops' own
//! statements are rolled up under the environment key `<env>@d1ops`, so every reader that
//! asks for an environment sees app traffic only unless it asks to include d1ops, while
//! usage still counts them (they cost rows on D1) and can say how much was d1ops.
//!
//! On D1 the statements come back through the analytics with no sender; [`OwnStatements`]
//! recognises d1ops' by their fingerprints. Pure; no I/O.
use std::collections::HashSet;

use super::fingerprint::fingerprint;

/// The source name of d1ops' own statements.
pub const D1OPS_SOURCE: &str = "d1ops";
/// The source name of everything else.
pub const APP_SOURCE: &str = "app";
/// Suffix of the environment key d1ops' own statements are rolled up under.
pub const D1OPS_SUFFIX: &str = "@d1ops";

/// The rollup key of d1ops' own statements on `env`.
pub fn d1ops_env(env: &str) -> String {
    format!("{env}{D1OPS_SUFFIX}")
}

/// `(environment, true)` for a key of d1ops' own statements, `(key, false)` otherwise.
pub fn split_env(key: &str) -> (&str, bool) {
    match key.strip_suffix(D1OPS_SUFFIX) {
        Some(env) => (env, true),
        None => (key, false),
    }
}

/// Recognises the statements d1ops sends by their fingerprints: anything on SQLite's own
/// catalogue (`sqlite_master`, `sqlite_schema`, `sqlite_sequence`, D1's `_cf_` tables) or a
/// `PRAGMA`, anything on the migrations ledger, and the exact fingerprints given (every
/// release's migration statements, the gate's probes). SQL an operator runs through `d1ops
/// query` is the operator's, not d1ops' own, unless it is one of those.
#[derive(Debug, Clone, Default)]
pub struct OwnStatements {
    ledger_table: String,
    fingerprints: HashSet<String>,
}

impl OwnStatements {
    /// With the migrations ledger's table name.
    pub fn new(ledger_table: &str) -> OwnStatements {
        OwnStatements {
            ledger_table: ledger_table.to_ascii_uppercase(),
            fingerprints: HashSet::new(),
        }
    }

    /// Adds a statement d1ops sends (any SQL; it is fingerprinted).
    pub fn add(&mut self, sql: &str) {
        self.fingerprints.insert(fingerprint(sql));
    }

    /// Whether `sql` (raw or already a fingerprint) is one of d1ops' own statements.
    pub fn is_own(&self, sql: &str) -> bool {
        let fp = fingerprint(sql);
        if self.fingerprints.contains(&fp) {
            return true;
        }
        let upper = fp.to_ascii_uppercase();
        let first = upper.split_whitespace().next().unwrap_or("");
        let words = |w: &str| {
            upper
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|t| t == w)
        };
        first == "PRAGMA"
            || upper.contains("SQLITE_MASTER")
            || upper.contains("SQLITE_SCHEMA")
            || upper.contains("SQLITE_SEQUENCE")
            || upper.contains("PRAGMA_")
            || upper.contains("_CF_")
            || (!self.ledger_table.is_empty() && words(&self.ledger_table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d1ops_statements_are_told_from_the_apps() {
        let mut own = OwnStatements::new("d1_migrations");
        own.add("UPDATE users SET email = lower(email) WHERE email <> lower(email)");
        for sql in [
            "SELECT name FROM d1_migrations ORDER BY id",
            "INSERT INTO \"d1_migrations\"(name) VALUES ('0002_x.sql')",
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'",
            "PRAGMA foreign_key_check",
            "SELECT * FROM pragma_table_info('users')",
            "update users set email = lower(email) where email <> lower(email)",
        ] {
            assert!(own.is_own(sql), "{sql}");
        }
        for sql in [
            "SELECT id FROM users WHERE email = ?",
            "INSERT INTO migrations_log(note) VALUES (?)",
            "UPDATE users SET email = ? WHERE id = ?",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY)",
        ] {
            assert!(!own.is_own(sql), "{sql}");
        }
        assert_eq!(split_env(&d1ops_env("production")), ("production", true));
        assert_eq!(split_env("production"), ("production", false));
    }
}
