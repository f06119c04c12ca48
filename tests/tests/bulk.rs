//! GRAPH.BULK loading on a real FalkorDB (`load_method = "bulk"`): what is
//! special to it. It has no per-call retry, so a failed call fails the load
//! whole and a fresh load into a new graph is exact; a malformed call makes
//! the server delete the key; the values GRAPH.BULK has no type for
//! (temporal, points) go through Cypher on the same graph without shifting
//! node ids. (Everything else is the same as the Cypher path and runs in
//! `loading.rs` and `conformance.rs` through both methods.)

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::config::ServiceUrl;
use common::graph::falkordb::FalkorStore;
use common::graph::{
    Counts, GraphError, GraphStore, GraphWriter, NodeRef, NodeWrite, RelWrite, StoreLimits,
};
use common::load::{load_snapshot, LoadMethod, LoadOptions};
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use common::snapshot::PropType;
use harness::FalkorServer;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Forwards every call.
    None,
    /// Sends call `n` with its token counts cut off: the server refuses it
    /// and deletes the key.
    Malformed(usize),
    /// Applies call `n`, then reports a lost connection (a lost reply).
    LostReply(usize),
}

/// The real store, with a fault injected into one GRAPH.BULK call; counts
/// the calls it was given.
struct Faulty<'a> {
    store: &'a FalkorStore,
    fault: Fault,
    calls: AtomicUsize,
    reserves: AtomicUsize,
    syncs: AtomicUsize,
}

impl<'a> Faulty<'a> {
    fn new(store: &'a FalkorStore, fault: Fault) -> Self {
        Faulty {
            store,
            fault,
            calls: AtomicUsize::new(0),
            reserves: AtomicUsize::new(0),
            syncs: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl GraphWriter for Faulty<'_> {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.store.create_index(db, label, property).await
    }
    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<Vec<NodeRef>, GraphError> {
        self.store.write_nodes(db, w).await
    }
    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        self.store.write_relationships(db, w).await
    }
    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        self.store.counts(db).await
    }
    fn lacks(&self, ty: PropType) -> Option<String> {
        self.store.lacks(ty)
    }
    fn limits(&self) -> StoreLimits {
        self.store.limits()
    }
    fn can_bulk(&self) -> bool {
        true
    }
    async fn bulk_call(&self, db: &str, args: Vec<Vec<u8>>) -> Result<(), GraphError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::Malformed(at) if at == n => self.store.bulk_call(db, args[..2].to_vec()).await,
            Fault::LostReply(at) if at == n => {
                self.store.bulk_call(db, args).await?;
                Err(GraphError::Transient("connection reset (injected)".into()))
            }
            _ => self.store.bulk_call(db, args).await,
        }
    }
    async fn bulk_reserve(&self, db: &str, nodes: u64) -> Result<(), GraphError> {
        self.reserves.fetch_add(1, Ordering::SeqCst);
        self.store.bulk_reserve(db, nodes).await
    }
    async fn bulk_sync(
        &self,
        db: &str,
        target: &common::graph::falkordb_bulk::SyncTarget,
    ) -> Result<(), GraphError> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.store.bulk_sync(db, target).await
    }
}

fn exists(server: &FalkorServer, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query(&mut server.connection())
        .unwrap();
    n == 1
}

fn scalar(server: &FalkorServer, graph: &str, q: &str) -> String {
    let reply: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(q)
        .query(&mut server.connection())
        .unwrap();
    let redis::Value::Array(parts) = reply else {
        panic!("{reply:?}")
    };
    let Some(redis::Value::Array(rows)) = parts.get(1) else {
        panic!("{parts:?}")
    };
    match rows.first() {
        Some(redis::Value::Array(cells)) => match cells.first() {
            Some(redis::Value::Int(n)) => n.to_string(),
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// Rows of the generated snapshots: several calls of the smallest size
/// (64 KiB, `falkordb_bulk::MIN_CALL_BYTES`), about 39 000 nodes (more
/// than FalkorDB's own capacity step, so room is reserved ahead).
const ROWS: usize = 150_000;

/// A 1 ms stall budget: the smallest calls, so the snapshot takes several.
fn small_calls() -> LoadOptions {
    LoadOptions::new(5000)
        .with_method(LoadMethod::Bulk)
        .with_bulk_max_stall_ms(1)
}

async fn connect(server: &FalkorServer) -> FalkorStore {
    FalkorStore::connect(&ServiceUrl::new(server.url()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_loads_in_several_calls_and_relationships_join_the_right_nodes() {
    let server = FalkorServer::start().unwrap();
    let store = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec::with_rows(ROWS, SampleFormat::Csv, 7);
    sample::write_snapshot(dir.path(), &spec).unwrap();
    let faulty = Faulty::new(&store, Fault::None);
    store.create_database("bulk-1").await.unwrap();
    let report = load_snapshot(
        &faulty,
        "bulk-1",
        dir.path(),
        small_calls(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.nodes, report.relationships),
        (spec.node_count(), spec.relationship_count())
    );
    let calls = faulty.calls.load(Ordering::SeqCst);
    assert!(calls >= 3, "{calls} GRAPH.BULK calls");
    // ~39 000 nodes: room was reserved ahead at least once.
    let reserves = faulty.reserves.load(Ordering::SeqCst);
    assert!(reserves >= 1, "{reserves} reservations");
    // Every WORKS_AT goes from a Person to a Company, every KNOWS joins two
    // people: a shifted node id would join the wrong kinds.
    assert_eq!(
        scalar(
            &server,
            "bulk-1",
            "MATCH (a)-[:WORKS_AT]->(b) WHERE NOT (a:Person AND b:Company) RETURN count(*)"
        ),
        "0"
    );
    assert_eq!(
        scalar(
            &server,
            "bulk-1",
            "MATCH (a)-[:KNOWS]->(b) WHERE NOT (a:Person AND b:Person) RETURN count(*)"
        ),
        "0"
    );
    // The same snapshot through Cypher gives the same pairs.
    store.create_database("cypher-1").await.unwrap();
    load_snapshot(
        &store,
        "cypher-1",
        dir.path(),
        LoadOptions::new(5000).with_method(LoadMethod::Cypher),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let pairs = "MATCH (a:Person)-[:KNOWS]->(b) WITH a.personId + '>' + b.personId AS p ORDER BY p WITH collect(p) AS ps RETURN reduce(s = '', x IN ps | s + x + ',')";
    assert_eq!(
        scalar(&server, "bulk-1", pairs),
        scalar(&server, "cypher-1", pairs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_call_deletes_the_graph_and_a_fresh_load_is_exact() {
    let server = FalkorServer::start().unwrap();
    let store = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec::with_rows(ROWS, SampleFormat::Csv, 8);
    sample::write_snapshot(dir.path(), &spec).unwrap();
    let faulty = Faulty::new(&store, Fault::Malformed(1));
    store.create_database("bulk-2").await.unwrap();
    let err = load_snapshot(
        &faulty,
        "bulk-2",
        dir.path(),
        small_calls(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("insert format error"), "{err}");
    assert!(!exists(&server, "bulk-2"), "the server deleted the key");
    // Nothing was sent after the failed call.
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 2);
    // The whole load again, into a new graph: exact.
    store.drop_database("bulk-2").await.unwrap();
    store.create_database("bulk-2").await.unwrap();
    let report = load_snapshot(
        &store,
        "bulk-2",
        dir.path(),
        small_calls(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.nodes, report.relationships),
        (spec.node_count(), spec.relationship_count())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_fails_the_load_as_transient_without_resending_the_call() {
    let server = FalkorServer::start().unwrap();
    let store = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec::with_rows(ROWS, SampleFormat::Csv, 9);
    sample::write_snapshot(dir.path(), &spec).unwrap();
    let faulty = Faulty::new(&store, Fault::LostReply(1));
    store.create_database("bulk-3").await.unwrap();
    let err = load_snapshot(
        &faulty,
        "bulk-3",
        dir.path(),
        small_calls(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    // Transient: the worker drops the partial graph and retries the event.
    assert!(err.is_transient(), "{err}");
    // The applied call was not sent again (that would shift every later id),
    // and nothing after it was sent.
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 2);
}

/// A server restart breaks every connection the store holds; the first
/// bulk load after it must not fail on a connection that broke while idle
/// (a call is never resent, so the connection is checked before the call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_load_after_a_server_restart_goes_through() {
    let mut server = FalkorServer::start().unwrap();
    let store = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec::with_rows(ROWS, SampleFormat::Csv, 11);
    sample::write_snapshot(dir.path(), &spec).unwrap();
    // The write connections used once.
    store.create_database("bulk-before").await.unwrap();
    let before = load_snapshot(
        &store,
        "bulk-before",
        dir.path(),
        small_calls(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    server.restart().unwrap();
    let mut created = false;
    for _ in 0..20 {
        // The admin connection reconnects too; what is under test is the
        // load's calls.
        if store.create_database("bulk-after").await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(created, "the store did not reconnect");
    let after = load_snapshot(
        &store,
        "bulk-after",
        dir.path(),
        small_calls(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(after.nodes, before.nodes);
    assert_eq!(after.relationships, before.relationships);
}

/// Dates, durations and points have no GRAPH.BULK type: their batches go
/// through Cypher on the same graph, between bulk calls, and the node ids
/// stay positions, so relationships across both kinds of batch are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_and_point_columns_load_exactly_between_bulk_calls() {
    let server = FalkorServer::start().unwrap();
    let store = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("nodes")).unwrap();
    std::fs::create_dir_all(root.join("relationships")).unwrap();
    let mut a = String::from("id:ID(N),:LABEL,n:int\n");
    let mut b = String::from("id:ID(N),:LABEL,born:date,tenure:duration,home:point\n");
    let mut c = String::from("id:ID(N),:LABEL,s\n");
    let mut r = String::from(":START_ID(N),:END_ID(N),:TYPE,since:date\n");
    for i in 0..300 {
        a.push_str(&format!("a{i},A,{i}\n"));
        b.push_str(&format!(
            "b{i},B,2020-01-{:02},P1DT2H,\"{{latitude: 1.5, longitude: 2.5}}\"\n",
            i % 28 + 1
        ));
        c.push_str(&format!("c{i},C,s{i}\n"));
        r.push_str(&format!("a{i},b{i},AB,2021-02-03\nb{i},c{i},BC,\n"));
    }
    std::fs::write(root.join("nodes/a.csv"), a).unwrap();
    std::fs::write(root.join("nodes/b.csv"), b).unwrap();
    std::fs::write(root.join("nodes/c.csv"), c).unwrap();
    std::fs::write(root.join("relationships/r.csv"), r).unwrap();
    std::fs::write(root.join("_SUCCESS"), "").unwrap();
    let faulty = Faulty::new(&store, Fault::None);
    store.create_database("bulk-4").await.unwrap();
    let report = load_snapshot(
        &faulty,
        "bulk-4",
        root,
        LoadOptions::new(100).with_method(LoadMethod::Bulk),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((report.nodes, report.relationships), (900, 600));
    assert!(faulty.calls.load(Ordering::SeqCst) >= 1);
    for (q, want) in [
        (
            "MATCH (a:A)-[:AB]->(b:B) WHERE 'a' + a.n = replace(b.id, 'b', 'a') RETURN count(*)",
            "300",
        ),
        (
            "MATCH (b:B)-[:BC]->(c:C) WHERE replace(b.id, 'b', 'c') = c.id RETURN count(*)",
            "300",
        ),
        (
            "MATCH (b:B {id: 'b3'}) RETURN toString(b.born) + ' ' + toString(b.home.latitude)",
            "2020-01-04 1.500000",
        ),
        (
            "MATCH ()-[r:AB]->() WHERE toString(r.since) = '2021-02-03' RETURN count(*)",
            "300",
        ),
    ] {
        assert_eq!(scalar(&server, "bulk-4", q), want, "{q}");
    }
}

/// Relationship types synchronised every 10 000 relationships (off the
/// main thread, between calls) load exactly: the same pairs as Cypher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationship_types_synchronised_between_calls_load_exactly() {
    let server = FalkorServer::start().unwrap();
    let store = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec::with_rows(ROWS, SampleFormat::Csv, 11);
    sample::write_snapshot(dir.path(), &spec).unwrap();
    let faulty = Faulty::new(&store, Fault::None);
    let bulk = common::graph::falkordb_bulk::BulkWriter::new(&faulty, 1).with_sync_edges(10_000);
    store.create_database("sync-1").await.unwrap();
    // The writer itself as the store: the loader sends it batches, it sends calls.
    let report = load_snapshot(
        &bulk,
        "sync-1",
        dir.path(),
        LoadOptions::new(5000).with_method(LoadMethod::Cypher),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.nodes, report.relationships),
        (spec.node_count(), spec.relationship_count())
    );
    let stats = bulk.stats().await;
    assert!(stats.syncs >= 5, "{stats:?}");
    assert_eq!(stats.syncs as usize, faulty.syncs.load(Ordering::SeqCst));
    assert!(stats.calls >= 3, "{stats:?}");
    store.create_database("sync-cypher").await.unwrap();
    load_snapshot(
        &store,
        "sync-cypher",
        dir.path(),
        LoadOptions::new(5000).with_method(LoadMethod::Cypher),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    for q in [
        "MATCH (a:Person)-[:KNOWS]->(b) WITH a.personId + '>' + b.personId AS p ORDER BY p WITH collect(p) AS ps RETURN reduce(s = '', x IN ps | s + x + ',')",
        "MATCH (a:Person)-[:WORKS_AT]->(b) WITH a.personId + '>' + b.companyId AS p ORDER BY p WITH collect(p) AS ps RETURN reduce(s = '', x IN ps | s + x + ',')",
    ] {
        assert_eq!(scalar(&server, "sync-1", q), scalar(&server, "sync-cypher", q));
    }
}
