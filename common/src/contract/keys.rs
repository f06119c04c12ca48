//! Every Redis key snapswitch writes, in one place. All keys start with the
//! configured namespace, so deployments and test runs sharing a Redis never
//! see each other's state.

use crate::contract::ident::Customer;

/// Every Redis key of one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// The keys under `namespace`.
    pub fn new(namespace: &str) -> Self {
        Keys {
            ns: namespace.to_owned(),
        }
    }
    /// The namespace every key starts with.
    pub fn namespace(&self) -> &str {
        &self.ns
    }
    /// String: the lock holder's token. Expires unless renewed.
    pub fn lock(&self, c: &Customer) -> String {
        format!("{}:lock:{c}", self.ns)
    }
    /// Hash: the lifecycle mark of a database on a graph target that keeps
    /// none itself (Neo4j): `state`, `token`.
    pub fn db_mark(&self, target: &str, db: &str) -> String {
        format!("{}:db:{target}:{db}", self.ns)
    }
    /// Integer: incremented at every lock acquisition (fencing token).
    pub fn fence(&self, c: &Customer) -> String {
        format!("{}:fence:{c}", self.ns)
    }
    /// Hash: fleet-wide counters (`discovered`, `completed`, …).
    pub fn stats(&self) -> String {
        format!("{}:stats", self.ns)
    }
    /// Set: every customer ever seen.
    pub fn customers(&self) -> String {
        format!("{}:customers", self.ns)
    }
    /// Hash: one customer's state (`live_snapshot`, `last_load_seconds`, …).
    pub fn customer(&self, c: &Customer) -> String {
        format!("{}:customer:{c}", self.ns)
    }
    /// Hash: snapshot id → why that snapshot is held (JSON), for each of the
    /// customer's held databases.
    pub fn held(&self, c: &Customer) -> String {
        format!("{}:held:{c}", self.ns)
    }
    /// Sorted set of snapshot ids the producer published (capped).
    pub fn published(&self, c: &Customer) -> String {
        format!("{}:published:{c}", self.ns)
    }
    /// String with a short TTL: a producer is publishing this snapshot now.
    pub fn publishing(&self, c: &Customer, snapshot: u64) -> String {
        format!("{}:publishing:{c}:{snapshot}", self.ns)
    }
    /// Sorted set of snapshot ids the workers received (capped).
    pub fn seen(&self, c: &Customer) -> String {
        format!("{}:seen:{c}", self.ns)
    }
    /// String with a TTL: an operator cancelled this snapshot.
    pub fn cancel(&self, c: &Customer, snapshot: u64) -> String {
        format!("{}:cancel:{c}:{snapshot}", self.ns)
    }
    /// Sorted set: worker id → time of its last heartbeat (ms).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.ns)
    }
    /// Stream: the audit trail of task state changes (capped).
    pub fn audit(&self) -> String {
        format!("{}:audit", self.ns)
    }
    /// String: present while the whole fleet is paused (value: who paused it).
    pub fn pause(&self) -> String {
        format!("{}:pause", self.ns)
    }
    /// Hash: paused customer → who paused it.
    pub fn paused_customers(&self) -> String {
        format!("{}:paused_customers", self.ns)
    }
    /// Hash with a short TTL: the running load of a customer and how far it
    /// got (`snapshot_id`, `worker`, `phase`, `nodes`, `relationships`, …).
    pub fn progress(&self, c: &Customer) -> String {
        format!("{}:progress:{c}", self.ns)
    }
    /// String with a TTL (refreshed every 5 s): `open` or `closed`, the
    /// worker's circuit breaker.
    pub fn worker_breaker(&self, worker_id: &str) -> String {
        format!("{}:worker_breaker:{worker_id}", self.ns)
    }
    /// String with a TTL (refreshed by each heartbeat): the version a worker runs.
    pub fn worker_version(&self, worker_id: &str) -> String {
        format!("{}:worker_version:{worker_id}", self.ns)
    }
    /// Sorted set: a graph target's load slots (token → lease expiry, ms).
    pub fn slots(&self, target: &str) -> String {
        format!("{}:slots:{target}", self.ns)
    }
    /// Sorted set: the queue of workers waiting for a slot on `target`.
    pub fn slot_queue(&self, target: &str) -> String {
        format!("{}:slotq:{target}", self.ns)
    }
    /// Counter: the order of arrival in a target's slot queue.
    pub fn slot_seq(&self, target: &str) -> String {
        format!("{}:slotseq:{target}", self.ns)
    }
    /// Prefix of the strings (with a TTL) that keep a slot-queue place alive.
    pub fn slot_alive_prefix(&self) -> String {
        format!("{}:slotq-alive:", self.ns)
    }
    /// Hash: `<bucket start>:<completed|parked>` → count (the status windows).
    pub fn window(&self) -> String {
        format!("{}:window", self.ns)
    }
}
