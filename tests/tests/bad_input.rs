//! The bad-input catalogue: hostile or broken events and snapshot files, each
//! sent through a real worker (machine RabbitMQ and Redis, a FalkorDB of the
//! test's own), each with the outcome it must have: parked with this reason
//! and a message saying this, or loaded with exactly these names. After every
//! case the worker is still running and no database of that case is left in
//! FalkorDB (`GRAPH.LIST`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use common::topology::{HEADER_ERROR, HEADER_ERROR_CLASS, HEADER_REASON};
use harness::{wait_for, TestEnv};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

const ID: u64 = 1_767_741_427;

/// What a case must lead to.
enum Expect {
    /// Parked in `<ns>.dead` with this `x-snapswitch-reason` and an
    /// `x-snapswitch-error` containing this text.
    Parked(&'static str, &'static str),
    /// Loaded and switched; the live graph then holds exactly these labels,
    /// relationship types and property keys.
    Loaded {
        labels: &'static [&'static str],
        types: &'static [&'static str],
        keys: &'static [&'static str],
    },
    /// Loaded and switched with these (nodes, relationships).
    Live(u64, u64),
}

/// What a case sends.
enum Input {
    /// A raw message body, published as an upstream job would.
    Body(Vec<u8>),
    /// Files written under `<data_root>/<customer>/<ID>/` (with `_SUCCESS`),
    /// then a valid event for them.
    Files(Vec<(&'static str, Vec<u8>)>),
    /// A setup function given (data root, customer, the test's temp dir),
    /// then a valid event for the customer's snapshot `ID`.
    Setup(SetupFn),
    /// Files as in `Files`, the valid event published with these AMQP
    /// headers and no other properties (no priority, no content type).
    FilesWithHeaders(Vec<(&'static str, Vec<u8>)>, Vec<(&'static str, AMQPValue)>),
}

/// (data root, customer, the test's temp dir).
type SetupFn = Box<dyn Fn(&Path, &str, &Path)>;

struct Case {
    name: &'static str,
    input: Input,
    expect: Expect,
}

fn event(customer: &str) -> serde_json::Value {
    serde_json::json!({
        "schema_version": 1,
        "event_id": "01943f6e-7c4a-7cc2-9d0e-3b1f2a4c5d6e",
        "customer": customer,
        "snapshot_id": ID,
        "path": format!("{customer}/{ID}"),
        "priority": 5,
        "created_at": "2026-01-06T22:30:00Z"
    })
}

/// A valid event for `customer`, changed by `f`.
fn body(f: impl Fn(&mut serde_json::Value)) -> Input {
    let mut v = event("victim");
    f(&mut v);
    Input::Body(serde_json::to_vec(&v).unwrap())
}

fn csv(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

const PEOPLE: &str = "personId:ID(Person),name\np1,Ann\np2,Bob\n";

fn files(list: &[(&'static str, Vec<u8>)]) -> Input {
    Input::Files(list.to_vec())
}

/// A sample snapshot in `format` whose first node file is cut in half.
fn truncated(format: SampleFormat) -> Input {
    Input::Setup(Box::new(move |root, customer, _| {
        let dir = sample::snapshot_dir(root, customer, ID);
        sample::write_snapshot(&dir, &SampleSpec::with_rows(400, format, 7)).unwrap();
        let mut nodes: Vec<PathBuf> = std::fs::read_dir(dir.join("nodes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        nodes.sort();
        let bytes = std::fs::read(&nodes[0]).unwrap();
        std::fs::write(&nodes[0], &bytes[..bytes.len() / 2]).unwrap();
    }))
}

/// A Parquet file of these columns.
fn parquet(columns: Vec<(&str, arrow::array::ArrayRef)>) -> Vec<u8> {
    let batch = arrow::array::RecordBatch::try_from_iter(columns).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn strings(v: &[&str]) -> arrow::array::ArrayRef {
    std::sync::Arc::new(arrow::array::StringArray::from(v.to_vec()))
}

/// A snapshot of `customer` whose (customer or snapshot) directory is a
/// symlink into another customer's tree inside the data root.
fn linked_to_other_customer(snapshot_only: bool) -> Input {
    Input::Setup(Box::new(move |root, customer, _| {
        let other = format!("{customer}x");
        let dir = sample::snapshot_dir(root, &other, ID);
        std::fs::create_dir_all(dir.join("nodes")).unwrap();
        std::fs::write(dir.join("nodes/people.csv"), PEOPLE).unwrap();
        std::fs::write(dir.join("_SUCCESS"), "").unwrap();
        if snapshot_only {
            std::fs::create_dir_all(root.join(customer)).unwrap();
            std::os::unix::fs::symlink(&dir, root.join(customer).join(ID.to_string())).unwrap();
        } else {
            std::os::unix::fs::symlink(root.join(&other), root.join(customer)).unwrap();
        }
    }))
}

fn catalogue() -> Vec<Case> {
    use Expect::*;
    let long_name = "n".repeat(257);
    let long_header = format!("personId:ID(Person),{long_name}\np1,x\n");
    let too_wide: String = std::iter::once("id:ID(W)".to_owned())
        .chain((1..65_535).map(|i| format!("c{i}")))
        .collect::<Vec<_>>()
        .join(",")
        + "\nw1"
        + &",1".repeat(65_534)
        + "\n";
    let mut huge_line = b"personId:ID(Person),blob\np1,".to_vec();
    huge_line.resize(huge_line.len() + 17 * 1024 * 1024, b'x');
    huge_line.push(b'\n');
    vec![
        // ---- events ----
        Case {
            name: "body is not JSON",
            input: Input::Body(b"{not json".to_vec()),
            expect: Parked("event_not_json", "not JSON"),
        },
        Case {
            name: "body is not UTF-8",
            input: Input::Body(b"{\"schema_version\":1,\"customer\":\"\xff\xfe\"}".to_vec()),
            expect: Parked("event_not_json", "invalid unicode"),
        },
        Case {
            name: "body larger than 64 KiB",
            input: body(|v| v["padding"] = "x".repeat(70_000).into()),
            expect: Parked("event_too_large", "more than the 65536 allowed"),
        },
        Case {
            name: "body is a JSON array",
            input: Input::Body(b"[1,2,3]".to_vec()),
            expect: Parked("event_missing_version", "no numeric `schema_version`"),
        },
        Case {
            name: "schema_version 2",
            input: body(|v| v["schema_version"] = 2.into()),
            expect: Parked("event_unsupported_version", "schema_version 2 is not supported"),
        },
        Case {
            name: "customer climbs out of the data root",
            input: body(|v| v["customer"] = "../../etc".into()),
            expect: Parked("event_invalid_customer", "not a safe identifier"),
        },
        Case {
            name: "customer with a backtick and braces (Cypher injection)",
            input: body(|v| v["customer"] = "a`}) DETACH DELETE n //".into()),
            expect: Parked("event_invalid_customer", "not a safe identifier"),
        },
        Case {
            name: "customer with unicode",
            input: body(|v| v["customer"] = "zoë-co".into()),
            expect: Parked("event_invalid_customer", "not a safe identifier"),
        },
        Case {
            name: "customer too long for a Neo4j database name",
            input: body(|v| v["customer"] = "a".repeat(53).into()),
            expect: Parked("event_invalid_customer", "too long"),
        },
        Case {
            name: "snapshot_id out of range",
            input: body(|v| v["snapshot_id"] = 12.into()),
            expect: Parked("event_invalid_snapshot_id", "between 1000000000 and 9999999999"),
        },
        Case {
            name: "priority out of range",
            input: body(|v| v["priority"] = 200.into()),
            expect: Parked("event_invalid_priority", "out of range 0-9"),
        },
        Case {
            name: "path with ..",
            input: body(|v| v["path"] = "victim/../../../etc".into()),
            expect: Parked("event_invalid_path", "must be `victim/1767741427`"),
        },
        Case {
            name: "event_id not a UUID",
            input: body(|v| v["event_id"] = "1; DROP".into()),
            expect: Parked("event_schema", "does not match schema v1"),
        },
        Case {
            name: "snapshot_id as a string",
            input: body(|v| v["snapshot_id"] = "1767741427".into()),
            expect: Parked("event_schema", "does not match schema v1"),
        },
        // ---- the snapshot directory ----
        Case {
            name: "snapshot directory missing",
            input: Input::Setup(Box::new(|_, _, _| {})),
            expect: Parked("snapshot_missing", "does not exist"),
        },
        Case {
            name: "snapshot without _SUCCESS (parked once retries are spent)",
            input: Input::Setup(Box::new(|root, customer, _| {
                let dir = sample::snapshot_dir(root, customer, ID);
                std::fs::create_dir_all(dir.join("nodes")).unwrap();
                std::fs::write(dir.join("nodes/people.csv"), PEOPLE).unwrap();
            })),
            expect: Parked("snapshot_not_ready", "`_SUCCESS` is missing"),
        },
        Case {
            name: "customer directory is a symlink out of the data root",
            input: Input::Setup(Box::new(|root, customer, tmp| {
                let outside = tmp.join("outside");
                let dir = outside.join(ID.to_string());
                std::fs::create_dir_all(dir.join("nodes")).unwrap();
                std::fs::write(dir.join("nodes/people.csv"), PEOPLE).unwrap();
                std::fs::write(dir.join("_SUCCESS"), "").unwrap();
                std::os::unix::fs::symlink(&outside, root.join(customer)).unwrap();
            })),
            expect: Parked("snapshot_outside_root", "resolves outside the data root"),
        },
        Case {
            name: "node file is a symlink to /etc/passwd",
            input: Input::Setup(Box::new(|root, customer, _| {
                let dir = sample::snapshot_dir(root, customer, ID);
                std::fs::create_dir_all(dir.join("nodes")).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", dir.join("nodes/people.csv")).unwrap();
                std::fs::write(dir.join("_SUCCESS"), "").unwrap();
            })),
            expect: Parked("snapshot_outside_root", "resolves outside"),
        },
        Case {
            name: "no node files",
            input: files(&[("relationships/knows.csv", csv(":START_ID(Person),:END_ID(Person),:TYPE\n"))]),
            expect: Parked("snapshot_invalid", "no node files under nodes/"),
        },
        Case {
            name: "unknown file type",
            input: files(&[("nodes/people.csv", csv(PEOPLE)), ("nodes/people.xlsx", csv("x"))]),
            expect: Parked("snapshot_invalid", "unsupported file type"),
        },
        // ---- headers ----
        Case {
            name: "empty node file",
            input: files(&[("nodes/people.csv", Vec::new())]),
            expect: Parked("snapshot_invalid", "file has no header"),
        },
        Case {
            name: "node file without an :ID column",
            input: files(&[("nodes/people.csv", csv("name,age:int\nAnn,3\n"))]),
            expect: Parked("snapshot_invalid", "no :ID column"),
        },
        Case {
            name: "undeclared type",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),born:instant\np1,2020-01-01\n"))]),
            expect: Parked("snapshot_invalid", "type `instant` is not supported"),
        },
        Case {
            name: "a type FalkorDB 4.16 lacks (datetime with a zone)",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),at:datetime\np1,2015-07-04T19:32:24[Europe/Berlin]\n"))]),
            expect: Parked("graph_refused", "FalkorDB 4.16 cannot store `datetime` values"),
        },
        Case {
            name: "malformed date",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),born:date\np1,2015-02-30\n"))]),
            expect: Parked("snapshot_invalid", "column `born`: row 1: `2015-02-30` is not a date"),
        },
        Case {
            name: "boolean spelled yes",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),ok:boolean\np1,yes\n"))]),
            expect: Parked("snapshot_invalid", "`yes` is not a boolean"),
        },
        Case {
            name: "options file with one character for two options",
            input: files(&[("import.toml", csv("delimiter = \";\"\narray_delimiter = \";\"\n")), ("nodes/people.csv", csv(PEOPLE))]),
            expect: Parked("snapshot_invalid", "must be three different characters"),
        },
        Case {
            name: "header file holding data rows",
            input: files(&[("nodes/Person/header.csv", csv("personId:ID(Person)\np0\n")), ("nodes/Person/part1.csv", csv("p1\n"))]),
            expect: Parked("snapshot_invalid", "must hold only the header line"),
        },
        Case {
            name: "property name with a backtick (Cypher injection)",
            input: files(&[(
                "nodes/people.csv",
                csv("personId:ID(Person),\"x`}) MATCH (m) DETACH DELETE m //\"\np1,1\n"),
            )]),
            expect: Parked("snapshot_invalid", "contains the character '`'"),
        },
        Case {
            name: "property name longer than 256 bytes",
            input: files(&[("nodes/people.csv", long_header.into_bytes())]),
            expect: Parked("snapshot_invalid", "longer than 256 bytes"),
        },
        Case {
            name: "two columns with the same name",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),name,name:string\np1,a,b\n"))]),
            expect: Parked("snapshot_invalid", "name the same field"),
        },
        Case {
            name: "relationship file without :TYPE",
            input: files(&[
                ("nodes/people.csv", csv(PEOPLE)),
                ("relationships/knows.csv", csv(":START_ID(Person),:END_ID(Person)\np1,p2\n")),
            ]),
            expect: Parked("snapshot_invalid", "no :TYPE column"),
        },
        // ---- values ----
        Case {
            name: "label value with a backtick (Cypher injection)",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),:LABEL\np1,\"A`) DETACH DELETE (n\"\n"))]),
            expect: Parked("snapshot_invalid", "contains the character '`'"),
        },
        Case {
            name: "relationship type with a control character",
            input: files(&[
                ("nodes/people.csv", csv(PEOPLE)),
                ("relationships/knows.csv", csv(":START_ID(Person),:END_ID(Person),:TYPE\np1,p2,\"KN\u{7}OWS\"\n")),
            ]),
            expect: Parked("snapshot_invalid", "contains the character"),
        },
        Case {
            name: "int column holding text",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),age:int\np1,abc\n"))]),
            expect: Parked("snapshot_invalid", "abc"),
        },
        Case {
            name: "Latin-1 bytes in a CSV file",
            input: files(&[("nodes/people.csv", b"personId:ID(Person),name\np1,Zo\xeb\n".to_vec())]),
            expect: Parked("snapshot_invalid", "UTF-8"),
        },
        Case {
            name: "UTF-16 CSV file",
            input: files(&[(
                "nodes/people.csv",
                [0xffu8, 0xfe]
                    .into_iter()
                    .chain("personId:ID(Person),name\np1,Ann\n".encode_utf16().flat_map(u16::to_le_bytes))
                    .collect(),
            )]),
            expect: Parked("snapshot_invalid", "invalid utf-8"),
        },
        Case {
            name: "a 17 MiB line",
            input: files(&[("nodes/people.csv", huge_line)]),
            expect: Parked("snapshot_invalid", "line 2 is longer than 16777216 bytes"),
        },
        Case {
            name: "truncated Parquet file",
            input: truncated(SampleFormat::Parquet),
            expect: Parked("snapshot_invalid", "Parquet"),
        },
        Case {
            name: "truncated Arrow IPC file",
            input: truncated(SampleFormat::Arrow),
            expect: Parked("snapshot_invalid", "footer"),
        },
        // ---- exactness (issue 14): refused, never loaded wrong ----
        Case {
            name: "header delimited by `;`",
            input: files(&[("nodes/people.csv", csv("name;age;personId:ID(Person)\nAlice;30;p1\n"))]),
            expect: Parked("snapshot_invalid", "looks delimited by `;`"),
        },
        Case {
            name: "header delimited by tabs",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person)\tname\np1\tAnn\n"))]),
            expect: Parked("snapshot_invalid", "looks delimited by a tab"),
        },
        Case {
            name: "a row with fewer fields than the header",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),name\np1,Ann\np2\n"))]),
            expect: Parked("snapshot_invalid", "incorrect number of fields for line 3, expected 2 got 1"),
        },
        Case {
            name: "a row with more fields than the header",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),name\np1,Ann\np2,Bob,x\n"))]),
            expect: Parked("snapshot_invalid", "expected 2 got 3"),
        },
        Case {
            name: "a node id twice in one file",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),name\np1,Ann\np2,Bob\np1,Ann again\n"))]),
            expect: Parked("duplicate_node_id", "people.csv: row 3: node id `p1` occurs again in ID space `Person`"),
        },
        Case {
            name: "a node id again in another file of the same ID space",
            input: files(&[
                ("nodes/people.csv", csv(PEOPLE)),
                ("nodes/people2.csv", csv("personId:ID(Person),name\np9,Cy\np2,Bob again\n")),
            ]),
            expect: Parked("duplicate_node_id", "people2.csv: row 2: node id `p2`"),
        },
        Case {
            name: "ID spaces that are labels of each other's nodes, one dangling row",
            input: files(&[
                ("nodes/users.csv", csv("id:ID(User),:LABEL\nx,User;Admin\n")),
                ("nodes/admins.csv", csv("id:ID(Admin),:LABEL\nx,Admin;User\n")),
                ("relationships/m.csv", csv(":START_ID(Admin),:END_ID(User),:TYPE\nx,x,MANAGES\nx,ghost,MANAGES\n")),
            ]),
            expect: Parked("dangling_relationships", "1 of 2 relationships"),
        },
        Case {
            name: "a fraction in a CSV int column",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),age:int\np1,1.5\n"))]),
            expect: Parked("snapshot_invalid", "column `age`: row 1: value `1.5` does not convert to int"),
        },
        Case {
            name: "byte out of range",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),b:byte\np1,12\np2,200\n"))]),
            expect: Parked("snapshot_invalid", "row 2: value 200 is out of range for `byte` (-128 to 127)"),
        },
        Case {
            name: "short out of range",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),s:short\np1,-40000\n"))]),
            expect: Parked("snapshot_invalid", "value -40000 is out of range for `short`"),
        },
        Case {
            name: "int out of range",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),i:int\np1,3000000000\n"))]),
            expect: Parked("snapshot_invalid", "value 3000000000 is out of range for `int`"),
        },
        Case {
            name: "a fraction in a CSV int[] array",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),nums:int[]\np1,1;2\np2,1;2.5\n"))]),
            expect: Parked("snapshot_invalid", "column `nums`: row 2: array `1;2.5`: `2.5` is not an integer"),
        },
        Case {
            name: "byte[] element out of range",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),b:byte[]\np1,1;200\n"))]),
            expect: Parked("snapshot_invalid", "row 1: array `1;200`: value 200 is out of range for `byte`"),
        },
        Case {
            name: "a CSV boolean spelled yes",
            input: files(&[("nodes/people.csv", csv("personId:ID(Person),ok:boolean\np1,true\np2,yes\n"))]),
            expect: Parked("snapshot_invalid", "row 2: `yes` is not a boolean"),
        },
        Case {
            name: "Parquet floats declared :int",
            input: files(&[(
                "nodes/people.parquet",
                parquet(vec![
                    ("personId:ID(Person)", strings(&["p1", "p2"])),
                    ("n:int", std::sync::Arc::new(arrow::array::Float64Array::from(vec![2.0, 2.7]))),
                ]),
            )]),
            expect: Parked("snapshot_invalid", "row 2: value `2.7` has a fraction"),
        },
        Case {
            name: "Parquet decimals declared :long",
            input: files(&[(
                "nodes/people.parquet",
                parquet(vec![
                    ("personId:ID(Person)", strings(&["p1"])),
                    (
                        "n:long",
                        std::sync::Arc::new(
                            arrow::array::Decimal128Array::from(vec![-90])
                                .with_precision_and_scale(5, 2)
                                .unwrap(),
                        ),
                    ),
                ]),
            )]),
            expect: Parked("snapshot_invalid", "value `-0.90` has a fraction"),
        },
        Case {
            name: "Parquet strings yes/no declared :boolean",
            input: files(&[(
                "nodes/people.parquet",
                parquet(vec![
                    ("personId:ID(Person)", strings(&["p1", "p2"])),
                    ("ok:boolean", strings(&["yes", "no"])),
                ]),
            )]),
            expect: Parked("snapshot_invalid", "row 1: `yes` is not a boolean"),
        },
        Case {
            name: "Parquet float ids",
            input: files(&[(
                "nodes/people.parquet",
                parquet(vec![(
                    "personId:ID(Person)",
                    std::sync::Arc::new(arrow::array::Float64Array::from(vec![1.5])),
                )]),
            )]),
            expect: Parked("snapshot_invalid", "ids are strings or integers"),
        },
        Case {
            name: "65535 property names (FalkorDB holds 65534)",
            input: files(&[("nodes/wide.csv", too_wide.into_bytes())]),
            expect: Parked("store_limit", "65535 distinct property names and the graph store holds at most 65534"),
        },
        Case {
            name: "customer directory is a symlink to another customer's tree",
            input: linked_to_other_customer(false),
            expect: Parked("snapshot_outside_root", "outside its customer's own directory"),
        },
        Case {
            name: "snapshot directory is a symlink into another customer's tree",
            input: linked_to_other_customer(true),
            expect: Parked("snapshot_outside_root", "outside its customer's own directory"),
        },
        Case {
            name: "snapshot id far in the future",
            input: body(|v| {
                v["snapshot_id"] = 9_999_999_999u64.into();
                v["path"] = "victim/9999999999".into();
            }),
            expect: Parked("snapshot_id_in_future", "more than max_future_seconds = 86400"),
        },
        // ---- hostile AMQP properties on a valid event: ignored ----
        Case {
            name: "garbage attempt, trace and x-death headers, no properties",
            input: Input::FilesWithHeaders(
                vec![("nodes/people.csv", csv(PEOPLE))],
                vec![
                    ("x-snapswitch-attempt", AMQPValue::LongString(LongString::from("not a number"))),
                    ("traceparent", AMQPValue::LongString(LongString::from(format!("00-{}", "f".repeat(5000))))),
                    ("tracestate", AMQPValue::LongInt(-5)),
                    ("x-death", AMQPValue::Boolean(true)),
                ],
            ),
            expect: Live(2, 0),
        },
        // ---- hostile names that are allowed: they must arrive exactly ----
        Case {
            name: "hostile but legal names are stored exactly as written",
            input: files(&[
                (
                    "nodes/people.csv",
                    csv("\u{feff}personId:ID(Person),first name,{weird},it's,\"a\"\"b\",Zoë 😀 日本,:LABEL\n\
                         p1,Ann,1,2,3,4,Emp loyee;{x}\n\
                         p2,Bob,1,2,3,4,Q'uote\n"),
                ),
                (
                    "relationships/knows.csv",
                    csv(":START_ID(Person),:END_ID(Person),:TYPE,\"since (\"\"year\"\"):int\"\np1,p2,LIKES {x} ü,2020\n"),
                ),
            ]),
            expect: Loaded {
                // Labels come from `:LABEL` only: the ID space is not one.
                labels: &["Emp loyee", "Q'uote", "{x}"],
                types: &["LIKES {x} ü"],
                keys: &[
                    "Zoë 😀 日本",
                    "a\"b",
                    "first name",
                    "it's",
                    "personId",
                    "since (\"year\")",
                    "{weird}",
                ],
            },
        },
    ]
}

/// Writes `list` under the customer's snapshot `ID`, then `_SUCCESS`.
fn write_files(root: &Path, customer: &str, list: &[(&'static str, Vec<u8>)]) {
    let dir = sample::snapshot_dir(root, customer, ID);
    for (rel, bytes) in list {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

/// `CALL <proc>()` on `graph`: the first column of every row, sorted.
fn names(env: &TestEnv, graph: &str, proc: &str) -> Vec<String> {
    let reply: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(format!("CALL {proc}()"))
        .query(&mut env.falkor.connection())
        .unwrap_or(redis::Value::Nil);
    let mut out = Vec::new();
    if let redis::Value::Array(parts) = reply {
        if let Some(redis::Value::Array(rows)) = parts.get(1) {
            for row in rows {
                if let redis::Value::Array(cells) = row {
                    match cells.first() {
                        Some(redis::Value::BulkString(b)) => {
                            out.push(String::from_utf8_lossy(b).into_owned())
                        }
                        Some(redis::Value::SimpleString(s)) => out.push(s.clone()),
                        _ => {}
                    }
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_has_its_outcome_and_leaves_nothing_behind() {
    // max_retries = 0: a transient failure (the snapshot not ready) parks at
    // once, so each case ends in one delivery.
    let mut env = TestEnv::new("badinput", "max_retries = 0").unwrap();
    env.spawn_worker("worker").unwrap();
    // The worker declares the topology before it consumes: publish after that.
    wait_for("the worker to consume", Duration::from_secs(60), || async {
        Ok(env.log_of("worker").contains("consuming").then_some(()))
    })
    .await
    .unwrap();
    let cases = catalogue();
    assert!(cases.len() >= 20);
    let mut report = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let customer = format!("case{i:02}");
        let root = env.data_root();
        let published = match &case.input {
            Input::Body(b) => b.clone(),
            Input::Files(list) => {
                write_files(&root, &customer, list);
                serde_json::to_vec(&event(&customer)).unwrap()
            }
            Input::Setup(f) => {
                f(&root, &customer, env.dir.path());
                serde_json::to_vec(&event(&customer)).unwrap()
            }
            Input::FilesWithHeaders(list, _) => {
                write_files(&root, &customer, list);
                serde_json::to_vec(&event(&customer)).unwrap()
            }
        };
        if let Input::FilesWithHeaders(_, headers) = &case.input {
            let (con, _) = env.amqp().await.unwrap();
            let publisher = common::broker::Publisher::new(&con).await.unwrap();
            let mut table = FieldTable::default();
            for (k, v) in headers {
                table.insert(ShortString::from(*k), v.clone());
            }
            let props = lapin::BasicProperties::default().with_headers(table);
            publisher
                .publish(
                    &format!("{}.events", env.namespace),
                    common::topology::ROUTING_KEY,
                    &published,
                    props,
                )
                .await
                .unwrap();
        } else {
            env.publish_raw(&published, 5).await.unwrap();
        }
        match &case.expect {
            Expect::Parked(reason, message) => {
                let parked = wait_for(case.name, Duration::from_secs(60), || async {
                    let msgs = env.drain_dead().await?;
                    Ok((!msgs.is_empty()).then_some(msgs))
                })
                .await;
                let parked = match parked {
                    Ok(p) => p,
                    Err(e) => panic!("{}: {e}\n{}", case.name, env.logs()),
                };
                assert_eq!(parked.len(), 1, "{}: one parked message", case.name);
                let (headers, parked_body) = &parked[0];
                let got = headers.get(HEADER_REASON).map(String::as_str);
                let error = headers.get(HEADER_ERROR).cloned().unwrap_or_default();
                assert_eq!(got, Some(*reason), "{}: {error}", case.name);
                assert!(
                    error.contains(message),
                    "{}: `{error}` lacks `{message}`",
                    case.name
                );
                assert!(headers.contains_key(HEADER_ERROR_CLASS), "{}", case.name);
                assert_eq!(
                    parked_body, &published,
                    "{}: the body is parked unchanged",
                    case.name
                );
                report.push(format!("{:<60} parked {reason}: {error}", case.name));
            }
            Expect::Loaded {
                labels,
                types,
                keys,
            } => {
                let live = wait_for(case.name, Duration::from_secs(60), || async {
                    Ok(env.falkor.graphs().contains(&customer).then_some(()))
                })
                .await;
                assert!(live.is_ok(), "{}: {live:?}\n{}", case.name, env.logs());
                assert_eq!(env.falkor.counts(&customer), (2, 1), "{}", case.name);
                assert_eq!(
                    names(&env, &customer, "db.labels"),
                    *labels,
                    "{}",
                    case.name
                );
                assert_eq!(
                    names(&env, &customer, "db.relationshipTypes"),
                    *types,
                    "{}",
                    case.name
                );
                assert_eq!(
                    names(&env, &customer, "db.propertyKeys"),
                    *keys,
                    "{}",
                    case.name
                );
                report.push(format!("{:<60} loaded", case.name));
            }
            Expect::Live(nodes, rels) => {
                let live = wait_for(case.name, Duration::from_secs(60), || async {
                    Ok(env.falkor.graphs().contains(&customer).then_some(()))
                })
                .await;
                assert!(live.is_ok(), "{}: {live:?}\n{}", case.name, env.logs());
                assert_eq!(
                    env.falkor.counts(&customer),
                    (*nodes, *rels),
                    "{}",
                    case.name
                );
                report.push(format!("{:<60} loaded", case.name));
            }
        }
        assert!(
            env.is_running("worker"),
            "{}: the worker died\n{}",
            case.name,
            env.logs()
        );
        if matches!(case.expect, Expect::Parked(..)) {
            let left: Vec<String> = env
                .falkor
                .graphs()
                .into_iter()
                .filter(|g| g == &customer || g.starts_with(&format!("{customer}-")))
                .collect();
            assert!(
                left.is_empty(),
                "{}: partial databases left: {left:?}",
                case.name
            );
        }
    }
    // Nothing but the loaded cases' live graphs exists.
    let loaded: Vec<String> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| !matches!(c.expect, Expect::Parked(..)))
        .map(|(i, _)| format!("case{i:02}"))
        .collect();
    let graphs: Vec<String> = env
        .falkor
        .graphs()
        .into_iter()
        .filter(|g| g.starts_with("case"))
        .collect();
    assert_eq!(graphs, loaded, "{}", env.logs());
    let log = env.log_of("worker");
    assert!(!log.contains("panicked"), "{log}");
    for line in report {
        eprintln!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_refuses_hostile_arguments_and_publishes_nothing() {
    let env = TestEnv::new("badargs", "").unwrap();
    let root = env.data_root();
    // A customer directory that is a symlink out of the data root, ready.
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(outside.join(ID.to_string()).join("nodes")).unwrap();
    std::fs::write(outside.join(ID.to_string()).join("nodes/p.csv"), PEOPLE).unwrap();
    std::fs::write(outside.join(ID.to_string()).join("_SUCCESS"), "").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escaper")).unwrap();
    let id = ID.to_string();
    let cases: [(&[&str], &str); 6] = [
        (
            &["publish", "--customer", "../etc", "--snapshot-id", &id],
            "not a safe identifier",
        ),
        (
            &["publish", "--customer", "a`b}", "--snapshot-id", &id],
            "not a safe identifier",
        ),
        (
            &["publish", "--customer", "acme", "--snapshot-id", "12"],
            "snapshot id `12`",
        ),
        (
            &["publish", "--customer", "acme", "--snapshot-id", &id],
            "does not exist",
        ),
        (
            &["publish", "--customer", "escaper", "--snapshot-id", &id],
            "outside the data root",
        ),
        (
            &["cancel", "--customer", "Zoë", "--snapshot-id", &id],
            "not a safe identifier",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = env.run("producer", args).unwrap();
        assert_ne!(code, 0, "{args:?}: {out}{err}");
        assert!(err.contains(message), "{args:?}: `{err}` lacks `{message}`");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The work queue exists (declared by the producer) or not at all; either
    // way nothing was published.
    let depth = env.queue_depth(&env.work_queue()).await.unwrap_or(0);
    assert_eq!(depth, 0);
}
