//! `worker doctor` and `producer doctor` against the real services, passing
//! and failing.

use harness::arcadedb::ArcadeServer;
use harness::TestEnv;

#[test]
fn worker_doctor_passes_on_healthy_services_and_warns_about_redis_persistence() {
    let env = TestEnv::new("doctor-ok", "").unwrap();
    let (code, out, err) = env.run("worker", &["doctor"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "✓ RabbitMQ: reachable at amqp://guest:***@",
        "✓ queues: ",
        "✓ Redis: reachable",
        "✓ graph database: falkordb reachable",
        "✓ database slots: ",
        "✓ privileges: created database",
        "✓ data root: ",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    // The machine's Redis runs without persistence, and doctor says so.
    assert!(
        out.contains("! Redis persistence: Redis persists nothing"),
        "{out}"
    );
    assert!(!out.contains('✗'), "{out}");
    assert!(
        env.falkor.graphs().is_empty(),
        "the probe database was dropped: {:?}",
        env.falkor.graphs()
    );
}

#[test]
fn doctor_names_a_wrong_graph_port_and_exits_non_zero() {
    let env = TestEnv::new(
        "doctor-port",
        &format!(
            "graph_url = \"redis://127.0.0.1:{}/\"",
            harness::free_port()
        ),
    )
    .unwrap();
    let (code, out, _) = env.run("worker", &["doctor"]).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("✗ graph database: cannot connect to redis://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("fix: start the graph database or correct graph_url"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_queues_declared_with_other_arguments() {
    let env = TestEnv::new("doctor-args", "").unwrap();
    let (_con, ch) = env.amqp().await.unwrap();
    // Someone declared the work queue without its priority and dead-letter arguments.
    ch.queue_declare(
        lapin::types::ShortString::from(env.work_queue()),
        lapin::options::QueueDeclareOptions::durable(),
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    let (code, out, _) = env.run("producer", &["doctor"]).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("✗ queues: ") && out.contains("PRECONDITION_FAILED"),
        "{out}"
    );
    assert!(
        out.contains("fix: a queue was declared with other arguments"),
        "{out}"
    );
}

#[test]
fn producer_doctor_reports_a_missing_data_root() {
    let env = TestEnv::new("doctor-root", "data_root = \"/nonexistent/snapswitch\"").unwrap();
    let (code, out, _) = env.run("producer", &["doctor"]).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("✗ data root: /nonexistent/snapswitch"),
        "{out}"
    );
}

#[test]
fn doctor_refuses_a_bolt_server_that_is_not_neo4j_enterprise() {
    // ArcadeDB speaks Bolt but is not Neo4j Enterprise: blue/green cannot run there.
    let server = ArcadeServer::shared();
    server.create_database("doctorprobe").unwrap();
    let env = TestEnv::new(
        "doctor-bolt",
        &format!(
            "graph_kind = \"neo4j\"\ngraph_url = {:?}\ngraph_user = {:?}\ngraph_password = {:?}",
            server.bolt_url(),
            server.user(),
            server.password()
        ),
    )
    .unwrap();
    let (code, out, err) = env.run("worker", &["doctor"]).unwrap();
    let _ = server.drop_database("doctorprobe");
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("✗ graph database: neo4j at bolt://"), "{out}");
    assert!(
        !out.contains(server.password()),
        "no password in the output"
    );
}
