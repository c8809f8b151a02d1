//! `report weekly --format md`: the weekly report as Markdown (plain text, no colour), for a
//! wiki page, an issue or a chat message.
use super::amount;
use crate::cli::output::{bytes, safe};
use crate::engine::capacity::{QueryInsight, WeeklyReport};
use crate::gate::thousands;

/// Escapes what would break a Markdown table cell, and (for a report read on a terminal)
/// shows any control character that is left as a visible escape.
fn cell(s: &str) -> String {
    safe(&crate::backend::one_line(s, 160).replace('|', "\\|"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |p| format!("{p:+.0}%"))
}

/// An RFC 3339 time as people read it: `2026-12-07 14:02 UTC` (as given when unparsable).
fn when(t: &str) -> String {
    crate::model::parse_time(t).map_or_else(
        || t.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// The report as Markdown: what needs action first, then production, then the rest.
pub fn markdown(r: &WeeklyReport) -> String {
    let mut out = format!(
        "# d1ops weekly report: {} to {}\n\nPlan **{}**. Generated {}.\n\n",
        r.from,
        r.to,
        cell(&r.plan),
        when(&r.generated_at)
    );
    needs_action(&mut out, r);
    production(&mut out, r);
    if let Some(f) = &r.freshness {
        out.push_str(&format!(
            "Traffic and storage from Cloudflare's D1 analytics: {}.\n\n",
            cell(&f.describe(crate::model::now_utc()))
        ));
    }
    usage(&mut out, r);
    limits(&mut out, r);
    queries(
        &mut out,
        "Slowest queries (production, by p95)",
        &r.slow_queries,
        "no query ran at least 5 times this week",
    );
    queries(
        &mut out,
        "Failing queries (production)",
        &r.failing_queries,
        "no query failed this week",
    );
    deploys(&mut out, r);
    cleanup(&mut out, r);
    out
}

fn needs_action(out: &mut String, r: &WeeklyReport) {
    out.push_str("## Needs action\n\n");
    if r.needs_action.is_empty() {
        out.push_str("Nothing: no limit exceeded or within 30 days, no raised regression, no failed promotion without a root cause, nothing to clean.\n\n");
        return;
    }
    for a in &r.needs_action {
        out.push_str(&format!(
            "- {} — `{}` (console: {})\n",
            cell(&a.text),
            cell(&a.command),
            cell(&a.key)
        ));
    }
    out.push('\n');
}

fn production(out: &mut String, r: &WeeklyReport) {
    let w = &r.production_week;
    let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} ms"));
    let rate = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.2}%", v * 100.0));
    out.push_str(&format!(
        "## Production\n\nComplete days only ({} to {}; today is still running), against the 7 days before.\n\n\
         | metric | this week | last week |\n|---|---:|---:|\n\
         | queries | {} | {} |\n| p95 | {} | {} |\n| error rate | {} | {} |\n\n",
        w.from,
        w.to,
        thousands(w.queries),
        thousands(w.last_week_queries),
        ms(w.p95_ms),
        ms(w.last_week_p95_ms),
        rate(w.error_rate),
        rate(w.last_week_error_rate)
    ));
    growth_table(
        out,
        "Production's growth",
        "previews and recovery points apart",
        &r.production_growth,
    );
}

fn usage(out: &mut String, r: &WeeklyReport) {
    growth_table(
        out,
        "Usage and growth, everything",
        "production, previews and recovery points",
        &r.growth,
    );
}

fn growth_table(
    out: &mut String,
    title: &str,
    what: &str,
    rows: &[crate::engine::capacity::Growth],
) {
    out.push_str(&format!(
        "## {title}\n\n{what}.\n\n| metric | this week | last week | change |\n|---|---:|---:|---:|\n"
    ));
    for g in rows {
        let show = |v: f64| {
            if g.unit == "bytes" {
                bytes(v as u64)
            } else {
                thousands(v.round() as u64)
            }
        };
        out.push_str(&format!(
            "| {}{} | {} | {} | {} |\n",
            g.metric,
            if matches!(g.unit, "bytes" | "databases") {
                " (latest)"
            } else {
                " (sum)"
            },
            show(g.this_week),
            g.last_week.map_or("–".into(), show),
            pct(g.change_pct)
        ));
    }
    out.push('\n');
}

fn limits(out: &mut String, r: &WeeklyReport) {
    out.push_str("## Limits and forecasts\n\n| limit | used | of | use | status | limit reached |\n|---|---:|---:|---:|---|---|\n");
    for u in &r.status {
        let forecast = (r.forecasts.iter()).find(|f| f.metric == u.metric).map_or(
            "–".to_string(),
            |f| match (f.pessimistic, f.optimistic) {
                (Some(early), Some(late)) if f.days_until.is_some_and(|d| d > 0) => {
                    format!("{} (between {early} and {late})", f.summary)
                }
                _ => f.summary.clone(),
            },
        );
        out.push_str(&format!(
            "| {} | {} | {} | {}% | {} | {} |\n",
            u.metric.label(),
            amount(u.metric, u.used as f64),
            amount(u.metric, u.limit as f64),
            thousands((u.share * 100.0).round() as u64),
            u.status.as_str(),
            cell(&forecast)
        ));
    }
    if let Some(c) = &r.cost {
        out.push_str(&format!(
            "\nProjected monthly cost on {}: **${:.2}** in overage{} (base subscription not included).\n",
            cell(&c.plan),
            c.usd,
            if c.hypothetical {
                " if this workspace moved to it"
            } else {
                ""
            }
        ));
    }
    out.push('\n');
}

fn queries(out: &mut String, title: &str, list: &[QueryInsight], none: &str) {
    out.push_str(&format!("## {title}\n\n"));
    if list.is_empty() {
        out.push_str(&format!("None: {none}.\n\n"));
        return;
    }
    out.push_str("| query | count | errors | p95 ms | total ms | rows read |\n|---|---:|---:|---:|---:|---:|\n");
    for q in list {
        let s = &q.stat;
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            cell(&s.text),
            thousands(s.count),
            thousands(s.errors),
            s.p95_ms.map_or("–".into(), |v| format!("{v:.1}")),
            thousands(s.total_ms.round() as u64),
            thousands(s.rows_read)
        ));
    }
    out.push('\n');
    for q in list {
        if let Some(e) = &q.last_error {
            out.push_str(&format!(
                "- `{}` last failed with: {}\n",
                cell(&q.stat.text),
                cell(e)
            ));
        }
        if let Some(s) = &q.suggestion {
            out.push_str(&format!(
                "- `{}` scans {}: suggested index `{};` ({}); proven on a throwaway copy: plan `{}` → `{}`\n",
                cell(&q.stat.text),
                safe(&s.table),
                safe(&s.sql),
                safe(&s.reason),
                cell(&s.plan_before.join(" / ")),
                cell(&s.plan_after.join(" / "))
            ));
        } else if !q.scans.is_empty() {
            out.push_str(&format!(
                "- `{}` scans {} (no simple index would help)\n",
                cell(&q.stat.text),
                cell(&q.scans.join(", "))
            ));
        }
    }
    out.push('\n');
}

fn deploys(out: &mut String, r: &WeeklyReport) {
    out.push_str("## Deploys this week\n\n");
    if r.deploys.is_empty() {
        out.push_str("No release was gated, promoted or abandoned this week.\n\n");
        return;
    }
    for outcome in ["promoted", "failed", "blocked", "ready", "abandoned"] {
        let n = r.deploys.iter().filter(|d| d.outcome == outcome).count();
        out.push_str(&format!("- {outcome}: {n}\n"));
    }
    out.push_str("\n| release | label | outcome | at | by | causes |\n|---|---|---|---|---|---|\n");
    for d in &r.deploys {
        let outcome = match d.watch {
            Some(w) if d.outcome == "promoted" => format!("promoted (watch: {})", w.as_str()),
            _ => d.outcome.to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {outcome} | {} | {} | {} |\n",
            cell(&d.release),
            cell(d.label.as_deref().unwrap_or("")),
            cell(&when(&d.at)),
            cell(&d.by),
            cell(&d.causes.join("; "))
        ));
    }
    out.push('\n');
}

fn cleanup(out: &mut String, r: &WeeklyReport) {
    out.push_str("## Stale previews and cleanup\n\n");
    if r.stale_previews.is_empty() {
        out.push_str("No stale previews.\n");
    } else {
        out.push_str("| preview | release | size | idle | why |\n|---|---|---:|---:|---|\n");
        for p in &r.stale_previews {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&p.env),
                cell(p.release_id.as_deref().unwrap_or("–")),
                bytes(p.size_bytes),
                idle(p.idle_seconds),
                cell(&p.reason)
            ));
        }
    }
    let snaps: u64 = (r.expired_snapshots.iter())
        .filter(|s| s.uses_storage)
        .map(|s| s.snapshot.size_bytes)
        .sum();
    out.push_str(&format!(
        "\n`d1ops cleanup` would free **{}**: {} and {} past retention ({}).\n",
        bytes(r.cleanup_frees_bytes),
        d1ops_sql::text::count_of(
            r.stale_previews.len() as u64,
            "stale preview",
            "stale previews"
        ),
        d1ops_sql::text::count_of(
            r.expired_snapshots.len() as u64,
            "recovery point",
            "recovery points"
        ),
        bytes(snaps)
    ));
}

/// `3d`, `5h`, `12m`.
fn idle(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    }
}
