//! One event, start to finish: validate → lock → health gate → decide → create
//! → load → verify → switch → clean up → record. Every step's I/O goes through
//! an adapter from `common`; every choice is a function in [`crate::decide`].
//! The result is an [`Outcome`]; what to do with the delivery is the consumer's
//! business.
//!
//! The steps live by concern: [`failure`] (what a failed attempt is and how
//! each error is classified), [`held`] (the customer's lock, its lease and
//! renewal, the load slot), [`load`] (create, schema, load under the lease),
//! [`verify`] (manifest, census, guards and checks, hold) and [`switch`]
//! (mark, switch, repair, cleanup, and what a lost lock abandons).

mod failure;
mod held;
mod load;
mod switch;
mod verify;

pub use failure::Failure;
pub use held::LocksHeld;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::Config;
use common::event::SnapshotEvent;
use common::graph::{DbState, Fence, GraphStore};
use common::ident::{Customer, DatabaseName, SnapshotId};
use common::metrics::Metrics;
use common::snapshot::layout;
use common::snapshot::manifest::Manifest;
use common::snapshot::schema::SchemaStatement;
use common::state::FleetState;
use common::vocab::AuditEvent;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use common::alias::{alias_target, database_states, databases_of};
use common::vocab::FailureCode;

use crate::decide::{self, CustomerView, Decision, ErrorClass};
use crate::events::{Cancelled, Failed, Loaded, Recorder, Superseded};
use crate::graphs::{Graphs, TargetGraph};

use held::{Held, Lease};

/// How an event ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Loaded (and switched when newest), with how long it took and how
    /// many rows it wrote.
    Loaded {
        /// The alias moved onto the new database.
        switched: bool,
        /// From create to verified.
        seconds: f64,
        /// Nodes and relationships written.
        rows: u64,
    },
    /// The alias already points at this snapshot (a redelivery).
    AlreadyLive,
    /// Loaded before (or held): nothing to do.
    AlreadyLoaded,
    /// A newer snapshot exists: not loaded.
    Superseded,
    /// Loaded and verified, but a guard or a check refused it: kept as
    /// `held`, not live (the alias stays where it is); the event is acked.
    Held {
        /// Why: one per guard or check that refused it.
        reasons: Vec<crate::gates::Hold>,
    },
    /// An operator cancelled the snapshot (before or during its load).
    Cancelled,
    /// Not now, and not a failure: try again after `delay` (busy lock, health gate).
    Requeue {
        /// When to look again.
        delay: Duration,
        /// Why, for the log.
        reason: String,
    },
    /// Interrupted by shutdown: give the event back untouched.
    Aborted,
    /// The attempt failed; settling decides retry or park.
    Failed(Failure),
}

/// The worker's pipeline: everything one event needs, shared by the
/// consumer's tasks.
pub struct Pipeline {
    /// The configuration.
    pub config: Arc<Config>,
    /// The graph targets, each with its store; events go to their
    /// customer's target.
    pub graphs: Graphs,
    /// The fleet's state in Redis (locks, slots, counters, records, audit).
    pub state: FleetState,
    /// This worker's id (`<host>-<pid>-<random>`).
    pub worker_id: String,
    /// This process's metrics.
    pub metrics: Arc<Metrics>,
    /// When each lock this process holds now was taken (for the
    /// lock-hold gauge).
    pub locks_held: LocksHeld,
}

/// How long a paused customer's event waits before it is looked at again.
const PAUSED_RECHECK: Duration = Duration::from_secs(2);

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
                let failure = Failure::new(
                    ErrorClass::Permanent,
                    FailureCode::of_event(&e),
                    e.to_string(),
                );
                Failed {
                    event: None,
                    failure: &failure,
                }
                .emit(&self.recorder())
                .await;
                return Outcome::Failed(failure);
            }
        };
        // The consumer's `process` span declared these fields.
        let span = tracing::Span::current();
        span.record("customer", tracing::field::display(&event.customer));
        span.record("snapshot_id", event.snapshot_id.get());
        match self.process_event(&event, shutdown).await {
            Ok(outcome) => outcome,
            Err(f) if shutdown.is_cancelled() && f.code == FailureCode::LoadCancelled => {
                Outcome::Aborted
            }
            Err(f) => {
                Failed {
                    event: Some(&event),
                    failure: &f,
                }
                .emit(&self.recorder())
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
            && matches!(&result, Err(f) if f.code == FailureCode::LoadCancelled)
        {
            result = self.cancelled(event, "during its load").await;
        }
        self.state.clear_progress(&event.customer).await.ok();
        held.release().await;
        result
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
                AuditEvent::SlotBusy,
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
        let Err(reason) = decide::health_verdict(&health, &graph.target.health) else {
            return Ok(None);
        };
        tracing::info!(customer = %step.customer(), graph_target = target, %reason, "health gate refused the load; requeued");
        self.audit(
            AuditEvent::HealthRefused,
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
            self.audit(AuditEvent::AlreadyHeld, event, &[]).await?;
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
                self.audit(AuditEvent::AlreadyLive, event, &[]).await?;
                Err(Outcome::AlreadyLive)
            }
            Decision::AlreadyLoaded => {
                self.audit(AuditEvent::AlreadyLoaded, event, &[]).await?;
                Err(Outcome::AlreadyLoaded)
            }
            Decision::Superseded { newer } => {
                Superseded { event, newer }.emit(&self.recorder()).await?;
                Err(Outcome::Superseded)
            }
            Decision::Load { drop_leftover } => Ok(drop_leftover),
        })
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
            AuditEvent::LoadFinished,
            step.event,
            &[
                ("database", step.db.clone()),
                ("nodes", report.nodes.to_string()),
                ("relationships", report.relationships.to_string()),
                (
                    "skipped_relationships",
                    report.skipped_relationships.to_string(),
                ),
                ("skipped_nodes", report.skipped_nodes.to_string()),
                ("seconds", format!("{seconds:.3}")),
                ("switched", switched.to_string()),
                ("changed", audit.changed()),
                ("census", audit.census_json()),
            ],
        )
        .await?;
        let rows = report.nodes + report.relationships;
        Loaded { seconds, rows }.emit(&self.recorder()).await;
        Ok(Outcome::Loaded {
            switched,
            seconds,
            rows,
        })
    }

    async fn cancelled(&self, event: &SnapshotEvent, when: &str) -> Result<Outcome, Failure> {
        Cancelled { event, when }.emit(&self.recorder()).await?;
        Ok(Outcome::Cancelled)
    }

    /// Where this worker's events are recorded.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder {
            metrics: &self.metrics,
            state: &self.state,
            worker_id: &self.worker_id,
        }
    }

    async fn audit(
        &self,
        what: AuditEvent,
        event: &SnapshotEvent,
        extra: &[(&str, String)],
    ) -> Result<(), Failure> {
        self.recorder().audit(what, event, extra).await?;
        Ok(())
    }
}
