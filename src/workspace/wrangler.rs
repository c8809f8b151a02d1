//! Import of wrangler's `d1_databases` (from `wrangler.toml` or `wrangler.jsonc`) for `init`.
//!
//! Reads only; never writes wrangler files.
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WranglerD1 {
    pub binding: Option<String>,
    pub database_name: Option<String>,
    pub database_id: Option<String>,
    pub preview_database_id: Option<String>,
    pub migrations_dir: Option<String>,
    pub migrations_table: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WranglerFile {
    #[serde(default)]
    d1_databases: Vec<WranglerD1>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WranglerError {
    pub path: String,
    pub message: String,
}

/// The first `d1_databases` entry of `wrangler.toml` / `wrangler.jsonc` / `wrangler.json` in
/// `dir`, with the name of the file it came from; `None` when there is no wrangler file or it
/// declares no D1 database.
pub fn import(dir: &Path) -> Result<Option<(String, WranglerD1)>, WranglerError> {
    for name in ["wrangler.toml", "wrangler.jsonc", "wrangler.json"] {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(WranglerError {
                    path: path.display().to_string(),
                    message: format!("cannot read: {e}"),
                });
            }
        };
        let parsed: Result<WranglerFile, String> = if name.ends_with(".toml") {
            toml::from_str(&text).map_err(|e| e.message().to_string())
        } else {
            json5::from_str(&text).map_err(|e| e.to_string())
        };
        let file = parsed.map_err(|message| WranglerError {
            path: path.display().to_string(),
            message,
        })?;
        return Ok(file
            .d1_databases
            .into_iter()
            .next()
            .map(|d| (name.to_string(), d)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wrangler.toml"),
            "name = \"app\"\n[[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"prod\"\n\
             database_id = \"abc\"\nmigrations_dir = \"db/migrations\"\n\
             [[d1_databases]]\nbinding = \"OTHER\"\n",
        )
        .unwrap();
        let (file, d) = import(dir.path()).unwrap().unwrap();
        assert_eq!(file, "wrangler.toml");
        assert_eq!(d.binding.as_deref(), Some("DB"));
        assert_eq!(d.migrations_dir.as_deref(), Some("db/migrations"));
    }

    #[test]
    fn jsonc_with_comments_and_trailing_commas() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wrangler.jsonc"),
            "{\n // app\n \"d1_databases\": [ { \"binding\": \"DB\", \"database_name\": \"x\",\n \
             \"migrations_table\": \"ledger\", /* c */ }, ],\n}\n",
        )
        .unwrap();
        let (_, d) = import(dir.path()).unwrap().unwrap();
        assert_eq!(d.migrations_table.as_deref(), Some("ledger"));
    }

    #[test]
    fn broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wrangler.toml"), "[[d1_databases]\n").unwrap();
        let err = import(dir.path()).unwrap_err();
        assert!(err.to_string().contains("wrangler.toml"));
    }
}
