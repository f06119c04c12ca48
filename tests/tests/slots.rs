//! The fleet-wide cap on concurrent loads (drip-feed): the semaphore on real
//! Redis, and real workers sharing one graph database.

use std::time::{Duration, Instant};

use common::config::ServiceUrl;
use common::keys::Keys;
use common::slots::Slot;
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::{wait_for, LoadInterval, TestEnv};

const ID: u64 = 1_767_741_427;

#[tokio::test]
async fn slots_go_first_come_first_served_and_expire_with_their_holder() {
    let mut con = common::state::connect(&ServiceUrl::new(harness::redis_url()))
        .await
        .unwrap();
    let keys = Keys::new(&format!("t-slots-{}", uuid::Uuid::new_v4().simple()));
    let lease = Duration::from_millis(800);
    let (a, b, c) = (
        Slot::new(&keys, "db", lease),
        Slot::new(&keys, "db", lease),
        Slot::new(&keys, "db", lease),
    );
    assert!(a.try_acquire(&mut con, 1).await.unwrap(), "a free slot");
    assert!(!b.try_acquire(&mut con, 1).await.unwrap(), "b queues first");
    assert!(
        !c.try_acquire(&mut con, 1).await.unwrap(),
        "c queues second"
    );
    a.release(&mut con).await.unwrap();
    assert!(
        !c.try_acquire(&mut con, 1).await.unwrap(),
        "c may not jump the queue"
    );
    assert!(
        b.try_acquire(&mut con, 1).await.unwrap(),
        "b, first in line, gets it"
    );
    assert_eq!(Slot::in_use(&mut con, &keys, "db").await.unwrap(), 1);
    // b's holder dies: no renewal, the lease expires, c's turn comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !c.try_acquire(&mut con, 1).await.unwrap(),
        "b's lease is still alive"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !b.renew(&mut con).await.unwrap(),
        "an expired lease cannot be renewed"
    );
    assert!(
        c.try_acquire(&mut con, 1).await.unwrap(),
        "expired lease freed its slot"
    );
    assert!(c.renew(&mut con).await.unwrap());
    // A waiter that stops polling loses its place.
    let d = Slot::new(&keys, "db", lease);
    let e = Slot::new(&keys, "db", lease);
    assert!(!d.try_acquire(&mut con, 1).await.unwrap());
    tokio::time::sleep(Duration::from_millis(900)).await;
    c.release(&mut con).await.unwrap();
    assert!(
        e.try_acquire(&mut con, 1).await.unwrap(),
        "d stopped polling; e goes ahead"
    );
    e.release(&mut con).await.unwrap();
    // Two slots: two holders at once.
    assert!(a.try_acquire(&mut con, 2).await.unwrap() && b.try_acquire(&mut con, 2).await.unwrap());
    assert!(!c.try_acquire(&mut con, 2).await.unwrap());
    for s in [&a, &b, &c, &d] {
        s.release(&mut con).await.unwrap();
    }
}

/// Pairs of consecutive loads (by start) that overlap.
fn overlaps(list: &[LoadInterval]) -> usize {
    list.windows(2).filter(|w| w[0].overlaps(&w[1])).count()
}

async fn run_fleet(cap: u32) -> Vec<LoadInterval> {
    let mut env = TestEnv::new(&format!("cap{cap}"), &format!("max_concurrent_loads = {cap}\nbatch_size = 100\nbatch_pause_ms = 150\nslot_wait_timeout = 60")).unwrap();
    for c in ["alpha", "bravo", "charlie"] {
        sample::write_snapshot(
            &sample::snapshot_dir(&env.data_root(), c, ID),
            &SampleSpec::with_rows(800, SampleFormat::Csv, 1),
        )
        .unwrap();
    }
    for n in 0..3 {
        env.spawn_worker(&format!("worker-{n}")).unwrap();
    }
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 3, Duration::from_secs(120))
        .await;
    let (list, _) = env.loads().await;
    assert_eq!(list.len(), 3, "{list:?}");
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_means_one_load_at_a_time_across_the_fleet_and_two_slots_allow_two() {
    let one = run_fleet(1).await;
    assert_eq!(
        overlaps(&one),
        0,
        "loads overlapped with max_concurrent_loads = 1: {one:?}"
    );
    let two = run_fleet(2).await;
    assert!(
        overlaps(&two) >= 1,
        "with two slots, three workers load concurrently: {two:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_blocks_the_graph_database_no_longer_than_its_lease() {
    // lock_ttl (the slot lease too) is 6 s in the test config.
    let mut env = TestEnv::new(
        "slotkill",
        "max_concurrent_loads = 1\nbatch_size = 50\nbatch_pause_ms = 100\nslot_wait_timeout = 60",
    )
    .unwrap();
    sample::write_snapshot(
        &sample::snapshot_dir(&env.data_root(), "slow", ID),
        &SampleSpec::with_rows(20_000, SampleFormat::Csv, 1),
    )
    .unwrap();
    env.spawn_worker("victim").unwrap();
    env.producer(&["backfill"]).unwrap();
    wait_for("the slow load", Duration::from_secs(30), || async {
        Ok((!env.audit("load_started").await.is_empty()).then_some(()))
    })
    .await
    .unwrap();
    env.kill("victim");
    let killed = Instant::now();
    sample::write_snapshot(
        &sample::snapshot_dir(&env.data_root(), "quick", ID),
        &SampleSpec::with_rows(200, SampleFormat::Csv, 2),
    )
    .unwrap();
    env.spawn_worker("survivor").unwrap();
    env.producer(&["backfill"]).unwrap();
    wait_for(
        "the quick customer's load",
        Duration::from_secs(60),
        || async {
            Ok(env
                .audit("load_started")
                .await
                .iter()
                .any(|e| e.get("customer") == Some("quick"))
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let waited = killed.elapsed();
    assert!(
        waited < Duration::from_secs(6 + 4),
        "the dead worker's slot blocked the database for {waited:?}\n{}",
        env.logs()
    );
    assert!(
        waited >= Duration::from_secs(3),
        "the slot was honoured while its lease lived ({waited:?})"
    );
}
