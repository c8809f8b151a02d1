//! Import of wrangler's `d1_databases` (from `wrangler.toml` or `wrangler.jsonc`) for `init`.
//!
//! Reads only; never writes wrangler files.
use std::path::Path;

use serde::Deserialize;

use super::{files, secrets};

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
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    compatibility_date: Option<String>,
    #[serde(default)]
    compatibility_flags: Option<Vec<String>>,
}

/// What a `worker` target takes from wrangler's config when `d1ops.toml` does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerDefaults {
    /// The file it came from (`wrangler.toml`…).
    pub file: String,
    pub name: Option<String>,
    pub compatibility_date: Option<String>,
    pub compatibility_flags: Vec<String>,
}

/// The Worker's name, compatibility date and flags from the wrangler file in `dir`; `None`
/// when there is no wrangler file.
pub fn worker_defaults(dir: &Path) -> Result<Option<WorkerDefaults>, WranglerError> {
    Ok(read(dir)?.map(|(file, w)| WorkerDefaults {
        file,
        name: w.name,
        compatibility_date: w.compatibility_date,
        compatibility_flags: w.compatibility_flags.unwrap_or_default(),
    }))
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
    Ok(read(dir)?.and_then(|(name, file)| {
        file.d1_databases
            .into_iter()
            .next()
            .map(|d| (name.to_string(), d))
    }))
}

/// The first wrangler file in `dir` (`wrangler.toml`, `.jsonc`, `.json`), parsed, with its
/// name.
fn read(dir: &Path) -> Result<Option<(String, WranglerFile)>, WranglerError> {
    for name in ["wrangler.toml", "wrangler.jsonc", "wrangler.json"] {
        let path = dir.join(name);
        let shown = path.display().to_string();
        let fail = |message: String| WranglerError {
            path: shown.clone(),
            message,
        };
        let bytes = match files::read_limited(&path, &shown, name, files::WRANGLER_LIMIT) {
            Ok(b) => b,
            Err(e) if e.is_missing() => continue,
            // The error names the path itself; keep only the reason.
            Err(e) => {
                let text = e.to_string();
                let reason = text.strip_prefix(&format!("{shown}: ")).unwrap_or(&text);
                return Err(fail(reason.to_string()));
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            let (line, column) =
                secrets::line_column(&String::from_utf8_lossy(e.as_bytes()), offset);
            fail(format!(
                "line {line}, column {column}: not valid UTF-8; save the file as UTF-8"
            ))
        })?;
        // Wrangler files hold `[vars]` and other secrets: errors never quote the source and
        // redact every value that could be one.
        let parsed: Result<WranglerFile, String> = if name.ends_with(".toml") {
            toml::from_str(&text).map_err(|e| {
                let (at, message) = secrets::toml_error(&e, &text);
                match at {
                    Some((line, column)) => format!("line {line}, column {column}: {message}"),
                    None => message,
                }
            })
        } else {
            json5::from_str(&text).map_err(|e| json5_message(&e, &text))
        };
        let file = parsed.map_err(fail)?;
        return Ok(Some((name.to_string(), file)));
    }
    Ok(None)
}

/// A JSON5 error as `line N, column M: message`, with secret values redacted (json5's own
/// messages carry no source excerpt, but serde's type errors quote values).
fn json5_message(e: &json5::Error, text: &str) -> String {
    let message = match e.code() {
        Some(code) => code.to_string(),
        None => secrets::redact(
            &secrets::one_line(&e.to_string()),
            &secrets::secret_values(text),
        ),
    };
    // Display appends " at line L column C" itself; drop it and give the position first.
    let message = match message.rfind(" at line ") {
        Some(p) => message[..p].to_string(),
        None => message,
    };
    match e.position() {
        Some(p) => format!("line {}, column {}: {message}", p.line + 1, p.column + 1),
        None => message,
    }
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
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn errors_never_show_secrets() {
        let dir = tempfile::tempdir().unwrap();
        for (file, text) in [
            (
                "wrangler.toml",
                "[vars]\nAPI_KEY = \"s3cr3t-wrangler\n[[d1_databases]]\nbinding = \"DB\"\n",
            ),
            (
                "wrangler.toml",
                "[[d1_databases]]\nbinding = \"DB\"\napiToken = s3cr3t-wrangler\n",
            ),
            (
                "wrangler.jsonc",
                "{ \"vars\": { \"apiToken\": \"s3cr3t-wrangler\" },\n \"d1_databases\": [{ \"binding\": 3, \"secret\": \"s3cr3t-wrangler\" }] }",
            ),
            (
                "wrangler.jsonc",
                "{ \"vars\": { \"apiToken\": \"s3cr3t-wrangler },\n",
            ),
        ] {
            let _ = std::fs::remove_file(dir.path().join("wrangler.toml"));
            let _ = std::fs::remove_file(dir.path().join("wrangler.jsonc"));
            std::fs::write(dir.path().join(file), text).unwrap();
            let err = import(dir.path()).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{text}: {err}");
            assert!(err.contains(file) && err.contains("line "), "{text}: {err}");
        }
    }
}
