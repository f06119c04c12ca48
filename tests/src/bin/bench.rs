//! `bench`: the performance figures of docs/performance.md, measured on the
//! real services, printed as one JSON object on stdout (progress on stderr).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p snapswitch-tests --bin bench -- [--runs 3] [--quick]
//! ```
//!
//! Every figure is the median of `--runs` runs. Sections:
//! - `load`: the worker's load path (`common::load::load_snapshot`, in
//!   process) against a minimal reference loader (a sequential loop of UNWIND
//!   batches of the same size, below) on the same FalkorDB and the same files;
//! - `rss`: peak RSS (`VmHWM`) of a real `worker` process loading a small and a
//!   large snapshot;
//! - `detection`: `_SUCCESS` written → event in the work queue, `producer watch`;
//! - `publish`: `producer backfill` of N ready snapshots, confirms on;
//! - `e2e`: one tiny snapshot published → loaded, switched, cleaned, recorded;
//! - `pipeline`: snapshots/s through a real worker, `max_concurrent_loads` 1 vs 2;
//! - `bulk`: `load_method` bulk vs cypher vs falkordb-bulk-insert on one
//!   generated CSV snapshot, interleaved, with a reader of another live graph
//!   (`bench/bulk.rs`); run alone with `--only bulk`.
//!
//! One file per section under `bench/`; this file holds the command line,
//! the sections' order and the statistics they share.

use std::time::Instant;

use clap::Parser;
use serde_json::{json, Value};

#[path = "bench/bulk.rs"]
mod bulk;
#[path = "bench/flow.rs"]
mod flow;
#[path = "bench/load.rs"]
mod load;
#[path = "bench/reference.rs"]
mod reference;
#[path = "bench/rss.rs"]
mod rss;
#[path = "bench/synthetic.rs"]
mod synthetic;

use flow::{bench_detection, bench_e2e, bench_pipeline, bench_publish};
use load::bench_load;
use reference::{ref_rows, reference_load};
use rss::{bench_rss, publish_event, status_kib, wait_counter};
use synthetic::write_synthetic;

#[derive(Parser, Debug, Clone)]
#[command(about = "snapswitch benchmark: prints one JSON object")]
struct Args {
    /// Runs per figure (the JSON reports medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Small sizes everywhere (a smoke run; the figures are not comparable).
    #[arg(long)]
    quick: bool,
    /// Load comparison: nodes and relationships.
    #[arg(long, default_value_t = 200_000)]
    load_nodes: usize,
    #[arg(long, default_value_t = 100_000)]
    load_rels: usize,
    /// Rows per UNWIND batch (both loaders).
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// Write batches in flight in the worker path (K).
    #[arg(long, default_value_t = common::config::Config::default().load_concurrency)]
    concurrency: usize,
    /// Also measure the worker path with these K values (comma separated).
    #[arg(long, value_delimiter = ',')]
    sweep_concurrency: Vec<usize>,
    /// Also measure the worker path with these batch sizes (comma separated).
    #[arg(long, value_delimiter = ',')]
    sweep_batch_size: Vec<usize>,
    /// RSS runs: total rows of the small and the large snapshot.
    #[arg(long, default_value_t = 500_000)]
    rss_small: usize,
    #[arg(long, default_value_t = 5_000_000)]
    rss_large: usize,
    /// Share of relationships in the RSS snapshots (percent): mostly nodes,
    /// since relationships load ~10x slower and the bench must stay short.
    #[arg(long, default_value_t = 2)]
    rss_rel_percent: usize,
    #[arg(long, default_value_t = 100)]
    detect_snapshots: usize,
    #[arg(long, default_value_t = 10_000)]
    publish_events: usize,
    #[arg(long, default_value_t = 20)]
    e2e_snapshots: usize,
    /// Pipeline throughput: snapshots (one customer each) and rows per snapshot.
    #[arg(long, default_value_t = 8)]
    pipeline_snapshots: usize,
    #[arg(long, default_value_t = 20_000)]
    pipeline_rows: usize,
    /// Only these sections (comma separated: load, rss, detection, publish,
    /// e2e, pipeline, bulk). `bulk` runs only when named.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Bulk section: `producer generate --rows` of its CSV snapshot.
    #[arg(long, default_value_t = 4_000_000)]
    bulk_rows: usize,
    /// Bulk section: the stall budget of the bulk path.
    #[arg(long, default_value_t = common::config::Config::default().bulk_max_stall_ms)]
    bulk_max_stall_ms: u64,
    /// Internal (the bulk section's child process): write one snapshot and
    /// exit. `csv DIR ROWS` (as `producer generate`), or `int|string DIR
    /// NODES RELS` (the synthetic Parquet snapshot with that id type).
    #[arg(long, hide = true, num_args = 3..=4)]
    write_snapshot: Vec<String>,
    /// Internal (the bulk section's child process): `URL DB DIR METHOD`,
    /// load the snapshot in DIR into a new graph DB through the worker's
    /// load path, print what it measured as JSON and exit: each load's peak
    /// RSS is that of a fresh process, as a worker's would be.
    #[arg(long, hide = true, num_args = 4)]
    load_once: Vec<String>,
}

const BASE_ID: u64 = 1_767_741_427;

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.write_snapshot.is_empty() {
        return bulk::write_snapshot(&args.write_snapshot);
    }
    if !args.load_once.is_empty() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let out = rt.block_on(bulk::load_once(&args))?;
        println!("{out}");
        return Ok(());
    }
    if args.quick {
        args.load_nodes = 20_000;
        args.load_rels = 10_000;
        args.rss_small = 50_000;
        args.rss_large = 500_000;
        args.detect_snapshots = 20;
        args.publish_events = 1_000;
        args.e2e_snapshots = 5;
        args.pipeline_snapshots = 4;
        args.pipeline_rows = 2_000;
        args.bulk_rows = 40_000;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let out = rt.block_on(run(&args))?;
    let mut out = out;
    out["bench_seconds"] = json!(round(started.elapsed().as_secs_f64(), 1));
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn wanted(args: &Args, section: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|s| s == section)
}

async fn run(args: &Args) -> anyhow::Result<Value> {
    let mut out = json!({
        "runs": args.runs,
        "machine": machine(),
    });
    if wanted(args, "load") {
        out["load"] = bench_load(args).await?;
    }
    if wanted(args, "rss") {
        out["rss"] = bench_rss(args).await?;
    }
    if wanted(args, "detection") {
        out["detection"] = bench_detection(args).await?;
    }
    if wanted(args, "publish") {
        out["publish"] = bench_publish(args).await?;
    }
    if wanted(args, "e2e") {
        out["e2e"] = bench_e2e(args).await?;
    }
    if wanted(args, "pipeline") {
        out["pipeline"] = bench_pipeline(args).await?;
    }
    // Long (three loads of 4 M rows per run): only when asked for.
    if args.only.iter().any(|s| s == "bulk") {
        out["bulk"] = bulk::bench_bulk(args).await?;
    }
    Ok(out)
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    json!({ "cpus": cpus, "cpu": model, "memory_gib": round(mem_kib as f64 / 1024.0 / 1024.0, 1) })
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}
