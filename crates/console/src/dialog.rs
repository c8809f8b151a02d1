//! The one confirmation popup every dangerous action goes through, and the cleanup
//! dialog: their state and the pure rules for focus, typing and when Confirm is allowed.
//!
//! Cancel is always focused first; nothing here talks to the engine — pressing Confirm
//! only yields the [`Request`] for `update` to send.
use crate::data::{PromotePreview, RecoveryPreview};
use crate::effects::Request;
use crate::engine::{CleanupItem, IndexSuggestion};
use crate::model;

/// The dangerous actions that share the confirmation dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmAction {
    Approve,
    Promote,
    Abandon,
    Rollback,
    Restore,
    /// The next step of the release's worker rollout.
    RolloutContinue,
    /// The previous Worker version back at 100%, the release failed at stage `rollout`.
    RolloutAbort,
}

impl ConfirmAction {
    pub fn verb(self) -> &'static str {
        match self {
            ConfirmAction::Approve => "Approve",
            ConfirmAction::Promote => "Promote",
            ConfirmAction::Abandon => "Abandon",
            ConfirmAction::Rollback => "Roll back to",
            ConfirmAction::Restore => "Restore before",
            ConfirmAction::RolloutContinue => "Continue the rollout of",
            ConfirmAction::RolloutAbort => "Abort the rollout of",
        }
    }
}

/// Which button has focus. Typing always goes to the text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Cancel,
    Confirm,
}

impl Focus {
    pub fn toggle(self) -> Focus {
        match self {
            Focus::Cancel => Focus::Confirm,
            Focus::Confirm => Focus::Cancel,
        }
    }
}

/// The confirmation of one action on one release.
#[derive(Debug, Clone)]
pub struct Confirm {
    pub action: ConfirmAction,
    pub release: String,
    pub label: Option<String>,
    /// Who deployed the release (the approve dialog warns its author up front).
    pub author: String,
    pub state: String,
    /// The note (approve, abandon) or the typed id suffix (promote).
    pub input: String,
    pub focus: Focus,
    /// Promote only: what the gate says and what will change (`None` while loading).
    pub preview: Option<Result<Box<PromotePreview>, String>>,
    /// Rollback / restore only: the probe check or the loss report (`None` while loading).
    pub recovery: Option<Result<Box<RecoveryPreview>, String>>,
    /// How far the dialog's middle (the diff, the loss report) is scrolled (`↓`/`↑`).
    pub scroll: usize,
}

impl Confirm {
    /// The characters the operator must type to promote, roll back or restore: the
    /// release's confirmation code (the id's last four, the same rule as the CLI's).
    pub fn code(&self) -> &str {
        model::confirmation_code(&self.release)
    }

    /// Whether pressing Confirm would act now, else why not.
    pub fn blocked_by(&self) -> Option<String> {
        let blocker = match self.action {
            ConfirmAction::Approve | ConfirmAction::Abandon | ConfirmAction::RolloutContinue => {
                return None;
            }
            ConfirmAction::RolloutAbort => None,
            ConfirmAction::Promote => match &self.preview {
                None => Some("checking the gate…".into()),
                Some(Err(e)) => Some(e.clone()),
                Some(Ok(p)) => p.blocker.clone(),
            },
            ConfirmAction::Rollback | ConfirmAction::Restore => match &self.recovery {
                None => Some("checking…".into()),
                Some(Err(e)) => Some(e.clone()),
                Some(Ok(p)) => p.blocker.clone(),
            },
        };
        if blocker.is_some() {
            return blocker;
        }
        if !model::confirms(&self.release, &self.input) {
            return Some(format!(
                "type the id's last 4 characters to enable {}",
                self.action.verb()
            ));
        }
        None
    }

    /// The furthest the middle can usefully scroll: at most its line count (an upper bound
    /// that keeps `↑` answering at once after many `↓`).
    pub fn scroll_limit(&self) -> usize {
        let promote = match &self.preview {
            Some(Ok(p)) => p.diff.len() + p.pending.len() + 12,
            _ => 0,
        };
        let recovery = match &self.recovery {
            Some(Ok(p)) => p.lines.len() * 2 + 4,
            _ => 0,
        };
        promote + recovery + 8
    }

    /// Whether the dialog is ready for the typed id (loaded, nothing in the way).
    pub fn awaiting_code(&self) -> bool {
        match self.action {
            ConfirmAction::Promote => matches!(&self.preview, Some(Ok(p)) if p.blocker.is_none()),
            ConfirmAction::Rollback | ConfirmAction::Restore => {
                matches!(&self.recovery, Some(Ok(p)) if p.blocker.is_none())
            }
            ConfirmAction::RolloutAbort => true,
            _ => false,
        }
    }

    /// The request Confirm sends.
    pub fn request(&self) -> Request {
        let id = self.release.clone();
        let note = Some(self.input.trim().to_string()).filter(|s| !s.is_empty());
        match self.action {
            ConfirmAction::Approve => Request::Approve { id, note },
            ConfirmAction::Promote => Request::Promote(id),
            ConfirmAction::Abandon => Request::Abandon { id, note },
            ConfirmAction::Rollback => Request::Rollback(id),
            ConfirmAction::Restore => Request::Restore(id),
            ConfirmAction::RolloutContinue => Request::RolloutContinue(id),
            ConfirmAction::RolloutAbort => Request::RolloutAbort(id),
        }
    }
}

/// The cleanup dialog: the stale previews the engine would delete.
#[derive(Debug, Clone)]
pub struct CleanupDialog {
    /// `None` while the plan loads.
    pub items: Option<Result<Vec<CleanupItem>, String>>,
    pub focus: Focus,
    pub scroll: usize,
}

impl CleanupDialog {
    pub fn total_bytes(&self) -> u64 {
        match &self.items {
            Some(Ok(items)) => items.iter().map(|i| i.size_bytes).sum(),
            _ => 0,
        }
    }

    /// The cleanup request, when there is something to delete.
    pub fn request(&self) -> Option<Request> {
        match &self.items {
            Some(Ok(items)) if !items.is_empty() => Some(Request::Cleanup(items.clone())),
            _ => None,
        }
    }
}

/// The confirmation before a suggested index is written as the next migration file.
#[derive(Debug, Clone)]
pub struct IndexDialog {
    pub suggestion: IndexSuggestion,
    pub focus: Focus,
}

impl IndexDialog {
    pub fn request(&self) -> Request {
        Request::WriteIndex(self.suggestion.clone())
    }
}

/// `q` while a write to production is in flight: wait for it (Cancel, focused first) or
/// quit now and leave it to the recovery the next command runs (Confirm).
#[derive(Debug, Clone)]
pub struct QuitDialog {
    /// What is in flight, as the spinner says it ("promoting").
    pub what: String,
    pub focus: Focus,
}

/// The word `restore --undo` asks for, in the CLI and here.
pub const UNDO_WORD: &str = "undo";

/// `U`: undo the last restore, with the CLI's typed confirmation (`undo`).
#[derive(Debug, Clone)]
pub struct UndoDialog {
    pub input: String,
    pub focus: Focus,
    /// What the undo would do (`None` while loading).
    pub preview: Option<Result<Box<RecoveryPreview>, String>>,
    /// How far the plan's lines are scrolled (`↓`/`↑`).
    pub scroll: usize,
}

impl UndoDialog {
    /// Whether pressing Confirm would act now, else why not.
    pub fn blocked_by(&self) -> Option<String> {
        match &self.preview {
            None => Some("checking…".into()),
            Some(Err(e)) => Some(e.clone()),
            Some(Ok(p)) if p.blocker.is_some() => p.blocker.clone(),
            Some(Ok(_)) if !self.input.trim().eq_ignore_ascii_case(UNDO_WORD) => {
                Some(format!("type {UNDO_WORD} to enable Undo"))
            }
            Some(Ok(_)) => None,
        }
    }
}

/// The open dialog, if any.
#[derive(Debug, Clone)]
pub enum Dialog {
    Confirm(Confirm),
    Cleanup(CleanupDialog),
    Index(IndexDialog),
    Quit(QuitDialog),
    Undo(UndoDialog),
}

impl Dialog {
    /// Whether the dialog has a text field that takes typed characters.
    pub fn takes_text(&self) -> bool {
        matches!(self, Dialog::Confirm(_) | Dialog::Undo(_))
    }

    /// Whether the dialog waits on a read that Esc should cancel (a preview still loading).
    pub fn loading(&self) -> bool {
        match self {
            Dialog::Confirm(c) => match c.action {
                ConfirmAction::Promote => c.preview.is_none(),
                ConfirmAction::Rollback | ConfirmAction::Restore => c.recovery.is_none(),
                _ => false,
            },
            Dialog::Cleanup(c) => c.items.is_none(),
            Dialog::Undo(u) => u.preview.is_none(),
            Dialog::Index(_) | Dialog::Quit(_) => false,
        }
    }
}
