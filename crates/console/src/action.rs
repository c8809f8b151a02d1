//! What can happen in the console ([`Action`]): the closed vocabulary `update` reacts to.
//! What the core asks of the shell and what the worker answers live in `effects`, the data
//! it reads in `data`; both are re-exported here under the names the console's users
//! (tests, benchmarks) know.
//!
//! Plain data only: nothing here performs I/O or touches the engine.
use chrono::{DateTime, Utc};

use crate::state::Tab;

pub use crate::data::{CapacityData, DetailData, PromotePreview, RecoveryPreview, Snapshot};
pub use crate::effects::{Effect, Reply, Request};

/// Everything `update` reacts to: key bindings (after the keymap resolved them), mouse,
/// terminal changes, clock ticks and worker replies.
#[derive(Debug, Clone)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Back,
    /// `q`: back out of whatever is open, quit at the top level.
    Quit,
    /// Ctrl-C: quit from anywhere.
    ForceQuit,
    Filter,
    Help,
    Refresh,
    NextTab,
    PrevTab,
    GoTab(Tab),
    NextSub,
    PrevSub,
    Approve,
    Promote,
    Abandon,
    Cleanup,
    /// `R`: switch production's code back to the selected release.
    Rollback,
    /// `S`: restore production's database to before the selected release.
    Restore,
    /// Monitor: acknowledge the live release's regressed watch (it stops alerting).
    AckWatch,
    /// `U`: undo the last restore (Releases).
    RestoreUndo,
    /// `:advance ID`: take the next step of the release's worker rollout.
    RolloutContinue,
    /// `:halt ID`: put the previous Worker version back at 100%.
    RolloutAbort,
    /// A dangerous key pressed in a read-only console: what it would have done.
    ReadOnly(&'static str),
    /// `!`: the alerts list.
    Alerts,
    /// `:`: the command palette.
    Palette,
    /// `y`: copy what is selected to the clipboard (OSC 52).
    Copy,
    /// Monitor: the next environment.
    NextEnv,
    /// Monitor: the next time window (5m, 1h, 24h, 7d).
    NextWindow,
    /// Monitor: list d1ops' own statements too, or not.
    ToggleD1ops,
    /// Monitor: the next order of the top queries.
    NextOrder,
    /// Monitor: write the selected query's suggested index as the next migration.
    WriteIndex,
    /// Dialog: move focus between Cancel and Confirm.
    FocusNext,
    FocusPrev,
    /// Dialog: press the focused button.
    Press,
    /// Dialog or filter: close without acting.
    Cancel,
    /// Filter: keep the typed filter and return to the list.
    Accept,
    Input(char),
    Backspace,
    Click {
        col: u16,
        row: u16,
    },
    WheelUp,
    WheelDown,
    Resize(u16, u16),
    Tick(DateTime<Utc>),
    Reply(Reply),
}
