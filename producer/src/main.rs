//! `producer`: finds ready snapshots and publishes snapshot events to RabbitMQ.
//!
//! - `publish`: one event, what an ETL job calls after writing `_SUCCESS`;
//! - `watch`: file-system notifications plus a periodic rescan, forever;
//! - `backfill`: every ready, unpublished snapshot once, then exit;
//! - `generate`: write sample snapshots (demo, tests, benchmarks);
//! - `status`: the fleet's counters and each customer's live snapshot.

mod dlq;
mod publish;
mod scan;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use common::config::Config;
use common::ident::{Customer, SnapshotId};
use common::keys::Keys;
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use common::state::FleetState;
use common::topology::Topology;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::publish::Announcer;

/// Publishes snapshot events for snapswitch workers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML); also `SNAPSWITCH_CONFIG`. Environment variables
    /// `SNAPSWITCH_<KEY>` override it, flags override both.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish one snapshot's event (after its `_SUCCESS` is written).
    Publish {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        snapshot_id: u64,
        /// 0-9; default: the config's default_priority.
        #[arg(long)]
        priority: Option<u8>,
    },
    /// Watch the data root and publish each snapshot once when it becomes ready.
    Watch {
        #[arg(long)]
        priority: Option<u8>,
    },
    /// Publish every ready snapshot not published yet, then exit.
    Backfill {
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
    /// Inspect, replay or purge the parking (dead-letter) queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Cancel a snapshot: a queued event is acked as cancelled when it
    /// arrives; a running load is aborted within seconds and its database dropped.
    Cancel {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        snapshot_id: u64,
    },
    /// Check RabbitMQ, Redis and the data root, print one line per check with
    /// its fix, and exit non-zero if any check fails.
    Doctor,
    /// Print the fleet's counters and each customer's live snapshot.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DlqCommand {
    /// List parked events with their reasons (nothing is removed).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Republish parked events to the work queue (original priority, attempt count reset).
    Replay {
        /// The event with this event id.
        #[arg(long, group = "which")]
        id: Option<String>,
        /// Every parked event of this customer.
        #[arg(long, group = "which")]
        customer: Option<String>,
        /// Every parked event.
        #[arg(long, group = "which")]
        all: bool,
    },
    /// Delete every parked event.
    Purge {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init_logging();
    let cli = Cli::parse();
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
        } => generate(
            &config, &customers, snapshots, rows, format, start_id, pause_ms,
        ),
        Command::Status { json } => status(&config, json).await,
        Command::Dlq { command } => dlq_command(&config, command).await,
        Command::Doctor => {
            let report = common::doctor::producer(&config).await;
            print!("{report}");
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Command::Cancel {
            customer,
            snapshot_id,
        } => {
            let customer = Customer::parse(&customer)?;
            let snapshot = SnapshotId::new(snapshot_id)?;
            let redis = common::state::connect(&config.redis_url).await?;
            let state = FleetState::new(redis, Keys::new(&config.namespace));
            state.cancel(&customer, snapshot).await?;
            state
                .audit(
                    "cancel_requested",
                    &[
                        ("customer", customer.to_string()),
                        ("snapshot_id", snapshot.to_string()),
                    ],
                )
                .await?;
            println!("cancelled {customer}/{snapshot}");
            Ok(())
        }
        Command::Publish {
            customer,
            snapshot_id,
            priority,
        } => {
            let customer = Customer::parse(&customer)?;
            let snapshot = SnapshotId::new(snapshot_id)?;
            common::snapshot::layout::resolve_ready(&config.data_root, &customer, snapshot)?;
            let announcer = announcer(&config).await?;
            let event = announcer
                .publish(
                    &customer,
                    snapshot,
                    priority.unwrap_or(config.default_priority),
                )
                .await?;
            println!("{}", event.event_id);
            Ok(())
        }
        Command::Backfill { priority } => {
            let announcer = announcer(&config).await?;
            let n = scan::publish_ready(
                &announcer,
                &config.data_root,
                priority.unwrap_or(config.default_priority),
                scan::newest_first_priorities,
            )
            .await?;
            tracing::info!(published = n, "backfill done");
            println!("published {n}");
            Ok(())
        }
        Command::Watch { priority } => {
            let announcer = announcer(&config).await?;
            let stop = CancellationToken::new();
            let signal_stop = stop.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                if let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                    tracing::info!("stopping");
                }
                signal_stop.cancel();
            });
            watch::run(
                &announcer,
                &config.data_root,
                Duration::from_secs(config.scan_interval),
                priority.unwrap_or(config.default_priority),
                stop,
            )
            .await
        }
    }
}

async fn dlq_command(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let connection = common::broker::connect(&config.amqp_url, "snapswitch-producer-dlq").await?;
    let topology = Topology::from_config(config);
    common::broker::declare(&connection.create_channel().await?, &topology).await?;
    match command {
        DlqCommand::List { json } => {
            let parked = dlq::list(&connection, &topology).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&parked)?);
            } else if parked.is_empty() {
                println!("the parking queue {} is empty", topology.dead_queue);
            } else {
                for p in &parked {
                    println!(
                        "{}  {}/{}  reason={} attempts={} failed_at={}\n    {}",
                        p.event_id.as_deref().unwrap_or("-"),
                        p.customer.as_deref().unwrap_or("-"),
                        p.snapshot_id
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        p.reason.as_deref().unwrap_or("-"),
                        p.attempts
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "-".into()),
                        p.failed_at.as_deref().unwrap_or("-"),
                        p.error.as_deref().or(p.body.as_deref()).unwrap_or(""),
                    );
                }
            }
        }
        DlqCommand::Replay { id, customer, all } => {
            let selection = match (id, customer, all) {
                (Some(id), _, _) => dlq::Selection::Id(id),
                (_, Some(c), _) => dlq::Selection::Customer(c),
                (_, _, true) => dlq::Selection::All,
                _ => anyhow::bail!("say which events to replay: --id ID, --customer C or --all"),
            };
            let n = dlq::replay(&connection, &topology, &selection).await?;
            println!("replayed {n}");
        }
        DlqCommand::Purge { yes } => {
            let depth = dlq::depth(&connection, &topology).await?;
            if !yes {
                use std::io::{BufRead, IsTerminal, Write};
                if !std::io::stdin().is_terminal() {
                    anyhow::bail!(
                        "refusing to purge {depth} parked events without confirmation: pass --yes"
                    );
                }
                print!(
                    "Delete {depth} parked events from {}? [y/N] ",
                    topology.dead_queue
                );
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    println!("nothing purged");
                    return Ok(());
                }
            }
            let n = dlq::purge(&connection, &topology).await?;
            println!("purged {n}");
        }
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

async fn announcer(config: &Config) -> anyhow::Result<Announcer> {
    if !config.data_root.is_dir() {
        anyhow::bail!(
            "data_root {} is not a readable directory",
            config.data_root.display()
        );
    }
    let redis = common::state::connect(&config.redis_url).await?;
    let state = FleetState::new(redis, Keys::new(&config.namespace));
    state.ping().await.context("Redis")?;
    let connection = common::broker::connect(&config.amqp_url, "snapswitch-producer").await?;
    let topology = Topology::from_config(config);
    common::broker::declare(&connection.create_channel().await?, &topology).await?;
    let publisher = common::broker::Publisher::new(&connection).await?;
    Ok(Announcer {
        _connection: connection,
        publisher,
        topology,
        state,
    })
}

fn generate(
    config: &Config,
    customers: &[String],
    snapshots: u64,
    rows: usize,
    format: SampleFormat,
    start_id: Option<u64>,
    pause_ms: u64,
) -> anyhow::Result<()> {
    let start =
        start_id.unwrap_or_else(|| u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0));
    let customers: Vec<Customer> = customers
        .iter()
        .map(|c| Customer::parse(c))
        .collect::<Result<_, _>>()?;
    for n in 0..snapshots {
        for (i, customer) in customers.iter().enumerate() {
            let id = SnapshotId::new(start + n * 60)?;
            let dir = sample::snapshot_dir(&config.data_root, customer.as_str(), id.get());
            let spec = SampleSpec::with_rows(rows, format, id.get() ^ (i as u64) << 32);
            sample::write_snapshot(&dir, &spec)
                .with_context(|| format!("writing {}", dir.display()))?;
            println!(
                "{} nodes={} relationships={}",
                dir.display(),
                spec.node_count(),
                spec.relationship_count()
            );
        }
        if pause_ms > 0 && n + 1 < snapshots {
            std::thread::sleep(Duration::from_millis(pause_ms));
        }
    }
    Ok(())
}

async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let redis = common::state::connect(&config.redis_url).await?;
    let state = FleetState::new(redis, Keys::new(&config.namespace));
    let counters = state.counters().await?;
    let mut customers = serde_json::Map::new();
    for name in state.customers().await? {
        let Ok(customer) = Customer::parse(&name) else {
            continue;
        };
        let r = state.customer(&customer).await?;
        customers.insert(
            name,
            serde_json::json!({
                "live_snapshot": r.live_snapshot,
                "previous_snapshot": r.previous_snapshot,
                "last_load_seconds": r.last_load_seconds,
                "last_loaded_at": r.last_loaded_at,
                "last_error": r.last_error.filter(|e| !e.is_empty()),
            }),
        );
    }
    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    let report = serde_json::json!({
        "tasks_discovered": get("discovered"),
        "tasks_published": get("published"),
        "tasks_completed": get("completed"),
        "tasks_failed": get("failed"),
        "tasks_retried": get("retried"),
        "tasks_parked": get("parked"),
        "tasks_superseded": get("superseded"),
        "customers": customers,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for k in [
            "discovered",
            "published",
            "completed",
            "failed",
            "retried",
            "parked",
            "superseded",
        ] {
            println!("{k:>12}: {}", get(k));
        }
        for (name, c) in &customers {
            println!(
                "{name}: live {} (previous {})",
                c["live_snapshot"], c["previous_snapshot"]
            );
        }
    }
    Ok(())
}
