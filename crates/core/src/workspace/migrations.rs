//! Migration discovery: finds, orders, reads, checksums and splits migration files.
//!
//! Layouts: wrangler (`NNNN_name.sql`, numeric order), Drizzle (`meta/_journal.json` order,
//! `--> statement-breakpoint`), nested (`*/migration.sql`). Owns no database access.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config::LayoutKind;
use super::files::{self, FileError};
use super::splitter::{Split, SplitError, Statement, split_statements};

const DRIZZLE_BREAKPOINT: &str = "--> statement-breakpoint";
/// Declares that a migration intentionally removes rows from the named tables.
pub const ALLOW_DATA_LOSS: &str = "d1ops:allow-data-loss";

/// One migration file, read and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The ledger name (wrangler: the file name, e.g. `0001_init.sql`; nested: the folder).
    pub name: String,
    /// The numeric prefix of the name, when it has one.
    pub number: Option<u64>,
    /// Path relative to the workspace root, `/`-separated, for messages.
    pub path: String,
    pub sql: String,
    /// sha256 of the raw bytes.
    pub sha256: String,
    /// sha256 after CRLF/CR → LF, so a checkout with other line endings is not drift.
    pub sha256_normalized: String,
    pub statements: Vec<Statement>,
    /// Tables this migration declares it may remove rows from.
    pub allow_data_loss: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not valid UTF-8 (byte {offset} of the file); save it as UTF-8")]
    NotUtf8 {
        path: String,
        line: usize,
        offset: usize,
    },
    #[error("{path}:{line}: {message}")]
    Sql {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{first} and {second} share migration number {number}; renumber one of them")]
    DuplicateNumber {
        first: String,
        second: String,
        number: u64,
    },
    #[error("{path}: migration file names must start with a number (NNNN_name.sql)")]
    Unnumbered { path: String },
    #[error("{path}: {message}")]
    Journal { path: String, message: String },
    /// A file named like a migration that is not a readable regular file, or one too large.
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "migrations folder {dir} does not exist (migrations_dir in d1ops.toml); create it, or remove migrations_dir from d1ops.toml for a workspace without migrations"
    )]
    MissingFolder { dir: String },
    #[error("migrations folder {dir} is {kind}, not a folder (migrations_dir in d1ops.toml)")]
    NotAFolder { dir: String, kind: String },
    #[error(
        "{path}:{line}: creates {table:?}, the table migrations_table in d1ops.toml names for the migrations ledger; give the ledger its own name (wrangler's default is \"d1_migrations\") before anything is applied"
    )]
    LedgerClash {
        path: String,
        line: usize,
        table: String,
    },
}

impl Migration {
    /// Builds a migration from its text (used for files and for SQL stored in a release).
    pub fn from_sql(
        name: &str,
        path: &str,
        sql: String,
        drizzle: bool,
    ) -> Result<Migration, DiscoveryError> {
        let split = if drizzle {
            split_drizzle(&sql)
        } else {
            split_statements(&sql)
        }
        .map_err(|e| DiscoveryError::Sql {
            path: path.to_string(),
            line: e.line(),
            message: e
                .to_string()
                .split_once(": ")
                .map_or(e.to_string(), |(_, m)| m.to_string()),
        })?;
        let allow_data_loss = split
            .all_comments()
            .filter_map(|c| c.strip_prefix(ALLOW_DATA_LOSS))
            .flat_map(|rest| {
                rest.split([',', ' ', '\t'])
                    .filter(|t| !t.is_empty())
                    .map(|t| t.trim_matches(['"', '`', '[', ']']).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Migration {
            name: name.to_string(),
            number: leading_number(name),
            path: path.to_string(),
            sha256: hex::encode(Sha256::digest(sql.as_bytes())),
            sha256_normalized: normalized_sha256(&sql),
            statements: split.statements,
            allow_data_loss,
            sql,
        })
    }
}

/// sha256 of the text with CRLF and lone CR turned into LF.
pub fn normalized_sha256(sql: &str) -> String {
    let normalized = sql.replace("\r\n", "\n").replace('\r', "\n");
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// The digits a name starts with, as a number.
pub fn leading_number(name: &str) -> Option<u64> {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn split_drizzle(sql: &str) -> Result<Split, SplitError> {
    let mut out = Split::default();
    let mut line_offset = 0usize;
    for part in sql.split(DRIZZLE_BREAKPOINT) {
        let mut s = split_statements(part).map_err(|e| match e {
            SplitError::Unterminated { line, what } => SplitError::Unterminated {
                line: line + line_offset,
                what,
            },
            SplitError::Nul { line } => SplitError::Nul {
                line: line + line_offset,
            },
        })?;
        for st in &mut s.statements {
            st.line += line_offset;
        }
        out.statements.extend(s.statements);
        out.trailing_comments.extend(s.trailing_comments);
        line_offset += part.matches('\n').count();
    }
    Ok(out)
}

/// Which layout a migrations folder uses, resolving `auto`.
pub fn detect_layout(dir: &Path, configured: LayoutKind) -> LayoutKind {
    if configured != LayoutKind::Auto {
        return configured;
    }
    // Present in any form: a journal or a `migration.sql` that cannot be read is reported
    // by discovery, not taken as another layout.
    let present = |p: PathBuf| std::fs::symlink_metadata(p).is_ok();
    if present(dir.join("meta").join("_journal.json")) {
        return LayoutKind::Drizzle;
    }
    let nested = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().is_dir() && present(e.path().join("migration.sql")));
    if nested {
        LayoutKind::Nested
    } else {
        LayoutKind::Wrangler
    }
}

/// Finds and reads every migration under `root/dir`, in apply order. A missing folder means
/// no migrations (a code-only workspace) unless `required` (the folder is configured
/// explicitly), when it is an error. Every file named like a migration is read or refused:
/// a dangling symlink, directory, FIFO, socket or device is an error naming it, and so is a
/// file over [`files::MIGRATION_LIMIT`].
pub fn discover(
    root: &Path,
    dir: &str,
    layout: LayoutKind,
    required: bool,
) -> Result<Vec<Migration>, DiscoveryError> {
    let abs = root.join(dir);
    match std::fs::metadata(&abs) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            return Err(DiscoveryError::NotAFolder {
                dir: dir.to_string(),
                kind: files::kind_of(&m).to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(&abs).is_ok() {
                return Err(DiscoveryError::NotAFolder {
                    dir: dir.to_string(),
                    kind: "a symbolic link to something that does not exist".into(),
                });
            }
            if required {
                return Err(DiscoveryError::MissingFolder {
                    dir: dir.to_string(),
                });
            }
            return Ok(Vec::new());
        }
        Err(source) => {
            return Err(DiscoveryError::Io {
                path: dir.to_string(),
                source,
            });
        }
    }
    let layout = detect_layout(&abs, layout);
    let files = match layout {
        LayoutKind::Drizzle => drizzle_files(&abs, dir)?,
        LayoutKind::Nested => nested_files(&abs, dir)?,
        LayoutKind::Wrangler | LayoutKind::Auto => wrangler_files(&abs, dir)?,
    };
    let drizzle = layout == LayoutKind::Drizzle;
    let mut out: Vec<Migration> = Vec::with_capacity(files.len());
    for (name, path) in files {
        let shown = shown_path(dir, &abs, &path);
        let read = files::read_text(&path, &shown, "a migration file", files::MIGRATION_LIMIT)?;
        let sql = read.map_err(|(bytes, offset)| {
            let line = 1 + bytes[..offset].iter().filter(|b| **b == b'\n').count();
            DiscoveryError::NotUtf8 {
                path: shown.clone(),
                line,
                offset,
            }
        })?;
        out.push(Migration::from_sql(&name, &shown, sql, drizzle)?);
    }
    if layout != LayoutKind::Drizzle {
        check_unique_numbers(&out)?;
    }
    Ok(out)
}

/// `dir/relative/path`, `/`-separated, for messages.
fn shown_path(dir: &str, abs: &Path, path: &Path) -> String {
    format!("{dir}/{}", path.strip_prefix(abs).unwrap_or(path).display()).replace('\\', "/")
}

/// Refuses a migration that creates a table, view or virtual table named like the
/// migrations ledger (or renames one to it): the ledger would be that table, and d1ops and
/// wrangler would read the app's rows as applied migrations.
pub fn check_ledger_name(migrations: &[Migration], ledger: &str) -> Result<(), DiscoveryError> {
    for m in migrations {
        for st in &m.statements {
            if let Some(table) = created_name(&st.sql)
                && table.eq_ignore_ascii_case(ledger)
            {
                return Err(DiscoveryError::LedgerClash {
                    path: m.path.clone(),
                    line: st.line,
                    table,
                });
            }
        }
    }
    Ok(())
}

/// The table or view a statement creates (`CREATE [TEMP] [VIRTUAL] TABLE|VIEW [IF NOT
/// EXISTS] [schema.]name`) or renames a table to (`ALTER TABLE t RENAME TO name`).
fn created_name(sql: &str) -> Option<String> {
    let tokens = crate::schema::sqltext::tokenize(sql);
    let mut t = tokens.iter().peekable();
    let first = t.next()?;
    if first.is_word("create") {
        while t
            .peek()
            .is_some_and(|w| w.is_word("temp") || w.is_word("temporary") || w.is_word("virtual"))
        {
            t.next();
        }
        let kind = t.next()?;
        if !(kind.is_word("table") || kind.is_word("view")) {
            return None;
        }
        if t.peek().is_some_and(|w| w.is_word("if")) {
            // IF NOT EXISTS
            t.nth(2);
        }
        return qualified_name(&mut t);
    }
    if first.is_word("alter") && t.next()?.is_word("table") {
        qualified_name(&mut t)?;
        if t.next()?.is_word("rename") && t.next()?.is_word("to") {
            return qualified_name(&mut t);
        }
    }
    None
}

/// `name` or `schema.name` at the head of `t`: the name.
fn qualified_name<'a, I>(t: &mut std::iter::Peekable<I>) -> Option<String>
where
    I: Iterator<Item = &'a crate::schema::sqltext::Token<'a>>,
{
    let mut name = t.next()?.name()?;
    if t.peek().is_some_and(|p| p.is_punct(".")) {
        t.next();
        name = t.next()?.name()?;
    }
    Some(name)
}

fn check_unique_numbers(migrations: &[Migration]) -> Result<(), DiscoveryError> {
    for pair in migrations.windows(2) {
        if let (Some(a), Some(b)) = (pair[0].number, pair[1].number)
            && a == b
        {
            return Err(DiscoveryError::DuplicateNumber {
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
                number: a,
            });
        }
    }
    Ok(())
}

fn read_dir_sorted(abs: &Path) -> Result<Vec<PathBuf>, DiscoveryError> {
    let io = |source| DiscoveryError::Io {
        path: abs.display().to_string(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(abs).map_err(io)? {
        entries.push(entry.map_err(io)?.path());
    }
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn order_by_number(mut files: Vec<(String, PathBuf)>) -> Vec<(String, PathBuf)> {
    files.sort_by(|a, b| (leading_number(&a.0), &a.0).cmp(&(leading_number(&b.0), &b.0)));
    files
}

/// Whether a directory entry is an editor's lock file (Emacs' `.#name` symlinks), which is
/// not a migration and may dangle by design.
fn is_editor_lock(path: &Path, name: &str) -> bool {
    name.starts_with(".#")
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn wrangler_files(abs: &Path, dir: &str) -> Result<Vec<(String, PathBuf)>, DiscoveryError> {
    let mut files = Vec::new();
    for path in read_dir_sorted(abs)? {
        let name = file_name(&path);
        if !name.ends_with(".sql") || is_editor_lock(&path, &name) {
            continue;
        }
        // Named like a migration: it is read, or refused with a reason.
        files::regular_metadata(&path, &shown_path(dir, abs, &path))?;
        if leading_number(&name).is_none() {
            return Err(DiscoveryError::Unnumbered {
                path: path.display().to_string(),
            });
        }
        files.push((name, path));
    }
    Ok(order_by_number(files))
}

fn nested_files(abs: &Path, dir: &str) -> Result<Vec<(String, PathBuf)>, DiscoveryError> {
    let mut files = Vec::new();
    for path in read_dir_sorted(abs)? {
        let sql = path.join("migration.sql");
        if !path.is_dir() || std::fs::symlink_metadata(&sql).is_err() {
            continue;
        }
        files::regular_metadata(&sql, &shown_path(dir, abs, &sql))?;
        files.push((file_name(&path), sql));
    }
    Ok(order_by_number(files))
}

#[derive(Deserialize)]
struct Journal {
    entries: Vec<JournalEntry>,
}

#[derive(Deserialize)]
struct JournalEntry {
    idx: u64,
    tag: String,
}

fn drizzle_files(abs: &Path, dir: &str) -> Result<Vec<(String, PathBuf)>, DiscoveryError> {
    let journal_path = abs.join("meta").join("_journal.json");
    let shown = format!("{dir}/meta/_journal.json");
    let bytes = files::read_limited(
        &journal_path,
        &shown,
        "a Drizzle journal",
        files::JOURNAL_LIMIT,
    )?;
    let text = String::from_utf8(bytes).map_err(|_| DiscoveryError::Journal {
        path: shown.clone(),
        message: "not valid UTF-8".into(),
    })?;
    let mut journal: Journal =
        serde_json::from_str(&text).map_err(|e| DiscoveryError::Journal {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    journal.entries.sort_by_key(|e| e.idx);
    let mut files = Vec::new();
    for entry in journal.entries {
        if entry.tag.contains(['/', '\\']) || entry.tag.contains("..") {
            return Err(DiscoveryError::Journal {
                path: shown,
                message: format!("entry {} has an unsafe tag {:?}", entry.idx, entry.tag),
            });
        }
        let name = format!("{}.sql", entry.tag);
        let path = abs.join(&name);
        match files::regular_metadata(&path, &format!("{dir}/{name}")) {
            Ok(_) => {}
            Err(e) if e.is_missing() => {
                return Err(DiscoveryError::Journal {
                    path: shown,
                    message: format!(
                        "entry {} names {dir}/{name}, which does not exist",
                        entry.idx
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        }
        files.push((name, path));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn names(m: &[Migration]) -> Vec<&str> {
        m.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn wrangler_numeric_order() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "migrations/10_c.sql", b"SELECT 3;");
        write(d.path(), "migrations/2_b.sql", b"SELECT 2;");
        write(d.path(), "migrations/0001_a.sql", b"SELECT 1;");
        write(d.path(), "migrations/notes.md", b"x");
        let m = discover(d.path(), "migrations", LayoutKind::Auto, false).unwrap();
        assert_eq!(names(&m), ["0001_a.sql", "2_b.sql", "10_c.sql"]);
        assert_eq!(m[0].path, "migrations/0001_a.sql");
    }

    #[test]
    fn drizzle_journal_order_and_breakpoints() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "db/migrations/meta/_journal.json",
            br#"{"version":"7","dialect":"sqlite","entries":[{"idx":1,"tag":"0001_b","when":2,"breakpoints":true},{"idx":0,"tag":"0000_a","when":1,"breakpoints":true}]}"#,
        );
        write(
            d.path(),
            "db/migrations/0000_a.sql",
            b"CREATE TABLE `a` (`x` integer);\n--> statement-breakpoint\nCREATE INDEX `i` ON `a` (`x`);",
        );
        write(d.path(), "db/migrations/0001_b.sql", b"SELECT 1;");
        let m = discover(d.path(), "db/migrations", LayoutKind::Auto, false).unwrap();
        assert_eq!(names(&m), ["0000_a.sql", "0001_b.sql"]);
        assert_eq!(m[0].statements.len(), 2);
        assert_eq!(m[0].statements[1].line, 3);
    }

    #[test]
    fn nested_layout() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "migrations/20240102_b/migration.sql",
            b"SELECT 2;",
        );
        write(
            d.path(),
            "migrations/20240101_a/migration.sql",
            b"SELECT 1;",
        );
        let m = discover(d.path(), "migrations", LayoutKind::Auto, false).unwrap();
        assert_eq!(names(&m), ["20240101_a", "20240102_b"]);
    }

    #[test]
    fn checksums_raw_and_normalized() {
        let a = Migration::from_sql("1.sql", "1.sql", "SELECT 1;\r\n".into(), false).unwrap();
        let b = Migration::from_sql("1.sql", "1.sql", "SELECT 1;\n".into(), false).unwrap();
        assert_ne!(a.sha256, b.sha256);
        assert_eq!(a.sha256_normalized, b.sha256_normalized);
    }

    #[test]
    fn bad_inputs_are_named() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "migrations/0001_a.sql", b"SELECT 1;\n\xff");
        let e = discover(d.path(), "migrations", LayoutKind::Auto, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("migrations/0001_a.sql:2: not valid UTF-8"),
            "{e}"
        );

        let d = tempfile::tempdir().unwrap();
        write(d.path(), "migrations/0001_a.sql", b"SELECT 1;");
        write(d.path(), "migrations/0001_b.sql", b"SELECT 1;");
        let e = discover(d.path(), "migrations", LayoutKind::Auto, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("share migration number 1"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "migrations/0001_a.sql",
            b"SELECT 1;\nSELECT 'x;\n",
        );
        let e = discover(d.path(), "migrations", LayoutKind::Auto, false)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "migrations/0001_a.sql:2: unterminated string literal");
    }

    #[test]
    fn data_loss_directive() {
        let m = Migration::from_sql(
            "1.sql",
            "1.sql",
            "-- d1ops:allow-data-loss sessions, tokens\nDELETE FROM sessions;".into(),
            false,
        )
        .unwrap();
        assert_eq!(m.allow_data_loss, ["sessions", "tokens"]);
    }
}
