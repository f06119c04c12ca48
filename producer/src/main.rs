//! `producer`: finds ready snapshots and publishes snapshot events to RabbitMQ.
//!
//! - `publish`: one event, what an ETL job calls after writing `_SUCCESS`;
//! - `watch`: file-system notifications plus a periodic rescan, forever;
//! - `backfill`: every ready, unpublished snapshot once, then exit;
//! - `generate`: write sample snapshots (demo, tests, benchmarks);
//! - `status`: the fleet's counters and each customer's live snapshot;
//! - `console`: the operator console in the browser (see `console/`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::config::Config;
use common::snapshot::sample::SampleFormat;
use producer::cmd::{self, dlq::DlqCommand};
use serde::Serialize;

/// Publishes snapshot events for snapswitch workers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML); also `SNAPSWITCH_CONFIG`. Environment variables
    /// `SNAPSWITCH_<KEY>` override it, flags override both.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Log lines as `text` (colours only on a terminal) or `json` (one
    /// object per line, for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SNAPSWITCH_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: common::telemetry::LogFormat,
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

/// Config keys settable from the command line.
#[derive(clap::Args, Debug, Serialize)]
struct Flags {
    /// Root of the snapshot tree.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_root: Option<PathBuf>,
    /// Prefix of every queue and Redis key.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    /// Seconds between full rescans in `watch`.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    scan_interval: Option<u64>,
    /// Write the fleet status JSON here every 5 s (atomically).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    status_file: Option<PathBuf>,
    /// Address of the HTTP server (/healthz, /readyz, /metrics, /status).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_listen: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish one snapshot's event (after its `_SUCCESS` is written).
    Publish {
        /// The customer (its directory under the data root).
        #[arg(long)]
        customer: String,
        /// The snapshot id (its directory under the customer's: unix seconds).
        #[arg(long)]
        snapshot_id: u64,
        /// 0-9; default: the config's default_priority.
        #[arg(long)]
        priority: Option<u8>,
    },
    /// Watch the data root and publish each snapshot once when it becomes ready.
    Watch {
        /// 0-9; default: the config's default_priority (each customer's
        /// newest snapshot gets one more in rescans).
        #[arg(long)]
        priority: Option<u8>,
    },
    /// Publish every ready snapshot not published yet, then exit.
    Backfill {
        /// 0-9; default: the config's default_priority (each customer's
        /// newest snapshot gets one more).
        #[arg(long)]
        priority: Option<u8>,
    },
    /// Write sample snapshots under the data root.
    Generate {
        /// Customer names (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "customer1,customer2,customer3"
        )]
        customers: Vec<String>,
        /// Snapshots per customer.
        #[arg(long, default_value_t = 1)]
        snapshots: u64,
        /// Rows (nodes + relationships) per snapshot.
        #[arg(long, default_value_t = 1000)]
        rows: usize,
        /// csv, parquet or arrow.
        #[arg(long, default_value = "csv")]
        format: SampleFormat,
        /// First snapshot id (unix seconds); default: now. Later snapshots add 60 s each.
        #[arg(long)]
        start_id: Option<u64>,
        /// Pause between snapshots, in milliseconds (for live demos).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Move a customer's alias back to an older retained database (the newest
    /// older one, or --to). Holds until the next newer snapshot is loaded.
    Rollback {
        /// The customer whose alias moves back.
        #[arg(long)]
        customer: String,
        /// The retained snapshot to go back to (default: the newest older one).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Make a held snapshot live (it was loaded and verified, and a guard or
    /// a check held it): only while it is newer than the live one.
    Approve {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        snapshot_id: u64,
    },
    /// Drop a held snapshot; the alias stays where it is.
    Reject {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        snapshot_id: u64,
    },
    /// Inspect, replay or purge the parking (dead-letter) queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Cancel a snapshot: a queued event is acked as cancelled when it
    /// arrives; a running load is aborted within seconds and its database dropped.
    Cancel {
        /// The customer of the snapshot.
        #[arg(long)]
        customer: String,
        /// The snapshot to cancel.
        #[arg(long)]
        snapshot_id: u64,
    },
    /// Check RabbitMQ, Redis and the data root, print one line per check with
    /// its fix, and exit non-zero if any check fails.
    Doctor,
    /// Print the audit trail: every task state change, oldest first.
    History {
        /// Only this customer's entries.
        #[arg(long)]
        customer: Option<String>,
        /// At most this many entries (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Serve the operator console (web pages and their JSON API).
    Console {
        /// Address to listen on; keep it on localhost unless a proxy with
        /// TLS fronts it.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// File with the operator token (overrides console_token_file /
        /// SNAPSWITCH_CONSOLE_TOKEN_FILE); none: read-only.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Print the fleet status (the seed's status-file fields) and each customer's live snapshot.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let otel = common::telemetry::init_with("producer", cli.log_format);
    let result = run(cli).await;
    if let Some(otel) = otel {
        otel.shutdown();
    }
    if let Err(e) = result {
        // One line: what failed and why (anyhow's chain joined by ": ").
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    for var in common::config::unknown_env_vars() {
        tracing::warn!(%var, "environment variable is not a snapswitch config key (typo?); ignored");
    }
    let config = Config::load(cli.config.as_deref(), &cli.flags)?;
    match cli.command {
        Command::Generate {
            customers,
            snapshots,
            rows,
            format,
            start_id,
            pause_ms,
        } => cmd::generate::run(
            &config, &customers, snapshots, rows, format, start_id, pause_ms,
        ),
        Command::Status { json } => cmd::status::run(&config, json).await,
        Command::Console { listen, token_file } => {
            cmd::console::run(&config, &listen, token_file.as_deref()).await
        }
        Command::History {
            customer,
            limit,
            json,
        } => cmd::history::run(&config, customer, limit, json).await,
        Command::Dlq { command } => cmd::dlq::run(&config, command).await,
        Command::Rollback { customer, to } => {
            producer::rollback::rollback(&config, &customer, to).await
        }
        Command::Approve {
            customer,
            snapshot_id,
        } => cmd::approve::approve(&config, &customer, snapshot_id).await,
        Command::Reject {
            customer,
            snapshot_id,
        } => cmd::approve::reject(&config, &customer, snapshot_id).await,
        Command::Doctor => {
            let report = common::doctor::producer(&config).await;
            print!("{report}");
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Command::Cancel {
            customer,
            snapshot_id,
        } => cmd::cancel::run(&config, &customer, snapshot_id).await,
        Command::Publish {
            customer,
            snapshot_id,
            priority,
        } => cmd::publish::run(&config, &customer, snapshot_id, priority).await,
        Command::Backfill { priority } => cmd::backfill::run(&config, priority).await,
        Command::Watch { priority } => cmd::watch::run(&config, priority).await,
    }
}
