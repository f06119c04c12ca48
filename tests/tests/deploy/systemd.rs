//! deploy/systemd/: each process its own HTTP port, workers drained and
//! unprivileged, every key in the example environment file, `systemd-analyze
//! verify`, and the Nagios check.

use std::collections::BTreeMap;
use std::process::Command;

use common::config::Config;
use serde_json::{json, Value as Json};

use crate::support::*;

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
    let analyze = required_tool("systemd-analyze", TEST_TOOLS);
    let bins = built_binary("worker").parent().unwrap().to_path_buf();
    built_binary("producer");
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
