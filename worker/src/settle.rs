//! Settlement: what becomes of a delivery once the pipeline has an
//! [`Outcome`], decided here as a pure function beside [`crate::decide`]
//! (no I/O: whether a dependency is down is measured by the consumer and
//! passed in). The consumer only executes the answer: ack, hand back,
//! republish to a delay queue, or park.

use std::time::Duration;

use crate::decide::{after_failure, AfterFailure, Ladder};
use crate::pipeline::{Failure, Outcome};

/// What the consumer does with a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Done (loaded, already done, superseded, held, cancelled): ack.
    Ack,
    /// Interrupted by shutdown: hand it back to the broker untouched.
    GiveBack,
    /// Not now, and not a failure (a busy lock, the health gate, a pause):
    /// through the delay queue of `delay`, the attempt count unchanged.
    Delay {
        /// How long until it comes back.
        delay: Duration,
        /// Why, for the log.
        reason: String,
    },
    /// A failure a dependency outage explains: through the delay queue
    /// without using a retry, as dependency wait `waits`.
    WaitForDependency {
        /// How long until it comes back.
        delay: Duration,
        /// Dependency waits so far, this one included.
        waits: u32,
        /// The failure.
        failure: Failure,
    },
    /// A failure to try again: through the delay queue as attempt `attempt`.
    Retry {
        /// The attempt that comes next.
        attempt: u32,
        /// How long until it comes.
        delay: Duration,
        /// The failure.
        failure: Failure,
    },
    /// Into the parking queue, with the failure as its headers.
    Park(Failure),
}

/// The settlement of a delivery whose processing ended in `outcome`.
/// `attempt` is the attempt that just ran (0 for the first delivery),
/// `waits` the dependency waits so far (both from the delivery's headers),
/// `dependency_down` whether a probe found the graph database or Redis down
/// after a failure.
pub fn settle(
    outcome: Outcome,
    attempt: u32,
    waits: u32,
    dependency_down: bool,
    ladder: &Ladder,
) -> Settlement {
    match outcome {
        Outcome::Loaded { .. }
        | Outcome::AlreadyLive
        | Outcome::AlreadyLoaded
        | Outcome::Superseded
        | Outcome::Held { .. }
        | Outcome::Cancelled => Settlement::Ack,
        Outcome::Aborted => Settlement::GiveBack,
        Outcome::Requeue { delay, reason } => Settlement::Delay { delay, reason },
        Outcome::Failed(failure) => {
            match after_failure(failure.class, dependency_down, attempt, waits, ladder) {
                AfterFailure::Wait { delay, waits } => Settlement::WaitForDependency {
                    delay,
                    waits,
                    failure,
                },
                AfterFailure::Retry { attempt, delay } => Settlement::Retry {
                    attempt,
                    delay,
                    failure,
                },
                AfterFailure::Park => Settlement::Park(failure),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use common::vocab::FailureCode;

    use super::*;
    use crate::decide::{ErrorClass, MAX_DEPENDENCY_WAITS};

    fn ladder() -> Ladder {
        Ladder {
            delays: vec![Duration::from_secs(5), Duration::from_secs(25)],
            dependency_wait: Duration::from_secs(30),
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn every_outcome_settles_as_the_table_says() {
        use ErrorClass::*;
        use FailureCode::*;
        let transient = Failure::new(Transient, SnapshotIo, "x");
        let unavailable = Failure::new(Transient, GraphUnavailable, "x");
        let permanent = Failure::new(Permanent, ManifestMismatch, "x");
        let failed = |f: &Failure| Outcome::Failed(f.clone());
        let retry = |attempt, delay, f: &Failure| Settlement::Retry {
            attempt,
            delay: S(delay),
            failure: f.clone(),
        };
        let wait = |waits, f: &Failure| Settlement::WaitForDependency {
            delay: S(30),
            waits,
            failure: f.clone(),
        };
        let park = |f: &Failure| Settlement::Park(f.clone());
        let loaded = Outcome::Loaded {
            switched: true,
            seconds: 1.0,
            rows: 2,
        };
        let held = Outcome::Held {
            reasons: Vec::new(),
        };
        let paused = Outcome::Requeue {
            delay: S(2),
            reason: "paused".into(),
        };
        let delayed = Settlement::Delay {
            delay: S(2),
            reason: "paused".into(),
        };
        // (outcome, attempt, waits, dependency down) → settlement
        let table = [
            (loaded, 0, 0, false, Settlement::Ack),
            (Outcome::AlreadyLive, 0, 0, false, Settlement::Ack),
            (Outcome::AlreadyLoaded, 3, 0, false, Settlement::Ack),
            (Outcome::Superseded, 0, 0, false, Settlement::Ack),
            (held, 0, 0, false, Settlement::Ack),
            (Outcome::Cancelled, 0, 0, false, Settlement::Ack),
            (Outcome::Aborted, 1, 0, false, Settlement::GiveBack),
            // Not a failure: the attempt count stays.
            (paused, 1, 0, false, delayed),
            // Transient failures climb the ladder, then park.
            (failed(&transient), 0, 0, false, retry(1, 5, &transient)),
            (failed(&transient), 1, 0, false, retry(2, 25, &transient)),
            (failed(&transient), 2, 0, false, park(&transient)),
            // Permanent failures park at once.
            (failed(&permanent), 0, 0, false, park(&permanent)),
            // A dependency that is down: wait without using a retry …
            (failed(&unavailable), 1, 0, true, wait(1, &unavailable)),
            (failed(&permanent), 0, 4, true, wait(5, &permanent)),
            // … up to MAX_DEPENDENCY_WAITS, then the ladder again.
            (
                failed(&unavailable),
                0,
                MAX_DEPENDENCY_WAITS,
                true,
                retry(1, 5, &unavailable),
            ),
            // A dependency that answers: the failure counts against the event.
            (failed(&unavailable), 2, 0, false, park(&unavailable)),
        ];
        for (outcome, attempt, waits, down, want) in table {
            let why = format!("{outcome:?} attempt {attempt} waits {waits} dependency down {down}");
            assert_eq!(
                settle(outcome, attempt, waits, down, &ladder()),
                want,
                "{why}"
            );
        }
    }
}
