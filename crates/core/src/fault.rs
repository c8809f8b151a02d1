//! Fault injection for crash-safety tests: when `D1OPS_FAULT` names a step, the process
//! aborts right there, like a `kill -9`, leaving whatever was on disk at that moment.
//! `D1OPS_PAUSE=<step>:<ms>` sleeps there instead (to hold a lock while a test races it).
//!
//! Points are named `<operation>.<step>`; the list is in ARCHITECTURE.md: `deploy.before_clone`,
//! `deploy.after_clone`, `deploy.before_gate`, `deploy.before_verdict`, `promote.after_lock`,
//! `promote.after_snapshot`, `promote.before_apply`, `apply.after_first_migration`,
//! `apply.before_commit`, `promote.after_commit`, `restore.after_lock`, `restore.before_apply`,
//! `restore.after_apply` (before the step `applied` is recorded), `restore.before_finish`
//! (after it), `rollback.after_copy`, `rollback.before_switch`, and the code steps'
//! `promote.before_code`, `code.before_<action>`, `code.after_<action>`, `promote.after_code`. Outside tests the variables
//! are unset and every point is a no-op.

/// The environment variable that names the step to crash at.
pub const FAULT_ENV: &str = "D1OPS_FAULT";
/// The environment variable that names a step to pause at, as `step:milliseconds`.
pub const PAUSE_ENV: &str = "D1OPS_PAUSE";

/// Aborts the process when `D1OPS_FAULT` equals `name`; sleeps when `D1OPS_PAUSE` names it.
pub fn point(name: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == name) {
        tracing::warn!(point = name, "fault injection: aborting");
        std::process::abort();
    }
    if let Ok(v) = std::env::var(PAUSE_ENV)
        && let Some((step, ms)) = v.split_once(':')
        && step == name
        && let Ok(ms) = ms.parse::<u64>()
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
