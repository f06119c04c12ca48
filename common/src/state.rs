//! The fleet's shared state in Redis: counters, per-customer records, the
//! producer's "already published" memory, the workers' "already seen" memory and
//! the audit trail. Every write is one small command or pipeline; every
//! collection is capped so that months of snapshots do not grow Redis.

use std::collections::HashMap;
use std::time::Duration;

use backon::ExponentialBuilder;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use thiserror::Error;

use crate::config::ServiceUrl;
use crate::ident::{Customer, SnapshotId};
use crate::keys::Keys;

/// Snapshot ids remembered per customer in the published/seen sets.
pub const REMEMBERED_SNAPSHOTS: isize = 1000;
/// Entries kept (approximately) in the audit stream.
pub const AUDIT_MAXLEN: usize = 100_000;
/// A worker whose last heartbeat is older than this is not live.
pub const HEARTBEAT_WINDOW: Duration = Duration::from_secs(20);
/// How long a cancellation is remembered.
pub const CANCEL_TTL: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot connect to Redis at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The fleet counters, as in the seed's status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Distinct snapshots that reached a worker for the first time.
    Discovered,
    /// Events the producer published.
    Published,
    /// Snapshots loaded and verified (switched or not).
    Completed,
    /// Load attempts that failed (each retry that follows counts once more).
    Failed,
    /// Events sent back through the retry ladder.
    Retried,
    /// Events parked in the dead-letter queue.
    Parked,
    /// Events acked without loading because a newer snapshot exists.
    Superseded,
    /// Events acked without loading (or with the load aborted) because an
    /// operator cancelled the snapshot.
    Cancelled,
    /// Snapshots loaded and verified but held by a guard or a check.
    Held,
}

impl Counter {
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Discovered => "discovered",
            Counter::Published => "published",
            Counter::Completed => "completed",
            Counter::Failed => "failed",
            Counter::Retried => "retried",
            Counter::Parked => "parked",
            Counter::Superseded => "superseded",
            Counter::Cancelled => "cancelled",
            Counter::Held => "held",
        }
    }
}

/// The `connect_timeout` of the default config, for callers without one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects a reconnecting, multiplexed Redis connection, trying for up to
/// [`DEFAULT_CONNECT_TIMEOUT`]. `rediss://` trusts the system's certificate
/// store.
pub async fn connect(url: &ServiceUrl) -> Result<ConnectionManager, StateError> {
    connect_tls(url, None).await
}

/// Connects to the Redis of `config` (its URL and CA file) within its
/// `connect_timeout`.
pub async fn connect_config(
    config: &crate::config::Config,
) -> Result<ConnectionManager, StateError> {
    connect_within(
        &config.redis_url,
        config.redis_ca_file.as_deref(),
        config.connect_timeout(),
    )
    .await
}

/// [`connect`] with `rediss://` trusting the CA certificate(s) in `ca`.
pub async fn connect_tls(
    url: &ServiceUrl,
    ca: Option<&std::path::Path>,
) -> Result<ConnectionManager, StateError> {
    connect_within(url, ca, DEFAULT_CONNECT_TIMEOUT).await
}

/// Connects within `timeout` (tries again with a short pause until then);
/// the error names the URL (password hidden) and the last reason. After the
/// first connect, `ConnectionManager` reconnects by itself.
pub async fn connect_within(
    url: &ServiceUrl,
    ca: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<ConnectionManager, StateError> {
    let client = crate::tls::redis_client(url, ca).map_err(|e| StateError::Connect {
        url: url.redacted(),
        reason: e.to_string(),
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.min(Duration::from_secs(5))))
        .set_response_timeout(Some(Duration::from_secs(10)))
        // Fail fast on the first connect; the deadline loop tries again.
        .set_number_of_retries(1);
    let attempt =
        || async { ConnectionManager::new_with_config(client.clone(), config.clone()).await };
    within_deadline("Redis", &url.redacted(), timeout, attempt)
        .await
        .map_err(|reason| StateError::Connect {
            url: url.redacted(),
            reason,
        })
}

/// The fleet state of a config: connects Redis (within `connect_timeout`)
/// and pings it.
pub async fn fleet(config: &crate::config::Config) -> Result<FleetState, StateError> {
    let state = FleetState::new(connect_config(config).await?, Keys::new(&config.namespace));
    tokio::time::timeout(config.connect_timeout(), state.ping())
        .await
        .map_err(|_| StateError::Connect {
            url: config.redis_url.redacted(),
            reason: format!("no answer to PING within {} s", config.connect_timeout),
        })??;
    Ok(state)
}

/// Runs `attempt` until it succeeds or `timeout` has passed since the first
/// try; an attempt still running at the deadline is cut. Between tries it
/// pauses 200 ms, doubling up to 2 s, and logs one line per failed try
/// naming `service` and `url` (pass it redacted). The error is the last
/// try's reason, with the time spent.
pub async fn within_deadline<T, E, F, Fut>(
    service: &str,
    url: &str,
    timeout: Duration,
    mut attempt: F,
) -> Result<T, String>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut pause = Duration::from_millis(200);
    let mut tries = 0u32;
    let mut last_error: Option<String> = None;
    loop {
        tries += 1;
        let reason = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            // Cut at the deadline: the last real error says more.
            Err(_) => last_error.take().unwrap_or_else(|| "no answer".to_owned()),
        };
        last_error = Some(reason.clone());
        let now = tokio::time::Instant::now();
        if now + pause >= deadline {
            return Err(format!(
                "{reason} (gave up after {tries} tries in {:.1} s; connect_timeout = {} s)",
                (now - start).as_secs_f64(),
                timeout.as_secs()
            ));
        }
        tracing::warn!(service, %url, error = %reason, attempt = tries, retry_in_ms = pause.as_millis() as u64, "{service} not reachable yet, retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The backoff both binaries use while a service they need comes up:
/// 200 ms doubling to 5 s, 8 tries (about 30 s in all).
pub fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(8)
}

/// One customer's record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerRecord {
    pub live_snapshot: Option<u64>,
    pub previous_snapshot: Option<u64>,
    pub last_load_seconds: Option<f64>,
    pub last_loaded_at: Option<String>,
    pub last_error: Option<String>,
    /// What the last verified load changed against the live database then
    /// (`worker::gates::diff`, joined with `; `).
    pub last_changed: Option<String>,
}

/// One audit-trail entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub fields: HashMap<String, String>,
}

impl AuditEntry {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

#[derive(Clone)]
pub struct FleetState {
    con: ConnectionManager,
    keys: Keys,
}

impl FleetState {
    pub fn new(con: ConnectionManager, keys: Keys) -> Self {
        FleetState { con, keys }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }

    pub async fn ping(&self) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(())
    }

    pub async fn incr(&self, counter: Counter, by: i64) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: i64 = con.hincr(self.keys.stats(), counter.as_str(), by).await?;
        Ok(())
    }

    /// The fleet counters (missing ones read as 0 by callers).
    pub async fn counters(&self) -> Result<HashMap<String, i64>, StateError> {
        let mut con = self.con.clone();
        let raw: HashMap<String, String> = con.hgetall(self.keys.stats()).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect())
    }

    /// When a worker last finished something (RFC 3339), if ever.
    pub async fn last_activity(&self) -> Result<Option<String>, StateError> {
        let mut con = self.con.clone();
        Ok(con.hget(self.keys.stats(), "last_activity").await?)
    }

    /// Records that a worker received `snapshot`. Returns whether this is the
    /// first sighting (then `discovered` is incremented) and the newest
    /// snapshot id seen by a worker or published by a producer for the customer.
    pub async fn mark_seen(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<(bool, u64), StateError> {
        let key = self.keys.seen(customer);
        let mut con = self.con.clone();
        type Top = Vec<(String, f64)>;
        let (added, _, newest, _, published): (i64, i64, Top, i64, Top) = redis::pipe()
            .cmd("ZADD")
            .arg(&key)
            .arg("NX")
            .arg(snapshot.get())
            .arg(snapshot.get())
            .cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-REMEMBERED_SNAPSHOTS - 1)
            .cmd("ZRANGE")
            .arg(&key)
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("SADD")
            .arg(self.keys.customers())
            .arg(customer.as_str())
            .cmd("ZRANGE")
            .arg(self.keys.published(customer))
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        if added == 1 {
            self.incr(Counter::Discovered, 1).await?;
        }
        let top = |list: &[(String, f64)]| list.first().and_then(|(m, _)| m.parse::<u64>().ok());
        let newest = top(&newest)
            .max(top(&published))
            .unwrap_or(snapshot.get())
            .max(snapshot.get());
        Ok((added == 1, newest))
    }

    /// The newest snapshot id seen by a worker or published by a producer
    /// for the customer (re-read under the lock: others may have arrived
    /// while this worker waited for it).
    pub async fn newest_seen(&self, customer: &Customer) -> Result<Option<u64>, StateError> {
        let mut con = self.con.clone();
        type Top = Vec<(String, f64)>;
        let (seen, published): (Top, Top) = redis::pipe()
            .cmd("ZRANGE")
            .arg(self.keys.seen(customer))
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(self.keys.published(customer))
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        let top = |list: &[(String, f64)]| list.first().and_then(|(m, _)| m.parse::<u64>().ok());
        Ok(top(&seen).max(top(&published)))
    }

    pub async fn customer(&self, customer: &Customer) -> Result<CustomerRecord, StateError> {
        let mut con = self.con.clone();
        let map: HashMap<String, String> = con.hgetall(self.keys.customer(customer)).await?;
        Ok(CustomerRecord {
            live_snapshot: map.get("live_snapshot").and_then(|v| v.parse().ok()),
            previous_snapshot: map.get("previous_snapshot").and_then(|v| v.parse().ok()),
            last_load_seconds: map.get("last_load_seconds").and_then(|v| v.parse().ok()),
            last_loaded_at: map.get("last_loaded_at").cloned(),
            last_error: map.get("last_error").cloned(),
            last_changed: map.get("last_changed").cloned(),
        })
    }

    pub async fn customers(&self) -> Result<Vec<String>, StateError> {
        let mut con = self.con.clone();
        let mut list: Vec<String> = con.smembers(self.keys.customers()).await?;
        list.sort();
        Ok(list)
    }

    /// A verified load: counts `completed`, records timing and, when the alias
    /// moved, the live and previous snapshots.
    pub async fn record_completed(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
        seconds: f64,
        switched_from: Option<Option<SnapshotId>>,
    ) -> Result<(), StateError> {
        let key = self.keys.customer(customer);
        let mut fields: Vec<(&str, String)> = vec![
            ("last_load_seconds", format!("{seconds:.3}")),
            ("last_loaded_at", chrono::Utc::now().to_rfc3339()),
            ("last_error", String::new()),
        ];
        if let Some(previous) = switched_from {
            fields.push(("live_snapshot", snapshot.to_string()));
            fields.push((
                "previous_snapshot",
                previous.map(|p| p.to_string()).unwrap_or_default(),
            ));
        }
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .hset_multiple(&key, &fields)
            .ignore()
            .hincr(self.keys.stats(), Counter::Completed.as_str(), 1)
            .ignore()
            .hset(
                self.keys.stats(),
                "last_activity",
                chrono::Utc::now().to_rfc3339(),
            )
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Corrects the live snapshot from the graph database (reconciliation and
    /// redelivered, already-live events).
    pub async fn set_live(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = con
            .hset(
                self.keys.customer(customer),
                "live_snapshot",
                snapshot.get(),
            )
            .await?;
        Ok(())
    }

    pub async fn record_error(&self, customer: &Customer, message: &str) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let short: String = message.chars().take(1000).collect();
        let _: () = redis::pipe()
            .hset(self.keys.customer(customer), "last_error", short)
            .ignore()
            .hset(
                self.keys.stats(),
                "last_activity",
                chrono::Utc::now().to_rfc3339(),
            )
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// What the customer's last verified load changed (see
    /// [`CustomerRecord::last_changed`]).
    pub async fn set_last_changed(
        &self,
        customer: &Customer,
        changed: &str,
    ) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let short: String = changed.chars().take(4000).collect();
        let _: () = con
            .hset(self.keys.customer(customer), "last_changed", short)
            .await?;
        Ok(())
    }

    /// Records why `snapshot` is held (`record`: a JSON object with at least
    /// `reasons`).
    pub async fn record_held(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
        record: &serde_json::Value,
    ) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .hset(self.keys.held(customer), snapshot.get(), record.to_string())
            .ignore()
            .hincr(self.keys.stats(), Counter::Held.as_str(), 1)
            .ignore()
            .hset(
                self.keys.stats(),
                "last_activity",
                chrono::Utc::now().to_rfc3339(),
            )
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// The customer's held snapshots with why they are held, oldest first.
    pub async fn held(
        &self,
        customer: &Customer,
    ) -> Result<Vec<(u64, serde_json::Value)>, StateError> {
        let mut con = self.con.clone();
        let raw: HashMap<String, String> = con.hgetall(self.keys.held(customer)).await?;
        let mut out: Vec<(u64, serde_json::Value)> = raw
            .into_iter()
            .filter_map(|(k, v)| {
                let id = k.parse().ok()?;
                let record = serde_json::from_str(&v)
                    .unwrap_or_else(|_| serde_json::json!({ "reasons": [v] }));
                Some((id, record))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// `snapshot` is no longer held (approved, rejected, superseded, dropped).
    pub async fn clear_held(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: i64 = con.hdel(self.keys.held(customer), snapshot.get()).await?;
        Ok(())
    }

    /// Appends a task state change to the capped audit stream.
    pub async fn audit(&self, event: &str, fields: &[(&str, String)]) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.audit())
            .arg("MAXLEN")
            .arg("~")
            .arg(AUDIT_MAXLEN)
            .arg("*")
            .arg("event")
            .arg(event)
            .arg("at_ms")
            .arg(chrono::Utc::now().timestamp_millis());
        for (k, v) in fields {
            cmd.arg(*k).arg(v);
        }
        let _: String = cmd.query_async(&mut con).await?;
        Ok(())
    }

    /// The audit trail, oldest first (at most `count` entries).
    pub async fn audit_entries(&self, count: usize) -> Result<Vec<AuditEntry>, StateError> {
        let mut con = self.con.clone();
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(self.keys.audit())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut con)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(id, pairs)| AuditEntry {
                id,
                fields: pairs.into_iter().collect(),
            })
            .collect())
    }

    /// The newest `count` audit entries, oldest first.
    pub async fn audit_recent(&self, count: usize) -> Result<Vec<AuditEntry>, StateError> {
        let mut con = self.con.clone();
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.audit())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut con)
            .await?;
        Ok(raw
            .into_iter()
            .rev()
            .map(|(id, pairs)| AuditEntry {
                id,
                fields: pairs.into_iter().collect(),
            })
            .collect())
    }

    /// A worker is alive (call every few seconds; entries older than a minute
    /// are pruned).
    pub async fn heartbeat(&self, worker_id: &str) -> Result<(), StateError> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .zadd(self.keys.workers(), worker_id, now)
            .ignore()
            .set_ex(
                self.keys.worker_version(worker_id),
                env!("CARGO_PKG_VERSION"),
                60,
            )
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.workers())
            .arg("-inf")
            .arg(now - 60_000)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// A worker stopped cleanly.
    pub async fn farewell(&self, worker_id: &str) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .zrem(self.keys.workers(), worker_id)
            .ignore()
            .del(self.keys.worker_version(worker_id))
            .ignore()
            .del(self.keys.worker_breaker(worker_id))
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Workers with a heartbeat within [`HEARTBEAT_WINDOW`].
    pub async fn live_workers(&self) -> Result<u64, StateError> {
        let since = chrono::Utc::now().timestamp_millis()
            - i64::try_from(HEARTBEAT_WINDOW.as_millis()).unwrap_or(20_000);
        let mut con = self.con.clone();
        Ok(con.zcount(self.keys.workers(), since, "+inf").await?)
    }

    /// Operator: cancel `snapshot` (remembered for [`CANCEL_TTL`]).
    pub async fn cancel(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = con
            .set_ex(
                self.keys.cancel(customer, snapshot.get()),
                "1",
                CANCEL_TTL.as_secs(),
            )
            .await?;
        Ok(())
    }

    pub async fn is_cancelled(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<bool, StateError> {
        let mut con = self.con.clone();
        Ok(con
            .exists(self.keys.cancel(customer, snapshot.get()))
            .await?)
    }

    /// Whether anyone holds `customer`'s lock right now.
    pub async fn is_locked(&self, customer: &Customer) -> Result<bool, StateError> {
        let mut con = self.con.clone();
        Ok(con.exists(self.keys.lock(customer)).await?)
    }

    /// The live workers (heartbeat within [`HEARTBEAT_WINDOW`]): id, last
    /// heartbeat (ms) and version, oldest id first.
    pub async fn worker_list(&self) -> Result<Vec<WorkerInfo>, StateError> {
        let since = chrono::Utc::now().timestamp_millis()
            - i64::try_from(HEARTBEAT_WINDOW.as_millis()).unwrap_or(20_000);
        let mut con = self.con.clone();
        let beats: Vec<(String, f64)> = con
            .zrangebyscore_withscores(self.keys.workers(), since, "+inf")
            .await?;
        let mut list = Vec::with_capacity(beats.len());
        for (id, ms) in beats {
            let (version, breaker): (Option<String>, Option<String>) = redis::pipe()
                .get(self.keys.worker_version(&id))
                .get(self.keys.worker_breaker(&id))
                .query_async(&mut con)
                .await?;
            let mut info = WorkerInfo::from_id(&id, ms as i64, version);
            info.breaker = breaker;
            list.push(info);
        }
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    /// Worker: the state of its circuit breaker, for the fleet view
    /// (expires a minute after the worker stops refreshing it).
    pub async fn report_breaker(&self, worker_id: &str, open: bool) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = con
            .set_ex(
                self.keys.worker_breaker(worker_id),
                if open { "open" } else { "closed" },
                60,
            )
            .await?;
        Ok(())
    }

    /// Operator: pause consumption for the whole fleet (`None`) or one
    /// customer; a paused customer's events wait in the delay queues.
    pub async fn pause(&self, customer: Option<&Customer>, by: &str) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = match customer {
            None => con.set(self.keys.pause(), by).await?,
            Some(c) => {
                con.hset(self.keys.paused_customers(), c.as_str(), by)
                    .await?
            }
        };
        Ok(())
    }

    /// Operator: resume what [`FleetState::pause`] paused.
    pub async fn resume(&self, customer: Option<&Customer>) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = match customer {
            None => con.del(self.keys.pause()).await?,
            Some(c) => con.hdel(self.keys.paused_customers(), c.as_str()).await?,
        };
        Ok(())
    }

    /// Who paused the fleet, if it is paused, and every paused customer.
    pub async fn pauses(&self) -> Result<(Option<String>, HashMap<String, String>), StateError> {
        let mut con = self.con.clone();
        let (fleet, customers): (Option<String>, HashMap<String, String>) = redis::pipe()
            .get(self.keys.pause())
            .hgetall(self.keys.paused_customers())
            .query_async(&mut con)
            .await?;
        Ok((fleet, customers))
    }

    /// Who paused the whole fleet, if it is paused.
    pub async fn fleet_paused(&self) -> Result<Option<String>, StateError> {
        let mut con = self.con.clone();
        Ok(con.get(self.keys.pause()).await?)
    }

    /// Why an event of `customer` must wait now, if it must: the fleet or
    /// the customer is paused.
    pub async fn paused(&self, customer: &Customer) -> Result<Option<String>, StateError> {
        let mut con = self.con.clone();
        let (fleet, mine): (Option<String>, Option<String>) = redis::pipe()
            .get(self.keys.pause())
            .hget(self.keys.paused_customers(), customer.as_str())
            .query_async(&mut con)
            .await?;
        Ok(match (fleet, mine) {
            (Some(by), _) => Some(format!("the fleet is paused (by {by})")),
            (None, Some(by)) => Some(format!("customer {customer} is paused (by {by})")),
            (None, None) => None,
        })
    }

    /// Worker: how far the running load of `customer` got (expires after
    /// [`PROGRESS_TTL`] unless refreshed).
    pub async fn set_progress(&self, p: &LoadProgress) -> Result<(), StateError> {
        let Ok(customer) = Customer::parse(&p.customer) else {
            return Ok(());
        };
        let key = self.keys.progress(&customer);
        let fields: Vec<(&str, String)> = vec![
            ("snapshot_id", p.snapshot_id.to_string()),
            ("worker", p.worker.clone()),
            ("phase", p.phase.clone()),
            ("nodes", p.nodes.to_string()),
            ("relationships", p.relationships.to_string()),
            ("started_ms", p.started_ms.to_string()),
            ("updated_ms", p.updated_ms.to_string()),
        ];
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire(&key, PROGRESS_TTL.as_secs() as i64)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Worker: the load of `customer` ended.
    pub async fn clear_progress(&self, customer: &Customer) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = con.del(self.keys.progress(customer)).await?;
        Ok(())
    }

    /// Every load in progress (one per customer at most: the lock).
    pub async fn progress(&self) -> Result<Vec<LoadProgress>, StateError> {
        let mut out = Vec::new();
        for name in self.customers().await? {
            let Ok(customer) = Customer::parse(&name) else {
                continue;
            };
            let mut con = self.con.clone();
            let map: HashMap<String, String> = con.hgetall(self.keys.progress(&customer)).await?;
            if let Some(p) = LoadProgress::from_fields(&name, &map) {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// How long a progress record outlives its last refresh (a worker that died
/// mid-load leaves it to expire).
pub const PROGRESS_TTL: Duration = Duration::from_secs(15);

/// A live worker as the fleet sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: Option<u32>,
    pub version: Option<String>,
    pub last_heartbeat_ms: i64,
    /// `open` or `closed`, as the worker last reported it.
    pub breaker: Option<String>,
}

impl WorkerInfo {
    /// Worker ids are `<host>-<pid>-<8 hex>`; the host may contain `-`.
    pub fn from_id(id: &str, last_heartbeat_ms: i64, version: Option<String>) -> Self {
        let mut parts = id.rsplitn(3, '-');
        let _suffix = parts.next();
        let pid = parts.next().and_then(|p| p.parse().ok());
        let host = match (pid, parts.next()) {
            (Some(_), Some(h)) => h.to_owned(),
            _ => id.to_owned(),
        };
        WorkerInfo {
            id: id.to_owned(),
            host,
            pid,
            version,
            last_heartbeat_ms,
            breaker: None,
        }
    }
}

/// One running load's progress, as the worker publishes it (at most once a
/// second) and the status shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LoadProgress {
    pub customer: String,
    pub snapshot_id: u64,
    pub worker: String,
    /// `create`, `nodes`, `relationships`, `verify`, `switch`.
    pub phase: String,
    /// Nodes written so far.
    pub nodes: u64,
    /// Relationships written so far.
    pub relationships: u64,
    pub started_ms: i64,
    pub updated_ms: i64,
}

impl LoadProgress {
    fn from_fields(customer: &str, map: &HashMap<String, String>) -> Option<Self> {
        let num = |k: &str| map.get(k).and_then(|v| v.parse::<u64>().ok());
        let ms = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok());
        Some(LoadProgress {
            customer: customer.to_owned(),
            snapshot_id: num("snapshot_id")?,
            worker: map.get("worker").cloned().unwrap_or_default(),
            phase: map.get("phase").cloned().unwrap_or_default(),
            nodes: num("nodes").unwrap_or(0),
            relationships: num("relationships").unwrap_or(0),
            started_ms: ms("started_ms").unwrap_or(0),
            updated_ms: ms("updated_ms").unwrap_or(0),
        })
    }

    /// Rows (nodes + relationships) written per second since the start.
    pub fn rate(&self) -> f64 {
        let secs = (self.updated_ms - self.started_ms) as f64 / 1000.0;
        if secs <= 0.0 {
            0.0
        } else {
            (self.nodes + self.relationships) as f64 / secs
        }
    }
}

#[cfg(test)]
mod console_state_tests {
    use super::*;

    #[test]
    fn worker_ids_split_into_host_and_pid() {
        let w = WorkerInfo::from_id("db-host-1-4242-abcdef12", 5, Some("0.1.0".into()));
        assert_eq!((w.host.as_str(), w.pid), ("db-host-1", Some(4242)));
        let w = WorkerInfo::from_id("odd", 5, None);
        assert_eq!((w.host.as_str(), w.pid), ("odd", None));
    }

    #[test]
    fn rate_is_rows_per_second_since_the_start() {
        let p = LoadProgress {
            nodes: 300,
            relationships: 200,
            started_ms: 1_000,
            updated_ms: 3_000,
            ..Default::default()
        };
        assert_eq!(p.rate(), 250.0);
        assert_eq!(LoadProgress::default().rate(), 0.0);
    }
}
