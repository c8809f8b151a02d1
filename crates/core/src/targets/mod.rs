//! Targets: how a release's code goes live. A `command` target runs shell commands
//! ([`command`]); a `worker` target uploads a Cloudflare Worker version ([`worker`], with the
//! core's `d1` feature). This module runs one step and says how it ended; which steps run,
//! in what order, and what a failure undoes is the engine's (`engine/code.rs`).
pub mod command;

/// Why a step could not run at all (a step that ran and failed is an outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("could not start `sh -c …`: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the target's working directory {0} does not exist")]
    Cwd(String),
    #[error("could not write the step's log {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The text shown in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// `text` with every secret value replaced by [`REDACTED`] (values shorter than 4 characters
/// are not secrets worth hiding and would blank ordinary words).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// The values to redact from a target's output: the Cloudflare token and every variable the
/// target names in `secret_env`, as set in this process's environment.
pub fn secret_values(secret_env: &[String]) -> Vec<String> {
    std::iter::once(d1ops_sql::env_vars::TOKEN_ENV.to_string())
        .chain(secret_env.iter().cloned())
        .filter_map(|name| std::env::var(name).ok())
        .filter(|v| !v.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_and_short_values_left() {
        let s = vec!["tok3n-abc".to_string(), "ab".to_string()];
        assert_eq!(redact("x tok3n-abc y ab", &s), "x [redacted] y ab");
    }
}
