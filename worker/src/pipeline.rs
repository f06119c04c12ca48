//! One event, start to finish: validate → lock → health gate → decide → create
//! → load → verify → switch → clean up → record. Every step's I/O goes through
//! an adapter from `common`; every choice is a function in [`crate::decide`].
//! The result is an [`Outcome`]; what to do with the delivery is the consumer's
//! business.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::Config;
use common::event::SnapshotEvent;
use common::graph::{
    Counts, DbState, Fence, GraphError, GraphStore, GraphWriter, NodeRef, NodeWrite, RelWrite,
    StoreLimits, SwitchMode,
};
use common::ident::{Customer, DatabaseName, SnapshotId};
use common::load::{load_snapshot, LoadError, LoadMethod, LoadOptions};
use common::lock::{self, LockGuard};
use common::metrics::Metrics;
use common::slots::Slot;
use common::snapshot::manifest::{self, Manifest};
use common::snapshot::schema::SchemaStatement;
use common::snapshot::{layout, PropType, SnapshotError};
use common::state::{Counter, FleetState, StateError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::decide::{self, CustomerView, Decision, ErrorClass, HealthLimits};
use crate::gates::{self, Hold};
use crate::graphs::{Graphs, TargetGraph};

/// Every failure code a worker can report (event codes from
/// `EventError::code`, then the pipeline's own), so metrics can expose each
/// at 0 from the start.
pub const FAILURE_CODES: [&str; 22] = [
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
    "manifest_mismatch",
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
        if e.is_fenced() {
            return Failure::new(ErrorClass::Transient, "lock_lost", e.to_string());
        }
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
    /// Loaded and verified, but a guard or a check refused it: kept as
    /// `held`, not live (the alias stays where it is); the event is acked.
    Held {
        reasons: Vec<crate::gates::Hold>,
    },
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

/// The customer's lock while one event is handled, with its renewal, the
/// operator-cancel watch and the local lease; [`Held::release`] frees it,
/// and dropping it (any other way out: an early return, a panic, an abort
/// at shutdown) stops its tasks and frees it in the background.
struct Held<'p> {
    pipeline: &'p Pipeline,
    guard: Option<LockGuard>,
    lease: Lease,
    cancel: CancellationToken,
    operator_cancel: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
    watch: tokio::task::JoinHandle<()>,
    held_id: u64,
}

impl Held<'_> {
    fn fence(&self, customer: &Customer) -> Fence {
        Fence {
            customer: customer.to_string(),
            token: self.token(),
        }
    }

    fn token(&self) -> u64 {
        self.guard.as_ref().map_or(0, |g| g.fence)
    }

    /// The lock is still ours: the local lease has not run out and Redis
    /// says we hold it with our token.
    async fn still_valid(&self) -> Result<bool, Failure> {
        let Some(guard) = &self.guard else {
            return Ok(false);
        };
        if !self.lease.alive() {
            return Ok(false);
        }
        Ok(guard
            .still_valid(&mut self.pipeline.state.connection())
            .await?)
    }

    async fn release(mut self) {
        self.stop_tasks();
        if let Some(guard) = self.guard.take() {
            let customer = guard.customer().to_owned();
            match guard.release(&mut self.pipeline.state.connection()).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(%customer, "lock had expired before release"),
                Err(e) => {
                    tracing::warn!(%customer, error = %e, "lock release failed; it expires on its own")
                }
            }
        }
    }

    fn stop_tasks(&self) {
        self.watch.abort();
        self.renewal.abort();
        self.pipeline.locks_held.released(self.held_id);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.stop_tasks();
        if let (Some(guard), Ok(runtime)) =
            (self.guard.take(), tokio::runtime::Handle::try_current())
        {
            let mut con = self.pipeline.state.connection();
            runtime.spawn(async move {
                let _ = guard.release(&mut con).await;
            });
        }
    }
}

/// The load slot while a load runs, with its renewal; released on every
/// way out like [`Held`].
struct SlotHeld<'p> {
    pipeline: &'p Pipeline,
    slot: Option<Slot>,
    renewal: tokio::task::JoinHandle<()>,
}

impl SlotHeld<'_> {
    async fn release(mut self) {
        self.renewal.abort();
        if let Some(slot) = self.slot.take() {
            if let Err(e) = slot.release(&mut self.pipeline.state.connection()).await {
                tracing::warn!(error = %e, "releasing the load slot failed; its lease expires on its own");
            }
        }
    }
}

impl Drop for SlotHeld<'_> {
    fn drop(&mut self) {
        self.renewal.abort();
        if let (Some(slot), Ok(runtime)) = (self.slot.take(), tokio::runtime::Handle::try_current())
        {
            let mut con = self.pipeline.state.connection();
            runtime.spawn(async move {
                let _ = slot.release(&mut con).await;
            });
        }
    }
}

/// The lock as this process knows it without asking Redis: valid until
/// the last successful renewal's start plus `lock_ttl`. A process that was
/// paused (SIGSTOP, a stall) past that knows on waking that it may have
/// lost the lock, before any other task of it runs a round trip.
#[derive(Clone)]
struct Lease {
    valid_until: Arc<std::sync::Mutex<Instant>>,
}

impl Lease {
    fn new(from: Instant, ttl: Duration) -> Self {
        Lease {
            valid_until: Arc::new(std::sync::Mutex::new(from + ttl)),
        }
    }
    fn alive(&self) -> bool {
        self.valid_until
            .lock()
            .map(|t| Instant::now() < *t)
            .unwrap_or(false)
    }
    fn extend(&self, from: Instant, ttl: Duration) {
        if let Ok(mut t) = self.valid_until.lock() {
            *t = (*t).max(from + ttl);
        }
    }
}

/// The load path, refused as soon as the local lease has run out: a worker
/// that wakes from a pause writes nothing more into a database that may now
/// be another holder's.
struct FencedWriter<'a> {
    store: &'a dyn GraphStore,
    lease: Lease,
    /// Rows written so far (for the progress the worker publishes).
    written: &'a Written,
}

/// Nodes and relationships written by a running load.
#[derive(Default)]
struct Written {
    nodes: AtomicU64,
    relationships: AtomicU64,
}

/// How often a running load publishes its progress to Redis (at most).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a paused customer's event waits before it is looked at again.
const PAUSED_RECHECK: Duration = Duration::from_secs(2);

impl FencedWriter<'_> {
    fn check(&self) -> Result<(), GraphError> {
        if self.lease.alive() {
            Ok(())
        } else {
            Err(GraphError::Fenced(
                "the lock's lease ran out; no more writes".into(),
            ))
        }
    }
}

#[async_trait::async_trait]
impl GraphWriter for FencedWriter<'_> {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.check()?;
        self.store.create_index(db, label, property).await
    }
    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<Vec<NodeRef>, GraphError> {
        self.check()?;
        let n = self.store.write_nodes(db, w).await?;
        self.written
            .nodes
            .fetch_add(w.rows.len() as u64, Ordering::Relaxed);
        Ok(n)
    }
    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        self.check()?;
        let n = self.store.write_relationships(db, w).await?;
        self.written
            .relationships
            .fetch_add(w.rows.len() as u64, Ordering::Relaxed);
        Ok(n)
    }
    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        self.store.counts(db).await
    }
    // The store's own refusals and limits, checked before anything is written.
    fn lacks(&self, ty: PropType) -> Option<String> {
        self.store.lacks(ty)
    }
    fn limits(&self) -> StoreLimits {
        self.store.limits()
    }
    fn can_bulk(&self) -> bool {
        self.store.can_bulk()
    }
    async fn bulk_call(&self, db: &str, args: Vec<Vec<u8>>) -> Result<(), GraphError> {
        self.check()?;
        // The call's first two arguments are its node and edge counts.
        let count = |i: usize| {
            args.get(i)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|a| a.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (nodes, relationships) = (count(0), count(1));
        self.store.bulk_call(db, args).await?;
        self.written.nodes.fetch_add(nodes, Ordering::Relaxed);
        self.written
            .relationships
            .fetch_add(relationships, Ordering::Relaxed);
        Ok(())
    }
    async fn bulk_reserve(&self, db: &str, nodes: u64) -> Result<(), GraphError> {
        self.check()?;
        self.store.bulk_reserve(db, nodes).await
    }
    async fn bulk_sync(
        &self,
        db: &str,
        target: &common::graph::falkordb_bulk::SyncTarget,
    ) -> Result<(), GraphError> {
        self.store.bulk_sync(db, target).await
    }
}

/// The load method for the snapshot in `dir`: the target's, except that a
/// snapshot whose `schema.cypher` declares a constraint loads through
/// Cypher, because FalkorDB 4.16's GRAPH.BULK does not check constraints
/// (`tests/tests/gates.rs`: a duplicate `personId` across ID spaces loaded
/// through GRAPH.BULK without an error).
fn load_method_for(target: LoadMethod, dir: &std::path::Path) -> LoadMethod {
    let constrained = std::fs::read_to_string(dir.join("schema.cypher"))
        .is_ok_and(|s| s.to_ascii_uppercase().contains("CONSTRAINT"));
    if constrained && target == LoadMethod::Bulk {
        tracing::info!(
            "schema.cypher declares a constraint: loading through cypher (GRAPH.BULK does not check constraints)"
        );
        LoadMethod::Cypher
    } else {
        target
    }
}

/// One event's context for the steps below.
struct Step<'a> {
    event: &'a SnapshotEvent,
    graph: &'a TargetGraph,
    held: &'a Held<'a>,
    db: String,
}

impl Step<'_> {
    fn customer(&self) -> &Customer {
        &self.event.customer
    }
    fn store(&self) -> &dyn GraphStore {
        self.graph.store.as_ref()
    }
    fn fence(&self) -> Fence {
        self.held.fence(&self.event.customer)
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

    /// validate → lock → (under the lock) gate, decide, slot, create, load,
    /// verify, mark, switch, cleanup, record → release.
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
        // An operator paused the fleet or this customer: wait, not fail.
        if let Some(reason) = self.state.paused(&event.customer).await? {
            return Ok(Outcome::Requeue {
                delay: PAUSED_RECHECK,
                reason,
            });
        }
        let dir =
            layout::resolve_ready(&self.config.data_root, &event.customer, event.snapshot_id)?;
        let (first_sighting, _) = self
            .state
            .mark_seen(&event.customer, event.snapshot_id)
            .await?;
        if first_sighting {
            self.metrics.discovered.inc();
        }
        let graph = self.graphs.for_customer(event.customer.as_str());
        let Some(held) = self
            .step_lock(event, graph, shutdown)
            .instrument(tracing::info_span!("lock"))
            .await?
        else {
            let delay = Duration::from_secs(self.config.lock_wait_timeout);
            return Ok(Outcome::Requeue {
                delay,
                reason: format!("customer {} is locked by another worker", event.customer),
            });
        };
        let mut result = self.under_lock(event, &dir, graph, &held).await;
        if held.operator_cancel.load(Ordering::SeqCst)
            && matches!(&result, Err(f) if f.code == "load_cancelled")
        {
            result = self.cancelled(event, "during its load").await;
        }
        let _ = self.state.clear_progress(&event.customer).await;
        held.release().await;
        result
    }

    /// Step "lock": the customer's lock, its fencing token lifted above
    /// the highest one the store has seen, its renewal and the cancel watch.
    async fn step_lock<'p>(
        &'p self,
        event: &SnapshotEvent,
        graph: &TargetGraph,
        shutdown: &CancellationToken,
    ) -> Result<Option<Held<'p>>, Failure> {
        let customer = &event.customer;
        let Some((guard, asked_at)) = self.acquire_lock(customer).await? else {
            return Ok(None);
        };
        let lease = Lease::new(asked_at, guard.ttl());
        let cancel = shutdown.child_token();
        let operator_cancel = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew_lock(
            self.state.connection(),
            guard.clone(),
            lease.clone(),
            cancel.clone(),
        ));
        let watch = tokio::spawn(watch_cancel(
            self.state.clone(),
            customer.clone(),
            event.snapshot_id,
            operator_cancel.clone(),
            cancel.clone(),
        ));
        let mut held = Held {
            pipeline: self,
            guard: Some(guard),
            lease,
            cancel,
            operator_cancel,
            renewal,
            watch,
            held_id: self.locks_held.taken(),
        };
        // From here on, every way out (an error too) releases the lock.
        let floor = graph.store.fence_seen(customer.as_str()).await?;
        let Some(guard) = held.guard.as_mut() else {
            return Err(self.abandoned(event, &held, "lock"));
        };
        let before = guard.fence;
        if !guard
            .lift_above(&mut self.state.connection(), floor)
            .await?
        {
            return Err(self.abandoned(event, &held, "lock"));
        }
        if guard.fence != before {
            tracing::warn!(%customer, token = guard.fence, store_fence = floor, "fencing counter was behind the graph store's fence (Redis lost its data?); lifted above it");
        }
        // The renewal task holds a clone with the old token; renewal checks
        // only the lock's holder, which is unchanged.
        Ok(Some(held))
    }

    /// Everything done while holding the lock.
    async fn under_lock(
        &self,
        event: &SnapshotEvent,
        dir: &std::path::Path,
        graph: &TargetGraph,
        held: &Held<'_>,
    ) -> Result<Outcome, Failure> {
        let step = Step {
            event,
            graph,
            held,
            db: DatabaseName::new(event.customer.clone(), event.snapshot_id).to_string(),
        };
        if let Some(requeue) = self.step_gate(&step).await? {
            return Ok(requeue);
        }
        let drop_leftover = match self.step_decide(&step).await? {
            Ok(drop_leftover) => drop_leftover,
            Err(outcome) => return Ok(outcome),
        };
        // Before the slot: checksums take a while, and need no slot.
        let manifest = self
            .step_manifest(&step, dir)
            .instrument(tracing::info_span!("manifest"))
            .await?;
        // schema.cypher is read and checked before anything is written too
        // (a refused statement names its line).
        let schema = common::snapshot::schema::read(dir)?;
        let Some(slot) = self.step_slot(&step).await? else {
            let target = graph.target.name.as_str();
            let reason = format!(
                "no load slot free on graph target {target} within slot_wait_timeout ({} s; max_concurrent_loads = {})",
                self.config.slot_wait_timeout, graph.target.max_concurrent_loads
            );
            tracing::info!(customer = %event.customer, %reason, "requeued");
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
        let result = self
            .load_verify_switch(&step, dir, drop_leftover, manifest.as_ref(), &schema)
            .await;
        slot.release().await;
        result
    }

    /// Step "gate": the target's health gate.
    async fn step_gate(&self, step: &Step<'_>) -> Result<Option<Outcome>, Failure> {
        let graph = step.graph;
        let target = graph.target.name.as_str();
        let health = step
            .store()
            .health()
            .instrument(tracing::info_span!("health_gate", graph_target = target))
            .await?;
        let limits = HealthLimits {
            max_databases: graph.target.health.max_databases,
            heap_threshold_percent: graph.target.health.heap_threshold_percent,
            pagecache_threshold_percent: graph.target.health.pagecache_threshold_percent,
        };
        let Err(reason) = decide::health_verdict(&health, &limits) else {
            return Ok(None);
        };
        tracing::info!(customer = %step.customer(), graph_target = target, %reason, "health gate refused the load; requeued");
        self.audit(
            "health_refused",
            step.event,
            &[("reason", reason.clone()), ("target", target.to_owned())],
        )
        .await?;
        Ok(Some(Outcome::Requeue {
            delay: Duration::from_secs(self.config.health_check_retry_delay),
            reason,
        }))
    }

    /// Step "decide": load (and whether a leftover must go first), or the
    /// outcome that ends the event here. `newest_seen` is read now, under the
    /// lock: snapshots that arrived while this worker waited count.
    async fn step_decide(&self, step: &Step<'_>) -> Result<Result<bool, Outcome>, Failure> {
        let (customer, snapshot, event) = (step.customer(), step.event.snapshot_id, step.event);
        let store = step.store();
        let newest_seen = self.state.newest_seen(customer).await?;
        if store.database_state(&step.db).await? == DbState::Held {
            // A redelivery of a held snapshot: it stays held (an operator
            // approves or rejects it), never dropped and reloaded.
            self.audit("already_held", event, &[]).await?;
            return Ok(Err(Outcome::AlreadyLoaded));
        }
        let view = CustomerView {
            alias_target: alias_target(store, customer).await?,
            databases: databases_of(store, customer).await?,
            newest_seen: newest_seen.and_then(|n| SnapshotId::new(n).ok()),
        };
        let decision = decide::decide(snapshot, &view, self.config.skip_superseded);
        tracing::debug!(%customer, %snapshot, ?view, ?decision, "decided");
        Ok(match decision {
            Decision::AlreadyLive => {
                self.state.set_live(customer, snapshot).await?;
                self.audit("already_live", event, &[]).await?;
                Err(Outcome::AlreadyLive)
            }
            Decision::AlreadyLoaded => {
                self.audit("already_loaded", event, &[]).await?;
                Err(Outcome::AlreadyLoaded)
            }
            Decision::Superseded { newer } => {
                self.state.incr(Counter::Superseded, 1).await?;
                self.audit("superseded", event, &[("newer", newer.to_string())])
                    .await?;
                tracing::info!(%customer, %snapshot, %newer, "superseded by a newer snapshot; not loaded");
                Err(Outcome::Superseded)
            }
            Decision::Load { drop_leftover } => Ok(drop_leftover),
        })
    }

    /// Step "slot": the fleet-wide load slot (drip-feed), taken after the
    /// customer lock and before the database exists.
    async fn step_slot<'p>(&'p self, step: &Step<'_>) -> Result<Option<SlotHeld<'p>>, Failure> {
        let cancel = &step.held.cancel;
        let Some(slot) = self.acquire_slot(step.graph, cancel).await? else {
            return Ok(None);
        };
        let renewal = tokio::spawn(renew_slot(
            self.state.connection(),
            slot.clone(),
            cancel.clone(),
            self.config.lock_ttl() / 3,
        ));
        Ok(Some(SlotHeld {
            pipeline: self,
            slot: Some(slot),
            renewal,
        }))
    }

    async fn load_verify_switch(
        &self,
        step: &Step<'_>,
        dir: &std::path::Path,
        drop_leftover: bool,
        manifest: Option<&Manifest>,
        schema: &[SchemaStatement],
    ) -> Result<Outcome, Failure> {
        let started = Instant::now();
        self.step_create(step, drop_leftover).await?;
        self.step_schema(step, schema)
            .instrument(tracing::info_span!("schema", database = %step.db))
            .await?;
        let report = self.step_load(step, dir).await?;
        let seconds = started.elapsed().as_secs_f64();
        let audit = self
            .step_gates(step, manifest, report.skipped_relationships)
            .instrument(tracing::info_span!("gates", database = %step.db))
            .await?;
        if !audit.holds.is_empty() {
            return self.step_hold(step, audit).await;
        }
        self.step_mark(step)
            .instrument(tracing::info_span!("mark_verified", database = %step.db))
            .await?;
        let (switched, previous) = self.step_switch(step).await?;
        let live = if switched {
            Some(step.event.snapshot_id)
        } else {
            alias_target(step.store(), step.customer()).await?
        };
        let live = self
            .step_repair(step, live)
            .instrument(tracing::info_span!("repair"))
            .await?;
        self.step_cleanup(step, live)
            .instrument(tracing::info_span!("cleanup"))
            .await?;
        self.state
            .record_completed(
                step.customer(),
                step.event.snapshot_id,
                seconds,
                switched.then_some(previous),
            )
            .await?;
        self.state
            .set_last_changed(step.customer(), &audit.changed())
            .await?;
        self.audit(
            "load_finished",
            step.event,
            &[
                ("database", step.db.clone()),
                ("nodes", report.nodes.to_string()),
                ("relationships", report.relationships.to_string()),
                (
                    "skipped_relationships",
                    report.skipped_relationships.to_string(),
                ),
                ("seconds", format!("{seconds:.3}")),
                ("switched", switched.to_string()),
                ("changed", audit.changed()),
                ("census", audit.census_json()),
            ],
        )
        .await?;
        Ok(Outcome::Loaded {
            switched,
            seconds,
            rows: report.nodes + report.relationships,
        })
    }

    /// Step "create": drops a leftover of an interrupted load, then creates
    /// the database marked `loading` under our fence.
    async fn step_create(&self, step: &Step<'_>, drop_leftover: bool) -> Result<(), Failure> {
        let (store, db, fence) = (step.store(), &step.db, step.fence());
        if drop_leftover {
            tracing::info!(%db, "dropping a database left by an interrupted load");
            self.fenced(step, "drop_leftover", store.drop_fenced(db, &fence).await)?;
        }
        self.audit(
            "load_started",
            step.event,
            &[
                ("database", db.clone()),
                ("target", step.graph.target.name.clone()),
            ],
        )
        .await?;
        let created = store
            .create_fenced(db, &fence)
            .instrument(tracing::info_span!("create_database", database = %db))
            .await;
        self.fenced(step, "create", created)
    }

    /// Step "schema": the snapshot's `schema.cypher` (indexes, uniqueness
    /// constraints) on the new, empty database, so the load runs under the
    /// constraints. A failure drops the database like a failed load.
    async fn step_schema(
        &self,
        step: &Step<'_>,
        schema: &[SchemaStatement],
    ) -> Result<(), Failure> {
        for statement in schema {
            if !step.held.lease.alive() {
                return Err(self.abandoned(step.event, step.held, "schema"));
            }
            if let Err(e) = step.store().apply_schema(&step.db, statement).await {
                tracing::warn!(db = %step.db, statement = %statement.describe(), error = %e, "schema statement failed; dropping the new database");
                self.drop_partial(step).await;
                let mut f = Failure::from(e);
                f.message = format!("schema.cypher ({}): {}", statement.describe(), f.message);
                return Err(f);
            }
            tracing::info!(db = %step.db, statement = %statement.describe(), "schema applied");
        }
        Ok(())
    }

    /// Step "load" (with its count check, "verify"): a failure drops the
    /// partial database, unless the lock was lost (then it may be another
    /// holder's, and nothing is dropped).
    async fn step_load(
        &self,
        step: &Step<'_>,
        dir: &std::path::Path,
    ) -> Result<common::load::LoadReport, Failure> {
        let cancel = &step.held.cancel;
        let written = Written::default();
        let writer = FencedWriter {
            store: step.store(),
            lease: step.held.lease.clone(),
            written: &written,
        };
        let method = load_method_for(step.graph.target.load_method, dir);
        let options = LoadOptions::from_config(&self.config).with_method(method);
        let started_ms = chrono::Utc::now().timestamp_millis();
        let publish = |phase: &str| common::state::LoadProgress {
            customer: step.customer().to_string(),
            snapshot_id: step.event.snapshot_id.get(),
            worker: self.worker_id.clone(),
            phase: phase.to_owned(),
            nodes: written.nodes.load(Ordering::Relaxed),
            relationships: written.relationships.load(Ordering::Relaxed),
            started_ms,
            updated_ms: chrono::Utc::now().timestamp_millis(),
        };
        // Progress at most once a second while the load runs; the loop
        // never ends by itself, the load does.
        let report_progress = async {
            loop {
                let p = publish(if written.relationships.load(Ordering::Relaxed) > 0 {
                    "relationships"
                } else {
                    "nodes"
                });
                if let Err(e) = self.state.set_progress(&p).await {
                    tracing::debug!(error = %e, "cannot publish load progress");
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        };
        let result = tokio::select! {
            r = load_snapshot(&writer, &step.db, dir, options, cancel) => r,
            () = report_progress => unreachable!("the progress loop never ends"),
        };
        if result.is_ok() {
            let _ = self.state.set_progress(&publish("verify_switch")).await;
        }
        let result = match result {
            Ok(_) if cancel.is_cancelled() => Err(LoadError::Cancelled),
            other => other,
        };
        match result {
            Ok(report) => {
                tracing::info!(db = %step.db, nodes = report.nodes, relationships = report.relationships, skipped_relationships = report.skipped_relationships, "snapshot loaded and verified");
                self.metrics
                    .skipped_relationships
                    .inc_by(report.skipped_relationships);
                Ok(report)
            }
            Err(e) => {
                let fenced = matches!(&e, LoadError::Graph(g) if g.is_fenced());
                if fenced || !step.held.still_valid().await.unwrap_or(false) {
                    return Err(self.abandoned(step.event, step.held, "load"));
                }
                self.drop_partial(step).await;
                let _ = self
                    .audit("load_aborted", step.event, &[("database", step.db.clone())])
                    .await;
                Err(e.into())
            }
        }
    }

    /// Step "manifest", before anything is written: when `_SUCCESS` holds a
    /// manifest, every data file must be listed, with its size and SHA-256
    /// (read on a blocking thread); a difference refuses the snapshot
    /// (`manifest_mismatch`, permanent: parked) before its database exists.
    async fn step_manifest(
        &self,
        step: &Step<'_>,
        dir: &std::path::Path,
    ) -> Result<Option<Manifest>, Failure> {
        let canonical = dir.to_path_buf();
        let dir = dir.to_path_buf();
        let checked = tokio::task::spawn_blocking(move || {
            let Some(m) = manifest::read(&dir)? else {
                return Ok::<_, SnapshotError>(None);
            };
            let facts = manifest::file_facts(&dir)?;
            let diffs = manifest::compare_files(&m, &facts);
            Ok(Some((m, diffs, facts.len())))
        })
        .await
        .map_err(|e| Failure::new(ErrorClass::Transient, "snapshot_io", e.to_string()))??;
        let Some((m, mut diffs, files)) = checked else {
            return Ok(None);
        };
        if diffs.is_empty() {
            // The files are the ones the ETL job described: now their rows.
            let counted = manifest::count_rows(&canonical, &m).await?;
            diffs = manifest::compare_rows(&m, &counted);
        }
        if diffs.is_empty() {
            tracing::info!(customer = %step.customer(), files, "snapshot files match the manifest");
            return Ok(Some(m));
        }
        Err(Failure::new(
            ErrorClass::Permanent,
            "manifest_mismatch",
            format!(
                "the snapshot's files do not match the manifest in _SUCCESS (nothing was written): {}",
                diffs.join("; ")
            ),
        ))
    }

    /// Step "gates", between verify and switch: the new database's counts
    /// per label and type, the guards against the live database's (only
    /// when this snapshot would go live) and what changed. A failure here
    /// drops the new database like a failed load.
    async fn step_gates(
        &self,
        step: &Step<'_>,
        manifest: Option<&Manifest>,
        skipped: u64,
    ) -> Result<GateAudit, Failure> {
        let result = async {
            let store = step.store();
            let census = store.census(&step.db).await?;
            if let Some(m) = manifest {
                let loaded = manifest::Loaded {
                    nodes: census.nodes,
                    relationship_rows: census.relationships + skipped,
                    labels: census.labels.clone(),
                    types: census.types.clone(),
                };
                let diffs = manifest::compare_counts(m, &loaded);
                if !diffs.is_empty() {
                    return Err(Failure::new(
                        ErrorClass::Permanent,
                        "manifest_mismatch",
                        format!(
                            "the loaded database does not match the manifest in _SUCCESS: {}",
                            diffs.join("; ")
                        ),
                    ));
                }
            }
            let live = alias_target(store, step.customer()).await?;
            let live_census = match live {
                Some(l) => {
                    let db = DatabaseName::new(step.customer().clone(), l).to_string();
                    Some(store.census(&db).await?)
                }
                None => None,
            };
            let mut holds = Vec::new();
            if decide::should_switch(live, step.event.snapshot_id) {
                let guards = self.config.guards_for(step.customer().as_str());
                holds = gates::guard(&census, live_census.as_ref(), &guards);
                holds.extend(self.run_checks(step).await);
            }
            let changed = gates::diff(&census, live_census.as_ref());
            Ok::<_, Failure>(GateAudit {
                census,
                live,
                changed,
                holds,
            })
        }
        .await;
        match result {
            Ok(audit) => Ok(audit),
            Err(f) if f.code == "lock_lost" => Err(self.abandoned(step.event, step.held, "gates")),
            Err(f) => {
                self.drop_partial(step).await;
                Err(f)
            }
        }
    }

    /// The `[[checks]]` that apply to the customer, each read-only against
    /// the new database with `check_timeout`; a failed, failing or
    /// timed-out check is a hold naming it.
    async fn run_checks(&self, step: &Step<'_>) -> Vec<Hold> {
        let timeout = Duration::from_secs(self.config.check_timeout);
        let mut holds = Vec::new();
        for check in self.config.checks_for(step.customer().as_str()) {
            let ran = tokio::time::timeout(
                timeout,
                step.store().read_scalar(&step.db, &check.query, timeout),
            )
            .instrument(tracing::info_span!("check", name = %check.name))
            .await;
            let result = match ran {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "timed out after {} s (check_timeout)",
                    self.config.check_timeout
                )),
            };
            tracing::info!(db = %step.db, check = %check.name, result = ?result, "check ran");
            holds.extend(gates::check_verdict(&check.name, result));
        }
        holds
    }

    /// A snapshot a guard or a check refused: marked `held` (fenced), its
    /// reasons recorded for `producer status` and the audit trail, the alias
    /// left where it is; cleanup keeps it (it counts toward
    /// `keep_databases`).
    async fn step_hold(&self, step: &Step<'_>, audit: GateAudit) -> Result<Outcome, Failure> {
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "hold"));
        }
        match step.store().mark_held(&step.db, &step.fence()).await {
            Ok(()) => {}
            Err(e) if e.is_fenced() => return Err(self.abandoned(step.event, step.held, "hold")),
            Err(e) => {
                // Not held, not verified: it must not stay behind.
                tracing::warn!(db = %step.db, error = %e, "could not mark the database held; dropping it");
                self.drop_partial(step).await;
                return Err(e.into());
            }
        }
        let reasons: Vec<String> = audit
            .holds
            .iter()
            .map(|h| format!("{}: {}", h.code, h.message))
            .collect();
        let mut codes: Vec<&str> = audit.holds.iter().map(|h| h.code).collect();
        codes.dedup();
        for code in &codes {
            self.metrics.hold(code);
        }
        tracing::warn!(customer = %step.customer(), db = %step.db, reasons = %reasons.join("; "), "snapshot held: loaded and verified, not switched");
        let record = serde_json::json!({
            "database": step.db,
            "reasons": audit.holds,
            "changed": audit.changed,
            "live_snapshot": audit.live.map(|l| l.get()),
            "census": audit.census,
            "held_at": chrono::Utc::now().to_rfc3339(),
        });
        self.state
            .record_held(step.customer(), step.event.snapshot_id, &record)
            .await?;
        self.audit(
            "held",
            step.event,
            &[
                ("database", step.db.clone()),
                ("reason", codes.join(",")),
                ("reasons", reasons.join("; ")),
                ("changed", audit.changed()),
                ("census", audit.census_json()),
                (
                    "live",
                    audit.live.map(|l| l.to_string()).unwrap_or_default(),
                ),
            ],
        )
        .await?;
        self.step_cleanup(step, audit.live)
            .instrument(tracing::info_span!("cleanup"))
            .await?;
        Ok(Outcome::Held {
            reasons: audit.holds,
        })
    }

    /// Step "mark": the database becomes `verified`, under a valid fence.
    async fn step_mark(&self, step: &Step<'_>) -> Result<(), Failure> {
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "mark"));
        }
        let marked = step.store().mark_verified(&step.db, &step.fence()).await;
        self.fenced(step, "mark", marked)
    }

    /// Step "switch": the alias onto the new database when it is the newest;
    /// the store refuses a stale fence, an unverified database and a move
    /// backwards. A switch that fails otherwise drops the new database.
    /// Returns (switched, the previous target).
    async fn step_switch(&self, step: &Step<'_>) -> Result<(bool, Option<SnapshotId>), Failure> {
        let (store, customer, db) = (step.store(), step.customer(), &step.db);
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "switch"));
        }
        // Re-read the alias: it is the last word on what is live.
        let previous = alias_target(store, customer).await?;
        if !decide::should_switch(previous, step.event.snapshot_id) {
            tracing::info!(alias = %customer, %db, live = ?previous, "loaded, alias stays on the newer snapshot");
            return Ok((false, previous));
        }
        let switched = store
            .switch_fenced(customer.as_str(), db, &step.fence(), SwitchMode::Forward)
            .instrument(tracing::info_span!("switch", alias = %customer, database = %db))
            .await;
        match switched {
            Ok(_) => {}
            Err(e) if e.is_fenced() => return Err(self.abandoned(step.event, step.held, "switch")),
            Err(e) => {
                tracing::warn!(alias = %customer, %db, error = %e, "switch failed; dropping the new database");
                self.drop_partial(step).await;
                return Err(e.into());
            }
        }
        tracing::info!(alias = %customer, %db, previous = ?previous, "alias switched");
        self.audit(
            "switched",
            step.event,
            &[
                ("database", db.clone()),
                (
                    "previous",
                    previous.map(|p| p.to_string()).unwrap_or_default(),
                ),
            ],
        )
        .await?;
        Ok((true, previous))
    }

    /// Step "repair": an alias left behind on an older verified database
    /// (a switch lost or refused) moves forward to the newest verified one.
    async fn step_repair(
        &self,
        step: &Step<'_>,
        live: Option<SnapshotId>,
    ) -> Result<Option<SnapshotId>, Failure> {
        let states = database_states(step.store(), step.customer()).await?;
        let Some(target) = decide::repair_target(&states, live) else {
            return Ok(live);
        };
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "repair"));
        }
        let db = DatabaseName::new(step.customer().clone(), target).to_string();
        let switched = step
            .store()
            .switch_fenced(
                step.customer().as_str(),
                &db,
                &step.fence(),
                SwitchMode::Forward,
            )
            .await;
        self.fenced(step, "repair", switched.map(|_| ()))?;
        tracing::warn!(alias = %step.customer(), %db, was = ?live, "alias was behind the newest verified database; moved forward");
        self.audit(
            "repaired",
            step.event,
            &[
                ("database", db),
                ("was", live.map(|p| p.to_string()).unwrap_or_default()),
            ],
        )
        .await?;
        Ok(Some(target))
    }

    /// Step "cleanup": drops what `decide::plan_cleanup` says, each drop fenced.
    async fn step_cleanup(&self, step: &Step<'_>, live: Option<SnapshotId>) -> Result<(), Failure> {
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "cleanup"));
        }
        let (store, customer) = (step.store(), step.customer());
        let states = database_states(store, customer).await?;
        let mut dropped = Vec::new();
        for old in decide::plan_cleanup(&states, live, self.config.keep_databases) {
            let db = DatabaseName::new(customer.clone(), old).to_string();
            let result = store.drop_fenced(&db, &step.fence()).await;
            self.fenced(step, "cleanup", result)?;
            tracing::info!(%db, "dropped old database");
            // A held database that is dropped was superseded.
            self.state.clear_held(customer, old).await?;
            dropped.push(db);
        }
        if !dropped.is_empty() {
            self.audit("cleaned", step.event, &[("dropped", dropped.join(","))])
                .await?;
        }
        Ok(())
    }

    /// A store effect's result: a fenced refusal means the lock was lost.
    fn fenced(
        &self,
        step: &Step<'_>,
        what: &str,
        result: Result<(), GraphError>,
    ) -> Result<(), Failure> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_fenced() => Err(self.abandoned(step.event, step.held, what)),
            Err(e) => Err(e.into()),
        }
    }

    /// The one line a worker that lost its lock logs: it drops, switches and
    /// marks nothing more; its in-flight work is abandoned.
    fn abandoned(&self, event: &SnapshotEvent, held: &Held<'_>, step: &str) -> Failure {
        let token = held.token();
        tracing::warn!(customer = %event.customer, snapshot_id = %event.snapshot_id, token, step, "lost the lock; in-flight work abandoned (nothing dropped, switched or marked)");
        held.cancel.cancel();
        Failure::new(
            ErrorClass::Transient,
            "lock_lost",
            format!(
                "lost the lock of {} (token {token}) at step {step}; the work was abandoned to the new holder",
                event.customer
            ),
        )
    }

    /// Best effort, fenced: a failed load never leaves its database behind.
    async fn drop_partial(&self, step: &Step<'_>) {
        let db = &step.db;
        match step.store().drop_fenced(db, &step.fence()).await {
            Ok(()) => tracing::info!(%db, "dropped the partial database"),
            Err(e) if e.is_fenced() => {
                tracing::warn!(%db, error = %e, "not dropping the partial database: a newer lock holder owns it")
            }
            Err(e) => {
                tracing::error!(%db, error = %e, "could not drop the partial database; reconciliation will")
            }
        }
    }

    async fn cancelled(&self, event: &SnapshotEvent, when: &str) -> Result<Outcome, Failure> {
        tracing::info!(customer = %event.customer, snapshot_id = %event.snapshot_id, "cancelled by an operator {when}");
        self.state.incr(Counter::Cancelled, 1).await?;
        self.audit("cancelled", event, &[("when", when.to_owned())])
            .await?;
        Ok(Outcome::Cancelled)
    }

    /// The lock, and when the successful attempt was sent (its TTL runs
    /// from no earlier than that).
    async fn acquire_lock(
        &self,
        customer: &Customer,
    ) -> Result<Option<(LockGuard, Instant)>, Failure> {
        let deadline = Instant::now() + Duration::from_secs(self.config.lock_wait_timeout);
        let mut con = self.state.connection();
        loop {
            let asked_at = Instant::now();
            if let Some(guard) = lock::try_acquire(
                &mut con,
                self.state.keys(),
                customer,
                self.config.lock_ttl(),
            )
            .await?
            {
                return Ok(Some((guard, asked_at)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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

/// What the gates found for one verified database.
struct GateAudit {
    census: common::graph::Census,
    /// The live snapshot it was compared with.
    live: Option<SnapshotId>,
    /// What changed against the live database (`gates::diff`).
    changed: Vec<String>,
    holds: Vec<Hold>,
}

impl GateAudit {
    fn changed(&self) -> String {
        if self.changed.is_empty() {
            "nothing".into()
        } else {
            self.changed.join("; ")
        }
    }
    fn census_json(&self) -> String {
        serde_json::to_string(&self.census).unwrap_or_default()
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

/// The customer's databases on `store` with their lifecycle states.
pub async fn database_states(
    store: &dyn GraphStore,
    customer: &Customer,
) -> Result<Vec<(SnapshotId, DbState)>, GraphError> {
    let mut out = Vec::new();
    for name in store.list_databases().await? {
        let Ok(d) = DatabaseName::parse(&name) else {
            continue;
        };
        if &d.customer == customer {
            out.push((d.snapshot, store.database_state(&name).await?));
        }
    }
    Ok(out)
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

/// Renews the lock every third of its TTL and extends the local lease;
/// cancels the load as soon as the lock is no longer ours, cannot be renewed
/// before it would expire, or the lease ran out while this process was
/// paused.
async fn renew_lock(
    mut con: redis::aio::ConnectionManager,
    guard: LockGuard,
    lease: Lease,
    cancel: CancellationToken,
) {
    let period = guard.ttl() / 3;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if !lease.alive() {
            tracing::error!(
                "customer lock's lease ran out (the process was paused?); aborting the load"
            );
            cancel.cancel();
            return;
        }
        let attempt = Instant::now();
        match guard.renew(&mut con).await {
            Ok(true) => lease.extend(attempt, guard.ttl()),
            Ok(false) => {
                tracing::error!("customer lock was lost; aborting the load");
                cancel.cancel();
                return;
            }
            Err(e) if lease.alive() => {
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
