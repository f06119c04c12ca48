//! The AMQP topology every snapswitch process agrees on: exchange and queue
//! names, their arguments, and the header names of the contract. Pure data;
//! [`crate::adapters::broker`] declares it.
//!
//! ```text
//! <ns>.events (direct) --snapshot--> <ns>.work   (x-max-priority 10, DLX <ns>.dead)
//! <ns>.delay  (direct) --<secs>s---> <ns>.delay.<secs>s (TTL, DLX <ns>.events/snapshot)
//! <ns>.dead   (fanout) ------------> <ns>.dead   (the parking queue)
//! ```
//! A delayed message (a retry, or a requeue after a busy lock or a refused
//! health gate) waits in the delay queue of its delay, then dead-letters back to
//! the work queue with its priority intact. One queue per delay, because
//! per-message TTLs in a shared queue only expire at its head.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Routing key of snapshot events on the events exchange.
pub const ROUTING_KEY: &str = "snapshot";
/// Priorities 0-9 are used; the queue allows 0-10 so that 9 is not the cap.
pub const MAX_QUEUE_PRIORITY: i32 = 10;

/// W3C trace context, reserved now, carried through every republish.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// W3C trace state, carried with `traceparent`.
pub const HEADER_TRACESTATE: &str = "tracestate";
/// Which attempt this delivery is (0 for the first; retries count up).
pub const HEADER_ATTEMPT: &str = "x-snapswitch-attempt";
/// On parked messages: why, and who parked it.
pub const HEADER_REASON: &str = "x-snapswitch-reason";
/// On parked messages: `transient` or `permanent`.
pub const HEADER_ERROR_CLASS: &str = "x-snapswitch-error-class";
/// On parked messages: the failure's message.
pub const HEADER_ERROR: &str = "x-snapswitch-error";
/// On parked messages: the worker that parked it.
pub const HEADER_WORKER: &str = "x-snapswitch-worker";
/// On parked messages: that worker's host.
pub const HEADER_HOST: &str = "x-snapswitch-host";
/// On parked messages: when (RFC 3339).
pub const HEADER_FAILED_AT: &str = "x-snapswitch-failed-at";

/// The names of one namespace's exchanges and queues, and its delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// `<ns>.events`: where snapshot events are published.
    pub events_exchange: String,
    /// `<ns>.work`: the priority queue workers consume.
    pub work_queue: String,
    /// `<ns>.delay`: routes a message to the queue of its delay.
    pub delay_exchange: String,
    /// `<ns>.dead`: the parking exchange.
    pub dead_exchange: String,
    /// `<ns>.dead`: the parking queue.
    pub dead_queue: String,
    /// Every delay queue this deployment uses, shortest first.
    pub delays: Vec<Duration>,
}

impl Topology {
    /// `delays` are the waits the worker may ask for (retry ladder, health
    /// gate, busy lock); each becomes one queue. Sub-second parts are dropped.
    pub fn new(namespace: &str, delays: impl IntoIterator<Item = Duration>) -> Self {
        let mut delays: Vec<Duration> = delays
            .into_iter()
            .map(|d| Duration::from_secs(d.as_secs().max(1)))
            .collect();
        delays.sort();
        delays.dedup();
        Topology {
            events_exchange: format!("{namespace}.events"),
            work_queue: format!("{namespace}.work"),
            delay_exchange: format!("{namespace}.delay"),
            dead_exchange: format!("{namespace}.dead"),
            dead_queue: format!("{namespace}.dead"),
            delays,
        }
    }

    /// The work queue's arguments: priorities and its dead-letter exchange.
    pub fn work_queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-max-priority"),
            AMQPValue::LongInt(MAX_QUEUE_PRIORITY),
        );
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(self.dead_exchange.as_str())),
        );
        args
    }

    /// Name and routing key of the delay queue for `delay`; the delay must be
    /// one of [`Topology::delays`] (see [`Topology::delay_for`]).
    pub fn delay_queue(&self, delay: Duration) -> (String, String) {
        let key = format!("{}s", delay.as_secs().max(1));
        (format!("{}.delay.{key}", self.work_queue_prefix()), key)
    }

    /// The shortest declared delay that is at least `wanted` (or the longest).
    pub fn delay_for(&self, wanted: Duration) -> Duration {
        self.delays
            .iter()
            .copied()
            .find(|d| *d >= wanted)
            .or_else(|| self.delays.last().copied())
            .unwrap_or(Duration::from_secs(1))
    }

    /// The arguments of the delay queue for `delay`: its TTL and the way back
    /// to the work queue.
    pub fn delay_queue_args(&self, delay: Duration) -> FieldTable {
        let mut args = FieldTable::default();
        let ttl_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        args.insert(
            ShortString::from("x-message-ttl"),
            AMQPValue::LongLongInt(ttl_ms),
        );
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(self.events_exchange.as_str())),
        );
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            AMQPValue::LongString(LongString::from(ROUTING_KEY)),
        );
        args
    }

    fn work_queue_prefix(&self) -> &str {
        self.work_queue
            .strip_suffix(".work")
            .unwrap_or(&self.work_queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_sorted_deduplicated_and_named_by_seconds() {
        let t = Topology::new("ns", [8, 2, 4, 2, 60].map(Duration::from_secs));
        assert_eq!(t.delays, [2, 4, 8, 60].map(Duration::from_secs));
        assert_eq!(
            t.delay_queue(Duration::from_secs(4)),
            ("ns.delay.4s".into(), "4s".into())
        );
        assert_eq!(t.delay_for(Duration::from_secs(5)), Duration::from_secs(8));
        assert_eq!(
            t.delay_for(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn work_queue_has_priority_and_dead_letter_exchange() {
        let t = Topology::new("ns", []);
        let args = t.work_queue_args();
        let inner = args.inner();
        assert_eq!(inner.get("x-max-priority"), Some(&AMQPValue::LongInt(10)));
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("ns.dead".into()))
        );
    }

    #[test]
    fn delay_queue_dead_letters_back_to_the_work_queue() {
        let t = Topology::new("ns", [Duration::from_secs(2)]);
        let args = t.delay_queue_args(Duration::from_secs(2));
        let inner = args.inner();
        assert_eq!(
            inner.get("x-message-ttl"),
            Some(&AMQPValue::LongLongInt(2000))
        );
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("ns.events".into()))
        );
        assert_eq!(
            inner.get("x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("snapshot".into()))
        );
    }
}
