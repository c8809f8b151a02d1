//! Statements as D1's `/query` runs them: a batch of `{sql, params}` items, every statement
//! with D1's `meta` (duration, rows read, rows written, changes, last row id, changed_db,
//! size_after). These types are the same whichever backend runs the batch (the local one
//! measures, D1 reports); they carry no release, environment or metrics knowledge.
use serde::{Deserialize, Serialize};

/// One item of a batch: SQL (one statement, or several joined by `;`) and its positional
/// parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecStatement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
}

impl ExecStatement {
    pub fn new(sql: impl Into<String>, params: Vec<serde_json::Value>) -> ExecStatement {
        ExecStatement {
            sql: sql.into(),
            params,
        }
    }
}

/// How a batch may run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Statements that change the database are refused (before they run) unless set.
    pub allow_writes: bool,
    /// Run the batch inside a transaction that is always rolled back: the statements do their
    /// work and take their locks, but the data stays as it was (traffic replay of writes).
    pub rollback: bool,
}

/// D1's `meta` for one statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ExecMeta {
    /// Time inside the database: prepare, bind and step every row (D1's `duration`).
    pub duration_ms: f64,
    /// Rows scanned, index entries included (D1's meaning; see the backend for how).
    pub rows_read: u64,
    /// Rows and index entries written.
    pub rows_written: u64,
    /// Rows inserted, updated or deleted (triggers and foreign-key actions included).
    pub changes: u64,
    pub last_row_id: i64,
    /// Whether the statement changed the database (data or schema).
    pub changed_db: bool,
    /// Database size in bytes after the batch.
    pub size_after: u64,
}

/// A statement that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StatementResult {
    /// The statement's own text (one statement of its item).
    pub sql: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub meta: ExecMeta,
    /// Whether SQLite judged it read-only (`sqlite3_stmt_readonly`).
    pub readonly: bool,
}

/// Why a statement did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// SQLite (or the bindings) reported an error.
    Sql,
    /// The statement writes and the batch was not allowed to.
    Refused,
}

/// The statement that failed; everything before it in the batch was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementFailure {
    pub kind: FailureKind,
    /// Position among the batch's statements (after splitting items on `;`).
    pub index: usize,
    pub sql: String,
    /// SQLite's primary result code name (`SQLITE_ERROR`, `SQLITE_CONSTRAINT`, …), as D1
    /// reports it.
    pub code: String,
    /// SQLite's message.
    pub message: String,
    /// Byte offset of the error in `sql`, when SQLite knows it.
    pub offset: Option<usize>,
    pub duration_ms: f64,
}

impl StatementFailure {
    /// The message as D1 words it: `no such table: t at offset 14: SQLITE_ERROR`.
    pub fn d1_message(&self) -> String {
        match self.offset {
            Some(at) => format!("{} at offset {at}: {}", self.message, self.code),
            None => format!("{}: {}", self.message, self.code),
        }
    }
}

/// What a batch did: the statements that ran, in order, and the one that failed, if any (a
/// failure rolls the whole batch back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BatchOutcome {
    pub results: Vec<StatementResult>,
    pub failure: Option<StatementFailure>,
}

impl BatchOutcome {
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }

    /// A batch that failed before any statement ran.
    pub fn failed(failure: StatementFailure) -> BatchOutcome {
        BatchOutcome {
            results: Vec::new(),
            failure: Some(failure),
        }
    }
}
