//! Faults, for real: workers killed with SIGKILL and paused with SIGSTOP past
//! `lock_ttl` (then SIGCONT), the broker and Redis restarted mid-run, a load
//! that outlives RabbitMQ's consumer_timeout. Each test owns its RabbitMQ
//! node and Redis server (on free ports) and FalkorDB.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::services::{RabbitNode, RedisNode};
use harness::{wait_for, TestEnv};

const BASE: u64 = 1_767_741_427;

fn write(env: &TestEnv, customer: &str, id: u64, rows: usize) {
    let dir = sample::snapshot_dir(&env.data_root(), customer, id);
    sample::write_snapshot(&dir, &SampleSpec::with_rows(rows, SampleFormat::Csv, id)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_outlives_consumer_timeout_is_loaded_once_and_the_event_is_gone() {
    // consumer_timeout at its minimum, checked every 5 s instead of every minute.
    let rabbit = RabbitNode::start_with(
        "consumer_timeout = 60000",
        "[{rabbit, [{channel_tick_interval, 5000}]}].",
    )
    .unwrap();
    let mut env = TestEnv::with_services(
        "ctimeout",
        "batch_size = 100\nbatch_pause_ms = 2500\nlock_ttl = 10\nlock_wait_timeout = 2",
        &rabbit.url(),
        &harness::redis_url(),
    )
    .unwrap();
    // ~31 write batches × 2.5 s ≈ 78 s: past the 60 s timeout.
    write(&env, "acme", BASE, 3000);
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();

    env.wait_counter("completed", 1, Duration::from_secs(150))
        .await;
    // The broker took the delivery back at the timeout and redelivered it; the
    // redelivery must end as "already live" and leave every queue empty.
    let settled = wait_for(
        "the redelivered event to settle",
        Duration::from_secs(60),
        || async {
            let live = env.audit("already_live").await.len();
            let work = env.queue_depth(&env.work_queue()).await?;
            let delayed = env
                .queue_depth(&format!("{}.delay.2s", env.namespace))
                .await?;
            Ok((live >= 1 && work == 0 && delayed == 0).then_some(()))
        },
    )
    .await;
    assert!(settled.is_ok(), "{settled:?}\n{}", env.logs());
    let log = env.log_of("worker");
    assert!(
        log.contains("timed out") || log.contains("PRECONDITION_FAILED"),
        "the consumer timeout never fired:\n{}",
        env.logs()
    );
    assert_eq!(
        env.audit("load_started").await.len(),
        1,
        "loaded exactly once:\n{}",
        env.logs()
    );
    assert_eq!(env.counter("completed").await, 1);
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741427")
    );
    assert_eq!(
        env.falkor.counts("acme").0,
        SampleSpec::with_rows(3000, SampleFormat::Csv, BASE).node_count()
    );
    assert!(
        env.is_running("worker"),
        "the worker survived its channel closing:\n{}",
        env.logs()
    );
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);
}

/// Polls every customer's alias (atomically with its target's lifecycle
/// mark) until `stop`; returns every violation seen: an alias on a database
/// that is not verified, or an alias that moved backwards.
fn watch_aliases(
    url: String,
    customers: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    const READ: &str = r"
local a = redis.call('GET', KEYS[1])
if not a then return {} end
return {a, redis.call('HGET', 'snapswitch:db:' .. a, 'state') or 'unmarked'}";
    std::thread::spawn(move || {
        let mut violations = Vec::new();
        let mut polls = 0;
        let mut last: HashMap<String, u64> = HashMap::new();
        let script = redis::Script::new(READ);
        let mut con = None;
        while !stop.load(Ordering::SeqCst) {
            if con.is_none() {
                con = redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .ok();
            }
            if let Some(c) = con.as_mut() {
                for customer in &customers {
                    let key = format!("snapswitch:alias:{customer}");
                    let Ok(seen) = script.key(&key).invoke::<Vec<String>>(c) else {
                        con = None;
                        break;
                    };
                    polls += 1;
                    let [db, state] = seen.as_slice() else {
                        continue;
                    };
                    if state != "verified" {
                        violations.push(format!("{customer} live on {db}, which is {state}"));
                    }
                    let id: u64 = db
                        .rsplit('-')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if let Some(prev) = last.insert(customer.clone(), id) {
                        if id < prev {
                            violations.push(format!("{customer} moved back from {prev} to {id}"));
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (polls, violations)
    })
}

/// The pids of the workers with a load started and not yet finished.
async fn open_loads(env: &TestEnv) -> HashSet<String> {
    let Ok(fleet) = env.fleet().await else {
        return HashSet::new();
    };
    let entries = fleet.audit_entries(100_000).await.unwrap_or_default();
    let mut open: HashMap<(String, String), ()> = HashMap::new();
    for e in entries {
        let key = (
            e.get("event_id").unwrap_or("").to_owned(),
            e.get("worker").unwrap_or("").to_owned(),
        );
        match e.get("event") {
            Some("load_started") => {
                open.insert(key, ());
            }
            Some("load_finished" | "load_aborted" | "failed") => {
                open.remove(&key);
            }
            _ => {}
        }
    }
    open.into_keys()
        .filter_map(|(_, worker)| worker.split('-').nth(1).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_killed_workers_and_restarted_broker_and_redis_lose_nothing() {
    const CUSTOMERS: usize = 12;
    const SNAPSHOTS: u64 = 17; // 204 in all
    let mut rabbit = RabbitNode::start("").unwrap();
    let mut redis = RedisNode::start().unwrap();
    let mut env = TestEnv::with_services(
        "chaos",
        "batch_size = 50\nbatch_pause_ms = 100\nlock_ttl = 6\nlock_wait_timeout = 1\nmax_retries = 8\nretry_backoff_base = 1\n\
         health_check_retry_delay = 1\nreconcile_interval = 5\nbreaker_probe_interval = 1\nscan_interval = 2",
        &rabbit.url(),
        &redis.url(),
    )
    .unwrap();
    let customers: Vec<String> = (0..CUSTOMERS)
        .map(|i| format!("chaos-{}", (b'a' + i as u8) as char))
        .collect();
    let newest = BASE + (SNAPSHOTS - 1) * 60;

    env.spawn("producer", "producer", &["watch"]).unwrap();
    let mut workers: Vec<String> = Vec::new();
    for n in 0..3 {
        let label = format!("worker-{n}");
        env.spawn_worker(&label).unwrap();
        workers.push(label);
    }

    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = watch_aliases(env.falkor.url(), customers.clone(), stop_watch.clone());
    // Paused workers: (label, when to SIGCONT it).
    let mut paused: Vec<(String, Instant)> = Vec::new();
    let mut next_pause = Instant::now() + Duration::from_secs(2);
    let mut pauses = 0;

    // Snapshots keep arriving while the faults happen.
    let started = Instant::now();
    let mut next_round = 0u64;
    let mut next_kill = Instant::now() + Duration::from_secs(3);
    let (mut broker_restarted, mut redis_restarted) = (false, false);
    let mut kills = 0;
    let mut rng = fastrand::Rng::with_seed(7);
    while next_round < SNAPSHOTS || started.elapsed() < Duration::from_secs(30) {
        if next_round < SNAPSHOTS && started.elapsed() >= Duration::from_millis(1500 * next_round) {
            for (i, c) in customers.iter().enumerate() {
                write(
                    &env,
                    c,
                    BASE + next_round * 60,
                    80 + 20 * ((i + next_round as usize) % 7),
                );
            }
            next_round += 1;
        }
        // SIGSTOP a worker past lock_ttl (6 s) at a random moment of its
        // work, then SIGCONT it: its lock goes to another worker meanwhile.
        {
            let list = &mut paused;
            for (label, until) in list.iter() {
                if Instant::now() >= *until {
                    env.signal(label, "CONT");
                }
            }
            list.retain(|(_, until)| Instant::now() < *until);
            // At most two of the three workers paused at once.
            if Instant::now() >= next_pause && list.len() < 2 {
                // Prefer a worker with a load open in the audit trail (its id
                // carries its pid), caught after a random part of its steps.
                let loading = open_loads(&env).await;
                let running: Vec<String> = workers
                    .iter()
                    .filter(|w| !list.iter().any(|(l, _)| l == *w))
                    .cloned()
                    .collect();
                let busy: Vec<String> = running
                    .iter()
                    .filter(|l| {
                        env.pid(l)
                            .is_some_and(|pid| loading.contains(&pid.to_string()))
                    })
                    .cloned()
                    .collect();
                let pool = if busy.is_empty() { &running } else { &busy };
                let label = pool[rng.usize(..pool.len())].clone();
                std::thread::sleep(Duration::from_millis(rng.u64(..400)));
                env.signal(&label, "STOP");
                pauses += 1;
                list.push((
                    label,
                    Instant::now() + Duration::from_millis(7000 + rng.u64(..2000)),
                ));
                next_pause = Instant::now() + Duration::from_millis(1000 + rng.u64(..1500));
            }
        }
        if Instant::now() >= next_kill {
            let victim = rng.usize(..workers.len());
            let label = workers[victim].clone();
            if paused.iter().any(|(l, _)| *l == label) {
                next_kill = Instant::now() + Duration::from_millis(500);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            env.kill(&label);
            kills += 1;
            let fresh = format!("worker-{}", 3 + kills);
            env.spawn_worker(&fresh).unwrap();
            workers[victim] = fresh;
            next_kill = Instant::now() + Duration::from_millis(2000 + rng.u64(..2000));
        }
        if !broker_restarted && started.elapsed() > Duration::from_secs(9) {
            rabbit.restart().unwrap();
            broker_restarted = true;
        }
        if !redis_restarted && started.elapsed() > Duration::from_secs(18) {
            redis.restart().unwrap();
            redis_restarted = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (label, _) in paused.drain(..) {
        env.signal(&label, "CONT");
    }

    // Faults over: the fleet must converge.
    let converged = wait_for(
        "every alias on its newest snapshot and empty queues",
        Duration::from_secs(240),
        || async {
            for c in &customers {
                if env.falkor.get(&format!("snapswitch:alias:{c}")) != Some(format!("{c}-{newest}"))
                {
                    return Ok(None);
                }
            }
            let work = env.queue_depth(&env.work_queue()).await?;
            let delayed = env
                .queue_depth(&format!("{}.delay.1s", env.namespace))
                .await?;
            Ok((work == 0 && delayed == 0).then_some(()))
        },
    )
    .await;
    assert!(converged.is_ok(), "{converged:?}\n{}", env.logs());
    // Let in-flight redeliveries settle before auditing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_watch.store(true, Ordering::SeqCst);
    let (polls, violations) = watcher.join().unwrap();
    assert!(
        violations.is_empty(),
        "the alias pointed at an unverified database or moved backwards: {violations:?}\n{}",
        env.logs()
    );
    assert!(polls > 100, "the alias watcher polled only {polls} times");
    let abandoned = (0..3 + kills + 1)
        .map(|n| env.log_of(&format!("worker-{n}")))
        .filter(|log| log.contains("in-flight work abandoned"))
        .count();

    // 1. Nothing lost: every snapshot completed, was skipped as superseded or
    //    already done, or was parked with a reason.
    let fleet = env.fleet().await.unwrap();
    let audit = fleet.audit_entries(1_000_000).await.unwrap();
    let mut outcome: HashMap<(String, u64), HashSet<String>> = HashMap::new();
    for e in &audit {
        let (Some(c), Some(id), Some(kind)) =
            (e.get("customer"), e.get("snapshot_id"), e.get("event"))
        else {
            continue;
        };
        outcome
            .entry((c.to_owned(), id.parse().unwrap()))
            .or_default()
            .insert(kind.to_owned());
    }
    let parked: Vec<serde_json::Value> =
        serde_json::from_str(&env.producer(&["dlq", "list", "--json"]).unwrap()).unwrap();
    let parked_ids: HashSet<(String, u64)> = parked
        .iter()
        .filter_map(|p| {
            Some((
                p["customer"].as_str()?.to_owned(),
                p["snapshot_id"].as_u64()?,
            ))
        })
        .collect();
    for p in &parked {
        assert!(p["reason"].is_string(), "parked without a reason: {p}");
    }
    let settled_kinds = [
        "load_finished",
        "superseded",
        "already_live",
        "already_loaded",
        "cancelled",
    ];
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lost = Vec::new();
    for c in &customers {
        for n in 0..SNAPSHOTS {
            let key = (c.clone(), BASE + n * 60);
            let kinds = outcome.get(&key).cloned().unwrap_or_default();
            match settled_kinds.iter().find(|k| kinds.contains(**k)) {
                Some(k) => *tally.entry(k).or_default() += 1,
                None if parked_ids.contains(&key) => *tally.entry("parked").or_default() += 1,
                None => lost.push(key),
            }
        }
    }
    println!(
        "chaos: {} snapshots, {kills} workers killed, {pauses} paused past lock_ttl ({abandoned} workers logged abandoned work), broker and Redis restarted once; {polls} alias polls; outcomes {tally:?}; counters {:?}",
        CUSTOMERS as u64 * SNAPSHOTS,
        fleet.counters().await.unwrap()
    );
    assert!(lost.is_empty(), "lost snapshots: {lost:?}\n{}", env.logs());

    // 2. No alias ever moved backwards.
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in audit.iter().filter(|e| e.get("event") == Some("switched")) {
        let c = e.get("customer").unwrap().to_owned();
        let id: u64 = e.get("snapshot_id").unwrap().parse().unwrap();
        if let Some(prev) = last.insert(c.clone(), id) {
            assert!(id > prev, "alias of {c} moved from {prev} back to {id}");
        }
    }

    // 3. No two loads of one customer overlapped (a killed worker's load has
    //    no end and stopped with its process).
    let mut open: HashMap<(String, String), (String, i64)> = HashMap::new();
    let mut intervals: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for e in &audit {
        let key = (
            e.get("event_id").unwrap_or("").to_owned(),
            e.get("worker").unwrap_or("").to_owned(),
        );
        let at: i64 = e.get("at_ms").unwrap().parse().unwrap();
        match e.get("event") {
            Some("load_started") => {
                open.insert(key, (e.get("customer").unwrap().to_owned(), at));
            }
            Some("load_finished" | "load_aborted") => {
                if let Some((c, start)) = open.remove(&key) {
                    intervals.entry(c).or_default().push((start, at));
                }
            }
            _ => {}
        }
    }
    for (c, mut list) in intervals {
        list.sort();
        for pair in list.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "overlapping loads of {c}: {pair:?}");
        }
    }

    // 4. No customer keeps more than keep_databases databases.
    let graphs = env.falkor.graphs();
    for c in &customers {
        let own = graphs
            .iter()
            .filter(|g| g.starts_with(&format!("{c}-")))
            .count()
            + 1; // + the live one
        assert!(own <= 2, "{c} keeps {own} databases: {graphs:?}");
    }
    drop(env);
    drop(rabbit);
    drop(redis);
}
