//! Outages are waited out, not turned into hangs or parked work: every CLI
//! command gives up within `connect_timeout` naming the service's URL; the
//! worker serves `/healthz` while it waits for a dependency and starts
//! working when it comes up, without a restart; a graph database that goes
//! away for a minute in the middle of a run parks nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use common::config::redact_url;
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::{http_get, wait_for, TestEnv};
use tokio::net::{TcpListener, TcpStream};

const BASE: u64 = 1_767_741_427;
/// The `connect_timeout` of these tests; a command must end within it + 5 s.
const CONNECT_TIMEOUT: u64 = 4;

fn write(env: &TestEnv, customer: &str, id: u64, rows: usize) {
    let dir = sample::snapshot_dir(&env.data_root(), customer, id);
    sample::write_snapshot(&dir, &SampleSpec::with_rows(rows, SampleFormat::Csv, id)).unwrap();
}

/// A TCP forwarder from `127.0.0.1:listen` to `to`: the service "comes up"
/// on a port the worker was told about while nothing listened there.
async fn forward(listen: u16, to: String) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", listen)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    })
}

/// The host:port of a URL such as `redis://127.0.0.1:6379/`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned()
}

#[derive(Clone, Copy, Debug)]
enum Service {
    RabbitMq,
    Redis,
    Graph,
}

impl Service {
    fn key(self) -> &'static str {
        match self {
            Service::RabbitMq => "amqp_url",
            Service::Redis => "redis_url",
            Service::Graph => "graph_url",
        }
    }

    /// The service's URL on `host:port`.
    fn url(self, host_port: &str) -> String {
        match self {
            Service::RabbitMq => format!("amqp://guest:guest@{host_port}/%2f"),
            Service::Redis | Service::Graph => format!("redis://{host_port}/"),
        }
    }

    /// The commands that need this service: (binary, args).
    fn commands(self) -> Vec<(&'static str, Vec<String>)> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let publish = s(&[
            "publish",
            "--customer",
            "acme",
            "--snapshot-id",
            &BASE.to_string(),
        ]);
        match self {
            Service::RabbitMq => vec![
                ("producer", publish),
                ("producer", s(&["backfill"])),
                ("producer", s(&["status"])),
                ("producer", s(&["dlq", "list"])),
                ("producer", s(&["dlq", "replay", "--all"])),
                ("producer", s(&["dlq", "purge", "--yes"])),
                ("producer", s(&["doctor"])),
                ("worker", s(&["doctor"])),
            ],
            Service::Redis => vec![
                ("producer", publish),
                ("producer", s(&["backfill"])),
                ("producer", s(&["status"])),
                ("producer", s(&["history"])),
                (
                    "producer",
                    s(&[
                        "cancel",
                        "--customer",
                        "acme",
                        "--snapshot-id",
                        &BASE.to_string(),
                    ]),
                ),
                ("producer", s(&["rollback", "--customer", "acme"])),
                ("producer", s(&["doctor"])),
                ("worker", s(&["doctor"])),
            ],
            Service::Graph => vec![
                ("producer", s(&["rollback", "--customer", "acme"])),
                ("worker", s(&["doctor"])),
            ],
        }
    }
}

/// Every CLI command that needs RabbitMQ, Redis or the graph database exits
/// non-zero within `connect_timeout` + 5 s when the service's port is closed
/// or its host does not resolve, and says which URL it could not reach
/// (password hidden).
#[test]
fn every_cli_command_fails_within_connect_timeout_naming_the_url() {
    let env = TestEnv::new(
        "outage-cli",
        &format!("connect_timeout = {CONNECT_TIMEOUT}"),
    )
    .unwrap();
    write(&env, "acme", BASE, 50);
    let base = std::fs::read_to_string(&env.config_path).unwrap();
    let closed = format!("127.0.0.1:{}", harness::free_port());
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for service in [Service::RabbitMq, Service::Redis, Service::Graph] {
        for where_ in [closed.as_str(), "snapswitch-nowhere.invalid:5672"] {
            let url = service.url(where_);
            let config: String = base
                .lines()
                .filter(|l| !l.starts_with(&format!("{} ", service.key())))
                .map(|l| format!("{l}\n"))
                .chain([format!("{} = {url:?}\n", service.key())])
                .collect();
            let path = env.dir.path().join("outage.toml");
            std::fs::write(&path, config).unwrap();
            let shown = redact_url(&url);
            for (binary, args) in service.commands() {
                let started = Instant::now();
                let out = Command::new(harness::bin(binary))
                    .arg("--config")
                    .arg(&path)
                    .args(&args)
                    .env_remove("SNAPSWITCH_CONFIG")
                    .env("RUST_LOG", "error")
                    .output()
                    .unwrap();
                let took = started.elapsed();
                slowest = slowest.max(took);
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let what = format!("{binary} {args:?} with {url}");
                if out.status.success() {
                    failures.push(format!("{what}: exit 0\n{text}"));
                }
                if took > Duration::from_secs(CONNECT_TIMEOUT + 5) {
                    failures.push(format!("{what}: took {took:?}"));
                }
                if !text.contains(&shown) {
                    failures.push(format!("{what}: the output does not name {shown}:\n{text}"));
                }
                if url.contains("guest:guest") && text.contains("guest:guest") {
                    failures.push(format!("{what}: the password is shown:\n{text}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
    eprintln!("slowest command: {slowest:?}");
}

/// The worker, started while one dependency is unreachable: `/healthz`
/// answers, `/readyz` is 503 naming the dependency, a log line per attempt;
/// when the service comes up it starts and loads, without a restart.
async fn worker_waits_for(service: Service) {
    let port = harness::free_port();
    let closed = service.url(&format!("127.0.0.1:{port}"));
    let mut env = TestEnv::new(
        &format!("outage-{service:?}").to_lowercase(),
        &format!("connect_timeout = 2\n{} = {closed:?}", service.key()),
    )
    .unwrap();
    let real = match service {
        Service::RabbitMq => host_port(&env.amqp_url),
        Service::Redis => host_port(&env.redis_url),
        Service::Graph => format!("127.0.0.1:{}", env.falkor.port),
    };
    write(&env, "acme", BASE, 200);
    env.spawn_worker("worker").unwrap();
    let addr = env.http_addr("worker").await.unwrap();
    let (code, body) = http_get(&addr, "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    let shown = redact_url(&closed);
    let waiting = wait_for(
        "/readyz to name the dependency",
        Duration::from_secs(20),
        || async {
            let (code, body) = http_get(&addr, "/readyz")?;
            Ok((code == 503 && body.contains(&shown)).then_some(body))
        },
    )
    .await;
    assert!(waiting.is_ok(), "{waiting:?}\n{}", env.logs());
    // Still waiting, still alive, a line per attempt.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(env.is_running("worker"), "{}", env.logs());
    let log = env.log_of("worker");
    let attempts = log.matches("waiting for a dependency").count();
    assert!(attempts >= 2, "{attempts} attempts logged:\n{log}");
    assert!(!log.contains("guest:guest"), "{log}");
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);

    // The service comes up on the port the worker was told about.
    let forwarder = forward(port, real).await;
    let ready = wait_for("/readyz to turn 200", Duration::from_secs(60), || async {
        let (code, _) = http_get(&addr, "/readyz")?;
        Ok((code == 200).then_some(()))
    })
    .await;
    assert!(ready.is_ok(), "{ready:?}\n{}", env.logs());
    env.producer(&["backfill"]).unwrap();
    let loaded = wait_for("the snapshot to load", Duration::from_secs(60), || async {
        Ok((env.counter("completed").await >= 1).then_some(()))
    })
    .await;
    assert!(loaded.is_ok(), "{loaded:?}\n{}", env.logs());
    assert!(env.is_running("worker"), "{}", env.logs());
    env.terminate("worker", Duration::from_secs(20));
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_rabbitmq_and_starts_when_it_comes_up() {
    worker_waits_for(Service::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_redis_and_starts_when_it_comes_up() {
    worker_waits_for(Service::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_the_graph_database_and_starts_when_it_comes_up() {
    worker_waits_for(Service::Graph).await;
}

/// An unresolvable host: the worker keeps waiting (and serving `/healthz`)
/// instead of exiting or hanging silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_an_unresolvable_host_and_says_so() {
    for service in [Service::RabbitMq, Service::Redis, Service::Graph] {
        let url = service.url("snapswitch-nowhere.invalid:5672");
        let mut env = TestEnv::new(
            "outage-dns",
            &format!("connect_timeout = 2\n{} = {url:?}", service.key()),
        )
        .unwrap();
        env.spawn_worker("worker").unwrap();
        let addr = env.http_addr("worker").await.unwrap();
        let shown = redact_url(&url);
        let waiting = wait_for(
            "/readyz to name the host",
            Duration::from_secs(20),
            || async {
                let (code, body) = http_get(&addr, "/readyz")?;
                Ok((code == 503 && body.contains(&shown)).then_some(()))
            },
        )
        .await;
        assert!(waiting.is_ok(), "{service:?}: {waiting:?}\n{}", env.logs());
        // Two attempts of connect_timeout (2 s) with a 1 s pause between.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(env.is_running("worker"), "{service:?}\n{}", env.logs());
        assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
        assert!(
            env.log_of("worker")
                .matches("waiting for a dependency")
                .count()
                >= 2,
            "{service:?}\n{}",
            env.logs()
        );
        let stopped = env.terminate("worker", Duration::from_secs(10));
        assert!(
            stopped.is_some_and(|s| s.success()),
            "{service:?}: SIGTERM while waiting ends the worker cleanly: {stopped:?}\n{}",
            env.logs()
        );
    }
}

/// The graph database goes away for 60 s in the middle of a run of
/// snapshots: nothing is parked, every snapshot is loaded once it is back,
/// and the circuit breaker's opening and closing shows in the metrics and
/// the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_graph_outage_parks_nothing() {
    const N: u64 = 10;
    let mut env = TestEnv::new(
        "outage-graph",
        "batch_size = 200\nbatch_pause_ms = 300\nbreaker_threshold = 2\nbreaker_probe_interval = 2\nconnect_timeout = 2\nhealth_check_retry_delay = 3",
    )
    .unwrap();
    for i in 0..N {
        write(&env, &format!("cust{i}"), BASE + i, 2000);
    }
    env.spawn_worker("worker").unwrap();
    let addr = env.http_addr("worker").await.unwrap();
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 2, Duration::from_secs(120))
        .await;
    let before = env.counter("completed").await;
    assert!(before < N as i64, "the run ended before the outage");

    env.falkor.stop();
    let opened = wait_for("the breaker to open", Duration::from_secs(50), || async {
        let (_, metrics) = http_get(&addr, "/metrics")?;
        Ok(metrics.contains("snapswitch_breaker_open 1").then_some(()))
    })
    .await;
    assert!(opened.is_ok(), "{opened:?}\n{}", env.logs());
    let (code, readyz) = http_get(&addr, "/readyz").unwrap();
    assert_eq!(code, 503, "{readyz}");
    tokio::time::sleep(Duration::from_secs(50)).await;
    env.falkor.restart().unwrap();

    let done = wait_for(
        "every snapshot to load",
        Duration::from_secs(240),
        || async { Ok((env.counter("completed").await >= N as i64).then_some(())) },
    )
    .await;
    assert!(done.is_ok(), "{done:?}\n{}", env.logs());
    assert_eq!(env.counter("parked").await, 0, "{}", env.logs());
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);
    // Loaded after the restart: the server came back empty, so each of
    // these is a load made after it returned.
    let graphs = env.falkor.graphs();
    let after = graphs.iter().filter(|g| g.starts_with("cust")).count();
    assert!(
        after as i64 >= N as i64 - before,
        "{after} databases after the outage, {before} loaded before: {graphs:?}"
    );
    // The windowed counters saw every load, and nothing parked.
    let status: serde_json::Value =
        serde_json::from_str(&http_get(&addr, "/status").unwrap().1).unwrap();
    assert_eq!(status["window"]["1h"]["completed"], N, "{status}");
    assert_eq!(status["window"]["24h"]["parked"], 0, "{status}");
    assert_eq!(status["success_rate_1h"], 100.0, "{status}");
    let (_, metrics) = http_get(&addr, "/metrics").unwrap();
    assert!(metrics.contains("snapswitch_breaker_open 0"), "{metrics}");
    assert!(
        !metrics.contains("snapswitch_breaker_opened_total 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("snapswitch_dependency_waits_total 0"),
        "{metrics}"
    );
    let log = env.log_of("worker");
    assert!(log.contains("circuit breaker open"), "{log}");
    assert!(log.contains("circuit breaker closed"), "{log}");
    assert!(
        log.contains("a dependency is down: the event waits without using a retry"),
        "{log}"
    );
    assert!(!log.contains("event parked"), "{log}");
}

/// The case: one event in flight when the graph database goes away,
/// so the breaker's count of consecutive failures stays low. Before the fix
/// the event used up its retries (here 2, one second apart) within seconds
/// and was parked; now it waits for the database without using a retry and
/// is loaded when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_event_in_flight_during_a_graph_outage_waits_and_is_loaded() {
    let mut env = TestEnv::new(
        "outage-one",
        "batch_size = 200\nbatch_pause_ms = 300\nbreaker_threshold = 5\nbreaker_probe_interval = 2\nconnect_timeout = 2\nhealth_check_retry_delay = 2",
    )
    .unwrap();
    write(&env, "solo", BASE, 3000);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    let started = wait_for("the load to start", Duration::from_secs(60), || async {
        Ok((!env.audit("load_started").await.is_empty()).then_some(()))
    })
    .await;
    assert!(started.is_ok(), "{started:?}\n{}", env.logs());
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.falkor.stop();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        env.counter("parked").await,
        0,
        "parked during the outage:\n{}",
        env.logs()
    );
    env.falkor.restart().unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(120))
        .await;
    assert_eq!(env.counter("parked").await, 0, "{}", env.logs());
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);
    assert!(
        env.falkor.graphs().iter().any(|g| g.starts_with("solo")),
        "{:?}",
        env.falkor.graphs()
    );
    let log = env.log_of("worker");
    assert!(
        log.contains("a dependency is down: the event waits without using a retry"),
        "{log}"
    );
}

/// The producer alone through a broker restart and then a Redis restart
/// while snapshots keep arriving: every ready snapshot reaches the work
/// queue soon after the services' return — inside the publish claim's TTL,
/// so a claim left behind by a failed release cannot hide a snapshot until
/// it expires, and a connection whose recovery hangs (a publish in flight
/// at the broker's shutdown can leave lapin recovering for good) is
/// replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_publishes_every_snapshot_after_broker_and_redis_restarts() {
    use harness::services::{RabbitNode, RedisNode};
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    use std::collections::BTreeSet;

    const CUSTOMERS: usize = 8;
    const ROUNDS: u64 = 16;
    let mut rabbit = RabbitNode::start("").unwrap();
    let mut redis = RedisNode::start().unwrap();
    let mut env =
        TestEnv::with_services("prodout", "scan_interval = 1", &rabbit.url(), &redis.url())
            .unwrap();
    env.spawn_env(
        "producer",
        "producer",
        &["watch"],
        &[("RUST_LOG", "info,lapin=trace")],
    )
    .unwrap();
    let customers: Vec<String> = (0..CUSTOMERS)
        .map(|i| format!("prodout-{}", (b'a' + i as u8) as char))
        .collect();
    let started = Instant::now();
    let (mut broker_restarted, mut redis_restarted) = (false, false);
    for round in 0..ROUNDS {
        while started.elapsed() < Duration::from_millis(1000 * round) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for c in &customers {
            write(&env, c, BASE + round * 60, 10);
        }
        if !broker_restarted && started.elapsed() > Duration::from_secs(4) {
            rabbit.restart().unwrap();
            broker_restarted = true;
        }
        if !redis_restarted && started.elapsed() > Duration::from_secs(5) {
            redis.restart().unwrap();
            redis_restarted = true;
        }
    }
    let wanted: BTreeSet<(String, u64)> = customers
        .iter()
        .flat_map(|c| (0..ROUNDS).map(move |r| (c.clone(), BASE + r * 60)))
        .collect();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let queue = env.work_queue();
    // Within the claim TTL (60 s) of the restarts, and after a hung
    // connection recovery was given up (RECOVERY_PATIENCE, 20 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !wanted.is_subset(&seen) {
        if let Ok((_con, ch)) = env.amqp().await {
            while let Ok(Some(msg)) = ch
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
            {
                let body: serde_json::Value =
                    serde_json::from_slice(&msg.delivery.data).unwrap_or_default();
                if let (Some(c), Some(id)) =
                    (body["customer"].as_str(), body["snapshot_id"].as_u64())
                {
                    seen.insert((c.to_owned(), id));
                }
                let _ = msg.delivery.ack(BasicAckOptions::default()).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<_> = wanted.difference(&seen).collect();
    println!(
        "producer gave up a hung connection recovery: {}",
        env.log_of("producer")
            .contains("the RabbitMQ connection has not recovered")
    );
    assert!(
        missing.is_empty(),
        "{} of {} snapshots not published 40 s after the last was written: {missing:?}\n{}",
        missing.len(),
        wanted.len(),
        env.logs()
    );
}
