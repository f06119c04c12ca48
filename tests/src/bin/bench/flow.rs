//! The sections that run the real binaries end to end: `detection`
//! (`_SUCCESS` → event queued), `publish` (`producer backfill`), `e2e` (one
//! snapshot published → live) and `pipeline` (snapshots/s through a worker).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use harness::TestEnv;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::{json, Value};

use super::*;

/// A consumer on the work queue; yields (customer, snapshot id, received at).
pub(super) async fn work_consumer(
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

pub(super) async fn bench_detection(args: &Args) -> anyhow::Result<Value> {
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
pub(super) fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

pub(super) async fn bench_publish(args: &Args) -> anyhow::Result<Value> {
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

pub(super) async fn bench_e2e(args: &Args) -> anyhow::Result<Value> {
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

pub(super) async fn bench_pipeline(args: &Args) -> anyhow::Result<Value> {
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
