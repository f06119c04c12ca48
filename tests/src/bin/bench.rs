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

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use clap::Parser;
use common::config::ServiceUrl;
use common::graph::falkordb::FalkorStore;
use common::graph::GraphStore;
use common::load::{load_snapshot, LoadOptions};
use futures_util::StreamExt;
use harness::{FalkorServer, TestEnv};
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[path = "bench/bulk.rs"]
mod bulk;

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
}

const BASE_ID: u64 = 1_767_741_427;

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
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

// ---------------------------------------------------------------------------
// Synthetic snapshots: one ID space `Node` (integer ids), a few property
// types, relationships `LINKS` between random nodes. Parquet.

fn node_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id:ID(Node)", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("age:int", DataType::Int64, true),
        Field::new("score:double", DataType::Float64, true),
        Field::new("active:boolean", DataType::Boolean, true),
    ]))
}

fn rel_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(":START_ID(Node)", DataType::Int64, false),
        Field::new(":END_ID(Node)", DataType::Int64, false),
        Field::new(":TYPE", DataType::Utf8, false),
        Field::new("weight:double", DataType::Float64, true),
    ]))
}

/// Writes `nodes` nodes and `rels` relationships into `dir`, `_SUCCESS` last.
fn write_synthetic(dir: &Path, nodes: usize, rels: usize, seed: u64) -> anyhow::Result<()> {
    const CHUNK: usize = 50_000;
    std::fs::create_dir_all(dir.join("nodes"))?;
    std::fs::create_dir_all(dir.join("relationships"))?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let schema = node_schema();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        File::create(dir.join("nodes/nodes.parquet"))?,
        schema.clone(),
        None,
    )?;
    for start in (0..nodes).step_by(CHUNK) {
        let len = CHUNK.min(nodes - start);
        let ids: Vec<i64> = (start..start + len).map(|i| i as i64).collect();
        let names: Vec<String> = (start..start + len)
            .map(|i| format!("node {i} O'Neil"))
            .collect();
        let ages: Vec<Option<i64>> = (0..len)
            .map(|_| (rng.u8(..10) > 0).then(|| rng.i64(18..90)))
            .collect();
        let scores: Vec<f64> = (0..len).map(|_| rng.f64() * 1000.0).collect();
        let active: Vec<bool> = (0..len).map(|_| rng.bool()).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)) as ArrayRef,
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(ages)),
                Arc::new(Float64Array::from(scores)),
                Arc::new(BooleanArray::from(active)),
            ],
        )?;
        w.write(&batch)?;
    }
    w.close()?;
    let schema = rel_schema();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        File::create(dir.join("relationships/links.parquet"))?,
        schema.clone(),
        None,
    )?;
    let n = nodes.max(1) as i64;
    for start in (0..rels).step_by(CHUNK) {
        let len = CHUNK.min(rels - start);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(
                    (0..len).map(|_| rng.i64(0..n)).collect::<Vec<_>>(),
                )) as ArrayRef,
                Arc::new(Int64Array::from(
                    (0..len).map(|_| rng.i64(0..n)).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(vec!["LINKS"; len])),
                Arc::new(Float64Array::from(
                    (0..len).map(|_| rng.f64()).collect::<Vec<_>>(),
                )),
            ],
        )?;
        w.write(&batch)?;
    }
    w.close()?;
    std::fs::write(dir.join("_SUCCESS"), b"")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The reference loader: as plain as it gets. One connection; for each file,
// read a batch, turn it into `CYPHER rows=[…] UNWIND $rows AS r …`, send it,
// wait for the reply, next batch.

fn ref_literal(out: &mut String, column: &ArrayRef, row: usize) {
    if column.is_null(row) {
        out.push_str("null");
        return;
    }
    match column.data_type() {
        DataType::Int64 => {
            let _ = write!(out, "{}", column.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float64 => {
            let _ = write!(out, "{:?}", column.as_primitive::<Float64Type>().value(row));
        }
        DataType::Boolean => out.push_str(if column.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        _ => {
            let s = column.as_string::<i32>().value(row);
            out.push('\'');
            out.push_str(&s.replace('\\', "\\\\").replace('\'', "\\'"));
            out.push('\'');
        }
    }
}

fn ref_rows(batch: &RecordBatch, columns: &[usize]) -> String {
    let mut q = String::from("CYPHER rows=[");
    for row in 0..batch.num_rows() {
        if row > 0 {
            q.push(',');
        }
        q.push('[');
        for (j, &c) in columns.iter().enumerate() {
            if j > 0 {
                q.push(',');
            }
            ref_literal(&mut q, batch.column(c), row);
        }
        q.push(']');
    }
    q.push_str("] ");
    q
}

async fn reference_load(
    url: &str,
    graph: &str,
    dir: &Path,
    batch_size: usize,
) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(600)));
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let query = |q: String| {
        let mut con = con.clone();
        let graph = graph.to_owned();
        async move {
            let _: redis::Value = redis::cmd("GRAPH.QUERY")
                .arg(graph)
                .arg(q)
                .query_async(&mut con)
                .await?;
            Ok::<_, redis::RedisError>(())
        }
    };
    query("CREATE INDEX FOR (n:Node) ON (n.id)".into()).await?;
    let read =
        |path: &Path| -> anyhow::Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
            Ok(
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    File::open(path)?,
                )?
                .with_batch_size(batch_size)
                .build()?,
            )
        };
    for batch in read(&dir.join("nodes/nodes.parquet"))? {
        let mut q = ref_rows(&batch?, &[0, 1, 2, 3, 4]);
        q.push_str("UNWIND $rows AS r CREATE (:Node {id: r[0], name: r[1], age: r[2], score: r[3], active: r[4]})");
        query(q).await?;
    }
    for batch in read(&dir.join("relationships/links.parquet"))? {
        let mut q = ref_rows(&batch?, &[0, 1, 3]);
        q.push_str("UNWIND $rows AS r MATCH (a:Node {id: r[0]}) MATCH (b:Node {id: r[1]}) CREATE (a)-[:LINKS {weight: r[2]}]->(b)");
        query(q).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------

async fn worker_path_once(
    server: &FalkorServer,
    dir: &Path,
    graph: &str,
    batch_size: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, u64)> {
    let store =
        FalkorStore::connect_with_writers(&ServiceUrl::new(server.url()), concurrency).await?;
    store.drop_database(graph).await?;
    let t = Instant::now();
    store.create_database(graph).await?;
    let report = load_snapshot(
        &store,
        graph,
        dir,
        LoadOptions::new(batch_size).with_concurrency(concurrency),
        &CancellationToken::new(),
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    store.drop_database(graph).await?;
    Ok((secs, report.nodes + report.relationships))
}

async fn reference_once(
    server: &FalkorServer,
    dir: &Path,
    graph: &str,
    batch_size: usize,
) -> anyhow::Result<f64> {
    let store = FalkorStore::connect(&ServiceUrl::new(server.url())).await?;
    store.drop_database(graph).await?;
    let t = Instant::now();
    reference_load(&server.url(), graph, dir, batch_size).await?;
    let secs = t.elapsed().as_secs_f64();
    store.drop_database(graph).await?;
    Ok(secs)
}

async fn bench_load(args: &Args) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("snap");
    progress(&format!(
        "load: generating {} nodes, {} relationships (Parquet)",
        args.load_nodes, args.load_rels
    ));
    write_synthetic(&dir, args.load_nodes, args.load_rels, 7)?;
    let rows = (args.load_nodes + args.load_rels) as f64;
    let server = FalkorServer::start()?;
    let mut worker = Vec::new();
    let mut reference = Vec::new();
    // Interleaved, so that a noisy neighbour hurts both alike.
    for run in 0..args.runs {
        let (secs, written) = worker_path_once(
            &server,
            &dir,
            "bench-load",
            args.batch_size,
            args.concurrency,
        )
        .await?;
        if written as f64 != rows {
            bail!("worker path wrote {written} of {rows} rows");
        }
        let r = reference_once(&server, &dir, "bench-ref", args.batch_size).await?;
        progress(&format!(
            "load run {run}: worker path {secs:.2} s, reference {r:.2} s"
        ));
        worker.push(rows / secs);
        reference.push(rows / r);
    }
    let load = median(&mut worker);
    let reference_rate = median(&mut reference);
    let mut out = json!({
        "nodes": args.load_nodes,
        "relationships": args.load_rels,
        "format": "parquet",
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "load_rows_per_s": load.round(),
        "reference_rows_per_s": reference_rate.round(),
        "load_ratio": round(load / reference_rate, 3),
    });
    // Where the time goes: nodes alone and relationships alone.
    let mut sweeps = serde_json::Map::new();
    for &k in &args.sweep_concurrency {
        let mut rates = Vec::new();
        for _ in 0..args.runs {
            let (secs, _) =
                worker_path_once(&server, &dir, "bench-load", args.batch_size, k).await?;
            rates.push(rows / secs);
        }
        let r = median(&mut rates);
        progress(&format!("load sweep K={k}: {r:.0} rows/s"));
        sweeps.insert(format!("concurrency_{k}_rows_per_s"), json!(r.round()));
    }
    for &b in &args.sweep_batch_size {
        let mut rates = Vec::new();
        for _ in 0..args.runs {
            let (secs, _) =
                worker_path_once(&server, &dir, "bench-load", b, args.concurrency).await?;
            rates.push(rows / secs);
        }
        let r = median(&mut rates);
        progress(&format!("load sweep batch_size={b}: {r:.0} rows/s"));
        sweeps.insert(format!("batch_size_{b}_rows_per_s"), json!(r.round()));
    }
    if !sweeps.is_empty() {
        out["sweep"] = Value::Object(sweeps);
    }
    let mut phases = phases(args, &server, tmp.path()).await?;
    // Relationships alone, derived: the whole load's time minus the nodes' time.
    if let Some(nodes_rate) = phases["nodes_only_rows_per_s"].as_f64() {
        let rel_secs = rows / load - args.load_nodes as f64 / nodes_rate;
        if rel_secs > 0.0 && args.load_rels > 0 {
            phases["relationships_rows_per_s_derived"] =
                json!((args.load_rels as f64 / rel_secs).round());
        }
    }
    out["phases"] = phases;
    Ok(out)
}

/// Nodes-only and relationships-share rates of the worker path, plus the
/// time spent reading and converting alone (no database).
async fn phases(args: &Args, server: &FalkorServer, tmp: &Path) -> anyhow::Result<Value> {
    let dir = tmp.join("nodes-only");
    write_synthetic(&dir, args.load_nodes, 0, 8)?;
    let mut nodes = Vec::new();
    for _ in 0..args.runs {
        let (secs, _) = worker_path_once(
            server,
            &dir,
            "bench-nodes",
            args.batch_size,
            args.concurrency,
        )
        .await?;
        nodes.push(args.load_nodes as f64 / secs);
    }
    // Reading + conversion to query text, no database: the client-side cost.
    let full = tmp.join("snap");
    let mut client = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        let mut bytes = 0usize;
        for (file, cols) in [
            ("nodes/nodes.parquet", vec![0, 1, 2, 3, 4]),
            ("relationships/links.parquet", vec![0, 1, 3]),
        ] {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(full.join(file))?,
            )?
            .with_batch_size(args.batch_size)
            .build()?;
            for batch in reader {
                bytes += ref_rows(&batch?, &cols).len();
            }
        }
        client.push((args.load_nodes + args.load_rels) as f64 / t.elapsed().as_secs_f64());
        std::hint::black_box(bytes);
    }
    let nodes_rate = median(&mut nodes);
    Ok(json!({
        "nodes_only_rows_per_s": nodes_rate.round(),
        "read_and_convert_rows_per_s": median(&mut client).round(),
    }))
}

// ---------------------------------------------------------------------------

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

async fn publish_event(env: &TestEnv, customer: &str, id: u64) -> anyhow::Result<()> {
    let event = common::event::SnapshotEvent::new(
        common::ident::Customer::parse(customer)?,
        common::ident::SnapshotId::new(id)?,
        5,
    )?;
    env.publish_raw(&event.encode(), 5).await
}

/// Waits until fleet counter `name` reaches `n`, polling every `every` on one
/// Redis connection (a new connection per poll would load the machine).
async fn wait_counter(
    env: &TestEnv,
    fleet: &common::state::FleetState,
    name: &str,
    n: i64,
    every: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let counters = fleet.counters().await?;
        let get = |k: &str| counters.get(k).copied().unwrap_or(0);
        if get(name) >= n {
            return Ok(());
        }
        if get("failed") > 0 || get("parked") > 0 {
            bail!("a load failed:\n{}", env.logs());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {name} = {n}\n{}", env.logs());
        }
        tokio::time::sleep(every).await;
    }
}

async fn bench_rss(args: &Args) -> anyhow::Result<Value> {
    let mut env = TestEnv::new("bench-rss", "keep_databases = 1\nlock_ttl = 60")?;
    let fleet = env.fleet().await?;
    let mut result = serde_json::Map::new();
    let mut peaks = Vec::new();
    for (label, rows) in [("small", args.rss_small), ("large", args.rss_large)] {
        let rels = rows * args.rss_rel_percent / 100;
        let nodes = rows - rels;
        let mut hwm = Vec::new();
        let mut idle = Vec::new();
        let mut rates = Vec::new();
        for run in 0..args.runs {
            let id = BASE_ID + (peaks.len() * args.runs + run) as u64 * 60;
            let dir = env.data_root().join("rss").join(id.to_string());
            if run == 0 {
                progress(&format!(
                    "rss: generating {nodes} nodes, {rels} relationships"
                ));
                write_synthetic(&dir, nodes, rels, 9)?;
            } else {
                // The previous run's files, under this run's snapshot id.
                let previous = env.data_root().join("rss").join((id - 60).to_string());
                std::fs::rename(&previous, &dir).or_else(|_| {
                    write_synthetic(&dir, nodes, rels, 9).map_err(std::io::Error::other)
                })?;
            }
            let worker = format!("worker-{label}-{run}");
            env.spawn_worker(&worker)?;
            env.http_addr(&worker).await?;
            let pid = env.pid(&worker).context("worker exited")?;
            idle.push(status_kib(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0);
            let before = env.counter("completed").await;
            let t = Instant::now();
            publish_event(&env, "rss", id).await?;
            wait_counter(
                &env,
                &fleet,
                "completed",
                before + 1,
                Duration::from_millis(100),
                Duration::from_secs(600),
            )
            .await?;
            let secs = t.elapsed().as_secs_f64();
            let peak = status_kib(pid, "VmHWM").context("worker exited before its RSS was read")?;
            if let Some(line) = env
                .log_of(&worker)
                .lines()
                .map(harness::strip_ansi)
                .find(|l| l.contains("snapshot loaded and verified"))
            {
                progress(&format!("rss {label} run {run}: worker: {line}"));
            }
            env.kill(&worker);
            progress(&format!(
                "rss {label} run {run}: peak {:.1} MiB, {:.0} rows/s",
                peak as f64 / 1024.0,
                rows as f64 / secs
            ));
            hwm.push(peak as f64 / 1024.0);
            rates.push(rows as f64 / secs);
        }
        let peak = median(&mut hwm);
        peaks.push(peak);
        result.insert(
            format!("{label}_rows"),
            json!({"rows": rows, "nodes": nodes, "relationships": rels}),
        );
        result.insert(format!("{label}_peak_rss_mib"), json!(round(peak, 1)));
        result.insert(
            format!("{label}_idle_rss_mib"),
            json!(round(median(&mut idle), 1)),
        );
        result.insert(
            format!("{label}_worker_rows_per_s"),
            json!(median(&mut rates).round()),
        );
    }
    result.insert("rss_ratio".into(), json!(round(peaks[1] / peaks[0], 3)));
    result.insert("format".into(), json!("parquet"));
    Ok(Value::Object(result))
}

// ---------------------------------------------------------------------------

/// A consumer on the work queue; yields (customer, snapshot id, received at).
async fn work_consumer(
    env: &TestEnv,
) -> anyhow::Result<(
    lapin::Connection,
    tokio::sync::mpsc::UnboundedReceiver<(String, u64, Instant)>,
)> {
    let (con, ch) = env.amqp().await?;
    let _ = common::broker::declare(
        &ch,
        &common::topology::Topology::new(&env.namespace, Vec::<Duration>::new()),
    )
    .await;
    let mut consumer = ch
        .basic_consume(
            ShortString::from(env.work_queue()),
            ShortString::from("bench"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let at = Instant::now();
            let _ = delivery.ack(BasicAckOptions::default()).await;
            if let Ok(v) = serde_json::from_slice::<Value>(&delivery.data) {
                let customer = v["customer"].as_str().unwrap_or_default().to_owned();
                let id = v["snapshot_id"].as_u64().unwrap_or(0);
                let _ = tx.send((customer, id, at));
            }
        }
    });
    Ok((con, rx))
}

async fn bench_detection(args: &Args) -> anyhow::Result<Value> {
    let mut p50s = Vec::new();
    let mut p95s = Vec::new();
    for run in 0..args.runs {
        // The scan interval is long: what is measured is the file watcher.
        let mut env = TestEnv::new("bench-detect", "scan_interval = 600")?;
        env.spawn("watch", "producer", &["watch"])?;
        env.http_addr("watch").await?;
        let (_con, mut rx) = work_consumer(&env).await?;
        let mut latencies = Vec::new();
        for i in 0..args.detect_snapshots {
            let id = BASE_ID + i as u64 * 60;
            let dir = env.data_root().join("detect").join(id.to_string());
            std::fs::create_dir_all(dir.join("nodes"))?;
            std::fs::write(dir.join("nodes/n.csv"), "id:ID(N)\n1\n")?;
            // Let the watcher see the new directories first, as it would
            // for an ETL job that takes longer than this to write its files.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t = Instant::now();
            std::fs::write(dir.join("_SUCCESS"), b"")?;
            let at = loop {
                let (customer, got, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await
                    .context("no event within 30 s")?
                    .context("consumer ended")?;
                if customer == "detect" && got == id {
                    break at;
                }
            };
            latencies.push(at.duration_since(t).as_secs_f64() * 1000.0);
        }
        let (p50, p95) = (
            percentile(&mut latencies, 50.0),
            percentile(&mut latencies, 95.0),
        );
        progress(&format!(
            "detection run {run}: p50 {p50:.1} ms, p95 {p95:.1} ms"
        ));
        p50s.push(p50);
        p95s.push(p95);
    }
    Ok(json!({
        "snapshots_per_run": args.detect_snapshots,
        "p50_ms": round(median(&mut p50s), 1),
        "p95_ms": round(median(&mut p95s), 1),
    }))
}

/// `HH:MM:SS.ffffff` of an RFC 3339 log timestamp at the start of `line`, in seconds.
fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

async fn bench_publish(args: &Args) -> anyhow::Result<Value> {
    let mut rates = Vec::new();
    let mut phases = Vec::new();
    for run in 0..args.runs {
        let env = TestEnv::new("bench-publish", "")?;
        let customers = 100;
        for i in 0..args.publish_events {
            let dir = env
                .data_root()
                .join(format!("cust{}", i % customers))
                .join((BASE_ID + (i / customers) as u64 * 60).to_string());
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("_SUCCESS"), b"")?;
        }
        let t = Instant::now();
        let run_out = std::process::Command::new(harness::bin("producer"))
            .arg("--config")
            .arg(&env.config_path)
            .arg("backfill")
            .env("RUST_LOG", "info")
            .env_remove("SNAPSWITCH_CONFIG")
            .output()?;
        let secs = t.elapsed().as_secs_f64();
        let out = String::from_utf8_lossy(&run_out.stdout).into_owned();
        let log = String::from_utf8_lossy(&run_out.stderr).into_owned() + &out;
        let depth = env.queue_depth(&env.work_queue()).await?;
        if !run_out.status.success()
            || depth as usize != args.publish_events
            || !out.contains(&args.publish_events.to_string())
        {
            bail!(
                "backfill published {depth} events (said {out:?}), expected {}",
                args.publish_events
            );
        }
        let rate = args.publish_events as f64 / secs;
        // The publishing itself: first to last `published` log line.
        let stamps: Vec<f64> = log
            .lines()
            .map(harness::strip_ansi)
            .filter(|l| l.contains(" published "))
            .filter_map(|l| seconds_of_day(&l))
            .collect();
        let phase = match (stamps.first(), stamps.last()) {
            (Some(a), Some(b)) if b > a => args.publish_events as f64 / (b - a),
            _ => rate,
        };
        progress(&format!(
            "publish run {run}: {rate:.0} events/s ({secs:.2} s whole command), {phase:.0} events/s publishing"
        ));
        rates.push(rate);
        phases.push(phase);
    }
    Ok(json!({
        "events": args.publish_events,
        "command": "producer backfill (process start, scan, claim, publish with confirms, record)",
        "events_per_s": median(&mut rates).round(),
        "publishing_events_per_s": median(&mut phases).round(),
        "publishing_measured": "first to last `published` log line of the same command (excludes process start, connect, declare, scan)",
    }))
}

async fn bench_e2e(args: &Args) -> anyhow::Result<Value> {
    let mut env = TestEnv::new("bench-e2e", "keep_databases = 1")?;
    env.spawn_worker("worker")?;
    env.http_addr("worker").await?;
    let fleet = env.fleet().await?;
    let mut medians = Vec::new();
    let mut n = 0u64;
    for run in 0..args.runs {
        let mut times = Vec::new();
        for _ in 0..args.e2e_snapshots {
            let id = BASE_ID + n * 60;
            n += 1;
            write_synthetic(
                &env.data_root().join("tiny").join(id.to_string()),
                10,
                10,
                id,
            )?;
            let before = env.counter("completed").await;
            let t = Instant::now();
            publish_event(&env, "tiny", id).await?;
            wait_counter(
                &env,
                &fleet,
                "completed",
                before + 1,
                Duration::from_millis(2),
                Duration::from_secs(60),
            )
            .await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let m = median(&mut times);
        progress(&format!("e2e run {run}: {m:.1} ms per tiny snapshot"));
        medians.push(m);
    }
    Ok(json!({
        "snapshots_per_run": args.e2e_snapshots,
        "rows_per_snapshot": 20,
        "measured": "event published -> worker: lock, create, load, verify, switch, cleanup, stats recorded",
        "ms_per_snapshot": round(median(&mut medians), 1),
    }))
}

async fn bench_pipeline(args: &Args) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    let rels = args.pipeline_rows / 4;
    for slots in [1u32, 2] {
        let mut rates = Vec::new();
        for run in 0..args.runs {
            let mut env = TestEnv::new(
                "bench-pipe",
                &format!("workers = 2\nmax_concurrent_loads = {slots}\nkeep_databases = 1\nslot_wait_timeout = 600\nlock_ttl = 60"),
            )?;
            for c in 0..args.pipeline_snapshots {
                write_synthetic(
                    &env.data_root()
                        .join(format!("pipe{c}"))
                        .join(BASE_ID.to_string()),
                    args.pipeline_rows - rels,
                    rels,
                    c as u64,
                )?;
            }
            env.spawn_worker("worker")?;
            env.http_addr("worker").await?;
            let t = Instant::now();
            for c in 0..args.pipeline_snapshots {
                publish_event(&env, &format!("pipe{c}"), BASE_ID).await?;
            }
            let fleet = env.fleet().await?;
            wait_counter(
                &env,
                &fleet,
                "completed",
                args.pipeline_snapshots as i64,
                Duration::from_millis(20),
                Duration::from_secs(600),
            )
            .await?;
            let rate = args.pipeline_snapshots as f64 / t.elapsed().as_secs_f64();
            progress(&format!(
                "pipeline max_concurrent_loads={slots} run {run}: {rate:.2} snapshots/s"
            ));
            rates.push(rate);
            env.kill("worker");
        }
        out.insert(
            format!("max_concurrent_loads_{slots}_snapshots_per_s"),
            json!(round(median(&mut rates), 3)),
        );
    }
    out.insert("snapshots".into(), json!(args.pipeline_snapshots));
    out.insert("rows_per_snapshot".into(), json!(args.pipeline_rows));
    out.insert("workers".into(), json!(2));
    Ok(Value::Object(out))
}
