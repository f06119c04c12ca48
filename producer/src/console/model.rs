//! The JSON the console's pages and `/api/...` are built on: the fleet,
//! the customers, one customer's databases, timeline and held snapshots,
//! the parked events; read from Redis, RabbitMQ and the graph stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use common::config::Config;
use common::graph::GraphStore;
use common::ident::{Customer, DatabaseName};
use common::keys::Keys;
use common::topology::Topology;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::auth::{Auth, Session};
use super::html::Viewer;

use super::*;

impl Console {
    /// Connects Redis and reads the graph targets.
    pub async fn new(config: Config, auth: Auth) -> anyhow::Result<Arc<Self>> {
        let state = common::state::fleet(&config).await?;
        let topology = Topology::from_config(&config);
        let targets = common::targets::Targets::from_config(&config)?;
        let console = Arc::new(Console {
            config,
            state,
            topology,
            targets,
            auth,
            gate: gate::installed(),
            amqp: Mutex::new(None),
            stores: Mutex::new(HashMap::new()),
            flashes: std::sync::Mutex::new(HashMap::new()),
        });
        Ok(console)
    }

    /// The broker connection, reconnected when it dropped.
    pub async fn amqp(&self) -> anyhow::Result<Arc<lapin::Connection>> {
        let mut slot = self.amqp.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.status().connected() {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(common::broker::connect_config(&self.config, "snapswitch-console").await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The graph store of target `name` (connected on first use).
    pub async fn store(&self, name: &str) -> anyhow::Result<Arc<dyn GraphStore>> {
        let mut stores = self.stores.lock().await;
        if let Some(s) = stores.get(name) {
            return Ok(s.clone());
        }
        let target = self
            .targets
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no graph target {name}"))?;
        let marks = common::graph::marks::RedisMarks::new(
            self.state.connection(),
            Keys::new(&self.config.namespace),
            &target.name,
        );
        let store: Arc<dyn GraphStore> = Arc::from(
            tokio::time::timeout(
                Duration::from_secs(5),
                common::graph::connect_target_within(
                    target,
                    2,
                    Duration::from_secs(5),
                    Some(marks),
                ),
            )
            .await
            .map_err(|_| anyhow::anyhow!("graph target {name}: no answer within 5 s"))??,
        );
        stores.insert(name.to_owned(), store.clone());
        Ok(store)
    }

    pub(super) fn viewer<'a>(&self, session: Option<&'a Session>) -> Viewer<'a> {
        Viewer {
            session,
            writable: self.auth.writable(),
        }
    }

    pub(super) fn take_flash(&self, headers: &HeaderMap) -> Option<String> {
        let id = auth::cookie_value(cookie(headers)?, auth::COOKIE)?;
        self.flashes.lock().ok()?.remove(id)
    }

    pub(super) fn set_flash(&self, headers: &HeaderMap, text: String) {
        if let Some(id) = cookie(headers).and_then(|c| auth::cookie_value(c, auth::COOKIE)) {
            if let Ok(mut f) = self.flashes.lock() {
                f.insert(id.to_owned(), text);
            }
        }
    }

    // ----- the JSON the pages are built on -----

    /// The fleet: the status plus workers, retry queues, dependency health,
    /// windowed success rates, loads in progress with rate and ETA, the
    /// chart's points.
    pub async fn fleet_json(&self) -> Value {
        let (queue_size, parked_queue_size, retry_queues) = self.queue_sizes().await;
        let local = common::status::Local {
            uptime: None,
            scan_interval: self.config.scan_interval,
            data_path: self.config.data_root.display().to_string(),
            draining: false,
            queue_size,
            parked_queue_size,
            targets: common::status::TargetCap::of_config(&self.config),
        };
        let mut status = match common::status::fleet_status(&self.state, &local).await {
            Ok(v) => v,
            Err(e) => return json!({"status": "unknown", "error": e.to_string()}),
        };
        let audit = self
            .state
            .audit_recent(AUDIT_WINDOW)
            .await
            .unwrap_or_default();
        let now = chrono::Utc::now().timestamp_millis();
        let workers = self.state.worker_list().await.unwrap_or_default();
        let progress = status["loads_in_progress"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let workers: Vec<Value> = workers
            .into_iter()
            .map(|w| {
                let loading: Vec<String> = progress
                    .iter()
                    .filter(|p| p["worker"].as_str() == Some(w.id.as_str()))
                    .map(|p| {
                        format!(
                            "{}/{} ({})",
                            html::plain(&p["customer"]),
                            html::plain(&p["snapshot_id"]),
                            html::plain(&p["phase"])
                        )
                    })
                    .collect();
                let mut v = serde_json::to_value(&w).unwrap_or(Value::Null);
                v["loading"] = if loading.is_empty() {
                    Value::Null
                } else {
                    loading.join(", ").into()
                };
                v
            })
            .collect();
        status["workers_list"] = workers.into();
        status["held_now"] = held_now(&status).into();
        status["retry_queues"] = retry_queues.into();
        status["dependencies"] = self.dependencies().await;
        // The windowed rates: the status's own fields when it has them,
        // else counted from the audit trail.
        for (key, hours) in [("success_rate_1h", 1), ("success_rate_24h", 24)] {
            if status.get(key).is_none_or(Value::is_null) {
                status[key] = windowed_success_rate(&audit, now, hours).into();
            }
        }
        let enriched: Vec<Value> = progress.into_iter().map(|p| with_eta(p, &audit)).collect();
        status["loads_in_progress"] = enriched.into();
        status
    }

    /// Work queue, parking queue and each retry (delay) queue.
    pub(super) async fn queue_sizes(&self) -> (Option<u32>, Option<u32>, Vec<Value>) {
        let Ok(con) = self.amqp().await else {
            return (None, None, Vec::new());
        };
        let Ok(ch) = con.create_channel().await else {
            return (None, None, Vec::new());
        };
        let work = common::broker::queue_depth(&ch, &self.topology.work_queue)
            .await
            .ok();
        let dead = common::broker::queue_depth(&ch, &self.topology.dead_queue)
            .await
            .ok();
        let mut retry = Vec::new();
        for d in &self.topology.delays {
            let (queue, _) = self.topology.delay_queue(*d);
            let depth = common::broker::queue_depth(&ch, &queue).await.ok();
            retry.push(json!({"queue": queue, "delay_seconds": d.as_secs(), "depth": depth}));
        }
        ch.close(200, "console".into()).await.ok();
        (work, dead, retry)
    }

    pub(super) async fn dependencies(&self) -> Value {
        let mut out = serde_json::Map::new();
        let redis = match self.state.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        out.insert("redis".into(), redis.into());
        let broker = match self.amqp().await {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        out.insert("rabbitmq".into(), broker.into());
        for t in self.targets.all() {
            let health = match self.store(&t.name).await {
                Ok(s) => match tokio::time::timeout(Duration::from_secs(3), s.ping()).await {
                    Ok(Ok(())) => "ok".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "no answer within 3 s".to_owned(),
                },
                Err(e) => e.to_string(),
            };
            out.insert(format!("graph target {}", t.name), health.into());
        }
        Value::Object(out)
    }

    /// Every customer with its alias, databases and last load.
    pub async fn customers_json(&self) -> anyhow::Result<Vec<Value>> {
        let names = self.state.customers().await?;
        let (fleet_paused, paused) = self.state.pauses().await?;
        let progress = self.state.progress().await?;
        let mut dbs_of_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut out = Vec::new();
        for name in names {
            let Ok(customer) = Customer::parse(&name) else {
                continue;
            };
            let target = self.targets.name_for(&name).to_owned();
            let store = self.store(&target).await.ok();
            if !dbs_of_target.contains_key(&target) {
                let list = match &store {
                    Some(s) => s.list_databases().await.unwrap_or_default(),
                    None => Vec::new(),
                };
                dbs_of_target.insert(target.clone(), list);
            }
            out.push(
                self.customer_summary(
                    &customer,
                    &target,
                    store.as_deref(),
                    &dbs_of_target[&target],
                    &progress,
                    fleet_paused.is_some(),
                    paused.contains_key(&name),
                )
                .await?,
            );
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn customer_summary(
        &self,
        customer: &Customer,
        target: &str,
        store: Option<&dyn GraphStore>,
        databases: &[String],
        progress: &[common::state::LoadProgress],
        fleet_paused: bool,
        paused: bool,
    ) -> anyhow::Result<Value> {
        let record = self.state.customer(customer).await?;
        let alias = match store {
            Some(s) => s.alias_target(customer.as_str()).await.ok().flatten(),
            None => None,
        };
        let mut dbs = Vec::new();
        for db in databases {
            let Ok(d) = DatabaseName::parse(db) else {
                continue;
            };
            if d.customer != *customer {
                continue;
            }
            let state = match store {
                Some(s) => s
                    .database_state(db)
                    .await
                    .map(|st| st.as_str().to_owned())
                    .unwrap_or_else(|e| format!("unknown ({e})")),
                None => "unknown".into(),
            };
            dbs.push(json!({
                "database": db,
                "snapshot_id": d.snapshot.get(),
                "state": state,
                "live": alias.as_deref() == Some(db.as_str()),
            }));
        }
        let held = match &self.gate {
            Some(g) => g.held(&self.state, customer).await.unwrap_or_default(),
            None => Vec::new(),
        };
        let loading = progress.iter().find(|p| p.customer == customer.as_str());
        let last_error = record.last_error.clone().filter(|e| !e.is_empty());
        let state = customer_state(
            paused || fleet_paused,
            loading.is_some(),
            last_error.is_some(),
            record.live_snapshot.is_some(),
        );
        let loaded_at = record
            .last_loaded_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let age =
            loaded_at.map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds());
        Ok(json!({
            "customer": customer.as_str(),
            "target": target,
            "state": state,
            "paused": paused,
            "alias": alias,
            "live_snapshot": record.live_snapshot,
            "previous_snapshot": record.previous_snapshot,
            "databases": dbs,
            "held": held,
            "last_loaded_at": record.last_loaded_at,
            "last_load_age_seconds": age,
            "last_load_seconds": record.last_load_seconds,
            "last_error": last_error,
            "progress": loading.map(progress_value),
        }))
    }

    /// One customer: the summary, its snapshot timeline and its parked events.
    pub async fn customer_json(&self, name: &str) -> anyhow::Result<Value> {
        let customer = Customer::parse(name)?;
        let target = self.targets.name_for(name).to_owned();
        let store = self.store(&target).await.ok();
        let databases = match &store {
            Some(s) => s.list_databases().await.unwrap_or_default(),
            None => Vec::new(),
        };
        let (fleet_paused, paused) = self.state.pauses().await?;
        let progress = self.state.progress().await?;
        let mut v = self
            .customer_summary(
                &customer,
                &target,
                store.as_deref(),
                &databases,
                &progress,
                fleet_paused.is_some(),
                paused.contains_key(name),
            )
            .await?;
        let entries: Vec<_> = self
            .state
            .audit_recent(AUDIT_WINDOW)
            .await?
            .into_iter()
            .filter(|e| e.get("customer") == Some(name))
            .collect();
        let rows = timeline::build(&entries);
        if let Some(p) = v.get("progress").cloned().filter(|p| !p.is_null()) {
            v["progress"] = with_eta(p, &entries);
        }
        v["timeline"] = serde_json::to_value(&rows)?;
        v["fleet_paused"] = fleet_paused.is_some().into();
        Ok(v)
    }

    /// The parked events the filter matches, newest last.
    pub async fn parked_json(&self, filter: &crate::dlq::Filter) -> anyhow::Result<Vec<Value>> {
        let con = self.amqp().await?;
        let now = chrono::Utc::now();
        Ok(crate::dlq::list(&con, &self.topology)
            .await?
            .into_iter()
            .filter(|p| filter.matches(p, now))
            .map(|p| parked_value(&p, now))
            .collect())
    }

    /// Every loaded snapshot in the audit window, for the chart.
    pub(super) async fn chart_points(&self) -> Vec<html::LoadPoint> {
        self.state
            .audit_recent(AUDIT_WINDOW)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|e| e.get("event") == Some("load_finished"))
            .filter_map(|e| {
                Some(html::LoadPoint {
                    at_ms: e.get("at_ms")?.parse().ok()?,
                    seconds: e.get("seconds")?.parse().ok()?,
                    switched: e.get("switched") == Some("true"),
                })
            })
            .collect()
    }
}

/// A progress record as the status shows it (with `rows_per_second`).
pub(super) fn progress_value(p: &common::state::LoadProgress) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    v["rows_per_second"] = json!((p.rate() * 10.0).round() / 10.0);
    v
}

/// A parked message as the console shows it (the full body and headers).
pub(super) fn parked_value(p: &crate::dlq::Parked, now: chrono::DateTime<chrono::Utc>) -> Value {
    let age = p
        .failed_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds());
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    v["age_seconds"] = age.into();
    v["raw_body"] = p.raw_body.clone().into();
    v["headers"] = serde_json::to_value(&p.headers).unwrap_or(Value::Null);
    v
}

/// The held snapshots awaiting approve/reject, over every customer of a
/// fleet status (`customers.*.held`).
pub fn held_now(status: &Value) -> usize {
    status["customers"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|c| c["held"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

/// `live`, `loading`, `paused`, `error` or `never loaded`.
pub fn customer_state(paused: bool, loading: bool, error: bool, live: bool) -> &'static str {
    if loading {
        "loading"
    } else if paused {
        "paused"
    } else if error {
        "error"
    } else if live {
        "live"
    } else {
        "never loaded"
    }
}

/// completed / (completed + parked) over the last `hours`, from the audit
/// trail (`load_finished` and `parked` entries); `None` before any outcome.
pub fn windowed_success_rate(
    audit: &[common::state::AuditEntry],
    now_ms: i64,
    hours: i64,
) -> Option<f64> {
    let since = now_ms - hours * 3_600_000;
    let (mut done, mut parked) = (0i64, 0i64);
    for e in audit {
        let Some(at) = e.get("at_ms").and_then(|v| v.parse::<i64>().ok()) else {
            continue;
        };
        if at < since {
            continue;
        }
        match e.get("event") {
            Some("load_finished") => done += 1,
            Some("parked") => parked += 1,
            _ => {}
        }
    }
    (done + parked > 0).then(|| common::status::success_rate(done, parked))
}

/// A progress record with an estimate of its total (the customer's previous
/// load's rows) and ETA; both null without a previous load.
pub(super) fn with_eta(mut p: Value, audit: &[common::state::AuditEntry]) -> Value {
    let customer = p["customer"].as_str().unwrap_or_default().to_owned();
    let previous = audit.iter().rev().find(|e| {
        e.get("customer") == Some(customer.as_str()) && e.get("event") == Some("load_finished")
    });
    let total = previous.and_then(|e| {
        let n: u64 = e.get("nodes")?.parse().ok()?;
        let r: u64 = e.get("relationships")?.parse().ok()?;
        Some(n + r)
    });
    let written = p["nodes"].as_u64().unwrap_or(0) + p["relationships"].as_u64().unwrap_or(0);
    let rate = p["rows_per_second"].as_f64().unwrap_or(0.0);
    p["rows_written"] = written.into();
    p["expected_rows_estimate"] = total.into();
    p["eta_seconds"] = match total {
        Some(t) if rate > 0.0 && t > written => json!(((t - written) as f64 / rate).round()),
        Some(_) if rate > 0.0 => json!(0),
        _ => Value::Null,
    };
    p["elapsed_seconds"] = json!(
        (p["updated_ms"].as_i64().unwrap_or(0) - p["started_ms"].as_i64().unwrap_or(0)) / 1000
    );
    p
}
