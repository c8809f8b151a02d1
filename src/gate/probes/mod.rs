//! Probes and query plans: `probe.result`, `probe.latency`, `plan.scan`, `compat.live`.
//! (Being built.)
use super::Check;

/// The probe checks, in catalogue order.
pub fn checks() -> Vec<Box<dyn Check>> {
    Vec::new()
}
