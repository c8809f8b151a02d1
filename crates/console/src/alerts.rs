//! What needs attention, as a list (`!`): each alert says what, since when, and where to go
//! (Enter jumps there). The header's count is this list's length, so they cannot disagree.
//!
//! Pure: read from the state's data (the workspace snapshot, the Capacity tab's last read).
use crate::engine::WatchStatus;
use crate::model::ReleaseState;
use crate::state::{State, Tab};

/// Where an alert's Enter goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Go {
    Tab(Tab),
    Release(String),
    /// The Capacity tab with this limit (its index in the forecast) selected.
    Limit(usize),
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub what: String,
    /// When it began, as the data records it (RFC 3339 or a day), if known.
    pub since: Option<String>,
    pub go: Go,
}

/// Every alert, most urgent first: production's state (watch, promotion stuck, ledger,
/// limits exceeded), then the record (failed releases without a root cause, the audit chain).
pub fn list(state: &State) -> Vec<Alert> {
    let mut out = Vec::new();
    let d = &state.data;
    if let Some(w) = d
        .watch
        .as_ref()
        // A regression latches until acknowledged (`K` on the Monitor) or a day after
        // its window closed.
        .filter(|w| w.status == WatchStatus::Regressed && w.alert)
    {
        out.push(Alert {
            what: format!(
                "release {} regressed after its promotion: {}",
                w.release,
                w.reasons.join("; ")
            ),
            since: Some(w.promoted_at.clone()),
            go: Go::Tab(Tab::Monitor),
        });
    }
    for r in d
        .releases
        .iter()
        .filter(|r| r.state == ReleaseState::Promoting)
    {
        out.push(Alert {
            what: format!(
                "release {} is stuck promoting (the next command's recovery settles it)",
                r.id
            ),
            since: Some(r.updated_at.clone()),
            go: Go::Release(r.id.clone()),
        });
    }
    if let Some(why) = &d.ledger {
        out.push(Alert {
            what: why.clone(),
            since: None,
            go: Go::Tab(Tab::Environments),
        });
    }
    if let Some(Ok(cap)) = &state.capacity.data {
        for (i, f) in cap.forecast.items.iter().enumerate() {
            let Some(u) = (cap.usage.status.iter())
                .find(|u| u.metric == f.metric && u.exceeded_since.is_some())
            else {
                continue;
            };
            let meaning = u.meaning.as_deref().map(|m| format!(": {m}"));
            out.push(Alert {
                what: format!(
                    "{} is over the plan's limit{}",
                    f.label,
                    meaning.unwrap_or_default()
                ),
                since: u.exceeded_since.clone(),
                go: Go::Limit(i),
            });
        }
    }
    for r in
        (d.releases.iter()).filter(|r| r.state == ReleaseState::Failed && r.root_cause.is_none())
    {
        out.push(Alert {
            what: format!("release {} failed and has no root-cause note", r.id),
            since: Some(r.updated_at.clone()),
            go: Go::Release(r.id.clone()),
        });
    }
    if let Some(c) = d.chain.as_ref().filter(|c| !c.ok) {
        out.push(Alert {
            what: format!(
                "the audit hash chain is broken at seq {}: {}",
                c.first_bad_seq.map_or("?".into(), |s| s.to_string()),
                c.problem.as_deref().unwrap_or("unknown problem")
            ),
            since: None,
            go: Go::Tab(Tab::Audit),
        });
    }
    out
}
