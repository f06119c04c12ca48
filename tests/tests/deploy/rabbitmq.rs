//! deploy/rabbitmq/: the definitions and rabbitmq.conf against the topology
//! the binaries declare, and a throwaway node booted with them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::config::Config;
use common::topology::Topology;
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value as Json};

use crate::support::*;

#[test]
fn rabbitmq_definitions_match_the_topology() {
    let defs = definitions();
    let (exchanges, queues, bindings) = declared(&default_topology());
    let list = |k: &str| {
        defs[k]
            .as_array()
            .unwrap_or_else(|| panic!("definitions.json: no `{k}` list"))
            .clone()
    };

    let mut got_exchanges = BTreeMap::new();
    for e in list("exchanges") {
        assert_eq!(e["vhost"], "/", "{e}");
        assert_eq!(
            (&e["durable"], &e["auto_delete"], &e["internal"]),
            (&json!(true), &json!(false), &json!(false)),
            "exchange must be durable, not auto-deleted, not internal (as declared): {e}"
        );
        assert_eq!(e["arguments"], json!({}), "{e}");
        got_exchanges.insert(
            e["name"].as_str().unwrap().to_owned(),
            e["type"].as_str().unwrap().to_owned(),
        );
    }
    let want_exchanges: BTreeMap<String, String> = exchanges
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    assert_eq!(got_exchanges, want_exchanges, "exchanges and their types");

    let mut got_queues = BTreeMap::new();
    for q in list("queues") {
        assert_eq!(q["vhost"], "/", "{q}");
        assert_eq!(
            (&q["durable"], &q["auto_delete"]),
            (&json!(true), &json!(false)),
            "queue must be durable and not auto-deleted (as declared): {q}"
        );
        let args: BTreeMap<String, Json> = q["arguments"]
            .as_object()
            .unwrap_or_else(|| panic!("queue without arguments object: {q}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        got_queues.insert(q["name"].as_str().unwrap().to_owned(), args);
    }
    assert_eq!(
        got_queues.keys().collect::<Vec<_>>(),
        queues.keys().collect::<Vec<_>>(),
        "queue names"
    );
    for (name, want) in &queues {
        assert_eq!(&got_queues[name], want, "arguments of queue {name}");
    }
    // The numbers the brief names, spelled out once more.
    assert_eq!(queues["snapswitch.work"]["x-max-priority"], json!(10));
    assert_eq!(
        queues
            .keys()
            .filter(|q| q.starts_with("snapswitch.delay."))
            .map(|q| (q.clone(), queues[q]["x-message-ttl"].clone()))
            .collect::<BTreeMap<_, _>>(),
        // The ladder (2, 4, 8 … 256 s: max_retries = 8, capped at
        // retry_max_delay), lock_wait_timeout 5 s, health_check_retry_delay 60 s.
        [2, 4, 5, 8, 16, 32, 60, 64, 128, 256]
            .map(|s| (format!("snapswitch.delay.{s}s"), json!(s * 1000)))
            .into_iter()
            .collect()
    );

    let got_bindings: BTreeSet<(String, String, String)> = list("bindings")
        .iter()
        .map(|b| {
            assert_eq!(b["vhost"], "/", "{b}");
            assert_eq!(b["destination_type"], "queue", "{b}");
            (
                b["source"].as_str().unwrap().to_owned(),
                b["destination"].as_str().unwrap().to_owned(),
                b["routing_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got_bindings, bindings, "bindings");

    // Boot-time import skips the default guest user, so the file carries the
    // services' user, with permissions on the vhost.
    let users: Vec<&str> = defs["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(!users.is_empty(), "definitions.json needs a user");
    for user in users {
        assert!(
            defs["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["user"] == user && p["vhost"] == "/"),
            "user {user} has no permissions on /"
        );
    }
}

#[test]
fn rabbitmq_conf_loads_the_definitions_and_sets_consumer_timeout() {
    let conf = rabbitmq_conf();
    let compose = compose();
    let mounts = strings(&service(&compose, "rabbitmq")["volumes"]);
    for (file, key) in [
        ("definitions.json", "load_definitions"),
        ("rabbitmq.conf", ""),
    ] {
        let target = mounts
            .iter()
            .find_map(|m| m.strip_prefix(&format!("./deploy/rabbitmq/{file}:")))
            .unwrap_or_else(|| {
                panic!("rabbitmq service does not mount deploy/rabbitmq/{file}: {mounts:?}")
            });
        let target = target.trim_end_matches(":ro");
        if key.is_empty() {
            assert_eq!(target, "/etc/rabbitmq/rabbitmq.conf");
        } else {
            assert_eq!(conf.get(key).map(String::as_str), Some(target), "{key}");
        }
    }
    let timeout_ms: u64 = conf["consumer_timeout"]
        .parse()
        .expect("consumer_timeout in ms");
    // A worker holds a delivery unacknowledged for a whole load; anything at
    // or below RabbitMQ's default (30 min) would cut long loads off.
    assert!(
        timeout_ms > 30 * 60 * 1000,
        "consumer_timeout = {timeout_ms} ms"
    );
    assert!(
        timeout_ms > Config::default().shutdown_timeout * 1000,
        "consumer_timeout below shutdown_timeout"
    );
}

#[test]
fn every_deployment_declares_the_topology_of_the_definitions() {
    let want = default_topology();
    let compose = compose();
    for name in ["producer", "worker"] {
        let config = config_from("", &compose_env(&compose, name));
        assert_eq!(
            Topology::from_config(&config),
            want,
            "docker-compose.yml {name}: namespace or delays differ from deploy/rabbitmq/definitions.json"
        );
    }
    let systemd = config_from("", &env_file("deploy/systemd/snapswitch.env"));
    assert_eq!(
        Topology::from_config(&systemd),
        want,
        "deploy/systemd/snapswitch.env"
    );
    let k8s = config_from(&configmap_toml(), &BTreeMap::new());
    assert_eq!(
        Topology::from_config(&k8s),
        want,
        "deploy/k8s/configmap.yaml"
    );
}

/// Waits until every exchange and queue of `topology` exists (passive
/// declarations) for a login on `url`, then returns the connection.
async fn wait_for_definitions(url: &str, topology: &Topology, what: &str) -> Connection {
    let (exchanges, queues, _) = declared(topology);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let conn = Connection::connect(url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            for name in exchanges.keys() {
                ch.exchange_declare(
                    ShortString::from(name.as_str()),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            }
            for name in queues.keys() {
                ch.queue_declare(
                    ShortString::from(name.as_str()),
                    QueueDeclareOptions::default().passive(),
                    FieldTable::default(),
                )
                .await?;
            }
            Ok::<_, lapin::Error>(conn)
        };
        match attempt.await {
            Ok(conn) => return conn,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{what}: definitions not usable after 30 s: {e}"),
        }
    }
}

/// The password of the services' RabbitMQ user, from docker-compose.yml.
fn compose_amqp_password() -> String {
    let url = compose_env(&compose(), "worker")["SNAPSWITCH_AMQP_URL"].clone();
    url.split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_owned())
        .expect("password in the compose AMQP URL")
}

/// Boots a RabbitMQ node of its own with deploy/rabbitmq/rabbitmq.conf
/// (load_definitions pointed at the repository's definitions.json), as the
/// compose service does, logs in as the user the definitions create, and runs
/// what the producer and every worker run at start: `broker::declare`, with
/// the binaries' own arguments. Any difference is PRECONDITION_FAILED.
#[tokio::test]
async fn rabbitmq_boots_with_the_deploy_config_and_the_binaries_accept_it() {
    let installed = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").is_file()
        || tool("rabbitmq-server").is_some();
    assert!(
        installed,
        "rabbitmq-server is not installed, so this check cannot run: run scripts/ensure-services.sh (scripts/test does)"
    );
    let definitions_path = repo("deploy/rabbitmq/definitions.json")
        .canonicalize()
        .unwrap();
    let conf: String = read("deploy/rabbitmq/rabbitmq.conf")
        .lines()
        .map(|l| match l.trim().strip_prefix("load_definitions") {
            Some(_) => format!("load_definitions = {}", definitions_path.display()),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let node = tokio::task::spawn_blocking(move || harness::services::RabbitNode::start(&conf))
        .await
        .unwrap()
        .expect("RabbitMQ refuses deploy/rabbitmq/rabbitmq.conf");

    let defs = definitions();
    let user = defs["users"][0]["name"].as_str().unwrap().to_owned();
    let url = format!(
        "amqp://{user}:{}@127.0.0.1:{}/%2f",
        compose_amqp_password(),
        node.port
    );
    let topology = default_topology();
    let connection = wait_for_definitions(&url, &topology, "boot-time import").await;
    let channel = connection.create_channel().await.unwrap();
    if let Err(e) = common::broker::declare(&channel, &topology).await {
        panic!(
            "the binaries' declarations disagree with deploy/rabbitmq/definitions.json: {e}\n{}",
            node.log()
        );
    }
    let _ = connection.close(200, "done".into()).await;
    // Definitions imported at boot: RabbitMQ seeds no default `guest` user,
    // which is why definitions.json carries one.
    let guest = format!("amqp://guest:guest@127.0.0.1:{}/%2f", node.port);
    let login = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&guest, ConnectionProperties::default()),
    )
    .await;
    assert!(
        !matches!(login, Ok(Ok(_))),
        "guest can log in: the definitions' user is not the only one"
    );
    drop(node);
}
