//! CLI handlers for capacity: `usage`, `forecast`, `report weekly`. Each samples today's
//! usage (unless `--readonly`), asks the engine, and prints a table, Markdown or JSON.
use super::args::ReportCommand;
use super::output::{self, BOLD, DIM, GREEN, RED, YELLOW, paint, safe};
use super::{Cli, Command, exit, print_json};
use crate::engine::capacity::SNAPSHOTS_ENV;
use crate::engine::{Engine, ForecastItem, UsageReport};
use crate::gate::thousands;
use crate::metrics::forecast::Outcome;
use crate::metrics::usage::{LimitMetric, LimitStatus, LimitUse};

mod weekly;

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &mut Engine) -> anyhow::Result<i32> {
    match cmd {
        Command::Usage { days } => usage(cli, engine, *days),
        Command::Forecast { days } => forecast(cli, engine, *days),
        Command::Report {
            command: ReportCommand::Weekly { format },
        } => {
            let report = engine.weekly_report()?;
            if cli.json || format == "json" {
                print_json(&report)?;
            } else {
                // Every cell is escaped by `weekly`; this is the net under the whole text.
                print!("{}", output::safe_lines(&weekly::markdown(&report)));
            }
            Ok(exit::OK)
        }
        Command::Watch { command } => watch(cli, engine, command.is_some()),
        other => anyhow::bail!("internal error: {other:?} reached the wrong handler"),
    }
}

/// `watch`: the live release's watch; `watch ack`: acknowledge its raised regression.
fn watch(cli: &Cli, engine: &mut Engine, ack: bool) -> anyhow::Result<i32> {
    let report = if ack {
        Some(engine.watch_ack()?)
    } else {
        engine.live_watch()
    };
    if cli.json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    match report {
        None => println!("no live release has been promoted: nothing is watched"),
        Some(w) if ack => println!("acknowledged: {}", safe(&w.summary())),
        Some(w) => {
            let colour = if w.alert { RED } else { DIM };
            println!("{}", paint(&safe(&w.summary()), colour));
            if w.alert {
                println!("acknowledge it with `d1ops watch ack` (or `k` in the console)");
            }
        }
    }
    Ok(exit::OK)
}

/// A limit's value in its unit: bytes for storage, a count otherwise.
pub(crate) fn amount(metric: LimitMetric, v: f64) -> String {
    match metric {
        LimitMetric::DatabaseSize | LimitMetric::TotalStorage => output::bytes(v.max(0.0) as u64),
        _ => thousands(v.max(0.0).round() as u64),
    }
}

/// "84%" coloured by how close to the limit it is.
fn share_cell(u: &LimitUse) -> String {
    let pct = if u.share.is_finite() {
        format!("{}%", thousands((u.share * 100.0).round() as u64))
    } else {
        "over".into()
    };
    let colour = match u.share {
        s if s >= 1.0 => RED,
        s if s >= 0.8 => YELLOW,
        _ => GREEN,
    };
    paint(&pct, colour)
}

fn usage(cli: &Cli, engine: &Engine, days: u32) -> anyhow::Result<i32> {
    let report = engine.usage_report(days)?;
    if cli.json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    println!(
        "{} plan {}, {} … {}",
        paint("usage", BOLD),
        safe(&report.plan),
        report.from,
        report.to
    );
    if let Some(f) = &report.freshness {
        println!("{}", super::monitor::freshness_line(f));
    }
    print_days(&report);
    print_d1ops_share(&report);
    println!();
    print_status(&report.status);
    if let Some(c) = &report.cost {
        let note = if c.hypothetical {
            " if this workspace were on it"
        } else {
            ""
        };
        println!(
            "projected monthly cost on {}: ${:.2} in overage{note} (the base subscription is not included)",
            safe(&c.plan),
            c.usd
        );
    }
    Ok(exit::OK)
}

/// How much of the traffic above was d1ops' own statements (counted: they cost rows).
fn print_d1ops_share(report: &UsageReport) {
    let (mut q, mut r, mut w) = (0, 0, 0);
    for t in &report.totals {
        q += t.d1ops.queries;
        r += t.d1ops.rows_read;
        w += t.d1ops.rows_written;
    }
    if q > 0 {
        println!(
            "{}",
            paint(
                &format!(
                    "of which d1ops' own statements (ledger, introspection, migrations, probes): {}, {} rows read, {} rows written",
                    d1ops_sql::text::count_of(q, "query", "queries"),
                    thousands(r),
                    thousands(w)
                ),
                DIM
            )
        );
    }
}

/// One row per (day, environment), each day closed by its total.
fn print_days(report: &UsageReport) {
    if report.totals.is_empty() {
        println!(
            "no usage recorded yet: it is sampled by `usage`, `forecast`, `report` and every console session; traffic comes from `query`, `serve`, `traffic` and `ingest`"
        );
        return;
    }
    let mut rows = Vec::new();
    for total in &report.totals {
        for u in report.days.iter().filter(|u| u.day == total.day) {
            let env = if u.env == SNAPSHOTS_ENV {
                paint(&u.env, DIM)
            } else {
                safe(&u.env)
            };
            rows.push(vec![
                u.day.to_string(),
                env,
                output::bytes(u.storage_bytes),
                thousands(u.rows_read),
                thousands(u.rows_written),
                thousands(u.queries),
                thousands(u.databases),
            ]);
        }
        rows.push(
            [
                total.day.to_string(),
                "total".into(),
                output::bytes(total.storage_bytes),
                thousands(total.rows_read),
                thousands(total.rows_written),
                thousands(total.queries),
                thousands(total.databases),
            ]
            .into_iter()
            .map(|c| paint(&c, BOLD))
            .collect(),
        );
    }
    print!(
        "{}",
        output::table(
            &[
                "DAY",
                "ENV",
                "STORAGE",
                "ROWS READ",
                "ROWS WRITTEN",
                "QUERIES",
                "DATABASES"
            ],
            &rows
        )
    );
}

/// `ok` / `warn` / `EXCEEDED`, coloured.
fn status_cell(status: LimitStatus) -> String {
    match status {
        LimitStatus::Ok => paint("ok", GREEN),
        LimitStatus::Warn => paint("warn", YELLOW),
        LimitStatus::Exceeded => paint("EXCEEDED", RED),
    }
}

/// One line per exceeded limit: by how much, since when, what it means on the plan.
pub(crate) fn exceeded_line(
    metric: LimitMetric,
    over_by: Option<u64>,
    since: Option<&str>,
    meaning: Option<&str>,
) -> String {
    let over = over_by.map_or("–".into(), |v| amount(metric, v as f64));
    let since = since.map(|s| {
        crate::model::parse_time(s).map_or_else(
            || s.to_string(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    });
    let since = since.as_deref();
    format!(
        "{} {} exceeded by {over} since {}: {}",
        paint("✗", RED),
        metric.label(),
        since.unwrap_or("–"),
        meaning.unwrap_or("over the plan's limit")
    )
}

fn print_status(status: &[LimitUse]) {
    let rows: Vec<Vec<String>> = status
        .iter()
        .map(|u| {
            vec![
                u.metric.label().to_string(),
                amount(u.metric, u.used as f64),
                amount(u.metric, u.limit as f64),
                share_cell(u),
                status_cell(u.status),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["LIMIT", "USED", "OF", "USE", "STATUS"], &rows)
    );
    for u in status.iter().filter(|u| u.status == LimitStatus::Exceeded) {
        println!(
            "{}",
            exceeded_line(
                u.metric,
                u.over_by,
                u.exceeded_since.as_deref(),
                u.meaning.as_deref()
            )
        );
    }
}

fn forecast(cli: &Cli, engine: &Engine, days: u32) -> anyhow::Result<i32> {
    let report = engine.forecast_report(days)?;
    if cli.json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    println!(
        "{} plan {}, trend fitted on the last {} days, horizon {} days (built-in plan limits checked {})",
        paint("forecast", BOLD),
        safe(&report.plan),
        report.lookback_days,
        report.horizon_days,
        report.plan_checked
    );
    if let Some(f) = &report.freshness {
        println!("{}", super::monitor::freshness_line(f));
    }
    let rows: Vec<Vec<String>> = report.items.iter().map(forecast_row).collect();
    print!(
        "{}",
        output::table(
            &[
                "LIMIT",
                "STATUS",
                "NOW",
                "LIMIT AT",
                "DAYS UNTIL LIMIT",
                "PESSIMISTIC",
                "EXPECTED",
                "OPTIMISTIC"
            ],
            &rows
        )
    );
    for i in report
        .items
        .iter()
        .filter(|i| i.status == LimitStatus::Exceeded)
    {
        println!(
            "{}",
            exceeded_line(
                i.metric,
                i.over_by,
                i.exceeded_since.as_deref(),
                i.meaning.as_deref()
            )
        );
    }
    println!(
        "{}",
        paint(
            "monthly inclusions are forecast as the daily rate that would use them up; per-day traffic trends read complete days",
            DIM
        )
    );
    Ok(exit::OK)
}

fn forecast_row(i: &ForecastItem) -> Vec<String> {
    let colour = match (&i.outcome, i.days_until) {
        _ if i.status == LimitStatus::Exceeded => RED,
        (Outcome::Reached { .. }, _) => RED,
        (_, Some(d)) if d <= 30 => YELLOW,
        (_, Some(_)) => GREEN,
        _ => DIM,
    };
    let day = |d: Option<chrono::NaiveDate>| d.map_or("-".into(), |d| d.to_string());
    let now = match i.used_now {
        Some(v) => Some(v as f64),
        None => i.current,
    };
    vec![
        i.label.to_string(),
        status_cell(i.status),
        now.map_or("–".into(), |v| amount(i.metric, v)),
        amount(i.metric, i.limit),
        paint(&i.summary, colour),
        day(i.pessimistic),
        day(i.expected),
        match (&i.outcome, i.optimistic) {
            (Outcome::Within(_), None) => "beyond horizon".into(),
            (_, d) => day(d),
        },
    ]
}
