//! `[[target]]`: where a release's code goes live. Each target ships one artifact (the
//! `--artifact NAME` given at deploy) and is either a `command` (shell commands d1ops runs
//! with the release's pinned artifact and the environment's database in the environment) or
//! a `worker` (a Cloudflare Worker version bound to the environment's D1 database). Also the
//! `[policy] on_code_failure` choice: what happens to an applied schema when code fails.
use serde::{Deserialize, Serialize};

/// How a target's code is shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Shell commands (`sh -c`), on any host and on the local backend.
    #[default]
    Command,
    /// A Cloudflare Worker version (the Cloudflare backend only).
    Worker,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Command => "command",
            TargetKind::Worker => "worker",
        }
    }
}

/// One `[[target]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// The target's name (`app`, `bot`, `api`…).
    pub name: String,
    /// The artifact it ships (`deploy --artifact NAME=PATH`); default: the target's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    pub kind: TargetKind,
    /// `command`: run against the preview after its gate passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// `command`: makes the release's code live in production.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// `command`: goes back to this release's code (default: its `deploy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// `command`: how long one step may run (humantime; default 5m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `command`: the working directory, relative to the workspace (default: the workspace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Environment variables whose values are redacted from captured output (the
    /// Cloudflare token always is).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// `worker`: the Worker's name (default: `name` in wrangler's config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// `worker`: the entry module of a directory artifact (default `index.js`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// `worker`: the compatibility date (default: wrangler's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility_date: Option<String>,
    /// `worker`: the compatibility flags (default: wrangler's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility_flags: Option<Vec<String>>,
    /// `worker`: percentages of a gradual rollout, ending at 100 (e.g. `[10, 50, 100]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<u32>,
    /// `worker`: how long each rollout step is watched before the next (humantime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_wait: Option<String>,
}

/// The default time one command step may run.
pub const DEFAULT_TARGET_TIMEOUT: &str = "5m";

impl TargetConfig {
    /// The artifact this target ships.
    pub fn artifact_name(&self) -> &str {
        self.artifact.as_deref().unwrap_or(&self.name)
    }

    /// One step's time limit (validated at load).
    pub fn timeout(&self) -> std::time::Duration {
        humantime::parse_duration(self.timeout.as_deref().unwrap_or(DEFAULT_TARGET_TIMEOUT))
            .unwrap_or(std::time::Duration::from_secs(300))
    }

    /// The wait between rollout steps (validated at load; default 5m).
    pub fn rollout_wait(&self) -> std::time::Duration {
        humantime::parse_duration(self.rollout_wait.as_deref().unwrap_or("5m"))
            .unwrap_or(std::time::Duration::from_secs(300))
    }

    /// What is wrong with this target, in one sentence, if anything.
    pub(super) fn problem(&self) -> Option<String> {
        let name = &self.name;
        if name.trim().is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Some(format!(
                "target name {name:?} must be letters, digits, '-' or '_'"
            ));
        }
        if let Some(t) = &self.timeout {
            match humantime::parse_duration(t) {
                Err(_) => {
                    return Some(format!(
                        "target {name:?}: timeout {t:?} is not a duration (try \"5m\")"
                    ));
                }
                Ok(d) if d.is_zero() => {
                    return Some(format!("target {name:?}: timeout must be more than 0s"));
                }
                Ok(_) => {}
            }
        }
        for var in &self.secret_env {
            if var.is_empty() || var.contains('=') {
                return Some(format!(
                    "target {name:?}: secret_env entry {var:?} is not a variable name"
                ));
            }
        }
        match self.kind {
            TargetKind::Command => {
                if self.deploy.as_deref().is_none_or(|d| d.trim().is_empty()) {
                    return Some(format!(
                        "target {name:?} (kind = \"command\") needs deploy = \"…\", the command that makes a release's code live"
                    ));
                }
                let worker_only = [
                    ("script", self.script.is_some()),
                    ("main", self.main.is_some()),
                    ("compatibility_date", self.compatibility_date.is_some()),
                    ("compatibility_flags", self.compatibility_flags.is_some()),
                    ("rollout", !self.rollout.is_empty()),
                    ("rollout_wait", self.rollout_wait.is_some()),
                ];
                if let Some((key, _)) = worker_only.iter().find(|(_, set)| *set) {
                    return Some(format!(
                        "target {name:?}: {key} is for kind = \"worker\" targets"
                    ));
                }
            }
            TargetKind::Worker => {
                let command_only = [
                    ("preview", self.preview.is_some()),
                    ("deploy", self.deploy.is_some()),
                    ("rollback", self.rollback.is_some()),
                    ("cwd", self.cwd.is_some()),
                ];
                if let Some((key, _)) = command_only.iter().find(|(_, set)| *set) {
                    return Some(format!(
                        "target {name:?}: {key} is for kind = \"command\" targets (a worker target uploads its artifact itself)"
                    ));
                }
                if let Some(d) = &self.compatibility_date
                    && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err()
                {
                    return Some(format!(
                        "target {name:?}: compatibility_date {d:?} is not a date (YYYY-MM-DD)"
                    ));
                }
                if !self.rollout.is_empty() {
                    let increasing = self.rollout.windows(2).all(|w| w[0] < w[1]);
                    if !increasing
                        || self.rollout.last() != Some(&100)
                        || self.rollout.iter().any(|p| *p == 0 || *p > 100)
                    {
                        return Some(format!(
                            "target {name:?}: rollout {:?} must be increasing percentages between 1 and 100 that end at 100 (e.g. [10, 50, 100])",
                            self.rollout
                        ));
                    }
                }
                if let Some(w) = &self.rollout_wait
                    && humantime::parse_duration(w).is_err()
                {
                    return Some(format!(
                        "target {name:?}: rollout_wait {w:?} is not a duration (try \"5m\")"
                    ));
                }
            }
        }
        None
    }
}

/// `[policy] on_code_failure`: what a promotion does with the schema it applied when a
/// target's code then fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CodeFailurePolicy {
    /// The schema stays applied: it passed `compat.live`, so the previous release's code
    /// runs on it.
    #[default]
    KeepSchema,
    /// Production is restored from the promotion's recovery point.
    RestoreSchema,
}

impl CodeFailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeFailurePolicy::KeepSchema => "keep-schema",
            CodeFailurePolicy::RestoreSchema => "restore-schema",
        }
    }
}

/// What is wrong with the list of targets as a whole (names twice, artifacts twice).
pub(super) fn targets_problem(targets: &[TargetConfig]) -> Option<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut artifacts = std::collections::BTreeSet::new();
    for t in targets {
        if let Some(p) = t.problem() {
            return Some(p);
        }
        if !names.insert(t.name.as_str()) {
            return Some(format!("target {:?} is declared twice", t.name));
        }
        if !artifacts.insert(t.artifact_name()) {
            return Some(format!(
                "artifact {:?} is shipped by two targets; give each target its own artifact",
                t.artifact_name()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &str) -> TargetConfig {
        TargetConfig {
            name: name.into(),
            deploy: Some("true".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_command_target_needs_a_deploy_command() {
        let mut t = command("app");
        assert!(t.problem().is_none());
        t.deploy = None;
        assert!(t.problem().unwrap().contains("needs deploy"));
    }

    #[test]
    fn keys_of_the_other_kind_are_named() {
        let mut t = command("app");
        t.script = Some("x".into());
        assert!(
            t.problem()
                .unwrap()
                .contains("script is for kind = \"worker\"")
        );
        let w = TargetConfig {
            name: "api".into(),
            kind: TargetKind::Worker,
            preview: Some("x".into()),
            ..Default::default()
        };
        assert!(
            w.problem()
                .unwrap()
                .contains("preview is for kind = \"command\"")
        );
    }

    #[test]
    fn rollout_must_end_at_100_and_increase() {
        let mut w = TargetConfig {
            name: "api".into(),
            kind: TargetKind::Worker,
            rollout: vec![10, 50, 100],
            ..Default::default()
        };
        assert!(w.problem().is_none());
        w.rollout = vec![50, 10, 100];
        assert!(w.problem().unwrap().contains("increasing"));
        w.rollout = vec![10, 50];
        assert!(w.problem().is_some());
    }

    #[test]
    fn names_and_artifacts_are_unique() {
        assert!(
            targets_problem(&[command("app"), command("app")])
                .unwrap()
                .contains("declared twice")
        );
        let mut b = command("bot");
        b.artifact = Some("app".into());
        assert!(
            targets_problem(&[command("app"), b])
                .unwrap()
                .contains("two targets")
        );
        assert!(targets_problem(&[command("app"), command("bot")]).is_none());
    }
}
