//! `producer`: finds ready snapshots and publishes snapshot events to RabbitMQ.
//!
//! - `publish`: one event, what an ETL job calls after writing `_SUCCESS`;
//! - `watch`: file-system notifications plus a periodic rescan, forever;
//! - `backfill`: every ready, unpublished snapshot once, then exit;
//! - `generate`: write sample snapshots (demo, tests, benchmarks);
//! - `status`: the fleet's counters and each customer's live snapshot;
//! - `console`: the operator console in the browser (see `console/`).

mod approve;
mod console;
mod dlq;
mod ops;
mod publish;
mod rollback;
mod scan;
mod session;
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
        } => generate(
            &config, &customers, snapshots, rows, format, start_id, pause_ms,
        ),
        Command::Status { json } => status(&config, json).await,
        Command::Console { listen, token_file } => {
            let auth = match token_file.as_ref().or(config.console_token_file.as_ref()) {
                Some(path) => console::auth::Auth::from_file(path)?,
                None => {
                    tracing::warn!("no operator token configured (console_token_file): the console is read-only");
                    console::auth::Auth::read_only()
                }
            };
            let console = console::Console::new(config.clone(), auth).await?;
            let stop = CancellationToken::new();
            let signal_stop = stop.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                if let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                signal_stop.cancel();
            });
            console::serve(console, &listen, stop).await
        }
        Command::History {
            customer,
            limit,
            json,
        } => history(&config, customer, limit, json).await,
        Command::Dlq { command } => dlq_command(&config, command).await,
        Command::Rollback { customer, to } => rollback::rollback(&config, &customer, to).await,
        Command::Approve {
            customer,
            snapshot_id,
        } => {
            let d = approve::approve(&config, &customer, snapshot_id).await?;
            println!(
                "{}: alias moved to {} (was {}); it was held for: {}",
                d.customer,
                d.snapshot_id,
                d.live_before.map_or("-".into(), |l| l.to_string()),
                d.reasons.join("; ")
            );
            Ok(())
        }
        Command::Reject {
            customer,
            snapshot_id,
        } => {
            let d = approve::reject(&config, &customer, snapshot_id).await?;
            println!(
                "{}: held snapshot {} rejected, database {} dropped; the alias stays on {}",
                d.customer,
                d.snapshot_id,
                d.database,
                d.live_before.map_or("-".into(), |l| l.to_string())
            );
            Ok(())
        }
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
            let redis = common::state::connect_config(&config).await?;
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
            // A progress bar for people; plain output for scripts and logs.
            let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} snapshots checked ({elapsed})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar
            });
            // The bar owns the terminal while it runs: the per-snapshot
            // lines show only at debug (RUST_LOG=debug) meanwhile.
            let quiet = bar
                .as_ref()
                .map(|_| common::telemetry::ProgressGuard::start());
            let n = scan::publish_ready(
                &announcer,
                &config.data_root,
                priority.unwrap_or(config.default_priority),
                bar.as_ref(),
            )
            .await;
            if let Some(bar) = bar {
                bar.finish();
            }
            drop(quiet);
            let n = n?;
            tracing::info!(published = n, "backfill done");
            println!("published {n}");
            Ok(())
        }
        Command::Watch { priority } => {
            let metrics = std::sync::Arc::new(common::metrics::Metrics::new(
                common::metrics::Role::Producer,
            ));
            let announcer = announcer_with(&config, metrics.clone()).await?;
            let stop = CancellationToken::new();
            let probe = std::sync::Arc::new(ops::ProducerProbe {
                reporter: common::status::Reporter {
                    state: announcer.state.clone(),
                    connection: announcer.connection.clone(),
                    topology: announcer.topology.clone(),
                    metrics,
                    scan_interval: config.scan_interval,
                    data_path: config.data_root.display().to_string(),
                    status_file: config.status_file.clone(),
                    started: std::time::Instant::now(),
                    draining: std::sync::atomic::AtomicBool::new(false),
                    targets: common::status::TargetCap::of_config(&config),
                },
            });
            common::http::serve(&config.http_listen, probe.clone(), stop.clone()).await?;
            tokio::spawn(probe.clone().run(stop.clone()));
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
    let connection = common::broker::connect_config(config, "snapswitch-producer-dlq").await?;
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
                // Bodies and headers come from outside: escape control
                // characters, so no terminal escape sequence reaches the screen.
                let shown = |v: Option<&str>| printable(v.unwrap_or("-"));
                for p in &parked {
                    println!(
                        "{}  {}/{}  reason={} attempts={} failed_at={}\n    {}",
                        shown(p.event_id.as_deref()),
                        shown(p.customer.as_deref()),
                        p.snapshot_id
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        shown(p.reason.as_deref()),
                        p.attempts
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "-".into()),
                        shown(p.failed_at.as_deref()),
                        printable(p.error.as_deref().or(p.body.as_deref()).unwrap_or("")),
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

/// `text` with every control character (ESC, CR, BEL, line breaks …)
/// written as an escape (`\u{1b}`), for output to a terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

async fn announcer(config: &Config) -> anyhow::Result<Announcer> {
    announcer_with(
        config,
        std::sync::Arc::new(common::metrics::Metrics::new(
            common::metrics::Role::Producer,
        )),
    )
    .await
}

async fn announcer_with(
    config: &Config,
    metrics: std::sync::Arc<common::metrics::Metrics>,
) -> anyhow::Result<Announcer> {
    config.check_data_root()?;
    let state = common::state::fleet(config).await?;
    let connection = common::broker::connect_config(config, "snapswitch-producer").await?;
    let topology = Topology::from_config(config);
    common::broker::declare(&connection.create_channel().await?, &topology).await?;
    let publisher = common::broker::Publisher::new(&connection).await?;
    Ok(Announcer::new(
        std::sync::Arc::new(connection),
        publisher,
        common::broker::BrokerAddress {
            options: config.into(),
            name: "snapswitch-producer".into(),
        },
        topology,
        state,
        metrics,
    ))
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
    let redis = common::state::connect_config(config).await?;
    let state = FleetState::new(redis, Keys::new(&config.namespace));
    let topology = Topology::from_config(config);
    // RabbitMQ unreachable: the rest is still shown, then the command fails.
    let mut broker_error = None;
    let (queue_size, parked_queue_size) =
        match common::broker::connect_config(config, "snapswitch-producer-status").await {
            Ok(con) => {
                let ch = con.create_channel().await?;
                let work = common::broker::queue_depth(&ch, &topology.work_queue)
                    .await
                    .ok();
                let dead = common::broker::queue_depth(&ch, &topology.dead_queue)
                    .await
                    .ok();
                let _ = con.close(200, "done".into()).await;
                (work, dead)
            }
            Err(e) => {
                broker_error = Some(e);
                (None, None)
            }
        };
    let local = common::status::Local {
        uptime: None,
        scan_interval: config.scan_interval,
        data_path: config.data_root.display().to_string(),
        draining: false,
        queue_size,
        parked_queue_size,
        targets: common::status::TargetCap::of_config(config),
    };
    let report = common::status::fleet_status(&state, &local).await?;
    let result = match broker_error {
        Some(e) => Err(anyhow::Error::new(e).context("queue sizes unknown")),
        None => Ok(()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return result;
    }
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    println!(
        "status: {}  workers: {}  queue: {}  parked: {}  success rate: {}% last hour, {}% last 24 h, {}% all time",
        report["status"].as_str().unwrap_or("-"),
        show(&report["workers"]),
        show(&report["queue_size"]),
        show(&report["parked_queue_size"]),
        show(&report["success_rate_1h"]),
        show(&report["success_rate_24h"]),
        show(&report["success_rate"])
    );
    for (name, label) in [("1h", "last hour"), ("24h", "last 24 h")] {
        let w = &report["window"][name];
        println!(
            "{label:>12}: {} completed, {} parked",
            show(&w["completed"]),
            show(&w["parked"])
        );
    }
    for k in [
        "discovered",
        "published",
        "completed",
        "failed",
        "retried",
        "parked",
        "superseded",
        "cancelled",
        "held",
    ] {
        println!("{k:>12}: {}", show(&report[format!("tasks_{k}")]));
    }
    println!("last activity: {}", show(&report["last_activity"]));
    if let Some(targets) = report["targets"].as_object() {
        for (name, t) in targets {
            println!(
                "target {name}: {} loads running (max_concurrent_loads {})",
                show(&t["loads"]),
                show(&t["max_concurrent_loads"])
            );
        }
    }
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| show(v));
    if let Some(by) = report["paused"]["fleet"].as_str() {
        println!("the fleet is PAUSED (by {by}): workers delay every event");
    }
    if let Some(paused) = report["paused"]["customers"].as_object() {
        for (name, by) in paused {
            println!("customer {name} is PAUSED (by {})", text(by));
        }
    }
    for p in report["loads_in_progress"].as_array().into_iter().flatten() {
        println!(
            "loading {}/{} on {}: {} phase, {} nodes and {} relationships written, {} rows/s",
            text(&p["customer"]),
            show(&p["snapshot_id"]),
            text(&p["worker"]),
            text(&p["phase"]),
            show(&p["nodes"]),
            show(&p["relationships"]),
            show(&p["rows_per_second"])
        );
    }
    if let Some(customers) = report["customers"].as_object() {
        for (name, c) in customers {
            println!(
                "{name}: live {} (previous {}), last load {} s{}",
                show(&c["live_snapshot"]),
                show(&c["previous_snapshot"]),
                show(&c["last_load_seconds"]),
                c["last_error"]
                    .as_str()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
            if let Some(changed) = c["last_changed"].as_str() {
                println!("  last load changed: {changed}");
            }
            for h in c["held"].as_array().into_iter().flatten() {
                let reasons: Vec<String> = h["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        format!(
                            "{}: {}",
                            r["code"].as_str().unwrap_or("-"),
                            r["message"].as_str().unwrap_or("-")
                        )
                    })
                    .collect();
                let changed: Vec<&str> = h["changed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str())
                    .collect();
                println!(
                    "  held {}: {} (changed: {}); producer approve|reject --customer {name} --snapshot-id {}",
                    show(&h["snapshot_id"]),
                    reasons.join("; "),
                    if changed.is_empty() { "nothing".into() } else { changed.join("; ") },
                    show(&h["snapshot_id"]),
                );
            }
        }
    }
    result
}

async fn history(
    config: &Config,
    customer: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(c) = &customer {
        Customer::parse(c)?;
    }
    let redis = common::state::connect_config(config).await?;
    let state = FleetState::new(redis, Keys::new(&config.namespace));
    let entries: Vec<_> = state
        .audit_entries(common::state::AUDIT_MAXLEN)
        .await?
        .into_iter()
        .filter(|e| {
            customer
                .as_deref()
                .is_none_or(|c| e.get("customer") == Some(c))
        })
        .collect();
    let skip = entries.len().saturating_sub(limit);
    let entries = &entries[skip..];
    if json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut m: serde_json::Map<String, serde_json::Value> = e
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                m.insert("id".into(), e.id.clone().into());
                serde_json::Value::Object(m)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for e in entries {
        let at = e
            .get("at_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let mut rest: Vec<String> = e
            .fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "event" | "at_ms" | "customer" | "snapshot_id"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rest.sort();
        println!(
            "{at}  {}/{}  {}  {}",
            e.get("customer").unwrap_or("-"),
            e.get("snapshot_id").unwrap_or("-"),
            e.get("event").unwrap_or("-"),
            rest.join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_control_sequences() {
        assert_eq!(
            printable("a\u{1b}[2J\u{1b}]0;pwned\u{7}b\r\nc"),
            "a\\u{1b}[2J\\u{1b}]0;pwned\\u{7}b\\r\\nc"
        );
        assert_eq!(printable("plain – ünïcode"), "plain – ünïcode");
        assert!(!printable("\u{9b}31m").contains('\u{9b}'));
    }
}
