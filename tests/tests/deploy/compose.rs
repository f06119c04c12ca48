//! docker-compose.yml: services wired as documented, traces to Jaeger,
//! standard OTEL names, supported images, `docker compose config`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_yaml_ng::Value as Yaml;

use crate::support::*;

#[test]
fn compose_services_are_wired_as_documented() {
    let compose = compose();
    for infra in ["rabbitmq", "redis", "falkordb"] {
        assert!(
            service(&compose, infra)["healthcheck"]["test"].is_sequence(),
            "{infra} needs a health check"
        );
    }
    let healthy = |svc: &str, dep: &str| {
        assert_eq!(
            service(&compose, svc)["depends_on"][dep]["condition"].as_str(),
            Some("service_healthy"),
            "{svc} must wait for {dep} to be healthy"
        );
    };
    for dep in ["rabbitmq", "redis"] {
        healthy("producer", dep);
        healthy("worker", dep);
    }
    healthy("worker", "falkordb");

    assert_eq!(
        strings(&service(&compose, "producer")["command"]),
        ["producer", "watch"]
    );
    assert_eq!(strings(&service(&compose, "worker")["command"]), ["worker"]);
    assert_eq!(
        strings(&service(&compose, "sample-data")["command"])[..2],
        ["producer", "generate"]
    );
    assert_eq!(
        service(&compose, "worker")["deploy"]["replicas"].as_u64(),
        Some(2)
    );
    assert_eq!(
        service(&compose, "redis")["command"],
        serde_yaml_ng::from_str::<Yaml>(r#"["redis-server", "--appendonly", "yes"]"#).unwrap()
    );

    // The worker drains for shutdown_timeout on SIGTERM; Docker must wait longer.
    let worker = config_from("", &compose_env(&compose, "worker"));
    let grace = duration_secs(
        &scalar(&service(&compose, "worker")["stop_grace_period"])
            .expect("worker.stop_grace_period"),
    );
    assert!(
        grace > worker.shutdown_timeout,
        "worker stop_grace_period {grace}s <= shutdown_timeout {}s",
        worker.shutdown_timeout
    );
    assert_eq!(worker.graph_kind, common::config::GraphKind::Falkordb);
    assert_eq!(
        worker.data_root,
        PathBuf::from("/data"),
        "the image's and the mounts' data root"
    );

    // Neo4j Enterprise only under its profile, with the license accepted.
    let neo4j = service(&compose, "neo4j");
    assert_eq!(strings(&neo4j["profiles"]), ["neo4j"]);
    assert_eq!(
        neo4j["environment"]["NEO4J_ACCEPT_LICENSE_AGREEMENT"].as_str(),
        Some("yes")
    );

    // Health checks: each process's own /readyz, on the port it listens on,
    // with the curl the image carries. The sample data waits for both.
    for name in ["producer", "worker"] {
        let env = compose_env(&compose, name);
        let listen = env
            .get("SNAPSWITCH_HTTP_LISTEN")
            .unwrap_or_else(|| panic!("{name}: no SNAPSWITCH_HTTP_LISTEN"));
        let addr = listen_addr(name, listen);
        assert!(
            addr.ip().is_unspecified(),
            "{name}: SNAPSWITCH_HTTP_LISTEN={listen}: in a container, listen on 0.0.0.0"
        );
        assert_eq!(&config_from("", &env).http_listen, listen, "{name}");
        let check = &service(&compose, name)["healthcheck"];
        let test = strings(&check["test"]);
        assert_eq!(
            test,
            [
                "CMD".to_owned(),
                "curl".into(),
                "-fsS".into(),
                format!("http://127.0.0.1:{}/readyz", addr.port())
            ],
            "{name}: healthcheck.test"
        );
        let secs = |k: &str| {
            duration_secs(&scalar(&check[k]).unwrap_or_else(|| panic!("{name}: healthcheck.{k}")))
        };
        assert!(
            secs("timeout") <= secs("interval"),
            "{name}: healthcheck timeout above its interval"
        );
        assert!(
            check["retries"].as_u64().is_some_and(|r| r >= 2),
            "{name}: one slow answer should not mark it unhealthy"
        );
        healthy("sample-data", name);
    }
    assert!(
        service(&compose, "sample-data")["healthcheck"].is_null(),
        "sample-data is a one-shot job"
    );
}

#[test]
fn compose_sends_traces_to_jaeger() {
    let compose = compose();
    let jaeger = service(&compose, "jaeger");
    let image = jaeger["image"].as_str().expect("jaeger.image");
    // Jaeger 2 (1.x is end of life); its default configuration receives OTLP.
    let version = image
        .strip_prefix("jaegertracing/jaeger:")
        .unwrap_or_else(|| panic!("jaeger image {image}"));
    assert!(version.starts_with("2."), "jaeger image {image}");
    let ports = strings(&jaeger["ports"]);
    for port in [4317, 4318, 16686] {
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "jaeger does not publish {port}: {ports:?}"
        );
    }
    let mut names = BTreeSet::new();
    for name in ["producer", "worker"] {
        let env = compose_env(&compose, name);
        assert_eq!(
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(String::as_str),
            Some("http://jaeger:4317"),
            "{name}"
        );
        // 4317 is Jaeger's OTLP/gRPC port; gRPC is also the default.
        assert!(
            matches!(
                env.get("OTEL_EXPORTER_OTLP_PROTOCOL").map(String::as_str),
                None | Some("grpc")
            ),
            "{name}: OTEL_EXPORTER_OTLP_PROTOCOL must be grpc for port 4317"
        );
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| panic!("{name}: no OTEL_SERVICE_NAME"));
        assert!(
            names.insert(service_name.clone()),
            "{name}: OTEL_SERVICE_NAME {service_name} used twice"
        );
        assert!(
            service(&compose, name)["depends_on"]["jaeger"].is_mapping(),
            "{name} should start after jaeger"
        );
    }
}

#[test]
fn otel_variables_are_standard_names() {
    let mut files = deploy_files();
    files.push("docker-compose.yml".into());
    files.push("Dockerfile".into());
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for f in &files {
        for name in prefixed_names(&read(f), "OTEL_") {
            if !OTEL_STANDARD.contains(&name.as_str()) {
                bad.push(format!("{f}: {name}"));
            }
            seen.insert(name);
        }
    }
    assert!(
        bad.is_empty(),
        "OTEL_ variables outside {OTEL_STANDARD:?}:\n{}",
        bad.join("\n")
    );
    for needed in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"] {
        assert!(seen.contains(needed), "no deployment file sets {needed}");
    }
}

#[test]
fn compose_file_passes_docker_compose_config() {
    let compose_cmd: Option<Vec<PathBuf>> = match tool("docker") {
        Some(docker) if run(Command::new(&docker).args(["compose", "version"])).0 => {
            Some(vec![docker, "compose".into()])
        }
        _ => tool("docker-compose").map(|c| vec![c]),
    };
    let cmd = compose_cmd.unwrap_or_else(|| {
        panic!("neither `docker compose` nor docker-compose is installed, so this check cannot run: {TEST_TOOLS}")
    });
    for profile in [None, Some("neo4j")] {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]).current_dir(repo("."));
        if let Some(p) = profile {
            c.args(["--profile", p]);
        }
        let (ok, out) = run(c.args(["-f", "docker-compose.yml", "config", "-q"]));
        assert!(ok, "{cmd:?} config (profile {profile:?}):\n{out}");
    }
}

/// Service images in compose are current: RabbitMQ 4.x (3.13 is out of
/// community support), Jaeger 2.x.
#[test]
fn compose_uses_supported_service_images() {
    let compose = compose();
    let rabbit = scalar(&service(&compose, "rabbitmq")["image"]).expect("rabbitmq.image");
    let version = rabbit
        .strip_prefix("rabbitmq:")
        .unwrap_or_else(|| panic!("{rabbit}"));
    assert!(version.starts_with("4."), "{rabbit}");
    assert!(version.ends_with("-management"), "{rabbit}");
}
