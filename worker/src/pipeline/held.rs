//! The customer's lock while one event is handled (with its renewal, the
//! operator-cancel watch and the local lease) and the target's load slot:
//! each held by a guard that releases it on every way out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::event::SnapshotEvent;
use common::graph::Fence;
use common::ident::{Customer, SnapshotId};
use common::lock::LockGuard;
use common::lock_wait::{wait_for_lock, LockWait};
use common::slots::Slot;
use common::state::FleetState;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::graphs::TargetGraph;

use super::*;

/// Acquisition times of the locks held now, keyed by a per-process counter.
#[derive(Default)]
pub struct LocksHeld {
    next: std::sync::atomic::AtomicU64,
    held: std::sync::Mutex<std::collections::HashMap<u64, Instant>>,
}

impl LocksHeld {
    pub(super) fn taken(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.held.lock() {
            h.insert(id, Instant::now());
        }
        id
    }

    pub(super) fn released(&self, id: u64) {
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
pub(super) struct Held<'p> {
    pub(super) pipeline: &'p Pipeline,
    pub(super) guard: Option<LockGuard>,
    pub(super) lease: Lease,
    pub(super) cancel: CancellationToken,
    pub(super) operator_cancel: Arc<AtomicBool>,
    pub(super) renewal: tokio::task::JoinHandle<()>,
    pub(super) watch: tokio::task::JoinHandle<()>,
    pub(super) held_id: u64,
}

impl Held<'_> {
    pub(super) fn fence(&self, customer: &Customer) -> Fence {
        Fence {
            customer: customer.to_string(),
            token: self.token(),
        }
    }

    pub(super) fn token(&self) -> u64 {
        self.guard.as_ref().map_or(0, |g| g.fence)
    }

    /// The lock is still ours: the local lease has not run out and Redis
    /// says we hold it with our token.
    pub(super) async fn still_valid(&self) -> Result<bool, Failure> {
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

    pub(super) async fn release(mut self) {
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

    pub(super) fn stop_tasks(&self) {
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
                guard.release(&mut con).await.ok();
            });
        }
    }
}

/// The load slot while a load runs, with its renewal; released on every
/// way out like [`Held`].
pub(super) struct SlotHeld<'p> {
    pub(super) pipeline: &'p Pipeline,
    pub(super) slot: Option<Slot>,
    pub(super) renewal: tokio::task::JoinHandle<()>,
}

impl SlotHeld<'_> {
    pub(super) async fn release(mut self) {
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
                slot.release(&mut con).await.ok();
            });
        }
    }
}

/// The lock as this process knows it without asking Redis: valid until
/// the last successful renewal's start plus `lock_ttl`. A process that was
/// paused (SIGSTOP, a stall) past that knows on waking that it may have
/// lost the lock, before any other task of it runs a round trip.
#[derive(Clone)]
pub(super) struct Lease {
    pub(super) valid_until: Arc<std::sync::Mutex<Instant>>,
}

impl Lease {
    pub(super) fn new(from: Instant, ttl: Duration) -> Self {
        Lease {
            valid_until: Arc::new(std::sync::Mutex::new(from + ttl)),
        }
    }
    pub(super) fn alive(&self) -> bool {
        self.valid_until
            .lock()
            .map(|t| Instant::now() < *t)
            .unwrap_or(false)
    }
    pub(super) fn extend(&self, from: Instant, ttl: Duration) {
        if let Ok(mut t) = self.valid_until.lock() {
            *t = (*t).max(from + ttl);
        }
    }
}

impl Pipeline {
    /// Step "lock": the customer's lock, its fencing token lifted above
    /// the highest one the store has seen, its renewal and the cancel watch.
    pub(super) async fn step_lock<'p>(
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

    /// Step "slot": the fleet-wide load slot (drip-feed), taken after the
    /// customer lock and before the database exists.
    pub(super) async fn step_slot<'p>(
        &'p self,
        step: &Step<'_>,
    ) -> Result<Option<SlotHeld<'p>>, Failure> {
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

    /// The lock, and when the successful attempt was sent (its TTL runs
    /// from no earlier than that); waits up to `lock_wait_timeout`.
    pub(super) async fn acquire_lock(
        &self,
        customer: &Customer,
    ) -> Result<Option<(LockGuard, Instant)>, Failure> {
        let wait = LockWait {
            ttl: self.config.lock_ttl(),
            within: Duration::from_secs(self.config.lock_wait_timeout),
            poll: Duration::from_millis(200),
        };
        let mut con = self.state.connection();
        Ok(wait_for_lock(&mut con, self.state.keys(), customer, wait).await?)
    }

    /// Waits up to `slot_wait_timeout` for a load slot on `graph`'s target
    /// (polling keeps its place in the queue); `None` when none came free.
    /// Wait time is measured per target.
    pub(super) async fn acquire_slot(
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
                    slot.release(&mut con).await.ok();
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        .instrument(span)
        .await
    }
}

/// Renews the load slot's lease; cancels the load when it is lost.
pub(super) async fn renew_slot(
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
pub(super) async fn watch_cancel(
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
pub(super) async fn renew_lock(
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
