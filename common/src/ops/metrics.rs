//! The Prometheus metrics of one process (prometheus-client; counters get
//! `_total` appended). Labels stay bounded: failure codes, queue names and
//! graph target names, never customers or snapshot ids. Fleet-wide totals live in Redis
//! ([`crate::adapters::state`]); these are this process's own.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A failure code label (bounded: the documented codes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The failure code.
    pub code: String,
}

/// A park or hold reason label (bounded: the documented reasons).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: String,
}

/// A graph target's name (bounded: the configured targets).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// The target's name.
    pub target: String,
}

/// Constructs the per-target slot-wait histograms.
type HistogramFn = fn() -> Histogram;

fn slot_wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// A queue label: `work` or `parked`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// The queue.
    pub queue: String,
}

/// Which process the metrics describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The worker's metrics.
    Worker,
    /// The producer's metrics.
    Producer,
}

/// This process's Prometheus metrics, each field one `snapswitch_*` family.
pub struct Metrics {
    registry: Registry,
    /// `snapswitch_discovered`: Snapshots this worker saw first in the fleet.
    pub discovered: Counter,
    /// `snapswitch_completed`: Snapshots loaded and verified.
    pub completed: Counter,
    /// `snapswitch_failed`: Failed load attempts, by failure code.
    pub failed: Family<CodeLabel, Counter>,
    /// `snapswitch_retried`: Events sent back through the retry ladder.
    pub retried: Counter,
    /// `snapswitch_parked`: Events parked in the dead-letter queue, by reason.
    pub parked: Family<ReasonLabel, Counter>,
    /// `snapswitch_superseded`: Events skipped because a newer snapshot exists.
    pub superseded: Counter,
    /// `snapswitch_cancelled`: Events cancelled by an operator.
    pub cancelled: Counter,
    /// `snapswitch_load_duration_seconds`: Time from lock to verified load.
    pub load_duration: Histogram,
    /// `snapswitch_load_rows_per_second`: Rows (nodes + relationships) loaded per second.
    pub rows_per_second: Histogram,
    /// `snapswitch_loads_in_flight`: Events being processed now.
    pub loads_in_flight: Gauge,
    /// `snapswitch_lock_held_seconds`: Longest time a customer lock held by this process has been held.
    pub lock_held_seconds: Gauge<f64, AtomicU64>,
    /// `snapswitch_breaker_open`: 1 while the circuit breaker keeps this worker from consuming.
    pub breaker_open: Gauge,
    /// Times the circuit breaker opened.
    pub breaker_opened: Counter,
    /// Events delayed because a dependency was down (no retry used).
    pub dependency_waits: Counter,
    /// `snapswitch_draining`: 1 while the worker is shutting down.
    pub draining: Gauge,
    /// `snapswitch_queue_messages`: Ready messages in the work and parking queues.
    pub queue_messages: Family<QueueLabel, Gauge>,
    /// `snapswitch_workers_live`: Workers with a heartbeat in Redis.
    pub workers_live: Gauge,
    /// `snapswitch_status_updated_timestamp_seconds`: Unix time of the last fleet-status refresh.
    pub status_updated: Gauge<f64, AtomicU64>,
    /// `snapswitch_published`: Snapshot events published.
    pub published: Counter,
    /// `snapswitch_publish_failures`: Publish attempts that failed.
    pub publish_failures: Counter,
    /// Seconds waited for a load slot, per graph target.
    pub slot_wait: Family<TargetLabel, Histogram, HistogramFn>,
    /// Load slots in use fleet-wide, per graph target.
    pub slots_in_use: Family<TargetLabel, Gauge>,
    /// Loader: relationships skipped as dangling (`dangling_relationships = "skip"`).
    pub skipped_relationships: Counter,
    /// Loader: node rows skipped as duplicates (`duplicate_nodes = "skip"`).
    pub skipped_nodes: Counter,
    /// Snapshots held (loaded and verified, not live), by hold reason.
    pub held: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// The metrics of a process in `role`, registered.
    pub fn new(role: Role) -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("snapswitch"),
            discovered: Counter::default(),
            completed: Counter::default(),
            failed: Family::default(),
            retried: Counter::default(),
            parked: Family::default(),
            superseded: Counter::default(),
            cancelled: Counter::default(),
            load_duration: Histogram::new(exponential_buckets(0.05, 2.0, 16)),
            rows_per_second: Histogram::new(exponential_buckets(100.0, 2.0, 16)),
            loads_in_flight: Gauge::default(),
            lock_held_seconds: Gauge::default(),
            breaker_open: Gauge::default(),
            breaker_opened: Counter::default(),
            dependency_waits: Counter::default(),
            draining: Gauge::default(),
            queue_messages: Family::default(),
            workers_live: Gauge::default(),
            status_updated: Gauge::default(),
            published: Counter::default(),
            publish_failures: Counter::default(),
            slot_wait: Family::new_with_constructor(slot_wait_histogram as HistogramFn),
            slots_in_use: Family::default(),
            skipped_relationships: Counter::default(),
            skipped_nodes: Counter::default(),
            held: Family::default(),
        };
        let r = &mut m.registry;
        if role == Role::Worker {
            r.register(
                "held",
                "Snapshots loaded and verified but held (not live) by a guard or a check, by reason (empty, shrink, growth, check)",
                m.held.clone(),
            );
            r.register(
                "skipped_relationships",
                "Relationships not loaded because their start or end id matched no node (dangling_relationships = \"skip\")",
                m.skipped_relationships.clone(),
            );
            r.register(
                "skipped_nodes",
                "Node rows not loaded because their id was already taken in their ID space (duplicate_nodes = \"skip\")",
                m.skipped_nodes.clone(),
            );
            r.register(
                "discovered",
                "Snapshots this worker saw first in the fleet",
                m.discovered.clone(),
            );
            r.register(
                "completed",
                "Snapshots loaded and verified",
                m.completed.clone(),
            );
            r.register(
                "failed",
                "Failed load attempts, by failure code",
                m.failed.clone(),
            );
            r.register(
                "retried",
                "Events sent back through the retry ladder",
                m.retried.clone(),
            );
            r.register(
                "parked",
                "Events parked in the dead-letter queue, by reason",
                m.parked.clone(),
            );
            r.register(
                "superseded",
                "Events skipped because a newer snapshot exists",
                m.superseded.clone(),
            );
            r.register(
                "cancelled",
                "Events cancelled by an operator",
                m.cancelled.clone(),
            );
            r.register(
                "load_duration_seconds",
                "Time from lock to verified load",
                m.load_duration.clone(),
            );
            r.register(
                "load_rows_per_second",
                "Rows (nodes + relationships) loaded per second",
                m.rows_per_second.clone(),
            );
            r.register(
                "loads_in_flight",
                "Events being processed now",
                m.loads_in_flight.clone(),
            );
            r.register(
                "lock_held_seconds",
                "Longest time a customer lock held by this process has been held",
                m.lock_held_seconds.clone(),
            );
            r.register(
                "breaker_open",
                "1 while the circuit breaker keeps this worker from consuming",
                m.breaker_open.clone(),
            );
            r.register(
                "breaker_opened",
                "Times the circuit breaker opened",
                m.breaker_opened.clone(),
            );
            r.register(
                "dependency_waits",
                "Events delayed without using a retry because the graph database or Redis was down",
                m.dependency_waits.clone(),
            );
            r.register(
                "draining",
                "1 while the worker is shutting down",
                m.draining.clone(),
            );
            r.register(
                "slot_wait_seconds",
                "Time waited for a fleet-wide load slot, by graph target",
                m.slot_wait.clone(),
            );
            r.register(
                "slots_in_use",
                "Load slots in use on a graph target, fleet-wide (from Redis)",
                m.slots_in_use.clone(),
            );
        } else {
            r.register(
                "published",
                "Snapshot events published",
                m.published.clone(),
            );
            r.register(
                "publish_failures",
                "Publish attempts that failed",
                m.publish_failures.clone(),
            );
        }
        r.register(
            "queue_messages",
            "Ready messages in the work and parking queues",
            m.queue_messages.clone(),
        );
        r.register(
            "workers_live",
            "Workers with a heartbeat in Redis",
            m.workers_live.clone(),
        );
        r.register(
            "status_updated_timestamp_seconds",
            "Unix time of the last fleet-status refresh",
            m.status_updated.clone(),
        );
        m
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).ok();
        out
    }

    /// Counts a failure with `code`.
    pub fn fail(&self, code: &str) {
        self.failed
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    /// Counts a snapshot held for `reason`.
    pub fn hold(&self, reason: &str) {
        self.held
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts an event parked for `reason`.
    pub fn park(&self, reason: &str) {
        self.parked
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Creates every per-target series at 0, so each target shows from the start.
    pub fn init_targets<'a>(&self, targets: impl IntoIterator<Item = &'a str>) {
        for t in targets {
            let label = TargetLabel { target: t.into() };
            drop(self.slots_in_use.get_or_create(&label));
            drop(self.slot_wait.get_or_create(&label));
        }
    }

    /// Records `seconds` waited for a slot on `target`.
    pub fn observe_slot_wait(&self, target: &str, seconds: f64) {
        self.slot_wait
            .get_or_create(&TargetLabel {
                target: target.into(),
            })
            .observe(seconds);
    }

    /// Sets the slots in use on `target`.
    pub fn set_slots_in_use(&self, target: &str, in_use: u64) {
        self.slots_in_use
            .get_or_create(&TargetLabel {
                target: target.into(),
            })
            .set(i64::try_from(in_use).unwrap_or(i64::MAX));
    }

    /// Sets the ready messages of `queue`.
    pub fn set_queue(&self, queue: &str, messages: u32) {
        self.queue_messages
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .set(i64::from(messages));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_metrics_have_the_contract_names_and_no_unbounded_labels() {
        let m = Metrics::new(Role::Worker);
        m.completed.inc();
        m.fail("graph_unavailable");
        m.park("event_not_json");
        m.load_duration.observe(1.5);
        m.set_queue("work", 3);
        m.init_targets(["default", "east"]);
        m.set_slots_in_use("east", 1);
        m.observe_slot_wait("east", 0.5);
        let text = m.encode();
        for name in [
            "snapswitch_completed_total 1",
            "snapswitch_failed_total{code=\"graph_unavailable\"} 1",
            "snapswitch_parked_total{reason=\"event_not_json\"} 1",
            "snapswitch_load_duration_seconds_count 1",
            "snapswitch_queue_messages{queue=\"work\"} 3",
            "snapswitch_loads_in_flight 0",
            "snapswitch_lock_held_seconds",
            "snapswitch_slots_in_use{target=\"east\"} 1",
            "snapswitch_slots_in_use{target=\"default\"} 0",
            "snapswitch_slot_wait_seconds_count{target=\"east\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        assert!(!text.contains("snapswitch_published_total"));
    }

    #[test]
    fn producer_metrics() {
        let m = Metrics::new(Role::Producer);
        m.published.inc();
        let text = m.encode();
        assert!(text.contains("snapswitch_published_total 1"), "{text}");
        assert!(!text.contains("snapswitch_completed_total"));
    }
}
