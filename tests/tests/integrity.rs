//! The live alias serves only a complete, verified, newest snapshot, even when
//! workers pause (SIGSTOP past `lock_ttl`), die or race. Each scenario was
//! first reproduced here against the unfenced pipeline (see the report of
//! issue 13), with real worker processes and a real FalkorDB.

use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::hold_proxy::HoldProxy;
use harness::services::RedisNode;
use harness::{wait_for, TestEnv};

const S0: u64 = 1_767_741_427;
const S1: u64 = S0 + 60;
const S2: u64 = S0 + 120;

fn write(env: &TestEnv, customer: &str, id: u64, rows: usize) -> SampleSpec {
    let spec = SampleSpec::with_rows(rows, SampleFormat::Csv, id);
    sample::write_snapshot(&sample::snapshot_dir(&env.data_root(), customer, id), &spec).unwrap();
    spec
}

fn event(customer: &str, id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7(),
        "customer": customer,
        "snapshot_id": id,
        "path": format!("{customer}/{id}"),
        "priority": 4,
        "created_at": "2026-11-22T10:00:00Z",
    }))
    .unwrap()
}

/// Waits until a worker declared the topology (the work queue exists).
async fn topology(env: &TestEnv) {
    let r = wait_for("the work queue", Duration::from_secs(30), || async {
        Ok(env.queue_depth(&env.work_queue()).await.ok())
    })
    .await;
    assert!(r.is_ok(), "{r:?}\n{}", env.logs());
}

fn alias(env: &TestEnv) -> Option<String> {
    env.falkor.get("snapswitch:alias:acme")
}

async fn wait_alias(env: &TestEnv, id: u64, timeout: Duration) {
    let want = format!("acme-{id}");
    let r = wait_for(&format!("alias on {want}"), timeout, || async {
        Ok((alias(env).as_deref() == Some(want.as_str())).then_some(()))
    })
    .await;
    assert!(r.is_ok(), "{r:?}\n{}", env.logs());
}

async fn wait_audit(env: &TestEnv, event: &str, n: usize, timeout: Duration) {
    let r = wait_for(&format!("{n} `{event}` entries"), timeout, || async {
        Ok((env.audit(event).await.len() >= n).then_some(()))
    })
    .await;
    assert!(r.is_ok(), "{r:?}\n{}", env.logs());
}

/// Scenario 1: worker A passed every check before its switch, then paused
/// with the switch command on the wire (held by a proxy); B loaded and
/// switched the newer S2; A's switch arrives late. The alias must stay on S2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_switch_of_a_paused_worker_never_moves_the_alias_backwards() {
    let mut env = TestEnv::new(
        "late-switch",
        "workers = 1\nlock_ttl = 3\nlock_wait_timeout = 1\nkeep_databases = 2\nreconcile_interval = 3600",
    )
    .unwrap();
    let proxy = HoldProxy::start(env.falkor.port).await.unwrap();
    // The switch is the one script call that names the alias key.
    proxy.arm(&[b"EVALSHA", b"snapswitch:alias:acme"]);
    write(&env, "acme", S1, 200);
    let spec2 = write(&env, "acme", S2, 300);
    let proxied = proxy.url();
    env.spawn_env(
        "worker-a",
        "worker",
        &[],
        &[("SNAPSWITCH_GRAPH_URL", &proxied)],
    )
    .unwrap();
    topology(&env).await;
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    assert!(
        proxy.wait_held(Duration::from_secs(60)).await,
        "worker A never sent its switch\n{}",
        env.logs()
    );
    env.signal("worker-a", "STOP");
    // A's lock expires while it is stopped.
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.spawn_worker("worker-b").unwrap();
    env.publish_raw(&event("acme", S2), 4).await.unwrap();
    wait_alias(&env, S2, Duration::from_secs(60)).await;

    // A's switch reaches FalkorDB now, then A runs again.
    proxy.release();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.signal("worker-a", "CONT");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        alias(&env).as_deref(),
        Some(format!("acme-{S2}").as_str()),
        "the alias moved backwards\n{}",
        env.logs()
    );
    assert_eq!(
        env.falkor.counts("acme"),
        (spec2.node_count(), spec2.relationship_count())
    );
    let log = env.log_of("worker-a");
    assert!(
        log.contains("lost the lock") && log.contains("abandoned"),
        "A says it abandoned its work\n{log}"
    );
}

/// Scenario 2: A paused mid-load past `lock_ttl`; the same snapshot went to
/// B, which dropped A's leftover and reloaded it; A resumes. A must not drop
/// or write into B's load: B's snapshot goes live, complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_worker_never_drops_the_current_holders_load() {
    let mut env = TestEnv::new(
        "stale-drop",
        "workers = 1\nlock_ttl = 3\nlock_wait_timeout = 1\nbatch_size = 100\nbatch_pause_ms = 250\nkeep_databases = 2\nreconcile_interval = 3600",
    )
    .unwrap();
    let spec = write(&env, "acme", S1, 2000);
    env.spawn_worker("worker-a").unwrap();
    topology(&env).await;
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    wait_audit(&env, "load_started", 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.signal("worker-a", "STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;

    // The same snapshot again (a redelivery), to B.
    env.spawn_worker("worker-b").unwrap();
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    wait_audit(&env, "load_started", 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.signal("worker-a", "CONT");

    wait_alias(&env, S1, Duration::from_secs(90)).await;
    assert_eq!(
        env.falkor.counts("acme"),
        (spec.node_count(), spec.relationship_count()),
        "B's load is complete\n{}",
        env.logs()
    );
    assert_eq!(
        env.queue_depth(&env.dead_queue()).await.unwrap(),
        0,
        "nothing parked\n{}",
        env.logs()
    );
    let log = env.log_of("worker-a");
    assert!(
        log.contains("lost the lock") && log.contains("abandoned"),
        "A says it abandoned its work\n{log}"
    );
}

/// Scenario 3: a worker SIGKILLed mid-load of S1 while S2 is loaded and
/// switched. Cleanup must not keep the partial S1 as "previous" (and drop
/// the complete S0); rollback goes to S0; a rollback onto a database that
/// was never verified is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_database_never_becomes_previous_nor_live_by_rollback() {
    let mut env = TestEnv::new(
        "partial-rollback",
        "workers = 1\nlock_ttl = 3\nlock_wait_timeout = 1\nbatch_size = 100\nbatch_pause_ms = 200\nkeep_databases = 2\nreconcile_interval = 3600",
    )
    .unwrap();
    let spec0 = write(&env, "acme", S0, 200);
    env.spawn_worker("worker-a").unwrap();
    topology(&env).await;
    env.publish_raw(&event("acme", S0), 4).await.unwrap();
    wait_alias(&env, S0, Duration::from_secs(60)).await;

    write(&env, "acme", S1, 2000);
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    wait_audit(&env, "load_started", 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    env.kill("worker-a");
    assert!(env.falkor.graphs().contains(&format!("acme-{S1}")));

    write(&env, "acme", S2, 200);
    env.publish_raw(&event("acme", S2), 4).await.unwrap();
    env.spawn_worker("worker-b").unwrap();
    wait_alias(&env, S2, Duration::from_secs(60)).await;
    let cleaned = wait_for("cleanup after S2", Duration::from_secs(30), || async {
        Ok((!env.falkor.graphs().contains(&format!("acme-{S1}"))).then_some(()))
    })
    .await;
    assert!(
        cleaned.is_ok(),
        "the partial S1 was kept: {:?}\n{}",
        env.falkor.graphs(),
        env.logs()
    );
    assert!(
        env.falkor.graphs().contains(&format!("acme-{S0}")),
        "the complete S0 was dropped: {:?}",
        env.falkor.graphs()
    );

    let out = env.producer(&["rollback", "--customer", "acme"]).unwrap();
    assert_eq!(
        out.trim(),
        format!("acme: alias moved back from {S2} to {S0}")
    );
    assert_eq!(
        env.falkor.counts("acme"),
        (spec0.node_count(), spec0.relationship_count())
    );

    // A graph that was never verified (made by hand, or a partial load).
    let partial = S0 - 60;
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(format!("acme-{partial}"))
        .arg("CREATE (:Person {id: 1})")
        .query(&mut env.falkor.connection())
        .unwrap();
    let (code, out, err) = env
        .run(
            "producer",
            &[
                "rollback",
                "--customer",
                "acme",
                "--to",
                &partial.to_string(),
            ],
        )
        .unwrap();
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("acme-{partial}")) && err.contains("not verified"),
        "{err}"
    );
    assert_eq!(alias(&env).as_deref(), Some(format!("acme-{S0}").as_str()));
}

/// After the coordination Redis lost its data, the fencing counter restarts
/// low: the next lock must still be accepted by the store's fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_data_loss_does_not_fence_out_every_later_switch() {
    let redis_node = RedisNode::start().unwrap();
    let mut env = TestEnv::with_services(
        "flushall",
        "workers = 1\nlock_ttl = 3\nreconcile_interval = 3600",
        &harness::amqp_url(),
        &redis_node.url(),
    )
    .unwrap();
    write(&env, "acme", S0, 200);
    let spec1 = write(&env, "acme", S1, 300);
    env.spawn_worker("worker").unwrap();
    topology(&env).await;
    // A few loads raise the store's fence.
    for _ in 0..3 {
        env.publish_raw(&event("acme", S0), 4).await.unwrap();
    }
    wait_alias(&env, S0, Duration::from_secs(60)).await;
    wait_audit(&env, "already_live", 2, Duration::from_secs(30)).await;
    let mut con = redis::Client::open(redis_node.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    wait_alias(&env, S1, Duration::from_secs(60)).await;
    assert_eq!(
        env.falkor.counts("acme"),
        (spec1.node_count(), spec1.relationship_count())
    );
}

/// A graph key named like the customer's alias, not made by snapswitch,
/// blocks every switch: the event is parked with a reason naming the key and
/// how to clear it, the new database is not left behind, and `worker doctor`
/// and reconciliation report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_alias_key_is_reported_by_parking_doctor_and_reconciliation() {
    let mut env = TestEnv::new(
        "stray",
        "workers = 1\nlock_ttl = 3\nmax_retries = 0\nreconcile_interval = 2",
    )
    .unwrap();
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg("acme")
        .arg("CREATE (:Handmade {id: 1})")
        .query(&mut env.falkor.connection())
        .unwrap();
    write(&env, "acme", S1, 200);
    env.spawn_worker("worker").unwrap();
    topology(&env).await;
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    env.wait_counter("parked", 1, Duration::from_secs(60)).await;
    let parked = env.drain_dead().await.unwrap();
    let reason = parked
        .first()
        .and_then(|(h, _)| h.get("x-snapswitch-error").cloned())
        .unwrap_or_default();
    assert!(
        reason.contains("graph acme exists but is not managed by snapswitch")
            && reason.contains("GRAPH.DELETE acme"),
        "{parked:?}"
    );
    // The failed switch left no database behind; the stray is untouched.
    assert_eq!(env.falkor.graphs(), vec!["acme".to_owned()]);
    assert_eq!(env.falkor.counts("acme").0, 1);

    let (_, out, err) = env.run("worker", &["doctor"]).unwrap();
    assert!(
        out.contains("! stray alias: `acme` blocks every switch of customer acme")
            && out.contains("GRAPH.DELETE acme"),
        "{out}{err}"
    );
    wait_audit(&env, "stray_alias", 1, Duration::from_secs(30)).await;
}

/// The FalkorDB scripts themselves: every fenced effect is refused for a
/// token lower than the highest seen, the switch refuses an unverified
/// database and a move backwards, the drop refuses the live target, and only
/// the token that created a database can mark it verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falkordb_scripts_enforce_the_fence_and_the_lifecycle() {
    use common::config::ServiceUrl;
    use common::graph::falkordb::FalkorStore;
    use common::graph::{DbState, Fence, GraphError, GraphStore, SwitchMode};

    let server = harness::FalkorServer::start().unwrap();
    let store = FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap();
    let fence = |token| Fence {
        customer: "acme".into(),
        token,
    };
    let (s1, s2) = (format!("acme-{S1}"), format!("acme-{S2}"));
    let fwd = SwitchMode::Forward;

    store.create_fenced(&s1, &fence(5)).await.unwrap();
    assert_eq!(store.fence_seen("acme").await.unwrap(), 5);
    assert_eq!(store.database_state(&s1).await.unwrap(), DbState::Loading);
    // Not verified: no switch.
    let err = store
        .switch_fenced("acme", &s1, &fence(5), fwd)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not verified"), "{err}");
    // Only the creating token marks it.
    let err = store.mark_verified(&s1, &fence(6)).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    // Token 6 raised the fence: 5 is out now, for everything.
    let err = store.mark_verified(&s1, &fence(5)).await.unwrap_err();
    assert!(matches!(err, GraphError::Fenced(_)), "{err}");
    let err = store.drop_fenced(&s1, &fence(5)).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert!(server.graphs().contains(&s1), "the stale drop did nothing");

    // A new holder (7) recreates and verifies S1, then loads S2.
    store.drop_fenced(&s1, &fence(7)).await.unwrap();
    store.create_fenced(&s1, &fence(7)).await.unwrap();
    store.mark_verified(&s1, &fence(7)).await.unwrap();
    assert!(store
        .switch_fenced("acme", &s1, &fence(7), fwd)
        .await
        .unwrap());
    store.create_fenced(&s2, &fence(8)).await.unwrap();
    store.mark_verified(&s2, &fence(8)).await.unwrap();
    // The live target cannot be dropped.
    let err = store.drop_fenced(&s1, &fence(8)).await.unwrap_err();
    assert!(err.to_string().contains("is the live target"), "{err}");
    // A late switch of an older token is refused; so is a move backwards.
    let err = store
        .switch_fenced("acme", &s2, &fence(7), fwd)
        .await
        .unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert!(store
        .switch_fenced("acme", &s2, &fence(8), fwd)
        .await
        .unwrap());
    let err = store
        .switch_fenced("acme", &s1, &fence(9), fwd)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only moves forward"), "{err}");
    assert_eq!(server.get("snapswitch:alias:acme"), Some(s2.clone()));
    // Rollback mode goes back and retires what it leaves.
    assert!(store
        .switch_fenced("acme", &s1, &fence(9), SwitchMode::Rollback)
        .await
        .unwrap());
    assert_eq!(store.database_state(&s2).await.unwrap(), DbState::Retired);
    let err = store
        .switch_fenced("acme", &s2, &fence(9), fwd)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not verified"), "{err}");
    // An unfenced database carries no mark.
    store.create_database("acme-1767740000").await.unwrap();
    assert_eq!(
        store.database_state("acme-1767740000").await.unwrap(),
        DbState::Unmarked
    );
}

/// Reconciliation moves an alias left on an older verified database forward
/// to the newest verified one, and says so in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_moves_a_stale_alias_forward_to_the_newest_verified_database() {
    use common::config::ServiceUrl;
    use common::graph::falkordb::FalkorStore;
    use common::graph::GraphStore;

    let mut env = TestEnv::new(
        "repair",
        "workers = 1\nkeep_databases = 2\nskip_superseded = false\nreconcile_interval = 3600",
    )
    .unwrap();
    write(&env, "acme", S1, 200);
    let spec2 = write(&env, "acme", S2, 300);
    env.spawn_worker("worker").unwrap();
    topology(&env).await;
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    wait_alias(&env, S1, Duration::from_secs(60)).await;
    env.publish_raw(&event("acme", S2), 4).await.unwrap();
    wait_alias(&env, S2, Duration::from_secs(60)).await;
    env.terminate("worker", Duration::from_secs(20))
        .expect("worker exits");

    // The alias goes back behind the fencing (a store that could not
    // refuse a late switch, or a hand-made switch).
    let store = FalkorStore::connect(&ServiceUrl::new(env.falkor.url()))
        .await
        .unwrap();
    store
        .switch_alias("acme", &format!("acme-{S1}"))
        .await
        .unwrap();
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));

    env.spawn_worker("worker2").unwrap(); // reconciles at start
    wait_alias(&env, S2, Duration::from_secs(30)).await;
    assert_eq!(
        env.falkor.counts("acme"),
        (spec2.node_count(), spec2.relationship_count())
    );
    let repaired = env.audit("reconciled_switch").await;
    assert_eq!(repaired.len(), 1, "{repaired:?}");
    assert_eq!(repaired[0].get("was"), Some(S1.to_string().as_str()));
    assert_eq!(
        repaired[0].get("snapshot_id"),
        Some(S2.to_string().as_str())
    );
}

/// `newest_seen` is read after the lock is taken: a snapshot published while
/// a worker waited for the lock supersedes the one it waited with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_superseded_while_waiting_for_the_lock_is_not_loaded() {
    let mut env = TestEnv::new(
        "newest-after-lock",
        "workers = 2\nlock_wait_timeout = 60\nbatch_size = 100\nbatch_pause_ms = 200\nreconcile_interval = 3600",
    )
    .unwrap();
    write(&env, "acme", S0, 1500);
    write(&env, "acme", S1, 200);
    env.spawn_worker("worker").unwrap();
    topology(&env).await;
    env.publish_raw(&event("acme", S0), 4).await.unwrap();
    wait_audit(&env, "load_started", 1, Duration::from_secs(30)).await;
    // S1 waits for the lock held by S0's load; meanwhile another worker
    // receives the newer S2 (recorded as seen, as that worker would).
    env.publish_raw(&event("acme", S1), 4).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        env.audit("load_finished").await.is_empty(),
        "S0 still loading"
    );
    let fleet = env.fleet().await.unwrap();
    let acme = common::ident::Customer::parse("acme").unwrap();
    fleet
        .mark_seen(&acme, common::ident::SnapshotId::new(S2).unwrap())
        .await
        .unwrap();
    let superseded = wait_for("S1 superseded", Duration::from_secs(60), || async {
        Ok(env
            .audit("superseded")
            .await
            .into_iter()
            .find(|e| e.get("snapshot_id") == Some(S1.to_string().as_str())))
    })
    .await;
    assert!(superseded.is_ok(), "{superseded:?}\n{}", env.logs());
    let loaded: Vec<String> = env
        .audit("load_started")
        .await
        .iter()
        .filter_map(|e| e.get("snapshot_id").map(str::to_owned))
        .collect();
    assert!(
        !loaded.contains(&S1.to_string()),
        "S1 was loaded: {loaded:?}"
    );
}

/// The marks a Neo4j target keeps in the coordination Redis: fenced by the
/// customer's lock counter, only the loading token verifies, and a missing
/// mark (a Redis data loss) never reads as verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_marks_for_neo4j_are_fenced_and_never_verified_by_a_loss() {
    use common::config::ServiceUrl;
    use common::graph::marks::RedisMarks;
    use common::graph::{DbState, Fence};
    use common::keys::Keys;

    let ns = format!(
        "t-marks-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let con = common::state::connect(&ServiceUrl::new(harness::redis_url()))
        .await
        .unwrap();
    let keys = Keys::new(&ns);
    let marks = RedisMarks::new(con.clone(), keys.clone(), "east");
    let fence = |token| Fence {
        customer: "acme".into(),
        token,
    };
    let acme = common::ident::Customer::parse("acme").unwrap();
    let mut raw = con.clone();
    let counter = |n: u64| {
        let mut raw = con.clone();
        let key = keys.fence(&acme);
        async move {
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg(n)
                .query_async(&mut raw)
                .await
                .unwrap();
        }
    };
    let db = format!("acme-{S1}");

    counter(3).await;
    marks.begin(&db, &fence(3)).await.unwrap();
    assert_eq!(marks.state(&db).await.unwrap(), DbState::Loading);
    // A newer acquisition (4) exists: 3 verifies nothing, checks nothing.
    counter(4).await;
    assert!(marks.verify(&db, &fence(3)).await.unwrap_err().is_fenced());
    assert!(marks.check(&fence(3)).await.unwrap_err().is_fenced());
    // 4 did not create it: it cannot verify it either.
    assert!(marks.verify(&db, &fence(4)).await.unwrap_err().is_fenced());
    marks.begin(&db, &fence(4)).await.unwrap();
    marks.verify(&db, &fence(4)).await.unwrap();
    assert_eq!(marks.state(&db).await.unwrap(), DbState::Verified);
    marks.retire(&db).await.unwrap();
    assert_eq!(marks.state(&db).await.unwrap(), DbState::Retired);
    // Redis lost the mark: not tracked, never verified.
    marks.forget(&db).await.unwrap();
    let state = marks.state(&db).await.unwrap();
    assert_eq!(state, DbState::NotTracked);
    assert_ne!(state, DbState::Verified);

    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    if !left.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(left)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
}
