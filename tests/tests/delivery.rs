//! Delivery guarantees on the real services: the retry ladder, parking,
//! replay, cancel, graceful shutdown and reconciliation.

use std::time::{Duration, Instant};

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::{wait_for, TestEnv};

const ID: u64 = 1_767_741_427;

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

fn write(env: &TestEnv, customer: &str, id: u64, rows: usize) -> std::path::PathBuf {
    let dir = sample::snapshot_dir(&env.data_root(), customer, id);
    sample::write_snapshot(&dir, &SampleSpec::with_rows(rows, SampleFormat::Csv, id)).unwrap();
    dir
}

async fn wait_load_started(env: &TestEnv) {
    wait_for("the load to start", Duration::from_secs(30), || async {
        Ok((!env.audit("load_started").await.is_empty()).then_some(()))
    })
    .await
    .unwrap();
}

async fn wait_work_queue(env: &TestEnv) {
    wait_for("work queue", Duration::from_secs(30), || async {
        Ok(env.queue_depth(&env.work_queue()).await.ok())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_climb_the_ladder_then_park_with_every_header_and_replay_loads_them() {
    let mut env = TestEnv::new("ladder", "max_retries = 2\nretry_backoff_base = 2").unwrap();
    // Not ready (no `_SUCCESS`): transient, as the ETL job may still be writing.
    let dir = write(&env, "acme", ID, 200);
    std::fs::remove_file(dir.join("_SUCCESS")).unwrap();
    env.spawn_worker("worker").unwrap();
    wait_work_queue(&env).await;
    env.publish_raw(&event("acme", ID), 4).await.unwrap();

    env.wait_counter("parked", 1, Duration::from_secs(40)).await;
    let failures: Vec<i64> = env
        .audit("failed")
        .await
        .iter()
        .map(|e| e.get("at_ms").unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        failures.len(),
        3,
        "first attempt plus max_retries = 2 retries"
    );
    // Retry n waits base^n seconds: 2 s, then 4 s.
    for (n, pair) in failures.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        let want = 2i64.pow(n as u32 + 1) * 1000;
        assert!(
            waited >= want - 100 && waited < want + 2000,
            "retry {} waited {waited} ms, want ≈ {want}",
            n + 1
        );
    }
    assert_eq!(env.counter("retried").await, 2);

    let listed = env.producer(&["dlq", "list", "--json"]).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let p = &listed[0];
    assert_eq!(p["reason"], "snapshot_not_ready");
    assert_eq!(p["error_class"], "transient");
    assert_eq!(p["attempts"], 3);
    assert_eq!(p["priority"], 4);
    assert_eq!(p["customer"], "acme");
    for k in ["worker", "host", "failed_at", "error"] {
        assert!(p[k].is_string(), "parked message has {k}: {p}");
    }
    assert_eq!(
        env.queue_depth(&env.dead_queue()).await.unwrap(),
        1,
        "listing leaves the message parked"
    );

    // The operator fixes the snapshot and replays: it loads.
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
    assert_eq!(
        env.producer(&["dlq", "replay", "--customer", "acme"])
            .unwrap()
            .trim(),
        "replayed 1"
    );
    env.wait_counter("completed", 1, Duration::from_secs(30))
        .await;
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741427")
    );
    // A replay starts afresh: one more failure would not park it at once.
    assert_eq!(env.audit("failed").await.len(), 3);

    // Purge refuses without confirmation when nobody can answer, and works with --yes.
    env.publish_raw(b"junk", 1).await.unwrap();
    env.wait_counter("parked", 2, Duration::from_secs(20)).await;
    let err = env.producer(&["dlq", "purge"]).unwrap_err().to_string();
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        env.producer(&["dlq", "purge", "--yes"]).unwrap().trim(),
        "purged 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queued_event_is_acked_without_loading() {
    let mut env = TestEnv::new("cancelq", "").unwrap();
    write(&env, "acme", ID, 200);
    env.producer(&["backfill"]).unwrap();
    env.producer(&[
        "cancel",
        "--customer",
        "acme",
        "--snapshot-id",
        &ID.to_string(),
    ])
    .unwrap();
    env.spawn_worker("worker").unwrap();
    env.wait_counter("cancelled", 1, Duration::from_secs(30))
        .await;
    assert_eq!(env.counter("completed").await, 0);
    assert!(env.falkor.graphs().is_empty(), "{:?}", env.falkor.graphs());
    assert_eq!(env.queue_depth(&env.work_queue()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_running_load_is_aborted_within_seconds_and_its_database_dropped() {
    // 1 600 batches 20 ms apart: the load runs for half a minute on either
    // load method (so do the loads of the shutdown tests below).
    let mut env = TestEnv::new("cancelr", "batch_size = 50\nbatch_pause_ms = 20").unwrap();
    write(&env, "acme", ID, 80_000);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    wait_load_started(&env).await;
    let asked = Instant::now();
    env.producer(&[
        "cancel",
        "--customer",
        "acme",
        "--snapshot-id",
        &ID.to_string(),
    ])
    .unwrap();
    env.wait_counter("cancelled", 1, Duration::from_secs(30))
        .await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "cancelled after {:?}",
        asked.elapsed()
    );
    assert_eq!(
        env.counter("completed").await,
        0,
        "the load was still running when cancelled:\n{}",
        env.logs()
    );
    assert!(
        env.falkor.graphs().is_empty(),
        "partial database left: {:?}",
        env.falkor.graphs()
    );
    assert_eq!(env.queue_depth(&env.work_queue()).await.unwrap(), 0);
    assert!(env.is_running("worker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_load_finish_within_the_timeout() {
    let mut env = TestEnv::new(
        "drain",
        "batch_size = 200\nbatch_pause_ms = 20\nshutdown_timeout = 60",
    )
    .unwrap();
    write(&env, "acme", ID, 40_000);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    wait_load_started(&env).await;
    let status = env
        .terminate("worker", Duration::from_secs(60))
        .expect("worker exits");
    assert!(status.success(), "{status:?}\n{}", env.logs());
    assert_eq!(env.counter("completed").await, 1, "{}", env.logs());
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741427")
    );
    assert!(env.log_of("worker").contains("waiting for in-flight loads"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_the_timeout_aborts_the_load_drops_it_and_requeues_the_event() {
    let mut env = TestEnv::new(
        "forced",
        "batch_size = 50\nbatch_pause_ms = 20\nshutdown_timeout = 1",
    )
    .unwrap();
    write(&env, "acme", ID, 80_000);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    wait_load_started(&env).await;
    let status = env
        .terminate("worker", Duration::from_secs(30))
        .expect("worker exits");
    assert!(status.success(), "{status:?}\n{}", env.logs());
    assert!(
        env.log_of("worker").contains("shutdown_timeout reached"),
        "{}",
        env.logs()
    );
    assert_eq!(env.counter("completed").await, 0);
    assert!(
        env.falkor.graphs().is_empty(),
        "partial database left: {:?}",
        env.falkor.graphs()
    );
    assert_eq!(
        env.queue_depth(&env.work_queue()).await.unwrap(),
        1,
        "the event is back in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_drops_orphan_databases_and_corrects_redis() {
    let mut env = TestEnv::new("reconcile", "keep_databases = 1").unwrap();
    write(&env, "acme", ID, 200);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(30))
        .await;
    env.terminate("worker", Duration::from_secs(20))
        .expect("worker exits");

    // A crashed worker's leftovers: an old database, and Redis that disagrees.
    let mut con = env.falkor.connection();
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg("acme-1767740000")
        .arg("CREATE (:Leftover)")
        .query(&mut con)
        .unwrap();
    let fleet = env.fleet().await.unwrap();
    let acme = common::ident::Customer::parse("acme").unwrap();
    fleet
        .set_live(
            &acme,
            common::ident::SnapshotId::new(1_767_000_000).unwrap(),
        )
        .await
        .unwrap();

    env.spawn_worker("worker2").unwrap(); // reconciles at start
    wait_for("reconciliation", Duration::from_secs(30), || async {
        Ok((!env.falkor.graphs().contains(&"acme-1767740000".to_string())).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741427"),
        "the live database stays"
    );
    wait_for("state correction", Duration::from_secs(10), || async {
        Ok((fleet.customer(&acme).await?.live_snapshot == Some(ID)).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(env.audit("reconciled_drop").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_stops_consuming_while_the_graph_database_is_down() {
    let mut env = TestEnv::new("breaker", "breaker_threshold = 2\nbreaker_probe_interval = 1\nmax_retries = 10\nretry_backoff_base = 1").unwrap();
    for n in 0..4 {
        write(&env, "acme", ID + n * 60, 100);
    }
    write(&env, "beta", ID, 100);
    env.spawn_worker("worker").unwrap();
    wait_work_queue(&env).await;
    env.falkor.stop();
    env.producer(&["backfill"]).unwrap();
    wait_for("the breaker to open", Duration::from_secs(60), || async {
        Ok(env
            .log_of("worker")
            .contains("circuit breaker open")
            .then_some(()))
    })
    .await
    .unwrap();
    // While open, the worker takes nothing: retries stop climbing.
    let retried = env.counter("retried").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.counter("retried").await,
        retried,
        "no retries burnt while the breaker is open:\n{}",
        env.logs()
    );
    assert!(env.counter("parked").await == 0);

    env.falkor.restart().unwrap();
    wait_for(
        "the breaker to close and the work to finish",
        Duration::from_secs(60),
        || async {
            let closed = env.log_of("worker").contains("circuit breaker closed");
            let beta = env.falkor.get("snapswitch:alias:beta").is_some();
            let acme =
                env.falkor.get("snapswitch:alias:acme") == Some(format!("acme-{}", ID + 180));
            Ok((closed && beta && acme).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.logs()));
    assert_eq!(env.counter("parked").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut env = TestEnv::new(
        "sigsig",
        "batch_size = 50\nbatch_pause_ms = 20\nshutdown_timeout = 600",
    )
    .unwrap();
    write(&env, "acme", ID, 80_000);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    wait_load_started(&env).await;
    assert!(
        env.terminate("worker", Duration::from_millis(500))
            .is_none(),
        "the first signal drains"
    );
    let status = env
        .terminate("worker", Duration::from_secs(5))
        .expect("the second signal exits");
    assert_eq!(status.code(), Some(130), "{}", env.logs());
}
