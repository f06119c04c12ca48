//! Deployment files that must not drift from the code: `Dockerfile`,
//! `docker-compose.yml` and everything under `deploy/`: settings, queues,
//! stop timeouts, the HTTP server's address and the probes and health checks
//! that call it, and the tracing (`OTEL_*`) variables.
//!
//! The static checks always run. Checks that need an outside tool fail when
//! the tool is missing, naming it and how to install it (`scripts/test`, which
//! CI runs, installs them all with `scripts/ensure-services.sh --test-tools`);
//! a check that cannot run never passes:
//! `docker compose` or `docker-compose` (compose file), `kubeconform` or
//! `kubernetes-validate` and `kubectl kustomize` (Kubernetes manifests),
//! `hadolint` (Dockerfile), `systemd-analyze verify` (units),
//! `rabbitmq-server` (a throwaway node booted with deploy/rabbitmq/, then the
//! binaries' own declarations run against it), and the built `producer`
//! binary (each deployment's settings go through the real config loader).
//! Tools are looked up on PATH and in `$HOME/.cache/snapswitch/deploy-venv/bin`
//! (see deploy/README.md).
//!
//! One module per kind of deployment file; [`support`] reads and parses them.

mod compose;
mod kubernetes;
mod rabbitmq;
mod support;
mod systemd;

use std::collections::BTreeSet;
use std::process::Command;

use common::config::Config;
use serde_json::Value as Json;

use support::*;

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

    let hadolint = required_tool("hadolint", TEST_TOOLS);
    let (ok, out) = run(Command::new(hadolint).arg(repo("Dockerfile")));
    assert!(ok, "hadolint Dockerfile:\n{out}");
}

#[test]
fn deployment_settings_pass_the_binaries_config_loader() {
    let producer = built_binary("producer");
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
