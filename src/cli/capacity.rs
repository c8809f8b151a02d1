//! CLI handlers for capacity: `usage`, `forecast`, `report weekly`. (Being built.)
use super::{Cli, Command};
use crate::engine::Engine;

pub(super) fn run(_cli: &Cli, cmd: &Command, _engine: &mut Engine) -> anyhow::Result<i32> {
    anyhow::bail!("{cmd:?} is not built yet")
}
