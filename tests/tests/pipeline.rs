//! End to end on the real services: producer and worker processes, the
//! machine's RabbitMQ and Redis, a FalkorDB per test.

use std::collections::HashMap;
use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::{wait_for, TestEnv};

const BASE_ID: u64 = 1_767_741_427;

/// Writes a snapshot of `rows` rows for `customer` at `BASE_ID + n*60`;
/// returns its (nodes, relationships).
fn snapshot(env: &TestEnv, customer: &str, n: u64, rows: usize) -> (u64, u64) {
    let id = BASE_ID + n * 60;
    let spec = SampleSpec::with_rows(rows, SampleFormat::Csv, id);
    sample::write_snapshot(&sample::snapshot_dir(&env.data_root(), customer, id), &spec).unwrap();
    (spec.node_count(), spec.relationship_count())
}

async fn counter(env: &TestEnv, name: &str) -> i64 {
    let fleet = env.fleet().await.unwrap();
    fleet
        .counters()
        .await
        .unwrap()
        .get(name)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_customers_three_snapshots_end_to_end() {
    let mut env = TestEnv::new(
        "e2e",
        "skip_superseded = false\nkeep_databases = 2\nload_method = \"bulk\"",
    )
    .unwrap();
    let customers = ["customer1", "customer2", "customer3"];
    // Two rounds exist before the producer starts (found by its first scan)…
    let mut newest = HashMap::new();
    for n in 0..2 {
        for (i, c) in customers.iter().enumerate() {
            newest.insert(*c, snapshot(&env, c, n, 300 + 100 * n as usize + 10 * i));
        }
    }
    // …and a directory still being copied: no `_SUCCESS`, never published.
    let unready = sample::snapshot_dir(&env.data_root(), "customer4", BASE_ID);
    sample::write_snapshot(&unready, &SampleSpec::with_rows(100, SampleFormat::Csv, 1)).unwrap();
    std::fs::remove_file(unready.join("_SUCCESS")).unwrap();

    env.spawn("producer", "producer", &["watch"]).unwrap();
    env.spawn_worker("worker-a").unwrap();
    env.spawn_worker("worker-b").unwrap();

    // The third round arrives while everything runs (found by the watcher).
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, c) in customers.iter().enumerate() {
        newest.insert(*c, snapshot(&env, c, 2, 500 + 10 * i));
    }

    let done = wait_for("9 completed loads", Duration::from_secs(120), || async {
        Ok((counter(&env, "completed").await >= 9).then_some(()))
    })
    .await;
    assert!(done.is_ok(), "{done:?}\n{}", env.logs());

    // Every alias answers with its newest snapshot's data.
    for c in customers {
        let target = env.falkor.get(&format!("snapswitch:alias:{c}"));
        assert_eq!(
            target.as_deref(),
            Some(format!("{c}-{}", BASE_ID + 120).as_str()),
            "{}",
            env.logs()
        );
        assert!(
            env.falkor.graphs().contains(&c.to_string()),
            "alias graph {c} exists"
        );
        assert_eq!(env.falkor.counts(c), newest[c], "live graph of {c}");
        // Retained databases: the live one (held by the alias graph `c`)
        // plus those under their own names.
        let mut retained: Vec<String> = env
            .falkor
            .graphs()
            .into_iter()
            .filter(|g| g.starts_with(&format!("{c}-")))
            .collect();
        retained.extend(target);
        assert!(retained.len() <= 2, "{c} keeps {retained:?}");
        assert!(
            retained.contains(&format!("{c}-{}", BASE_ID + 60)),
            "previous snapshot retained: {retained:?}"
        );
    }
    assert!(!env
        .falkor
        .graphs()
        .iter()
        .any(|g| g.starts_with("customer4")));

    assert_eq!(counter(&env, "discovered").await, 9);
    assert_eq!(counter(&env, "completed").await, 9);
    assert_eq!(
        counter(&env, "published").await,
        9,
        "the unready snapshot must not be published"
    );
    assert_eq!(counter(&env, "failed").await, 0, "{}", env.logs());
    assert_eq!(env.queue_depth(&env.work_queue()).await.unwrap(), 0);

    let fleet = env.fleet().await.unwrap();
    let rec = fleet
        .customer(&common::ident::Customer::parse("customer2").unwrap())
        .await
        .unwrap();
    assert_eq!(rec.live_snapshot, Some(BASE_ID + 120));

    // One load per customer at a time, across both workers.
    let (loads, unfinished) = env.loads().await;
    assert_eq!(unfinished, 0, "loads that never ended");
    assert_eq!(loads.len(), 9, "{loads:?}");
    for (i, a) in loads.iter().enumerate() {
        for b in &loads[i + 1..] {
            assert!(
                a.customer != b.customer || !a.overlaps(b),
                "overlapping loads of {}: {a:?} {b:?}",
                a.customer
            );
        }
    }
    let workers: std::collections::HashSet<String> = fleet
        .audit_entries(1000)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.get("worker").map(str::to_owned))
        .collect();
    assert_eq!(workers.len(), 2, "both workers took work: {workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_parked_with_their_reason_and_the_worker_keeps_going() {
    let mut env = TestEnv::new("malformed", "").unwrap();
    let (nodes, rels) = snapshot(&env, "acme", 0, 200);
    env.spawn_worker("worker").unwrap();
    // The worker declares the topology; wait for its queue.
    wait_for("work queue", Duration::from_secs(30), || async {
        Ok(env.queue_depth(&env.work_queue()).await.ok())
    })
    .await
    .unwrap();

    let valid = |customer: &str, id: u64| {
        serde_json::json!({
            "schema_version": 1,
            "event_id": uuid::Uuid::now_v7(),
            "customer": customer,
            "snapshot_id": id,
            "path": format!("{customer}/{id}"),
            "priority": 5,
            "created_at": "2026-11-22T10:00:00Z",
        })
    };
    let mut v2 = valid("acme", BASE_ID);
    v2["schema_version"] = 2.into();
    let mut bad_customer = valid("acme", BASE_ID);
    bad_customer["customer"] = "../x".into();
    bad_customer["path"] = "../x/1767741427".into();
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), "event_not_json"),
        (
            serde_json::to_vec(&v2).unwrap(),
            "event_unsupported_version",
        ),
        (
            serde_json::to_vec(&bad_customer).unwrap(),
            "event_invalid_customer",
        ),
        (
            serde_json::to_vec(&valid("acme", BASE_ID + 999)).unwrap(),
            "snapshot_missing",
        ),
    ];
    for (body, _) in &bodies {
        env.publish_raw(body, 5).await.unwrap();
    }
    // A good event after the bad ones: the worker is still there to load it.
    env.publish_raw(&serde_json::to_vec(&valid("acme", BASE_ID)).unwrap(), 1)
        .await
        .unwrap();

    let loaded = wait_for("the valid event", Duration::from_secs(60), || async {
        Ok((counter(&env, "completed").await == 1).then_some(()))
    })
    .await;
    assert!(loaded.is_ok(), "{loaded:?}\n{}", env.logs());
    assert_eq!(env.falkor.counts("acme"), (nodes, rels));
    assert!(env.is_running("worker"), "worker died:\n{}", env.logs());

    let parked = wait_for("4 parked events", Duration::from_secs(30), || async {
        Ok((counter(&env, "parked").await == 4).then_some(()))
    })
    .await;
    assert!(parked.is_ok(), "{parked:?}\n{}", env.logs());
    let dead = env.drain_dead().await.unwrap();
    let mut reasons: Vec<&str> = dead
        .iter()
        .map(|(h, _)| {
            h.get("x-snapswitch-reason")
                .map(String::as_str)
                .unwrap_or("?")
        })
        .collect();
    reasons.sort();
    let mut expected: Vec<&str> = bodies.iter().map(|(_, r)| *r).collect();
    expected.sort();
    assert_eq!(reasons, expected);
    for (headers, body) in &dead {
        for h in [
            "x-snapswitch-error-class",
            "x-snapswitch-error",
            "x-snapswitch-worker",
            "x-snapswitch-host",
            "x-snapswitch-failed-at",
        ] {
            assert!(
                headers.contains_key(h),
                "parked message lacks {h}: {headers:?}"
            );
        }
        assert_eq!(headers["x-snapswitch-error-class"], "permanent");
        // The original body is kept, byte for byte.
        assert!(bodies.iter().any(|(b, _)| b == body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_snapshot_leaves_no_database_behind() {
    let mut env = TestEnv::new("broken", "batch_size = 100").unwrap();
    // 1: a relationship that points at an id no node has (dangling_relationships = "fail").
    let dangling = sample::snapshot_dir(&env.data_root(), "acme", BASE_ID);
    sample::write_snapshot(&dangling, &SampleSpec::with_rows(400, SampleFormat::Csv, 7)).unwrap();
    std::fs::write(
        dangling.join("relationships/extra.csv"),
        ":START_ID(Person),:END_ID(Person),:TYPE\np0,nobody,KNOWS\n",
    )
    .unwrap();
    // 2: a bad integer deep in the file, after earlier batches were written.
    let corrupt = sample::snapshot_dir(&env.data_root(), "beta", BASE_ID);
    let mut csv = String::from("id:ID(Thing),n:int\n");
    for i in 0..1000 {
        csv.push_str(&format!(
            "t{i},{}\n",
            if i == 750 {
                "seven".to_owned()
            } else {
                i.to_string()
            }
        ));
    }
    std::fs::create_dir_all(corrupt.join("nodes")).unwrap();
    std::fs::write(corrupt.join("nodes/things.csv"), csv).unwrap();
    std::fs::write(corrupt.join("_SUCCESS"), "").unwrap();

    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    let parked = wait_for("2 parked events", Duration::from_secs(60), || async {
        Ok((counter(&env, "parked").await == 2).then_some(()))
    })
    .await;
    assert!(parked.is_ok(), "{parked:?}\n{}", env.logs());
    let graphs = env.falkor.graphs();
    assert!(
        graphs.is_empty(),
        "half-loaded databases left: {graphs:?}\n{}",
        env.logs()
    );
    let dead = env.drain_dead().await.unwrap();
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|(h, _)| h["x-snapswitch-reason"].clone())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["dangling_relationships", "snapshot_invalid"]);
    let errors: String = dead
        .iter()
        .map(|(h, _)| h["x-snapswitch-error"].clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(errors.contains("matches no node"), "{errors}");
    assert!(errors.contains("1 of "), "the count is named: {errors}");
    assert!(errors.contains("seven"), "{errors}");
    assert!(env.is_running("worker"));
}
