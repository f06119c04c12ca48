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
            std::fs::write(
                dst.join(sub).join(f.file_name().unwrap()),
                format!("{header}\n"),
            )
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
        // The product's default shrink guard (the harness turns it off).
        &format!("workers = 1\nkeep_databases = 2\nreconcile_interval = 3600\nmax_shrink_percent = 50\n{extra}"),
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
    // The audit trail, as `producer history` shows it.
    let history = env.producer(&["history", "--customer", "acme"]).unwrap();
    let line = history
        .lines()
        .find(|l| l.contains(&format!("acme/{S2}  held")))
        .unwrap_or_else(|| panic!("{history}"));
    assert!(
        line.contains("reason=empty") && line.contains("changed=nodes 105 → 0"),
        "{line}"
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
        .producer(&[
            "reject",
            "--customer",
            "acme",
            "--snapshot-id",
            &S2.to_string(),
        ])
        .unwrap();
    assert!(out.contains("rejected"), "{out}");
    assert!(!env.falkor.graphs().contains(&format!("acme-{S2}")));
    assert_eq!(mark(&env, S2), None);
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
    assert!(held_in_status(&env).is_empty());
    assert_eq!(env.audit("rejected").await.len(), 1);
    // Reject and approve refuse a snapshot that is not held.
    let err = env
        .producer(&[
            "reject",
            "--customer",
            "acme",
            "--snapshot-id",
            &S1.to_string(),
        ])
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
        reasons.contains(
            "label Person: 400 in the snapshot, 1000 live (-60.0%); max_shrink_percent is 50"
        ),
        "{reasons}"
    );
    // Company did not shrink, so it is not named.
    assert!(!reasons.contains("label Company"), "{reasons}");
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));

    let out = env
        .producer(&[
            "approve",
            "--customer",
            "acme",
            "--snapshot-id",
            &S2.to_string(),
        ])
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
        .producer(&[
            "approve",
            "--customer",
            "acme",
            "--snapshot-id",
            &S2.to_string(),
        ])
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
        finished
            .get("changed")
            .unwrap()
            .contains("label Person 100 → 110 (+10.0%)"),
        "{finished:?}"
    );
    assert_eq!(alias(&env), Some(format!("acme-{S3}")));
    // What changed, in status (JSON and text) too.
    let changed = status(&env)["customers"]["acme"]["last_changed"].clone();
    assert!(
        changed
            .as_str()
            .unwrap()
            .contains("label Person 100 → 110 (+10.0%)"),
        "{changed}"
    );
    let text = env.producer(&["status"]).unwrap();
    assert!(
        text.contains("last load changed: nodes 105 → 115"),
        "{text}"
    );
    // S2 is superseded: dropped, no longer held; S1 is kept as previous.
    let graphs = env.falkor.graphs();
    assert!(!graphs.contains(&format!("acme-{S2}")), "{graphs:?}");
    assert!(graphs.contains(&format!("acme-{S1}")), "{graphs:?}");
    assert!(held_in_status(&env).is_empty());
    // And an approval of the superseded snapshot is refused.
    let err = env
        .producer(&[
            "approve",
            "--customer",
            "acme",
            "--snapshot-id",
            &S2.to_string(),
        ])
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
        held.get("reasons").unwrap().contains(
            "label Person: 300 in the snapshot, 30 live (+900.0%); max_growth_percent is 100"
        ),
        "{held:?}"
    );
    assert_eq!(alias(&env), Some(format!("acme-{S2}")));
}

// ------------------------------------------------------------------ manifest

/// A manifest for the snapshot `id` as it is on disk now: every file with
/// its bytes, SHA-256 and data rows (lines less the header), and the label
/// and type totals of `spec`.
fn manifest_of(env: &TestEnv, id: u64, spec: &SampleSpec) -> serde_json::Value {
    use sha2::Digest;
    let dir = sample::snapshot_dir(&env.data_root(), "acme", id);
    let mut files = serde_json::Map::new();
    for sub in ["nodes", "relationships"] {
        for f in std::fs::read_dir(dir.join(sub)).unwrap() {
            let f = f.unwrap().path();
            let bytes = std::fs::read(&f).unwrap();
            let rows = bytes.iter().filter(|b| **b == b'\n').count() - 1;
            let name = format!("{sub}/{}", f.file_name().unwrap().to_str().unwrap());
            files.insert(
                name,
                serde_json::json!({
                    "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
                    "bytes": bytes.len(),
                    "rows": rows,
                }),
            );
        }
    }
    let employees = (0..spec.people).filter(|i| i % 7 == 0).count();
    serde_json::json!({
        "manifest_version": 1,
        "files": files,
        "labels": {"Person": spec.people, "Employee": employees, "Company": spec.companies},
        "relationship_types": {"KNOWS": spec.knows, "WORKS_AT": spec.people},
    })
}

fn write_manifest(env: &TestEnv, id: u64, manifest: &serde_json::Value) {
    let dir = sample::snapshot_dir(&env.data_root(), "acme", id);
    std::fs::write(dir.join("_SUCCESS"), manifest.to_string()).unwrap();
}

async fn started(env: &TestEnv, id: u64) -> bool {
    env.audit("load_started")
        .await
        .iter()
        .any(|e| e.get("snapshot_id") == Some(id.to_string().as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_is_checked_before_any_write_and_after_the_load() {
    let env = start("manifest", "").await;
    let ids = [S1, S2, S3, S3 + 60];
    let spec = spec(40, 4, 30, S1);
    for id in ids {
        write(&env, id, &spec);
    }
    // S1: a correct manifest passes.
    write_manifest(&env, S1, &manifest_of(&env, S1, &spec));
    let done = run(&env, S1, "load_finished").await;
    assert_eq!(done.get("switched"), Some("true"), "{done:?}");
    assert!(env
        .log_of("worker")
        .contains("snapshot files match the manifest"));

    // S2: a wrong row count is refused before anything is written.
    let mut wrong_rows = manifest_of(&env, S2, &spec);
    wrong_rows["files"]["nodes/people.csv"]["rows"] = 41.into();
    write_manifest(&env, S2, &wrong_rows);
    let failed = run(&env, S2, "failed").await;
    assert_eq!(failed.get("code"), Some("manifest_mismatch"), "{failed:?}");
    assert!(
        failed
            .get("error")
            .unwrap()
            .contains("nodes/people.csv: 40 rows in the snapshot, 41 in the manifest"),
        "{failed:?}"
    );
    assert!(!started(&env, S2).await, "S2 must not reach create/load");

    // S3: the ETL job was killed mid-write and `_SUCCESS` written anyway:
    // the truncated file is caught by its size and checksum.
    let good = manifest_of(&env, S3, &spec);
    let knows = sample::snapshot_dir(&env.data_root(), "acme", S3).join("relationships/knows.csv");
    let text = std::fs::read(&knows).unwrap();
    std::fs::write(&knows, &text[..text.len() / 2]).unwrap();
    write_manifest(&env, S3, &good);
    let failed = run(&env, S3, "failed").await;
    assert_eq!(failed.get("code"), Some("manifest_mismatch"), "{failed:?}");
    let error = failed.get("error").unwrap();
    assert!(
        error.contains(&format!(
            "relationships/knows.csv: {} bytes in the snapshot, {} in the manifest",
            text.len() / 2,
            text.len()
        )) && error.contains("relationships/knows.csv: SHA-256 "),
        "{error}"
    );
    assert!(!started(&env, S3).await, "S3 must not reach create/load");

    // S4: files agree, a label total does not: refused after the load, its
    // database dropped.
    let s4 = S3 + 60;
    let mut wrong_label = manifest_of(&env, s4, &spec);
    wrong_label["labels"]["Person"] = 999.into();
    write_manifest(&env, s4, &wrong_label);
    let failed = run(&env, s4, "failed").await;
    assert_eq!(failed.get("code"), Some("manifest_mismatch"), "{failed:?}");
    assert!(
        failed
            .get("error")
            .unwrap()
            .contains("label Person: 40 loaded, 999 in the manifest"),
        "{failed:?}"
    );
    assert!(started(&env, s4).await);
    assert!(!env.falkor.graphs().contains(&format!("acme-{s4}")));
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));

    // All three parked with the reason.
    let parked = env.drain_dead().await.unwrap();
    let reasons: Vec<&str> = parked
        .iter()
        .filter_map(|(h, _)| h.get("x-snapswitch-reason").map(String::as_str))
        .collect();
    assert_eq!(reasons, vec!["manifest_mismatch"; 3], "{parked:?}");
}

#[test]
fn the_manifest_schema_matches_the_reader() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/manifest-v1.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        schema["required"],
        serde_json::json!(["manifest_version", "files"])
    );
    let props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        props,
        ["files", "labels", "manifest_version", "relationship_types"]
            .iter()
            .collect::<Vec<_>>()
    );
    let file_props: Vec<&String> = schema["properties"]["files"]["additionalProperties"]
        ["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        file_props,
        ["bytes", "rows", "sha256"].iter().collect::<Vec<_>>()
    );
    // Every example reads as a manifest; an unknown field is refused, as the
    // schema says.
    for example in schema["examples"].as_array().unwrap() {
        let m = common::snapshot::manifest::parse(&example.to_string()).unwrap();
        assert!(m.is_some_and(|m| !m.files.is_empty()));
    }
    let mut extra = schema["examples"][0].clone();
    extra["extra"] = 1.into();
    assert!(common::snapshot::manifest::parse(&extra.to_string()).is_err());
}

// -------------------------------------------------------------------- checks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_holds_the_snapshot_and_names_the_check() {
    let env = start(
        "checks-fail",
        "max_shrink_percent = 100\nchecks = [{ name = \"at least 50 people\", query = \"MATCH (p:Person) RETURN count(p) >= 50\" }, { name = \"only for beta\", query = \"RETURN false\", customers = [\"beta\"] }, { name = \"companies\", query = \"MATCH (c:Company) RETURN count(c)\" }]",
    )
    .await;
    write(&env, S1, &spec(100, 5, 50, S1));
    write(&env, S2, &spec(45, 5, 50, S2));
    let s1 = run(&env, S1, "load_finished").await;
    assert_eq!(s1.get("switched"), Some("true"), "{s1:?}");
    let held = run(&env, S2, "held").await;
    assert_eq!(held.get("reason"), Some("check"), "{held:?}");
    assert_eq!(
        held.get("reasons"),
        Some("check: check \"at least 50 people\" failed: it returned false"),
        "{held:?}"
    );
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
    let status = held_in_status(&env);
    assert_eq!(status[0]["reasons"][0]["code"], "check", "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_errors_times_out_or_writes_holds_with_the_error() {
    let env = start(
        "checks-error",
        "check_timeout = 1\nchecks = [{ name = \"writes\", query = \"CREATE (:Intruder) RETURN 1\" }, { name = \"slow\", query = \"UNWIND range(1, 200000000) AS x RETURN count(x) > 0\" }, { name = \"broken\", query = \"RETURN nosuchfunction(1)\" }]",
    )
    .await;
    let s1 = spec(60, 3, 20, S1);
    write(&env, S1, &s1);
    // A first load is held too: checks need no live graph.
    let held = run(&env, S1, "held").await;
    let reasons = held.get("reasons").unwrap();
    for want in [
        "check \"writes\" could not run:",
        "check \"slow\" could not run:",
        "check \"broken\" could not run: graph database refused the work:",
        "check \"slow\" could not run: timed out after 1 s (check_timeout)",
        "check \"writes\" could not run: graph database refused the work: \"graph.RO_QUERY\": is to be executed only on read-only queries",
    ] {
        assert!(reasons.contains(want), "{want}\n{reasons}");
    }
    assert!(reasons.to_lowercase().contains("timed out"), "{reasons}");
    // Read-only: the write was refused, the database holds the snapshot only.
    assert_eq!(
        env.falkor.counts(&format!("acme-{S1}")),
        (s1.node_count(), s1.relationship_count())
    );
    assert_eq!(alias(&env), None);
    // Approve with no live graph: it becomes the first live one.
    env.producer(&[
        "approve",
        "--customer",
        "acme",
        "--snapshot-id",
        &S1.to_string(),
    ])
    .unwrap();
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
}

// ------------------------------------------------------------- schema.cypher

fn graph_query(env: &TestEnv, graph: &str, q: &str) -> String {
    let mut con = env.falkor.connection();
    let v: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(q)
        .query(&mut con)
        .unwrap();
    format!("{v:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_cypher_is_applied_enforced_and_checked_line_by_line() {
    let env = start("schema", "").await;
    let spec = spec(30, 3, 20, S1);
    for id in [S1, S2, S3] {
        write(&env, id, &spec);
        std::fs::write(
            sample::snapshot_dir(&env.data_root(), "acme", id).join("schema.cypher"),
            "// indexes first\nCREATE INDEX FOR (n:Person) ON (n.name);\nCREATE CONSTRAINT person_id IF NOT EXISTS FOR (n:Person) REQUIRE n.personId IS UNIQUE;\n",
        )
        .unwrap();
    }
    // S1: applied, visible in the store.
    run(&env, S1, "load_finished").await;
    let indexes = graph_query(
        &env,
        "acme",
        "CALL db.indexes() YIELD label, properties RETURN label, properties",
    );
    assert!(
        indexes.contains("name") && indexes.contains("personId"),
        "{indexes}"
    );
    let constraints = graph_query(
        &env,
        "acme",
        "CALL db.constraints() YIELD type, label, properties, status RETURN type, label, properties, status",
    );
    for want in ["UNIQUE", "Person", "personId", "OPERATIONAL"] {
        assert!(constraints.contains(want), "{want}: {constraints}");
    }

    // S2: a second Person with an existing personId, from another file and
    // ID space (so the loader's own duplicate check, per ID space, does not
    // see it), fails the load through the database's constraint.
    let more = sample::snapshot_dir(&env.data_root(), "acme", S2).join("nodes/more.csv");
    std::fs::write(&more, "id:ID(Other),:LABEL,personId\nx1,Person,p0\n").unwrap();
    let failed = run(&env, S2, "failed").await;
    assert!(
        failed
            .get("error")
            .unwrap()
            .contains("constraint violation on node of type Person"),
        "{failed:?}"
    );
    assert!(!env.falkor.graphs().contains(&format!("acme-{S2}")));

    // S3: a statement that is neither an index nor a constraint is refused
    // with its line number, before anything is written.
    std::fs::write(
        sample::snapshot_dir(&env.data_root(), "acme", S3).join("schema.cypher"),
        "CREATE INDEX FOR (n:Person) ON (n.name)\nMATCH (n) DETACH DELETE n\n",
    )
    .unwrap();
    let failed = run(&env, S3, "failed").await;
    assert_eq!(failed.get("code"), Some("snapshot_invalid"), "{failed:?}");
    assert!(
        failed
            .get("error")
            .unwrap()
            .contains("schema.cypher: line 2: only `CREATE INDEX"),
        "{failed:?}"
    );
    assert!(!started(&env, S3).await);
    assert_eq!(alias(&env), Some(format!("acme-{S1}")));
}

/// The held state in the Redis marks of a Neo4j target: only the loading
/// token holds, any current token releases, a stale one neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_marks_hold_and_release_under_the_fence() {
    use common::config::ServiceUrl;
    use common::graph::marks::RedisMarks;
    use common::graph::{DbState, Fence};
    use common::keys::Keys;

    let ns = format!(
        "t-held-marks-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let con = common::state::connect(&ServiceUrl::new(harness::redis_url()))
        .await
        .unwrap();
    let keys = Keys::new(&ns);
    let marks = RedisMarks::new(con.clone(), keys.clone(), "default");
    let fence = |token| Fence {
        customer: "acme".into(),
        token,
    };
    let acme = common::ident::Customer::parse("acme").unwrap();
    let set_counter = |n: u64| {
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
    set_counter(3).await;
    marks.begin(&db, &fence(3)).await.unwrap();
    // Another token did not load it: it cannot hold it.
    set_counter(4).await;
    assert!(marks.hold(&db, &fence(4)).await.unwrap_err().is_fenced());
    marks.begin(&db, &fence(4)).await.unwrap();
    marks.hold(&db, &fence(4)).await.unwrap();
    assert_eq!(marks.state(&db).await.unwrap(), DbState::Held);
    // An operator's later acquisition releases it; a stale token cannot.
    set_counter(5).await;
    assert!(marks.release(&db, &fence(4)).await.unwrap_err().is_fenced());
    marks.release(&db, &fence(5)).await.unwrap();
    assert_eq!(marks.state(&db).await.unwrap(), DbState::Verified);
    let err = marks.release(&db, &fence(5)).await.unwrap_err().to_string();
    assert!(err.contains("is not held (state: verified)"), "{err}");
    marks.forget(&db).await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys.fence(&acme))
        .query_async(&mut con.clone())
        .await
        .unwrap();
}
