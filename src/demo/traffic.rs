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
/// Queries of the likes feature, which the app runs from its version 2 on.
const LIKES: &[&str] = &["did_i_like", "item_likers", "my_likes"];
/// @mentions (resolving a username), which the app runs from version 3 on: the releases that
/// make usernames unique.
const MENTIONS: &[&str] = &["user_by_username"];
/// Where the demo app's `deploy` puts the live bundle (relative to the workspace).
pub const LIVE_BUNDLE: &str = ".d1ops/demo-app/live.json";

/// One query the demo app runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct AppQuery {
    name: String,
    sql: String,
    #[serde(default)]
    params: Vec<serde_json::Value>,
}

/// The demo app's bundle for `version`: which queries that version runs (the demo config's
/// read probes; the likes queries from version 2 on, @mentions from version 3 on), as JSON.
pub fn app_bundle(version: u32) -> anyhow::Result<String> {
    let config = crate::workspace::Config::parse(super::CONFIG, "assets/demo/d1ops.toml")?;
    let queries: Vec<AppQuery> = (config.probes.iter())
        .filter(|p| !p.is_write() && !SKIP.contains(&p.name.as_str()))
        .filter(|p| version >= 2 || !LIKES.contains(&p.name.as_str()))
        .filter(|p| version >= 3 || !MENTIONS.contains(&p.name.as_str()))
        .map(|p| AppQuery {
            name: p.name.clone(),
            sql: p.sql.clone(),
            params: (p.params.iter())
                .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
                .collect(),
        })
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "app": "mini-app",
        "version": version,
        "queries": queries,
    }))?)
}

/// The queries of the live bundle, when the app's code was deployed.
fn live_queries(root: &Path) -> Option<Vec<(String, Vec<serde_json::Value>)>> {
    let text = std::fs::read_to_string(root.join(LIVE_BUNDLE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let queries: Vec<AppQuery> = serde_json::from_value(v.get("queries")?.clone()).ok()?;
    Some(queries.into_iter().map(|q| (q.sql, q.params)).collect())
}

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
    // The queries of the app's live code (switched by `promote` and `rollback`), re-read
    // every few seconds; the read probes when no app code was deployed.
    let fallback: Vec<(String, Vec<serde_json::Value>)> = (engine.ws.config.probes.iter())
        .filter(|p| !p.is_write() && !SKIP.contains(&p.name.as_str()))
        .map(|p| {
            let params = (p.params.iter())
                .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
                .collect();
            (p.sql.clone(), params)
        })
        .collect();
    let mut probes = live_queries(root).unwrap_or_else(|| fallback.clone());
    let pause = Duration::from_millis(1_000 / RATE);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if i.is_multiple_of(RATE as usize * 2) {
            probes = live_queries(root).unwrap_or_else(|| fallback.clone());
        }
        if probes.is_empty() {
            std::thread::sleep(pause);
            i = i.wrapping_add(1);
            continue;
        }
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
