//! What the checks share: the repository's files read and parsed (YAML with
//! merge keys, systemd units and environment files, compose and Kubernetes
//! documents), the config loader run on them, the topology the binaries
//! declare, and the outside tools looked up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::config::Config;
use common::topology::{Topology, ROUTING_KEY};
use lapin::types::{AMQPValue, FieldTable};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use serde_yaml_ng::Value as Yaml;

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every file under `deploy/`, as paths relative to the repository root.
pub fn deploy_files() -> Vec<String> {
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
pub fn yaml_docs(path: &str) -> Vec<Yaml> {
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

pub fn compose() -> Yaml {
    let mut docs = yaml_docs("docker-compose.yml");
    assert_eq!(docs.len(), 1, "docker-compose.yml: one YAML document");
    docs.remove(0)
}

pub fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let s = &compose["services"][name];
    assert!(s.is_mapping(), "docker-compose.yml has no service `{name}`");
    s
}

pub fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// A compose service's `environment` (mapping form).
pub fn compose_env(compose: &Yaml, name: &str) -> BTreeMap<String, String> {
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
pub fn env_file(path: &str) -> BTreeMap<String, String> {
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
pub fn unit_environment(path: &str) -> BTreeMap<String, String> {
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
pub fn systemd_env(unit: &str) -> BTreeMap<String, String> {
    let mut env = unit_environment(unit);
    env.extend(env_file("deploy/systemd/snapswitch.env"));
    env
}

/// An `http_listen` address (`0.0.0.0:9464`), parsed as the binaries parse it.
pub fn listen_addr(what: &str, addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|e| panic!("{what}: SNAPSWITCH_HTTP_LISTEN={addr:?}: {e}"))
}

/// The OpenTelemetry variables the deployment files may use: standard names
/// the SDK (common/src/ops/otel.rs) reads.
pub const OTEL_STANDARD: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_RESOURCE_ATTRIBUTES",
];

/// Every name `<prefix>[A-Z_]+` in `text` that does not continue a longer
/// identifier (so `COLLECTOR_OTLP_ENABLED` is not an `OTEL_` name).
pub fn prefixed_names(text: &str, prefix: &str) -> Vec<String> {
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
pub fn k8s_container_env(container: &Yaml, secret: &Yaml) -> BTreeMap<String, String> {
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
pub fn k8s_docs() -> Vec<(String, Yaml)> {
    deploy_files()
        .into_iter()
        .filter(|f| f.starts_with("deploy/k8s/") && f.ends_with(".yaml"))
        .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

pub fn k8s(kind: &str, name: &str) -> Yaml {
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

pub fn configmap_toml() -> String {
    k8s("ConfigMap", "snapswitch")["data"]["snapswitch.toml"]
        .as_str()
        .expect("ConfigMap snapswitch has data.snapswitch.toml")
        .to_owned()
}

/// The config a process gets from a TOML file plus `SNAPSWITCH_<KEY>`
/// variables, read the way the binaries read them (an environment value is
/// parsed as a TOML value, or else taken as a string); validated.
pub fn config_from(base_toml: &str, env: &BTreeMap<String, String>) -> Config {
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

pub fn default_topology() -> Topology {
    Topology::from_config(&Config::default())
}

/// Seconds of a compose duration (`330s`, `5m`, `1m30s`) or a plain number.
pub fn duration_secs(s: &str) -> u64 {
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
pub fn amqp_json(v: &AMQPValue) -> Json {
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

pub fn args_json(args: &FieldTable) -> BTreeMap<String, Json> {
    args.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), amqp_json(v)))
        .collect()
}

/// What the binaries declare (`common::broker::declare`): exchange name ->
/// type; queue name -> arguments; bindings (exchange, queue, routing key).
#[allow(clippy::type_complexity)]
pub fn declared(
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

pub fn definitions() -> Json {
    serde_json::from_str(&read("deploy/rabbitmq/definitions.json")).expect("definitions.json")
}

pub fn rabbitmq_conf() -> BTreeMap<String, String> {
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
pub fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/snapswitch/deploy-venv/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

pub fn run(cmd: &mut Command) -> (bool, String) {
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

/// A program the check needs: on PATH or in the deploy tools venv. A
/// missing one fails the test, saying how to install it (`scripts/test`,
/// which CI runs, installs them first): a check that cannot run never passes.
pub fn required_tool(name: &str, install: &str) -> PathBuf {
    tool(name)
        .unwrap_or_else(|| panic!("{name} is not installed, so this check cannot run: {install}"))
}

/// How `scripts/ensure-services.sh --test-tools` (run by `scripts/test`
/// and CI) installs the deploy test tools.
pub const TEST_TOOLS: &str = "run scripts/ensure-services.sh --test-tools (scripts/test does)";

/// [`fresh_binary`], or a failed test saying to build it.
pub fn built_binary(name: &str) -> PathBuf {
    fresh_binary(name)
        .unwrap_or_else(|e| panic!("{e}: build the binaries first (scripts/test does)"))
}

/// target/debug (or release), where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// A built binary that is at least as new as the config code, or why not.
pub fn fresh_binary(name: &str) -> Result<PathBuf, String> {
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
