//! CLI handlers for the traffic sources: `query`, `serve`, `traffic`, `ingest`. Parsing of
//! values and printing only; running, measuring and recording are the engine's
//! (`engine::observe`) and the server's (`serve`).
use std::time::Duration;

use anyhow::{Context, bail};

use super::output::{self, DIM, YELLOW, paint, safe};
use super::{Cli, Command, exit, print_json};
use crate::backend::StatementResult;
use crate::engine::Engine;
use crate::engine::observe::{ExecuteOptions, IngestReport, TrafficSummary, ingest};
use crate::metrics::MetricsStore;
use crate::serve::{self, ServeConfig, d1};
use d1ops_sql::text::thousands;

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    match cmd {
        Command::Query {
            env,
            sql,
            params,
            yes,
        } => query(cli, engine, env, sql, params, *yes),
        Command::Serve {
            listen,
            allow_production_writes,
            allow_origins,
        } => serve_cmd(engine, listen, *allow_production_writes, allow_origins),
        Command::Traffic {
            env,
            duration,
            rate,
            workload,
        } => traffic(cli, engine, env, duration, *rate, workload.as_deref()),
        Command::Ingest { file } => ingest_cmd(cli, engine, file),
        other => bail!("{other:?} is not a traffic command"),
    }
}

/// `--param V`: an integer or a finite number binds as a number, anything else as text.
fn param_value(v: &str) -> serde_json::Value {
    if let Ok(i) = v.parse::<i64>() {
        return i.into();
    }
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() && !v.trim().is_empty() => f.into(),
        _ => v.into(),
    }
}

fn query(
    cli: &Cli,
    engine: &Engine,
    env: &str,
    sql: &str,
    params: &[String],
    yes: bool,
) -> anyhow::Result<i32> {
    let params: Vec<serde_json::Value> = params.iter().map(|p| param_value(p)).collect();
    let out = engine.execute(
        env,
        sql,
        &params,
        ExecuteOptions {
            allow_production_writes: yes,
        },
    )?;
    if let Some(e) = &out.metrics_error {
        eprintln!(
            "d1ops: the statement ran but its metrics were not recorded: {}",
            safe(e)
        );
    }
    if cli.json {
        let mut shaped: Vec<serde_json::Value> = out.results.iter().map(d1::query_result).collect();
        if shaped.len() == 1 {
            print_json(&shaped.remove(0))?;
        } else {
            print_json(&shaped)?;
        }
        return Ok(exit::OK);
    }
    for (i, r) in out.results.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_result(r);
    }
    Ok(exit::OK)
}

fn print_result(r: &StatementResult) {
    let m = &r.meta;
    let counters = format!(
        "{:.2} ms · rows read {} · rows written {}",
        m.duration_ms, m.rows_read, m.rows_written
    );
    if r.columns.is_empty() {
        println!(
            "ok: {} change(s){}",
            m.changes,
            paint(&format!(" · {counters}"), DIM)
        );
        return;
    }
    // Column names and values are whatever the database holds: escaped cell by cell.
    let header: Vec<String> = r.columns.iter().map(|c| safe(c)).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| row.iter().map(cell).collect())
        .collect();
    print!("{}", output::table(&header, &rows));
    println!(
        "{}",
        paint(&format!("{} row(s) · {counters}", r.rows.len()), DIM)
    );
}

/// One value as a table cell: text with newlines and tabs as spaces and other control
/// characters escaped, NULL spelled out, blobs as hex literals.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => safe(&s.replace(['\n', '\t'], " ")),
        serde_json::Value::Array(bytes) => {
            let hex: String = bytes
                .iter()
                .map(|b| format!("{:02x}", b.as_u64().unwrap_or(0)))
                .collect();
            format!("x'{hex}'")
        }
        other => safe(&other.to_string()),
    }
}

fn serve_cmd(
    engine: &Engine,
    listen: &str,
    allow_production_writes: bool,
    allow_origins: &[String],
) -> anyhow::Result<i32> {
    let access = serve::Access::new(allow_origins, serve::ServeToken::from_env()?)?;
    let token = access.requires_token();
    let origins = access.origins();
    let config = ServeConfig::from_engine(engine, allow_production_writes, access)?;
    let report = serve::run(
        config,
        listen,
        |addr| {
            if !serve::is_loopback(&addr) && !token {
                eprintln!(
                    "d1ops: warning: {addr} is reachable from other machines and serve has no authentication (set {} to require a bearer token)",
                    serve::TOKEN_ENV
                );
            }
            if token {
                eprintln!(
                    "d1ops: serve requires Authorization: Bearer <the value of {}>",
                    serve::TOKEN_ENV
                );
            }
            if !origins.is_empty() {
                eprintln!(
                    "d1ops: serve also accepts requests from {}",
                    output::safe(&origins.join(", "))
                );
            }
            println!(
                "listening on http://{addr} (POST /accounts/{{account}}/d1/database/{{env}}/query and /raw; Ctrl-C stops)"
            );
        },
        serve::stop_signal(),
    )?;
    eprintln!(
        "d1ops: serve stopped: {} request(s), {} statement(s), {} recorded{}",
        report.requests,
        report.statements,
        report.recorded,
        if report.lost > 0 {
            format!(", {} lost (see the log)", report.lost)
        } else {
            String::new()
        }
    );
    Ok(exit::OK)
}

fn traffic(
    cli: &Cli,
    engine: &Engine,
    env: &str,
    duration: &str,
    rate: u32,
    workload: Option<&std::path::Path>,
) -> anyhow::Result<i32> {
    let duration: Duration = humantime::parse_duration(duration)
        .with_context(|| format!("--duration {duration:?} is not a duration (e.g. 30s, 5m)"))?;
    let summary = engine.traffic(env, workload, rate, duration)?;
    if cli.json {
        print_json(&summary)?;
    } else {
        print_traffic(&summary);
    }
    Ok(exit::OK)
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2} ms"))
}

fn print_traffic(s: &TrafficSummary) {
    println!(
        "traffic on {}{}: {} sent of {} planned in {:.1} s ({:.1} qps on {} workers), {}",
        safe(&s.env),
        s.release
            .as_ref()
            .map_or_else(String::new, |r| format!(" (release {})", safe(r))),
        thousands(s.sent),
        thousands(s.planned),
        s.elapsed_s,
        s.achieved_qps,
        s.workers,
        d1ops_sql::text::count_of(s.errors, "error", "errors")
    );
    println!(
        "latency p50 {} · p95 {} · p99 {}",
        ms(s.p50_ms),
        ms(s.p95_ms),
        ms(s.p99_ms)
    );
    let rows: Vec<Vec<String>> = s
        .items
        .iter()
        .map(|i| {
            vec![
                safe(&i.name),
                if i.write {
                    "write (rolled back)"
                } else {
                    "read"
                }
                .into(),
                thousands(i.count),
                thousands(i.errors),
                ms(i.p50_ms),
                ms(i.p95_ms),
                safe(i.first_error.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "statement",
                "kind",
                "count",
                "errors",
                "p50",
                "p95",
                "first error"
            ],
            &rows
        )
    );
    for skipped in &s.skipped {
        println!("{}", paint(&format!("skipped {skipped}"), DIM));
    }
    println!("recorded {} event(s) in the monitor", s.recorded);
    if s.lost > 0 {
        println!(
            "{}",
            paint(
                &format!("{} event(s) could not be recorded (see the log)", s.lost),
                YELLOW
            )
        );
    }
}

fn ingest_cmd(cli: &Cli, engine: &Engine, file: &str) -> anyhow::Result<i32> {
    if engine.uses_d1_analytics() {
        bail!(
            "on backend = \"cloudflare\" the monitor's traffic comes from D1's analytics, which already count your app's queries; ingesting its logs too would count them twice"
        );
    }
    // Devices, directories and sockets are refused before a byte is read.
    let input = crate::engine::observe::open_input(file)?;
    let mut store = MetricsStore::open(&engine.ws.state_dir())?;
    let report = ingest(input, &mut store).with_context(|| format!("ingesting {file}"))?;
    if cli.json {
        print_json(&report)?;
    } else {
        print_ingest(file, &report);
    }
    Ok(exit::OK)
}

fn print_ingest(file: &str, r: &IngestReport) {
    let shown = if file == "-" {
        "stdin".into()
    } else {
        safe(file)
    };
    println!(
        "imported {} event(s) from {shown}; {} bad line(s)",
        r.imported, r.bad
    );
    // A bad line's error may quote the line itself.
    for b in &r.bad_lines {
        println!("  line {}: {}", b.line, safe(&b.error));
    }
    let unlisted = r.bad.saturating_sub(r.bad_lines.len() as u64);
    if unlisted > 0 {
        println!("  … and {unlisted} more");
    }
}
