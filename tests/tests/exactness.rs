//! The seven cases in which snapswitch once put wrong data live without a
//! word, written from neo4j-admin import's documented rules (not from the
//! sample generator). Each goes through a real worker and FalkorDB: the
//! customer first has a good snapshot live, then the bad snapshot must be
//! parked with its reason, the worker alive, no graph of the bad snapshot left
//! behind and the alias still on the good one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use common::graph::falkordb::alias_key;
use common::topology::{HEADER_ERROR, HEADER_REASON};
use harness::{wait_for, TestEnv};

/// The good snapshot every customer starts with.
const GOOD: u64 = 1_767_741_000;
/// The bad snapshot, newer.
const BAD: u64 = 1_767_741_427;

const GOOD_PEOPLE: &str = "personId:ID(Person),:LABEL,name\np1,Person,Ann\np2,Person,Bob\n";

fn write(root: &Path, customer: &str, id: u64, files: &[(&str, Vec<u8>)]) {
    let dir = root.join(customer).join(id.to_string());
    for (rel, bytes) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

fn event(customer: &str, id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::new_v4().to_string(),
        "customer": customer,
        "snapshot_id": id,
        "path": format!("{customer}/{id}"),
        "priority": 5,
        "created_at": "2026-01-06T22:30:00Z"
    }))
    .unwrap()
}

/// A Parquet file with one string id column and one float column declared `:int`.
fn parquet_floats_as_int() -> Vec<u8> {
    let ids: ArrayRef = Arc::new(StringArray::from(vec!["p1", "p2", "p3"]));
    let scores: ArrayRef = Arc::new(Float64Array::from(vec![1.5, 2.7, -0.9]));
    let batch =
        RecordBatch::try_from_iter([("personId:ID(Person)", ids), ("score:int", scores)]).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// Prepares the bad snapshot (data root, customer); returns its id.
type Setup = Box<dyn Fn(&Path, &str) -> u64>;

struct Case {
    name: &'static str,
    setup: Setup,
    reason: &'static str,
    message: &'static str,
}

fn files(list: Vec<(&'static str, Vec<u8>)>) -> Setup {
    Box::new(move |root, customer| {
        write(root, customer, BAD, &list);
        BAD
    })
}

fn cases() -> Vec<Case> {
    let wide_header: String = std::iter::once("id:ID(Wide)".to_owned())
        .chain((0..100_000).map(|i| format!("c{i}")))
        .collect::<Vec<_>>()
        .join(",");
    let wide_row: String = std::iter::once("w1".to_owned())
        .chain((0..100_000).map(|i| i.to_string()))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        Case {
            // One duplicated id and two relationships to an id no node has:
            // the old per-batch "rows minus created" let the duplicate's extra
            // match hide the dangling rows.
            name: "1. a duplicated node id next to dangling relationships",
            setup: files(vec![
                (
                    "nodes/people.csv",
                    b"personId:ID(Person),:LABEL,name\np1,Person,Ann\np2,Person,Bob\np1,Person,Ann again\n".to_vec(),
                ),
                (
                    "relationships/knows.csv",
                    b":START_ID(Person),:END_ID(Person),:TYPE\np1,p2,KNOWS\np2,p1,KNOWS\np2,nobody,KNOWS\nnobody,p2,KNOWS\n".to_vec(),
                ),
            ]),
            reason: "duplicate_node_id",
            message: "`p1`",
        },
        Case {
            // neo4j-admin: ID spaces are independent of labels; `User;Admin`
            // labels on nodes of two ID spaces are legal.
            name: "2. ID spaces that are also labels of the other space's nodes",
            setup: files(vec![
                (
                    "nodes/users.csv",
                    b"id:ID(User),:LABEL,name\nx,User;Admin,user x\n".to_vec(),
                ),
                (
                    "nodes/admins.csv",
                    b"id:ID(Admin),:LABEL,name\nx,Admin;User,admin x\n".to_vec(),
                ),
                (
                    "relationships/manages.csv",
                    b":START_ID(Admin),:END_ID(User),:TYPE\nx,x,MANAGES\nx,ghost,MANAGES\n".to_vec(),
                ),
            ]),
            reason: "dangling_relationships",
            message: "1 of 2 relationships",
        },
        Case {
            name: "3. Parquet floats declared :int",
            setup: files(vec![("nodes/people.parquet", parquet_floats_as_int())]),
            reason: "snapshot_invalid",
            message: "1.5",
        },
        Case {
            name: "4. a header delimited by `;`",
            setup: files(vec![(
                "nodes/people.csv",
                b"name;age;personId:ID(Person)\nAlice;30;p1\n".to_vec(),
            )]),
            reason: "snapshot_invalid",
            message: "delimited by `;`",
        },
        Case {
            name: "5. 100 000 property columns (past FalkorDB's property-key limit)",
            setup: files(vec![(
                "nodes/wide.csv",
                format!("{wide_header}\n{wide_row}\n").into_bytes(),
            )]),
            reason: "store_limit",
            message: "65534",
        },
        Case {
            name: "6a. snapshot directory is a symlink into another customer's tree",
            setup: Box::new(|root, customer| {
                let other = format!("{customer}other");
                write(root, &other, BAD, &[("nodes/people.csv", b"personId:ID(Person),:LABEL,name\nsecret,Person,Other's data\n".to_vec())]);
                std::os::unix::fs::symlink(
                    root.join(&other).join(BAD.to_string()),
                    root.join(customer).join(BAD.to_string()),
                )
                .unwrap();
                BAD
            }),
            reason: "snapshot_outside_root",
            message: "outside",
        },
        Case {
            name: "7. a snapshot id far in the future",
            setup: Box::new(|root, customer| {
                write(root, customer, 9_999_999_999, &[("nodes/people.csv", GOOD_PEOPLE.as_bytes().to_vec())]);
                9_999_999_999
            }),
            reason: "snapshot_id_in_future",
            message: "max_future_seconds",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seven_silent_cases_now_fail_loudly_and_change_nothing() {
    let mut env = TestEnv::new("exactness", "max_retries = 0").unwrap();
    env.spawn_worker("worker").unwrap();
    wait_for("the worker to consume", Duration::from_secs(60), || async {
        Ok(env.log_of("worker").contains("consuming").then_some(()))
    })
    .await
    .unwrap();
    let root = env.data_root();
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let customer = format!("exact{i}");
        let good_db = format!("{customer}-{GOOD}");
        // The good snapshot goes live first.
        write(
            &root,
            &customer,
            GOOD,
            &[("nodes/people.csv", GOOD_PEOPLE.as_bytes().to_vec())],
        );
        env.publish_raw(&event(&customer, GOOD), 5).await.unwrap();
        let key = alias_key(&customer);
        let live = wait_for(case.name, Duration::from_secs(60), || async {
            Ok((env.falkor.get(&key).as_deref() == Some(good_db.as_str())).then_some(()))
        })
        .await;
        assert!(
            live.is_ok(),
            "{}: good snapshot not live\n{}",
            case.name,
            env.logs()
        );

        let bad = (case.setup)(&root, &customer);
        env.publish_raw(&event(&customer, bad), 5).await.unwrap();
        let parked = wait_for(case.name, Duration::from_secs(120), || async {
            let msgs = env.drain_dead().await?;
            Ok((!msgs.is_empty()).then_some(msgs))
        })
        .await;
        let bad_db = format!("{customer}-{bad}");
        // Wait for a load that is not parked to finish before looking.
        if parked.is_err() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let error = parked
            .as_ref()
            .ok()
            .and_then(|p| p.first())
            .and_then(|(h, _)| h.get(HEADER_ERROR).cloned())
            .unwrap_or_default();
        let reason = parked
            .as_ref()
            .ok()
            .and_then(|p| p.first())
            .and_then(|(h, _)| h.get(HEADER_REASON).cloned());
        let mut wrong = Vec::new();
        if reason.as_deref() != Some(case.reason) {
            wrong.push(format!("reason {reason:?}, not {}", case.reason));
        }
        if !error.contains(case.message) {
            wrong.push(format!("message `{error}` lacks `{}`", case.message));
        }
        if !env.is_running("worker") {
            wrong.push("the worker died".into());
        }
        let alias = env.falkor.get(&key);
        if alias.as_deref() != Some(good_db.as_str()) {
            wrong.push(format!("the alias moved to {alias:?}"));
        }
        if env.falkor.graphs().contains(&bad_db) {
            wrong.push(format!("{bad_db} left behind"));
        }
        if env.falkor.counts(&customer) != (2, 0) {
            wrong.push("the live data changed".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", case.name, wrong.join("; ")));
            continue;
        }
        eprintln!("{:<70} parked {}: {error}", case.name, case.reason);
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        env.logs()
    );

    // The future id did not pin the alias: a newer ordinary snapshot of that
    // customer still loads and goes live.
    let customer = "exact6";
    let next = GOOD + 100;
    write(
        &root,
        customer,
        next,
        &[("nodes/people.csv", GOOD_PEOPLE.as_bytes().to_vec())],
    );
    env.publish_raw(&event(customer, next), 5).await.unwrap();
    let want = format!("{customer}-{next}");
    let key = alias_key(customer);
    let live = wait_for(
        "a snapshot after the future one",
        Duration::from_secs(60),
        || async { Ok((env.falkor.get(&key).as_deref() == Some(want.as_str())).then_some(())) },
    )
    .await;
    assert!(live.is_ok(), "{}", env.logs());
    assert!(!env.log_of("worker").contains("panicked"));
}
