//! Managed runtime binding: what an app needs to reach one environment's database, so no
//! database id or path is copied by hand. On the Cloudflare backend that is wrangler's
//! `[[d1_databases]]` entry (the binding name from `[database] binding`, default `DB`; the
//! environment's D1 name as Cloudflare reports it; its database id); locally the URL of
//! `d1ops serve` for the environment and the database file. An unknown environment, a cleaned
//! up preview and production before its first promotion are refused with one sentence. No
//! credential is part of a [`Binding`]: on D1 the API token only authorises the one call
//! that reads the database's name.
use serde::Serialize;

use super::observe::{TargetError, resolve_target};
use super::{Engine, EngineError, Result};
use crate::workspace::config::BackendKind;

/// `d1ops serve`'s default listen address (the CLI's `--listen` default).
pub const DEFAULT_SERVE_LISTEN: &str = "127.0.0.1:8787";

/// The binding name when `[database] binding` is not set (wrangler's usual `DB`).
pub const DEFAULT_BINDING: &str = "DB";

/// What an app needs to reach one environment's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The environment (`production` or a preview's name).
    pub env: String,
    /// `local` or `cloudflare`.
    pub backend: String,
    /// The binding name the app's code uses (`env.DB`).
    pub binding: String,
    /// The D1 database's name (locally: the environment's name).
    pub database_name: String,
    /// The D1 database id (locally: the id `d1ops serve` also accepts).
    pub database_id: String,
    /// What `D1OPS_DATABASE` holds: the database file locally, the database id on D1.
    pub database: String,
    /// Locally: `d1ops serve`'s `/query` URL for this environment at the default listen address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d1_url: Option<String>,
}

impl Engine {
    /// The binding name the app's code uses: `[database] binding`, default `DB`.
    pub(super) fn binding_name(&self) -> String {
        self.ws
            .config
            .database
            .as_ref()
            .and_then(|d| d.binding.clone())
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| DEFAULT_BINDING.to_string())
    }

    /// The binding of environment `env` (`production` or a preview).
    pub fn binding(&self, env: &str) -> Result<Binding> {
        let target = resolve_target(&self.store, env).map_err(|e| match e {
            TargetError::NoProductionDatabase => EngineError::Input(
                "production has no database yet: it is created by the first promotion whose release has migrations".into(),
            ),
            other => other.into(),
        })?;
        let binding = self.binding_name();
        match self.ws.config.backend {
            BackendKind::Local => {
                let path = self.local_backend()?.path(&target.db)?;
                Ok(Binding {
                    d1_url: Some(format!(
                        "http://{DEFAULT_SERVE_LISTEN}/accounts/local/d1/database/{}/query",
                        url_segment(&target.env)
                    )),
                    database_name: target.env.clone(),
                    database_id: target.db.id.clone(),
                    database: path.display().to_string(),
                    backend: "local".into(),
                    binding,
                    env: target.env,
                })
            }
            BackendKind::Cloudflare => self.d1_binding(target, binding),
        }
    }

    #[cfg(feature = "d1")]
    fn d1_binding(&self, target: super::observe::Target, binding: String) -> Result<Binding> {
        let (client, _, _) = super::connect::cloudflare_client(&self.ws)?;
        let db = match client.get_database(&target.db.id) {
            Ok(db) => db,
            Err(e) if e.is_not_found() => {
                return Err(EngineError::Input(format!(
                    "{}'s D1 database {} no longer exists on Cloudflare",
                    target.env, target.db.id
                )));
            }
            Err(e) => return Err(crate::backend::BackendError::Cloudflare(e).into()),
        };
        let configured = self
            .ws
            .config
            .database
            .as_ref()
            .filter(|_| target.production)
            .and_then(|d| d.database_name.clone());
        let database_name = if db.name.trim().is_empty() {
            configured.unwrap_or_default()
        } else {
            db.name
        };
        Ok(Binding {
            database_name,
            database_id: target.db.id.clone(),
            database: target.db.id,
            d1_url: None,
            backend: "cloudflare".into(),
            binding,
            env: target.env,
        })
    }

    #[cfg(not(feature = "d1"))]
    fn d1_binding(&self, _target: super::observe::Target, _binding: String) -> Result<Binding> {
        Err(EngineError::Input(super::connect::NO_D1.into()))
    }
}

/// `name` as one URL path segment: unreserved characters as they are, the rest percent-encoded.
fn url_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_segments_are_encoded() {
        assert_eq!(super::url_segment("preview-01ABC"), "preview-01ABC");
        assert_eq!(super::url_segment("a b/c"), "a%20b%2Fc");
    }
}
