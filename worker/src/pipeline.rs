//! One event, start to finish: validate → lock → health gate → decide → create
//! → load → verify → switch → clean up → record. Every step's I/O goes through
//! an adapter from `common`; every choice is a function in [`crate::decide`].
//! The result is an [`Outcome`]; what to do with the delivery is the consumer's
//! business.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::Config;
use common::event::SnapshotEvent;
use common::graph::{GraphError, GraphStore};
use common::ident::{Customer, DatabaseName, SnapshotId};
use common::load::{load_snapshot, LoadError, LoadOptions};
use common::lock::{self, LockGuard};
use common::metrics::Metrics;
use common::slots::Slot;
use common::snapshot::{layout, SnapshotError};
use common::state::{Counter, FleetState, StateError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::decide::{self, CustomerView, Decision, ErrorClass, HealthLimits};
use crate::graphs::{Graphs, TargetGraph};

/// Every failure code a worker can report (event codes from
/// `EventError::code`, then the pipeline's own), so metrics can expose each
/// at 0 from the start.
pub const FAILURE_CODES: [&str; 21] = [
    "event_too_large",
    "event_not_json",
    "event_missing_version",
    "event_unsupported_version",
    "event_schema",
    "event_invalid_customer",
    "event_invalid_snapshot_id",
    "event_invalid_priority",
    "event_invalid_path",
    "snapshot_not_ready",
    "snapshot_missing",
    "snapshot_outside_root",
    "snapshot_io",
    "snapshot_invalid",
    "graph_unavailable",
    "graph_refused",
    "redis_unavailable",
    "load_cancelled",
    "count_mismatch",
    "dangling_relationships",
    "lock_lost",
];

/// A failed attempt, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: ErrorClass,
    /// Short stable code for the `x-snapswitch-reason` header.
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    fn new(class: ErrorClass, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            class,
            code,
            message: message.into(),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::new(ErrorClass::Transient, "redis_unavailable", e.to_string())
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        Failure::new(ErrorClass::Transient, "redis_unavailable", e.to_string())
    }
}

impl From<GraphError> for Failure {
    fn from(e: GraphError) -> Self {
        let class = if e.is_transient() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        let code = if e.is_transient() {
            "graph_unavailable"
        } else {
            "graph_refused"
        };
        Failure::new(class, code, e.to_string())
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Self {
        let (class, code) = match &e {
            SnapshotError::NotReady(_) => (ErrorClass::Transient, "snapshot_not_ready"),
            SnapshotError::Missing(_) => (ErrorClass::Permanent, "snapshot_missing"),
            SnapshotError::OutsideRoot(_) => (ErrorClass::Permanent, "snapshot_outside_root"),
            SnapshotError::Future { .. } => (ErrorClass::Permanent, "snapshot_id_in_future"),
            SnapshotError::Io { .. } => (ErrorClass::Transient, "snapshot_io"),
            SnapshotError::Format { .. } | SnapshotError::Read { .. } => {
                (ErrorClass::Permanent, "snapshot_invalid")
            }
        };
        Failure::new(class, code, e.to_string())
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Snapshot(e) => e.into(),
            LoadError::Graph(e) => e.into(),
            LoadError::Cancelled => {
                Failure::new(ErrorClass::Transient, "load_cancelled", "load cancelled")
            }
            LoadError::Mismatch(m) => Failure::new(ErrorClass::Permanent, "count_mismatch", m),
            e @ LoadError::Dangling { .. } => Failure::new(
                ErrorClass::Permanent,
                "dangling_relationships",
                e.to_string(),
            ),
            e @ LoadError::DuplicateNodeId { .. } => {
                Failure::new(ErrorClass::Permanent, "duplicate_node_id", e.to_string())
            }
            LoadError::StoreLimit(m) => Failure::new(ErrorClass::Permanent, "store_limit", m),
        }
    }
}

/// How an event ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Loaded (and switched when newest), with how long it took and how
    /// many rows it wrote.
    Loaded {
        switched: bool,
        seconds: f64,
        rows: u64,
    },
    AlreadyLive,
    AlreadyLoaded,
    Superseded,
    /// An operator cancelled the snapshot (before or during its load).
    Cancelled,
    /// Not now, and not a failure: try again after `delay` (busy lock, health gate).
    Requeue {
        delay: Duration,
        reason: String,
    },
    /// Interrupted by shutdown: give the event back untouched.
    Aborted,
    Failed(Failure),
}

pub struct Pipeline {
    pub config: Arc<Config>,
    /// The graph targets, each with its store; events go to their
    /// customer's target.
    pub graphs: Graphs,
    pub state: FleetState,
    pub worker_id: String,
    pub metrics: Arc<Metrics>,
    /// When each lock this process holds now was taken (for the
    /// lock-hold gauge).
    pub locks_held: LocksHeld,
}

/// Acquisition times of the locks held now, keyed by a per-process counter.
#[derive(Default)]
pub struct LocksHeld {
    next: std::sync::atomic::AtomicU64,
    held: std::sync::Mutex<std::collections::HashMap<u64, Instant>>,
}

impl LocksHeld {
    fn taken(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.held.lock() {
            h.insert(id, Instant::now());
        }
        id
    }

    fn released(&self, id: u64) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(&id);
        }
    }

    /// How long the oldest lock held now has been held.
    pub fn longest(&self) -> Duration {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.values().min().map(|t| t.elapsed()))
            .unwrap_or_default()
    }
}

impl Pipeline {
    /// Processes one message body. `shutdown` aborts a running load.
    pub async fn process(&self, body: &[u8], shutdown: &CancellationToken) -> Outcome {
        let event = match SnapshotEvent::decode(body) {
            Ok(e) => e,
            Err(e) => {
                return Outcome::Failed(Failure::new(
                    ErrorClass::Permanent,
                    e.code(),
                    e.to_string(),
                ))
            }
        };
        // The consumer's `process` span declared these fields.
        let span = tracing::Span::current();
        span.record("customer", tracing::field::display(&event.customer));
        span.record("snapshot_id", event.snapshot_id.get());
        match self.process_event(&event, shutdown).await {
            Ok(outcome) => outcome,
            Err(f) if shutdown.is_cancelled() && f.code == "load_cancelled" => Outcome::Aborted,
            Err(f) => {
                tracing::warn!(customer = %event.customer, snapshot_id = %event.snapshot_id, class = f.class.as_str(), code = f.code, error = %f.message, "snapshot failed");
                let _ = self.state.record_error(&event.customer, &f.message).await;
                let _ = self.state.incr(Counter::Failed, 1).await;
                let _ = self
                    .audit(
                        "failed",
                        &event,
                        &[("code", f.code.to_owned()), ("error", f.message.clone())],
                    )
                    .await;
                Outcome::Failed(f)
            }
        }
    }

    async fn process_event(
        &self,
        event: &SnapshotEvent,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Failure> {
        if self
            .state
            .is_cancelled(&event.customer, event.snapshot_id)
            .await?
        {
            return self.cancelled(event, "before loading").await;
        }
        layout::check_not_future_now(event.snapshot_id, self.config.max_future_seconds)?;
        let dir =
            layout::resolve_ready(&self.config.data_root, &event.customer, event.snapshot_id)?;
        let (first_sighting, newest_seen) = self
            .state
            .mark_seen(&event.customer, event.snapshot_id)
            .await?;
        if first_sighting {
            self.metrics.discovered.inc();
        }

        let Some(guard) = self
            .acquire_lock(&event.customer)
            .instrument(tracing::info_span!("lock"))
            .await?
        else {
            let delay = Duration::from_secs(self.config.lock_wait_timeout);
            return Ok(Outcome::Requeue {
                delay,
                reason: format!("customer {} is locked by another worker", event.customer),
            });
        };
        let held = self.locks_held.taken();
        let mut con = self.state.connection();
        // The load stops when the lock is lost, an operator cancels it, or the
        // worker shuts down.
        let load_cancel = shutdown.child_token();
        let renewal = tokio::spawn(renew_lock(
            self.state.connection(),
            guard.clone(),
            load_cancel.clone(),
        ));
        let operator_cancel = Arc::new(AtomicBool::new(false));
        let watch = tokio::spawn(watch_cancel(
            self.state.clone(),
            event.customer.clone(),
            event.snapshot_id,
            operator_cancel.clone(),
            load_cancel.clone(),
        ));
        let mut result = self
            .with_lock(event, &dir, newest_seen, &guard, &load_cancel)
            .await;
        watch.abort();
        if operator_cancel.load(Ordering::SeqCst)
            && matches!(&result, Err(f) if f.code == "load_cancelled")
        {
            result = self.cancelled(event, "during its load").await;
        }
        renewal.abort();
        self.locks_held.released(held);
        match guard.release(&mut con).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(customer = %event.customer, "lock had expired before release")
            }
            Err(e) => {
                tracing::warn!(customer = %event.customer, error = %e, "lock release failed; it expires on its own")
            }
        }
        result
    }

    async fn cancelled(&self, event: &SnapshotEvent, when: &str) -> Result<Outcome, Failure> {
        tracing::info!(customer = %event.customer, snapshot_id = %event.snapshot_id, "cancelled by an operator {when}");
        self.state.incr(Counter::Cancelled, 1).await?;
        self.audit("cancelled", event, &[("when", when.to_owned())])
            .await?;
        Ok(Outcome::Cancelled)
    }

    async fn acquire_lock(&self, customer: &Customer) -> Result<Option<LockGuard>, Failure> {
        let deadline = Instant::now() + Duration::from_secs(self.config.lock_wait_timeout);
        let mut con = self.state.connection();
        loop {
            if let Some(guard) = lock::try_acquire(
                &mut con,
                self.state.keys(),
                customer,
                self.config.lock_ttl(),
            )
            .await?
            {
                return Ok(Some(guard));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn with_lock(
        &self,
        event: &SnapshotEvent,
        dir: &std::path::Path,
        newest_seen: u64,
        guard: &LockGuard,
        cancel: &CancellationToken,
    ) -> Result<Outcome, Failure> {
        let customer = &event.customer;
        let snapshot = event.snapshot_id;
        // The customer's graph target: its database, health gate and slots.
        let graph = self.graphs.for_customer(customer.as_str());
        let store = graph.store.as_ref();
        let target = graph.target.name.as_str();

        let health = store
            .health()
            .instrument(tracing::info_span!("health_gate", graph_target = target))
            .await?;
        let limits = HealthLimits {
            max_databases: graph.target.health.max_databases,
            heap_threshold_percent: graph.target.health.heap_threshold_percent,
            pagecache_threshold_percent: graph.target.health.pagecache_threshold_percent,
        };
        if let Err(reason) = decide::health_verdict(&health, &limits) {
            tracing::info!(%customer, graph_target = target, %reason, "health gate refused the load; requeued");
            self.audit(
                "health_refused",
                event,
                &[("reason", reason.clone()), ("target", target.to_owned())],
            )
            .await?;
            return Ok(Outcome::Requeue {
                delay: Duration::from_secs(self.config.health_check_retry_delay),
                reason,
            });
        }

        let view = CustomerView {
            alias_target: alias_target(store, customer).await?,
            databases: databases_of(store, customer).await?,
            newest_seen: SnapshotId::new(newest_seen).ok(),
        };
        let decision = decide::decide(snapshot, &view, self.config.skip_superseded);
        tracing::debug!(%customer, %snapshot, ?view, ?decision, "decided");
        let drop_leftover = match decision {
            Decision::AlreadyLive => {
                self.state.set_live(customer, snapshot).await?;
                self.audit("already_live", event, &[]).await?;
                return Ok(Outcome::AlreadyLive);
            }
            Decision::AlreadyLoaded => {
                self.audit("already_loaded", event, &[]).await?;
                return Ok(Outcome::AlreadyLoaded);
            }
            Decision::Superseded { newer } => {
                self.state.incr(Counter::Superseded, 1).await?;
                self.audit("superseded", event, &[("newer", newer.to_string())])
                    .await?;
                tracing::info!(%customer, %snapshot, %newer, "superseded by a newer snapshot; not loaded");
                return Ok(Outcome::Superseded);
            }
            Decision::Load { drop_leftover } => drop_leftover,
        };

        // The fleet-wide load slot (drip-feed): taken after the customer lock,
        // before the database exists; released on every way out.
        let Some(slot) = self.acquire_slot(graph, cancel).await? else {
            let reason = format!(
                "no load slot free on graph target {target} within slot_wait_timeout ({} s; max_concurrent_loads = {})",
                self.config.slot_wait_timeout, graph.target.max_concurrent_loads
            );
            tracing::info!(%customer, %reason, "requeued");
            self.audit(
                "slot_busy",
                event,
                &[("reason", reason.clone()), ("target", target.to_owned())],
            )
            .await?;
            return Ok(Outcome::Requeue {
                delay: Duration::from_secs(self.config.health_check_retry_delay),
                reason,
            });
        };
        let slot_renewal = tokio::spawn(renew_slot(
            self.state.connection(),
            slot.clone(),
            cancel.clone(),
            self.config.lock_ttl() / 3,
        ));
        let result = async {
        let db = DatabaseName::new(customer.clone(), snapshot).to_string();
        if drop_leftover {
            tracing::info!(%db, "dropping a database left by an interrupted load");
            store.drop_database(&db).await?;
        }
        let started = Instant::now();
        self.audit(
            "load_started",
            event,
            &[("database", db.clone()), ("target", target.to_owned())],
        )
        .await?;
        store
            .create_database(&db)
            .instrument(tracing::info_span!("create_database", database = %db))
            .await?;
        let options = LoadOptions::from_config(&self.config);
        let report = match load_snapshot(store, &db, dir, options, cancel).await {
            Ok(report) => report,
            Err(e) => {
                drop_partial(store, &db).await;
                let _ = self
                    .audit("load_aborted", event, &[("database", db.clone())])
                    .await;
                return Err(e.into());
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(%db, nodes = report.nodes, relationships = report.relationships, skipped_relationships = report.skipped_relationships, seconds, "snapshot loaded and verified");
        self.metrics.skipped_relationships.inc_by(report.skipped_relationships);
        if cancel.is_cancelled() {
            // Cancelled (operator, lost lock or shutdown) after the last batch:
            // the load does not count, and nothing switches.
            drop_partial(store, &db).await;
            let _ = self
                .audit("load_aborted", event, &[("database", db.clone())])
                .await;
            return Err(LoadError::Cancelled.into());
        }

        // The fencing token: nobody took the customer's lock since we did.
        let mut con = self.state.connection();
        if !guard.still_valid(&mut con).await? {
            // Another worker may own this customer now; leave its databases alone.
            return Err(Failure::new(
                ErrorClass::Transient,
                "lock_lost",
                format!(
                    "lost the lock of {customer} before switching; {db} is left for reconciliation"
                ),
            ));
        }

        // Re-read the alias: it is the last word on what is live.
        let alias_target = alias_target(store, customer).await?;
        let switched = decide::should_switch(alias_target, snapshot);
        if switched {
            store
                .switch_alias(customer.as_str(), &db)
                .instrument(tracing::info_span!("switch", alias = %customer, database = %db))
                .await?;
            tracing::info!(alias = %customer, %db, previous = ?alias_target, "alias switched");
            self.audit(
                "switched",
                event,
                &[
                    ("database", db.clone()),
                    (
                        "previous",
                        alias_target.map(|p| p.to_string()).unwrap_or_default(),
                    ),
                ],
            )
            .await?;
        } else {
            tracing::info!(alias = %customer, %db, live = ?alias_target, "loaded, alias stays on the newer snapshot");
        }
        let live = if switched {
            Some(snapshot)
        } else {
            alias_target
        };
        if !guard.still_valid(&mut con).await? {
            return Err(Failure::new(
                ErrorClass::Transient,
                "lock_lost",
                format!("lost the lock of {customer} before cleanup; cleanup is left for reconciliation"),
            ));
        }
        let dropped = self
            .cleanup(store, customer, live)
            .instrument(tracing::info_span!("cleanup"))
            .await?;
        if !dropped.is_empty() {
            self.audit("cleaned", event, &[("dropped", dropped.join(","))])
                .await?;
        }
        self.state
            .record_completed(
                customer,
                snapshot,
                seconds,
                switched.then_some(alias_target),
            )
            .await?;
        self.audit(
            "load_finished",
            event,
            &[
                ("database", db),
                ("nodes", report.nodes.to_string()),
                ("relationships", report.relationships.to_string()),
                (
                    "skipped_relationships",
                    report.skipped_relationships.to_string(),
                ),
                ("seconds", format!("{seconds:.3}")),
                ("switched", switched.to_string()),
            ],
        )
        .await?;
        Ok(Outcome::Loaded {
            switched,
            seconds,
            rows: report.nodes + report.relationships,
        })
        }
        .await;
        slot_renewal.abort();
        if let Err(e) = slot.release(&mut self.state.connection()).await {
            tracing::warn!(error = %e, "releasing the load slot failed; its lease expires on its own");
        }
        result
    }

    /// Waits up to `slot_wait_timeout` for a load slot on `graph`'s target
    /// (polling keeps its place in the queue); `None` when none came free.
    /// Wait time is measured per target.
    async fn acquire_slot(
        &self,
        graph: &TargetGraph,
        cancel: &CancellationToken,
    ) -> Result<Option<Slot>, Failure> {
        let started = Instant::now();
        let target = &graph.target;
        let slot = Slot::new(self.state.keys(), &target.name, self.config.lock_ttl());
        let deadline = started + Duration::from_secs(self.config.slot_wait_timeout);
        let mut con = self.state.connection();
        let span = tracing::info_span!(
            "slot",
            graph_target = %target.name,
            max_concurrent_loads = target.max_concurrent_loads
        );
        async {
            loop {
                if slot
                    .try_acquire(&mut con, target.max_concurrent_loads)
                    .await?
                {
                    self.metrics
                        .observe_slot_wait(&target.name, started.elapsed().as_secs_f64());
                    return Ok(Some(slot));
                }
                if Instant::now() >= deadline || cancel.is_cancelled() {
                    let _ = slot.release(&mut con).await;
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        .instrument(span)
        .await
    }

    async fn cleanup(
        &self,
        store: &dyn GraphStore,
        customer: &Customer,
        live: Option<SnapshotId>,
    ) -> Result<Vec<String>, Failure> {
        let existing = databases_of(store, customer).await?;
        let mut dropped = Vec::new();
        for old in decide::plan_cleanup(&existing, live, self.config.keep_databases) {
            let db = DatabaseName::new(customer.clone(), old).to_string();
            store.drop_database(&db).await?;
            tracing::info!(%db, "dropped old database");
            dropped.push(db);
        }
        Ok(dropped)
    }

    async fn audit(
        &self,
        what: &str,
        event: &SnapshotEvent,
        extra: &[(&str, String)],
    ) -> Result<(), Failure> {
        let mut fields = vec![
            ("customer", event.customer.to_string()),
            ("snapshot_id", event.snapshot_id.to_string()),
            ("event_id", event.event_id.to_string()),
            ("worker", self.worker_id.clone()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        self.state.audit(what, &fields).await?;
        Ok(())
    }
}

/// The snapshot the customer's alias points to on `store`.
pub async fn alias_target(
    store: &dyn GraphStore,
    customer: &Customer,
) -> Result<Option<SnapshotId>, Failure> {
    let target = store.alias_target(customer.as_str()).await?;
    Ok(target
        .and_then(|t| DatabaseName::parse(&t).ok())
        .filter(|d| &d.customer == customer)
        .map(|d| d.snapshot))
}

async fn databases_of(
    store: &dyn GraphStore,
    customer: &Customer,
) -> Result<Vec<SnapshotId>, Failure> {
    Ok(store
        .list_databases()
        .await?
        .iter()
        .filter_map(|n| DatabaseName::parse(n).ok())
        .filter(|d| &d.customer == customer)
        .map(|d| d.snapshot)
        .collect())
}

/// Best effort: a failed load never leaves its database behind.
async fn drop_partial(store: &dyn GraphStore, db: &str) {
    match store.drop_database(db).await {
        Ok(()) => tracing::info!(%db, "dropped the partial database"),
        Err(e) => {
            tracing::error!(%db, error = %e, "could not drop the partial database; reconciliation will")
        }
    }
}

/// Renews the load slot's lease; cancels the load when it is lost.
async fn renew_slot(
    mut con: redis::aio::ConnectionManager,
    slot: Slot,
    cancel: CancellationToken,
    period: Duration,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        match slot.renew(&mut con).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!("load slot lease was lost; aborting the load");
                cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "load slot renewal failed; trying again"),
        }
    }
}

/// Polls the operator's cancel marker every second; sets `flag` and cancels
/// the load when it appears.
async fn watch_cancel(
    state: FleetState,
    customer: Customer,
    snapshot: SnapshotId,
    flag: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Ok(true) = state.is_cancelled(&customer, snapshot).await {
            tracing::info!(%customer, %snapshot, "operator cancelled the running load");
            flag.store(true, Ordering::SeqCst);
            cancel.cancel();
            return;
        }
    }
}

/// Renews the lock every third of its TTL; cancels the load as soon as the lock
/// is no longer ours or cannot be renewed before it would expire.
async fn renew_lock(
    mut con: redis::aio::ConnectionManager,
    guard: LockGuard,
    cancel: CancellationToken,
) {
    let period = guard.ttl() / 3;
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        match guard.renew(&mut con).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                tracing::error!("customer lock was lost; aborting the load");
                cancel.cancel();
                return;
            }
            Err(e) if last_renewed.elapsed() + period < guard.ttl() => {
                tracing::warn!(error = %e, "lock renewal failed; trying again");
            }
            Err(e) => {
                tracing::error!(error = %e, "lock renewal failed until the lock expired; aborting the load");
                cancel.cancel();
                return;
            }
        }
    }
}
