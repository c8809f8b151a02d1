//! Builds the backend a workspace names: local SQLite files, or a Cloudflare account whose
//! token comes from the environment only. The Cloudflare half needs the core's `d1` feature;
//! without it `backend = "cloudflare"` is refused with [`NO_D1`].
#[cfg(feature = "d1")]
use std::time::Duration;

use super::{EngineError, Result};
#[cfg(feature = "d1")]
use crate::backend::CloudflareBackend;
use crate::backend::{Backend, LocalBackend};
#[cfg(feature = "d1")]
use crate::cloudflare::{ACCOUNT_ENV, API_BASE, ApiToken, BASE_ENV, Client, Settings, TOKEN_ENV};
use crate::workspace::Workspace;
use crate::workspace::config::BackendKind;
#[cfg(feature = "d1")]
use crate::workspace::config::CloudflareConfig;

/// Why a build without the `d1` feature cannot open a workspace on `backend = "cloudflare"`.
pub const NO_D1: &str =
    "backend = \"cloudflare\": this build of d1ops has no D1 backend (feature d1)";

/// The local backend of `ws`: its database folder, statement timeout and ledger (which the
/// sandbox on every connection protects).
pub fn local_backend_for(ws: &Workspace) -> LocalBackend {
    LocalBackend::new(&ws.state_dir())
        .with_statement_timeout(ws.config.statement_timeout())
        .with_ledger_table(&ws.config.migrations_table)
}

/// The backend of `ws`.
pub fn backend_for(ws: &Workspace) -> Result<Box<dyn Backend>> {
    match ws.config.backend {
        BackendKind::Local => Ok(Box::new(local_backend_for(ws))),
        #[cfg(feature = "d1")]
        BackendKind::Cloudflare => Ok(Box::new(cloudflare_backend(ws)?)),
        #[cfg(not(feature = "d1"))]
        BackendKind::Cloudflare => Err(EngineError::Input(NO_D1.into())),
    }
}

/// Where a Cloudflare workspace points, without the token: for headers and messages.
#[cfg(feature = "d1")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudflareTarget {
    pub account_id: String,
    pub database_id: String,
    pub base: String,
}

/// The account, production database and API base a Cloudflare workspace uses.
#[cfg(feature = "d1")]
pub fn cloudflare_target(ws: &Workspace) -> Result<CloudflareTarget> {
    let cfg = ws.config.cloudflare.clone().unwrap_or_default();
    let account_id = cfg
        .account_id
        .clone()
        .or_else(|| std::env::var(ACCOUNT_ENV).ok().filter(|s| !s.trim().is_empty()))
        .ok_or_else(|| {
            EngineError::Input(format!(
                "backend = \"cloudflare\" needs an account: set [cloudflare].account_id in d1ops.toml or {ACCOUNT_ENV}"
            ))
        })?;
    let database_id = cfg
        .database_id
        .clone()
        .or_else(|| ws.config.database.as_ref().and_then(|d| d.database_id.clone()))
        .ok_or_else(|| {
            EngineError::Input(
                "backend = \"cloudflare\" needs production's database id: set [cloudflare].database_id in d1ops.toml (or database_id in wrangler's d1_databases, then `d1ops init`)".into(),
            )
        })?;
    let base = std::env::var(BASE_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| API_BASE.to_string());
    Ok(CloudflareTarget {
        account_id: account_id.trim().to_string(),
        database_id: database_id.trim().to_string(),
        base: base.trim().trim_end_matches('/').to_string(),
    })
}

impl super::Engine {
    /// The Cloudflare account this workspace talks to (cloudflare backend only). Not a
    /// secret, but views show it shortened.
    pub fn cloudflare_account(&self) -> Option<String> {
        if self.ws.config.backend != BackendKind::Cloudflare {
            return None;
        }
        #[cfg(feature = "d1")]
        {
            cloudflare_target(&self.ws).ok().map(|t| t.account_id)
        }
        // Without the D1 backend no engine opens on Cloudflare.
        #[cfg(not(feature = "d1"))]
        None
    }
}

/// A REST client for the workspace's account (token from `CLOUDFLARE_API_TOKEN`).
#[cfg(feature = "d1")]
pub fn cloudflare_client(ws: &Workspace) -> Result<(Client, CloudflareTarget, CloudflareConfig)> {
    let target = cloudflare_target(ws)?;
    let cfg = ws.config.cloudflare.clone().unwrap_or_default();
    let token = ApiToken::from_env().ok_or_else(|| {
        EngineError::Input(format!(
            "backend = \"cloudflare\" needs an API token in {TOKEN_ENV} (permissions: Account · D1 · Edit, and Account · Account Analytics · Read for the monitor)"
        ))
    })?;
    forbid_core_dumps();
    let backoff = std::env::var("D1OPS_CLOUDFLARE_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_millis(250), Duration::from_millis);
    let client = Client::new(Settings {
        base: target.base.clone(),
        account_id: target.account_id.clone(),
        token,
        timeout: cfg.timeout(),
        retries: cfg.retries,
        backoff,
    })
    .map_err(|e| EngineError::Input(e.to_string()))?;
    Ok((client, target, cfg))
}

/// Marks the process non-dumpable once it holds the API token: no core dump is written (a
/// core file would hold the token) and other processes of the same user cannot ptrace it or
/// read its memory through `/proc`. It stays so for the life of the process.
#[cfg(feature = "d1")]
fn forbid_core_dumps() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes plain integer arguments and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!("could not mark the process non-dumpable while it holds the API token");
        }
    }
}

/// How long `apply` waits on a lost answer before production's ledger decides: the
/// configured statement limit, or D1's own 30 s when the limit is off (D1 stops every
/// query by then anyway).
#[cfg(feature = "d1")]
fn d1_query_limit(ws: &Workspace) -> Duration {
    if ws.config.has_statement_timeout() {
        ws.config.statement_timeout()
    } else {
        Duration::from_secs(30)
    }
}

#[cfg(feature = "d1")]
fn cloudflare_backend(ws: &Workspace) -> Result<CloudflareBackend> {
    let (client, target, cfg) = cloudflare_client(ws)?;
    let prefix = ws
        .config
        .database
        .as_ref()
        .and_then(|d| d.database_name.clone())
        .unwrap_or_else(|| "d1ops".into());
    Ok(CloudflareBackend::new(
        client,
        &target.database_id,
        &prefix,
        cfg.preview_seed,
        &ws.config.migrations_table,
        cfg.max_batch_statements,
        cfg.max_batch_bytes,
    )
    .with_query_limit(d1_query_limit(ws)))
}

#[cfg(all(test, target_os = "linux", feature = "d1"))]
mod tests {
    const CHILD: &str = "D1OPS_TEST_DUMPABLE_CHILD";

    /// The token loader marks the process non-dumpable (no core file can hold the token).
    /// Checked in a child run of this same test, so the test process itself stays dumpable.
    #[test]
    fn token_process_is_not_dumpable() {
        if std::env::var_os(CHILD).is_some() {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(
                dir.path().join("d1ops.toml"),
                "backend = \"cloudflare\"\n[cloudflare]\naccount_id = \"acc\"\ndatabase_id = \"db\"\n",
            )
            .expect("config");
            let ws = crate::workspace::Workspace::load(dir.path()).expect("workspace");
            // SAFETY: plain integer arguments.
            let before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
            assert_eq!(before, 1, "dumpable before the token is read");
            super::cloudflare_client(&ws).expect("client");
            // SAFETY: plain integer arguments.
            let after = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
            assert_eq!(after, 0, "still dumpable after the token was read");
            println!("child-checked-dumpable");
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "engine::connect::tests::token_process_is_not_dumpable",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env(crate::cloudflare::TOKEN_ENV, "test-token-not-real")
            .env_remove("D1OPS_CLOUDFLARE_API_BASE")
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("child-checked-dumpable"),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(all(test, not(feature = "d1")))]
mod no_d1_tests {
    /// Without the D1 backend a workspace on Cloudflare is refused by name, not half opened.
    #[test]
    fn cloudflare_backend_is_refused_without_d1() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("d1ops.toml"),
            "backend = \"cloudflare\"\n[cloudflare]\naccount_id = \"acc\"\ndatabase_id = \"db\"\n",
        )
        .expect("config");
        let ws = crate::workspace::Workspace::load(dir.path()).expect("workspace");
        let err = super::backend_for(&ws).err().expect("refused");
        assert!(
            err.to_string()
                .contains("this build of d1ops has no D1 backend (feature d1)"),
            "{err}"
        );
    }
}
