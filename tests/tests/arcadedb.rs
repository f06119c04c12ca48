//! What ArcadeDB (the `arcadedb-embedded` server that
//! `scripts/ensure-services.sh` installs) does with snapswitch's Neo4j
//! statements, through neo4rs over Bolt. Every test asserts ArcadeDB's current
//! behaviour, differences from Neo4j included, so an ArcadeDB upgrade that
//! changes any of it fails here. The write-up is docs/notes/arcadedb-facts.md.
//!
//! One server per test binary ([`ArcadeServer::shared`]); each test works in
//! databases of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use common::config::{Secret, ServiceUrl};
use common::graph::neo4j::{statements, BoltWriter, Dialect};
use common::graph::{Counts, GraphWriter, NodeWrite, Prop, RelWrite, Value, Values};
use harness::arcadedb::ArcadeServer;
use neo4rs::{query, BoltType, Graph, Neo4jClientErrorKind, Neo4jError, Neo4jErrorKind, Query};

fn server() -> &'static ArcadeServer {
    ArcadeServer::shared()
}

/// The Bolt load path snapswitch runs, in ArcadeDB's dialect; `.graph()` for
/// the raw Cypher that shows what the server itself does.
fn writer_as(s: &ArcadeServer, password: &str) -> BoltWriter {
    BoltWriter::connect(
        &ServiceUrl::new(s.bolt_url()),
        s.user(),
        &Secret::new(password),
        4,
        Dialect::ArcadeDb,
    )
    .expect("Bolt writer")
}

fn writer(s: &ArcadeServer) -> BoltWriter {
    writer_as(s, s.password())
}

/// A fresh database, named like snapswitch's (`<customer>-<snapshot id>`).
fn fresh_db(s: &ArcadeServer, customer: &str) -> String {
    let id = 1_700_000_000 + random_u64() % 1_000_000_000;
    let name = format!("{customer}-{id}");
    s.create_database(&name).expect("create database");
    name
}

fn random_u64() -> u64 {
    u64::from_str_radix(&uuid::Uuid::new_v4().simple().to_string()[..12], 16).unwrap()
}

/// A live (not zombie) process.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Column `c` of the one row `text` returns.
async fn count(w: &BoltWriter, db: &str, text: &str) -> i64 {
    let v: Vec<i64> = w.column(db, query(text), "c").await.expect(text);
    assert_eq!(v.len(), 1, "{text}");
    v[0]
}

/// The server's error, or a panic naming what came instead.
fn server_error<T: std::fmt::Debug>(r: Result<T, neo4rs::Error>) -> Neo4jError {
    match r {
        Err(neo4rs::Error::Neo4j(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// The server's error for `q` on `db`, every row of it read (raw neo4rs: the
/// writer's errors keep only the text).
async fn server_error_of(g: &Graph, db: &str, q: impl Into<Query>) -> Neo4jError {
    let drained = async {
        let mut stream = g.execute_on(db, q).await?;
        while stream.next().await?.is_some() {}
        Ok(())
    };
    server_error(drained.await)
}

fn values(array: ArrayRef) -> Values {
    Values::from_array(&array, None).unwrap()
}

fn ints(v: Vec<i64>) -> Values {
    values(Arc::new(Int64Array::from(v)))
}

/// The rows of `select from schema:<what>` (SQL over HTTP) whose `key` is `value`.
fn schema(
    s: &ArcadeServer,
    db: &str,
    what: &str,
    key: &str,
    value: &str,
) -> Vec<serde_json::Value> {
    let rows = s
        .command(db, "sql", &format!("select from schema:{what}"))
        .expect("schema query");
    rows.as_array()
        .expect("rows")
        .iter()
        .filter(|r| r[key] == value)
        .cloned()
        .collect()
}

#[test]
fn databases_are_created_listed_and_dropped_over_http() {
    let s = server();
    let db = fresh_db(s, "http");
    assert!(s.databases().unwrap().contains(&db));
    // The same list through the server command endpoint (other tests create
    // and drop databases on this server meanwhile: compare only ours).
    let listed = s.server_command("list databases").unwrap();
    assert!(
        listed.as_array().unwrap().contains(&serde_json::json!(db)),
        "{listed}"
    );

    let again = s.create_database(&db).unwrap_err().to_string();
    assert!(
        again.contains("HTTP 409") && again.contains("DatabaseAlreadyExistsException"),
        "{again}"
    );

    s.drop_database(&db).unwrap();
    assert!(!s.databases().unwrap().contains(&db));
    let missing = s.drop_database(&db).unwrap_err().to_string();
    assert!(
        missing.contains("HTTP 400")
            && missing.contains(&format!("Database '{db}' does not exist")),
        "{missing}"
    );

    // Readiness needs no credentials; the rest does.
    assert_eq!(s.http("GET", "/api/v1/ready", None).unwrap().0, 204);
    let (status, body) = s.http("GET", "/api/v1/server?mode=basic", None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"version\":\"26.10.2"), "{body}");
}

#[tokio::test]
async fn bolt_selects_the_database_by_name() {
    let s = server();
    let w = writer(s);
    let g = w.graph();
    let a = fresh_db(s, "iso");
    let b = fresh_db(s, "iso");

    w.run(&a, query("CREATE (:N {x: 1}), (:N {x: 2})"))
        .await
        .unwrap();
    assert_eq!(w.counts(&a).await.unwrap().nodes, 2);
    assert_eq!(w.counts(&b).await.unwrap().nodes, 0);

    // Neo4jStore::ping runs RETURN 1 on `system`: ArcadeDB answers there once
    // it has any database (see a_private_server_starts_and_stops_cleanly).
    let one: Vec<i64> = w
        .column("system", query("RETURN 1 AS one"), "one")
        .await
        .unwrap();
    assert_eq!(one, [1]);

    // An unknown database: the same code as Neo4j's, which neo4rs does not retry.
    for e in [
        server_error_of(g, "no-such-db", "RETURN 1 AS x").await,
        server_error(g.start_txn_on("no-such-db").await.map(drop)),
    ] {
        assert_eq!(e.code(), "Neo.ClientError.Database.DatabaseNotFound");
        assert_eq!(
            e.kind(),
            Neo4jErrorKind::Client(Neo4jClientErrorKind::FatalDiscovery)
        );
        assert!(
            e.message().starts_with("Cannot open database: no-such-db"),
            "{}",
            e.message()
        );
    }

    // Dropped over HTTP: gone for Bolt at once.
    s.drop_database(&b).unwrap();
    let e = server_error_of(g, &b, "RETURN 1 AS x").await;
    assert_eq!(e.code(), "Neo.ClientError.Database.DatabaseNotFound");

    // Wrong credentials.
    let bad = writer_as(s, "not-the-password");
    match bad.graph().run_on(a.as_str(), query("RETURN 1")).await {
        Err(neo4rs::Error::AuthenticationError(m)) => assert_eq!(m, "Authentication failed"),
        other => panic!("expected an authentication error, got {other:?}"),
    }
    s.drop_database(&a).unwrap();
}

#[tokio::test]
async fn admin_statements_list_databases_only() {
    let s = server();
    let w = writer(s);
    let g = w.graph();
    let db = fresh_db(s, "admin");

    // SHOW DATABASES works (ArcadeDB lists `system` as well).
    let names: Vec<String> = w
        .column("system", query(statements::LIST_DATABASES), "name")
        .await
        .unwrap();
    assert!(
        names.contains(&db) && names.contains(&"system".to_string()),
        "{names:?}"
    );

    // Database and alias administration is not there: a syntax error each.
    let syntax = |e: Neo4jError, message: &str| {
        assert_eq!(e.code(), "Neo.ClientError.Statement.SyntaxError");
        assert_eq!(
            e.kind(),
            Neo4jErrorKind::Client(Neo4jClientErrorKind::Other)
        );
        assert_eq!(e.message(), message);
    };
    let only_create =
        "Only CREATE CONSTRAINT, CREATE INDEX and CREATE USER are currently supported";
    syntax(
        server_error_of(g, "system", statements::create_database("x-1767741427")).await,
        only_create,
    );
    syntax(
        server_error_of(g, "system", statements::drop_database(&db)).await,
        "Only DROP CONSTRAINT, DROP INDEX and DROP USER are currently supported",
    );
    syntax(
        server_error_of(g, "system", statements::switch_alias("admin", &db)).await,
        only_create,
    );
    let alias = server_error_of(
        g,
        "system",
        query(statements::ALIAS_TARGET).param("alias", "admin"),
    )
    .await;
    syntax(
        alias,
        "Only SHOW USERS, SHOW CURRENT USER, SHOW TRANSACTIONS, SHOW CONSTRAINTS and SHOW INDEXES are currently supported",
    );
    assert!(
        s.databases().unwrap().contains(&db),
        "DROP DATABASE did nothing"
    );

    // No JMX procedure: the heap figures come from HTTP instead.
    let heap = server_error_of(g, "system", statements::HEAP).await;
    assert_eq!(heap.code(), "Neo.DatabaseError.General.UnknownError");
    assert_eq!(heap.kind(), Neo4jErrorKind::Database);
    assert_eq!(heap.message(), "Unknown procedure/function: dbms.queryJmx");
    let (status, body) = s.http("GET", "/api/v1/server", None).unwrap();
    assert_eq!(status, 200);
    let metrics: serde_json::Value = serde_json::from_str(&body).unwrap();
    let profiler = &metrics["metrics"]["profiler"];
    let used = profiler["ramHeapUsed"]["space"].as_u64().unwrap();
    let max = profiler["ramHeapMax"]["space"].as_u64().unwrap();
    assert!(used > 0 && used < max, "heap {used} of {max}");
    s.drop_database(&db).unwrap();
}

#[tokio::test]
async fn create_index_works_await_indexes_does_not() {
    let s = server();
    let w = writer(s);
    let g = w.graph();
    let db = fresh_db(s, "index");
    let person_ids = ints((1..=2000).collect());
    let rows: Vec<usize> = (0..2000).collect();
    let written = w
        .write_nodes(
            &db,
            &NodeWrite {
                labels: &["Person"],
                props: &[Prop {
                    name: "personId",
                    values: &person_ids,
                }],
                rows: &rows,
            },
        )
        .await
        .unwrap();
    assert_eq!(written.len(), 2000);

    // The writer's index: its IF NOT EXISTS makes it idempotent, and in the
    // ArcadeDB dialect it does not call db.awaitIndexes (see below).
    assert_eq!(Dialect::ArcadeDb.await_indexes(), None);
    for _ in 0..2 {
        w.create_index(&db, "Person", "personId").await.unwrap();
    }
    // Without IF NOT EXISTS a second one is an error.
    let e = server_error_of(g, &db, "CREATE INDEX FOR (n:`Person`) ON (n.`personId`)").await;
    assert_eq!(e.code(), "Neo.ClientError.Statement.ArgumentError");

    // Built before the statement returns: ONLINE at once, nothing to await.
    let mut stream = g
        .execute_on(
            db.as_str(),
            query(
                "SHOW INDEXES YIELD labelsOrTypes, properties, state, populationPercent, type \
                 RETURN labelsOrTypes, properties, state, populationPercent, type",
            ),
        )
        .await
        .unwrap();
    let mut shown = Vec::new();
    while let Some(row) = stream.next().await.unwrap() {
        shown.push((
            row.get::<Vec<String>>("labelsOrTypes").unwrap(),
            row.get::<Vec<String>>("properties").unwrap(),
            row.get::<String>("state").unwrap(),
            row.get::<f64>("populationPercent").unwrap(),
            row.get::<String>("type").unwrap(),
        ));
    }
    assert_eq!(
        shown,
        [(
            vec!["Person".to_string()],
            vec!["personId".to_string()],
            "ONLINE".to_string(),
            100.0,
            "RANGE".to_string()
        )]
    );
    // One index per type (`Person[personId]`) plus one per bucket.
    let index = schema(s, &db, "indexes", "name", "Person[personId]");
    assert_eq!(index.len(), 1, "{index:?}");
    assert_eq!(index[0]["indexType"], "LSM_TREE");
    assert_eq!(index[0]["unique"], false);

    let e = server_error_of(g, &db, statements::AWAIT_INDEXES).await;
    assert_eq!(e.code(), "Neo.DatabaseError.General.UnknownError");
    assert_eq!(e.kind(), Neo4jErrorKind::Database);
    assert_eq!(e.message(), "Unknown procedure/function: db.awaitIndexes");

    // Created over existing data (the writer's Int64 column here), the index
    // declares the property with the type of that data (LONG), and from then on values are converted
    // to it: '10' is stored as 10, 2.5 as 2, and 'abc' or true are refused.
    let person = schema(s, &db, "types", "name", "Person");
    assert_eq!(
        person[0]["properties"],
        serde_json::json!([{"custom": {}, "id": 0, "name": "personId", "type": "LONG"}])
    );
    w.run(
        &db,
        query("CREATE (:Person {personId: '10'}), (:Person {personId: 2.5})"),
    )
    .await
    .unwrap();
    let tens: Vec<BoltType> = w
        .column(
            &db,
            query("MATCH (n:Person {personId: 10}) RETURN n.personId AS p"),
            "p",
        )
        .await
        .unwrap();
    assert_eq!(
        tens,
        [BoltType::from(10i64), BoltType::from(10i64)],
        "not unique"
    );
    assert_eq!(
        count(
            &w,
            &db,
            "MATCH (n:Person {personId: 2}) RETURN count(n) AS c"
        )
        .await,
        2
    );
    for refused in [
        "CREATE (:Person {personId: 'abc'})",
        "CREATE (:Person {personId: true})",
    ] {
        let e = server_error(g.run_on(db.as_str(), query(refused)).await);
        assert_eq!(e.code(), "Neo.ClientError.Statement.ArgumentError");
        assert_eq!(
            e.message(),
            format!("Error executing Cypher command: {refused}")
        );
    }

    // Created before any data, as snapswitch's loader does, the index leaves
    // values as they are and lookups typed as in Neo4j (10 is not '10').
    let empty = fresh_db(s, "index");
    w.create_index(&empty, "Company", "companyId")
        .await
        .unwrap();
    let company = schema(s, &empty, "types", "name", "Company");
    assert_eq!(company.len(), 1, "the index created the type");
    assert_eq!(company[0]["type"], "vertex");
    w.run(
        &empty,
        query(
            "CREATE (:Company {companyId: 10}), (:Company {companyId: '10'}), \
             (:Company {companyId: 2.5}), (:Company {companyId: true})",
        ),
    )
    .await
    .unwrap();
    for (lookup, found) in [
        ("10", BoltType::from(10i64)),
        ("'10'", BoltType::from("10")),
        ("2.5", BoltType::from(2.5f64)),
        ("true", BoltType::from(true)),
    ] {
        let got: Vec<BoltType> = w
            .column(
                &empty,
                query(&format!(
                    "MATCH (n:Company {{companyId: {lookup}}}) RETURN n.companyId AS p"
                )),
                "p",
            )
            .await
            .unwrap();
        assert_eq!(got, [found], "{lookup}");
    }
    s.drop_database(&empty).unwrap();
    s.drop_database(&db).unwrap();
}

#[tokio::test]
async fn snapswitch_write_statements_load_nodes_and_relationships() {
    let s = server();
    let w = writer(s);
    let db = fresh_db(s, "load");

    // Indexes first, as the loader does.
    for (label, property) in [("Person", "personId"), ("Company", "companyId")] {
        w.create_index(&db, label, property).await.unwrap();
    }

    // People, with every value type.
    let strings = [
        "plain",
        "it's \"quoted\" \\ back",
        "Zoë 😀 日本",
        "",
        "nul\0inside",
        "line\nbreak\ttab",
    ];
    let n = strings.len();
    let ids = ints((0..n as i64).collect());
    let names = values(Arc::new(StringArray::from(strings.to_vec())));
    let big = ints([i64::MIN, i64::MAX, 0, -1, 1, 42].to_vec());
    let floats = values(Arc::new(Float64Array::from(vec![
        1.5, -0.0, 1e300, -2.25, 0.1, 3.0,
    ])));
    let flags = values(Arc::new(BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
        Some(false),
        None,
    ])));
    let props = [
        Prop {
            name: "personId",
            values: &ids,
        },
        Prop {
            name: "first name",
            values: &names,
        },
        Prop {
            name: "big",
            values: &big,
        },
        Prop {
            name: "score",
            values: &floats,
        },
        Prop {
            name: "flag",
            values: &flags,
        },
    ];
    let rows: Vec<usize> = (0..n).collect();
    let written = w
        .write_nodes(
            &db,
            &NodeWrite {
                labels: &["Person"],
                props: &props,
                rows: &rows,
            },
        )
        .await
        .unwrap();
    assert_eq!(written.len(), n);

    let mut stream = w
        .graph()
        .execute_on(
            db.as_str(),
            query(
                "MATCH (n:Person) RETURN n.`first name` AS s, n.big AS i, n.score AS f, \
                 n.flag AS b, keys(n) AS k ORDER BY n.personId",
            ),
        )
        .await
        .unwrap();
    let mut i = 0;
    while let Some(row) = stream.next().await.unwrap() {
        assert_eq!(row.get::<String>("s").unwrap(), strings[i]);
        assert_eq!(Value::Int(row.get::<i64>("i").unwrap()), big.get(i));
        let f = row.get::<f64>("f").unwrap();
        assert_eq!(Value::Float(f), floats.get(i));
        if i == 1 {
            assert!(f == 0.0 && f.is_sign_negative(), "-0.0 keeps its sign: {f}");
        }
        let b = row.get::<Option<bool>>("b").unwrap();
        assert_eq!(b.map_or(Value::Null, Value::Bool), flags.get(i));
        // A null property is not stored, as in Neo4j.
        let keys = row.get::<Vec<String>>("k").unwrap();
        assert_eq!(keys.contains(&"flag".to_string()), b.is_some(), "{keys:?}");
        i += 1;
    }
    assert_eq!(i, n);

    // Two labels: ArcadeDB makes a type `Company~Org` under both, so either
    // label matches, labels() gives both, and Company's index covers it.
    let company_ids = ints(vec![100, 200, 300]);
    let company_props = [Prop {
        name: "companyId",
        values: &company_ids,
    }];
    let companies = w
        .write_nodes(
            &db,
            &NodeWrite {
                labels: &["Company", "Org"],
                props: &company_props,
                rows: &[0, 1, 2],
            },
        )
        .await
        .unwrap();
    assert_eq!(companies.len(), 3);
    let labels: Vec<Vec<String>> = w
        .column(
            &db,
            query("MATCH (n:Org) RETURN DISTINCT labels(n) AS l"),
            "l",
        )
        .await
        .unwrap();
    assert_eq!(labels, [vec!["Company".to_string(), "Org".to_string()]]);
    assert_eq!(
        count(&w, &db, "MATCH (n:Company) RETURN count(n) AS c").await,
        3
    );
    let composite = schema(s, &db, "types", "name", "Company~Org");
    assert_eq!(composite.len(), 1, "{composite:?}");
    assert_eq!(
        composite[0]["parentTypes"],
        serde_json::json!(["Company", "Org"])
    );
    let inherited = schema(s, &db, "indexes", "typeName", "Company~Org");
    assert_eq!(
        inherited.len(),
        1,
        "Company's index reaches Company~Org: {inherited:?}"
    );
    assert_eq!(
        inherited[0]["properties"],
        serde_json::json!([["companyId"]])
    );

    // Relationships, between the internal ids the node writes returned
    // (`id(n)`: ArcadeDB answers with integers and seeks by them).
    let since = ints(vec![2001, 2002, 2003]);
    let rel_props = [Prop {
        name: "since",
        values: &since,
    }];
    let works_at = RelWrite {
        rel_type: "WORKS_AT",
        ends: &[
            [written[0], companies[0]],
            [written[1], companies[1]],
            [written[2], companies[0]],
        ],
        props: &rel_props,
        rows: &[0, 1, 2],
    };
    // The writer reports the relationships it created: every row.
    assert_eq!(w.write_relationships(&db, &works_at).await.unwrap(), 3);

    assert_eq!(
        w.counts(&db).await.unwrap(),
        Counts {
            nodes: n as u64 + 3,
            relationships: 3
        }
    );
    assert_eq!(
        count(
            &w,
            &db,
            "MATCH (:Person)-[r:WORKS_AT]->(:Org) RETURN sum(r.since) AS c"
        )
        .await,
        2001 + 2002 + 2003
    );
    s.drop_database(&db).unwrap();
}

#[tokio::test]
async fn explicit_transactions_commit_roll_back_and_isolate() {
    let s = server();
    let w = writer(s);
    let g = w.graph();
    let db = fresh_db(s, "txn");

    let mut txn = g.start_txn_on(db.as_str()).await.unwrap();
    txn.run(query("CREATE (:T {x: 1})")).await.unwrap();
    // Another connection does not see it before the commit.
    assert_eq!(count(&w, &db, "MATCH (n:T) RETURN count(n) AS c").await, 0);
    txn.commit().await.unwrap();
    assert_eq!(count(&w, &db, "MATCH (n:T) RETURN count(n) AS c").await, 1);

    let mut txn = g.start_txn_on(db.as_str()).await.unwrap();
    txn.run(query("CREATE (:T {x: 2})")).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(count(&w, &db, "MATCH (n:T) RETURN count(n) AS c").await, 1);

    // A syntax error: Neo4j's code and kind (permanent for Neo4jStore).
    let mut txn = g.start_txn_on(db.as_str()).await.unwrap();
    txn.run(query("CREATE (:T {x: 3})")).await.unwrap();
    let e = server_error(txn.run(query("CREAT (:T {x: 4})")).await);
    assert_eq!(e.code(), "Neo.ClientError.Statement.SyntaxError");
    assert_eq!(
        e.kind(),
        Neo4jErrorKind::Client(Neo4jClientErrorKind::Other)
    );
    assert!(
        e.message().starts_with("Syntax error at line 1:0"),
        "{}",
        e.message()
    );
    // The transaction is failed: the rollback Neo4jStore sends is ignored.
    let e = server_error(txn.rollback().await);
    assert_eq!(e.code(), "Neo.ServerError.Ignored");
    assert_eq!(e.kind(), Neo4jErrorKind::Database);
    // Nothing of it was kept, and the pool still works.
    assert_eq!(count(&w, &db, "MATCH (n:T) RETURN count(n) AS c").await, 1);

    // Outside a transaction: the same code; a runtime error is a client error too.
    let e = server_error(g.run_on(db.as_str(), query("CREAT (:T {x: 4})")).await);
    assert_eq!(e.code(), "Neo.ClientError.Statement.SyntaxError");
    let e = server_error_of(g, &db, "RETURN 1/0 AS x").await;
    assert_eq!(e.code(), "Neo.ClientError.Statement.ArithmeticError");
    assert_eq!(e.message(), "/ by zero");
    s.drop_database(&db).unwrap();
}

#[tokio::test]
async fn a_private_server_starts_and_stops_cleanly() {
    let started = Instant::now();
    let a = ArcadeServer::start().unwrap();
    let start_time = started.elapsed();
    let rss = a.rss_bytes().unwrap();
    println!(
        "ArcadeDB started in {start_time:?}, RSS {} MiB (bolt {}, http {})",
        rss >> 20,
        a.bolt_url(),
        a.http_url()
    );
    assert!(rss > 20 << 20 && rss < 1 << 30, "rss {rss}");
    let w = writer(&a);

    // `system` (and `neo4j`) are no databases of ArcadeDB's: Bolt maps them to
    // a default one. With no database yet, even RETURN 1 fails there with a
    // transient error, which neo4rs retries for about a minute outside a
    // transaction: hence the transaction here.
    let in_txn = |db: &'static str, text: &'static str| {
        let g = w.graph().clone();
        async move {
            let mut txn = g.start_txn_on(db).await?;
            txn.run(query(text)).await?;
            txn.commit().await
        }
    };
    let e = server_error(in_txn("system", "RETURN 1").await);
    assert_eq!(e.code(), "Neo.TransientError.Database.DatabaseUnavailable");
    assert_eq!(e.kind(), Neo4jErrorKind::Transient);
    assert_eq!(e.message(), "No database available on this server");

    // With a database, `system` answers, and writes there land in it.
    let db = fresh_db(&a, "solo");
    let one: Vec<i64> = w
        .column("system", query("RETURN 1 AS one"), "one")
        .await
        .unwrap();
    assert_eq!(one, [1]);
    in_txn("system", "CREATE (:FromSystem)").await.unwrap();
    in_txn("neo4j", "CREATE (:FromNeo4j)").await.unwrap();
    assert_eq!(w.counts(&db).await.unwrap().nodes, 2);
    drop(w);

    // SIGTERM: ArcadeDB's shutdown hook stops it (and `shutdown` checks its
    // "ArcadeDB Server is down").
    let (pid, dir, bolt) = (a.java_pid().unwrap(), a.dir().to_path_buf(), a.bolt_port);
    let took = a.shutdown(Duration::from_secs(30)).unwrap();
    println!("ArcadeDB stopped in {took:?} after SIGTERM");
    assert!(!running(pid), "the JVM {pid} still runs");
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", bolt)).is_err());

    // Drop kills it (SIGKILL to the process group) and removes its dir.
    let b = ArcadeServer::start().unwrap();
    let (pid, dir) = (b.java_pid().unwrap(), b.dir().to_path_buf());
    drop(b);
    assert!(!running(pid), "the JVM {pid} still runs");
    assert!(!dir.exists());
}
