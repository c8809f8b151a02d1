//! CLI handlers that only read: releases, release show, envs, diff, audit.
use super::args::ReleaseCommand;
use super::lifecycle::print_checklist;
use super::output::{
    self, BOLD, CYAN, DIM, GREEN, RED, YELLOW, age, paint, safe, safe_lines, safe_opt,
};
use super::{Cli, Command, exit, print_json};
use crate::engine::{Engine, ReleaseDetail};
use crate::model::{GateReport, Release};

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &Engine) -> anyhow::Result<i32> {
    match cmd {
        Command::Releases => releases(cli, engine),
        Command::Release {
            command: ReleaseCommand::Show { id },
        } => show(cli, engine, id),
        Command::Envs => envs(cli, engine),
        Command::Diff { id } => diff(cli, engine, id),
        Command::Audit { verify, limit } => audit(cli, engine, *verify, *limit),
        other => anyhow::bail!("internal error: {other:?} reached the wrong handler"),
    }
}

/// `releases` reads only the state store. When opening failed because recovery could not
/// settle an interrupted operation (a promotion waiting on an API that does not answer), the
/// list is still shown, from a read-only open, after a warning saying so; the lock stays
/// for the next command. Any other failure (the read-only open fails too) is the error.
pub(super) fn open_unsettled(cli: &Cli, err: anyhow::Error) -> anyhow::Result<Engine> {
    let opts = crate::engine::EngineOptions {
        readonly: true,
        ..super::engine_options(cli)
    };
    let Ok(engine) = Engine::open(&cli.workspace, opts) else {
        return Err(err);
    };
    let what = match engine.store.lock() {
        Ok(Some(lock)) => format!(
            "the interrupted {} of {} (step {}) is not settled",
            lock.operation.as_str(),
            safe(&lock.release_id),
            lock.step.as_str()
        ),
        _ => "an interrupted operation is not settled".into(),
    };
    eprintln!(
        "d1ops: warning: {what}: {}; the list below is the state store's, the next command settles it",
        safe(&format!("{err:#}"))
    );
    Ok(engine)
}

fn state_cell(state: &str) -> String {
    paint(state, output::status_colour(state))
}

fn releases(cli: &Cli, engine: &Engine) -> anyhow::Result<i32> {
    let releases = engine.releases()?;
    if cli.json {
        print_json(&releases)?;
        return Ok(exit::OK);
    }
    if releases.is_empty() {
        println!("no releases yet: add migrations and run `d1ops deploy`");
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                safe(&r.id),
                state_cell(r.state.as_str()),
                age(&r.created_at),
                safe(&r.author),
                r.pending_count.to_string(),
                r.verdict.map_or("-".into(), |v| v.as_str().to_string()),
                safe_opt(&r.label),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "ID",
                "STATE",
                "AGE",
                "AUTHOR",
                "MIGRATIONS",
                "GATE",
                "LABEL"
            ],
            &rows
        )
    );
    Ok(exit::OK)
}

fn show(cli: &Cli, engine: &Engine, id: &str) -> anyhow::Result<i32> {
    let d = engine.release_detail(id)?;
    if cli.json {
        print_json(&d)?;
        return Ok(exit::OK);
    }
    print_summary(&d);
    print_failure(&d.release);
    print_gate(d.gate.as_ref());
    print_migrations(&d);
    super::code::print_targets(&d.targets);
    print_approvals(&d);
    Ok(exit::OK)
}

/// `release show`: the release's own fields and its watch window.
fn print_summary(d: &ReleaseDetail) {
    let r = &d.release;
    println!("{} {}", paint("release", BOLD), paint(&r.id, CYAN));
    println!("  state      {}", state_cell(r.state.as_str()));
    println!(
        "  author     {}  ({} ago, {})",
        safe(&r.author),
        age(&r.created_at),
        safe(&r.created_at)
    );
    if let Some(l) = &r.label {
        println!("  label      {}", safe(l));
    }
    if let Some(c) = &r.commit {
        println!("  commit     {}", safe(c));
    }
    if let Some(s) = &r.supersedes {
        println!("  supersedes {}", safe(s));
    }
    if let Some(p) = &r.preview_env {
        println!("  preview    {}", safe(p));
    }
    if let Some(at) = &r.promoted_at {
        println!("  promoted   {} by {}", safe(at), safe_opt(&r.promoted_by));
    }
    if let Some(s) = r.recovery_snapshot {
        println!("  recovery   snapshot {s} (taken before the production apply)");
    }
    if let Some(w) = &d.watch {
        let colour = match w.status {
            crate::engine::WatchStatus::Regressed => RED,
            crate::engine::WatchStatus::Ok => GREEN,
            _ => DIM,
        };
        println!("  watch      {}", paint(&w.summary(), colour));
    }
}

/// `release show`: why the release failed, its root cause and guardrail.
fn print_failure(r: &Release) {
    if let Some(f) = &r.failure {
        println!("{}", paint("failure", RED));
        match &f.migration {
            Some(m) => println!(
                "  {} {}{}",
                safe(&f.stage),
                safe(m),
                f.line.map_or(String::new(), |l| format!(":{l}"))
            ),
            None => println!("  stage      {}", safe(&f.stage)),
        }
        if let Some(t) = &f.target {
            println!("  target     {}", safe(t));
        }
        println!("  error      {}", safe(&f.error));
        if let Some(st) = &f.statement {
            println!("  statement  {}", safe(&crate::backend::one_line(st, 200)));
        }
        if let Some(o) = &f.outcome {
            println!("  outcome    {}", safe(o));
        }
        if let Some(tail) = &f.output_tail {
            println!("  output (last lines):");
            super::code::print_tail(tail, false);
        }
    }
    if r.root_cause.is_some() || r.guardrail.is_some() {
        println!("{}", paint("root cause", BOLD));
        println!("  {}", safe_opt(&r.root_cause));
        if let Some(g) = &r.guardrail {
            println!("  guardrail: {}", safe(g));
        }
    }
}

/// `release show`: the gate's verdict, checklist and probe report.
fn print_gate(gate: Option<&GateReport>) {
    match gate {
        Some(g) => {
            let colour = if g.verdict == crate::model::Verdict::Ready {
                GREEN
            } else {
                RED
            };
            println!(
                "{} {} ({:.0} ms)",
                paint("gate", BOLD),
                paint(g.verdict.as_str(), colour),
                g.total_ms
            );
            print_checklist(&g.checks);
            print_probes(g);
        }
        None => println!("{} not run yet", paint("gate", BOLD)),
    }
}

/// `release show`: the migrations (applied or pending) and the artifacts.
fn print_migrations(d: &ReleaseDetail) {
    println!("{}", paint("migrations", BOLD));
    if d.migrations.is_empty() {
        println!("  none");
    }
    for m in &d.migrations {
        let tag = if m.pending {
            paint("pending", YELLOW)
        } else {
            paint("applied", DIM)
        };
        println!(
            "  {tag:>7}  {}  sha256 {}",
            safe(&m.path),
            safe(&m.sha256.chars().take(12).collect::<String>())
        );
    }
    if !d.artifacts.is_empty() {
        println!("{}", paint("artifacts", BOLD));
        for a in &d.artifacts {
            println!(
                "  {}  {}  {}  sha256 {}",
                safe(&a.name),
                safe(&a.path),
                output::bytes(a.size_bytes),
                safe(&a.sha256.chars().take(12).collect::<String>())
            );
            match &a.pinned {
                Some(p) => println!("    pinned {}", safe(p)),
                None => println!("    {}", paint("not pinned (deployed before pinning)", DIM)),
            }
        }
    }
}

/// `release show`: the approvals and the audit history.
fn print_approvals(d: &ReleaseDetail) {
    println!(
        "{} {} of {} required",
        paint("approvals", BOLD),
        crate::model::distinct_approvers(&d.approvals),
        d.required_approvals
    );
    for a in &d.approvals {
        println!(
            "  {} at {}{}",
            safe(&a.approver),
            safe(&a.at),
            a.note
                .as_ref()
                .map_or(String::new(), |n| format!(": {}", safe(n)))
        );
    }
    println!("{}", paint("history", BOLD));
    for e in d.history.iter().rev() {
        println!(
            "  {}  {:<20} {}",
            safe(&e.at),
            safe(&e.action),
            safe(&e.actor)
        );
    }
}

/// The probe report under the checklist: one row per probe (p50/p95/max before → after
/// migrations, ratio, rows), the problems, then the plan trees that changed or were flagged.
fn print_probes(gate: &crate::model::GateReport) {
    use crate::gate::probes::report::{pair, ratio};
    let report = crate::gate::probes::ProbeReport::from_gate(gate);
    if report.results.is_empty() && report.compat.is_empty() {
        return;
    }
    let mark = |s: crate::model::CheckStatus| paint(s.mark(), output::status_colour(s.mark()));
    if !report.results.is_empty() {
        println!(
            "{} (ms; before = the preview as cloned from production, after = migrated)",
            paint("probes", BOLD)
        );
        let rows: Vec<Vec<String>> = (report.results.iter())
            .map(|r| {
                let l = report.latency.iter().find(|l| l.name == r.name);
                let (b, a) = (
                    l.and_then(|l| l.before.as_ref()),
                    l.and_then(|l| l.after.as_ref()),
                );
                let count = |before: Option<u64>, after: Option<u64>| match (before, after) {
                    (_, None) => "error".to_string(),
                    (Some(b), Some(a)) if b != a => format!("{b} → {a}"),
                    (_, Some(a)) => a.to_string(),
                };
                let rows = if r.kind == "write" {
                    format!("{} changed", count(None, r.changes_after))
                } else {
                    count(r.rows_before, r.rows_after)
                };
                vec![
                    mark(report.status(&r.name)),
                    safe(&r.name),
                    rows,
                    pair(b, a, |l| l.p50_ms),
                    pair(b, a, |l| l.p95_ms),
                    pair(b, a, |l| l.max_ms),
                    ratio(l.and_then(|l| l.ratio)),
                    l.and_then(|l| l.budget_ms)
                        .map_or("-".into(), crate::gate::probes::report::ms),
                ]
            })
            .collect();
        let table = output::table(
            &["", "PROBE", "ROWS", "P50", "P95", "MAX", "RATIO", "BUDGET"],
            &rows,
        );
        for line in table.lines() {
            println!("  {line}");
        }
        let problems = (report.results.iter().map(|r| (&r.name, &r.problem)))
            .chain(report.latency.iter().map(|l| (&l.name, &l.problem)));
        for (name, problem) in problems {
            if let Some(p) = problem {
                println!(
                    "  {} {}: {}",
                    mark(crate::model::CheckStatus::Fail),
                    safe(name),
                    safe(p)
                );
            }
        }
    }
    let notable: Vec<_> = report.notable_plans().collect();
    if !notable.is_empty() {
        println!(
            "{} (changed by the migrations or flagged)",
            paint("plans", BOLD)
        );
    }
    for p in notable {
        println!("  {}", paint(&p.name, BOLD));
        for f in &p.findings {
            println!("    {} {}", mark(f.status), safe(&f.message));
        }
        // Plan lines name the user's tables and indexes: escaped like any other user text.
        for (label, lines) in [("before", &p.before), ("after", &p.after)] {
            let mut lines = lines.iter();
            let first = lines.next().map_or("(did not run)", String::as_str);
            println!("    {label:<7}{}", safe(first));
            for l in lines {
                println!("    {:7}{}", "", safe(l));
            }
        }
    }
    let broken: Vec<_> = (report.compat.iter())
        .filter(|c| c.problem.is_some() && !c.failing_before)
        .collect();
    if !broken.is_empty() {
        println!(
            "{} (live release {}'s probes on the new schema)",
            paint("compatibility", BOLD),
            safe(report.live_release.as_deref().unwrap_or("?"))
        );
        for c in broken {
            println!(
                "  {} {}: {}",
                mark(crate::model::CheckStatus::Fail),
                safe(&c.name),
                safe(c.problem.as_deref().unwrap_or(""))
            );
        }
    }
}

fn envs(cli: &Cli, engine: &Engine) -> anyhow::Result<i32> {
    let envs = engine.envs()?;
    // What the backend could not answer is not "no database": say so, and exit 1.
    let unreadable: Vec<&crate::engine::EnvView> =
        envs.iter().filter(|e| e.unreadable.is_some()).collect();
    let code = if unreadable.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    };
    if cli.json {
        print_json(&envs)?;
        warn_unreadable(&unreadable);
        return Ok(code);
    }
    let replication = envs.iter().any(|e| e.read_replication.is_some());
    let rows: Vec<Vec<String>> = envs
        .iter()
        .map(|e| {
            let size = match (e.size_bytes, &e.unreadable) {
                (Some(b), _) => output::bytes(b),
                (None, Some(_)) => paint("unknown", RED),
                (None, None) => "no database".into(),
            };
            let head = match &e.unreadable {
                Some(_) if e.schema_head.is_none() => paint("unknown", RED),
                _ => safe_opt(&e.schema_head),
            };
            let mut row = vec![
                safe(&e.env.name),
                e.env.kind.as_str().to_string(),
                safe_opt(&e.env.active_release),
                size,
                head,
            ];
            if replication {
                row.push(safe_opt(&e.read_replication));
            }
            row.extend([
                age(&e.env.created_at),
                age(&e.env.last_activity_at),
                match (&e.unreadable, &e.stale) {
                    (Some(_), _) => paint("unreadable (below)", RED),
                    (None, Some(s)) => paint(&format!("stale: {s}"), YELLOW),
                    (None, None) => String::new(),
                },
            ]);
            row
        })
        .collect();
    let mut headers = vec!["ENV", "KIND", "RELEASE", "SIZE", "SCHEMA HEAD"];
    if replication {
        headers.push("READ REPLICATION");
    }
    headers.extend(["AGE", "IDLE", ""]);
    print!("{}", output::table(&headers, &rows));
    // Which release's code each target runs, per environment.
    let code_rows: Vec<Vec<String>> = envs
        .iter()
        .flat_map(|e| {
            e.code.iter().map(|c| {
                vec![
                    safe(&e.env.name),
                    safe(&c.target),
                    safe(&c.release_id),
                    safe_opt(&c.version_id),
                    age(&c.deployed_at),
                ]
            })
        })
        .collect();
    if !code_rows.is_empty() {
        println!();
        print!(
            "{}",
            output::table(
                &["ENV", "TARGET", "CODE OF RELEASE", "VERSION", "DEPLOYED"],
                &code_rows
            )
        );
    }
    warn_unreadable(&unreadable);
    Ok(code)
}

/// One line per environment whose database could not be read, on stderr: what the state
/// store knows was printed; this is what the backend did not answer, and why.
fn warn_unreadable(envs: &[&crate::engine::EnvView]) {
    for e in envs {
        eprintln!(
            "d1ops: {}: {} could not be read, shown as unknown: {}",
            safe(&e.env.name),
            safe_opt(&e.database),
            safe(e.unreadable.as_deref().unwrap_or(""))
        );
    }
}

fn diff(cli: &Cli, engine: &Engine, id: &str) -> anyhow::Result<i32> {
    let d = engine.diff(id)?;
    if cli.json {
        print_json(&d)?;
        return Ok(exit::OK);
    }
    if d.pending.is_empty() {
        println!(
            "release {} carries no pending migrations (code only)",
            safe(&d.release)
        );
    }
    for m in &d.pending {
        println!("{} {}", paint("--", DIM), paint(&m.path, BOLD));
        // The migration's own text, line by line; any control character in it is shown.
        println!("{}", safe_lines(m.sql.trim_end()));
        println!();
    }
    println!(
        "{} (preview vs production, {})",
        paint("schema diff", BOLD),
        safe(&d.source)
    );
    if d.schema.is_empty() {
        println!("  no schema changes");
    }
    for line in d.schema.render_text() {
        let colour = match line.sign {
            '+' => GREEN,
            '-' => RED,
            '~' => YELLOW,
            _ => DIM,
        };
        println!("{}", paint(&line.text, colour));
    }
    Ok(exit::OK)
}

fn audit(cli: &Cli, engine: &Engine, verify: bool, limit: usize) -> anyhow::Result<i32> {
    if verify {
        let status = engine.verify_audit()?;
        if cli.json {
            print_json(&status)?;
        } else if status.ok {
            let head = status.head.as_ref().map_or(String::new(), |h| {
                format!(
                    ", head seq {} hash {}",
                    h.seq,
                    safe(h.hash.get(..16).unwrap_or(&h.hash))
                )
            });
            let keyed = match status.keyed {
                0 => String::new(),
                n => format!(", {n} keyed (HMAC-SHA256)"),
            };
            let file = if status.head_file.is_some() {
                "head file, "
            } else {
                ""
            };
            println!(
                "audit chain verifies: {} event(s){head}{keyed}, no tampering detected \
                 ({file}{} release head(s) and the append-only triggers checked)",
                status.events, status.release_heads
            );
        } else {
            println!(
                "{}: {} problem(s) found",
                paint("audit chain BROKEN", RED),
                status.findings.len()
            );
            for f in &status.findings {
                println!("  - {}", safe(&f.message));
            }
        }
        for note in &status.notes {
            println!("{}", paint(&format!("note: {note}"), DIM));
        }
        // Exit 0 when nothing was found, 1 (ERROR) for any finding, as for every failed check.
        return Ok(if status.ok { exit::OK } else { exit::ERROR });
    }
    let events = engine.audit_events(limit)?;
    if cli.json {
        print_json(&events)?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                safe(&e.at),
                safe(&e.actor),
                safe(&e.action),
                safe_opt(&e.release_id),
                safe(&crate::backend::one_line(&e.detail, 60)),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["#", "AT", "ACTOR", "ACTION", "RELEASE", "DETAIL"], &rows)
    );
    Ok(exit::OK)
}
