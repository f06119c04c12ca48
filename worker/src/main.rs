//! `worker`: consumes snapshot events, loads each snapshot into a new graph
//! database, switches the customer's alias when it is the newest, drops old
//! databases. Run as many as you like, on as many hosts: a per-customer Redis
//! lock keeps one load per customer at a time.
//!
//! This file is the command line only; the worker itself is the `worker`
//! library (`lib.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use common::config::Config;
use serde::Serialize;

/// Loads snapshots into new graph databases and switches aliases (blue/green).
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
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Check RabbitMQ, Redis, the graph database and the data root, print one
    /// line per check with its fix, and exit non-zero if any check fails.
    Doctor,
}

/// Config keys settable from the command line.
#[derive(clap::Args, Debug, Serialize)]
struct Flags {
    /// Concurrent loads in this process.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<u16>,
    /// Prefix of every queue and Redis key.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    /// Root of the snapshot tree.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_root: Option<PathBuf>,
    /// Write the fleet status JSON here every 5 s (atomically).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    status_file: Option<PathBuf>,
    /// Address of the HTTP server (/healthz, /readyz, /metrics, /status).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_listen: Option<String>,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let otel = common::telemetry::init_with("worker", cli.log_format);
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
    let config = Arc::new(Config::load(cli.config.as_deref(), &cli.flags)?);
    if let Some(Command::Doctor) = cli.command {
        let report = common::doctor::worker(&config).await;
        print!("{report}");
        std::process::exit(if report.passed() { 0 } else { 1 });
    }
    worker::service::run(config).await
}
