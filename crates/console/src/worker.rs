//! The engine worker: one thread owns the [`Engine`] and serves [`Request`]s in order,
//! answering each with exactly one [`Reply`] through a callback. Engine calls can take
//! hundreds of milliseconds; running them here keeps the UI loop drawing and reading keys.
//!
//! It must not touch the terminal or the console state; it only turns requests into
//! engine calls and their results into plain data.
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::data::{CapacityData, DetailData, PromotePreview, RecoveryPreview, Snapshot};
use crate::effects::{Reply, Request};
use crate::engine::{CleanupItem, Engine, EngineError, IndexSuggestion};

/// How many audit events the Audit tab holds.
pub const AUDIT_LIMIT: usize = 500;

/// A handle to the worker thread. Dropping it lets the current request finish, then
/// stops the thread.
pub struct Worker {
    tx: Option<Sender<Request>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker; `reply` is called on the worker thread for every answer.
    pub fn spawn(
        engine: Engine,
        reply: impl Fn(Reply) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = channel::<Request>();
        let handle = std::thread::Builder::new()
            .name("d1ops-engine".into())
            .spawn(move || serve(engine, rx, reply))?;
        Ok(Worker {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues a request. False when the worker has stopped.
    pub fn send(&self, req: Request) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(req).is_ok())
    }
}

impl Worker {
    /// Lets the worker go without waiting for the request it is running: it stops after
    /// it (or when the process exits). Quitting uses this so it never waits.
    pub fn detach(mut self) {
        self.tx.take();
        self.handle.take();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Tells the UI the running request's stage: its name when it starts, then how far it got
/// at most every 200 ms.
struct StageSink<F: Fn(String)> {
    send: F,
    what: String,
    total: Option<u64>,
    unit: crate::engine::ProgressUnit,
    last: Option<std::time::Instant>,
}

impl<F: Fn(String)> StageSink<F> {
    fn new(send: F) -> Self {
        StageSink {
            send,
            what: String::new(),
            total: None,
            unit: crate::engine::ProgressUnit::Statements,
            last: None,
        }
    }
}

impl<F: Fn(String)> crate::engine::ProgressSink for StageSink<F> {
    fn start(&mut self, what: &str, total: Option<u64>, unit: crate::engine::ProgressUnit) {
        self.what = what.to_string();
        self.total = total;
        self.unit = unit;
        self.last = Some(std::time::Instant::now());
        (self.send)(what.to_string());
    }

    fn advance(&mut self, done: u64) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(std::time::Instant::now());
        let of = match (self.unit, self.total) {
            (crate::engine::ProgressUnit::Bytes, Some(t)) => {
                format!(
                    "{} of {}",
                    crate::format::bytes(done),
                    crate::format::bytes(t)
                )
            }
            (crate::engine::ProgressUnit::Bytes, None) => crate::format::bytes(done),
            (u, Some(t)) => format!(
                "{}/{} {}",
                crate::format::thousands(done),
                crate::format::thousands(t),
                u.as_str()
            ),
            (u, None) => format!("{} {}", crate::format::thousands(done), u.as_str()),
        };
        (self.send)(format!("{} {of}", self.what));
    }

    fn finish(&mut self, _secs: f64) {}
}

/// How often a console session re-samples the day's usage (a session may span days).
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// How often a console session on Cloudflare checks whether D1's analytics are due for a
/// sync (the engine asks Cloudflare only once `analytics_refresh` has passed).
const ANALYTICS_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn serve(mut engine: Engine, rx: Receiver<Request>, reply: impl Fn(Reply) + 'static) {
    let reply = std::rc::Rc::new(reply);
    let mut sampled: Option<std::time::Instant> = None;
    let mut analytics_checked: Option<std::time::Instant> = None;
    while let Ok(req) = rx.recv() {
        let started = std::time::Instant::now();
        let label = req.label();
        // The engine's stages (apply, copy, probes…) reach the header while it runs.
        let to_ui = reply.clone();
        let sink = StageSink::new(move |text| to_ui(Reply::Progress(text)));
        let answer = crate::engine::with_progress(Box::new(sink), || handle(&mut engine, req));
        let ms = started.elapsed().as_millis();
        if ms > 200 {
            tracing::info!(request = %label, ms, "slow engine request");
        }
        reply(answer);
        // Every console session samples the day's usage after its first answer (so the first
        // screen is not kept waiting), then every ten minutes; the Capacity tab samples as it
        // reads, too.
        if sampled.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY) {
            sampled = Some(std::time::Instant::now());
            if !engine.readonly
                && let Err(e) = engine.sample_usage()
            {
                tracing::warn!(error = %e, "sampling usage failed");
            }
        }
        // On Cloudflare the watch and the header's alert read D1's analytics even when
        // neither the Monitor nor the Capacity tab (which sync as they read) is open.
        if engine.uses_d1_analytics()
            && analytics_checked.is_none_or(|t| t.elapsed() >= ANALYTICS_CHECK_EVERY)
        {
            analytics_checked = Some(std::time::Instant::now());
            engine.refresh_analytics();
        }
    }
}

/// Runs one request against the engine: one function per kind of request below.
pub fn handle(engine: &mut Engine, req: Request) -> Reply {
    match req {
        Request::Refresh => Reply::Snapshot(boxed(snapshot(engine))),
        Request::Detail(id) => detail(engine, id),
        Request::PromotePreview(id) => Reply::PromotePreview {
            result: boxed(promote_preview(engine, &id)),
            id,
        },
        Request::Approve { id, note } => approve(engine, &id, note.as_deref()),
        Request::Abandon { id, note } => abandon(engine, &id, note.as_deref()),
        Request::Promote(id) => promote(engine, &id),
        Request::RollbackPreview(id) => Reply::RecoveryPreview {
            result: boxed(rollback_preview(engine, &id)),
            id,
        },
        Request::RestorePreview(id) => Reply::RecoveryPreview {
            result: boxed(restore_preview(engine, &id)),
            id,
        },
        Request::AckWatch => match engine.watch_ack() {
            Ok(w) => done(format!(
                "Acknowledged the watch of release {}: it stays in the record but no longer alerts.",
                w.release
            )),
            Err(e) => failed("Acknowledging the watch", e),
        },
        Request::RestoreUndoPreview => Reply::UndoPreview(boxed(undo_preview(engine))),
        Request::RestoreUndo => restore_undo(engine),
        Request::Rollback(id) => rollback(engine, &id),
        Request::RolloutContinue(id) => match engine.rollout_continue(&id, false) {
            Ok(m) => done(rollout_text(&m)),
            Err(e) => failed("The rollout step", e),
        },
        Request::RolloutAbort(id) => {
            match engine.rollout_abort(&id, Some("aborted from the console")) {
                Ok(m) => done(rollout_text(&m)),
                Err(e) => failed("Aborting the rollout", e),
            }
        }
        Request::Restore(id) => restore(engine, &id),
        Request::Monitor {
            env,
            window,
            order,
            with_d1ops,
        } => Reply::Monitor(boxed(engine.monitor_with(
            env.as_deref(),
            window,
            order,
            crate::tabs::TOP_QUERIES,
            with_d1ops,
        ))),
        Request::QueryPlan { env, text } => Reply::QueryPlan {
            result: boxed(engine.query_plan(&env, &text)),
            env,
            text,
        },
        Request::Capacity => Reply::Capacity(boxed(capacity(engine))),
        Request::WriteIndex(suggestion) => write_index(engine, &suggestion),
        Request::CleanupPlan => {
            Reply::CleanupPlan(engine.cleanup_plan(None, false).map_err(|e| e.to_string()))
        }
        Request::Cleanup(items) => cleanup(engine, &items),
    }
}

/// A read's result as a reply carries it: boxed, the error in words.
fn boxed<T>(result: Result<T, EngineError>) -> Result<Box<T>, String> {
    result.map(Box::new).map_err(|e| e.to_string())
}

/// A successful action's sentence.
fn done(text: String) -> Reply {
    Reply::Outcome { ok: true, text }
}

fn detail(engine: &Engine, id: String) -> Reply {
    let result = engine.release_detail(&id).map(|detail| {
        let diff = engine.diff(&detail.release.id).map_err(|e| e.to_string());
        DetailData { detail, diff }
    });
    Reply::Detail {
        id,
        result: boxed(result),
    }
}

fn approve(engine: &mut Engine, id: &str, note: Option<&str>) -> Reply {
    match engine.approve(id, note) {
        Ok(o) => done(format!(
            "Approved {} ({}/{} approvals); it is now {}.",
            o.id,
            crate::model::distinct_approvers(&o.approvals),
            o.required,
            o.state
        )),
        Err(e) => failed("Approve", e),
    }
}

fn abandon(engine: &mut Engine, id: &str, note: Option<&str>) -> Reply {
    match engine.abandon(id, note) {
        Ok(_) => done(format!("Abandoned {id}; its preview is now stale.")),
        Err(e) => failed("Abandon", e),
    }
}

fn promote(engine: &mut Engine, id: &str) -> Reply {
    match engine.promote(id) {
        Ok(o) => {
            let previous = (o.previous)
                .map(|p| format!("; {p} superseded"))
                .unwrap_or_default();
            let code = if o.code.is_empty() {
                String::new()
            } else {
                let steps: Vec<String> = (o.code.iter())
                    .map(|s| format!("{} {}", s.target, s.status))
                    .collect();
                format!("; code: {}", steps.join(", "))
            };
            done(format!(
                "{} is live: {} migration(s) applied in {:.0} ms{code}{previous}.",
                o.id,
                o.applied.len(),
                o.duration_ms
            ))
        }
        Err(e) => failed("Promote", e),
    }
}

/// One sentence on what a rollout move did, with the split it left.
fn rollout_text(m: &crate::engine::RolloutMove) -> String {
    let split: Vec<String> = (m.rollouts.iter())
        .map(|r| {
            format!(
                "{}: step {} of {}, {}% on the new version",
                r.target, r.step, r.total_steps, r.percent
            )
        })
        .collect();
    format!(
        "Rollout of release {} {}; {}.",
        m.release,
        m.outcome,
        if split.is_empty() {
            "nothing left to roll".to_string()
        } else {
            split.join("; ")
        }
    )
}

fn rollback(engine: &mut Engine, id: &str) -> Reply {
    match engine.rollback(Some(id), false, None) {
        Ok(o) => done(format!(
            "{} is live again ({} probe(s) passed on a copy of production); {} rolled back. The schema is unchanged.",
            o.to, o.probes_run, o.from
        )),
        Err(e) => failed("Rollback", e),
    }
}

fn restore(engine: &mut Engine, id: &str) -> Reply {
    match (engine.restore_plan(id)).and_then(|plan| engine.restore(&plan)) {
        Ok(o) => done(format!(
            "Production restored to before {id}; live: {}. `d1ops restore --undo` puts it back.",
            o.live.as_deref().unwrap_or("none")
        )),
        Err(e) => failed("Restore", e),
    }
}

fn restore_undo(engine: &mut Engine) -> Reply {
    match (engine.undo_plan()).and_then(|plan| engine.restore(&plan)) {
        Ok(o) => done(format!(
            "The last restore is undone; live: {}.",
            o.live.as_deref().unwrap_or("none")
        )),
        Err(e) => failed("Undoing the restore", e),
    }
}

fn write_index(engine: &Engine, suggestion: &IndexSuggestion) -> Reply {
    match engine.write_index_migration(suggestion) {
        Ok(path) => done(format!(
            "Wrote {path} ({}). Deploy it to test it on a preview: d1ops deploy.",
            suggestion.sql
        )),
        Err(e) => failed("Writing the index migration", e),
    }
}

fn cleanup(engine: &mut Engine, items: &[CleanupItem]) -> Reply {
    match engine.cleanup(items) {
        Ok(r) => {
            let errors = if r.errors.is_empty() {
                String::new()
            } else {
                format!("; {} error(s): {}", r.errors.len(), r.errors.join("; "))
            };
            Reply::Outcome {
                ok: r.errors.is_empty(),
                text: format!(
                    "Deleted {} stale preview(s), freed {}{errors}.",
                    r.deleted.len(),
                    crate::format::bytes(r.freed_bytes)
                ),
            }
        }
        Err(e) => failed("Cleanup", e),
    }
}

fn failed(what: &str, e: EngineError) -> Reply {
    let text = match &e {
        EngineError::Refused(why) => format!("{what} refused: {why}."),
        other => format!("{what} failed: {other}"),
    };
    tracing::warn!(error = %e, "{what} did not succeed");
    Reply::Outcome { ok: false, text }
}

/// Reads everything the lists show.
pub fn snapshot(engine: &Engine) -> Result<Snapshot, EngineError> {
    Ok(Snapshot {
        releases: engine.releases()?,
        envs: engine.envs()?,
        production: Some(engine.production()?),
        audit: engine.audit_events(AUDIT_LIMIT)?,
        chain: Some(engine.verify_audit()?),
        snapshots: engine.snapshots()?,
        watch: engine.live_watch(),
        ledger: match engine.ledger_diff() {
            Ok(d) if !d.agrees() => Some(format!(
                "ledger disagrees with d1ops' record: {} — run d1ops ledger repair",
                d.describe()
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "production's ledger could not be compared with the record");
                None
            }
        },
    })
}

/// Usage (30 days), forecasts and stale previews; today's usage is sampled first.
fn capacity(engine: &Engine) -> Result<CapacityData, EngineError> {
    Ok(CapacityData {
        usage: engine.usage_report(30)?,
        forecast: engine.forecast_report(30)?,
        stale: engine.cleanup_plan(None, false)?,
    })
}

fn rollback_preview(engine: &Engine, id: &str) -> Result<RecoveryPreview, EngineError> {
    let target = engine.resolve(id)?;
    let live = engine.production()?.active_release.unwrap_or_default();
    let (n, failures) = engine.rollback_check(&target)?;
    let mut lines = vec![format!(
        "From {live} to {}; production's schema and data stay as they are.",
        target.id
    )];
    if n == 0 {
        lines.push(
            "This release carries no probes: nothing to check on a copy of production.".into(),
        );
    } else if failures.is_empty() {
        lines.push(format!(
            "✓ all {n} of its probe(s) pass on a fresh copy of production."
        ));
    }
    for f in &failures {
        lines.push(format!("✗ {}: {}", f.probe, f.problem));
    }
    let blocker = (!failures.is_empty()).then(|| {
        "Its code would break on the current schema; only the CLI can force it: d1ops rollback ID --force --reason T".to_string()
    });
    Ok(RecoveryPreview { blocker, lines })
}

fn restore_preview(engine: &Engine, id: &str) -> Result<RecoveryPreview, EngineError> {
    let plan = engine.restore_plan(id)?;
    let mut lines = vec![format!(
        "Recovery point: snapshot {}, taken just before this release was promoted.",
        plan.snapshot.id
    )];
    lines.extend(loss_lines(&plan));
    lines.push("The current state is snapshotted first: d1ops restore --undo puts it back.".into());
    Ok(RecoveryPreview {
        blocker: None,
        lines,
    })
}

/// A restore plan's losses, undone migrations and state changes, one line each.
fn loss_lines(plan: &crate::engine::RestorePlan) -> Vec<String> {
    let mut lines = vec!["What would be lost:".to_string()];
    if plan.losses.is_empty() {
        lines.push("  nothing: no row changed since the recovery point".into());
    }
    for t in &plan.losses.tables {
        let counted = t.inserted > 0 || t.deleted > 0 || t.updated.unwrap_or(0) > 0;
        if !t.countable() {
            // D1: stated, not counted — unknown, never 0.
            lines.push(format!("  {}: ? inserted, ? updated, ? deleted", t.table));
        } else if counted {
            lines.push(format!(
                "  {}: {} inserted (lost), {} updated (reverted), {} deleted (back)",
                t.table,
                t.inserted,
                t.updated.map_or("?".into(), |u| u.to_string()),
                t.deleted
            ));
        }
        if let Some(note) = &t.note {
            lines.push(format!("  {}: {note}", t.table));
        }
    }
    if !plan.migrations_undone.is_empty() {
        lines.push(format!(
            "Migrations undone: {}",
            plan.migrations_undone.join(", ")
        ));
    }
    for (rel, state) in &plan.state_changes {
        lines.push(format!("Release {rel} becomes {state}."));
    }
    lines
}

/// What `restore --undo` would do, in the words its plan gives the CLI.
fn undo_preview(engine: &Engine) -> Result<RecoveryPreview, EngineError> {
    let plan = engine.undo_plan()?;
    let mut lines = vec![format!(
        "Puts back what restore {} replaced: production returns to snapshot {}, taken just before that restore.",
        plan.undo_of.map_or("?".into(), |r| r.to_string()),
        plan.snapshot.id
    )];
    lines.extend(loss_lines(&plan));
    lines.push(format!(
        "Live afterwards: {}.",
        plan.becomes_live.as_deref().unwrap_or("none")
    ));
    Ok(RecoveryPreview {
        blocker: None,
        lines,
    })
}

fn promote_preview(engine: &Engine, id: &str) -> Result<PromotePreview, EngineError> {
    let detail = engine.release_detail(id)?;
    let blocker = engine.promotion_blocker(&detail.release)?;
    let diff = engine.diff(&detail.release.id)?;
    Ok(PromotePreview {
        blocker,
        gate: detail.gate,
        approvals: crate::model::distinct_approvers(&detail.approvals),
        required: detail.required_approvals,
        pending: diff.pending.iter().map(|p| p.name.clone()).collect(),
        diff: diff.schema.render_text(),
        code: (engine.shipped_code(&detail.release.id)?.iter())
            .map(|(t, _)| format!("{} ({})", t.name, t.kind.as_str()))
            .collect(),
    })
}
