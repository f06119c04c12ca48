//! The fleet status: the seed orchestrator's status-file fields, for the
//! whole fleet, from Redis (counters, heartbeats, customers) and RabbitMQ
//! (queue sizes). Served at `GET /status`, printed by `producer status`,
//! and written every 5 s to `status_file` (atomically) for Nagios-style checks.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::adapters::state::{FleetState, StateError};
use crate::contract::ident::Customer;

/// What the caller knows that Redis does not.
#[derive(Debug, Clone)]
pub struct Local {
    /// Of the process serving the status; `None` for a one-shot command.
    pub uptime: Option<Duration>,
    /// `scan_interval`, as the status file shows it.
    pub scan_interval: u64,
    /// The data root, as the status file shows it.
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
    /// The target's name.
    pub name: String,
    /// Its fleet-wide cap on concurrent loads.
    pub max_concurrent_loads: u32,
}

impl TargetCap {
    /// The active targets of `config` (no password file is read).
    pub fn of_config(config: &crate::config::Config) -> Vec<TargetCap> {
        crate::config::build::active_names(config)
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
        out.push(crate::adapters::slots::Slot::in_use(&mut con, state.keys(), &t.name).await?);
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

// --- Windowed rates: the last hour and the last 24 hours ---

/// Width of one bucket of the windowed counters, in seconds: a window of
/// an hour covers the buckets that overlap it (up to 65 minutes).
pub const WINDOW_BUCKET: u64 = 300;
/// Buckets older than this are deleted.
const WINDOW_KEEP: u64 = 25 * 3600;
/// The windows the status shows: (name, seconds).
pub const WINDOWS: [(&str, u64); 2] = [("1h", 3600), ("24h", 86_400)];

/// An outcome the windowed success rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// A snapshot loaded and verified.
    Completed,
    /// An event parked.
    Parked,
}

impl Tally {
    fn as_str(self) -> &'static str {
        match self {
            Tally::Completed => "completed",
            Tally::Parked => "parked",
        }
    }
}

/// Hash `<ns>:window`: field `<bucket start>:<completed|parked>` → count.
fn window_key(state: &FleetState) -> String {
    state.keys().window()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Counts one outcome in the current bucket and drops buckets older than
/// 25 h (the hash stays under ~600 fields).
pub async fn tally(state: &FleetState, what: Tally) -> Result<(), StateError> {
    let now = unix_now();
    let key = window_key(state);
    let bucket = now / WINDOW_BUCKET * WINDOW_BUCKET;
    let mut con = state.connection();
    let (fields,): (Vec<String>,) = redis::pipe()
        .hincr(&key, format!("{bucket}:{}", what.as_str()), 1)
        .ignore()
        .hkeys(&key)
        .query_async(&mut con)
        .await?;
    let stale: Vec<&String> = fields
        .iter()
        .filter(|f| bucket_of(f).is_none_or(|b| b + WINDOW_KEEP < now))
        .collect();
    if !stale.is_empty() {
        redis::cmd("HDEL")
            .arg(&key)
            .arg(stale)
            .query_async::<()>(&mut con)
            .await?;
    }
    Ok(())
}

fn bucket_of(field: &str) -> Option<u64> {
    field.split_once(':')?.0.parse().ok()
}

/// (completed, parked) in the `secs` before `now`, from the window hash's
/// fields: every bucket that overlaps the window counts.
pub fn window_counts(fields: &[(String, i64)], now: u64, secs: u64) -> (i64, i64) {
    let from = now.saturating_sub(secs);
    let (mut completed, mut parked) = (0, 0);
    for (field, n) in fields {
        let Some((bucket, what)) = field.split_once(':') else {
            continue;
        };
        let Ok(bucket) = bucket.parse::<u64>() else {
            continue;
        };
        if bucket + WINDOW_BUCKET <= from || bucket > now {
            continue;
        }
        match what {
            "completed" => completed += n,
            "parked" => parked += n,
            _ => {}
        }
    }
    (completed, parked)
}

/// The windows as the status shows them: per window its counts and its
/// success rate (100 when nothing finished in it).
pub async fn windows(state: &FleetState) -> Result<serde_json::Map<String, Value>, StateError> {
    let mut con = state.connection();
    let fields: Vec<(String, i64)> = redis::cmd("HGETALL")
        .arg(window_key(state))
        .query_async(&mut con)
        .await?;
    let now = unix_now();
    Ok(WINDOWS
        .iter()
        .map(|(name, secs)| {
            let (completed, parked) = window_counts(&fields, now, *secs);
            (
                (*name).to_owned(),
                json!({
                    "completed": completed,
                    "parked": parked,
                    "success_rate": success_rate(completed, parked),
                }),
            )
        })
        .collect())
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

/// The fleet-status document (`/status`, `producer status`, the status
/// file), from Redis and what the caller knows.
pub async fn fleet_status(state: &FleetState, local: &Local) -> Result<Value, StateError> {
    let counters = state.counters().await?;
    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    let workers = state.live_workers().await?;
    let window = Value::Object(windows(state).await?);
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
    let (paused_by, paused_customers) = state.pauses().await?;
    let progress = state.progress().await?;
    let loads_in_progress: Vec<Value> = progress
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            v["rows_per_second"] = json!((p.rate() * 10.0).round() / 10.0);
            v
        })
        .collect();
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
        "success_rate_1h": window["1h"]["success_rate"],
        "success_rate_24h": window["24h"]["success_rate"],
        "window": window,
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
        "paused": {"fleet": paused_by, "customers": paused_customers},
        "loads_in_progress": loads_in_progress,
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
    /// The fleet state in Redis.
    pub state: FleetState,
    /// The AMQP connection queue sizes are read over (the current one: a
    /// process may replace it, see `broker::RECOVERY_PATIENCE`).
    pub connection: crate::adapters::broker::SharedConnection,
    /// The queues' names.
    pub topology: crate::contract::topology::Topology,
    /// This process's metrics, whose gauges the tick refreshes.
    pub metrics: std::sync::Arc<crate::ops::metrics::Metrics>,
    /// `scan_interval`, for the status document.
    pub scan_interval: u64,
    /// The data root, for the status document.
    pub data_path: String,
    /// Where the status file is written (`None`: not written).
    pub status_file: Option<std::path::PathBuf>,
    /// When this process started.
    pub started: std::time::Instant,
    /// Set while the process shuts down.
    pub draining: std::sync::atomic::AtomicBool,
    /// The graph targets and their caps.
    pub targets: Vec<TargetCap>,
}

impl Reporter {
    /// Whether the process is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ready messages in the work and parking queues, when the broker answers.
    pub async fn queue_sizes(&self) -> (Option<u32>, Option<u32>) {
        let Ok(channel) = self.connection.get().create_channel().await else {
            return (None, None);
        };
        let work = crate::adapters::broker::queue_depth(&channel, &self.topology.work_queue)
            .await
            .ok();
        let dead = crate::adapters::broker::queue_depth(&channel, &self.topology.dead_queue)
            .await
            .ok();
        channel.close(200, "queue sizes".into()).await.ok();
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

    /// The fleet-status document now.
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
        let broker = if self.connection.get().status().connected() {
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
            crate::config::targets::TargetConfig {
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
    fn windows_count_the_buckets_that_overlap_them() {
        let now = 1_000_000 * WINDOW_BUCKET + 100;
        let at = |ago: u64| (now - ago) / WINDOW_BUCKET * WINDOW_BUCKET;
        let f = |ago: u64, what: &str, n: i64| (format!("{}:{what}", at(ago)), n);
        let fields = vec![
            f(0, "completed", 5),
            f(0, "parked", 1),
            f(1800, "completed", 4),
            f(3500, "parked", 2),
            f(7200, "parked", 10),
            f(80_000, "completed", 7),
            f(90_000, "completed", 100), // older than 24 h
            ("garbage".into(), 3),
            ("123:unknown".into(), 3),
        ];
        assert_eq!(window_counts(&fields, now, 3600), (9, 3));
        assert_eq!(window_counts(&fields, now, 86_400), (16, 13));
        assert_eq!(window_counts(&[], now, 3600), (0, 0));
        // An outage an hour ago no longer weighs on the last hour.
        let (c, p) = window_counts(&fields, now, 3600);
        assert!(success_rate(c, p) > success_rate(16, 13));
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
