//! CLI handlers for `monitor` (the Monitor tab's numbers as a table or JSON) and `analytics
//! sync` (pull D1's analytics now). Printing and exit codes only; syncing and reading are the
//! engine's (`engine::analytics`, `Engine::monitor`).
use super::args::AnalyticsCommand;
use super::output::{self, BOLD, DIM, RED, YELLOW, paint, safe};
use super::{Cli, Command, exit, print_json};
use crate::engine::{Engine, Freshness, MonitorData, MonitorWindow, SyncOutcome, SyncReport};
use crate::gate::thousands;
use crate::metrics::TopBy;
use crate::model::now_utc;

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &Engine) -> anyhow::Result<i32> {
    match cmd {
        Command::Monitor {
            env,
            window,
            by,
            limit,
            include_d1ops,
            by_region,
        } => {
            let data = engine.monitor_with(
                env.as_deref(),
                window_of(window),
                order_of(by),
                *limit,
                *include_d1ops,
            )?;
            // On D1, with --by-region: where the queries ran, by region (primary and read
            // replicas), when D1's analytics carry `servedByRegion`. One more budgeted
            // GraphQL call; a failure is a warning, never the monitor's failure.
            let split = if *by_region {
                engine.region_split(&data.env, window_of(window).length())
            } else {
                Ok(None)
            };
            let regions = match split {
                Ok(r) => r,
                Err(e) => {
                    eprintln!(
                        "d1ops: the split by region could not be read: {}",
                        safe(&e.to_string())
                    );
                    None
                }
            };
            if cli.json {
                let mut v = serde_json::to_value(&data)?;
                if let (Some(obj), Some(r)) = (v.as_object_mut(), &regions) {
                    obj.insert("regions".into(), serde_json::to_value(r)?);
                }
                print_json(&v)?;
            } else {
                print_monitor(&data);
                if let Some(r) = &regions {
                    print_regions(r);
                }
            }
            Ok(exit::OK)
        }
        Command::Analytics {
            command: AnalyticsCommand::Sync { force },
        } => {
            let report = engine.sync_d1_analytics(*force)?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_sync(&report);
            }
            Ok(match report.outcome {
                SyncOutcome::Synced | SyncOutcome::Cached => exit::OK,
                // A transient obstacle: nothing was asked, nothing changed.
                SyncOutcome::Budget | SyncOutcome::RateLimited => exit::REFUSED,
                SyncOutcome::Failed => exit::ERROR,
            })
        }
        other => anyhow::bail!("internal error: {other:?} reached the wrong handler"),
    }
}

fn window_of(label: &str) -> MonitorWindow {
    (MonitorWindow::ALL.into_iter())
        .find(|w| w.label() == label)
        .unwrap_or(MonitorWindow::Hour)
}

fn order_of(by: &str) -> TopBy {
    match by {
        "p95" => TopBy::P95,
        "rows-read" => TopBy::RowsRead,
        "errors" => TopBy::Errors,
        _ => TopBy::TotalTime,
    }
}

/// The freshness line (dim, or yellow when it carries a warning), for every command that
/// shows analytics.
pub(super) fn freshness_line(f: &Freshness) -> String {
    let colour = if f.note.is_some() { YELLOW } else { DIM };
    paint(&f.describe(now_utc()), colour)
}

fn order_label(order: TopBy) -> &'static str {
    match order {
        TopBy::TotalTime => "total time",
        TopBy::P95 => "p95",
        TopBy::RowsRead => "rows read",
        TopBy::Errors => "errors",
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

/// A percentile, `–` when the source carried none (unknown is not 0 ms).
fn known_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), ms)
}

fn print_monitor(d: &MonitorData) {
    println!(
        "{} {} · window {} · top by {}",
        paint("monitor", BOLD),
        safe(&d.env),
        d.window.label(),
        order_label(d.order)
    );
    if let Some(f) = &d.freshness {
        println!("{}", freshness_line(f));
    }
    let t = &d.totals;
    if t.count == 0 {
        println!(
            "no queries on {} in the last {}",
            safe(&d.env),
            d.window.label()
        );
    } else {
        let secs = d.window.length().num_seconds().max(1) as f64;
        let errors = format!(
            "{} ({:.2}%)",
            d1ops_sql::text::count_of(t.errors, "error", "errors"),
            t.error_rate * 100.0
        );
        let qps = t.count as f64 / secs;
        println!(
            "{} · {}/s · {} · p95 {}",
            d1ops_sql::text::count_of(t.count, "query", "queries"),
            if qps < 1.0 {
                format!("{qps:.3}")
            } else {
                format!("{qps:.1}")
            },
            if t.errors > 0 {
                paint(&errors, RED)
            } else {
                errors
            },
            known_ms(t.p95)
        );
    }
    if d.d1ops_queries > 0 {
        let note = if d.include_d1ops {
            format!(
                "including {} d1ops sent itself (marked [d1ops])",
                d1ops_sql::text::count_of(d.d1ops_queries, "statement", "statements")
            )
        } else {
            format!(
                "app traffic only: {} d1ops sent itself left out (--include-d1ops shows them; usage counts them)",
                d1ops_sql::text::count_of(d.d1ops_queries, "statement", "statements")
            )
        };
        println!("{}", paint(&note, DIM));
    }
    if !d.top.is_empty() {
        let rows: Vec<Vec<String>> = (d.top.iter())
            .map(|q| {
                let mark = if q.source == crate::metrics::source::D1OPS_SOURCE {
                    "[d1ops] "
                } else {
                    ""
                };
                vec![
                    format!("{mark}{}", safe(&crate::backend::one_line(&q.text, 60))),
                    thousands(q.count),
                    thousands(q.errors),
                    format!("{:.1}", q.total_ms),
                    known_ms(q.p50_ms),
                    known_ms(q.p95_ms),
                    known_ms(q.p99_ms),
                    thousands(q.rows_read),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(
                &[
                    "QUERY",
                    "COUNT",
                    "ERRORS",
                    "TOTAL MS",
                    "P50",
                    "P95",
                    "P99",
                    "ROWS READ"
                ],
                &rows
            )
        );
    }
    for e in &d.errors {
        println!(
            "{}",
            paint(
                &format!(
                    "error {} {}: {} ({})",
                    e.at.format("%Y-%m-%d %H:%M:%S"),
                    e.code,
                    e.message,
                    crate::backend::one_line(&e.text, 60)
                ),
                RED
            )
        );
    }
    if let Some(w) = &d.watch {
        let line = format!("watch: {}", safe(&w.summary()));
        if w.alert {
            println!(
                "{}",
                paint(&format!("{line} (`d1ops watch ack` once handled)"), RED)
            );
        } else {
            println!("{line}");
        }
    }
}

/// `monitor` on D1: requests and latency by the region that served them.
fn print_regions(r: &crate::engine::analytics::regions::RegionSplit) {
    println!();
    let primary = r.primary_region.as_deref().unwrap_or("unknown");
    println!("by region (primary {}):", safe(primary));
    if r.regions.is_empty() {
        println!(
            "  {}",
            safe(
                r.note
                    .as_deref()
                    .unwrap_or("D1's analytics name no region for this window")
            )
        );
        return;
    }
    let rows: Vec<Vec<String>> = r
        .regions
        .iter()
        .map(|g| {
            vec![
                safe(&g.region),
                if g.primary { "primary" } else { "replica" }.to_string(),
                thousands(g.count),
                thousands(g.read_queries),
                thousands(g.write_queries),
                known_ms(g.avg_ms),
                known_ms(g.p50_ms),
                known_ms(g.p99_ms),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "REGION", "ROLE", "REQUESTS", "READS", "WRITES", "AVG", "P50", "P99"
            ],
            &rows
        )
    );
    if let Some(n) = &r.note {
        println!("  {}", safe(n));
    }
}

fn print_sync(r: &SyncReport) {
    let b = &r.buckets;
    let head = match r.outcome {
        SyncOutcome::Synced => format!(
            "synced D1 analytics of {} database(s) in {} request(s): {} new bucket(s), {} replaced, {} gone, {} unchanged",
            r.databases, r.requests, b.added, b.replaced, b.removed, b.unchanged
        ),
        SyncOutcome::Cached => {
            "not synced: the last sync is younger than [cloudflare].analytics_refresh (--force asks anyway)".into()
        }
        SyncOutcome::Budget => "not synced: d1ops' GraphQL budget is used up for now".into(),
        SyncOutcome::RateLimited => {
            "not synced: Cloudflare rate-limited GraphQL requests (HTTP 429); waiting 5 minutes".into()
        }
        SyncOutcome::Failed => "not synced: Cloudflare could not be read".into(),
    };
    println!("{head}");
    if r.truncated > 0 {
        println!(
            "{}",
            paint(
                &format!(
                    "{} bucket(s) held more than 10,000 query texts; the rest of each is not counted",
                    r.truncated
                ),
                YELLOW
            )
        );
    }
    println!("{}", freshness_line(&r.freshness));
    let u = &r.freshness.budget;
    println!(
        "{}",
        paint(
            &format!(
                "GraphQL budget: {} of {} request(s) in the last {} min",
                u.used,
                u.limit,
                u.window_seconds / 60
            ),
            DIM
        )
    );
}
