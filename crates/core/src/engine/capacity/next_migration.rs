//! The workspace's next migration file: where it goes in the layout (wrangler
//! `NNNN_name.sql`, Drizzle with its journal entry, nested `NNNN_name/migration.sql`) and
//! writing a suggested index there. Never overwrites a file and never writes an index twice.
use std::path::PathBuf;

use super::IndexSuggestion;
use crate::engine::{Engine, EngineError, Result};
use crate::workspace::config::LayoutKind;
use crate::workspace::migrations::{detect_layout, leading_number};

impl Engine {
    /// Writes `s` as the workspace's next migration file and returns its path relative to
    /// the workspace. Never overwrites a file.
    pub fn write_index_migration(&self, s: &IndexSuggestion) -> Result<String> {
        self.ensure_writable("writing a migration")?;
        let needle = s.sql.to_lowercase();
        if let Some(m) =
            (self.ws.migrations()?.iter()).find(|m| m.sql.to_lowercase().contains(&needle))
        {
            return Err(EngineError::Input(format!(
                "{} already creates {}; deploy it instead of writing it again",
                m.path, s.name
            )));
        }
        let next = self.next_migration(&s.name)?;
        let body = format!(
            "-- Suggested by d1ops from the query plan of:\n--   {}\n-- {}\n{};\n",
            crate::backend::one_line(&s.query, 200),
            s.reason,
            s.sql
        );
        let io =
            |e: std::io::Error| EngineError::Input(format!("cannot write {}: {e}", next.shown));
        if let Some(parent) = next.path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&next.path)
            .map_err(io)?;
        std::io::Write::write_all(&mut file, body.as_bytes()).map_err(io)?;
        if let Some((journal, text)) = next.journal {
            std::fs::write(&journal, text).map_err(io)?;
        }
        Ok(next.shown)
    }

    /// Where the next migration named `stem` goes in this workspace's layout: numbered one
    /// past the highest number on disk or applied to production, as wide as the existing
    /// numbers (wrangler's `NNNN_name.sql` by default).
    pub(super) fn next_migration(&self, stem: &str) -> Result<NextMigration> {
        let dir = self.ws.migrations_dir();
        let layout = detect_layout(&dir, self.ws.config.migrations_layout);
        let on_disk = self.ws.migrations()?;
        let applied = self.production_ledger().unwrap_or_default();
        let names = on_disk
            .iter()
            .map(|m| m.name.as_str())
            .chain(applied.iter().map(|r| r.name.as_str()));
        let mut highest = 0;
        let mut width = 4;
        for name in names {
            if let Some(n) = leading_number(name) {
                highest = highest.max(n);
                width = width.max(name.chars().take_while(char::is_ascii_digit).count());
            }
        }
        let tag = format!("{:0width$}_{stem}", highest + 1);
        let rel = &self.ws.config.migrations_dir;
        let (path, shown, journal) = match layout {
            LayoutKind::Nested => (
                dir.join(&tag).join("migration.sql"),
                format!("{rel}/{tag}/migration.sql"),
                None,
            ),
            LayoutKind::Drizzle => (
                dir.join(format!("{tag}.sql")),
                format!("{rel}/{tag}.sql"),
                Some(drizzle_journal(&dir, &tag)?),
            ),
            LayoutKind::Wrangler | LayoutKind::Auto => (
                dir.join(format!("{tag}.sql")),
                format!("{rel}/{tag}.sql"),
                None,
            ),
        };
        Ok(NextMigration {
            path,
            shown,
            journal,
        })
    }
}

pub(super) struct NextMigration {
    path: PathBuf,
    pub(super) shown: String,
    /// Drizzle: the journal file and its new text with the entry appended.
    journal: Option<(PathBuf, String)>,
}

/// Drizzle's `meta/_journal.json` with an entry for `tag` appended (other fields kept).
fn drizzle_journal(dir: &std::path::Path, tag: &str) -> Result<(PathBuf, String)> {
    let path = dir.join("meta").join("_journal.json");
    let bad = |why: String| EngineError::Input(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let mut journal: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let entries = journal
        .get_mut("entries")
        .and_then(|e| e.as_array_mut())
        .ok_or_else(|| bad("has no \"entries\" array".into()))?;
    let idx = (entries.iter())
        .filter_map(|e| e.get("idx").and_then(serde_json::Value::as_u64))
        .max()
        .map_or(0, |i| i + 1);
    let version = (entries.last())
        .and_then(|e| e.get("version").cloned())
        .unwrap_or_else(|| "6".into());
    entries.push(serde_json::json!({
        "idx": idx,
        "version": version,
        "when": crate::model::now_utc().timestamp_millis(),
        "tag": tag,
        "breakpoints": true,
    }));
    let text = serde_json::to_string_pretty(&journal).map_err(|e| bad(e.to_string()))?;
    Ok((path, format!("{text}\n")))
}
