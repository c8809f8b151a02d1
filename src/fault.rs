//! Fault injection for crash-safety tests: when `D1OPS_FAULT` names a step, the process
//! aborts right there, like a `kill -9`, leaving whatever was on disk at that moment.
//!
//! Points are named `<operation>.<step>`; the list is in ARCHITECTURE.md. Outside tests the
//! variable is unset and every point is a no-op.

/// The environment variable that names the step to crash at.
pub const FAULT_ENV: &str = "D1OPS_FAULT";

/// Aborts the process when `D1OPS_FAULT` equals `name`.
pub fn point(name: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == name) {
        tracing::warn!(point = name, "fault injection: aborting");
        std::process::abort();
    }
}
