//! Audit before publish (issue 18): a snapshot that looks wrong against the
//! live graph is loaded, verified and held — never live until an operator
//! approves it; a newer good snapshot supersedes it. Real worker processes,
//! RabbitMQ, Redis and FalkorDB.

use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::{wait_for, TestEnv};

const S1: u64 = 1_767_741_427;
const S2: u64 = S1 + 60;
const S3: u64 = S1 + 120;

fn spec(people: usize, companies: usize, knows: usize, seed: u64) -> SampleSpec {
    SampleSpec {
        people,
        companies,
        knows,
        format: SampleFormat::Csv,
        seed,
    }
}

fn write(env: &TestEnv, id: u64, spec: &SampleSpec) {
    sample::write_snapshot(&sample::snapshot_dir(&env.data_root(), "acme", id), spec).unwrap();
}

/// A header-only snapshot (an upstream failure): `from`'s files with their
/// header line only.
fn write_header_only(env: &TestEnv, from: u64, id: u64) {
    let src = sample::snapshot_dir(&env.data_root(), "acme", from);
    let dst = sample::snapshot_dir(&env.data_root(), "acme", id);
    for sub in ["nodes", "relationships"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
        for f in std::fs::read_dir(src.join(sub)).unwrap() {
            let f = f.unwrap().path();
            let text = std::fs::read_to_string(&f).unwrap();
            let header = text.lines().next().unwrap();
            std::fs::write(dst.join(sub).join(f.file_name().unwrap()), format!("{header}\n"))
                .unwrap();
        }
    }
    std::fs::write(dst.join("_SUCCESS"), "").unwrap();
}

fn event(id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7(),
        "customer": "acme",
        "snapshot_id": id,
        "path": format!("acme/{id}"),
        "priority": 4,
        "created_at": "2026-11-22T10:00:00Z",
    }))
    .unwrap()
}

fn alias(env: &TestEnv) -> Option<String> {
    env.falkor.get("snapswitch:alias:acme")
}

fn mark(env: &TestEnv, id: u64) -> Option<String> {
    let mut con = env.falkor.connection();
    redis::cmd("HGET")
        .arg(format!("snapswitch:db:acme-{id}"))
        .arg("state")
        .query(&mut con)
        .unwrap()
}

async fn start(name: &str, extra: &str) -> TestEnv {
    let mut env = TestEnv::new(
        name,
        &format!("workers = 1\nkeep_databases = 2\nreconcile_interval = 3600\n{extra}"),
    )
    .unwrap();
    env.spawn_worker("worker").unwrap();
    let r = wait_for("the work queue", Duration::from_secs(30), || async {
        Ok(env.queue_depth(&env.work_queue()).await.ok())
    })
    .await;
    assert!(r.is_ok(), "{r:?}\n{}", env.logs());
    env
}

/// Publishes `id` and waits for its audit entry `what` (`load_finished`,
/// `held`, …).
async fn run(env: &TestEnv, id: u64, what: &str) -> common::state::AuditEntry {
    env.publish_raw(&event(id), 4).await.unwrap();
    let want = id.to_string();
    let r = wait_for(
        &format!("`{what}` of {id}"),
        Duration::from_secs(60),
        || async {
            Ok(env
                .audit(what)
                .await
                .into_iter()
                .find(|e| e.get("snapshot_id") == Some(want.as_str())))
        },
    )
    .await;
    match r {
        Ok(e) => e,
        Err(e) => panic!("{e}\n{}", env.logs()),
    }
}

fn status(env: &TestEnv) -> serde_json::Value {
    serde_json::from_str(&env.producer(&["status", "--json"]).unwrap()).unwrap()
}

fn held_in_status(env: &TestEnv) -> Vec<serde_json::Value> {
    status(env)["customers"]["acme"]["held"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_only_snapshot_after_a_full_one_is_held_and_reject_drops_it() {
    let env = start("held-empty", "").await;
    let full = spec(100, 5, 200, S1);
    write(&env, S1, &full);
    run(&env, S1, "load_finished").await;
    write_header_only(&env, S1, S2);
    let held = run(&env, S2, "held").await;

    assert_eq!(held.get("reason"), Some("empty"), "{held:?}");
    assert!(
        held.get("reasons")
            .unwrap()
            .contains("the snapshot is empty and the live graph is not (105 nodes"),
        "{held:?}"
    );
    assert!(
        held.get("changed").unwrap().contains("nodes 105 → 0"),
        "{held:?}"
    );
    // The alias stays; the held database is kept, marked held.
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
    assert_eq!(mark(&env, S2).as_deref(), Some("held"));
    assert_eq!(env.falkor.counts("acme"), (105, full.relationship_count()));
    let held = held_in_status(&env);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["snapshot_id"], S2);
    assert_eq!(held[0]["reasons"][0]["code"], "empty");
    assert_eq!(status(&env)["tasks_held"], 1);
    let text = env.producer(&["status"]).unwrap();
    assert!(
        text.contains(&format!("held {S2}: empty: the snapshot is empty")),
        "{text}"
    );
    // The event was acked (nothing parked, nothing left in the queue).
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);
    // The metric.
    let addr = env.http_addr("worker").await.unwrap();
    let (_, metrics) = harness::http_get(&addr, "/metrics").unwrap();
    assert!(
        metrics.contains("snapswitch_held_total{reason=\"empty\"} 1"),
        "{metrics}"
    );
    // A redelivery of the held snapshot leaves it held (not dropped and reloaded).
    run(&env, S2, "already_held").await;
    assert_eq!(mark(&env, S2).as_deref(), Some("held"));

    // Reject: dropped, the alias stays, no longer held.
    let out = env
        .producer(&["reject", "--customer", "acme", "--snapshot-id", &S2.to_string()])
        .unwrap();
    assert!(out.contains("rejected"), "{out}");
    assert!(!env.falkor.graphs().contains(&format!("acme-{S2}")));
    assert_eq!(mark(&env, S2), None);
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
    assert!(held_in_status(&env).is_empty());
    assert_eq!(env.audit("rejected").await.len(), 1);
    // Reject and approve refuse a snapshot that is not held.
    let err = env
        .producer(&["reject", "--customer", "acme", "--snapshot-id", &S1.to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not held (state: verified)"), "{err}");
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_60_percent_fewer_nodes_is_held_naming_the_label_and_approve_makes_it_live()
{
    let env = start("held-shrink", "").await;
    write(&env, S1, &spec(1000, 20, 0, S1));
    let small = spec(400, 20, 0, S2);
    write(&env, S2, &small);
    run(&env, S1, "load_finished").await;
    let held = run(&env, S2, "held").await;
    assert_eq!(held.get("reason"), Some("shrink"), "{held:?}");
    let reasons = held.get("reasons").unwrap();
    assert!(
        reasons.contains("label Person: 400 in the snapshot, 1000 live (-60.0%); max_shrink_percent is 50"),
        "{reasons}"
    );
    // Company did not shrink, so it is not named.
    assert!(!reasons.contains("label Company"), "{reasons}");
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));

    let out = env
        .producer(&["approve", "--customer", "acme", "--snapshot-id", &S2.to_string()])
        .unwrap();
    assert!(out.contains(&format!("alias moved to {S2}")), "{out}");
    assert_eq!(alias(&env), Some(format!("acme-{S2}")));
    assert_eq!(mark(&env, S2).as_deref(), Some("verified"));
    assert_eq!(env.falkor.counts("acme"), (420, small.relationship_count()));
    assert!(held_in_status(&env).is_empty());
    assert_eq!(status(&env)["customers"]["acme"]["live_snapshot"], S2);
    let approved = env.audit("approved").await;
    assert_eq!(approved.len(), 1);
    assert!(approved[0].get("reasons").unwrap().contains("label Person"));
    // Approve again: it is live now, not held.
    let err = env
        .producer(&["approve", "--customer", "acme", "--snapshot-id", &S2.to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not held"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_good_snapshot_supersedes_a_held_one() {
    let env = start("held-superseded", "").await;
    write(&env, S1, &spec(100, 5, 100, S1));
    write(&env, S3, &spec(110, 5, 100, S3));
    run(&env, S1, "load_finished").await;
    write_header_only(&env, S1, S2);
    run(&env, S2, "held").await;
    // The held database is kept while the next one loads, and counts toward
    // keep_databases (2): S1 (live) and S2 (held) fill it.
    let finished = run(&env, S3, "load_finished").await;
    assert_eq!(finished.get("switched"), Some("true"));
    assert!(
        finished.get("changed").unwrap().contains("label Person 100 → 110 (+10.0%)"),
        "{finished:?}"
    );
    assert_eq!(alias(&env), Some(format!("acme-{S3}")));
    // S2 is superseded: dropped, no longer held; S1 is kept as previous.
    let graphs = env.falkor.graphs();
    assert!(!graphs.contains(&format!("acme-{S2}")), "{graphs:?}");
    assert!(graphs.contains(&format!("acme-{S1}")), "{graphs:?}");
    assert!(held_in_status(&env).is_empty());
    // And an approval of the superseded snapshot is refused.
    let err = env
        .producer(&["approve", "--customer", "acme", "--snapshot-id", &S2.to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not held"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_customer_overrides_and_growth() {
    // acme may shrink by 90 %; growth over 100 % holds.
    let env = start(
        "held-growth",
        "max_growth_percent = 100\ncustomer_gates = { acme = { max_shrink_percent = 90 } }",
    )
    .await;
    write(&env, S1, &spec(100, 5, 0, S1));
    write(&env, S2, &spec(30, 5, 0, S2));
    write(&env, S3, &spec(300, 5, 0, S3));
    run(&env, S1, "load_finished").await;
    let s2 = run(&env, S2, "load_finished").await;
    assert_eq!(s2.get("switched"), Some("true"), "{s2:?}");
    let held = run(&env, S3, "held").await;
    assert_eq!(held.get("reason"), Some("growth"), "{held:?}");
    assert!(
        held.get("reasons")
            .unwrap()
            .contains("label Person: 300 in the snapshot, 30 live (+900.0%); max_growth_percent is 100"),
        "{held:?}"
    );
    assert_eq!(alias(&env), Some(format!("acme-{S2}")));
}
