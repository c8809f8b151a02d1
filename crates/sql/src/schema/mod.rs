//! The SQLite schema model: what a database's user-visible schema *is* (tables, indexes,
//! triggers, views), how to read it from a connection ([`read_schema`]), fingerprint it
//! ([`schema_fingerprint`]) and compare two of them ([`diff`]).
//!
//! This module owns only the model and its pure comparisons. It must not decide policy
//! (whether a change is allowed is the gate's job), must not write to any database other
//! than the throw-away in-memory one [`schema_from_sql`] builds, and must not print: the
//! rendering in [`SchemaDiff::render_text`] is plain text lines for the CLI and console to
//! colour.

mod diff;
#[cfg(test)]
mod diff_tests;
mod introspect;
#[cfg(test)]
mod introspect_tests;
mod rebuild;
mod render;
pub mod sqltext;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use diff::{Change, ColumnChange, ObjectKind, SchemaDiff, diff};
pub use introspect::{
    read_schema, read_tables, schema_fingerprint, schema_from_sql, table_row_counts,
};
pub use render::DiffLine;

/// wrangler's default name for the migrations ledger table (`migrations_table`).
pub const DEFAULT_LEDGER_TABLE: &str = "d1_migrations";

/// The user-visible schema of one database, every map keyed by object name.
///
/// Internal objects are excluded: `sqlite_*` tables and autoindexes, Cloudflare D1's
/// `_cf_*` tables, virtual-table shadow tables and the migrations ledger table (plus any
/// index or trigger attached to one of those).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub indexes: BTreeMap<String, Index>,
    pub triggers: BTreeMap<String, Trigger>,
    pub views: BTreeMap<String, View>,
}

/// A table (ordinary or virtual) as SQLite stores and reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    /// The `CREATE TABLE` text exactly as stored in `sqlite_schema`.
    pub sql: String,
    pub columns: Vec<Column>,
    pub foreign_keys: Vec<ForeignKey>,
    pub without_rowid: bool,
    pub strict: bool,
}

/// One column, as `PRAGMA table_xinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// Declared type as written (may be empty).
    pub decl_type: String,
    pub not_null: bool,
    /// Default value expression as written, e.g. `'x'`, `0`, `CURRENT_TIMESTAMP`.
    pub default: Option<String>,
    /// 1-based position in the primary key; 0 when not part of it.
    pub pk: u32,
    /// `table_xinfo.hidden`: 0 normal, 1 hidden virtual-table column, 2 virtual generated,
    /// 3 stored generated.
    pub hidden: u32,
}

/// One foreign-key constraint, as `PRAGMA foreign_key_list` reports it (rows grouped by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub id: i64,
    /// The parent table.
    pub table: String,
    pub from: Vec<String>,
    /// Parent columns; an entry is empty when the constraint names no parent column (it then
    /// refers to the parent's primary key).
    pub to: Vec<String>,
    pub on_delete: String,
    pub on_update: String,
}

/// An explicitly created index (autoindexes are part of their table's SQL and not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub table: String,
    /// `None` only for autoindexes, which [`read_schema`] does not list.
    pub sql: Option<String>,
    pub unique: bool,
    /// Indexed column names in key order; an expression key is listed as `<expr>`.
    pub columns: Vec<String>,
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub table: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub name: String,
    pub sql: String,
}

/// Why reading a schema failed. Each message is one sentence naming what was being read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("could not read the database schema: {0}")]
    Read(#[from] rusqlite::Error),
    #[error("could not read the definition of {kind} {name}: {source}")]
    Object {
        kind: &'static str,
        name: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("could not execute the schema SQL: {0}")]
    Execute(#[source] rusqlite::Error),
    #[error("could not count the rows of table {table}: {source}")]
    Count {
        table: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// `name` as SQL writes it: bare when it is a plain identifier that is no SQLite keyword
/// (`d1_migrations`, as wrangler writes its ledger), else double-quoted like [`quote_ident`].
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain && !is_keyword(name) {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// Whether SQLite reserves `word` as a keyword (its own list, any case).
fn is_keyword(word: &str) -> bool {
    let Ok(len) = std::os::raw::c_int::try_from(word.len()) else {
        return true;
    };
    // SAFETY: the pointer and length describe `word`'s bytes, which outlive the call;
    // sqlite3_keyword_check only reads them.
    unsafe { rusqlite::ffi::sqlite3_keyword_check(word.as_ptr().cast(), len) != 0 }
}

/// Quotes an SQL identifier with double quotes, doubling any embedded double quote, so it
/// can be spliced into SQL text: `my "t"` → `"my ""t"""`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// True for objects d1ops never shows or diffs: SQLite's own (`sqlite_*`), Cloudflare D1's
/// (`_cf_*`) and the migrations ledger. SQLite names are case-insensitive, so is this.
pub fn is_internal_name(name: &str, ledger_table: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_")
        || lower.starts_with("_cf_")
        || name.eq_ignore_ascii_case(ledger_table)
}

#[cfg(test)]
mod ident_tests {
    use super::*;

    /// The ledger is created the way wrangler writes it: bare when the name allows.
    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("d1_migrations"), "d1_migrations");
        assert_eq!(ident("_ledger2"), "_ledger2");
        assert_eq!(ident("order"), "\"order\"");
        assert_eq!(ident("my table"), "\"my table\"");
        assert_eq!(ident("2fast"), "\"2fast\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
