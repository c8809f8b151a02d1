//! Progress bars on stderr for long work (issue 15 item 12): the core reports stages —
//! migrations linted and applied, bytes copied, probes run, demo rows written — through
//! [`crate::progress`]; this draws each as an indicatif bar with its stage, count and elapsed
//! time, and clears it when the stage ends, so what stays on screen is the command's output.
//!
//! Only when stderr is a terminal and the output is not `--json`: piped or scripted runs get
//! no progress text at all. The console draws its own screen, so it gets none either.
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{Cli, Command};
use crate::progress::{Sink, Unit};

/// The sink for this invocation, if progress should be shown.
pub(super) fn sink(cli: &Cli) -> Option<Box<dyn Sink>> {
    let console = matches!(cli.command, None | Some(Command::Console));
    if cli.json || console || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(Box::new(Bars::new(ProgressDrawTarget::stderr())))
}

/// Stages in progress, innermost last, drawn together.
struct Bars {
    multi: MultiProgress,
    open: Vec<ProgressBar>,
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(target),
            open: Vec::new(),
        }
    }
}

/// The bar's style for a stage counting `unit`, with or without a known total.
fn style(unit: Unit, known: bool) -> ProgressStyle {
    ProgressStyle::with_template(&template(unit, known))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The indicatif template: stage, bar (when the total is known), count, elapsed time.
fn template(unit: Unit, known: bool) -> String {
    let count = match (unit, known) {
        (Unit::Bytes, true) => "{bytes}/{total_bytes}".to_string(),
        (Unit::Bytes, false) => "{bytes}".to_string(),
        (u, true) => format!("{{human_pos}}/{{human_len}} {}", u.as_str()),
        (u, false) => format!("{{human_pos}} {}", u.as_str()),
    };
    if known {
        format!("{{spinner}} {{prefix:<26}} [{{bar:30}}] {count} {{elapsed}}")
    } else {
        format!("{{spinner}} {{prefix:<26}} {count} {{elapsed}}")
    }
}

impl Sink for Bars {
    fn start(&mut self, what: &str, total: Option<u64>, unit: Unit) {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let bar = self.multi.add(bar);
        bar.set_style(style(unit, total.is_some()));
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.open.push(bar);
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = self.open.last() {
            bar.set_position(done);
        }
    }

    fn finish(&mut self, _secs: f64) {
        if let Some(bar) = self.open.pop() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        for bar in self.open.drain(..) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{stage, with_sink};

    /// Stages open and close in order on a hidden target; templates all parse.
    #[test]
    fn bars_follow_the_stages() {
        for unit in [
            Unit::Migrations,
            Unit::Statements,
            Unit::Bytes,
            Unit::Probes,
            Unit::Rows,
        ] {
            for known in [true, false] {
                let t = template(unit, known);
                assert!(ProgressStyle::with_template(&t).is_ok(), "{t}");
            }
        }
        let bars = Bars::new(ProgressDrawTarget::hidden());
        with_sink(Box::new(bars), || {
            let mut outer = stage("demo data", Some(10), Unit::Rows);
            {
                let mut inner = stage("copy", Some(1 << 20), Unit::Bytes);
                inner.set(1 << 20);
            }
            outer.set(10);
        });
    }
}
