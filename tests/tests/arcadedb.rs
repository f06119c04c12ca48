//! exploration (temporary)
use harness::arcadedb::ArcadeServer;
use neo4rs::{query, BoltType, ConfigBuilder, Graph, Query};

fn graph(s: &ArcadeServer) -> Graph {
    Graph::connect(
        ConfigBuilder::default()
            .uri(s.bolt_url())
            .user(s.user())
            .password(s.password())
            .max_connections(4)
            .build()
            .unwrap(),
    )
    .unwrap()
}

async fn rows(g: &Graph, db: &str, q: Query) -> Result<Vec<String>, neo4rs::Error> {
    let mut st = g.execute_on(db, q).await?;
    let mut out = Vec::new();
    while let Some(r) = st.next().await? {
        out.push(format!("{:?}", r));
    }
    Ok(out)
}

async fn show(g: &Graph, db: &str, text: &str) {
    let t = std::time::Instant::now();
    let r =
        tokio::time::timeout(std::time::Duration::from_secs(20), rows(g, db, query(text))).await;
    println!("[{db}] {text}\n   => {r:?} ({:?})", t.elapsed());
}

fn rows_param(n: i64, cols: usize) -> BoltType {
    (0..n)
        .map(|i| {
            (0..cols)
                .map(|c| BoltType::from(i * 10 + c as i64))
                .collect::<BoltType>()
        })
        .collect::<BoltType>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore() {
    let t = std::time::Instant::now();
    let s = ArcadeServer::start().unwrap();
    println!("started in {:?}, rss {:?}", t.elapsed(), s.rss_bytes());
    println!("dbs {:?}", s.databases());
    s.create_database("acme-1767741427").unwrap();
    println!("create again: {:?}", s.create_database("acme-1767741427"));
    println!("drop missing: {:?}", s.drop_database("nope"));
    println!("create weird: {:?}", s.create_database("a`b"));
    println!("create with space: {:?}", s.create_database("a b"));
    s.create_database("other").unwrap();
    println!("dbs {:?}", s.databases());
    let g = graph(&s);
    let db = "acme-1767741427";
    show(&g, db, "RETURN 1 AS one").await;
    show(&g, "system", "RETURN 1 AS one").await;
    show(&g, "nonexistent", "RETURN 1 AS one").await;
    show(
        &g,
        "system",
        "SHOW DATABASES YIELD name RETURN DISTINCT name",
    )
    .await;
    show(&g, "system", "CREATE DATABASE `x1` WAIT").await;
    show(&g, "system", "DROP DATABASE `x1` IF EXISTS WAIT").await;
    show(
        &g,
        "system",
        "CREATE OR REPLACE ALIAS `acme` FOR DATABASE `acme-1767741427`",
    )
    .await;
    show(
        &g,
        "system",
        "SHOW ALIASES FOR DATABASE YIELD name, database WHERE name = 'acme' RETURN database",
    )
    .await;
    show(&g, "system", "CALL dbms.queryJmx('java.lang:type=Memory') YIELD attributes RETURN attributes.HeapMemoryUsage.value.properties.used AS used, attributes.HeapMemoryUsage.value.properties.max AS max").await;
    show(
        &g,
        db,
        "CREATE INDEX IF NOT EXISTS FOR (n:`Person`) ON (n.`personId`)",
    )
    .await;
    show(
        &g,
        db,
        "CREATE INDEX IF NOT EXISTS FOR (n:`Person`) ON (n.`personId`)",
    )
    .await;
    show(&g, db, "CALL db.awaitIndexes(300)").await;
    show(&g, db, "SHOW INDEXES").await;
    println!(
        "sql indexes: {:?}",
        s.command(
            db,
            "sql",
            "select name, typeName, properties, unique, type from schema:indexes"
        )
    );
    println!(
        "sql types: {:?}",
        s.command(db, "sql", "select name, type from schema:types")
    );
    // nodes
    let q =
        Query::new("UNWIND $rows AS r CREATE (n:`Person` {`personId`: r[0], `name`: r[1]})".into())
            .param("rows", rows_param(5, 2));
    let r = g.run_on(db, q).await;
    println!("unwind create persons: {r:?}");
    let q = Query::new("UNWIND $rows AS r CREATE (n:`Company`:`Org` {`companyId`: r[0]})".into())
        .param("rows", rows_param(3, 1));
    let r = g.run_on(db, q).await;
    println!("unwind create two labels: {r:?}");
    show(&g, db, "MATCH (n) RETURN labels(n) AS l, count(*) AS c").await;
    show(&g, db, "MATCH (n:Org) RETURN count(n) AS c").await;
    show(&g, db, "MATCH (n:Company) RETURN count(n) AS c").await;
    println!(
        "sql types: {:?}",
        s.command(
            db,
            "sql",
            "select name, type, parentTypes from schema:types"
        )
    );
    let q = Query::new("UNWIND $rows AS r MATCH (a:`Person` {`personId`: r[0]}) MATCH (b:`Company` {`companyId`: r[1]}) CREATE (a)-[:`WORKS_AT` {`since`: r[2]}]->(b)".into())
        .param("rows", BoltType::from(vec![
            BoltType::from(vec![BoltType::from(0i64), BoltType::from(0i64), BoltType::from(2001i64)]),
            BoltType::from(vec![BoltType::from(10i64), BoltType::from(10i64), BoltType::from(2002i64)]),
            BoltType::from(vec![BoltType::from(999i64), BoltType::from(10i64), BoltType::from(2003i64)]),
        ]));
    let r = g.run_on(db, q).await;
    println!("unwind rels: {r:?}");
    show(&g, db, "MATCH (n) RETURN count(n) AS c").await;
    show(&g, db, "MATCH ()-[r]->() RETURN count(r) AS c").await;
    show(&g, "other", "MATCH (n) RETURN count(n) AS c").await;
    // txn
    let mut txn = g.start_txn_on(db).await.unwrap();
    println!("txn run: {:?}", txn.run(query("CREATE (:T {x: 1})")).await);
    println!("commit: {:?}", txn.commit().await);
    let mut txn = g.start_txn_on(db).await.unwrap();
    println!("txn run: {:?}", txn.run(query("CREATE (:T {x: 2})")).await);
    println!("rollback: {:?}", txn.rollback().await);
    show(&g, db, "MATCH (n:T) RETURN n.x AS x").await;
    let mut txn = g.start_txn_on(db).await.unwrap();
    let r = txn.run(query("CREAT (:T {x: 3})")).await;
    println!("txn syntax err: {r:?}");
    if let Err(neo4rs::Error::Neo4j(e)) = &r {
        println!("kind {:?} code {}", e.kind(), e.code());
    }
    println!("rollback after err: {:?}", txn.rollback().await);
    let r = g.run_on(db, query("CREAT (:T {x: 3})")).await;
    println!("run_on syntax err: {r:?}");
    if let Err(neo4rs::Error::Neo4j(e)) = &r {
        println!("kind {:?} code {}", e.kind(), e.code());
    }
    show(&g, db, "MATCH (n:Nope) RETURN count(n) AS c").await;
    show(&g, db, "RETURN 1/0 AS x").await;
    show(&g, db, "MATCH (n:T) RETURN n.x AS x").await;
    println!("rss {:?}", s.rss_bytes());
    println!("{}", s.log_tail(30));
    let t = std::time::Instant::now();
    println!(
        "shutdown {:?}",
        s.shutdown(std::time::Duration::from_secs(20))
    );
    println!("took {:?}", t.elapsed());
}
