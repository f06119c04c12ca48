//! The load path on a real FalkorDB: every file format with several write
//! batches in flight, exact counts and sample property values; dangling
//! relationships under both policies, in the loader and through the worker;
//! exact resolution (duplicate node ids, ID spaces independent of labels) and
//! FalkorDB's property-key limit, at it and one past it. The format, dangling,
//! duplicate and ID-space tests run through both load methods (`bulk`:
//! GRAPH.BULK, and `cypher`; the `_cypher` twins).

use std::time::Duration;

use common::config::ServiceUrl;
use common::graph::falkordb::FalkorStore;
use common::graph::{GraphStore, GraphWriter};
use common::load::{
    load_snapshot, DanglingPolicy, DuplicatePolicy, LoadError, LoadMethod, LoadOptions,
};
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::{wait_for, FalkorServer, TestEnv};
use tokio_util::sync::CancellationToken;

const BASE_ID: u64 = 1_767_741_427;

fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(n) => n.to_string(),
        redis::Value::Nil => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Rows of a `GRAPH.QUERY` reply, each cell as text.
fn query(server: &FalkorServer, graph: &str, q: &str) -> Vec<Vec<String>> {
    let reply: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(q)
        .query(&mut server.connection())
        .unwrap();
    let redis::Value::Array(parts) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    match parts.get(1) {
        Some(redis::Value::Array(rows)) => rows
            .iter()
            .map(|r| match r {
                redis::Value::Array(cells) => cells.iter().map(text).collect(),
                other => panic!("unexpected row {other:?}"),
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_loads_exactly_with_concurrent_batches() {
    every_format_loads_exactly_with_concurrent_batches_with(LoadMethod::Bulk).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_loads_exactly_with_concurrent_batches_cypher() {
    every_format_loads_exactly_with_concurrent_batches_with(LoadMethod::Cypher).await
}

async fn every_format_loads_exactly_with_concurrent_batches_with(method: LoadMethod) {
    let server = FalkorServer::start().unwrap();
    let store = FalkorStore::connect_with_writers(&ServiceUrl::new(server.url()), 4)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed = 99;
    let rows = 6000;
    for (format, name) in [
        (SampleFormat::Csv, "csv"),
        (SampleFormat::Parquet, "parquet"),
        (SampleFormat::Arrow, "arrow"),
    ] {
        let spec = SampleSpec::with_rows(rows, format, seed);
        let snap = dir.path().join(name);
        sample::write_snapshot(&snap, &spec).unwrap();
        let people = harness::sample_people(
            &std::fs::read_to_string(dir.path().join("csv/nodes/people.csv")).unwrap(),
            20,
        );
        let db = format!("load{name}-{BASE_ID}");
        store.create_database(&db).await.unwrap();
        // Small batches, four in flight: many batches overlap.
        let report = load_snapshot(
            &store,
            &db,
            &snap,
            LoadOptions::new(250)
                .with_method(method)
                .with_concurrency(4),
            &CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} ({method}): {e}"));
        assert_eq!(
            (
                report.nodes,
                report.relationships,
                report.skipped_relationships
            ),
            (spec.node_count(), spec.relationship_count(), 0),
            "{name}"
        );
        let c = store.counts(&db).await.unwrap();
        assert_eq!(
            (c.nodes, c.relationships),
            (spec.node_count(), spec.relationship_count()),
            "{name}"
        );
        let by_type = query(
            &server,
            &db,
            "MATCH ()-[r]->() RETURN type(r), count(r) ORDER BY type(r)",
        );
        assert_eq!(
            by_type,
            [
                vec!["KNOWS".to_owned(), spec.knows.to_string()],
                vec!["WORKS_AT".to_owned(), spec.people.to_string()],
            ],
            "{name}"
        );
        let ids: Vec<String> = people.keys().map(|k| format!("'{k}'")).collect();
        let found = query(
            &server,
            &db,
            &format!(
                "MATCH (p:Person) WHERE p.personId IN [{}] \
                 RETURN p.personId, p.name, p.age, p.score, p.active, p:Employee",
                ids.join(",")
            ),
        );
        assert_eq!(found.len(), people.len(), "{name}: {found:?}");
        for row in found {
            let harness::SamplePerson {
                name: want_name,
                age: want_age,
                score: want_score,
                active: want_active,
                employee: want_employee,
            } = &people[&row[0]];
            assert_eq!(&row[1], want_name, "{name} {}", row[0]);
            assert_eq!(
                row[2],
                want_age.map_or("null".to_owned(), |a| a.to_string()),
                "{name} {} age",
                row[0]
            );
            let score: f64 = row[3].parse().unwrap();
            assert!(
                (score - want_score).abs() < 1e-9,
                "{name} {} score {score}",
                row[0]
            );
            assert_eq!(row[4], want_active.to_string(), "{name} {} active", row[0]);
            assert_eq!(
                row[5],
                want_employee.to_string(),
                "{name} {} Employee label",
                row[0]
            );
        }
        store.drop_database(&db).await.unwrap();
    }
}

/// Five nodes; six relationships, two of them to or from an id no node has.
fn dangling_snapshot(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::create_dir_all(dir.join("relationships")).unwrap();
    std::fs::write(
        dir.join("nodes/n.csv"),
        "id:ID(N),v:int\n1,10\n2,20\n3,30\n4,40\n5,50\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("relationships/r.csv"),
        ":START_ID(N),:END_ID(N),:TYPE,w:int\n1,2,R,1\n2,3,R,2\n9,1,R,3\n3,4,R,4\n4,99,R,5\n5,1,R,6\n",
    )
    .unwrap();
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_relationships_fail_or_are_skipped_and_counted() {
    dangling_relationships_fail_or_are_skipped_and_counted_with(LoadMethod::Bulk).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_relationships_fail_or_are_skipped_and_counted_cypher() {
    dangling_relationships_fail_or_are_skipped_and_counted_with(LoadMethod::Cypher).await
}

async fn dangling_relationships_fail_or_are_skipped_and_counted_with(method: LoadMethod) {
    let server = FalkorServer::start().unwrap();
    let store = FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    dangling_snapshot(dir.path());
    let options = LoadOptions::new(2).with_method(method).with_concurrency(2);

    store.create_database("fail-1767741427").await.unwrap();
    let err = load_snapshot(
        &store,
        "fail-1767741427",
        dir.path(),
        options,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Dangling {
                count: 2,
                total: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().starts_with("2 of 6 relationships"), "{err}");
    // The first dangling row, in file order (batches of 2, two in flight).
    assert!(
        err.to_string()
            .ends_with("relationships/r.csv row 3: :START_ID `9` is not an id of ID space `N`"),
        "{err}"
    );

    store.create_database("skip-1767741427").await.unwrap();
    let report = load_snapshot(
        &store,
        "skip-1767741427",
        dir.path(),
        options.with_dangling(DanglingPolicy::Skip),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.nodes,
            report.relationships,
            report.skipped_relationships
        ),
        (5, 4, 2)
    );
    let weights = query(
        &server,
        "skip-1767741427",
        "MATCH (a)-[r:R]->(b) RETURN a.id, b.id, r.w ORDER BY r.w",
    );
    assert_eq!(
        weights,
        [
            ["1", "2", "1"],
            ["2", "3", "2"],
            ["3", "4", "4"],
            ["5", "1", "6"]
        ]
        .map(|r| r.map(str::to_owned).to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reports_skipped_dangling_relationships() {
    let mut env = TestEnv::new("dangling", "dangling_relationships = \"skip\"").unwrap();
    dangling_snapshot(&sample::snapshot_dir(&env.data_root(), "acme", BASE_ID));
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(60))
        .await;
    let finished = env.audit("load_finished").await;
    assert_eq!(finished.len(), 1, "{}", env.logs());
    assert_eq!(finished[0].get("skipped_relationships"), Some("2"));
    assert_eq!(finished[0].get("relationships"), Some("4"));
    assert_eq!(env.falkor.counts("acme"), (5, 4));
    // The metric and the log line count them too.
    assert_skips_reported(&env, "skipped_relationships", 2).await;
}

/// The worker's metric `snapswitch_<field>_total` and its "snapshot loaded
/// and verified" log line both say `count` rows were skipped.
async fn assert_skips_reported(env: &TestEnv, field: &str, count: u64) {
    let addr = env.http_addr("worker").await.unwrap();
    let metric = format!("snapswitch_{field}_total {count}");
    let metrics = wait_for("the metric", Duration::from_secs(10), || async {
        let (_, body) = harness::http_get(&addr, "/metrics")?;
        Ok(body.contains(&metric).then_some(body))
    })
    .await;
    assert!(metrics.is_ok(), "{metric}: {metrics:?}");
    let log = env.log_of("worker");
    let logged = format!("{field}={count}");
    assert!(
        log.lines()
            .map(harness::strip_ansi)
            .any(|l| l.contains("snapshot loaded and verified") && l.contains(&logged)),
        "{log}"
    );
}

/// `duplicate_nodes = "skip"` through a real worker: the skipped count is in
/// the worker's log line, the `load_finished` audit entry and a metric, as
/// skipped dangling relationships are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reports_skipped_duplicate_nodes() {
    let mut env = TestEnv::new("dupskip", "duplicate_nodes = \"skip\"").unwrap();
    write_snapshot(
        &sample::snapshot_dir(&env.data_root(), "acme", BASE_ID),
        &[
            (
                "nodes/a.csv",
                "pid:ID(P),name\np1,first\np2,second\np1,again\n",
            ),
            ("nodes/b.csv", "pid:ID(P),name\np3,third\np2,second again\n"),
            (
                "relationships/r.csv",
                ":START_ID(P),:END_ID(P),:TYPE\np1,p2,R\np2,p3,R\n",
            ),
        ],
    );
    env.spawn_worker("worker").unwrap();
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(60))
        .await;
    let finished = env.audit("load_finished").await;
    assert_eq!(finished.len(), 1, "{}", env.logs());
    assert_eq!(finished[0].get("skipped_nodes"), Some("2"), "{finished:?}");
    assert_eq!(finished[0].get("nodes"), Some("3"));
    assert_eq!(env.falkor.counts("acme"), (3, 2));
    assert_skips_reported(&env, "skipped_nodes", 2).await;
}

fn write_snapshot(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

/// neo4j-admin's rules: labels come from `:LABEL` only, ID spaces are
/// independent of labels and of each other; the same id in two spaces is two
/// nodes, and a relationship row finds exactly one node at each end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_spaces_are_independent_of_labels_and_rows_resolve_exactly() {
    id_spaces_are_independent_of_labels_and_rows_resolve_exactly_with(LoadMethod::Bulk).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_spaces_are_independent_of_labels_and_rows_resolve_exactly_cypher() {
    id_spaces_are_independent_of_labels_and_rows_resolve_exactly_with(LoadMethod::Cypher).await
}

async fn id_spaces_are_independent_of_labels_and_rows_resolve_exactly_with(method: LoadMethod) {
    let server = FalkorServer::start().unwrap();
    let store = FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_snapshot(
        dir.path(),
        &[
            (
                "nodes/users.csv",
                "id:ID(User),:LABEL,name\nx,User;Admin,user x\ny,User,user y\n",
            ),
            (
                "nodes/admins.csv",
                "id:ID(Admin),:LABEL,name\nx,Admin;User,admin x\n",
            ),
            ("nodes/plain.csv", "code:ID(Code)\n7\n"),
            (
                "relationships/manages.csv",
                ":START_ID(Admin),:END_ID(User),:TYPE\nx,x,MANAGES\nx,y,MANAGES\nx,ghost,MANAGES\n",
            ),
        ],
    );
    let db = "spaces-1767741427";
    store.create_database(db).await.unwrap();
    // One row per batch, two in flight: the map is shared across batches.
    let options = LoadOptions::new(1)
        .with_method(method)
        .with_concurrency(2)
        .with_dangling(DanglingPolicy::Skip);
    let report = load_snapshot(&store, db, dir.path(), options, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (
            report.nodes,
            report.relationships,
            report.skipped_relationships
        ),
        (4, 2, 1)
    );
    let rels = query(
        &server,
        db,
        "MATCH (a)-[:MANAGES]->(b) RETURN a.name, b.name ORDER BY b.name",
    );
    assert_eq!(
        rels,
        [["admin x", "user x"], ["admin x", "user y"]].map(|r| r.map(str::to_owned).to_vec())
    );
    // Labels exactly as `:LABEL` says; a file without `:LABEL` gets its ID space.
    let labels = query(
        &server,
        db,
        "MATCH (n) RETURN coalesce(n.name, 'code'), labels(n) ORDER BY n.name",
    );
    let labels: Vec<String> = labels.iter().map(|r| r.join(" ")).collect();
    assert_eq!(
        labels,
        [
            "admin x [Admin, User]",
            // FalkorDB lists labels in the order the graph first saw them.
            "user x [Admin, User]",
            "user y [User]",
            "code [Code]"
        ],
        "{labels:?}"
    );
    // No index is created (neo4j-admin creates none).
    let indexes = query(&server, db, "CALL db.indexes() YIELD label RETURN label");
    assert!(indexes.is_empty(), "{indexes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_node_ids_fail_or_are_skipped_like_skip_duplicate_nodes() {
    duplicate_node_ids_fail_or_are_skipped_like_skip_duplicate_nodes_with(LoadMethod::Bulk).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_node_ids_fail_or_are_skipped_like_skip_duplicate_nodes_cypher() {
    duplicate_node_ids_fail_or_are_skipped_like_skip_duplicate_nodes_with(LoadMethod::Cypher).await
}

async fn duplicate_node_ids_fail_or_are_skipped_like_skip_duplicate_nodes_with(method: LoadMethod) {
    let server = FalkorServer::start().unwrap();
    let store = FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // p1 twice in one file, p2 again in a second file of the same ID space;
    // ids compare as text, so the integer 3 of the Parquet-less CSV `n:int`
    // does not matter here: ids are the :ID column.
    write_snapshot(
        dir.path(),
        &[
            (
                "nodes/a.csv",
                "pid:ID(P),name\np1,first\np2,second\np1,again\n",
            ),
            ("nodes/b.csv", "pid:ID(P),name\np3,third\np2,second again\n"),
            (
                "relationships/r.csv",
                ":START_ID(P),:END_ID(P),:TYPE\np1,p2,R\np2,p3,R\n",
            ),
        ],
    );
    let options = LoadOptions::new(2).with_method(method).with_concurrency(2);
    store.create_database("dupfail-1767741427").await.unwrap();
    let err = load_snapshot(
        &store,
        "dupfail-1767741427",
        dir.path(),
        options,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    match &err {
        LoadError::DuplicateNodeId {
            id,
            space,
            file,
            row,
        } => {
            assert_eq!((id.as_str(), space.as_str(), *row), ("p1", "P", 3), "{err}");
            assert!(file.ends_with("nodes/a.csv"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());

    store.create_database("dupskip-1767741427").await.unwrap();
    let report = load_snapshot(
        &store,
        "dupskip-1767741427",
        dir.path(),
        options.with_duplicates(DuplicatePolicy::Skip),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.nodes, report.skipped_nodes, report.relationships),
        (3, 2, 2)
    );
    // The first node of each id stays; each relationship exists once.
    let rows = query(
        &server,
        "dupskip-1767741427",
        "MATCH (a)-[:R]->(b) RETURN a.name, b.name ORDER BY a.name",
    );
    assert_eq!(
        rows,
        [["first", "second"], ["second", "third"]].map(|r| r.map(str::to_owned).to_vec())
    );
}

/// FalkorDB's attribute ids are 16-bit with two values reserved: 65534
/// distinct property names load exactly, 65535 are refused before anything
/// is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falkordb_property_key_limit_at_and_one_past() {
    let server = FalkorServer::start().unwrap();
    let store = FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap();
    assert_eq!(
        store.limits().property_keys,
        Some(common::graph::falkordb::FALKORDB_MAX_PROPERTY_KEYS)
    );
    for (keys, ok) in [(65_534usize, true), (65_535, false)] {
        let dir = tempfile::tempdir().unwrap();
        // The id property is one of the keys.
        let header: Vec<String> = std::iter::once("id:ID(W)".to_owned())
            .chain((1..keys).map(|i| format!("c{i}")))
            .collect();
        let row: Vec<String> = std::iter::once("w1".to_owned())
            .chain((1..keys).map(|i| i.to_string()))
            .collect();
        let text = format!("{}\n{}\n", header.join(","), row.join(","));
        write_snapshot(dir.path(), &[("nodes/wide.csv", &text)]);
        let db = format!("wide{keys}-1767741427");
        store.create_database(&db).await.unwrap();
        let got = load_snapshot(
            &store,
            &db,
            dir.path(),
            LoadOptions::new(10),
            &CancellationToken::new(),
        )
        .await;
        if ok {
            let report = got.unwrap_or_else(|e| panic!("{keys}: {e}"));
            assert_eq!(report.nodes, 1);
            // The last and a middle property read back exactly.
            let last = keys - 1;
            let values = query(
                &server,
                &db,
                &format!("MATCH (n) RETURN n.id, n.c1, n.c{last}, size(keys(n))"),
            );
            assert_eq!(
                values,
                [vec![
                    "w1".to_owned(),
                    "1".to_owned(),
                    last.to_string(),
                    keys.to_string()
                ]]
            );
        } else {
            let err = got.unwrap_err();
            assert!(matches!(err, LoadError::StoreLimit(_)), "{err:?}");
            assert!(
                err.to_string().contains("65535 distinct property names"),
                "{err}"
            );
            assert!(err.to_string().contains("at most 65534"), "{err}");
            assert_eq!(store.counts(&db).await.unwrap().nodes, 0, "nothing written");
        }
    }
}

/// The real FalkorDB store, except that its first node write fails
/// transiently without writing (a dropped connection before the statement).
struct FailsFirstNodeWrite<'a> {
    inner: &'a FalkorStore,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl GraphWriter for FailsFirstNodeWrite<'_> {
    async fn create_index(
        &self,
        db: &str,
        label: &str,
        property: &str,
    ) -> Result<(), common::graph::GraphError> {
        self.inner.create_index(db, label, property).await
    }
    async fn write_nodes(
        &self,
        db: &str,
        w: &common::graph::NodeWrite<'_>,
    ) -> Result<Vec<common::graph::NodeRef>, common::graph::GraphError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(common::graph::GraphError::Transient(
                "connection reset (injected)".into(),
            ));
        }
        self.inner.write_nodes(db, w).await
    }
    async fn write_relationships(
        &self,
        db: &str,
        w: &common::graph::RelWrite<'_>,
    ) -> Result<u64, common::graph::GraphError> {
        self.inner.write_relationships(db, w).await
    }
    async fn counts(&self, db: &str) -> Result<common::graph::Counts, common::graph::GraphError> {
        self.inner.counts(db).await
    }
}

/// A retried write does not claim its ids twice: the retry is per
/// statement, after the batch's ids were claimed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_node_write_is_not_a_duplicate() {
    let server = FalkorServer::start().unwrap();
    let store = FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    dangling_snapshot(dir.path());
    let flaky = FailsFirstNodeWrite {
        inner: &store,
        failed: Default::default(),
    };
    store.create_database("retry-1767741427").await.unwrap();
    let report = load_snapshot(
        &flaky,
        "retry-1767741427",
        dir.path(),
        LoadOptions::new(2).with_dangling(DanglingPolicy::Skip),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.nodes,
            report.relationships,
            report.skipped_relationships
        ),
        (5, 4, 2)
    );
    assert!(flaky.failed.load(std::sync::atomic::Ordering::SeqCst));
}

/// Relationships are created by internal id with an id seek, never a scan of
/// every node per row (FalkorDB 4.16 plans `WHERE id(a) = r[0]` as one):
/// the statement the loader sends, explained by the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationship_writes_seek_nodes_by_internal_id() {
    use common::graph::{cypher::relationship_statement, Prop, RelWrite, Values};
    let server = FalkorServer::start().unwrap();
    let mut con = server.connection();
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg("plan")
        .arg("UNWIND range(0, 99) AS i CREATE (:P {id: i})")
        .query(&mut con)
        .unwrap();
    let v = Values::Null;
    let props = [Prop {
        name: "w",
        values: &v,
    }];
    let statement = relationship_statement(&RelWrite {
        rel_type: "R",
        ends: &[[1, 2]],
        props: &props,
        rows: &[0],
    });
    let plan: Vec<String> = redis::cmd("GRAPH.EXPLAIN")
        .arg("plan")
        .arg(format!("CYPHER rows=[[1,2,3]] {statement}"))
        .query(&mut con)
        .unwrap();
    let plan = plan.join("\n");
    assert_eq!(plan.matches("NodeByIdSeek").count(), 2, "{plan}");
    assert!(!plan.contains("Scan"), "{plan}");
}
