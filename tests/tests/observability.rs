//! Observability after the end-to-end scenario: /metrics counters moved by
//! the right amounts, every /status field matches the known outcome, the
//! status file feeds the seed's Nagios check unchanged, the audit trail tells
//! a customer's story, and readiness turns red when the graph database or
//! Redis goes, and green again when Redis returns.

use std::collections::HashMap;
use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::services::RedisNode;
use harness::{http_get, wait_for, TestEnv};

const BASE: u64 = 1_767_741_427;

fn snapshot(env: &TestEnv, customer: &str, n: u64) {
    let id = BASE + n * 60;
    sample::write_snapshot(
        &sample::snapshot_dir(&env.data_root(), customer, id),
        &SampleSpec::with_rows(200 + 50 * n as usize, SampleFormat::Csv, id),
    )
    .unwrap();
}

/// Sum of a metric's samples whose line starts with `name` (labels included).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_status_file_history_and_readiness_tell_the_truth() {
    let mut env = TestEnv::new("observe", "skip_superseded = false").unwrap();
    let status_file = env.dir.path().join("orchestrator_status.json");
    let customers = ["customer1", "customer2", "customer3"];
    for n in 0..2 {
        for c in customers {
            snapshot(&env, c, n);
        }
    }
    env.spawn("producer", "producer", &["watch"]).unwrap();
    env.spawn(
        "worker-a",
        "worker",
        &["--status-file", status_file.to_str().unwrap()],
    )
    .unwrap();
    env.spawn_worker("worker-b").unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for c in customers {
        snapshot(&env, c, 2);
    }
    env.wait_counter("completed", 9, Duration::from_secs(120))
        .await;

    let a = env.http_addr("worker-a").await.unwrap();
    let b = env.http_addr("worker-b").await.unwrap();
    let p = env.http_addr("producer").await.unwrap();

    // /healthz and /readyz
    for addr in [&a, &b, &p] {
        assert_eq!(http_get(addr, "/healthz").unwrap(), (200, "ok\n".into()));
        let (code, body) = http_get(addr, "/readyz").unwrap();
        assert_eq!(code, 200, "{addr}: {body}");
    }

    // /metrics: this process's counters, summed over the two workers.
    let wa = http_get(&a, "/metrics").unwrap().1;
    let wb = http_get(&b, "/metrics").unwrap().1;
    let both = |name: &str| metric(&wa, name) + metric(&wb, name);
    assert_eq!(both("snapswitch_completed_total"), 9.0, "{wa}\n{wb}");
    assert_eq!(both("snapswitch_discovered_total"), 9.0);
    assert_eq!(both("snapswitch_failed_total"), 0.0);
    assert_eq!(both("snapswitch_parked_total"), 0.0);
    assert_eq!(both("snapswitch_retried_total"), 0.0);
    assert_eq!(both("snapswitch_load_duration_seconds_count"), 9.0);
    assert_eq!(both("snapswitch_load_rows_per_second_count"), 9.0);
    assert_eq!(both("snapswitch_loads_in_flight"), 0.0);
    assert!(
        wa.contains("snapswitch_lock_held_seconds") && wa.contains("snapswitch_breaker_open 0")
    );
    // Label names stay bounded: no snapshot, event or customer label.
    for unbounded in ["snapshot_id=", "snapshot=", "event_id=", "customer="] {
        assert!(!wa.contains(unbounded), "unbounded label {unbounded}\n{wa}");
    }
    let pm = http_get(&p, "/metrics").unwrap().1;
    assert_eq!(metric(&pm, "snapswitch_published_total"), 9.0, "{pm}");

    // /status: the seed's fields, for the whole fleet. Heartbeats and
    // gauges refresh every 5 s; give them one round.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status: serde_json::Value =
        serde_json::from_str(&http_get(&a, "/status").unwrap().1).unwrap();
    let expect: HashMap<&str, serde_json::Value> = [
        ("tasks_discovered", 9.into()),
        ("tasks_completed", 9.into()),
        ("tasks_failed", 0.into()),
        ("tasks_retried", 0.into()),
        ("tasks_parked", 0.into()),
        ("tasks_published", 9.into()),
        ("success_rate", 100.0.into()),
        ("queue_size", 0.into()),
        ("parked_queue_size", 0.into()),
        ("workers", 2.into()),
        ("scan_interval", 2.into()),
        ("status", "running".into()),
        ("data_path", env.data_root().display().to_string().into()),
    ]
    .into_iter()
    .collect();
    for (k, v) in &expect {
        assert_eq!(&status[*k], v, "/status field {k}: {status}");
    }
    assert!(
        status["uptime_seconds"].as_u64().is_some_and(|u| u >= 5),
        "{status}"
    );
    assert!(status["last_activity"].is_string(), "{status}");
    for c in customers {
        let r = &status["customers"][c];
        assert_eq!(r["live_snapshot"], BASE + 120, "{c}: {r}");
        assert!(
            r["previous_snapshot"]
                .as_u64()
                .is_some_and(|p| p < BASE + 120),
            "{c}: {r}"
        );
        assert!(
            r["last_load_seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{c}: {r}"
        );
        assert!(r["last_error"].is_null(), "{c}: {r}");
    }

    // The status file carries the same fields, and the seed's check passes on it.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status_file).unwrap()).unwrap();
    for (k, v) in &expect {
        assert_eq!(&file[*k], v, "status file field {k}");
    }
    let check = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/nagios/check_snapswitch.sh");
    let out = std::process::Command::new("bash")
        .arg(&check)
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "OK: Orchestrator healthy"
    );
    assert_eq!(out.status.code(), Some(0));

    // `producer status --json` is the same report.
    let cli: serde_json::Value =
        serde_json::from_str(&env.producer(&["status", "--json"]).unwrap()).unwrap();
    assert_eq!(cli["tasks_completed"], 9);
    assert_eq!(cli["workers"], 2);

    // The audit trail tells customer1's story.
    let history: serde_json::Value = serde_json::from_str(
        &env.producer(&["history", "--customer", "customer1", "--json"])
            .unwrap(),
    )
    .unwrap();
    let events: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for (kind, n) in [("published", 3), ("load_started", 3), ("load_finished", 3)] {
        assert_eq!(
            events.iter().filter(|e| **e == kind).count(),
            n,
            "{kind} in {events:?}"
        );
    }
    assert!(events.contains(&"switched"), "{events:?}");
    assert!(history
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["customer"] == "customer1"));
    let text = env
        .producer(&["history", "--customer", "customer1"])
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("customer1/1767741547") && l.contains("switched")),
        "{text}"
    );

    // Readiness turns red when the graph database goes; liveness stays green.
    env.falkor.stop();
    let (code, body) = http_get(&a, "/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("\"graph\"") && !body.contains("\"graph\":\"ok\""),
        "{body}"
    );
    assert_eq!(http_get(&a, "/healthz").unwrap().0, 200);
}

/// `/readyz` of a worker whose Redis (test-owned) stops: 503 naming Redis,
/// while `/healthz` stays 200; ready again once Redis is back, without a
/// worker restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_red_while_redis_is_down_and_green_when_it_returns() {
    let mut redis = RedisNode::start().unwrap();
    let mut env =
        TestEnv::with_services("readyredis", "", &harness::amqp_url(), &redis.url()).unwrap();
    env.spawn_worker("worker").unwrap();
    let addr = env.http_addr("worker").await.unwrap();
    let ready = |want: u16| {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move {
                let (code, body) = http_get(&addr, "/readyz")?;
                Ok((code == want).then_some(body))
            }
        }
    };
    wait_for("ready at start", Duration::from_secs(30), ready(200))
        .await
        .unwrap();

    redis.stop();
    let body = wait_for("unready without Redis", Duration::from_secs(30), ready(503))
        .await
        .unwrap();
    let checks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(checks["redis"], "ok", "{body}");
    assert_eq!(checks["graph"], "ok", "only Redis is down: {body}");
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);

    redis.restart().unwrap();
    let body = wait_for(
        "ready again with Redis",
        Duration::from_secs(60),
        ready(200),
    )
    .await
    .unwrap();
    assert!(body.contains("\"redis\":\"ok\""), "{body}");
    assert!(env.is_running("worker"), "{}", env.logs());
}
