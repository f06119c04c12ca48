//! `producer rollback`: the alias goes back to the previous retained
//! snapshot, and is refused cleanly when none is retained.

use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::TestEnv;

const ID: u64 = 1_767_741_427;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_moves_the_alias_back_and_refuses_without_a_retained_database() {
    let mut env = TestEnv::new("rollback", "keep_databases = 2\nskip_superseded = false").unwrap();
    let specs: Vec<SampleSpec> = (0..2)
        .map(|n| SampleSpec::with_rows(200 + 100 * n, SampleFormat::Csv, n as u64))
        .collect();
    for (n, spec) in specs.iter().enumerate() {
        sample::write_snapshot(
            &sample::snapshot_dir(&env.data_root(), "acme", ID + 60 * n as u64),
            spec,
        )
        .unwrap();
    }
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 2, Duration::from_secs(60))
        .await;
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741487")
    );

    let out = env.producer(&["rollback", "--customer", "acme"]).unwrap();
    assert_eq!(
        out.trim(),
        "acme: alias moved back from 1767741487 to 1767741427"
    );
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741427")
    );
    assert_eq!(
        env.falkor.counts("acme"),
        (specs[0].node_count(), specs[0].relationship_count()),
        "readers of the alias see the older data"
    );
    let fleet = env.fleet().await.unwrap();
    let acme = common::ident::Customer::parse("acme").unwrap();
    assert_eq!(fleet.customer(&acme).await.unwrap().live_snapshot, Some(ID));
    assert_eq!(env.audit("rolled_back").await.len(), 1);

    // Nothing older than the oldest retained database: refused, alias untouched.
    let (code, out, err) = env
        .run("producer", &["rollback", "--customer", "acme"])
        .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("cannot roll back acme: no database older than the live one (1767741427) is retained (retained: "), "{err}");
    assert!(!err.contains("must be at least 2"), "{err}");
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some("acme-1767741427")
    );
    // A snapshot that is not retained is refused too.
    let (code, _, err) = env
        .run(
            "producer",
            &["rollback", "--customer", "acme", "--to", "1767000000"],
        )
        .unwrap();
    assert_eq!(code, 1);
    assert!(
        err.contains("is not a retained database older than the live one"),
        "{err}"
    );
}
