//! Background traffic while the demo's console is open: one thread replays the demo's read
//! probes against production at a modest rate through [`Engine::execute`] (so every query is
//! measured and recorded like any other), which keeps the Monitor moving. It never writes,
//! and it stops when the console exits.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::observe::ExecuteOptions;
use crate::engine::{Engine, EngineOptions, PRODUCTION};

/// Queries per second, roughly.
pub const RATE: u64 = 8;
/// Read probes too heavy to replay continuously (they scan a million rows).
const SKIP: &[&str] = &["popular_feed"];

/// The running replay; stops (and waits for the thread) when dropped.
pub struct BackgroundTraffic {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl BackgroundTraffic {
    /// Starts replaying the workspace's read probes on production.
    pub fn start(root: &Path) -> std::io::Result<BackgroundTraffic> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root: PathBuf = root.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("d1ops-demo-traffic".into())
            .spawn(move || run(&root, &flag))?;
        Ok(BackgroundTraffic {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for BackgroundTraffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(root: &Path, stop: &AtomicBool) {
    let engine = match Engine::open(
        root,
        EngineOptions {
            actor: Some("demo-traffic".into()),
            readonly: false,
        },
    ) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "demo traffic could not open the workspace");
            return;
        }
    };
    let probes: Vec<(String, Vec<serde_json::Value>)> = (engine.ws.config.probes.iter())
        .filter(|p| !p.is_write() && !SKIP.contains(&p.name.as_str()))
        .map(|p| {
            let params = (p.params.iter())
                .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
                .collect();
            (p.sql.clone(), params)
        })
        .collect();
    if probes.is_empty() {
        return;
    }
    let pause = Duration::from_millis(1_000 / RATE);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // A skewed mix: the first probes (the hot paths) run most often.
        let pick = (i * 7 + i / 3) % probes.len();
        let pick = pick.min(i % (probes.len() / 2).max(1) + pick / 3);
        let (sql, params) = &probes[pick];
        if let Err(e) = engine.execute(PRODUCTION, sql, params, ExecuteOptions::default()) {
            tracing::debug!(error = %e, "demo traffic query failed");
        }
        i = i.wrapping_add(1);
        std::thread::sleep(pause);
    }
}
