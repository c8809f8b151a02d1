//! Console cold start and memory on a big workspace: 10,000 releases and 200 environments.
//!
//! Builds the workspace once with the real engine (cached under target/bench-data/), then
//! starts the release binary's console in a pseudo-terminal (`script`) at 120×40 with
//! `D1OPS_CONSOLE_EXIT_AFTER_FIRST_DATA=1`, which quits right after the first frame that shows
//! engine data. Reports the median wall time to that frame and the peak RSS.
//! `D1OPS_BENCH_QUICK=1` shrinks it (1,000 releases, 40 environments, 3 runs).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use d1ops::engine::{DeployRequest, Engine, EngineOptions};

fn engine(root: &Path, actor: &str) -> Engine {
    Engine::open(
        root,
        EngineOptions {
            actor: Some(actor.into()),
            readonly: false,
        },
    )
    .expect("open workspace")
}

fn build(root: &Path, releases: usize, envs: usize) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("migrations")).expect("mkdir");
    d1ops::workspace::init(root).expect("init");
    std::fs::write(
        root.join("migrations/0001_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    )
    .expect("write");
    let mut alice = engine(root, "alice");
    let first = alice.deploy(DeployRequest::default()).expect("deploy");
    engine(root, "bob")
        .approve(&first.id, None)
        .expect("approve");
    engine(root, "bob").promote(&first.id).expect("promote");
    // Code-only releases (no pending migrations): most of the history.
    // Totals: 1 + (releases - envs + 1) + (envs - 2) releases; production, the first
    // release's preview and envs - 2 more previews.
    for i in 0..(releases + 1).saturating_sub(envs) {
        alice
            .deploy(DeployRequest {
                label: Some(format!("code release {i}")),
                ..Default::default()
            })
            .expect("deploy");
    }
    // Releases with a pending migration, each with its own preview environment.
    std::fs::write(
        root.join("migrations/0002_bio.sql"),
        "ALTER TABLE users ADD COLUMN bio TEXT;\n",
    )
    .expect("write");
    for i in 0..envs.saturating_sub(2) {
        alice
            .deploy(DeployRequest {
                label: Some(format!("bio {i}")),
                ..Default::default()
            })
            .expect("deploy");
    }
}

fn peak_rss_kib_of_children() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}

fn main() {
    let quick =
        std::env::var_os("D1OPS_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick");
    let (releases, envs, runs) = if quick {
        (1_000, 40, 3)
    } else {
        (10_000, 200, 9)
    };
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/d1ops");
    if !bin.exists() {
        eprintln!("build the release binary first: cargo build --release");
        std::process::exit(1);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/bench-data/console-{releases}-{envs}"));
    if !root.join(".d1ops/built").exists() {
        let started = Instant::now();
        build(&root, releases, envs);
        std::fs::write(root.join(".d1ops/built"), "").expect("marker");
        eprintln!(
            "built the workspace in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let e = engine(&root, "bench");
    let (n_rel, n_env) = (
        e.releases().expect("releases").len(),
        e.envs().expect("envs").len(),
    );
    drop(e);
    let mut times = Vec::new();
    for _ in 0..runs {
        let cmd = format!(
            "stty cols 120 rows 40; D1OPS_CONSOLE_EXIT_AFTER_FIRST_DATA=1 {} --workspace {} console",
            bin.display(),
            root.display()
        );
        let started = Instant::now();
        let status = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run script");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(status.success(), "console exited with {status}");
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let rss_mib = peak_rss_kib_of_children() as f64 / 1024.0;
    println!("| case | value | target | verdict |");
    println!("|---|---:|---:|---|");
    println!(
        "| console cold start to first data frame ({n_rel} releases, {n_env} environments, 120×40; median of {runs}) | {median:.0} ms | < 150 ms | {} |",
        if median < 150.0 { "met" } else { "missed" }
    );
    println!(
        "| console peak RSS (same run) | {rss_mib:.1} MiB | < 60 MB | {} |",
        if rss_mib < 57.2 { "met" } else { "missed" }
    );
    println!(
        "\nsamples (ms): {}",
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
