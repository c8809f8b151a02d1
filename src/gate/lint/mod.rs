//! Lint of migration SQL: `lint.d1`, `lint.destructive`, `lint.risk`. (Being built.)
use super::Check;

/// The lint checks, in catalogue order.
pub fn checks() -> Vec<Box<dyn Check>> {
    Vec::new()
}
