//! `d1ops lint`: lint the workspace's migrations alone (CI, editors). (Being built.)
use super::Cli;

/// Needs only the workspace (config + migrations): no state store, no databases.
pub(super) fn run(_cli: &Cli) -> anyhow::Result<i32> {
    anyhow::bail!("lint is not built yet")
}
