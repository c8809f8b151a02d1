//! Gradual rollout of `worker` targets (`rollout = [10, 50, 100]`, `rollout_wait = "5m"`):
//! the release's version takes a growing share of the Worker's traffic, in two-version
//! deployments (new p% / previous (100-p)%), and each step is watched before the next.
//!
//! - The first step is the target's production deploy inside `promote` (`start_rollout`,
//!   under the promotion lock). With no version live yet there is nothing to split with: the
//!   version goes live at 100% and the step says so.
//! - Between steps the watch window (`engine/capacity/watch.rs`) compares production's error
//!   rate and p95 with the baseline before the promotion. A regression halts the rollout:
//!   every target the release shipped goes back to the previous release's code (the Worker to
//!   the previous version at 100%), the previous release is active again, as after a
//!   rollback, and the release is `failed` at stage `rollout`. The schema stays.
//! - `promote` waits through the steps; `promote --no-wait` (and the console) return after the
//!   first, and `rollout status|continue|abort` drive it later.
//!
//! Crash safety: a rollout is a `rollouts` row (store/rollouts.rs) that outlives its process.
//! A step deploys its split first and records it after: a deployment with the same split is
//! harmless, so a step killed in between is repeated by the next `continue`, never skipped. A
//! `promote` killed while waiting leaves a `rolling` rollout that `rollout continue/abort`
//! drive. A rolling rollout whose release is no longer production's active one (rolled back,
//! or failed by recovery) is over: views show it `aborted` and the next write records it so.
//!
//! Must not: print, or change production's code outside a recorded step.
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::code::CodeStepResult;
use super::{Engine, EngineError, PRODUCTION, Result};
use crate::model::{Release, now, now_utc, parse_time};
use crate::store::RolloutRow;

mod halt;
#[cfg(feature = "d1")]
mod start;

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    /// Part of the traffic on the new version; the next step is pending.
    Rolling,
    /// The new version takes all the traffic.
    Done,
    /// A regression stopped it; the previous version serves again.
    Halted,
    /// Stopped by an operator (or its release stopped being live); the previous version
    /// serves again.
    Aborted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Rolling => "rolling",
            RolloutState::Done => "done",
            RolloutState::Halted => "halted",
            RolloutState::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> RolloutState {
        match s {
            "done" => RolloutState::Done,
            "halted" => RolloutState::Halted,
            "aborted" => RolloutState::Aborted,
            _ => RolloutState::Rolling,
        }
    }
}

/// One version's share of the traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutShare {
    pub version_id: String,
    pub percentage: u32,
    /// `new` (the release's version) or `previous`.
    pub role: &'static str,
}

/// A regression check between two steps: the watch window's verdict then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutCheck {
    pub at: String,
    /// The watch status (`watching`, `ok`, `regressed`, `no data`).
    pub status: String,
    pub regressed: bool,
    /// One line for humans.
    pub summary: String,
    pub reasons: Vec<String>,
}

/// A rollout as both faces show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutView {
    pub release: String,
    pub target: String,
    /// The Worker's name.
    pub script: String,
    pub status: RolloutState,
    /// The step live now, from 1.
    pub step: usize,
    pub total_steps: usize,
    /// The new version's percentage at each step.
    pub steps: Vec<u32>,
    /// The new version's share now.
    pub percent: u32,
    /// Who takes the traffic now (as d1ops last deployed it).
    pub split: Vec<RolloutShare>,
    pub new_version: String,
    pub previous_version: String,
    /// The new version's share at the next step, while rolling.
    pub next_percent: Option<u32>,
    /// When the next step is due, while rolling.
    pub next_at: Option<String>,
    /// The next step is due now.
    pub due: bool,
    pub wait_secs: u64,
    pub started_at: String,
    pub updated_at: String,
    pub last_check: Option<RolloutCheck>,
    /// Why it ended, when it did not reach 100%.
    pub detail: Option<String>,
}

/// What `rollout continue`, `rollout abort` or the wait after `promote` did.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutMove {
    pub release: String,
    /// `advanced`, `done`, `halted` or `aborted`.
    pub outcome: &'static str,
    /// The release's rollouts after the move.
    pub rollouts: Vec<RolloutView>,
    /// The regression check that allowed (or stopped) it.
    pub check: Option<RolloutCheck>,
    /// Halt/abort: the steps that put the previous release's code back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reverted: Vec<CodeStepResult>,
    /// The release active in production afterwards.
    pub active_release: Option<String>,
    /// One sentence: what happened.
    pub detail: String,
}

impl RolloutMove {
    /// The move ended the rollout by a regression: the release failed.
    pub fn halted(&self) -> bool {
        self.outcome == "halted"
    }
}

enum Advance {
    NotDue(chrono::DateTime<chrono::Utc>),
    Moved(Box<RolloutMove>),
}

/// `(version, percentage)` pairs for the new version at `pct`.
fn split_for(row: &RolloutRow, pct: u32) -> Vec<(String, f64)> {
    if pct >= 100 {
        vec![(row.new_version.clone(), 100.0)]
    } else {
        vec![
            (row.new_version.clone(), f64::from(pct)),
            (row.previous_version.clone(), f64::from(100 - pct)),
        ]
    }
}

fn pct_at(row: &RolloutRow, step: usize) -> u32 {
    row.steps.get(step).copied().unwrap_or(100)
}

/// `rfc3339` for the store.
fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn next_due(wait_secs: u64) -> String {
    stamp(now_utc() + chrono::Duration::seconds(i64::try_from(wait_secs).unwrap_or(i64::MAX / 2)))
}

/// The view of a row; a `rolling` row whose release is not `active` is shown `aborted`.
fn view(row: &RolloutRow, active: Option<&str>) -> RolloutView {
    let mut status = RolloutState::parse(&row.status);
    let mut detail = row.detail.clone();
    if status == RolloutState::Rolling && active != Some(row.release_id.as_str()) {
        status = RolloutState::Aborted;
        detail = Some(stale_reason(&row.release_id));
    }
    let percent = match status {
        RolloutState::Halted | RolloutState::Aborted => 0,
        RolloutState::Done => 100,
        RolloutState::Rolling => pct_at(row, row.step),
    };
    let mut split = Vec::new();
    if percent > 0 {
        split.push(RolloutShare {
            version_id: row.new_version.clone(),
            percentage: percent,
            role: "new",
        });
    }
    if percent < 100 {
        split.push(RolloutShare {
            version_id: row.previous_version.clone(),
            percentage: 100 - percent,
            role: "previous",
        });
    }
    let rolling = status == RolloutState::Rolling;
    let next_at = row.next_at.clone().filter(|_| rolling);
    RolloutView {
        release: row.release_id.clone(),
        target: row.target.clone(),
        script: row.script.clone(),
        status,
        step: row.step + 1,
        total_steps: row.steps.len(),
        steps: row.steps.clone(),
        percent,
        split,
        new_version: row.new_version.clone(),
        previous_version: row.previous_version.clone(),
        next_percent: rolling.then(|| pct_at(row, row.step + 1)),
        due: rolling
            && next_at
                .as_deref()
                .and_then(parse_time)
                .is_none_or(|t| t <= now_utc()),
        next_at,
        wait_secs: row.wait_secs,
        started_at: row.started_at.clone(),
        updated_at: row.updated_at.clone(),
        last_check: row
            .last_check
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        detail,
    }
}

fn stale_reason(release: &str) -> String {
    format!(
        "release {release} is no longer production's active release (a rollback, a later promotion or recovery replaced it), so its rollout stopped; the operation that replaced it decided what the Worker runs"
    )
}

impl Engine {
    /// The rollouts in progress: `rolling`, of production's active release (what the
    /// console's worker shows as the current split). Reads the state store only.
    pub fn rollouts(&self) -> Result<Vec<RolloutView>> {
        let active = self.store.production()?.active_release;
        Ok(self
            .store
            .rolling_rollouts()?
            .iter()
            .filter(|r| active.as_deref() == Some(r.release_id.as_str()))
            .map(|r| view(r, active.as_deref()))
            .collect())
    }

    /// Every rollout of release `id` (one per worker target that rolled out), oldest first.
    pub fn release_rollouts(&self, id: &str) -> Result<Vec<RolloutView>> {
        let rel = self.resolve(id)?;
        let active = self.store.production()?.active_release;
        Ok(self
            .store
            .release_rollouts(&rel.id)?
            .iter()
            .map(|r| view(r, active.as_deref()))
            .collect())
    }

    /// The latest rollout of `target` in release `id`, for its target view.
    pub(super) fn target_rollout(&self, id: &str, target: &str) -> Result<Option<RolloutView>> {
        let active = self.store.production()?.active_release;
        Ok(self
            .store
            .release_rollouts(id)?
            .iter()
            .rfind(|r| r.target == target)
            .map(|r| view(r, active.as_deref())))
    }

    /// `rollout continue`: checks production for a regression and moves every rolling
    /// rollout of release `id` one step on (refused before `rollout_wait` has passed unless
    /// `now`). A regression halts it instead (see the module documentation).
    pub fn rollout_continue(&mut self, id: &str, now: bool) -> Result<RolloutMove> {
        match self.advance(id, now)? {
            Advance::Moved(m) => Ok(*m),
            Advance::NotDue(at) => {
                let left = (at - now_utc()).num_seconds().max(1);
                Err(EngineError::Refused(format!(
                    "the next rollout step of release {id} is due at {} (in {}); pass --now to take it anyway",
                    stamp(at),
                    crate::text::secs(u64::try_from(left).unwrap_or(1))
                )))
            }
        }
    }

    /// `rollout abort`: every rolling rollout of release `id` ends; the previous release's
    /// code goes back (its Worker version at 100%), the previous release is active again and
    /// release `id` fails at stage `rollout`.
    pub fn rollout_abort(&mut self, id: &str, reason: Option<&str>) -> Result<RolloutMove> {
        self.ensure_writable("rollout abort")?;
        let rel = self.resolve(id)?;
        let rows = self.rolling_of(&rel)?;
        self.refuse_while_locked()?;
        if let Some(m) = self.settle_stale(&rel, &rows)? {
            return Ok(m);
        }
        let why = match reason.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => format!("rollout aborted by {}: {r}", self.actor),
            None => format!("rollout aborted by {}", self.actor),
        };
        self.halt(&rel, &rows, RolloutState::Aborted, why, None)
    }

    /// The wait after `promote`: sleeps until each step is due, checks for a regression and
    /// moves on, until release `id`'s rollouts are done or halted; `on_step` hears of every
    /// move. Killed while sleeping, it leaves the rollout `rolling` for `rollout continue`.
    /// `None` when the release has no rollout in progress.
    pub fn rollout_wait(
        &mut self,
        id: &str,
        on_step: &mut dyn FnMut(&RolloutMove),
    ) -> Result<Option<RolloutMove>> {
        let mut last = None;
        loop {
            let rel = self.resolve(id)?;
            let rows = self.store.release_rollouts(&rel.id)?;
            let rolling: Vec<&RolloutRow> = rows.iter().filter(|r| r.status == "rolling").collect();
            if rolling.is_empty() {
                return Ok(last);
            }
            let due = rolling
                .iter()
                .filter_map(|r| r.next_at.as_deref().and_then(parse_time))
                .max();
            if let Some(due) = due
                && let Ok(left) = (due - now_utc()).to_std()
            {
                std::thread::sleep(left + std::time::Duration::from_millis(20));
            }
            match self.advance(&rel.id, false)? {
                Advance::NotDue(_) => continue,
                Advance::Moved(m) => {
                    on_step(&m);
                    let over = m.outcome != "advanced";
                    last = Some(*m);
                    if over {
                        return Ok(last);
                    }
                }
            }
        }
    }

    /// What a bare `promote` needs to know: whether release `id` has a rollout in progress.
    pub fn rolling_rollouts_of(&self, id: &str) -> Result<Vec<RolloutView>> {
        Ok(self
            .release_rollouts(id)?
            .into_iter()
            .filter(|v| v.status == RolloutState::Rolling)
            .collect())
    }

    /// Why another release may not be promoted now, if a rollout is in progress: a
    /// promotion would deploy over a split nobody finished watching. Meant for
    /// `promotion_blocker`.
    pub fn rollout_blocker(&self) -> Result<Option<String>> {
        Ok(self.rollouts()?.first().map(|v| {
            format!(
                "release {} is still rolling out Worker {} (step {} of {}, {}%): finish it with `d1ops rollout continue {}` or stop it with `d1ops rollout abort {}` first",
                v.release, v.script, v.step, v.total_steps, v.percent, v.release, v.release
            )
        }))
    }

    fn rolling_of(&self, rel: &Release) -> Result<Vec<RolloutRow>> {
        let rows: Vec<RolloutRow> = self
            .store
            .release_rollouts(&rel.id)?
            .into_iter()
            .filter(|r| r.status == "rolling")
            .collect();
        if rows.is_empty() {
            let latest = self.store.release_rollouts(&rel.id)?.pop();
            return Err(EngineError::Refused(match latest {
                Some(r) => format!(
                    "release {}'s rollout is {} (step {} of {}); nothing to drive",
                    rel.id,
                    r.status,
                    r.step + 1,
                    r.steps.len()
                ),
                None => format!(
                    "release {} has no rollout: only a worker target with rollout = […] rolls out, during promote",
                    rel.id
                ),
            }));
        }
        Ok(rows)
    }

    fn refuse_while_locked(&self) -> Result<()> {
        if let Some(lock) = self.store.lock()? {
            return Err(EngineError::Refused(format!(
                "production is locked by a {} of release {} (by {}); try again once it is over",
                lock.operation.as_str(),
                lock.release_id,
                lock.holder
            )));
        }
        Ok(())
    }

    /// One move of every rolling rollout of `id`: regression check, then the next step (or
    /// the halt).
    fn advance(&mut self, id: &str, now: bool) -> Result<Advance> {
        self.ensure_writable("rollout continue")?;
        let rel = self.resolve(id)?;
        let rows = self.rolling_of(&rel)?;
        // Under a lock, the release may be mid-promotion (not live yet): never judge it stale.
        self.refuse_while_locked()?;
        if let Some(m) = self.settle_stale(&rel, &rows)? {
            return Err(EngineError::Refused(m.detail));
        }
        if !now {
            let due = rows
                .iter()
                .filter_map(|r| r.next_at.as_deref().and_then(parse_time))
                .max();
            if let Some(due) = due
                && due > now_utc()
            {
                return Ok(Advance::NotDue(due));
            }
        }
        let check = self.regression_check(&rel)?;
        let check_json = serde_json::to_string(&check).unwrap_or_default();
        for r in &rows {
            self.store.set_rollout_check(r.id, &check_json)?;
        }
        if check.regressed {
            let why = format!(
                "production regressed during the rollout: {}",
                check.reasons.join("; ")
            );
            return self
                .halt(&rel, &rows, RolloutState::Halted, why, Some(check))
                .map(|m| Advance::Moved(Box::new(m)));
        }
        let actor = self.actor.clone();
        let mut finished = true;
        for r in &rows {
            let next = r.step + 1;
            let pct = pct_at(r, next);
            let total = r.steps.len();
            let message = format!(
                "d1ops rollout of release {}: step {} of {total} ({pct}%)",
                rel.id,
                next + 1
            );
            // Deploy first, record after: a step killed in between is repeated, never skipped.
            self.deploy_split(&r.script, &split_for(r, pct), &message)?;
            let done = pct >= 100;
            finished &= done;
            let next_at = (!done).then(|| next_due(r.wait_secs));
            self.store.atomically(|s| -> Result<()> {
                if s.advance_rollout(r.id, r.step, next, done, next_at.as_deref())? {
                    let detail = json!({"target": r.target, "script": r.script,
                        "step": next + 1, "of": total, "percent": pct,
                        "new_version": r.new_version, "previous_version": r.previous_version,
                        "check": check.status, "next_at": next_at});
                    s.audit(
                        &actor,
                        "rollout.step",
                        Some(&rel.id),
                        Some(PRODUCTION),
                        &detail,
                    )?;
                    if done {
                        s.audit(
                            &actor,
                            "rollout.done",
                            Some(&rel.id),
                            Some(PRODUCTION),
                            &detail,
                        )?;
                    }
                }
                Ok(())
            })?;
        }
        let rollouts = self.release_rollouts(&rel.id)?;
        let detail = rollouts
            .iter()
            .map(|v| match v.status {
                RolloutState::Done => format!(
                    "{}: version {} of Worker {} takes all the traffic (rollout done)",
                    v.target, v.new_version, v.script
                ),
                _ => format!(
                    "{}: version {} of Worker {} takes {}% (step {} of {})",
                    v.target, v.new_version, v.script, v.percent, v.step, v.total_steps
                ),
            })
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Advance::Moved(Box::new(RolloutMove {
            release: rel.id.clone(),
            outcome: if finished { "done" } else { "advanced" },
            rollouts,
            check: Some(check),
            reverted: Vec::new(),
            active_release: Some(rel.id.clone()),
            detail,
        })))
    }

    /// The watch window's verdict now, as a rollout check.
    fn regression_check(&self, rel: &Release) -> Result<RolloutCheck> {
        Ok(match self.watch(rel)? {
            Some(w) => RolloutCheck {
                at: now(),
                status: w.status.as_str().to_string(),
                regressed: w.status == super::WatchStatus::Regressed,
                summary: w.summary(),
                reasons: w.reasons.clone(),
            },
            None => RolloutCheck {
                at: now(),
                status: "no data".into(),
                regressed: false,
                summary: format!("release {} has no promotion to watch", rel.id),
                reasons: Vec::new(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, step: usize) -> RolloutRow {
        RolloutRow {
            id: 1,
            release_id: "R2".into(),
            target: "api".into(),
            script: "shop".into(),
            previous_version: "v1".into(),
            new_version: "v2".into(),
            steps: vec![10, 50, 100],
            step,
            status: status.into(),
            wait_secs: 300,
            started_at: String::new(),
            next_at: Some("2000-01-01T00:00:00.000Z".into()),
            last_check: None,
            detail: None,
            updated_at: String::new(),
        }
    }

    /// `(status, step, active release)` → (shown status, new %, split, next %).
    fn check(
        status: &str,
        step: usize,
        active: Option<&str>,
        expected: (RolloutState, u32, &[(&str, u32)], Option<u32>),
    ) {
        let v = view(&row(status, step), active);
        let split: Vec<(&str, u32)> = v
            .split
            .iter()
            .map(|s| (s.version_id.as_str(), s.percentage))
            .collect();
        assert_eq!(
            (v.status, v.percent, split.as_slice(), v.next_percent),
            expected,
            "{status} at step {step}, active {active:?}"
        );
    }

    #[test]
    fn a_view_shows_the_split_d1ops_last_deployed() {
        use RolloutState::*;
        let r2 = Some("R2");
        check(
            "rolling",
            0,
            r2,
            (Rolling, 10, &[("v2", 10), ("v1", 90)], Some(50)),
        );
        check(
            "rolling",
            1,
            r2,
            (Rolling, 50, &[("v2", 50), ("v1", 50)], Some(100)),
        );
        check("done", 2, r2, (Done, 100, &[("v2", 100)], None));
        check("halted", 0, Some("R1"), (Halted, 0, &[("v1", 100)], None));
        check("aborted", 1, Some("R1"), (Aborted, 0, &[("v1", 100)], None));
        // Rolling, but another release is active: over.
        check("rolling", 1, Some("R1"), (Aborted, 0, &[("v1", 100)], None));
        assert!(
            view(&row("rolling", 0), r2).due,
            "next_at in the past is due"
        );
    }

    #[test]
    fn a_step_is_a_two_version_split_until_100() {
        assert_eq!(
            split_for(&row("rolling", 0), 10),
            vec![("v2".to_string(), 10.0), ("v1".to_string(), 90.0)]
        );
        assert_eq!(
            split_for(&row("rolling", 1), 100),
            vec![("v2".to_string(), 100.0)]
        );
    }
}
