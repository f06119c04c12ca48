//! deploy/k8s/: the manifests against the config and each other, their
//! HTTP probes, schema validation, and a scale-down that never kills a load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::topology::Topology;
use serde_yaml_ng::Value as Yaml;

use crate::support::*;

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
        panic!("neither kubeconform nor kubernetes-validate is installed, so this check cannot run: {TEST_TOOLS}");
    }
    {
        {
            let kubectl = required_tool("kubectl", "install kubectl (https://kubernetes.io/docs/tasks/tools/; scripts/ensure-services.sh --test-tools tries apt)");
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
    }
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
