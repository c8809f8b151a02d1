//! The command line, as clap derive types. Parsing only; `cli::run` dispatches.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// d1ops — release lifecycle console for migration-driven SQLite / Cloudflare D1 databases.
///
/// Run with no command to open the console on the workspace.
#[derive(Debug, Parser)]
#[command(name = "d1ops", version, about, long_about = None)]
pub struct Cli {
    /// Workspace directory (the folder with d1ops.toml).
    #[arg(
        long,
        short = 'w',
        global = true,
        default_value = ".",
        env = "D1OPS_WORKSPACE"
    )]
    pub workspace: PathBuf,
    /// Machine-readable JSON output (every listing and outcome).
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as this user (default: $D1OPS_USER, else the OS user).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub actor: Option<String>,
    /// Read-only: no actions (the console hides them; commands that write refuse).
    #[arg(long, global = true)]
    pub readonly: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a demo workspace with history, then open the console on it.
    Demo {
        /// Where to build it.
        #[arg(default_value = "d1ops-demo")]
        dir: PathBuf,
        /// Build (or reuse) the workspace and print what to try, without opening the console.
        #[arg(long)]
        no_console: bool,
        /// Rebuild even when the directory already holds a demo workspace.
        #[arg(long)]
        fresh: bool,
    },
    /// Create d1ops.toml (imports wrangler's d1_databases when present).
    Init {
        /// Directory to initialise (default: --workspace).
        dir: Option<PathBuf>,
    },
    /// Open the interactive console.
    Console,
    /// Turn the workspace's migrations (and artifacts) into a release, preview it and gate it.
    Deploy {
        #[arg(long)]
        label: Option<String>,
        #[arg(long, value_name = "SHA")]
        commit: Option<String>,
        /// A component artifact, NAME=PATH (repeatable): app, bot, api...
        #[arg(long = "artifact", value_name = "NAME=PATH")]
        artifacts: Vec<String>,
        /// The release this one replaces (a fix names what it fixes).
        #[arg(long, value_name = "ID")]
        supersedes: Option<String>,
    },
    /// List releases, newest first.
    Releases,
    /// One release in full.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Environments: production and previews.
    Envs,
    /// One environment: what an app needs to reach it.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Pending migration SQL and the schema diff preview-vs-production.
    Diff { id: String },
    /// Approve a ready release.
    Approve {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Abandon a candidate release.
    Abandon {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Record a root cause (and the guardrail added) on a release.
    Annotate {
        id: String,
        #[arg(long)]
        cause: String,
        #[arg(long)]
        guardrail: Option<String>,
    },
    /// Promote an approved release to production: gated, atomic.
    Promote {
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Return after the first step of a worker target's gradual rollout (drive the rest
        /// with `d1ops rollout`).
        #[arg(long)]
        no_wait: bool,
    },
    /// Drive a worker target's gradual rollout (`rollout = [10, 50, 100]`): see where it
    /// stands, move it one step on, or abort it.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Delete stale preview databases.
    Cleanup {
        /// Only previews idle at least this long (e.g. 3d, 12h).
        #[arg(long, value_name = "DUR")]
        older_than: Option<String>,
        /// Show what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Also delete previews of candidates still awaiting a decision (idle past the TTL).
        #[arg(long)]
        include_pending: bool,
    },
    /// Switch production's active release (its code) back to a known-good release; the
    /// schema stays. The target's probes are checked on a copy of production first.
    Rollback {
        /// The release to go back to (default: the one live before the current one).
        id: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Roll back even though the target's probes fail on the current schema.
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why (recorded in the audit log; required with --force).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Restore production's database to the recovery point taken just before a release was
    /// promoted (shows what would be lost first), or undo the last restore.
    Restore {
        /// The release whose pre-promotion recovery point to restore.
        #[arg(
            long = "to-release",
            value_name = "ID",
            required_unless_present = "undo",
            conflicts_with = "undo"
        )]
        to_release: Option<String>,
        /// Put back what the last restore replaced.
        #[arg(long)]
        undo: bool,
        /// Do not ask for the typed confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Recovery points (snapshots) with their release, time, size and retention.
    Snapshots,
    /// Release the production lock of a promote/restore/rollback whose holder is gone but
    /// cannot be shown gone automatically (e.g. another host without a heartbeat), then run
    /// that operation's normal recovery. Refuses while the holder runs on this host or its
    /// heartbeat lease is fresh. Audited with the reason.
    Unlock {
        /// Why the holder is known to be gone (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Do not ask for the typed confirmation (the lock's release id's last 4 characters).
        #[arg(long)]
        yes: bool,
    },
    /// Make the database d1ops.toml names production (after changing its database_id):
    /// reads its ledger, asks for a typed confirmation, records and audits the switch.
    Adopt {
        /// The production database id d1ops.toml now names.
        #[arg(long, value_name = "ID")]
        database_id: String,
        /// Do not ask for the typed confirmation (the id's last 4 characters).
        #[arg(long)]
        yes: bool,
    },
    /// Production's migrations ledger beside d1ops' record of what it applied, and where they
    /// disagree; `ledger repair` reconciles them.
    Ledger {
        #[command(subcommand)]
        command: Option<LedgerCommand>,
    },
    /// Run SQL on an environment (production or a preview); the query is recorded in the
    /// monitor. Writes to production need --yes.
    Query {
        env: String,
        sql: String,
        /// A positional parameter (repeatable); numbers are bound as numbers.
        #[arg(long = "param", value_name = "V")]
        params: Vec<String>,
        #[arg(long)]
        yes: bool,
    },
    /// A local D1-compatible HTTP API (/accounts/{account}/d1/database/{env}/query and /raw).
    /// Requests must be JSON (Content-Type: application/json) addressed to the listen address;
    /// a web page from another origin is refused unless allowed with --allow-origin. When
    /// D1OPS_SERVE_TOKEN is set, clients must send Authorization: Bearer <that token>.
    Serve {
        #[arg(long, default_value = crate::engine::DEFAULT_SERVE_LISTEN)]
        listen: String,
        /// Let clients change production (by default writes there are refused with 403).
        #[arg(long)]
        allow_production_writes: bool,
        /// Also accept requests from this web origin (scheme://host[:port], e.g.
        /// http://localhost:3000); repeatable. It gets CORS answers.
        #[arg(long = "allow-origin", value_name = "ORIGIN")]
        allow_origins: Vec<String>,
    },
    /// Replay the probes (or a workload file) as concurrent load on an environment.
    Traffic {
        env: String,
        #[arg(long, default_value = "30s")]
        duration: String,
        /// Queries per second across all workers.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, value_name = "FILE")]
        workload: Option<std::path::PathBuf>,
    },
    /// Import query events from an app's logs (JSON lines; `-` reads stdin).
    Ingest { file: String },
    /// The Monitor's numbers for an environment: totals, latency, the top queries, recent
    /// errors (on Cloudflare, synced from D1's analytics first when due).
    Monitor {
        /// The environment (default: production).
        env: Option<String>,
        #[arg(long, default_value = "1h", value_parser = ["5m", "1h", "24h", "7d"])]
        window: String,
        /// The order of the top queries.
        #[arg(long, default_value = "total-time", value_parser = ["total-time", "p95", "rows-read", "errors"])]
        by: String,
        /// How many top queries.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Include d1ops' own statements (ledger reads, introspection, migrations, probes);
        /// by default the Monitor shows the app's traffic only.
        #[arg(long)]
        include_d1ops: bool,
        /// On D1: also split requests and latency by the region that served them (primary
        /// and read replicas); one more GraphQL request from the analytics budget.
        #[arg(long)]
        by_region: bool,
    },
    /// D1's GraphQL Analytics (backend = "cloudflare").
    Analytics {
        #[command(subcommand)]
        command: AnalyticsCommand,
    },
    /// Daily usage per environment and in total, against the plan's limits.
    Usage {
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// When each plan limit is reached at the current trend (optimistic / expected / pessimistic).
    Forecast {
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// The live release's post-promotion watch; `watch ack` acknowledges a raised regression
    /// (it stays in the record, dated, and no longer alerts).
    Watch {
        #[command(subcommand)]
        command: Option<WatchCommand>,
    },
    /// Lint the migrations folder alone (D1 compatibility, destructive and risky changes);
    /// exits 1 when any finding is at fail severity.
    Lint,
    /// The audit log.
    Audit {
        /// Recompute the hash chain and report whether it verifies.
        #[arg(long)]
        verify: bool,
        /// How many events to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Pull new buckets into the metrics store now (within the GraphQL budget); without
    /// --force nothing is asked when the last sync is younger than analytics_refresh.
    Sync {
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Acknowledge the live release's raised regression (audited).
    Ack,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The weekly capacity and reliability report.
    Weekly {
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// What an app needs to reach ENV's database (managed runtime binding): on Cloudflare
    /// wrangler's [[d1_databases]] block, locally the `d1ops serve` URL and the file. Never a
    /// token.
    Binding {
        /// `production` or a preview's name.
        env: String,
        /// toml (wrangler's block), json, or env (shell assignments); --json means json.
        #[arg(long, default_value = "toml", value_parser = ["toml", "json", "env"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Show one release: state, gate checklist, migrations, approvals, history.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// The current split, step, next step's due time and latest regression check (of
    /// release ID, or of every rollout in progress).
    Status { id: Option<String> },
    /// Check production for a regression, then move release ID's rollout one step on (a
    /// regression halts it instead: the previous version at 100%, the release failed).
    Continue {
        id: String,
        /// Take the next step before rollout_wait has passed.
        #[arg(long)]
        now: bool,
    },
    /// Stop release ID's rollout: the previous version goes back to 100%, the previous
    /// release is active again, release ID fails at stage rollout.
    Abort {
        id: String,
        /// Why (recorded in the audit log and the failure).
        #[arg(long)]
        reason: Option<String>,
        /// Do not ask for the typed confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Reconcile production's ledger with d1ops' record: recorded rows missing from the
    /// ledger are re-inserted, rows d1ops never applied whose file is not in the workspace
    /// are removed, rows whose file is in the workspace need --adopt or --forget. Proven on
    /// a throwaway copy of production first; audited.
    Repair {
        /// Keep this ledger row d1ops never applied and record its workspace file's checksum.
        #[arg(long, value_name = "NAME")]
        adopt: Vec<String>,
        /// Remove this ledger row d1ops never applied (the next release applies the file).
        #[arg(long, value_name = "NAME")]
        forget: Vec<String>,
        /// Do not ask for the typed confirmation.
        #[arg(long)]
        yes: bool,
    },
}
