//! The first step of a worker target's rollout, inside `promote`'s code deploy (feature
//! `d1`: it talks to Cloudflare through the promotion's client).
use serde_json::json;

use super::super::code::{Op, StepPlan};
use super::super::{Engine, EngineError, PRODUCTION, Result};
use super::{next_due, split_for};
use crate::store::{CodeStepEnd, NewRollout, RolloutRow};

impl Engine {
    /// The first step of a worker target's rollout, as its production deploy inside
    /// `promote` (`None` when the target has no `rollout`: it deploys at 100%). With no
    /// version live there is nothing to split with: `version` goes live at 100% and the
    /// step says so. The rollout is recorded before its first split is deployed.
    pub(in crate::engine) fn start_rollout(
        &self,
        client: &crate::cloudflare::Client,
        plan: &StepPlan<'_>,
        op: Op<'_>,
        script: &str,
        version: &str,
    ) -> Result<Option<CodeStepEnd>> {
        let t = plan.target;
        if t.rollout.is_empty() {
            return Ok(None);
        }
        let fail = |e: crate::cloudflare::workers::WorkersError| {
            EngineError::Input(client.redact(&e.to_string()))
        };
        let active = self.store.production()?.active_release;
        if let Some(r) = self.store.rolling_rollouts()?.into_iter().find(|r| {
            r.script == script
                && r.release_id != plan.release
                && active.as_deref() == Some(r.release_id.as_str())
        }) {
            return Err(EngineError::Refused(format!(
                "Worker {script} is still rolling out release {} (step {} of {}): run `d1ops rollout continue {}` or `d1ops rollout abort {}` before promoting another release",
                r.release_id,
                r.step + 1,
                r.steps.len(),
                r.release_id,
                r.release_id
            )));
        }
        let steps = &t.rollout;
        let current = client.current_deployment(script).map_err(fail)?;
        let previous = match &current {
            None => None,
            Some(d) => match d.sole_version() {
                Some(v) => Some(v.to_string()),
                None => {
                    let shares: Vec<String> = d
                        .versions
                        .iter()
                        .map(|(v, p)| format!("{v} {p}%"))
                        .collect();
                    return Err(EngineError::Refused(format!(
                        "Worker {script} is split between versions ({}); a rollout starts from one version at 100%: finish the split first",
                        shares.join(", ")
                    )));
                }
            },
        };
        let message = format!(
            "d1ops rollout of release {}: step 1 of {} ({}%)",
            plan.release,
            steps.len(),
            steps[0]
        );
        let Some(previous) = previous.filter(|p| p != version) else {
            client
                .create_deployment(script, &[(version.to_string(), 100.0)], &message)
                .map_err(fail)?;
            return Ok(Some(CodeStepEnd {
                status: "succeeded".into(),
                detail: Some(format!(
                    "version {version} of Worker {script} deployed at 100%: no earlier version was live, so rollout {steps:?} had nothing to split with"
                )),
                version_id: Some(version.to_string()),
                ..Default::default()
            }));
        };
        let wait_secs = t.rollout_wait().as_secs();
        let next_at = next_due(wait_secs);
        let new = NewRollout {
            release_id: plan.release,
            target: &t.name,
            script,
            previous_version: &previous,
            new_version: version,
            steps,
            wait_secs,
            next_at: Some(&next_at),
        };
        let detail = json!({"target": t.name, "script": script, "step": 1,
            "of": steps.len(), "percent": steps[0], "new_version": version,
            "previous_version": previous, "operation": op.operation, "next_at": next_at});
        let id = self
            .store
            .insert_rollout(&new, &self.actor, "rollout.step", &detail)?;
        let row = RolloutRow {
            id,
            release_id: plan.release.to_string(),
            target: t.name.clone(),
            script: script.to_string(),
            previous_version: previous.clone(),
            new_version: version.to_string(),
            steps: steps.clone(),
            step: 0,
            status: "rolling".into(),
            wait_secs,
            started_at: String::new(),
            next_at: None,
            last_check: None,
            detail: None,
            updated_at: String::new(),
        };
        if let Err(e) = client.create_deployment(script, &split_for(&row, steps[0]), &message) {
            let e = fail(e);
            let why = format!("its first step could not be deployed: {e}");
            self.store.end_rollout_audited(
                id,
                "aborted",
                &why,
                &self.actor,
                plan.release,
                &json!({"target": t.name, "script": script, "step": 1, "reason": why,
                    "env": PRODUCTION}),
            )?;
            return Err(e);
        }
        let pct = steps[0];
        let detail = if pct >= 100 {
            // `rollout = [100]`: the one step is the whole rollout (recorded `done` from the
            // start, so it never holds back the next promotion); say so in the audit log too.
            self.audit(
                "rollout.done",
                Some(plan.release),
                Some(PRODUCTION),
                json!({"target": t.name, "script": script, "step": 1, "of": 1,
                    "percent": 100, "new_version": version, "previous_version": previous}),
            )?;
            format!(
                "version {version} of Worker {script} deployed at 100% (rollout {steps:?}: one step)"
            )
        } else {
            format!(
                "version {version} of Worker {script} takes {pct}% of requests and version {previous} keeps {}% (rollout step 1 of {}; the next step is due after {} if production does not regress)",
                100 - pct,
                steps.len(),
                crate::text::secs(wait_secs)
            )
        };
        Ok(Some(CodeStepEnd {
            status: "succeeded".into(),
            detail: Some(detail),
            version_id: Some(version.to_string()),
            ..Default::default()
        }))
    }
}
