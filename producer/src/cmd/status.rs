//! `producer status`: the fleet status and each customer's live snapshot.

use common::config::Config;
use common::keys::Keys;
use common::state::FleetState;
use common::topology::Topology;

/// Prints the fleet status (JSON with `json`); fails after printing when
/// RabbitMQ is unreachable.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
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
                con.close(200, "done".into()).await.ok();
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
