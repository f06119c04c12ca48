//! The circuit breaker around the graph database and Redis: after
//! `threshold` consecutive failures that say "unavailable", the worker stops
//! taking work (it cancels its consumer, so the broker gives the events to
//! healthy workers) and probes every `probe_interval` until both answer again.
//! Pure state; the consumer does the I/O.

use std::time::{Duration, Instant};

/// Whether deliveries flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Consuming.
    Closed,
    /// Open since the instant; probe after `probe_interval`.
    Open(Instant),
}

/// The circuit breaker: opens after `threshold` consecutive failures that
/// a dependency explains, then lets a probe through every `probe_interval`.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    probe_interval: Duration,
    consecutive: u32,
    state: State,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, probe_interval: Duration) -> Self {
        Breaker {
            threshold,
            probe_interval,
            consecutive: 0,
            state: State::Closed,
        }
    }

    /// A dependency failed; returns true when this failure opened the breaker.
    pub fn failure(&mut self, now: Instant) -> bool {
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive >= self.threshold && self.state == State::Closed {
            self.state = State::Open(now);
            return true;
        }
        false
    }

    /// A dependency answered (a load got past it, or a probe succeeded).
    pub fn success(&mut self) {
        self.consecutive = 0;
        self.state = State::Closed;
    }

    /// When the next probe is due (`None` while closed).
    pub fn probe_at(&self) -> Option<Instant> {
        match self.state {
            State::Open(since) => Some(since + self.probe_interval),
            State::Closed => None,
        }
    }

    /// A probe failed: stay open for another interval.
    pub fn probe_failed(&mut self, now: Instant) {
        self.state = State::Open(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(5));
        assert!(!b.failure(t0));
        b.success(); // a success in between resets the count
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert!(b.failure(t0), "third consecutive failure opens");
        assert!(matches!(b.state, State::Open(_)));
        assert!(!b.failure(t0), "already open");
        assert_eq!(b.probe_at(), Some(t0 + Duration::from_secs(5)));
        let t1 = t0 + Duration::from_secs(5);
        b.probe_failed(t1);
        assert_eq!(b.probe_at(), Some(t1 + Duration::from_secs(5)));
        b.success();
        assert_eq!(b.state, State::Closed);
        assert_eq!(b.probe_at(), None);
    }
}
