//! The workspace: a directory with `d1ops.toml`, its migrations folder and (local backend) the
//! `.d1ops/` state folder. Owns paths, configuration and migration discovery; no databases.
use std::path::{Path, PathBuf};

pub mod config;
pub mod files;
pub mod migrations;
pub mod secrets;
pub mod splitter;
pub mod wrangler;

pub use config::{Config, ConfigError};
pub use migrations::{DiscoveryError, Migration};

/// Name of the state folder inside a workspace.
pub const STATE_DIR: &str = ".d1ops";

/// A loaded workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub config: Config,
    /// `migrations_dir` is written in `d1ops.toml`: its folder must then exist.
    pub migrations_dir_set: bool,
}

impl Workspace {
    /// Loads the workspace at `root` (its `d1ops.toml` must exist).
    pub fn load(root: &Path) -> Result<Workspace, ConfigError> {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let loaded = Config::load_file(&root)?;
        Ok(Workspace {
            root,
            config: loaded.config,
            migrations_dir_set: loaded.migrations_dir_set,
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.root.join(&self.config.migrations_dir)
    }

    /// Every migration on disk, in apply order. A configured folder that does not exist,
    /// a file named like a migration that cannot be read as one, and a migration creating
    /// a table named like the migrations ledger are errors.
    pub fn migrations(&self) -> Result<Vec<Migration>, DiscoveryError> {
        let found = migrations::discover(
            &self.root,
            &self.config.migrations_dir,
            self.config.migrations_layout,
            self.migrations_dir_set,
        )?;
        migrations::check_ledger_name(&found, &self.config.migrations_table)?;
        Ok(found)
    }

    /// Whether the migrations folder uses the Drizzle journal layout.
    pub fn is_drizzle(&self) -> bool {
        migrations::detect_layout(&self.migrations_dir(), self.config.migrations_layout)
            == config::LayoutKind::Drizzle
    }
}

/// The result of `init`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitOutcome {
    pub config_path: String,
    pub imported_from: Option<String>,
    pub migrations_dir: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}: d1ops.toml already exists; edit it instead")]
    Exists(String),
    #[error(transparent)]
    Wrangler(#[from] wrangler::WranglerError),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{path}: cannot write: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `d1ops.toml` in `dir`, importing wrangler's first D1 database when present.
pub fn init(dir: &Path) -> Result<InitOutcome, InitError> {
    let path = dir.join(config::CONFIG_FILE);
    if path.exists() {
        return Err(InitError::Exists(path.display().to_string()));
    }
    let mut config = Config {
        migrations_dir: if dir.join("db").join("migrations").is_dir() {
            "db/migrations".into()
        } else {
            "migrations".into()
        },
        ..Config::default()
    };
    let imported = wrangler::import(dir)?;
    if let Some((from, d1)) = &imported {
        if let Some(m) = &d1.migrations_dir {
            config.migrations_dir = m.clone();
        }
        if let Some(t) = &d1.migrations_table {
            if let Some(problem) = config::ledger_name_problem(t) {
                return Err(InitError::Invalid {
                    file: dir.join(from).display().to_string(),
                    message: format!("d1_databases: {problem}"),
                });
            }
            config.migrations_table = t.clone();
        }
        config.database = Some(config::DatabaseBinding {
            binding: d1.binding.clone(),
            database_name: d1.database_name.clone(),
            database_id: d1.database_id.clone(),
            preview_database_id: d1.preview_database_id.clone(),
        });
    }
    let io = |source| InitError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    // The config names its migrations folder, so the folder exists from the start: a deploy
    // right after `init` is a code-only release, and a folder removed later is an error.
    let migrations = dir.join(&config.migrations_dir);
    if std::fs::symlink_metadata(&migrations).is_err() {
        std::fs::create_dir_all(&migrations).map_err(|source| InitError::Io {
            path: migrations.display().to_string(),
            source,
        })?;
    }
    std::fs::write(&path, config.to_toml()).map_err(io)?;
    Ok(InitOutcome {
        config_path: path.display().to_string(),
        imported_from: imported.map(|(f, _)| f),
        migrations_dir: config.migrations_dir,
    })
}
