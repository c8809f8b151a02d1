//! The guard on every SQLite connection that runs a user's SQL (preview and production
//! apply, probes, `query`, `serve`, `traffic`, lint's replay): what D1 itself refuses is
//! refused here by SQLite's authorizer and limits, never by matching statement text.
//!
//! Refused: `ATTACH`/`DETACH` (and `SQLITE_LIMIT_ATTACHED = 0`, which also stops `VACUUM`
//! and `VACUUM INTO`, since SQLite runs them through an attached database), `load_extension`
//! and `fts3_tokenizer`, every pragma outside D1's documented set (so `writable_schema`,
//! `schema_version = N`, `journal_mode`, …), writes and DDL on the migrations ledger and on
//! D1's reserved `_cf_` tables, and writes to SQLite's own `sqlite_` tables beyond what
//! DDL, `ANALYZE` and AUTOINCREMENT write themselves. A statement our
//! own code runs on the same connection (the ledger rows of an apply) is marked trusted for
//! its duration with [`Sandbox::trusted`]. Owns no I/O and knows nothing of releases.
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;

/// Pragmas a user's statement may run, as on D1 (its "compatible PRAGMA statements"), plus
/// read-only introspection our own code needs on the same connection. Pragmas in
/// [`READ_ONLY_PRAGMAS`] may only be read, never set.
const PRAGMAS: &[&str] = &[
    "case_sensitive_like",
    "defer_foreign_keys",
    "foreign_key_check",
    "foreign_key_list",
    "foreign_keys",
    "ignore_check_constraints",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "legacy_alter_table",
    "optimize",
    "quick_check",
    "recursive_triggers",
    "reverse_unordered_selects",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// Pragmas that may be read but not set (setting `schema_version` corrupts a database).
const READ_ONLY_PRAGMAS: &[&str] = &[
    "data_version",
    "freelist_count",
    "page_count",
    "page_size",
    "schema_version",
];

/// Functions no statement may call.
const FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// SQLite's tables whose writes are allowed: the schema tables (DDL writes them, and SQLite
/// itself refuses a direct write unless `writable_schema`, which is refused above) and the
/// statistics `ANALYZE` and `PRAGMA optimize` write, and `sqlite_sequence`, which SQLite
/// writes through the authorizer itself when a table is renamed or dropped (it holds only
/// the database's own AUTOINCREMENT counters).
const SQLITE_TABLES_ALLOWED: &[&str] = &[
    "sqlite_master",
    "sqlite_schema",
    "sqlite_temp_master",
    "sqlite_temp_schema",
    "sqlite_stat1",
    "sqlite_stat4",
    "sqlite_sequence",
];

thread_local! {
    /// Why the authorizer last refused a statement prepared on this thread (the callback runs
    /// on the preparing thread), for the error sentence.
    static REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The handle of an installed guard: marks our own statements trusted.
#[derive(Clone)]
pub struct Sandbox {
    trusted: Arc<AtomicBool>,
}

impl Sandbox {
    /// Installs the guard on `conn`: no attached databases, and the authorizer. Every
    /// statement is a user's until [`Sandbox::trusted`] says otherwise. `ledger_table` is
    /// the migrations ledger no user statement may write.
    pub fn install(conn: &mut Connection, ledger_table: &str) -> rusqlite::Result<Sandbox> {
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        let trusted = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&trusted);
        let ledger = ledger_table.to_ascii_lowercase();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if flag.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            match refusal(&ctx, &ledger) {
                Some(reason) => {
                    REFUSAL.with(|r| *r.borrow_mut() = Some(reason));
                    Authorization::Deny
                }
                None => Authorization::Allow,
            }
        }))?;
        Ok(Sandbox { trusted })
    }

    /// Runs `f` (our own statements: the ledger rows, its table) with the guard lifted.
    pub fn trusted<T>(&self, f: impl FnOnce() -> T) -> T {
        self.trusted.store(true, Ordering::Relaxed);
        let out = f();
        self.trusted.store(false, Ordering::Relaxed);
        out
    }
}

/// Why a refused statement was refused, when `e` is the guard's refusal: the authorizer's
/// reason (`SQLITE_AUTH`), or the attach limit (`too many attached databases`).
pub fn refusal_of(e: &rusqlite::Error) -> Option<String> {
    let (code, message) = match e {
        rusqlite::Error::SqliteFailure(err, msg) => (err.code, msg.as_deref().unwrap_or("")),
        rusqlite::Error::SqlInputError { error, msg, .. } => (error.code, msg.as_str()),
        _ => return None,
    };
    // A refused function comes back as SQLITE_ERROR "not authorized to use function".
    if code == rusqlite::ErrorCode::AuthorizationForStatementDenied
        || message.starts_with("not authorized")
    {
        return Some(take_refusal().unwrap_or_else(|| message.to_string()));
    }
    refusal_of_message(message)
}

/// [`refusal_of`] for an error known only by its code name and message (the raw C API path).
pub fn refusal_of_code(code: &str, message: &str) -> Option<String> {
    if code == "SQLITE_AUTH" || message.starts_with("not authorized") {
        return Some(take_refusal().unwrap_or_else(|| message.to_string()));
    }
    refusal_of_message(message)
}

fn refusal_of_message(message: &str) -> Option<String> {
    message.starts_with("too many attached databases").then(|| {
        "ATTACH (and VACUUM, which attaches its target) is refused: a statement may reach only its own database, as on D1".to_string()
    })
}

/// Takes the reason the authorizer last gave on this thread.
pub fn take_refusal() -> Option<String> {
    REFUSAL.with(|r| r.borrow_mut().take())
}

/// The policy: why `ctx` is refused, or `None` when it is allowed.
fn refusal(ctx: &AuthContext<'_>, ledger: &str) -> Option<String> {
    let protected = |table: &str| -> Option<String> {
        let t = table.to_ascii_lowercase();
        if t == ledger {
            Some(format!(
                "the migrations ledger {table} belongs to d1ops: a statement may not change it (use `d1ops ledger repair`)"
            ))
        } else if t.starts_with("_cf_") {
            Some(format!("{table} is reserved by D1 (the _cf_ prefix)"))
        } else if t.starts_with("sqlite_") && !SQLITE_TABLES_ALLOWED.contains(&t.as_str()) {
            Some(format!("{table} is SQLite's own table"))
        } else {
            None
        }
    };
    match &ctx.action {
        AuthAction::Attach { filename } => Some(format!(
            "ATTACH of {filename:?} is refused: a statement may reach only its own database, as on D1"
        )),
        AuthAction::Detach { database_name } => Some(format!(
            "DETACH of {database_name} is refused: no database is ever attached, as on D1"
        )),
        AuthAction::Function { function_name } => FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(function_name))
            .then(|| format!("{function_name}() is refused, as on D1")),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => pragma_refusal(pragma_name, *pragma_value),
        AuthAction::Insert { table_name } | AuthAction::Delete { table_name } => {
            protected(table_name)
        }
        AuthAction::Update { table_name, .. } => protected(table_name),
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. }
        | AuthAction::CreateVtable { table_name, .. }
        | AuthAction::DropVtable { table_name, .. } => protected(table_name),
        _ => None,
    }
}

fn pragma_refusal(name: &str, value: Option<&str>) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if PRAGMAS.contains(&lower.as_str()) {
        return None;
    }
    if READ_ONLY_PRAGMAS.contains(&lower.as_str()) {
        return value.map(|v| format!("PRAGMA {name} = {v} is refused: it may only be read"));
    }
    Some(format!(
        "PRAGMA {name} is refused: D1 allows only its documented pragmas ({})",
        PRAGMAS.join(", ")
    ))
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
