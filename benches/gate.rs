//! Gate benchmark (issue 3): the whole gate on the demo's production clone (~100k users,
//! ~1M items, the demo's probes) for a candidate release that adds a column and an index,
//! with the time of every check, its baseline (the probes before migrations) included.
//!
//! Plain `main` (harness = false). The demo workspace is built once at full scale (~10 s)
//! and reused from `target/bench-data/gate-demo`; each measured run deploys the candidate,
//! then abandons it and deletes its preview, so runs are independent. Prints Markdown.
//!
//! Knobs: `D1OPS_BENCH_RUNS=N` (default 3), `D1OPS_BENCH_DATA=DIR` (cache folder),
//! `D1OPS_BENCH_QUICK=1` or `--quick` (1 run). `cargo bench --bench gate -- --quick`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use d1ops::engine::{DeployOutcome, DeployRequest, Engine, EngineOptions};

/// Bump when the demo or its probes change shape, so a stale cached demo is rebuilt.
const DEMO_VERSION: &str = "gate-bench-1";
/// The candidate: expand the schema (a column) and index a 1M-row table.
const CANDIDATE: (&str, &str) = (
    "0007_item_rarity.sql",
    "-- Rarity for the shop's filters, indexed with the owner for the inventory screen.\n\
     ALTER TABLE items ADD COLUMN rarity TEXT;\n\
     CREATE INDEX idx_items_owner_kind ON items(owner_id, kind);\n",
);
/// The target for the whole gate.
const TARGET_MS: f64 = 5_000.0;

fn data_dir() -> PathBuf {
    std::env::var_os("D1OPS_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .map(|t| t.join("bench-data"))
                .unwrap_or_else(|| PathBuf::from("target/bench-data"))
        })
}

fn engine(root: &Path) -> Engine {
    Engine::open(
        root,
        EngineOptions {
            actor: Some("bench".into()),
            readonly: false,
        },
    )
    .expect("open the demo workspace")
}

/// The full-scale demo, built or reused.
fn demo(dir: &Path) -> PathBuf {
    let root = dir.join("gate-demo");
    let stamp = root.join(".d1ops/gate-bench-version");
    let current = std::fs::read_to_string(&stamp).is_ok_and(|v| v == DEMO_VERSION);
    if std::env::var_os("D1OPS_DEMO_SCALE").is_some() {
        eprintln!("note: D1OPS_DEMO_SCALE is set; the demo is built at that scale");
    }
    let started = Instant::now();
    let built = d1ops::demo::build_or_reuse(&root, !current).expect("build the demo");
    if !built.reused {
        eprintln!(
            "built the demo ({} users, {} items) in {:.1} s",
            built.scale.users,
            built.scale.items,
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::write(&stamp, DEMO_VERSION).expect("stamp");
    root
}

/// Deploys the candidate, then abandons it and deletes its preview.
fn deploy_once(root: &Path, run: usize) -> DeployOutcome {
    let mut e = engine(root);
    let out = e
        .deploy(DeployRequest {
            label: Some(format!("bench: item rarity #{run}")),
            ..Default::default()
        })
        .expect("deploy");
    e.abandon(&out.id, Some("gate benchmark run"))
        .expect("abandon");
    let plan: Vec<_> = e
        .cleanup_plan(None, false)
        .expect("cleanup plan")
        .into_iter()
        .filter(|i| i.release_id.as_deref() == Some(out.id.as_str()))
        .collect();
    e.cleanup(&plan).expect("cleanup");
    out
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("D1OPS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let runs = std::env::var("D1OPS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(if quick { 1 } else { 3 })
        .max(1);
    let root = demo(&data_dir());
    let migration = root.join("migrations").join(CANDIDATE.0);
    std::fs::write(&migration, CANDIDATE.1).expect("write the candidate migration");

    let mut outcomes = Vec::with_capacity(runs);
    for run in 1..=runs {
        let started = Instant::now();
        let out = deploy_once(&root, run);
        eprintln!(
            "run {run}: gate {:.0} ms, deploy {:.0} ms, {}",
            out.total_ms,
            started.elapsed().as_secs_f64() * 1000.0,
            out.verdict.as_str()
        );
        for c in out.checks.iter().filter(|c| c.status.as_str() == "fail") {
            eprintln!("  ✗ {}: {}", c.id, c.reason);
        }
        outcomes.push(out);
    }
    std::fs::remove_file(&migration).expect("remove the candidate migration");
    report(&outcomes);
}

fn report(outcomes: &[DeployOutcome]) {
    let last = outcomes.last().expect("a run");
    let probes = last
        .checks
        .iter()
        .find(|c| c.id == "probe.result")
        .and_then(|c| c.details["probes"].as_array().map(Vec::len))
        .unwrap_or(0);
    // Per check: the median of its run time and of its baseline (before the apply).
    let mut run_ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut base_ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for out in outcomes {
        for c in &out.checks {
            run_ms.entry(c.id.as_str()).or_default().push(c.duration_ms);
            base_ms
                .entry(c.id.as_str())
                .or_default()
                .push(c.details["baseline_ms"].as_f64().unwrap_or(0.0));
        }
    }
    let total = median(outcomes.iter().map(|o| o.total_ms).collect());
    println!(
        "## Gate on the demo's production clone ({} pending migration(s), {probes} probes, {} run(s), median)\n",
        last.pending.len(),
        outcomes.len()
    );
    println!("| check | status | baseline (ms) | run (ms) | total (ms) | reason |");
    println!("|---|---|---:|---:|---:|---|");
    let mut accounted = 0.0;
    for c in &last.checks {
        let (b, r) = (
            median(base_ms[c.id.as_str()].clone()),
            median(run_ms[c.id.as_str()].clone()),
        );
        accounted += b + r;
        let reason: String = c.reason.chars().take(90).collect();
        println!(
            "| `{}` | {} | {b:.1} | {r:.1} | {:.1} | {} |",
            c.id,
            c.status.as_str(),
            b + r,
            reason.replace('|', "\\|")
        );
    }
    println!(
        "| (preview apply, row counts, schema reads) | | | | {:.1} | |",
        (total - accounted).max(0.0)
    );
    println!(
        "| **whole gate** | {} | | | **{total:.1}** | |",
        last.verdict.as_str()
    );
    println!(
        "\ntarget: whole gate under {:.0} s with ≥ 15 probes — {}",
        TARGET_MS / 1000.0,
        if total < TARGET_MS && probes >= 15 {
            "met"
        } else {
            "MISSED"
        }
    );
}
