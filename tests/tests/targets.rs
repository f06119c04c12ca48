//! Customers spread over several graph targets (two FalkorDB servers), with
//! real workers: each target's `max_concurrent_loads` holds on its own, loads
//! on different targets run at the same time, every customer's databases land
//! on its own target, and metrics, status and readiness speak per target.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{http_get, wait_for, FalkorServer, LoadInterval as Load, TestEnv};

use common::snapshot::sample::{self, SampleFormat, SampleSpec};

const ID: u64 = 1_767_741_427;

/// customer → target, as configured below.
const SPLIT: [(&str, &str); 4] = [
    ("alpha", "default"),
    ("bravo", "default"),
    ("charlie", "east"),
    ("delta", "east"),
];

/// Sum of a metric's samples whose line starts with `prefix`.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_caps_its_own_loads_and_loads_on_two_targets_run_at_once() {
    let mut east = FalkorServer::start().unwrap();
    let mut config = format!(
        "max_concurrent_loads = 1\nbatch_size = 100\nbatch_pause_ms = 150\nslot_wait_timeout = 60\ntargets.east.graph_url = {:?}\n",
        east.url()
    );
    for (customer, target) in SPLIT {
        if target != "default" {
            config.push_str(&format!("customer_targets.{customer} = {target:?}\n"));
        }
    }
    let mut env = TestEnv::new("targets", &config).unwrap();
    for (customer, _) in SPLIT {
        sample::write_snapshot(
            &sample::snapshot_dir(&env.data_root(), customer, ID),
            &SampleSpec::with_rows(1000, SampleFormat::Csv, 1),
        )
        .unwrap();
    }
    let workers = ["worker-0", "worker-1", "worker-2"];
    for w in workers {
        env.spawn_worker(w).unwrap();
    }
    // Every worker takes an event at once (prefetch 1 each): three of the
    // four events, so both targets get work from the start.
    let fleet = env.fleet().await.unwrap();
    wait_for("three live workers", Duration::from_secs(60), || async {
        Ok((fleet.live_workers().await? == 3).then_some(()))
    })
    .await
    .unwrap();
    let addr = env.http_addr("worker-0").await.unwrap();
    env.producer(&["backfill"]).unwrap();

    // The fleet status sees one load on each target at the same moment.
    let both = wait_for(
        "a load running on both targets at once (/status)",
        Duration::from_secs(60),
        || async {
            let (_, body) = http_get(&addr, "/status")?;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let t = &v["targets"];
            Ok((t["default"]["loads"] == 1 && t["east"]["loads"] == 1).then_some(v))
        },
    )
    .await;
    assert!(both.is_ok(), "{both:?}\n{}", env.logs());
    let status = both.unwrap();
    assert_eq!(status["targets"]["east"]["max_concurrent_loads"], 1);
    assert_eq!(status["load_slots"]["max"], 2, "{status}");

    env.wait_counter("completed", 4, Duration::from_secs(180))
        .await;
    let (list, _) = env.loads().await;
    assert_eq!(list.len(), 4, "{list:?}");
    let want: BTreeMap<&str, &str> = SPLIT.into_iter().collect();
    for l in &list {
        assert_eq!(
            want.get(l.customer.as_str()).copied(),
            Some(l.target.as_str()),
            "{l:?} ran on the wrong target"
        );
    }
    for target in ["default", "east"] {
        let on: Vec<&Load> = list.iter().filter(|l| l.target == target).collect();
        assert_eq!(on.len(), 2, "{target}: {list:?}");
        assert!(
            !on[0].overlaps(on[1]),
            "loads overlapped on target {target} with max_concurrent_loads = 1: {on:?}"
        );
    }
    let across = list
        .iter()
        .filter(|a| a.target == "default")
        .any(|a| list.iter().any(|b| b.target == "east" && a.overlaps(b)));
    assert!(
        across,
        "no load on `default` overlapped one on `east`: {list:?}"
    );

    // Each customer's databases (and FalkorDB alias keys) are on its target only.
    let (on_default, on_east) = (env.falkor.graphs(), east.graphs());
    for (customer, target) in SPLIT {
        let db = format!("{customer}-{ID}");
        let (home, other) = if target == "default" {
            (&on_default, &on_east)
        } else {
            (&on_east, &on_default)
        };
        assert!(
            home.iter().any(|g| g == customer || *g == db),
            "{customer} has nothing on {target}: {home:?}"
        );
        assert!(
            !other.iter().any(|g| g == customer || *g == db),
            "{customer} left a database on the other target: {other:?}"
        );
    }

    // Slot waits, per target, over the fleet: one per load.
    let mut text = String::new();
    for w in workers {
        let a = env.http_addr(w).await.unwrap();
        text.push_str(&http_get(&a, "/metrics").unwrap().1);
    }
    for target in ["default", "east"] {
        assert_eq!(
            metric(
                &text,
                &format!("snapswitch_slot_wait_seconds_count{{target=\"{target}\"}}")
            ),
            2.0,
            "{text}"
        );
        assert!(
            text.contains(&format!("snapswitch_slots_in_use{{target=\"{target}\"}}")),
            "{text}"
        );
    }

    // Readiness checks every target.
    let (code, _) = http_get(&addr, "/readyz").unwrap();
    assert_eq!(code, 200);
    east.stop();
    let (code, body) = http_get(&addr, "/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("target east"), "{body}");
}

/// Creates an (empty-but-for-one-node) graph `name` on a FalkorDB server,
/// marked verified as a completed load's database is (an unmarked one is
/// dropped by cleanup whatever its age).
fn create_graph(server: &FalkorServer, name: &str) {
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(name)
        .arg("CREATE (:Probe)")
        .query(&mut server.connection())
        .unwrap();
    let _: redis::Value = redis::cmd("HSET")
        .arg(format!("snapswitch:db:{name}"))
        .arg("state")
        .arg("verified")
        .query(&mut server.connection())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_works_per_target_and_leaves_a_moved_customers_old_databases_alone() {
    let east = FalkorServer::start().unwrap();
    let mut env = TestEnv::new(
        "retarget",
        &format!(
            "keep_databases = 1\nreconcile_interval = 1\ntargets.east.graph_url = {:?}\ncustomer_targets.alpha = \"east\"\n",
            east.url()
        ),
    )
    .unwrap();
    // On `default`: two databases each of bravo (served there) and alpha
    // (moved to east); on east: two of alpha.
    for name in [
        "alpha-1000000001",
        "alpha-1000000002",
        "bravo-1000000001",
        "bravo-1000000002",
    ] {
        create_graph(&env.falkor, name);
    }
    for name in ["alpha-1000000001", "alpha-1000000002"] {
        create_graph(&east, name);
    }

    // The preflight checks every target, each under its own name.
    let (code, out, err) = env.run("worker", &["doctor"]).unwrap();
    assert!(
        out.contains("✓ graph database [default]") && out.contains("✓ graph database [east]"),
        "exit {code}\n{out}\n{err}"
    );

    env.spawn_worker("worker").unwrap();
    let dropped = wait_for(
        "bravo's orphan dropped on default",
        Duration::from_secs(30),
        || async {
            Ok((!env.falkor.graphs().iter().any(|g| g == "bravo-1000000001")).then_some(()))
        },
    )
    .await;
    assert!(dropped.is_ok(), "{dropped:?}\n{}", env.logs());
    let dropped = wait_for(
        "alpha's orphan dropped on east",
        Duration::from_secs(30),
        || async { Ok((!east.graphs().iter().any(|g| g == "alpha-1000000001")).then_some(())) },
    )
    .await;
    assert!(dropped.is_ok(), "{dropped:?}\n{}", env.logs());
    // A few more passes: alpha's databases on its old target stay.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = env.falkor.graphs();
    for name in ["alpha-1000000001", "alpha-1000000002", "bravo-1000000002"] {
        assert!(
            left.iter().any(|g| g == name),
            "{name} is gone from default: {left:?}"
        );
    }
    let audited: Vec<(String, String)> = env
        .audit("reconciled_drop")
        .await
        .iter()
        .map(|e| {
            (
                e.get("database").unwrap_or("").to_owned(),
                e.get("target").unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        audited,
        [
            ("bravo-1000000001".to_owned(), "default".to_owned()),
            ("alpha-1000000001".to_owned(), "east".to_owned())
        ],
        "{}",
        env.logs()
    );
}
