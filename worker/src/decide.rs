//! The worker's decisions, as plain functions of plain data: what to do with an
//! event given the customer's state, whether to switch, what to clean up, what
//! the health gate says and what happens after a failure. No I/O here; the
//! table-driven tests below are the specification.

use std::time::Duration;

use common::graph::Health;
use common::ident::SnapshotId;

/// What the graph database and Redis say about one customer, read under its lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerView {
    /// The snapshot the alias points to.
    pub alias_target: Option<SnapshotId>,
    /// The customer's snapshot databases that exist now.
    pub databases: Vec<SnapshotId>,
    /// The newest snapshot id any worker has received for this customer.
    pub newest_seen: Option<SnapshotId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Load into a new database; `drop_leftover` when a database of that name
    /// exists but never became live (a crashed or interrupted load).
    Load { drop_leftover: bool },
    /// The alias already points at this snapshot (a redelivery): ack.
    AlreadyLive,
    /// Loaded before, and the alias has moved past it: ack.
    AlreadyLoaded,
    /// A newer snapshot is live or on its way: loading this one is wasted work.
    Superseded { newer: SnapshotId },
}

pub fn decide(snapshot: SnapshotId, view: &CustomerView, skip_superseded: bool) -> Decision {
    if view.alias_target == Some(snapshot) {
        return Decision::AlreadyLive;
    }
    let exists = view.databases.contains(&snapshot);
    let alias_newer = view.alias_target.is_some_and(|a| a > snapshot);
    if exists && alias_newer {
        return Decision::AlreadyLoaded;
    }
    if skip_superseded {
        let newest = view.alias_target.max(view.newest_seen);
        if let Some(newer) = newest.filter(|n| *n > snapshot) {
            return Decision::Superseded { newer };
        }
    }
    Decision::Load {
        drop_leftover: exists,
    }
}

/// The alias only ever moves forward.
pub fn should_switch(alias_target: Option<SnapshotId>, loaded: SnapshotId) -> bool {
    alias_target.is_none_or(|a| loaded > a)
}

/// Databases to drop: all but the newest `keep`, and never the alias target.
pub fn plan_cleanup(
    databases: &[SnapshotId],
    alias_target: Option<SnapshotId>,
    keep: usize,
) -> Vec<SnapshotId> {
    let mut sorted = databases.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    let mut drop: Vec<SnapshotId> = sorted
        .into_iter()
        .skip(keep)
        .filter(|id| Some(*id) != alias_target)
        .collect();
    drop.sort_unstable();
    drop
}

/// Thresholds of the health gate (from the config).
#[derive(Debug, Clone, Copy)]
pub struct HealthLimits {
    pub max_databases: usize,
    pub heap_threshold_percent: u8,
    pub pagecache_threshold_percent: u8,
}

/// `Err(reason)` when the graph database is too busy to take another load.
/// A new load adds one database, so the gate refuses at `max_databases` (the
/// config's, or the server's own limit when that is lower).
pub fn health_verdict(health: &Health, limits: &HealthLimits) -> Result<(), String> {
    if health.databases >= limits.max_databases {
        return Err(format!(
            "graph server holds {} databases, max_databases is {}",
            health.databases, limits.max_databases
        ));
    }
    if let Some(server) = health.max_databases.filter(|m| health.databases >= *m) {
        return Err(format!(
            "graph server holds {} databases, its own limit (dbms.max_databases) is {server}",
            health.databases
        ));
    }
    if let Some(p) = health
        .memory_used_percent
        .filter(|p| *p > f64::from(limits.heap_threshold_percent))
    {
        return Err(format!(
            "memory at {p:.1}%, heap_threshold_percent is {}",
            limits.heap_threshold_percent
        ));
    }
    if let Some(p) = health
        .pagecache_used_percent
        .filter(|p| *p > f64::from(limits.pagecache_threshold_percent))
    {
        return Err(format!(
            "page cache at {p:.1}%, pagecache_threshold_percent is {}",
            limits.pagecache_threshold_percent
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// What becomes of a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back through the delay queue of `delay`, as attempt `attempt`.
    Retry { attempt: u32, delay: Duration },
    /// A dependency was down: back through the delay queue of `delay` with
    /// the attempt count unchanged (not the event's fault), as wait `waits`.
    Wait { delay: Duration, waits: u32 },
    /// Into the parking queue.
    Park,
}

/// The retry ladder: `delays[n]` before retry n+1 (its length is
/// `max_retries`, see `Config::retry_delays`), and the wait of an event
/// whose dependency is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub delays: Vec<Duration>,
    pub dependency_wait: Duration,
}

/// How often one event may wait for a dependency without using a retry.
/// While the circuit breaker is open nothing is consumed, so waits pile up
/// only when the event is tried again and the dependency is down right
/// after each time: an event that brings the graph database down (a poison
/// pill) climbs the ladder after this many and is parked in the end.
pub const MAX_DEPENDENCY_WAITS: u32 = 50;

/// A failure while a dependency (graph database, Redis) does not answer is
/// not the snapshot's fault: the event waits without using a retry, up to
/// [`MAX_DEPENDENCY_WAITS`] times (`waits`: how often it has waited so far).
/// Otherwise transient failures climb the ladder until it ends; permanent
/// ones are parked at once. `attempt` is the attempt that just failed, 0 for
/// the first delivery.
pub fn after_failure(
    class: ErrorClass,
    dependency_down: bool,
    attempt: u32,
    waits: u32,
    ladder: &Ladder,
) -> AfterFailure {
    if dependency_down && waits < MAX_DEPENDENCY_WAITS {
        return AfterFailure::Wait {
            delay: ladder.dependency_wait,
            waits: waits + 1,
        };
    }
    if class == ErrorClass::Permanent {
        return AfterFailure::Park;
    }
    match ladder.delays.get(attempt as usize) {
        Some(delay) => AfterFailure::Retry {
            attempt: attempt + 1,
            delay: *delay,
        },
        None => AfterFailure::Park,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> SnapshotId {
        SnapshotId::new(1_700_000_000 + n).unwrap()
    }

    fn view(alias: Option<u64>, dbs: &[u64], seen: Option<u64>) -> CustomerView {
        CustomerView {
            alias_target: alias.map(id),
            databases: dbs.iter().copied().map(id).collect(),
            newest_seen: seen.map(id),
        }
    }

    #[test]
    fn decide_table() {
        use Decision::*;
        let cases = [
            // (snapshot, alias, databases, newest seen, skip_superseded, expected)
            (
                5,
                None,
                &[][..],
                Some(5),
                true,
                Load {
                    drop_leftover: false,
                },
            ),
            (
                5,
                Some(3),
                &[3][..],
                Some(5),
                true,
                Load {
                    drop_leftover: false,
                },
            ),
            (5, Some(5), &[3, 5][..], Some(5), true, AlreadyLive),
            (3, Some(5), &[3, 5][..], Some(5), true, AlreadyLoaded),
            (3, Some(5), &[3, 5][..], Some(5), false, AlreadyLoaded),
            (
                5,
                Some(3),
                &[3, 5][..],
                Some(5),
                true,
                Load {
                    drop_leftover: true,
                },
            ),
            (
                4,
                Some(5),
                &[5][..],
                Some(5),
                true,
                Superseded { newer: id(5) },
            ),
            (
                4,
                Some(3),
                &[3][..],
                Some(6),
                true,
                Superseded { newer: id(6) },
            ),
            (
                4,
                Some(3),
                &[3][..],
                Some(6),
                false,
                Load {
                    drop_leftover: false,
                },
            ),
            (
                4,
                Some(5),
                &[5][..],
                Some(5),
                false,
                Load {
                    drop_leftover: false,
                },
            ),
            (
                4,
                None,
                &[4][..],
                Some(4),
                true,
                Load {
                    drop_leftover: true,
                },
            ),
        ];
        for (snap, alias, dbs, seen, skip, want) in cases {
            assert_eq!(
                decide(id(snap), &view(alias, dbs, seen), skip),
                want,
                "snapshot {snap}, alias {alias:?}, dbs {dbs:?}, seen {seen:?}, skip {skip}"
            );
        }
    }

    #[test]
    fn alias_never_moves_backwards() {
        assert!(should_switch(None, id(1)));
        assert!(should_switch(Some(id(1)), id(2)));
        assert!(!should_switch(Some(id(2)), id(2)));
        assert!(!should_switch(Some(id(3)), id(2)));
    }

    #[test]
    fn cleanup_keeps_newest_and_alias_target() {
        let ids = |v: &[u64]| v.iter().copied().map(id).collect::<Vec<_>>();
        assert_eq!(
            plan_cleanup(&ids(&[1, 2, 3, 4]), Some(id(4)), 2),
            ids(&[1, 2])
        );
        // The alias target survives even when it is not among the newest.
        assert_eq!(plan_cleanup(&ids(&[1, 2, 3, 4]), Some(id(1)), 2), ids(&[2]));
        assert_eq!(plan_cleanup(&ids(&[1]), Some(id(1)), 1), ids(&[]));
        assert_eq!(plan_cleanup(&ids(&[3, 1, 2]), None, 1), ids(&[1, 2]));
    }

    #[test]
    fn health_gate() {
        let limits = HealthLimits {
            max_databases: 10,
            heap_threshold_percent: 85,
            pagecache_threshold_percent: 90,
        };
        let ok = Health {
            databases: 9,
            max_databases: Some(100),
            memory_used_percent: Some(85.0),
            pagecache_used_percent: None,
        };
        let server_full = Health {
            max_databases: Some(9),
            ..ok.clone()
        };
        assert!(health_verdict(&server_full, &limits)
            .unwrap_err()
            .contains("dbms.max_databases) is 9"));
        assert!(health_verdict(&ok, &limits).is_ok());
        let full = Health {
            databases: 10,
            ..ok.clone()
        };
        assert!(health_verdict(&full, &limits)
            .unwrap_err()
            .contains("max_databases is 10"));
        let hot = Health {
            memory_used_percent: Some(85.1),
            ..ok.clone()
        };
        assert!(health_verdict(&hot, &limits)
            .unwrap_err()
            .contains("memory at 85.1%"));
        let cache = Health {
            pagecache_used_percent: Some(95.0),
            ..ok
        };
        assert!(health_verdict(&cache, &limits)
            .unwrap_err()
            .contains("page cache"));
    }

    #[test]
    fn retry_ladder_then_park() {
        use AfterFailure::*;
        let secs = |n: u64| Duration::from_secs(n);
        let ladder = Ladder {
            delays: [2, 4, 8].map(secs).to_vec(),
            dependency_wait: secs(60),
        };
        let t = ErrorClass::Transient;
        let p = ErrorClass::Permanent;
        let none = Ladder {
            delays: Vec::new(),
            dependency_wait: secs(5),
        };
        let max = MAX_DEPENDENCY_WAITS;
        let wait = |delay: u64, waits: u32| Wait {
            delay: secs(delay),
            waits,
        };
        // (class, dependency down, attempt that failed, waits so far, ladder) -> outcome
        let table = [
            (
                t,
                false,
                0,
                0,
                &ladder,
                Retry {
                    attempt: 1,
                    delay: secs(2),
                },
            ),
            (
                t,
                false,
                1,
                0,
                &ladder,
                Retry {
                    attempt: 2,
                    delay: secs(4),
                },
            ),
            (
                t,
                false,
                2,
                7,
                &ladder,
                Retry {
                    attempt: 3,
                    delay: secs(8),
                },
            ),
            (t, false, 3, 0, &ladder, Park),
            (t, false, 99, 0, &ladder, Park),
            (p, false, 0, 0, &ladder, Park),
            (t, false, 0, 0, &none, Park),
            // A dependency down uses no retry, whatever the attempt.
            (t, true, 0, 0, &ladder, wait(60, 1)),
            (t, true, 3, 4, &ladder, wait(60, 5)),
            (t, true, 99, 0, &ladder, wait(60, 1)),
            (p, true, 0, 0, &ladder, wait(60, 1)),
            (t, true, 0, 0, &none, wait(5, 1)),
            (t, true, 0, max - 1, &ladder, wait(60, max)),
            // An event that keeps finding it down: the ladder after all.
            (
                t,
                true,
                0,
                max,
                &ladder,
                Retry {
                    attempt: 1,
                    delay: secs(2),
                },
            ),
            (t, true, 3, max, &ladder, Park),
        ];
        for (class, down, attempt, waits, ladder, want) in table {
            assert_eq!(
                after_failure(class, down, attempt, waits, ladder),
                want,
                "{class:?} down={down} attempt={attempt} waits={waits}"
            );
        }
    }
}
