//! Decisions people make about a release: approve, abandon, annotate (root cause).
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, Result};
use crate::model::{Approval, ReleaseState, same_person};

#[derive(Debug, Clone, Serialize)]
pub struct ApproveOutcome {
    pub id: String,
    pub state: ReleaseState,
    pub approvals: Vec<Approval>,
    pub required: u32,
}

/// " (as alice)" when the recorded name is spelled differently from the acting one, so a
/// refusal of `ALICE` says which record it matched.
fn spelled_as(recorded: &str, actor: &str) -> String {
    if recorded == actor {
        String::new()
    } else {
        format!(" (as {recorded})")
    }
}

impl Engine {
    /// Records an approval; the release becomes `approved` once it has enough of them.
    pub fn approve(&mut self, id: &str, note: Option<&str>) -> Result<ApproveOutcome> {
        self.ensure_writable("approve")?;
        let rel = self.resolve(id)?;
        if !matches!(rel.state, ReleaseState::Ready | ReleaseState::Approved) {
            return Err(EngineError::Refused(format!(
                "release {} is {}; only a ready release can be approved",
                rel.id, rel.state
            )));
        }
        let policy = self.ws.config.policy.clone();
        // Identities compare case-insensitively (`same_person`): `ALICE` is alice.
        if same_person(&rel.author, &self.actor) && !policy.allow_self_approval {
            return Err(EngineError::Refused(format!(
                "{}{} deployed release {} and cannot approve it (policy.allow_self_approval = false); ask another operator",
                self.actor,
                spelled_as(&rel.author, &self.actor),
                rel.id
            )));
        }
        let existing = self.store.approvals(&rel.id)?;
        if let Some(earlier) = (existing.iter()).find(|a| same_person(&a.approver, &self.actor)) {
            return Err(EngineError::Refused(format!(
                "{}{} has already approved release {}",
                self.actor,
                spelled_as(&earlier.approver, &self.actor),
                rel.id
            )));
        }
        let actor = self.actor.clone();
        let required = policy.required_approvals;
        let state = self.store.atomically(|s| -> Result<ReleaseState> {
            s.add_approval(&rel.id, &actor, note)?;
            let count = crate::model::distinct_approvers(&existing) as u32 + 1;
            let state = if count >= required {
                ReleaseState::Approved
            } else {
                rel.state
            };
            s.set_release_state(&rel.id, state)?;
            s.audit(
                &actor,
                "release.approved",
                Some(&rel.id),
                None,
                &json!({"note": note, "approvals": count, "required": required}),
            )?;
            Ok(state)
        })?;
        Ok(ApproveOutcome {
            id: rel.id.clone(),
            state,
            approvals: self.store.approvals(&rel.id)?,
            required,
        })
    }

    /// Abandons a candidate: it will not be promoted, and its preview becomes stale.
    pub fn abandon(&mut self, id: &str, note: Option<&str>) -> Result<ReleaseState> {
        self.ensure_writable("abandon")?;
        let rel = self.resolve(id)?;
        if !(rel.state.is_candidate() || rel.state == ReleaseState::Blocked) {
            return Err(EngineError::Refused(format!(
                "release {} is {}; only a candidate (previewing, ready, approved or blocked) can be abandoned",
                rel.id, rel.state
            )));
        }
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.set_release_state(&rel.id, ReleaseState::Abandoned)?;
            s.audit(
                &actor,
                "release.abandoned",
                Some(&rel.id),
                None,
                &json!({"note": note, "was": rel.state.as_str()}),
            )?;
            Ok(())
        })?;
        Ok(ReleaseState::Abandoned)
    }

    /// Records a root-cause note (and optionally the guardrail that now prevents it).
    pub fn annotate(&mut self, id: &str, cause: &str, guardrail: Option<&str>) -> Result<()> {
        self.ensure_writable("annotate")?;
        if cause.trim().is_empty() {
            return Err(EngineError::Input("--cause must not be empty".into()));
        }
        let rel = self.resolve(id)?;
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.set_release_note(&rel.id, cause, guardrail)?;
            s.audit(
                &actor,
                "release.annotated",
                Some(&rel.id),
                None,
                &json!({"cause": cause, "guardrail": guardrail}),
            )?;
            Ok(())
        })
    }
}
