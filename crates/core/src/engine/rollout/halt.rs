//! How a rollout ends early: halted by a regression or aborted (the previous release's code
//! back, the previous release active, the release failed at stage `rollout`), or recorded as
//! over when its release stopped being production's active one; and the deployment of a
//! split.
use serde_json::json;

use super::super::code::{CodeStepResult, describe_reverts};
use super::super::{Engine, EngineError, PRODUCTION, Result};
use super::{RolloutCheck, RolloutMove, RolloutState, pct_at, stale_reason};
use crate::model::{Failure, Release, ReleaseState, now};
use crate::store::RolloutRow;

impl Engine {
    /// A rolling rollout whose release is no longer active: recorded as aborted (its code
    /// was put back by the operation that made another release active).
    pub(super) fn settle_stale(
        &mut self,
        rel: &Release,
        rows: &[RolloutRow],
    ) -> Result<Option<RolloutMove>> {
        let active = self.store.production()?.active_release;
        if active.as_deref() == Some(rel.id.as_str()) && rel.state == ReleaseState::Live {
            return Ok(None);
        }
        let why = stale_reason(&rel.id);
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            for r in rows {
                if s.end_rollout(r.id, "aborted", &why)? {
                    s.audit(
                        &actor,
                        "rollout.aborted",
                        Some(&rel.id),
                        Some(PRODUCTION),
                        &json!({"target": r.target, "script": r.script, "step": r.step + 1,
                            "percent": pct_at(r, r.step), "reason": why, "redeployed": false}),
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(Some(RolloutMove {
            release: rel.id.clone(),
            outcome: "aborted",
            rollouts: self.release_rollouts(&rel.id)?,
            check: None,
            reverted: Vec::new(),
            active_release: active,
            detail: why,
        }))
    }

    /// Ends `rows` as `state`: every target the release shipped goes back to the previous
    /// release's code (each rollout's Worker to its previous version at 100%), the previous
    /// release is active again and `rel` fails at stage `rollout`. A revert that fails leaves
    /// the rollout `rolling` (and says so), so `rollout abort` can try again.
    pub(super) fn halt(
        &mut self,
        rel: &Release,
        rows: &[RolloutRow],
        state: RolloutState,
        why: String,
        check: Option<RolloutCheck>,
    ) -> Result<RolloutMove> {
        // The release live before this one (`rollback_target` reads it so while `rel` is
        // production's active release).
        let previous = self.rollback_target().ok();
        let db = self
            .production_db()?
            .unwrap_or_else(|| self.backend.production_ref());
        let env = self.code_env(PRODUCTION, &db)?;
        let names: Vec<String> = self
            .shipped_code(&rel.id)?
            .into_iter()
            .map(|(t, _)| t.name)
            .collect();
        let mut before = Vec::new();
        if let Some(prev) = &previous {
            // The Worker version the rollout split with is the one to put back.
            for mut live in self.code_while_live(&prev.id, &names)? {
                if let Some(rolled) = rows.iter().find(|r| r.target == live.target) {
                    live.version_id = Some(rolled.previous_version.clone());
                }
                before.push(live);
            }
        }
        let op = super::super::code::Op {
            release: &rel.id,
            operation: "rollout",
        };
        let reverted = self.revert_code(&names, &before, op, &env)?;
        // A Worker whose previous version d1ops did not ship (deployed by hand before):
        // its previous version goes back at 100% all the same.
        let mut unrecorded = Vec::new();
        for r in rows {
            let step = reverted.iter().find(|s| s.target == r.target);
            if step.is_some_and(CodeStepResult::failed) {
                continue;
            }
            if step.is_none_or(|s| s.status == "skipped") {
                self.deploy_split(
                    &r.script,
                    &[(r.previous_version.clone(), 100.0)],
                    &format!("d1ops rollout of release {} {}", rel.id, state.as_str()),
                )?;
                unrecorded.push(r.target.clone());
            }
        }
        if let Some(bad) = reverted.iter().find(|s| s.failed()) {
            return Err(EngineError::Input(format!(
                "{why}; putting the previous code back failed for {} ({}); the rollout stays rolling: run `d1ops rollout abort {}` once the cause is fixed",
                bad.target, bad.detail, rel.id
            )));
        }
        let reverts = describe_reverts(&reverted);
        let prev_id = previous.as_ref().map(|p| p.id.clone());
        let serving = match &prev_id {
            Some(p) => format!("release {p} is live again and its code serves"),
            None => "no earlier release was live, so none is active now".into(),
        };
        let failure = Failure {
            stage: "rollout".into(),
            migration: None,
            line: None,
            statement: None,
            error: format!("{why}; {reverts}"),
            at: now(),
            target: rows.first().map(|r| r.target.clone()),
            output_tail: None,
            outcome: Some(format!(
                "{serving}; production keeps release {}'s migrations (the schema stays: it passed compat.live, so the previous code runs on it)",
                rel.id
            )),
        };
        let actor = self.actor.clone();
        let action = format!("rollout.{}", state.as_str());
        self.store.atomically(|s| -> Result<()> {
            for r in rows {
                if !s.end_rollout(r.id, state.as_str(), &why)? {
                    return Err(EngineError::Refused(format!(
                        "another d1ops process ended release {}'s rollout first",
                        rel.id
                    )));
                }
                s.audit(
                    &actor,
                    &action,
                    Some(&rel.id),
                    Some(PRODUCTION),
                    &json!({
                        "target": r.target, "script": r.script, "step": r.step + 1,
                        "of": r.steps.len(), "percent": pct_at(r, r.step),
                        "new_version": r.new_version, "previous_version": r.previous_version,
                        "reason": why, "check": check, "redeployed": r.previous_version,
                        "previous_release": prev_id,
                    }),
                )?;
            }
            for t in &unrecorded {
                s.clear_live_code(PRODUCTION, t)?;
            }
            s.set_release_failure(&rel.id, &failure)?;
            if let Some(p) = &prev_id {
                s.set_release_state(p, ReleaseState::Live)?;
            }
            s.set_env_active(PRODUCTION, prev_id.as_deref())?;
            Ok(())
        })?;
        Ok(RolloutMove {
            release: rel.id.clone(),
            outcome: state.as_str(),
            rollouts: self.release_rollouts(&rel.id)?,
            check,
            reverted,
            active_release: prev_id,
            detail: format!("{why}; {reverts}; {serving}"),
        })
    }

    #[cfg(feature = "d1")]
    pub(super) fn deploy_split(
        &self,
        script: &str,
        split: &[(String, f64)],
        message: &str,
    ) -> Result<()> {
        let (client, _, _) = super::super::connect::cloudflare_client(&self.ws)?;
        client
            .create_deployment(script, split, message)
            .map(|_| ())
            .map_err(|e| EngineError::Input(client.redact(&e.to_string())))
    }

    #[cfg(not(feature = "d1"))]
    pub(super) fn deploy_split(
        &self,
        _script: &str,
        _split: &[(String, f64)],
        _message: &str,
    ) -> Result<()> {
        Err(EngineError::Input(format!(
            "a worker rollout needs the Cloudflare backend, which this build leaves out: {}",
            super::super::connect::NO_D1
        )))
    }
}
