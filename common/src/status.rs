//! The fleet status: the seed orchestrator's status-file fields, for the
//! whole fleet, from Redis (counters, heartbeats, customers) and RabbitMQ
//! (queue sizes). Served at `GET /status`, printed by `producer status`,
//! and written every 5 s to `status_file` (atomically) for Nagios-style checks.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::ident::Customer;
use crate::state::{FleetState, StateError};

/// What the caller knows that Redis does not.
#[derive(Debug, Clone)]
pub struct Local {
    /// Of the process serving the status; `None` for a one-shot command.
    pub uptime: Option<Duration>,
    pub scan_interval: u64,
    pub data_path: String,
    /// This process is shutting down.
    pub draining: bool,
    /// Ready messages in the work queue, if the broker answered.
    pub queue_size: Option<u32>,
    /// Ready messages in the parking queue, if the broker answered.
    pub parked_queue_size: Option<u32>,
    /// The graph targets and their caps on concurrent loads.
    pub targets: Vec<TargetCap>,
}

/// A graph target as the status shows it: its name and its fleet-wide cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCap {
    pub name: String,
    pub max_concurrent_loads: u32,
}

impl TargetCap {
    /// The active targets of `config` (no password file is read).
    pub fn of_config(config: &crate::config::Config) -> Vec<TargetCap> {
        crate::targets::active_names(config)
            .into_iter()
            .map(|name| TargetCap {
                max_concurrent_loads: config
                    .targets
                    .get(&name)
                    .and_then(|t| t.max_concurrent_loads)
                    .unwrap_or(config.max_concurrent_loads),
                name,
            })
            .collect()
    }
}

/// Load slots in use on each target, fleet-wide (expired leases not counted).
pub async fn slots_in_use(
    state: &FleetState,
    targets: &[TargetCap],
) -> Result<Vec<u64>, StateError> {
    let mut con = state.connection();
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        out.push(crate::slots::Slot::in_use(&mut con, state.keys(), &t.name).await?);
    }
    Ok(out)
}

/// completed / (completed + parked), in percent; 100 before any outcome.
pub fn success_rate(completed: i64, parked: i64) -> f64 {
    let done = completed + parked;
    if done <= 0 {
        100.0
    } else {
        (completed as f64 / done as f64 * 1000.0).round() / 10.0
    }
}

/// `stopping` while this process drains, `running` while a worker is live,
/// `stopped` when no worker is.
pub fn fleet_state(draining: bool, workers: u64) -> &'static str {
    if draining {
        "stopping"
    } else if workers > 0 {
        "running"
    } else {
        "stopped"
    }
}

pub async fn fleet_status(state: &FleetState, local: &Local) -> Result<Value, StateError> {
    let counters = state.counters().await?;
    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    let workers = state.live_workers().await?;
    let in_use = slots_in_use(state, &local.targets).await?;
    let mut targets = serde_json::Map::new();
    for (t, n) in local.targets.iter().zip(&in_use) {
        targets.insert(
            t.name.clone(),
            json!({"loads": n, "max_concurrent_loads": t.max_concurrent_loads}),
        );
    }
    let max_total: u64 = local
        .targets
        .iter()
        .map(|t| u64::from(t.max_concurrent_loads))
        .sum();
    let mut customers = serde_json::Map::new();
    for name in state.customers().await? {
        let Ok(customer) = Customer::parse(&name) else {
            continue;
        };
        let r = state.customer(&customer).await?;
        let held: Vec<Value> = state
            .held(&customer)
            .await?
            .into_iter()
            .map(|(id, mut record)| {
                if let Some(m) = record.as_object_mut() {
                    m.insert("snapshot_id".into(), id.into());
                }
                record
            })
            .collect();
        customers.insert(
            name,
            json!({
                "live_snapshot": r.live_snapshot,
                "previous_snapshot": r.previous_snapshot,
                "last_load_seconds": r.last_load_seconds,
                "last_loaded_at": r.last_loaded_at,
                "last_error": r.last_error.filter(|e| !e.is_empty()),
                "last_changed": r.last_changed.filter(|c| !c.is_empty()),
                "held": held,
            }),
        );
    }
    Ok(json!({
        "uptime_seconds": local.uptime.map(|u| u.as_secs()),
        "tasks_discovered": get("discovered"),
        "tasks_completed": get("completed"),
        "tasks_failed": get("failed"),
        "tasks_retried": get("retried"),
        "tasks_parked": get("parked"),
        "tasks_superseded": get("superseded"),
        "tasks_cancelled": get("cancelled"),
        "tasks_held": get("held"),
        "tasks_published": get("published"),
        "success_rate": success_rate(get("completed"), get("parked")),
        "queue_size": local.queue_size,
        "parked_queue_size": local.parked_queue_size,
        "workers": workers,
        "load_slots": {"in_use": in_use.iter().sum::<u64>(), "max": max_total},
        "targets": targets,
        "scan_interval": local.scan_interval,
        "data_path": local.data_path,
        "last_activity": state.last_activity().await?,
        "status": fleet_state(local.draining, workers),
        "customers": customers,
    }))
}

/// Writes `value` to `path` atomically: a temp file beside it, then rename.
pub fn write_atomic(path: &Path, value: &Value) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// What a long-running process (worker or `producer watch`) needs to serve
/// the fleet status and keep its gauges and status file fresh.
pub struct Reporter {
    pub state: FleetState,
    pub connection: std::sync::Arc<lapin::Connection>,
    pub topology: crate::topology::Topology,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub scan_interval: u64,
    pub data_path: String,
    pub status_file: Option<std::path::PathBuf>,
    pub started: std::time::Instant,
    pub draining: std::sync::atomic::AtomicBool,
    pub targets: Vec<TargetCap>,
}

impl Reporter {
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ready messages in the work and parking queues, when the broker answers.
    pub async fn queue_sizes(&self) -> (Option<u32>, Option<u32>) {
        let Ok(channel) = self.connection.create_channel().await else {
            return (None, None);
        };
        let work = crate::broker::queue_depth(&channel, &self.topology.work_queue)
            .await
            .ok();
        let dead = crate::broker::queue_depth(&channel, &self.topology.dead_queue)
            .await
            .ok();
        let _ = channel.close(200, "queue sizes".into()).await;
        (work, dead)
    }

    async fn local(&self) -> Local {
        let (queue_size, parked_queue_size) = self.queue_sizes().await;
        Local {
            uptime: Some(self.started.elapsed()),
            scan_interval: self.scan_interval,
            data_path: self.data_path.clone(),
            draining: self.is_draining(),
            queue_size,
            parked_queue_size,
            targets: self.targets.clone(),
        }
    }

    pub async fn status(&self) -> Value {
        let local = self.local().await;
        fleet_status(&self.state, &local)
            .await
            .unwrap_or_else(|e| json!({"status": "unknown", "error": e.to_string()}))
    }

    /// Refreshes the queue and fleet gauges and writes the status file.
    pub async fn tick(&self) {
        let local = self.local().await;
        if let Some(n) = local.queue_size {
            self.metrics.set_queue("work", n);
        }
        if let Some(n) = local.parked_queue_size {
            self.metrics.set_queue("dead", n);
        }
        if let Ok(in_use) = slots_in_use(&self.state, &local.targets).await {
            for (t, n) in local.targets.iter().zip(in_use) {
                self.metrics.set_slots_in_use(&t.name, n);
            }
        }
        if let Ok(n) = self.state.live_workers().await {
            self.metrics
                .workers_live
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(path) = &self.status_file {
            let written = match fleet_status(&self.state, &local).await {
                Ok(v) => write_atomic(path, &v).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the status file");
                return;
            }
        }
        self.metrics
            .status_updated
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// The readiness checks every process shares: broker, Redis, draining.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let broker = if self.connection.status().connected() {
            Ok(())
        } else {
            Err("RabbitMQ connection down".into())
        };
        let redis = self.state.ping().await.map_err(|e| e.to_string());
        let draining = if self.is_draining() {
            Err("draining".into())
        } else {
            Ok(())
        };
        vec![("broker", broker), ("redis", redis), ("draining", draining)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_matches_the_seed_example() {
        assert_eq!(success_rate(9, 1), 90.0);
        assert_eq!(success_rate(0, 0), 100.0);
        assert_eq!(success_rate(2, 1), 66.7);
    }

    #[test]
    fn each_active_target_shows_with_its_own_cap() {
        let mut config = crate::config::Config {
            max_concurrent_loads: 2,
            ..crate::config::Config::default()
        };
        config.targets.insert(
            "east".into(),
            crate::targets::TargetConfig {
                max_concurrent_loads: Some(5),
                ..Default::default()
            },
        );
        let caps: Vec<(String, u32)> = TargetCap::of_config(&config)
            .into_iter()
            .map(|t| (t.name, t.max_concurrent_loads))
            .collect();
        assert_eq!(caps, [("default".into(), 2), ("east".into(), 5)]);
    }

    #[test]
    fn fleet_state_names() {
        assert_eq!(fleet_state(true, 3), "stopping");
        assert_eq!(fleet_state(false, 1), "running");
        assert_eq!(fleet_state(false, 0), "stopped");
    }

    #[test]
    fn status_file_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        write_atomic(&path, &json!({"status": "running"})).unwrap();
        write_atomic(&path, &json!({"status": "stopping"})).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["status"], "stopping");
        assert!(!path.with_extension("tmp").exists());
    }
}
