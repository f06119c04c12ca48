//! The neo4rs load path — `BoltWriter`, the code that loads Neo4j — on a real
//! Bolt server: ArcadeDB, started by the harness, databases created over its
//! HTTP API. CSV, Parquet and Arrow input; exact counts and sample values;
//! exact resolution (ID spaces independent of labels, duplicates, dangling
//! rows) and strict values.

use common::config::{Secret, ServiceUrl};
use common::graph::neo4j::{BoltWriter, Dialect};
use common::graph::GraphWriter;
use common::load::{load_snapshot, LoadOptions};
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::arcadedb::ArcadeServer;
use neo4rs::Query;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bolt_load_path_loads_csv_parquet_and_arrow_exactly() {
    let server = ArcadeServer::shared();
    let writer = BoltWriter::connect(
        &ServiceUrl::new(server.bolt_url()),
        server.user(),
        &Secret::new(server.password()),
        4,
        Dialect::ArcadeDb,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed = 4242;
    let csv_dir = dir.path().join("csv");
    sample::write_snapshot(
        &csv_dir,
        &SampleSpec::with_rows(3000, SampleFormat::Csv, seed),
    )
    .unwrap();
    let people = harness::sample_people(
        &std::fs::read_to_string(csv_dir.join("nodes/people.csv")).unwrap(),
        10,
    );
    assert_eq!(people.len(), 10);

    for (format, name) in [
        (SampleFormat::Csv, "csv"),
        (SampleFormat::Parquet, "parquet"),
        (SampleFormat::Arrow, "arrow"),
    ] {
        let spec = SampleSpec::with_rows(3000, format, seed);
        let snap = dir.path().join(name);
        if format != SampleFormat::Csv {
            sample::write_snapshot(&snap, &spec).unwrap();
        }
        let db = format!("boltload-{name}-{}", std::process::id());
        server.create_database(&db).unwrap();

        let report = load_snapshot(
            &writer,
            &db,
            &snap,
            LoadOptions::new(700),
            &CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log_tail(40)));
        assert_eq!(
            (report.nodes, report.relationships),
            (spec.node_count(), spec.relationship_count()),
            "{name}"
        );
        let counts = writer.counts(&db).await.unwrap();
        assert_eq!(
            (counts.nodes, counts.relationships),
            (spec.node_count(), spec.relationship_count()),
            "{name}"
        );

        let mut rows = writer
            .graph()
            .execute_on(
                db.as_str(),
                Query::new(
                    "MATCH (p:Person) WHERE p.personId IN $ids \
                     RETURN p.personId AS id, p.name AS name, p.age AS age, p.score AS score, p.active AS active, labels(p) AS labels"
                        .into(),
                )
                .param("ids", people.keys().cloned().collect::<Vec<_>>()),
            )
            .await
            .unwrap();
        let mut seen = 0;
        while let Some(row) = rows.next().await.unwrap() {
            let id: String = row.get("id").unwrap();
            let harness::SamplePerson {
                name: want_name,
                age: want_age,
                score: want_score,
                active: want_active,
                ..
            } = &people[&id];
            assert_eq!(
                &row.get::<String>("name").unwrap(),
                want_name,
                "{name} {id}"
            );
            assert_eq!(
                &row.get::<Option<i64>>("age").unwrap(),
                want_age,
                "{name} {id} age"
            );
            assert_eq!(
                row.get::<f64>("score").unwrap(),
                *want_score,
                "{name} {id} score"
            );
            assert_eq!(
                row.get::<bool>("active").unwrap(),
                *want_active,
                "{name} {id} active"
            );
            let labels: Vec<String> = row.get("labels").unwrap();
            // p0 and p7 are also Employees (`Person;Employee` in :LABEL).
            let employee = id == "p0" || id == "p7";
            assert_eq!(
                labels.iter().any(|l| l.contains("Employee")),
                employee,
                "{name} {id} labels {labels:?}"
            );
            seen += 1;
        }
        assert_eq!(seen, 10, "{name}: every sampled person is there");

        // A sampled relationship matches its row in works_at.
        let works = std::fs::read_to_string(csv_dir.join("relationships/works_at.csv")).unwrap();
        let first: Vec<&str> = works.lines().nth(1).unwrap().split(',').collect();
        let mut rows = writer
            .graph()
            .execute_on(
                db.as_str(),
                Query::new("MATCH (a:Person {personId: $p})-[r:WORKS_AT]->(c:Company) RETURN c.companyId AS c, r.since AS since".into())
                    .param("p", first[0]),
            )
            .await
            .unwrap();
        let row = rows.next().await.unwrap().expect("the relationship exists");
        assert_eq!(row.get::<String>("c").unwrap(), first[1], "{name}");
        assert_eq!(
            row.get::<i64>("since").unwrap(),
            first[3].parse::<i64>().unwrap(),
            "{name}"
        );

        server.drop_database(&db).unwrap();
    }
}

fn write_snapshot(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

/// Exact resolution on the Bolt path: ID spaces independent of labels, one
/// relationship per resolved row (by internal id), dangling rows counted
/// exactly, duplicates refused or skipped, strict values refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bolt_load_path_resolves_every_row_exactly() {
    use common::load::{DanglingPolicy, DuplicatePolicy, LoadError};
    let server = ArcadeServer::shared();
    let writer = BoltWriter::connect(
        &ServiceUrl::new(server.bolt_url()),
        server.user(),
        &Secret::new(server.password()),
        4,
        Dialect::ArcadeDb,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("spaces");
    write_snapshot(
        &snap,
        &[
            ("nodes/users.csv", "id:ID(User),:LABEL,name,rank:byte\nx,User;Admin,user x,1\ny,User,user y,-2\n"),
            ("nodes/admins.csv", "id:ID(Admin),:LABEL,name\nx,Admin;User,admin x\n"),
            (
                "relationships/manages.csv",
                ":START_ID(Admin),:END_ID(User),:TYPE,since:int\nx,x,MANAGES,2001\nx,y,MANAGES,2002\nx,ghost,MANAGES,2003\n",
            ),
        ],
    );
    let db = format!("boltexact-{}", std::process::id());
    server.create_database(&db).unwrap();
    let options = LoadOptions::new(1)
        .with_concurrency(2)
        .with_dangling(DanglingPolicy::Skip);
    let report = load_snapshot(&writer, &db, &snap, options, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(40)));
    assert_eq!(
        (
            report.nodes,
            report.relationships,
            report.skipped_relationships
        ),
        (3, 2, 1)
    );
    let mut rows = writer
        .graph()
        .execute_on(
            db.as_str(),
            Query::new(
                "MATCH (a)-[r:MANAGES]->(b) RETURN a.name AS a, b.name AS b, r.since AS since, b.rank AS rank ORDER BY since"
                    .into(),
            ),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        got.push((
            row.get::<String>("a").unwrap(),
            row.get::<String>("b").unwrap(),
            row.get::<i64>("since").unwrap(),
            row.get::<i64>("rank").unwrap(),
        ));
    }
    assert_eq!(
        got,
        [
            ("admin x".to_owned(), "user x".to_owned(), 2001, 1),
            ("admin x".to_owned(), "user y".to_owned(), 2002, -2)
        ]
    );
    server.drop_database(&db).unwrap();

    // A duplicate id: refused naming it, or skipped and counted.
    let dup = dir.path().join("dup");
    write_snapshot(
        &dup,
        &[
            (
                "nodes/p.csv",
                "pid:ID(P),name\np1,first\np2,second\np1,again\n",
            ),
            (
                "relationships/r.csv",
                ":START_ID(P),:END_ID(P),:TYPE\np1,p2,R\n",
            ),
        ],
    );
    let db = format!("boltdup-{}", std::process::id());
    server.create_database(&db).unwrap();
    let err = load_snapshot(
        &writer,
        &db,
        &dup,
        LoadOptions::new(10),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, LoadError::DuplicateNodeId { id, row: 3, .. } if id == "p1"),
        "{err:?}"
    );
    server.drop_database(&db).unwrap();
    server.create_database(&db).unwrap();
    let report = load_snapshot(
        &writer,
        &db,
        &dup,
        LoadOptions::new(10).with_duplicates(DuplicatePolicy::Skip),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.nodes, report.skipped_nodes, report.relationships),
        (2, 1, 1)
    );
    server.drop_database(&db).unwrap();

    // A fraction into an int column, refused before the node is written.
    let frac = dir.path().join("frac");
    write_snapshot(&frac, &[("nodes/p.csv", "pid:ID(P),n:int\np1,1.5\n")]);
    let db = format!("boltfrac-{}", std::process::id());
    server.create_database(&db).unwrap();
    let err = load_snapshot(
        &writer,
        &db,
        &frac,
        LoadOptions::new(10),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row 1: value `1.5`"), "{err}");
    assert_eq!(writer.counts(&db).await.unwrap().nodes, 0);
    server.drop_database(&db).unwrap();
}
