//! The fleet's workers and the operator's controls: heartbeats, breaker reports, pauses,
//! cancellations and the progress of running loads.

use super::*;

/// How long a progress record outlives its last refresh (a worker that died
/// mid-load leaves it to expire).
pub const PROGRESS_TTL: Duration = Duration::from_secs(15);

/// A live worker as the fleet sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: Option<u32>,
    /// Its version.
    pub version: Option<String>,
    /// Its last heartbeat (Unix milliseconds).
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
    /// Whose snapshot is loading.
    pub customer: String,
    /// Which snapshot.
    pub snapshot_id: u64,
    /// The worker loading it.
    pub worker: String,
    /// `create`, `nodes`, `relationships`, `verify`, `switch`.
    pub phase: String,
    /// Nodes written so far.
    pub nodes: u64,
    /// Relationships written so far.
    pub relationships: u64,
    /// When the load started (Unix milliseconds).
    pub started_ms: i64,
    /// When this progress was written (Unix milliseconds).
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

impl FleetState {
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

    /// Whether an operator cancelled `snapshot` of `customer`.
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
