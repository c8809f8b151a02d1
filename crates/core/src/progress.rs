//! Progress of long work — migrations linted and applied, bytes cloned, probes run, demo
//! rows written — told to whoever listens on the current thread: a face registers a
//! [`Sink`] around a call ([`with_sink`]), the work reports [`stage`]s and how far each got.
//! Without a sink every report is a no-op, so the engine, the console and the tests pay
//! nothing.
//!
//! It holds no terminal code (the CLI draws bars with indicatif) and decides nothing: a
//! report never changes what the work does. It sits beside `fault` rather than in `engine`
//! because `gate` and `backend` report too, and they import nothing from the engine.
use std::cell::RefCell;
use std::time::Instant;

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Migrations,
    Statements,
    Bytes,
    Probes,
    Rows,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Migrations => "migrations",
            Unit::Statements => "statements",
            Unit::Bytes => "bytes",
            Unit::Probes => "probes",
            Unit::Rows => "rows",
        }
    }
}

/// Where progress goes. Called on the thread that registered it, from inside the work:
/// implementations must be quick and must not fail.
pub trait Sink {
    /// A stage starts: `what` in a few words ("lint", "preview apply"), with its total in
    /// `unit`s when known.
    fn start(&mut self, what: &str, total: Option<u64>, unit: Unit);
    /// `done` units of the current stage are done.
    fn advance(&mut self, done: u64);
    /// The current stage ended, after `secs`.
    fn finish(&mut self, secs: f64);
}

thread_local! {
    static SINK: RefCell<Option<Box<dyn Sink>>> = const { RefCell::new(None) };
}

/// Runs `f` with `sink` receiving this thread's progress; the previous sink (if any) is
/// restored afterwards, also when `f` panics.
pub fn with_sink<R>(sink: Box<dyn Sink>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Box<dyn Sink>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            let _ = SINK.try_with(|s| {
                if let Ok(mut slot) = s.try_borrow_mut() {
                    *slot = previous;
                }
            });
        }
    }
    let previous = SINK.with(|s| s.borrow_mut().replace(sink));
    let _restore = Restore(previous);
    f()
}

/// Whether a sink listens on this thread (to skip work done only to report).
pub fn listening() -> bool {
    SINK.with(|s| s.try_borrow().is_ok_and(|s| s.is_some()))
}

fn with<F: FnOnce(&mut dyn Sink)>(f: F) {
    let _ = SINK.try_with(|s| {
        // A sink reporting from inside its own call (it should not) is ignored, not a panic.
        if let Ok(mut slot) = s.try_borrow_mut()
            && let Some(sink) = slot.as_mut()
        {
            f(sink.as_mut());
        }
    });
}

/// One stage of work in progress; dropping it ends the stage.
#[must_use = "the stage ends when this is dropped"]
pub struct Stage {
    started: Instant,
    done: u64,
}

/// Starts a stage: `what` in a few words, with its total in `unit`s when known.
pub fn stage(what: &str, total: Option<u64>, unit: Unit) -> Stage {
    with(|s| s.start(what, total, unit));
    Stage {
        started: Instant::now(),
        done: 0,
    }
}

impl Stage {
    /// `done` units are done (a count from the start, not an increment).
    pub fn set(&mut self, done: u64) {
        self.done = done;
        with(|s| s.advance(done));
    }

    /// `n` more units are done.
    pub fn add(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        with(|s| s.finish(secs));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records what it is told, as lines.
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Sink for Log {
        fn start(&mut self, what: &str, total: Option<u64>, unit: Unit) {
            let total = total.map_or("?".to_string(), |t| t.to_string());
            self.0
                .lock()
                .unwrap()
                .push(format!("start {what} {total} {}", unit.as_str()));
        }
        fn advance(&mut self, done: u64) {
            self.0.lock().unwrap().push(format!("advance {done}"));
        }
        fn finish(&mut self, _secs: f64) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    fn work() {
        let mut st = stage("lint", Some(3), Unit::Migrations);
        for i in 1..=3 {
            st.set(i);
        }
        st.add(0);
    }

    #[test]
    fn a_sink_hears_its_thread_only_while_registered() {
        let log = Arc::new(Mutex::new(Vec::new()));
        assert!(!listening());
        work(); // nobody listens: nothing happens
        with_sink(Box::new(Log(Arc::clone(&log))), || {
            assert!(listening());
            work();
            // Another thread's work is not this sink's.
            std::thread::spawn(work).join().unwrap();
        });
        assert!(!listening());
        work();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "start lint 3 migrations",
                "advance 1",
                "advance 2",
                "advance 3",
                "advance 3",
                "finish"
            ]
        );
    }

    #[test]
    fn the_previous_sink_comes_back_after_a_panic() {
        let outer = Arc::new(Mutex::new(Vec::new()));
        let inner = Arc::new(Mutex::new(Vec::new()));
        with_sink(Box::new(Log(Arc::clone(&outer))), || {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_sink(Box::new(Log(Arc::clone(&inner))), || panic!("boom"))
            }));
            assert!(caught.is_err());
            drop(stage("after", None, Unit::Rows));
        });
        assert!(inner.lock().unwrap().is_empty());
        assert_eq!(*outer.lock().unwrap(), ["start after ? rows", "finish"]);
    }
}
