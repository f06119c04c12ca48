//! The `rss` section: peak RSS (`VmHWM`) of a real `worker` process loading
//! a small and a large snapshot.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use harness::TestEnv;
use serde_json::{json, Value};

use super::*;

pub(super) fn status_kib(pid: u32, field: &str) -> Option<u64> {
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

pub(super) async fn publish_event(env: &TestEnv, customer: &str, id: u64) -> anyhow::Result<()> {
    let event = common::event::SnapshotEvent::new(
        common::ident::Customer::parse(customer)?,
        common::ident::SnapshotId::new(id)?,
        5,
    )?;
    env.publish_raw(&event.encode(), 5).await
}

/// Waits until fleet counter `name` reaches `n`, polling every `every` on one
/// Redis connection (a new connection per poll would load the machine).
pub(super) async fn wait_counter(
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

pub(super) async fn bench_rss(args: &Args) -> anyhow::Result<Value> {
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
