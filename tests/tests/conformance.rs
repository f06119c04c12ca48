//! The neo4j-admin import format, conformance: snapshots written here from
//! Neo4j's documented rules (operations manual, "neo4j-admin database
//! import": header format, property types, array delimiter, temporal and
//! spatial value formats, header files, compressed files, `--delimiter`,
//! `--array-delimiter`, `--quote`), loaded through `load_snapshot` into a
//! real FalkorDB and into ArcadeDB over Bolt (the Neo4j load path), and read
//! back: the stored value AND its type, not only counts.
//!
//! Every row of the table "neo4j-admin option → snapswitch equivalent" in
//! docs/snapshot-format.md names the test here that proves it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::config::{Secret, ServiceUrl};
use common::graph::falkordb::FalkorStore;
use common::graph::neo4j::{BoltWriter, Dialect};
use common::graph::GraphWriter;
use common::load::{load_snapshot, LoadError, LoadMethod, LoadOptions, LoadReport};
use harness::arcadedb::ArcadeServer;
use harness::FalkorServer;
use neo4rs::{BoltType, Query};
use tokio_util::sync::CancellationToken;

/// A graph store under test, read back in one canonical text per value:
/// `Type:text`, e.g. `Date:2015-07-04`, `List:[Integer:1, Integer:2]`.
enum Target {
    Falkor {
        _server: FalkorServer,
        store: FalkorStore,
        url: String,
        /// GRAPH.BULK or write statements: both must store the same.
        method: LoadMethod,
    },
    Bolt {
        server: &'static ArcadeServer,
        writer: BoltWriter,
    },
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Target {
    async fn falkor(method: LoadMethod) -> Target {
        let server = FalkorServer::start().unwrap();
        let url = server.url();
        let store = FalkorStore::connect(&ServiceUrl::new(url.clone()))
            .await
            .unwrap();
        Target::Falkor {
            _server: server,
            store,
            url,
            method,
        }
    }

    fn bolt() -> Target {
        let server = ArcadeServer::shared();
        let writer = BoltWriter::connect(
            &ServiceUrl::new(server.bolt_url()),
            server.user(),
            &Secret::new(server.password()),
            4,
            Dialect::ArcadeDb,
        )
        .unwrap();
        Target::Bolt { server, writer }
    }

    fn name(&self) -> &'static str {
        match self {
            Target::Falkor {
                method: LoadMethod::Bulk,
                ..
            } => "FalkorDB (bulk)",
            Target::Falkor { .. } => "FalkorDB (cypher)",
            Target::Bolt { .. } => "Bolt (ArcadeDB)",
        }
    }

    fn method(&self) -> LoadMethod {
        match self {
            Target::Falkor { method, .. } => *method,
            Target::Bolt { .. } => LoadMethod::Cypher,
        }
    }

    fn writer(&self) -> &dyn GraphWriter {
        match self {
            Target::Falkor { store, .. } => store,
            Target::Bolt { writer, .. } => writer,
        }
    }

    /// Loads `dir` into a new database; returns its name and the report.
    async fn load(&self, dir: &Path) -> (String, Result<LoadReport, LoadError>) {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = format!("conf-{}-{n}", std::process::id());
        if let Target::Bolt { server, .. } = self {
            server.create_database(&db).unwrap();
        }
        let r = load_snapshot(
            self.writer(),
            &db,
            dir,
            LoadOptions::new(2).with_method(self.method()),
            &CancellationToken::new(),
        )
        .await;
        (db, r)
    }

    async fn load_ok(&self, dir: &Path) -> (String, LoadReport) {
        let (db, r) = self.load(dir).await;
        let report = r.unwrap_or_else(|e| panic!("{}: {e}", self.name()));
        (db, report)
    }

    /// Every property of the node `(:label {key: id})`, as canonical texts.
    async fn node(&self, db: &str, label: &str, key: &str, id: &str) -> BTreeMap<String, String> {
        self.entity(db, &format!("MATCH (n:`{label}` {{`{key}`: '{id}'}})"), "n")
            .await
    }

    /// Every property of the one relationship `(:…{key: from})-[r]->()`.
    async fn rel(&self, db: &str, label: &str, key: &str, from: &str) -> BTreeMap<String, String> {
        let mut m = self
            .entity(
                db,
                &format!("MATCH (:`{label}` {{`{key}`: '{from}'}})-[n]->()"),
                "n",
            )
            .await;
        let ty = self
            .scalar(
                db,
                &format!("MATCH (:`{label}` {{`{key}`: '{from}'}})-[n]->() RETURN type(n)"),
            )
            .await;
        m.insert(":TYPE".into(), ty);
        m
    }

    async fn scalar(&self, db: &str, q: &str) -> String {
        match self {
            Target::Falkor { url, .. } => {
                let rows = falkor_query(url, db, q);
                rows.first()
                    .and_then(|r| r.first())
                    .cloned()
                    .unwrap_or_default()
            }
            Target::Bolt { writer, .. } => {
                let mut s = writer
                    .graph()
                    .execute_on(db, Query::new(format!("{q} AS v")))
                    .await
                    .unwrap();
                let row = s.next().await.unwrap().unwrap();
                row.get::<String>("v").unwrap_or_default()
            }
        }
    }

    async fn entity(&self, db: &str, pattern: &str, var: &str) -> BTreeMap<String, String> {
        match self {
            Target::Falkor { url, .. } => {
                let keys = falkor_query(
                    url,
                    db,
                    &format!("{pattern} UNWIND keys({var}) AS k RETURN k"),
                );
                let mut out = BTreeMap::new();
                for k in keys.into_iter().filter_map(|r| r.into_iter().next()) {
                    let v = format!("{var}.`{k}`");
                    let ty = falkor_query(url, db, &format!("{pattern} RETURN typeOf({v})"))[0][0]
                        .clone();
                    let text = falkor_text(url, db, pattern, &v, &ty);
                    out.insert(k, text);
                }
                out
            }
            Target::Bolt { writer, .. } => {
                let mut s = writer
                    .graph()
                    .execute_on(
                        db,
                        Query::new(format!("{pattern} RETURN properties({var}) AS p")),
                    )
                    .await
                    .unwrap();
                let row = s.next().await.unwrap().expect("no such entity");
                let map: BoltType = row.get("p").unwrap();
                let BoltType::Map(map) = map else {
                    panic!("{map:?}")
                };
                map.value
                    .iter()
                    .map(|(k, v)| (k.value.clone(), bolt_text(v)))
                    .collect()
            }
        }
    }

    async fn counts(&self, db: &str) -> (u64, u64) {
        let c = self.writer().counts(db).await.unwrap();
        (c.nodes, c.relationships)
    }
}

/// Runs `q` on FalkorDB and returns the rows as texts (lists as `[a, b]`).
fn falkor_query(url: &str, db: &str, q: &str) -> Vec<Vec<String>> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let reply: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(db)
        .arg(q)
        .query(&mut con)
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    fn text(v: &redis::Value) -> String {
        match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(i) => i.to_string(),
            redis::Value::Double(d) => d.to_string(),
            redis::Value::Nil => "null".into(),
            redis::Value::Array(a) => {
                format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(", "))
            }
            other => format!("{other:?}"),
        }
    }
    let redis::Value::Array(parts) = reply else {
        panic!("{reply:?}")
    };
    match parts.get(1) {
        Some(redis::Value::Array(rows)) if parts.len() == 3 => rows
            .iter()
            .map(|r| match r {
                redis::Value::Array(cells) => cells.iter().map(text).collect(),
                other => vec![text(other)],
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The canonical text of a FalkorDB value of type `ty` (its `typeOf`).
fn falkor_text(url: &str, db: &str, pattern: &str, v: &str, ty: &str) -> String {
    let one = |e: &str| falkor_query(url, db, &format!("{pattern} RETURN {e}"))[0][0].clone();
    match ty {
        "Integer" | "String" | "Boolean" => format!("{ty}:{}", one(v)),
        "Float" => format!(
            "Float:{:?}",
            one(&format!("toString({v})")).parse::<f64>().unwrap()
        ),
        "Date" => format!("Date:{}", one(&format!("toString({v})"))),
        "Time" => format!("LocalTime:{}", one(&format!("toString({v})"))),
        "Datetime" => format!("LocalDateTime:{}", one(&format!("toString({v})"))),
        "Duration" => {
            let parts = one(&format!("[{v}.years * 12 + {v}.months, {v}.days, {v}.hours * 3600 + {v}.minutes * 60 + {v}.seconds]"));
            let n: Vec<i64> = parts
                .trim_matches(['[', ']'])
                .split(", ")
                .map(|x| x.parse::<f64>().unwrap() as i64)
                .collect();
            format!("Duration:{}M{}D{}S0N", n[0], n[1], n[2])
        }
        "Point" => {
            let lat: f64 = one(&format!("toString({v}.latitude)")).parse().unwrap();
            let lon: f64 = one(&format!("toString({v}.longitude)")).parse().unwrap();
            format!("Point:4326({lon:?},{lat:?})")
        }
        "List" => {
            let n: usize = one(&format!("size({v})")).parse().unwrap();
            let items: Vec<String> = (0..n)
                .map(|i| {
                    let e = format!("{v}[{i}]");
                    let t = one(&format!("typeOf({e})"));
                    falkor_text(url, db, pattern, &e, &t)
                })
                .collect();
            format!("List:[{}]", items.join(", "))
        }
        other => format!("{other}:?"),
    }
}

/// The canonical text of a Bolt value.
fn bolt_text(v: &BoltType) -> String {
    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
    match v {
        BoltType::Integer(i) => format!("Integer:{}", i.value),
        BoltType::Float(f) => format!("Float:{:?}", f.value),
        BoltType::Boolean(b) => format!("Boolean:{}", b.value),
        BoltType::String(s) => format!("String:{}", s.value),
        BoltType::Date(d) => format!("Date:{}", NaiveDate::try_from(d).unwrap()),
        BoltType::LocalTime(t) => format!("LocalTime:{}", NaiveTime::from(t)),
        BoltType::Time(t) => {
            let (t, o): (NaiveTime, FixedOffset) = t.into();
            format!("Time:{t}{o}")
        }
        BoltType::LocalDateTime(t) => format!(
            "LocalDateTime:{}",
            NaiveDateTime::try_from(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.f")
        ),
        BoltType::DateTime(t) => format!(
            "DateTime:{}",
            DateTime::<FixedOffset>::try_from(t).unwrap().to_rfc3339()
        ),
        BoltType::DateTimeZoneId(t) => {
            let local: (NaiveDateTime, String) = t.clone().try_into().unwrap();
            format!(
                "DateTime:{}[{}]",
                local.0.format("%Y-%m-%dT%H:%M:%S%.f"),
                local.1
            )
        }
        BoltType::Duration(d) => {
            let s = format!("{d:?}");
            let nums: Vec<i64> = s
                .split("value: ")
                .skip(1)
                .map(|p| p.split(' ').next().unwrap().parse().unwrap())
                .collect();
            format!("Duration:{}M{}D{}S{}N", nums[0], nums[1], nums[2], nums[3])
        }
        BoltType::Point2D(p) => format!("Point:{}({:?},{:?})", p.sr_id.value, p.x.value, p.y.value),
        BoltType::Point3D(p) => format!(
            "Point:{}({:?},{:?},{:?})",
            p.sr_id.value, p.x.value, p.y.value, p.z.value
        ),
        BoltType::List(l) => format!(
            "List:[{}]",
            l.value.iter().map(bolt_text).collect::<Vec<_>>().join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// Writes `files` (relative path → content) and `_SUCCESS` under a new snapshot directory.
fn snapshot(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
    dir
}

fn expect(got: &BTreeMap<String, String>, want: &[(&str, &str)], what: &str) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, &want, "{what}");
}

/// Both stores, one after the other; FalkorDB through both load methods.
async fn both() -> Vec<Target> {
    vec![
        Target::falkor(LoadMethod::Bulk).await,
        Target::falkor(LoadMethod::Cypher).await,
        Target::bolt(),
    ]
}

// ---------------------------------------------------------------------------
// Types stored natively on both stores.

const PEOPLE: &str = "\
personId:ID(Person),name,age:int,score:double,active:boolean,born:date,wakes:localtime,seen:localdatetime,tenure:duration,home:point,tags:string[],lucky:int[],weights:float[],votes:boolean[],holidays:date[]
p1,Ada,36,98.5,TRUE,1815-12-10,06:30:00,2015-07-04T19:32:24,P1Y2M3DT4H5M6S,\"{latitude: 51.5, longitude: -0.125}\",math;poetry,3;7,0.5;2.25,true;False,2020-12-25;2021-01-01
p2,,,,,,,,,,,,,,
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_both_stores_have_is_stored_natively_with_its_type() {
    let root = tempfile::tempdir().unwrap();
    let dir = snapshot(root.path(), "types", &[("nodes/people.csv", PEOPLE)]);
    for t in both().await {
        let (db, report) = t.load_ok(&dir).await;
        assert_eq!(report.nodes, 2, "{}", t.name());
        let p1 = t.node(&db, "Person", "personId", "p1").await;
        expect(
            &p1,
            &[
                ("personId", "String:p1"),
                ("name", "String:Ada"),
                ("age", "Integer:36"),
                ("score", "Float:98.5"),
                ("active", "Boolean:true"),
                ("born", "Date:1815-12-10"),
                ("wakes", "LocalTime:06:30:00"),
                ("seen", "LocalDateTime:2015-07-04T19:32:24"),
                ("tenure", "Duration:14M3D14706S0N"),
                ("home", "Point:4326(-0.125,51.5)"),
                ("tags", "List:[String:math, String:poetry]"),
                ("lucky", "List:[Integer:3, Integer:7]"),
                ("weights", "List:[Float:0.5, Float:2.25]"),
                ("votes", "List:[Boolean:true, Boolean:false]"),
                ("holidays", "List:[Date:2020-12-25, Date:2021-01-01]"),
            ],
            t.name(),
        );
        // Empty fields are not set, whatever their type.
        let p2 = t.node(&db, "Person", "personId", "p2").await;
        expect(
            &p2,
            &[("personId", "String:p1".replace("p1", "p2").as_str())],
            t.name(),
        );
    }
}

// ---------------------------------------------------------------------------
// What only the Bolt path (Neo4j) keeps, and FalkorDB refuses by name.

const BOLT_ONLY: &str = "\
id:ID(E),at:time,when:datetime,zoned:datetime,exact:localtime,stamp:localdatetime,span:duration,flat:point,space:point,globe:point,bare:datetime,times:time[]
e1,12:50:35.556+01:00,2015-06-24T12:50:35.556+01:00,2015-07-04T19:32:24[Europe/Berlin],12:50:35.123456789,2015-07-04T19:32:24.5,-PT1.5S,\"{x: 1.5, y: -2}\",\"{x: 1, y: 2, z: 3}\",\"{latitude: 13.1, longitude: 56.2, height: 100}\",2015-06-24T12:50:35,12:00Z;13:00+02:00
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_keeps_zoned_times_nanoseconds_negative_durations_and_every_point_kind() {
    let root = tempfile::tempdir().unwrap();
    let dir = snapshot(root.path(), "bolt", &[("nodes/e.csv", BOLT_ONLY)]);
    let t = Target::bolt();
    let (db, _) = t.load_ok(&dir).await;
    let e1 = t.node(&db, "E", "id", "e1").await;
    expect(
        &e1,
        &[
            ("id", "String:e1"),
            ("at", "Time:12:50:35.556+01:00"),
            ("when", "DateTime:2015-06-24T12:50:35.556+01:00"),
            ("zoned", "DateTime:2015-07-04T19:32:24[Europe/Berlin]"),
            ("exact", "LocalTime:12:50:35.123456789"),
            ("stamp", "LocalDateTime:2015-07-04T19:32:24.500"),
            ("span", "Duration:0M0D-2S500000000N"),
            ("flat", "Point:7203(1.5,-2.0)"),
            ("space", "Point:9157(1.0,2.0,3.0)"),
            ("globe", "Point:4979(56.2,13.1,100.0)"),
            // No zone: UTC, neo4j-admin's default time zone.
            ("bare", "DateTime:2015-06-24T12:50:35+00:00"),
            ("times", "List:[Time:12:00:00+00:00, Time:13:00:00+02:00]"),
        ],
        "ArcadeDB",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falkordb_refuses_each_type_it_lacks_naming_the_type_and_the_store() {
    let root = tempfile::tempdir().unwrap();
    let t = Target::falkor(LoadMethod::Bulk).await;
    let cases = [
        ("at:time", "12:50:35+01:00", "`time`"),
        ("when:datetime", "2015-06-24T12:50:35+01:00", "`datetime`"),
        (
            "zoned:datetime",
            "2015-07-04T19:32:24[Europe/Berlin]",
            "`datetime`",
        ),
        ("exact:localtime", "12:50:35.5", "`localtime`"),
        (
            "stamp:localdatetime",
            "2015-07-04T19:32:24.5",
            "`localdatetime`",
        ),
        ("span:duration", "PT1.5S", "`duration`"),
        ("span:duration", "-P1D", "`duration`"),
        ("span:duration", "PT25H", "`duration`"),
        ("flat:point", "\"{x: 1, y: 2}\"", "`point`"),
        (
            "globe:point",
            "\"{latitude: 13.1, longitude: 56.2}\"",
            "`point`",
        ),
        ("ats:time[]", "12:50:35Z", "`time`"),
    ];
    for (i, (column, value, ty)) in cases.iter().enumerate() {
        let text = format!("id:ID(E),{column}\ne1,{value}\n");
        let dir = snapshot(
            root.path(),
            &format!("refuse{i}"),
            &[("nodes/e.csv", &text)],
        );
        let (db, r) = t.load(&dir).await;
        let err = r.expect_err(column).to_string();
        let name = column.split(':').next().unwrap();
        assert!(
            err.contains("FalkorDB 4.16")
                && err.contains(ty)
                && err.contains("e.csv")
                && err.contains(&format!("`{name}`")),
            "{column}={value}: {err}"
        );
        // A type FalkorDB lacks altogether is refused on the header, before
        // anything is written (not even an index): no graph at all.
        if ["`time`", "`datetime`"].contains(ty) {
            let Target::Falkor { url, .. } = &t else {
                unreachable!()
            };
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut con = client.get_connection().unwrap();
            let graphs: Vec<String> = redis::cmd("GRAPH.LIST").query(&mut con).unwrap();
            assert!(!graphs.contains(&db), "{column}: {graphs:?}");
            assert!(err.contains(&format!("column `{name}`")), "{err}");
        }
        // Nothing of the refused value was stored.
        assert_eq!(t.counts(&db).await, (0, 0), "{column}");
    }
}

// ---------------------------------------------------------------------------
// Malformed values: refused before anything is written, naming the file,
// the column, the row and the value.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_are_refused_naming_file_column_row_and_value() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        ("born:date", "2015-02-30"),
        ("at:time", "12:00+25:00"),
        ("wakes:localtime", "25:00"),
        ("seen:localdatetime", "2015-07-04 19:32"),
        ("when:datetime", "2015-07-04T19:32:24[Mars/Olympus]"),
        ("span:duration", "14 days"),
        ("home:point", "51.5;-0.12"),
        ("ok:boolean", "yes"),
        ("lucky:int[]", "3;seven"),
    ];
    for t in both().await {
        for (i, (column, value)) in cases.iter().enumerate() {
            let falkor = matches!(t, Target::Falkor { .. });
            if falkor && (column.ends_with(":time") || column.ends_with(":datetime")) {
                continue; // refused on the header there (falkordb_refuses_each_type_…)
            }
            // Batches of 2 rows: the bad value is in the third batch, row 5 of the file.
            let text = format!("id:ID(E),{column}\ne1,\ne2,\ne3,\ne4,\ne5,{value}\n");
            let dir = snapshot(
                root.path(),
                &format!("bad{i}-{falkor}"),
                &[("nodes/e.csv", &text)],
            );
            let (_, r) = t.load(&dir).await;
            let e = r.expect_err(column);
            // snapshot_invalid, before the batch is written.
            assert!(matches!(e, LoadError::Snapshot(_)), "{column}: {e:?}");
            let err = e.to_string();
            let name = column.split(':').next().unwrap();
            assert!(
                err.contains("e.csv")
                    && err.contains(&format!("`{name}`"))
                    && err.contains("row 5:")
                    && err.contains(value),
                "{}: {column}={value}: {err}",
                t.name()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Options, naming conventions, header files, compression.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_file_sets_delimiter_array_delimiter_and_quote() {
    let root = tempfile::tempdir().unwrap();
    let dir = snapshot(
        root.path(),
        "opts",
        &[
            ("import.toml", "delimiter = \"TAB\"\narray_delimiter = \"|\"\nquote = \"'\"\n"),
            (
                "nodes/p.csv",
                "id:ID(P)\t:LABEL\tname\ttags:string[]\np1\tA|B\t'tab\there, quote '' and ; semicolon'\tx;y|z\n",
            ),
        ],
    );
    for t in both().await {
        let (db, _) = t.load_ok(&dir).await;
        let p1 = t.node(&db, "A", "id", "p1").await;
        expect(
            &p1,
            &[
                ("id", "String:p1"),
                ("name", "String:tab\there, quote ' and ; semicolon"),
                ("tags", "List:[String:x;y, String:z]"),
            ],
            t.name(),
        );
        let labels = t.scalar(&db, "MATCH (n:B) RETURN n.id").await;
        assert_eq!(
            labels,
            "p1",
            "{}: labels split at the array delimiter",
            t.name()
        );
    }
    // A bad options file fails the load, naming the file.
    let bad = snapshot(
        root.path(),
        "badopts",
        &[
            ("import.toml", "delimiter = \";\"\nquote = \";\"\n"),
            ("nodes/p.csv", "id:ID(P)\np1\n"),
        ],
    );
    let t = Target::falkor(LoadMethod::Bulk).await;
    let err = t.load(&bad).await.1.unwrap_err().to_string();
    assert!(
        err.contains("import.toml") && err.contains("three different characters"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_files_and_group_directories_name_labels_and_types() {
    let root = tempfile::tempdir().unwrap();
    let dir = snapshot(
        root.path(),
        "groups",
        &[
            // --nodes=Person:Employee=header.csv,part1.csv,part2.csv
            (
                "nodes/Person:Employee/header.csv",
                "id:ID(P),name,age:int\n",
            ),
            ("nodes/Person:Employee/part1.csv", "p1,Ada,36\np2,Alan,41\n"),
            ("nodes/Person:Employee/part2.csv", "p3,Grace,85\n"),
            // --relationships=KNOWS=knows.csv (no :TYPE column)
            (
                "relationships/KNOWS/knows.csv",
                ":START_ID(P),:END_ID(P),since:int\np1,p2,1936\n",
            ),
            // a plain file keeps its own :TYPE
            (
                "relationships/other.csv",
                ":START_ID(P),:END_ID(P),:TYPE\np2,p3,MET\n",
            ),
        ],
    );
    for t in both().await {
        let (db, report) = t.load_ok(&dir).await;
        assert_eq!((report.nodes, report.relationships), (3, 2), "{}", t.name());
        let p3 = t.node(&db, "Employee", "id", "p3").await;
        expect(
            &p3,
            &[
                ("id", "String:p3"),
                ("name", "String:Grace"),
                ("age", "Integer:85"),
            ],
            t.name(),
        );
        let knows = t.rel(&db, "Person", "id", "p1").await;
        expect(
            &knows,
            &[(":TYPE", "KNOWS"), ("since", "Integer:1936")],
            t.name(),
        );
        let met = t.rel(&db, "Person", "id", "p2").await;
        expect(&met, &[(":TYPE", "MET")], t.name());
    }
    // A header file with data, or a :TYPE column in a typed directory, is refused.
    let t = Target::falkor(LoadMethod::Bulk).await;
    let bad = snapshot(
        root.path(),
        "bad1",
        &[
            ("nodes/P/header.csv", "id:ID(P)\np0\n"),
            ("nodes/P/a.csv", "p1\n"),
        ],
    );
    let err = t.load(&bad).await.1.unwrap_err().to_string();
    assert!(err.contains("must hold only the header line"), "{err}");
    let bad = snapshot(
        root.path(),
        "bad2",
        &[
            ("nodes/p.csv", "id:ID(P)\np1\n"),
            (
                "relationships/KNOWS/k.csv",
                ":START_ID(P),:END_ID(P),:TYPE\np1,p1,LIKES\n",
            ),
        ],
    );
    let err = t.load(&bad).await.1.unwrap_err().to_string();
    assert!(err.contains("use one or the other"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_without_an_id_space_is_the_global_space() {
    let root = tempfile::tempdir().unwrap();
    let dir = snapshot(
        root.path(),
        "global",
        &[
            ("nodes/people.csv", "id:ID,:LABEL,name\nu1,User,Ann\n"),
            ("nodes/groups.csv", "id:ID,:LABEL,name\ng1,Group,Admins\n"),
            (
                "relationships/member.csv",
                ":START_ID,:END_ID,:TYPE\nu1,g1,MEMBER_OF\n",
            ),
        ],
    );
    for t in both().await {
        let (db, report) = t.load_ok(&dir).await;
        assert_eq!((report.nodes, report.relationships), (2, 1), "{}", t.name());
        let member = t.rel(&db, "User", "id", "u1").await;
        expect(&member, &[(":TYPE", "MEMBER_OF")], t.name());
        assert_eq!(
            t.scalar(&db, "MATCH (:User)-[]->(g:Group) RETURN g.name")
                .await,
            "Admins"
        );
    }
}

fn gzip(path: &Path) {
    let status = std::process::Command::new("gzip")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn zip(dir: &Path, archive: &str, member: &str, text: &str, compress: bool) {
    let script = format!(
        "import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.{}) as z:\n    z.writestr(sys.argv[2], sys.argv[3])\n",
        if compress { "ZIP_DEFLATED" } else { "ZIP_STORED" }
    );
    let status = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(dir.join(archive))
        .arg(member)
        .arg(text)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_csv_gz_and_zip_files_are_read() {
    let root = tempfile::tempdir().unwrap();
    let dir = snapshot(
        root.path(),
        "compressed",
        &[
            ("nodes/a.csv", "id:ID(P),n:int\np1,1\n"),
            (
                "relationships/r.csv",
                ":START_ID(P),:END_ID(P),:TYPE\np1,p2,R\np2,p3,R\n",
            ),
            // a header file for gzip parts
            ("nodes/Q/header.csv", "id:ID(Q),n:int\n"),
            ("nodes/Q/part1.csv", "q1,10\n"),
        ],
    );
    gzip(&dir.join("nodes/a.csv"));
    gzip(&dir.join("relationships/r.csv"));
    gzip(&dir.join("nodes/Q/part1.csv"));
    zip(
        &dir.join("nodes"),
        "b.zip",
        "b.csv",
        "id:ID(P),n:int\np2,2\n",
        true,
    );
    zip(
        &dir.join("nodes"),
        "c.zip",
        "c.csv",
        "id:ID(P),n:int\np3,3\n",
        false,
    );
    for t in both().await {
        let (db, report) = t.load_ok(&dir).await;
        assert_eq!((report.nodes, report.relationships), (4, 2), "{}", t.name());
        for (id, n) in [("p1", "1"), ("p2", "2"), ("p3", "3")] {
            let p = t.node(&db, "P", "id", id).await;
            expect(
                &p,
                &[
                    ("id", &format!("String:{id}")),
                    ("n", &format!("Integer:{n}")),
                ],
                t.name(),
            );
        }
        let q = t.node(&db, "Q", "id", "q1").await;
        expect(&q, &[("id", "String:q1"), ("n", "Integer:10")], t.name());
    }
    // A damaged archive is an error, never short data.
    let bad = snapshot(root.path(), "badzip", &[("nodes/a.csv", "id:ID(P)\np1\n")]);
    zip(
        &bad.join("nodes"),
        "two.zip",
        "x.csv",
        "id:ID(P)\np2\n",
        true,
    );
    let archive = bad.join("nodes/two.zip");
    let mut bytes = std::fs::read(&archive).unwrap();
    // Inside the deflated data: after the 30-byte local header and `x.csv`.
    bytes[37] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let t = Target::falkor(LoadMethod::Bulk).await;
    assert!(t.load(&bad).await.1.is_err(), "a damaged zip must fail");
    // A truncated .csv.gz too.
    let cut = snapshot(
        root.path(),
        "badgz",
        &[("nodes/a.csv", &format!("id:ID(P)\n{}", "p1\n".repeat(5000)))],
    );
    gzip(&cut.join("nodes/a.csv"));
    let gz = cut.join("nodes/a.csv.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let err = t.load(&cut).await.1.unwrap_err().to_string();
    assert!(err.contains("a.csv.gz"), "{err}");
}

// ---------------------------------------------------------------------------
// Parquet and Arrow: list columns, dates, timestamps with named time zones,
// and booleans from strings.

fn write_parquet(path: &Path, batch: arrow::array::RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn parquet_snapshot(root: &Path, name: &str, zoned: bool, active: &[&str]) -> PathBuf {
    use arrow::array::{
        ArrayRef, Date32Array, Int64Builder, ListBuilder, RecordBatch, StringArray, StringBuilder,
        TimestampMillisecondArray,
    };
    let dir = root.join(name);
    let mut ints = ListBuilder::new(Int64Builder::new());
    ints.values().append_value(3);
    ints.values().append_value(7);
    ints.append(true);
    let mut strs = ListBuilder::new(StringBuilder::new());
    strs.values().append_value("a");
    strs.values().append_value("b");
    strs.append(true);
    // 2020-01-15T12:34:56Z
    let ms = 1_579_091_696_000i64;
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("id:ID(P)", Arc::new(StringArray::from(vec!["p1"]))),
        ("lucky", Arc::new(ints.finish())),
        ("tags:string[]", Arc::new(strs.finish())),
        ("born", Arc::new(Date32Array::from(vec![18276]))),
        ("seen", Arc::new(TimestampMillisecondArray::from(vec![ms]))),
        (
            "active:boolean",
            Arc::new(StringArray::from(active.to_vec())),
        ),
        // A string column declared as an array is split at the array delimiter.
        ("split:int[]", Arc::new(StringArray::from(vec!["4;5"]))),
    ];
    if zoned {
        columns.push((
            "utc",
            Arc::new(TimestampMillisecondArray::from(vec![ms]).with_timezone("UTC")),
        ));
        columns.push((
            "berlin",
            Arc::new(TimestampMillisecondArray::from(vec![ms]).with_timezone("Europe/Berlin")),
        ));
        columns.push((
            "plus1",
            Arc::new(TimestampMillisecondArray::from(vec![ms]).with_timezone("+01:00")),
        ));
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    if name.ends_with("arrow") {
        let path = dir.join("nodes/p.arrow");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = arrow::ipc::writer::FileWriter::try_new(
            std::fs::File::create(path).unwrap(),
            &batch.schema(),
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
    } else {
        write_parquet(&dir.join("nodes/p.parquet"), batch);
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_lists_dates_timestamps_and_string_booleans() {
    let root = tempfile::tempdir().unwrap();
    let plain = parquet_snapshot(root.path(), "plain", false, &["TRUE"]);
    let common = [
        ("id", "String:p1"),
        ("lucky", "List:[Integer:3, Integer:7]"),
        ("tags", "List:[String:a, String:b]"),
        ("born", "Date:2020-01-15"),
        ("seen", "LocalDateTime:2020-01-15T12:34:56"),
        ("active", "Boolean:true"),
        ("split", "List:[Integer:4, Integer:5]"),
    ];
    // The same columns in an Arrow IPC file.
    let arrow_file = parquet_snapshot(root.path(), "plain-arrow", false, &["TRUE"]);
    for t in both().await {
        for dir in [&plain, &arrow_file] {
            let (db, _) = t.load_ok(dir).await;
            let p = t.node(&db, "P", "id", "p1").await;
            expect(&p, &common, &format!("{} {}", t.name(), dir.display()));
        }
    }
    // Timestamps with a time zone keep it on the Bolt path ...
    let zoned = parquet_snapshot(root.path(), "zoned", true, &["false"]);
    let bolt = Target::bolt();
    let (db, _) = bolt.load_ok(&zoned).await;
    let p = bolt.node(&db, "P", "id", "p1").await;
    assert_eq!(p["utc"], "DateTime:2020-01-15T12:34:56[UTC]");
    assert_eq!(p["berlin"], "DateTime:2020-01-15T13:34:56[Europe/Berlin]");
    assert_eq!(p["plus1"], "DateTime:2020-01-15T13:34:56+01:00");
    assert_eq!(p["active"], "Boolean:false");
    // ... and FalkorDB refuses them by name.
    let falkor = Target::falkor(LoadMethod::Bulk).await;
    let err = falkor.load(&zoned).await.1.unwrap_err().to_string();
    assert!(
        err.contains("FalkorDB 4.16") && err.contains("`datetime`"),
        "{err}"
    );
    // `yes`/`no` in a boolean column: refused, as in CSV.
    let yes = parquet_snapshot(root.path(), "yes", false, &["yes"]);
    let err = falkor.load(&yes).await.1.unwrap_err().to_string();
    assert!(
        err.contains("`yes` is not a boolean") && err.contains("`active`"),
        "{err}"
    );
}

/// Every row of the table "neo4j-admin option → snapswitch equivalent" in
/// docs/snapshot-format.md names tests, and each of them is a test here.
#[test]
fn every_row_of_the_option_table_names_a_test_of_this_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doc = std::fs::read_to_string(root.join("docs/snapshot-format.md")).unwrap();
    let this = std::fs::read_to_string(root.join("tests/tests/conformance.rs")).unwrap();
    let table = doc
        .split("## neo4j-admin option → snapswitch equivalent")
        .nth(1)
        .expect("the table's section")
        .split("\n## ")
        .next()
        .unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| {
            l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| neo4j-admin |")
        })
        .collect();
    assert!(rows.len() >= 10, "{rows:?}");
    for row in rows {
        let last = row.trim_end_matches('|').rsplit('|').next().unwrap();
        let names: Vec<&str> = last.split('`').skip(1).step_by(2).collect();
        assert!(!names.is_empty(), "row without a test: {row}");
        for name in names {
            assert!(
                this.contains(&format!("async fn {name}("))
                    || this.contains(&format!("fn {name}(")),
                "{name} (in: {row}) is not a test of conformance.rs"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporal_or_list_id_column_is_refused() {
    use arrow::array::{ArrayRef, Date32Array, RecordBatch};
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dateid");
    let id: ArrayRef = Arc::new(Date32Array::from(vec![18276]));
    let batch = RecordBatch::try_from_iter([("id:ID(P)", id)]).unwrap();
    write_parquet(&dir.join("nodes/p.parquet"), batch);
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
    let t = Target::falkor(LoadMethod::Bulk).await;
    let err = t.load(&dir).await.1.unwrap_err().to_string();
    assert!(err.contains(":ID column holds date values"), "{err}");
}

/// Why the Bolt adapter sends ArcadeDB a DateTimeZoneId for an offset
/// (docs/notes/arcadedb-facts.md): a plain Bolt DateTime loses its offset
/// there. If an ArcadeDB upgrade fixes this, this test says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arcadedb_drops_the_offset_of_a_bolt_datetime_but_keeps_a_zone_id() {
    use chrono::{FixedOffset, NaiveDate, TimeZone};
    let Target::Bolt { server, writer } = Target::bolt() else {
        unreachable!()
    };
    let db = format!("conf-dt-{}", std::process::id());
    server.create_database(&db).unwrap();
    let local = NaiveDate::from_ymd_opt(2020, 1, 15)
        .unwrap()
        .and_hms_opt(12, 34, 56)
        .unwrap();
    let plus1 = FixedOffset::east_opt(3600).unwrap();
    let sent = [
        (
            "fixed",
            BoltType::DateTime(plus1.from_local_datetime(&local).unwrap().into()),
            "LocalDateTime:2020-01-15T11:34:56",
        ),
        (
            "zone",
            BoltType::DateTimeZoneId((local, "+01:00").into()),
            "DateTime:2020-01-15T12:34:56+01:00",
        ),
    ];
    for (k, v, want) in sent {
        let q = Query::new("CREATE (:P {k: $k, v: $v})".into())
            .param("k", k)
            .param("v", v);
        writer.run(&db, q).await.unwrap();
        let back: Vec<BoltType> = writer
            .column(
                &db,
                Query::new("MATCH (n:P {k: $k}) RETURN n.v AS v".into()).param("k", k),
                "v",
            )
            .await
            .unwrap();
        assert_eq!(bolt_text(&back[0]), want, "{k}");
    }
}
