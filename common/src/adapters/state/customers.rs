//! Per-customer records: snapshots seen (the newest first sighting), completions, the live
//! database, errors, held snapshots.

use super::*;

/// One customer's record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerRecord {
    /// The snapshot the alias points at.
    pub live_snapshot: Option<u64>,
    /// The snapshot it pointed at before.
    pub previous_snapshot: Option<u64>,
    /// How long the last load took.
    pub last_load_seconds: Option<f64>,
    /// When the last load finished (RFC 3339).
    pub last_loaded_at: Option<String>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// What the last verified load changed against the live database then
    /// (`worker::gates::diff`, joined with `; `).
    pub last_changed: Option<String>,
}

impl FleetState {
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

    /// The record of `customer` (empty when unknown).
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

    /// Every customer with a record.
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

    /// Records the last failure of `customer`.
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
}
