//! One typed event per outcome, recorded once everywhere it must be seen: the
//! log line, the Prometheus metric, the fleet counter in Redis and the audit
//! entry (the shape of vector's internal events: a struct whose `emit`
//! writes them together, so the four cannot drift apart).
//!
//! The pipeline emits what it decides (superseded, cancelled, loaded,
//! failed); the consumer emits what settling decides (retried, waited for a
//! dependency, parked). An event's Redis writes come first and its metric
//! last, so a metric never counts an outcome whose record failed (the
//! pipeline turns that failure into a `redis_unavailable` attempt).

use common::event::SnapshotEvent;
use common::ident::SnapshotId;
use common::metrics::Metrics;
use common::state::{Counter, FleetState, StateError};
use common::status::{tally, Tally};
use common::vocab::{AuditEvent, FailureCode};

use crate::pipeline::Failure;

/// Where events are recorded: this worker's metrics, the fleet state and
/// the worker's id (every audit entry names it).
#[derive(Clone, Copy)]
pub struct Recorder<'a> {
    /// This process's Prometheus metrics.
    pub metrics: &'a Metrics,
    /// The fleet's counters, records and audit trail in Redis.
    pub state: &'a FleetState,
    /// This worker's id.
    pub worker_id: &'a str,
}

impl Recorder<'_> {
    /// An audit entry about `event`: customer, snapshot, event id and
    /// worker, then `extra`.
    pub async fn audit(
        &self,
        what: AuditEvent,
        event: &SnapshotEvent,
        extra: &[(&str, String)],
    ) -> Result<(), StateError> {
        let mut fields = vec![
            ("customer", event.customer.to_string()),
            ("snapshot_id", event.snapshot_id.to_string()),
            ("event_id", event.event_id.to_string()),
            ("worker", self.worker_id.to_owned()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        self.state.audit(what.as_str(), &fields).await
    }
}

/// A newer snapshot of the customer was seen: this one is not loaded.
pub struct Superseded<'a> {
    /// The superseded snapshot's event.
    pub event: &'a SnapshotEvent,
    /// The newer snapshot.
    pub newer: SnapshotId,
}

impl Superseded<'_> {
    /// Counter, audit entry, log line, metric.
    pub async fn emit(self, r: &Recorder<'_>) -> Result<(), StateError> {
        let (event, newer) = (self.event, self.newer);
        r.state.incr(Counter::Superseded, 1).await?;
        r.audit(
            AuditEvent::Superseded,
            event,
            &[("newer", newer.to_string())],
        )
        .await?;
        tracing::info!(customer = %event.customer, snapshot = %event.snapshot_id, %newer, "superseded by a newer snapshot; not loaded");
        r.metrics.superseded.inc();
        Ok(())
    }
}

/// An operator cancelled the snapshot, before or during its load.
pub struct Cancelled<'a> {
    /// The cancelled snapshot's event.
    pub event: &'a SnapshotEvent,
    /// "before loading" or "during its load".
    pub when: &'a str,
}

impl Cancelled<'_> {
    /// Log line, counter, audit entry, metric.
    pub async fn emit(self, r: &Recorder<'_>) -> Result<(), StateError> {
        let (event, when) = (self.event, self.when);
        tracing::info!(customer = %event.customer, snapshot_id = %event.snapshot_id, "cancelled by an operator {when}");
        r.state.incr(Counter::Cancelled, 1).await?;
        r.audit(AuditEvent::Cancelled, event, &[("when", when.to_owned())])
            .await?;
        r.metrics.cancelled.inc();
        Ok(())
    }
}

/// A snapshot was loaded and verified (and switched when newest); its
/// record and `load_finished` entry are written by the pipeline's last
/// step, which knows their fields.
pub struct Loaded {
    /// Seconds from create to verified.
    pub seconds: f64,
    /// Nodes and relationships written.
    pub rows: u64,
}

impl Loaded {
    /// The status window's tally (best effort) and the metrics.
    pub async fn emit(self, r: &Recorder<'_>) {
        if let Err(e) = tally(r.state, Tally::Completed).await {
            tracing::debug!(error = %e, "cannot tally the completed load");
        }
        r.metrics.completed.inc();
        r.metrics.load_duration.observe(self.seconds);
        if self.seconds > 0.0 {
            r.metrics
                .rows_per_second
                .observe(self.rows as f64 / self.seconds);
        }
    }
}

/// An attempt failed. Of an event that could not be decoded only the metric
/// is recorded (there is no customer to record it for).
pub struct Failed<'a> {
    /// The event, when it could be decoded.
    pub event: Option<&'a SnapshotEvent>,
    /// What failed.
    pub failure: &'a Failure,
}

impl Failed<'_> {
    /// Log line, the customer's last error, counter and audit entry (each
    /// best effort: the failure is what gets reported), metric.
    pub async fn emit(self, r: &Recorder<'_>) {
        let f = self.failure;
        if let Some(event) = self.event {
            tracing::warn!(customer = %event.customer, snapshot_id = %event.snapshot_id, class = f.class.as_str(), code = %f.code, error = %f.message, "snapshot failed");
            let recorded = async {
                r.state.record_error(&event.customer, &f.message).await?;
                r.state.incr(Counter::Failed, 1).await?;
                r.audit(
                    AuditEvent::Failed,
                    event,
                    &[("code", f.code.to_string()), ("error", f.message.clone())],
                )
                .await
            };
            if let Err(e) = recorded.await {
                tracing::debug!(error = %e, "cannot record the failure in Redis");
            }
        }
        r.metrics.fail(f.code.as_str());
    }
}

/// A failed attempt goes to the delay queue and will be tried again.
pub struct Retried {
    /// What is readable of the delivery's event (`consumer::event_fields`).
    pub fields: Vec<(&'static str, String)>,
    /// The attempt that comes next.
    pub attempt: u32,
    /// Seconds until it comes.
    pub delay_s: u64,
    /// Why the last attempt failed.
    pub code: FailureCode,
}

impl Retried {
    /// Log line, counter and audit entry (best effort), metric.
    pub async fn emit(self, r: &Recorder<'_>) {
        tracing::info!(
            attempt = self.attempt,
            delay_s = self.delay_s,
            code = %self.code,
            "retrying later"
        );
        let mut fields = self.fields;
        fields.extend([
            ("attempt", self.attempt.to_string()),
            ("code", self.code.to_string()),
            ("worker", r.worker_id.to_owned()),
        ]);
        if let Err(e) = r.state.incr(Counter::Retried, 1).await {
            tracing::debug!(error = %e, "cannot count the retry");
        }
        r.metrics.retried.inc();
        if let Err(e) = r.state.audit(AuditEvent::Retried.as_str(), &fields).await {
            tracing::debug!(error = %e, "cannot audit the retry");
        }
    }
}

/// A failure that a dependency outage explains: the event waits without
/// using a retry.
pub struct DependencyWait<'a> {
    /// The failure.
    pub failure: &'a Failure,
    /// Seconds until the event comes back.
    pub delay_s: u64,
    /// The attempt it was.
    pub attempt: u32,
    /// Dependency waits so far, this one included.
    pub waits: u32,
}

impl DependencyWait<'_> {
    /// Log line and metric.
    pub fn emit(self, r: &Recorder<'_>) {
        tracing::warn!(
            code = %self.failure.code,
            error = %self.failure.message,
            delay_s = self.delay_s,
            attempt = self.attempt,
            waits = self.waits,
            "a dependency is down: the event waits without using a retry"
        );
        r.metrics.dependency_waits.inc();
    }
}

/// An event is parked in the dead-letter queue (the consumer publishes it
/// there and logs the publication).
pub struct Parked {
    /// What is readable of the delivery's event (`consumer::event_fields`).
    pub fields: Vec<(&'static str, String)>,
    /// Why.
    pub code: FailureCode,
}

impl Parked {
    /// Counter, status window tally and audit entry (best effort), metric.
    pub async fn emit(self, r: &Recorder<'_>) {
        if let Err(e) = r.state.incr(Counter::Parked, 1).await {
            tracing::debug!(error = %e, "cannot count the parked event");
        }
        if let Err(e) = tally(r.state, Tally::Parked).await {
            tracing::debug!(error = %e, "cannot tally the parked event");
        }
        r.metrics.park(self.code.as_str());
        let mut fields = self.fields;
        fields.extend([
            ("reason", self.code.to_string()),
            ("worker", r.worker_id.to_owned()),
        ]);
        if let Err(e) = r.state.audit(AuditEvent::Parked.as_str(), &fields).await {
            tracing::debug!(error = %e, "cannot audit the parked event");
        }
    }
}
