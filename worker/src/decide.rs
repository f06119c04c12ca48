//! The worker's decisions, as plain functions of plain data: what to do with an
//! event given the customer's state, whether to switch, what to clean up, what
//! the health gate says and what happens after a failure. No I/O here; the
//! table-driven tests below are the specification.

use std::time::Duration;

use common::graph::{DbState, Health};
use common::ident::SnapshotId;
use common::targets::HealthThresholds;

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

/// What to do with a snapshot event, given the customer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Load into a new database; `drop_leftover` when a database of that name
    /// exists but never became live (a crashed or interrupted load).
    Load {
        /// A database of that name exists but never became live: drop it first.
        drop_leftover: bool,
    },
    /// The alias already points at this snapshot (a redelivery): ack.
    AlreadyLive,
    /// Loaded before, and the alias has moved past it: ack.
    AlreadyLoaded,
    /// A newer snapshot is live or on its way: loading this one is wasted work.
    Superseded {
        /// The newer snapshot.
        newer: SnapshotId,
    },
}

/// The decision for `snapshot` given the customer's `view`; with
/// `skip_superseded` false an older snapshot is loaded anyway (the alias
/// still never moves back).
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

/// Databases to drop, decided under the customer's lock (so no live lock
/// holder is loading any of them):
/// - never the alias target;
/// - unverified ones always: `loading` (partial loads of crashed or
///   fenced-out workers), `retired` (rolled back from) and `unmarked`
///   (made by hand or by a tool, or a leftover without a mark): none of
///   them can ever become live;
/// - complete ones (`verified`, or every database on a store without marks)
///   beyond the newest `keep`; these and held ones count toward `keep`;
/// - `held` ones never while they are newer than the alias target (they
///   may still be approved); once older (a newer snapshot went live) they
///   are superseded and dropped.
pub fn plan_cleanup(
    databases: &[(SnapshotId, DbState)],
    alias_target: Option<SnapshotId>,
    keep: usize,
) -> Vec<SnapshotId> {
    let mut sorted = databases.to_vec();
    sorted.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
    sorted.dedup_by_key(|d| d.0);
    let mut complete = 0usize;
    let mut drop = Vec::new();
    for (id, state) in sorted {
        let live = Some(id) == alias_target;
        match state {
            _ if live => complete += 1,
            DbState::Held if alias_target.is_none_or(|a| id > a) => complete += 1,
            DbState::Held => drop.push(id),
            DbState::Loading | DbState::Retired | DbState::Unmarked => drop.push(id),
            DbState::Verified | DbState::NotTracked => {
                complete += 1;
                if complete > keep {
                    drop.push(id);
                }
            }
        }
    }
    drop.sort_unstable();
    drop
}

/// Where a repair should move an existing alias: the newest verified
/// database when it is newer than the alias target (a switch that failed, or a late
/// switch that was refused after a newer one was lost). `None`: leave it.
/// Only marked (verified) databases count: on a store without marks,
/// nothing is repaired.
pub fn repair_target(
    databases: &[(SnapshotId, DbState)],
    alias_target: Option<SnapshotId>,
) -> Option<SnapshotId> {
    let alias = alias_target?;
    let newest = databases
        .iter()
        .filter(|(_, s)| *s == DbState::Verified)
        .map(|(id, _)| *id)
        .max()?;
    (newest > alias).then_some(newest)
}

/// `Err(reason)` when the graph database is too busy to take another load.
/// A new load adds one database, so the gate refuses at `max_databases` (the
/// config's, or the server's own limit when that is lower).
pub fn health_verdict(health: &Health, limits: &HealthThresholds) -> Result<(), String> {
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

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed later (a dependency, a lock, a file not there yet): retried.
    Transient,
    /// Will fail again (the snapshot or the event is wrong): parked at once.
    Permanent,
}

impl ErrorClass {
    /// `transient` or `permanent`, as the parking headers say.
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
    Retry {
        /// The attempt that comes next.
        attempt: u32,
        /// How long until it comes.
        delay: Duration,
    },
    /// A dependency was down: back through the delay queue of `delay` with
    /// the attempt count unchanged (not the event's fault), as wait `waits`.
    Wait {
        /// How long until it comes back.
        delay: Duration,
        /// Dependency waits so far, this one included.
        waits: u32,
    },
    /// Into the parking queue.
    Park,
}

/// The retry ladder: `delays[n]` before retry n+1 (its length is
/// `max_retries`, see `Config::retry_delays`), and the wait of an event
/// whose dependency is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    /// The delay before each retry, in order.
    pub delays: Vec<Duration>,
    /// The delay of an event whose dependency is down.
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
mod held_tests {
    use super::*;
    use DbState::*;

    fn id(n: u64) -> SnapshotId {
        SnapshotId::new(1_700_000_000 + n).unwrap()
    }

    #[test]
    fn a_held_database_is_kept_while_newer_than_live_and_counts_toward_keep() {
        type Case = (
            &'static str,
            Vec<(SnapshotId, DbState)>,
            Option<SnapshotId>,
            usize,
            Vec<SnapshotId>,
        );
        let cases: Vec<Case> = vec![
            (
                "held newer than live: kept, counts",
                vec![(id(1), Verified), (id(2), Verified), (id(3), Held)],
                Some(id(2)),
                2,
                vec![id(1)],
            ),
            (
                "held kept even beyond keep",
                vec![(id(2), Verified), (id(3), Held), (id(4), Held)],
                Some(id(2)),
                1,
                vec![],
            ),
            (
                "superseded held: dropped",
                vec![(id(2), Held), (id(3), Verified)],
                Some(id(3)),
                2,
                vec![id(2)],
            ),
            (
                "held first load, no alias",
                vec![(id(1), Held)],
                None,
                1,
                vec![],
            ),
        ];
        for (name, dbs, live, keep, want) in cases {
            assert_eq!(plan_cleanup(&dbs, live, keep), want, "{name}");
        }
        // Never repaired onto, never live without an approval.
        assert_eq!(repair_target(&[(id(3), Held)], Some(id(2))), None);
        assert!(!Held.may_go_live());
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
        // A store without marks: every database counts as complete.
        let untracked = |v: &[u64]| {
            v.iter()
                .map(|n| (id(*n), DbState::NotTracked))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            plan_cleanup(&untracked(&[1, 2, 3, 4]), Some(id(4)), 2),
            ids(&[1, 2])
        );
        // The alias target survives even when it is not among the newest.
        assert_eq!(
            plan_cleanup(&untracked(&[1, 2, 3, 4]), Some(id(1)), 2),
            ids(&[2])
        );
        assert_eq!(plan_cleanup(&untracked(&[1]), Some(id(1)), 1), ids(&[]));
        assert_eq!(plan_cleanup(&untracked(&[3, 1, 2]), None, 1), ids(&[1, 2]));
    }

    #[test]
    fn cleanup_counts_only_verified_databases() {
        use DbState::*;
        let ids = |v: &[u64]| v.iter().copied().map(id).collect::<Vec<_>>();
        type Dbs = &'static [(u64, DbState)];
        // (databases, alias target, keep, expected drops)
        let cases: &[(Dbs, Option<u64>, usize, &[u64])] = &[
            // Scenario 3: a partial S1 between S0 and the live S2 is dropped,
            // the complete S0 kept as the previous one.
            (
                &[(0, Verified), (1, Loading), (2, Verified)],
                Some(2),
                2,
                &[1],
            ),
            // Retired (rolled back from): dropped.
            (&[(0, Verified), (2, Retired)], Some(0), 2, &[2]),
            // Unmarked: never counted, dropped.
            (
                &[(0, Verified), (1, Unmarked), (2, Verified)],
                Some(2),
                2,
                &[1],
            ),
            // The live target is kept even when it is not verified.
            (&[(1, Loading)], Some(1), 2, &[]),
            // Verified beyond keep.
            (
                &[(1, Verified), (2, Verified), (3, Verified)],
                Some(3),
                2,
                &[1],
            ),
        ];
        for (dbs, live, keep, want) in cases {
            let dbs: Vec<_> = dbs.iter().map(|(n, s)| (id(*n), *s)).collect();
            assert_eq!(
                plan_cleanup(&dbs, live.map(id), *keep),
                ids(want),
                "{dbs:?} live {live:?} keep {keep}"
            );
        }
    }

    #[test]
    fn only_verified_databases_go_live() {
        use DbState::*;
        assert!(Verified.may_go_live());
        for s in [Loading, Retired, Unmarked, NotTracked] {
            assert!(!s.may_go_live(), "{s:?}");
        }
    }

    #[test]
    fn repair_moves_the_alias_forward_to_the_newest_verified_only() {
        use DbState::*;
        let dbs = |v: &[(u64, DbState)]| v.iter().map(|(n, s)| (id(*n), *s)).collect::<Vec<_>>();
        type Dbs = &'static [(u64, DbState)];
        // (databases, alias target, expected repair target)
        let cases: &[(Dbs, Option<u64>, Option<u64>)] = &[
            // Scenario 1 after a lost switch: the alias on S1, S2 verified.
            (&[(1, Verified), (2, Verified)], Some(1), Some(2)),
            (&[(1, Verified), (2, Verified)], Some(2), None),
            // A newer partial or retired database is no repair target.
            (&[(1, Verified), (2, Loading)], Some(1), None),
            (&[(1, Verified), (2, Retired)], Some(1), None),
            (&[(1, Verified), (2, Unmarked)], Some(1), None),
            // No alias at all: not a repair's business (no switch ever
            // happened, or an operator removed it).
            (&[(1, Verified), (2, Verified)], None, None),
            // A store without marks: nothing is repaired.
            (&[(1, NotTracked), (2, NotTracked)], Some(1), None),
        ];
        for (list, alias, want) in cases {
            assert_eq!(
                repair_target(&dbs(list), alias.map(id)),
                want.map(id),
                "{list:?} alias {alias:?}"
            );
        }
    }

    #[test]
    fn health_gate() {
        let limits = HealthThresholds {
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
