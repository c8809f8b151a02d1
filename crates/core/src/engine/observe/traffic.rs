//! `traffic`: the release's probes, or a workload file, replayed as concurrent load at a
//! steady rate for a fixed time on a few worker threads, every statement measured and
//! recorded like any other. Bounded in count (rate × duration) and time (the duration), and
//! local only: workers open the environment's SQLite file, nothing goes over a network.
//!
//! Traffic is load, not data: a statement that writes runs inside a transaction that is
//! rolled back (its work, locks and rows written are real; the data stays), and writes are
//! replayed only on previews — on production only reads run.
//!
//! # Workload files
//!
//! JSON lines, one statement per line; blank lines and lines starting with `#` are skipped:
//!
//! ```json
//! {"sql": "SELECT * FROM users WHERE id = ?", "params": [42], "weight": 8}
//! {"name": "recent orders", "sql": "SELECT * FROM orders ORDER BY created_at DESC LIMIT 20"}
//! ```
//!
//! `sql` is required (one statement); `params` (positional, default none), `weight` (relative
//! frequency, integer ≥ 1, default 1) and `name` (shown in the summary) are optional.
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{EventSink, Recorder, Target, events_for};
use crate::backend::{ExecOptions, ExecStatement, LocalBackend, LocalSession, one_line};
use crate::engine::{Engine, EngineError, Result};
use crate::metrics::Histogram;

/// Most queries per second a run may ask for.
pub const MAX_RATE: u32 = 10_000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Worker threads (fewer when the rate is tiny).
const WORKERS: u32 = 4;
/// Events a worker buffers before handing them to the recorder.
const SEND_EVERY: usize = 64;

/// One statement of the mix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkItem {
    pub name: String,
    pub sql: String,
    pub params: Vec<serde_json::Value>,
    pub weight: u32,
    /// Changes the database (runs in a rolled-back transaction).
    pub write: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkLine {
    sql: String,
    #[serde(default)]
    params: Vec<serde_json::Value>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    name: Option<String>,
}

/// Parses a workload file (see the module docs); the error names the line.
pub fn parse_workload(text: &str) -> std::result::Result<Vec<WorkItem>, String> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let w: WorkLine = serde_json::from_str(trimmed)
            .map_err(|e| format!("line {n}: not a workload entry: {e}"))?;
        let statements = d1ops_sql::splitter::batch_statements(&w.sql);
        if statements.len() != 1 {
            return Err(format!(
                "line {n}: `sql` must hold exactly one statement, it holds {}",
                statements.len()
            ));
        }
        let weight = w.weight.unwrap_or(1);
        if weight == 0 {
            return Err(format!("line {n}: `weight` must be at least 1"));
        }
        items.push(WorkItem {
            name: w.name.unwrap_or_else(|| one_line(&w.sql, 60)),
            sql: w.sql,
            params: w.params,
            weight,
            write: false,
        });
    }
    if items.is_empty() {
        return Err("the workload has no statements".into());
    }
    Ok(items)
}

/// A run to make.
#[derive(Debug, Clone)]
pub struct TrafficRequest {
    pub target: Target,
    pub items: Vec<WorkItem>,
    pub rate: u32,
    pub duration: Duration,
}

/// How one statement of the mix fared.
#[derive(Debug, Clone, Serialize)]
pub struct ItemSummary {
    pub name: String,
    pub write: bool,
    pub count: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub first_error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficSummary {
    pub env: String,
    pub release: Option<String>,
    pub rate: u32,
    pub duration_s: f64,
    pub workers: u32,
    /// rate × duration: the most that could be sent.
    pub planned: u64,
    pub sent: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    pub achieved_qps: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub items: Vec<ItemSummary>,
    /// Probes left out, and why.
    pub skipped: Vec<String>,
    /// Events written to the metrics store (and lost, when a batch failed).
    pub recorded: u64,
    pub lost: u64,
}

impl Engine {
    /// Replays the probes of `env`'s release (read probes; write probes too on a preview) or
    /// a workload file at `rate` queries per second for `duration`, recording every statement.
    pub fn traffic(
        &self,
        env: &str,
        workload: Option<&Path>,
        rate: u32,
        duration: Duration,
    ) -> Result<TrafficSummary> {
        if rate == 0 || rate > MAX_RATE {
            return Err(EngineError::Input(format!(
                "--rate {rate}: give 1 to {MAX_RATE} queries per second"
            )));
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(EngineError::Input(format!(
                "--duration {}: give more than 0 and at most 24h",
                humantime::format_duration(duration)
            )));
        }
        let target = self.target(env)?;
        let (mut items, skipped) = match workload {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| EngineError::Input(format!("reading {}: {e}", path.display())))?;
                let items = parse_workload(&text)
                    .map_err(|e| EngineError::Input(format!("{}: {e}", path.display())))?;
                (items, Vec::new())
            }
            None => self.probe_items(&target)?,
        };
        let backend = self.local_backend()?;
        classify(&backend, &target, !self.readonly, &mut items)?;
        let recorder = Recorder::start(&self.ws.state_dir())?;
        let request = TrafficRequest {
            target,
            items,
            rate,
            duration,
        };
        let mut summary = run_traffic(&backend, &request, &recorder.sink())?;
        let stats = recorder.finish();
        summary.skipped = skipped;
        summary.recorded = stats.recorded;
        summary.lost = stats.lost;
        Ok(summary)
    }

    /// The release's probes as a mix (equal weights); write probes only on previews.
    fn probe_items(&self, target: &Target) -> Result<(Vec<WorkItem>, Vec<String>)> {
        let Some(release) = &target.release else {
            return Err(EngineError::Input(format!(
                "{} has no release, so no probes to replay; give --workload FILE",
                target.env
            )));
        };
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for p in self.store.release_probes(release)? {
            if p.is_write() && target.production {
                skipped.push(format!(
                    "{}: write probe, replayed on previews only",
                    p.name
                ));
                continue;
            }
            items.push(WorkItem {
                name: p.name.clone(),
                sql: p.sql.clone(),
                params: p.params.iter().map(toml_to_json).collect(),
                weight: 1,
                write: p.is_write(),
            });
        }
        if items.is_empty() {
            return Err(EngineError::Input(format!(
                "release {release} declares no probes to replay on {}; give --workload FILE",
                target.env
            )));
        }
        Ok((items, skipped))
    }
}

/// A probe parameter as the JSON value backends bind (dates become their text).
fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        other => other.to_string().into(),
    }
}

/// Marks the items that write (SQLite's own judgement), refusing them on production.
fn classify(
    backend: &LocalBackend,
    target: &Target,
    writable: bool,
    items: &mut [WorkItem],
) -> Result<()> {
    let conn = backend.open(&target.db)?;
    for item in items.iter_mut() {
        // A statement that does not prepare runs anyway and is recorded as an error.
        let writes = conn.prepare(&item.sql).is_ok_and(|s| !s.readonly());
        item.write = item.write || writes;
        if item.write && !writable {
            return Err(EngineError::Refused(format!(
                "--readonly: `{}` writes; traffic replays only reads",
                one_line(&item.sql, 80)
            )));
        }
        if item.write && target.production {
            return Err(EngineError::Refused(format!(
                "traffic replays only reads on production, and `{}` writes; replay it on a preview",
                one_line(&item.sql, 80)
            )));
        }
    }
    Ok(())
}

#[derive(Default)]
struct ItemStats {
    count: u64,
    errors: u64,
    hist: Histogram,
    first_error: Option<String>,
}

struct WorkerStats {
    items: Vec<ItemStats>,
    all: Histogram,
}

/// Runs the mix on `WORKERS` threads until rate × duration statements were sent or the
/// duration is over, sending events to `sink`.
pub fn run_traffic(
    backend: &LocalBackend,
    req: &TrafficRequest,
    sink: &EventSink,
) -> Result<TrafficSummary> {
    let workers = WORKERS.min(req.rate).max(1);
    let planned = (f64::from(req.rate) * req.duration.as_secs_f64()).floor() as u64;
    let mut sessions = Vec::new();
    for _ in 0..workers {
        let conn = backend.open(&req.target.db)?;
        sessions.push(
            LocalSession::new(conn, backend.statement_timeout())
                .map_err(|e| EngineError::Input(format!("opening {}: {e}", req.target.env)))?,
        );
    }
    let cumulative: Vec<u64> = req
        .items
        .iter()
        .scan(0u64, |acc, i| {
            *acc += u64::from(i.weight);
            Some(*acc)
        })
        .collect();
    let start = Instant::now();
    let results: Vec<WorkerStats> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(w, session)| {
                let sink = sink.clone();
                let cumulative = &cumulative;
                scope.spawn(move || {
                    worker(
                        session,
                        req,
                        cumulative,
                        w as u64,
                        u64::from(workers),
                        planned,
                        start,
                        &sink,
                    )
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut items: Vec<ItemStats> = req.items.iter().map(|_| ItemStats::default()).collect();
    let mut all = Histogram::new();
    for r in results {
        all.merge(&r.all);
        for (into, from) in items.iter_mut().zip(r.items) {
            into.count += from.count;
            into.errors += from.errors;
            into.hist.merge(&from.hist);
            if into.first_error.is_none() {
                into.first_error = from.first_error;
            }
        }
    }
    let sent: u64 = items.iter().map(|i| i.count).sum();
    let errors: u64 = items.iter().map(|i| i.errors).sum();
    Ok(TrafficSummary {
        env: req.target.env.clone(),
        release: req.target.release.clone(),
        rate: req.rate,
        duration_s: req.duration.as_secs_f64(),
        workers,
        planned,
        sent,
        errors,
        elapsed_s: elapsed,
        achieved_qps: if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
        p50_ms: all.quantile(0.50),
        p95_ms: all.quantile(0.95),
        p99_ms: all.quantile(0.99),
        items: req
            .items
            .iter()
            .zip(items)
            .map(|(item, s)| ItemSummary {
                name: item.name.clone(),
                write: item.write,
                count: s.count,
                errors: s.errors,
                p50_ms: s.hist.quantile(0.50),
                p95_ms: s.hist.quantile(0.95),
                first_error: s.first_error,
            })
            .collect(),
        skipped: Vec::new(),
        recorded: 0,
        lost: 0,
    })
}

/// splitmix64: a deterministic, well-spread choice per tick.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One worker: ticks `w`, `w + workers`, … of the schedule (tick k is due at k / rate s).
#[allow(clippy::too_many_arguments)]
fn worker(
    mut session: LocalSession,
    req: &TrafficRequest,
    cumulative: &[u64],
    w: u64,
    workers: u64,
    planned: u64,
    start: Instant,
    sink: &EventSink,
) -> WorkerStats {
    let mut stats = WorkerStats {
        items: req.items.iter().map(|_| ItemStats::default()).collect(),
        all: Histogram::new(),
    };
    let total_weight = cumulative.last().copied().unwrap_or(1).max(1);
    let deadline = start + req.duration;
    let allow_writes = !req.target.production && req.items.iter().any(|i| i.write);
    let mut buffer = Vec::with_capacity(SEND_EVERY);
    let mut k = w;
    while k < planned {
        let due = start + Duration::from_secs_f64(k as f64 / f64::from(req.rate));
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        let pick = mix(k) % total_weight;
        let i = cumulative.partition_point(|c| *c <= pick);
        let item = &req.items[i];
        let outcome = session.execute(
            &[ExecStatement::new(item.sql.clone(), item.params.clone())],
            ExecOptions {
                allow_writes,
                rollback: item.write,
            },
        );
        let ms: f64 = outcome
            .results
            .iter()
            .map(|r| r.meta.duration_ms)
            .sum::<f64>()
            + outcome.failure.as_ref().map_or(0.0, |f| f.duration_ms);
        let s = &mut stats.items[i];
        s.count += 1;
        s.hist.record(ms);
        stats.all.record(ms);
        if let Some(f) = &outcome.failure {
            s.errors += 1;
            s.first_error.get_or_insert_with(|| f.d1_message());
        }
        buffer.extend(events_for(&req.target, &outcome));
        if buffer.len() >= SEND_EVERY {
            sink.send(std::mem::take(&mut buffer));
        }
        k += workers;
    }
    sink.send(buffer);
    stats
}
