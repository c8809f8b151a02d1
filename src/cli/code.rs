//! How code steps read on the terminal: one line per target step after `promote`,
//! `rollback` and `deploy`, the Code section of `release show`, and the output tail of a
//! failed step under the error.
use super::output::{DIM, GREEN, RED, YELLOW, paint, safe, safe_lines};
use crate::engine::{CodeStepResult, TargetView};

/// `  ✓ app deploy (release 01K…): deploy command exited 0  log .d1ops/code/…`
pub(super) fn print_steps(steps: &[CodeStepResult]) {
    for s in steps {
        let mark = match s.status.as_str() {
            "succeeded" => paint("✓", GREEN),
            "failed" => paint("✗", RED),
            _ => paint("-", DIM),
        };
        let mut line = format!(
            "  {mark} code {} {} (release {}): {}",
            safe(&s.target),
            s.action.as_str(),
            safe(&s.release),
            safe(&s.detail)
        );
        if let Some(v) = &s.version_id {
            line.push_str(&format!("; version {}", safe(v)));
        }
        if let Some(u) = &s.url {
            line.push_str(&format!("; {}", safe(u)));
        }
        if let Some(l) = &s.log {
            line.push_str(&format!("  {}", paint(&format!("log {}", safe(l)), DIM)));
        }
        println!("{line}");
    }
}

/// The Code section of `release show`.
pub(super) fn print_targets(targets: &[TargetView]) {
    if targets.is_empty() {
        return;
    }
    println!("code:");
    for t in targets {
        let sha = t
            .artifact_sha256
            .as_deref()
            .map(|s| format!("{}…", &s[..s.len().min(12)]))
            .unwrap_or_else(|| "not shipped by this release".into());
        println!(
            "  {} ({}, artifact {} {})",
            safe(&t.name),
            t.kind,
            safe(&t.artifact),
            sha
        );
        if let Some(r) = &t.rollout {
            let mut line = format!(
                "    rollout    {} step {} of {}: {}% on version {} ({}% on {})",
                r.status.as_str(),
                r.step,
                r.total_steps,
                r.percent,
                safe(&r.new_version),
                100u32.saturating_sub(r.percent),
                safe(&r.previous_version)
            );
            if let Some(next) = &r.next_at {
                line.push_str(&format!("; next step due {}", safe(next)));
            }
            if let Some(d) = &r.detail {
                line.push_str(&format!("; {}", safe(d)));
            }
            println!("{line}");
        }
        for (what, step) in [("preview", &t.preview), ("production", &t.production)] {
            let Some(s) = step else {
                println!("    {what:<10} –");
                continue;
            };
            let colour = match s.status.as_str() {
                "succeeded" => GREEN,
                "failed" => RED,
                "running" => YELLOW,
                _ => DIM,
            };
            let mut line = format!(
                "    {what:<10} {} ({})",
                paint(&s.status, colour),
                safe(&s.action)
            );
            if let Some(d) = &s.detail {
                line.push_str(&format!(": {}", safe(d)));
            }
            if let Some(v) = &s.version_id {
                line.push_str(&format!("; version {}", safe(v)));
            }
            if let Some(u) = &s.url {
                line.push_str(&format!("; {}", safe(u)));
            }
            if let Some(at) = &s.deployed_at {
                line.push_str(&format!("; {}", safe(at)));
            }
            println!("{line}");
            if s.status == "failed"
                && let Some(tail) = &s.output_tail
            {
                print_tail(tail, false);
            }
        }
    }
}

/// The last lines of a step's output, indented and dimmed (on stderr for errors).
pub(super) fn print_tail(tail: &str, stderr: bool) {
    if tail.trim().is_empty() {
        return;
    }
    let text = safe_lines(tail);
    for line in text.lines() {
        if stderr {
            eprintln!("    | {line}");
        } else {
            println!("    {} {line}", paint("|", DIM));
        }
    }
}
