//! Distributed tracing: one trace per snapshot, from the producer's `publish`
//! span through the AMQP headers to the worker's `process` span and its
//! steps, exported over OTLP to an in-test receiver ([`harness::otlp`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::otel::{self, Compression, Otel, OtelSettings, OtlpProtocol};
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::otlp::{self, summary, ReceivedSpan};
use harness::{wait_for, TestEnv};
use lapin::types::{AMQPValue, FieldTable};
use tracing_subscriber::layer::SubscriberExt;

const ID: u64 = 1_767_741_427;

/// The worker's steps, each a child of its `process` span.
const STEPS: [&str; 7] = [
    "lock",
    "health_gate",
    "create_database",
    "load_nodes",
    "load_relationships",
    "switch",
    "cleanup",
];

fn dump(spans: &[ReceivedSpan]) -> String {
    spans.iter().map(summary).collect::<Vec<_>>().join("\n")
}

fn find(
    spans: &[ReceivedSpan],
    mut pred: impl FnMut(&ReceivedSpan) -> bool,
) -> Option<&ReceivedSpan> {
    spans.iter().find(|s| pred(s))
}

/// The receiver and `common::otel` in one process: a producer-kind span's
/// context goes into AMQP headers and comes out as a consumer span's parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_context_crosses_amqp_headers_and_reaches_the_receiver() {
    let receiver = otlp::start().unwrap();
    let otel = Otel::from_settings(&OtelSettings {
        endpoint: receiver.endpoint(),
        protocol: OtlpProtocol::Grpc,
        service_name: "tracing-test".into(),
        compression: Some(Compression::Gzip),
    })
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(otel.layer());
    let traceparent = tracing::subscriber::with_default(subscriber, || {
        let mut headers = FieldTable::default();
        tracing::info_span!(
            "publish",
            otel.kind = "producer",
            messaging.system = "rabbitmq"
        )
        .in_scope(|| otel::inject(&tracing::Span::current(), &mut headers));

        let process = tracing::info_span!(
            parent: None,
            "process",
            otel.kind = "consumer",
            messaging.message.id = "m-1"
        );
        assert!(otel::set_parent(&process, Some(&headers)));
        process.in_scope(|| {
            let step = tracing::info_span!("load_nodes", rows = tracing::field::Empty);
            step.record("rows", 42);
        });
        headers
    });
    otel.shutdown();

    let spans = receiver
        .wait_for(|s| s.len() >= 3, Duration::from_secs(10))
        .await
        .unwrap();
    let all = dump(&spans);
    let publish = find(&spans, |s| s.name == "publish").expect(&all);
    let process = find(&spans, |s| s.name == "process").expect(&all);
    let step = find(&spans, |s| s.name == "load_nodes").expect(&all);
    assert_eq!(publish.kind, "PRODUCER", "{all}");
    assert_eq!(process.kind, "CONSUMER", "{all}");
    assert_eq!(step.kind, "INTERNAL", "{all}");
    for s in [publish, process, step] {
        assert_eq!(s.trace_id, publish.trace_id, "one trace:\n{all}");
        assert_eq!(s.service, "tracing-test", "{all}");
    }
    assert_eq!(publish.parent_span_id, "", "{all}");
    assert_eq!(process.parent_span_id, publish.span_id, "{all}");
    assert_eq!(step.parent_span_id, process.span_id, "{all}");
    assert_eq!(publish.attr("messaging.system"), Some("rabbitmq"), "{all}");
    assert_eq!(process.attr("messaging.message.id"), Some("m-1"), "{all}");
    assert_eq!(step.attr("rows"), Some("42"), "{all}");
    match traceparent.inner().get(otel::TRACEPARENT_HEADER) {
        Some(AMQPValue::LongString(v)) => assert_eq!(
            v.to_string(),
            format!("00-{}-{}-01", publish.trace_id, publish.span_id)
        ),
        other => panic!("traceparent header: {other:?}"),
    }
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`: the blocking HTTP client
/// posts protobuf to `/v1/traces` from the SDK's export thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_posts_to_v1_traces() {
    use std::io::{BufRead, BufReader, Read, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // One request: (request line, content-type, body).
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let (mut length, mut content_type) = (0, String::new());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (&stream)
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        (request_line.trim_end().to_owned(), content_type, body)
    });

    let vars = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
    ];
    let settings = OtelSettings::from_lookup("http-test", |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .unwrap();
    let otel = Otel::from_settings(&settings).unwrap();
    let subscriber = tracing_subscriber::registry().with(otel.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("over-http", otel.kind = "producer").in_scope(|| {});
    });
    otel.shutdown();

    let (request_line, content_type, body) = server.join().unwrap();
    assert_eq!(request_line, "POST /v1/traces HTTP/1.1");
    assert_eq!(content_type, "application/x-protobuf");
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"over-http") && contains(b"http-test"), "{body:?}");
}

// ---- end to end: real producer and worker processes -----------------------

/// `binary --config …` exporting its spans to `endpoint` as `service`
/// (OTLP/gRPC, 200 ms batches).
fn traced(binary: &str, env: &TestEnv, endpoint: &str, service: &str) -> Command {
    let mut cmd = Command::new(harness::bin(binary));
    cmd.arg("--config")
        .arg(&env.config_path)
        .env_remove("SNAPSWITCH_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200");
    cmd
}

/// A traced worker process, killed when dropped.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn spawn(env: &TestEnv, endpoint: &str) -> Worker {
        let log = env.dir.path().join("worker-traced.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = traced("worker", env, endpoint, "worker")
            .env("RUST_LOG", "info,worker=debug")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("===== traced worker =====\n{}", self.log());
        }
    }
}

/// A ready snapshot for acme at `ID`; returns its (nodes, relationships).
fn snapshot(env: &TestEnv) -> (u64, u64) {
    let spec = SampleSpec::with_rows(300, SampleFormat::Csv, ID);
    sample::write_snapshot(&sample::snapshot_dir(&env.data_root(), "acme", ID), &spec).unwrap();
    (spec.node_count(), spec.relationship_count())
}

/// The worker's `process` span matching `is_it` and its seven steps, once
/// all of them arrived.
async fn process_and_steps(
    receiver: &otlp::OtlpReceiver,
    is_it: impl Fn(&ReceivedSpan) -> bool,
) -> (Vec<ReceivedSpan>, ReceivedSpan) {
    let complete = |spans: &[ReceivedSpan]| {
        let process = find(spans, |s| s.name == "process" && is_it(s))?;
        STEPS
            .iter()
            .all(|step| {
                spans
                    .iter()
                    .any(|s| s.name == *step && s.parent_span_id == process.span_id)
            })
            .then(|| process.clone())
    };
    let spans = receiver
        .wait_for(|s| complete(s).is_some(), Duration::from_secs(30))
        .await
        .unwrap();
    let process = complete(&spans).unwrap();
    (spans, process)
}

/// Every step: one span, a child of `process`, in its trace.
fn assert_steps(spans: &[ReceivedSpan], process: &ReceivedSpan, counts: (u64, u64)) {
    let all = dump(spans);
    for step in STEPS {
        let found: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.name == step && s.trace_id == process.trace_id)
            .collect();
        assert_eq!(found.len(), 1, "one `{step}` span:\n{all}");
        assert_eq!(found[0].parent_span_id, process.span_id, "{step}:\n{all}");
        assert_eq!(found[0].service, "worker", "{step}:\n{all}");
    }
    let rows = |name: &str| {
        find(spans, |s| s.name == name && s.trace_id == process.trace_id)
            .and_then(|s| s.attr("rows"))
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(rows("load_nodes"), Some(counts.0), "{all}");
    assert_eq!(rows("load_relationships"), Some(counts.1), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn one_trace_per_snapshot_from_publish_to_switch() {
    let env = TestEnv::new("trace", "").unwrap();
    let counts = snapshot(&env);
    let receiver = otlp::start().unwrap();
    let worker = Worker::spawn(&env, &receiver.endpoint());

    let out = traced("producer", &env, &receiver.endpoint(), "producer")
        .args(["publish", "--customer", "acme", "--snapshot-id"])
        .arg(ID.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "producer publish: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let event_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    env.wait_counter("completed", 1, Duration::from_secs(60))
        .await;

    let (spans, process) = process_and_steps(&receiver, |s| s.service == "worker").await;
    let all = format!("{}\n{}", dump(&spans), worker.log());
    let publish = find(&spans, |s| s.name == "publish" && s.service == "producer").expect(&all);
    assert_eq!(publish.kind, "PRODUCER", "{all}");
    assert_eq!(process.kind, "CONSUMER", "{all}");
    assert_eq!(process.service, "worker", "{all}");
    assert_eq!(process.trace_id, publish.trace_id, "one trace:\n{all}");
    assert_eq!(process.parent_span_id, publish.span_id, "{all}");
    assert_eq!(process.attr("messaging.system"), Some("rabbitmq"), "{all}");
    assert!(
        process
            .attr("messaging.destination.name")
            .is_some_and(|d| d.starts_with(&env.namespace)),
        "messaging.destination.name is one of the test's queues or exchanges:\n{all}"
    );
    assert_eq!(
        process.attr("messaging.message.id"),
        Some(event_id.as_str()),
        "{all}"
    );
    assert_steps(&spans, &process, counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn an_event_without_traceparent_starts_a_new_trace_at_the_worker() {
    let env = TestEnv::new("tracenew", "").unwrap();
    let counts = snapshot(&env);
    let receiver = otlp::start().unwrap();
    let _worker = Worker::spawn(&env, &receiver.endpoint());
    wait_for("work queue", Duration::from_secs(30), || async {
        Ok(env.queue_depth(&env.work_queue()).await.ok())
    })
    .await
    .unwrap();

    // What an upstream job publishes: no trace headers.
    let body = serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7(),
        "customer": "acme",
        "snapshot_id": ID,
        "path": format!("acme/{ID}"),
        "priority": 4,
        "created_at": "2026-11-22T10:00:00Z",
    }))
    .unwrap();
    env.publish_raw(&body, 4).await.unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(60))
        .await;

    let (spans, process) = process_and_steps(&receiver, |s| s.service == "worker").await;
    let all = dump(&spans);
    assert_eq!(process.kind, "CONSUMER", "{all}");
    assert_eq!(process.parent_span_id, "", "a root span:\n{all}");
    assert!(
        !spans.iter().any(|s| s.name == "publish"),
        "nothing was traced before the worker:\n{all}"
    );
    assert_steps(&spans, &process, counts);
}
