//! TLS to RabbitMQ (`amqps://`), Redis (`rediss://`), FalkorDB
//! (`rediss://`) and a Bolt server (`bolt+s://`), with a certificate made
//! here by `openssl` and signed by a CA made here. RabbitMQ and Redis are
//! test-owned servers with their own TLS listeners; FalkorDB's redis-server
//! and ArcadeDB's Bolt listener are built without TLS here, so they sit
//! behind a test-owned TLS proxy (`harness::tls_proxy`). The pipeline runs
//! end to end over TLS with `*_ca_file` set; without the CA file, or with
//! another CA's, every connection is refused for the certificate.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::services::{RabbitNode, RedisNode};
use harness::tls_proxy::TlsProxy;
use harness::{free_port, FalkorServer, TestEnv};

const ID: u64 = 1_767_741_427;

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("snapswitch-certs-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for name in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=snapswitch test {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn wait_port(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `GRAPH.LIST` over TLS (through `url`), trusting `ca`.
async fn graphs_over_tls(url: &str, ca: &Path) -> Vec<String> {
    let client =
        common::tls::redis_client(&common::config::ServiceUrl::new(url), Some(ca)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut list: Vec<String> = redis::cmd("GRAPH.LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    list.sort();
    list
}

/// A RabbitMQ node with a TLS listener; returns it and the TLS port. Tried
/// three times: a free port can be taken by a parallel test before the node
/// binds it (the node then fails to boot).
fn rabbit_tls(certs: &Certs) -> (RabbitNode, u16) {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let node = RabbitNode::start(&format!(
            "listeners.ssl.default = {port}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            certs.path("ca.pem").display(),
            certs.path("server.pem").display(),
            certs.path("server.key").display(),
        ));
        match node {
            Ok(node) if wait_port(port) => return (node, port),
            Ok(node) => last = format!("TLS port {port} did not open:\n{}", node.log()),
            Err(e) => last = format!("{e:#}"),
        }
    }
    panic!("RabbitMQ with TLS did not start: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_tls_to_rabbitmq_redis_and_falkordb_and_checks_certificates() {
    let certs = Certs::make();
    let ca = certs.path("ca.pem");
    let (rabbit, amqps_port) = rabbit_tls(&certs);
    let redis =
        RedisNode::start_tls(&certs.path("server.pem"), &certs.path("server.key"), &ca).unwrap();
    // FalkorDB's redis-server here is built without TLS: a TLS front it is.
    let falkor = FalkorServer::start().unwrap();
    let falkor_tls = TlsProxy::start(
        &certs.path("server.pem"),
        &certs.path("server.key"),
        falkor.port,
    )
    .await
    .unwrap();
    let falkor_url = format!("rediss://127.0.0.1:{}/", falkor_tls.port);
    let amqps = format!("amqps://guest:guest@127.0.0.1:{amqps_port}/%2f");
    assert!(redis.url().starts_with("rediss://"));

    let tls_lines = format!(
        "graph_url = {:?}\namqp_ca_file = {ca:?}\nredis_ca_file = {ca:?}\ngraph_ca_file = {ca:?}",
        falkor_url
    );
    let mut env = TestEnv::with_services("tls", &tls_lines, &amqps, &redis.url()).unwrap();
    env.tls_ca = Some(ca.clone());

    // doctor: every service reachable over TLS.
    let (code, out, err) = env.run("worker", &["doctor"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "✓ RabbitMQ: reachable at amqps://",
        "✓ Redis: reachable",
        "✓ graph database: falkordb reachable",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }

    env.spawn_worker("worker").unwrap();
    let dir = sample::snapshot_dir(&env.data_root(), "acme", ID);
    let spec = SampleSpec::with_rows(300, SampleFormat::Csv, 3);
    sample::write_snapshot(&dir, &spec).unwrap();
    env.producer(&[
        "publish",
        "--customer",
        "acme",
        "--snapshot-id",
        &ID.to_string(),
    ])
    .unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(90))
        .await;
    assert_eq!(
        graphs_over_tls(&falkor_url, &ca).await,
        ["acme"],
        "{}",
        env.logs()
    );
    assert_eq!(
        falkor.counts("acme"),
        (spec.node_count(), spec.relationship_count())
    );

    // Without the CA (the system's trust store does not know it), and with
    // another CA, every connection is refused for the certificate.
    for (label, extra) in [
        ("no CA file", String::new()),
        (
            "another CA",
            format!(
                "amqp_ca_file = {0:?}\nredis_ca_file = {0:?}\ngraph_ca_file = {0:?}\n",
                certs.path("other-ca.pem")
            ),
        ),
    ] {
        let config = env.dir.path().join("untrusting.toml");
        std::fs::write(
            &config,
            format!(
                "namespace = {:?}\ndata_root = {:?}\namqp_url = {amqps:?}\nredis_url = {:?}\ngraph_url = {:?}\n{extra}",
                env.namespace,
                env.data_root(),
                redis.url(),
                falkor_url
            ),
        )
        .unwrap();
        let out = Command::new(harness::bin("worker"))
            .arg("--config")
            .arg(&config)
            .arg("doctor")
            .env_remove("SNAPSWITCH_CONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success(), "{label}: {text}");
        for service in ["✗ RabbitMQ", "✗ Redis", "✗ graph database"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(service))
                .unwrap_or_else(|| panic!("{label}: no `{service}` line in:\n{text}"));
            assert!(
                line.to_lowercase().contains("certificate") || line.contains("UnknownIssuer"),
                "{label}: {line}"
            );
            eprintln!("{label}: {line}");
        }
    }
    drop(rabbit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bolt_load_path_runs_over_bolt_s_with_a_ca_file_and_refuses_an_unknown_ca() {
    use common::config::{Secret, ServiceUrl};
    use common::graph::neo4j::{BoltWriter, Dialect};
    use common::load::{load_snapshot, LoadOptions};
    use harness::arcadedb::ArcadeServer;
    use tokio_util::sync::CancellationToken;

    let certs = Certs::make();
    let server = ArcadeServer::shared();
    let proxy = TlsProxy::start(
        &certs.path("server.pem"),
        &certs.path("server.key"),
        server.bolt_port,
    )
    .await
    .unwrap();
    let url = ServiceUrl::new(format!("bolt+s://localhost:{}", proxy.port));
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec::with_rows(500, SampleFormat::Csv, 11);
    sample::write_snapshot(dir.path(), &spec).unwrap();
    let connect = |ca: Option<PathBuf>| {
        BoltWriter::connect_tls(
            &url,
            server.user(),
            &Secret::new(server.password()),
            2,
            Dialect::ArcadeDb,
            ca.as_deref(),
        )
        .unwrap()
    };

    let db = format!("tls-bolt-{}", std::process::id());
    server.create_database(&db).unwrap();
    let writer = connect(Some(certs.path("ca.pem")));
    // One load of the snapshot through `writer` into `db`.
    let load = |writer: BoltWriter, db: String| {
        let snap = dir.path().to_path_buf();
        async move {
            load_snapshot(
                &writer,
                &db,
                &snap,
                LoadOptions::new(200),
                &CancellationToken::new(),
            )
            .await
        }
    };
    let report = load(writer, db.clone()).await.unwrap();
    assert_eq!(
        (report.nodes, report.relationships),
        (spec.node_count(), spec.relationship_count())
    );

    for (label, ca) in [
        ("no CA file", None),
        ("another CA", Some(certs.path("other-ca.pem"))),
    ] {
        let db = format!(
            "tls-bolt-{}-{}",
            label.replace(' ', "-").to_lowercase(),
            std::process::id()
        );
        server.create_database(&db).unwrap();
        let writer = connect(ca);
        let err = load(writer, db.clone())
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
            "{label}: {err}"
        );
        eprintln!("{label}: bolt+s: {err}");
    }
}
