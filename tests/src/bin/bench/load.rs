//! The `load` section: the worker's load path in process against the
//! reference loader, on the same FalkorDB and the same files, and its phases.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use common::config::ServiceUrl;
use common::graph::falkordb::FalkorStore;
use common::graph::GraphStore;
use common::load::{load_snapshot, LoadOptions};
use harness::FalkorServer;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::*;

pub(super) async fn worker_path_once(
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

pub(super) async fn reference_once(
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

pub(super) async fn bench_load(args: &Args) -> anyhow::Result<Value> {
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
pub(super) async fn phases(
    args: &Args,
    server: &FalkorServer,
    tmp: &Path,
) -> anyhow::Result<Value> {
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
