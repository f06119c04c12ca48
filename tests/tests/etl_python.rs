//! The Python publisher of docs/etl-integration.md, run exactly as written
//! against the real services: a snapshot it announces is loaded and becomes
//! live; a snapshot without `_SUCCESS` is refused and nothing is published.
//!
//! Needs Python 3 with `venv` and PyPI: pika is installed into
//! `${SNAPSWITCH_TOOLS:-$HOME/.cache/snapswitch}/etl-venv` once and reused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::event::SnapshotEvent;
use common::snapshot::sample::{snapshot_dir, write_snapshot, SampleFormat, SampleSpec};
use harness::{wait_for, TestEnv};
use lapin::options::{BasicGetOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, ShortString};

const PIKA: &str = "pika==1.3.2";
const PIKA_VERSION: &str = "1.3.2";
const CUSTOMER: &str = "acme";
const ID: u64 = 1_767_741_427;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The first ```python block of the document, exactly as written.
fn python_example() -> String {
    let doc = std::fs::read_to_string(repo("docs/etl-integration.md")).unwrap();
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != "```python");
    assert!(
        lines.next().is_some(),
        "docs/etl-integration.md has no ```python block"
    );
    let mut code = String::new();
    for line in lines.by_ref() {
        if line.trim_end() == "```" {
            assert!(
                code.starts_with("#!/usr/bin/env python3\n"),
                "the first ```python block of docs/etl-integration.md is not the publisher program"
            );
            return code;
        }
        code.push_str(line);
        code.push('\n');
    }
    panic!("the ```python block of docs/etl-integration.md is not closed")
}

fn tools_dir() -> PathBuf {
    std::env::var_os("SNAPSWITCH_TOOLS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/snapswitch")
        })
}

/// True when `python` imports the pinned pika.
fn has_pika(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!("import pika, sys; sys.exit(pika.__version__ != {PIKA_VERSION:?})"),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_ok(what: &str, cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python interpreter of a virtualenv holding the pinned pika. It is
/// built under a temporary name and renamed into place, so a concurrent or
/// interrupted run never leaves a half-installed venv behind (only
/// `bin/python` is used, which works after the rename).
fn etl_python() -> PathBuf {
    let venv = tools_dir().join("etl-venv");
    let python = venv.join("bin/python");
    if has_pika(&python) {
        return python;
    }
    std::fs::create_dir_all(tools_dir()).unwrap();
    let staging = tools_dir().join(format!("etl-venv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    run_ok(
        "python3 -m venv",
        Command::new("python3").arg("-m").arg("venv").arg(&staging),
    );
    run_ok(
        &format!("pip install {PIKA}"),
        Command::new(staging.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            PIKA,
        ]),
    );
    assert!(
        has_pika(&staging.join("bin/python")),
        "{PIKA} installed but not importable"
    );
    if !has_pika(&python) {
        let _ = std::fs::remove_dir_all(&venv);
        if std::fs::rename(&staging, &venv).is_err() && !has_pika(&python) {
            panic!("cannot move {} to {}", staging.display(), venv.display());
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    python
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the doc's program with the environment variables it documents.
async fn publish(env: &TestEnv, python: &Path, script: &Path, id: u64, priority: u8) -> Run {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script)
        .arg(CUSTOMER)
        .arg(id.to_string())
        .arg("--priority")
        .arg(priority.to_string())
        .env("SNAPSWITCH_AMQP_URL", &env.amqp_url)
        .env("SNAPSWITCH_NAMESPACE", &env.namespace)
        .env("SNAPSWITCH_DATA_ROOT", env.data_root())
        .env("TRACEPARENT", TRACEPARENT)
        .env_remove("TRACESTATE")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("the Python publisher did not finish within 90 s")
        .expect("run the Python publisher");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_publishes_a_ready_snapshot_and_refuses_an_unready_one() {
    let python = etl_python();
    let mut env = TestEnv::new("etlpy", "").unwrap();
    let script = env.dir.path().join("publish_snapshot.py");
    std::fs::write(&script, python_example()).unwrap();

    let spec = SampleSpec::with_rows(300, SampleFormat::Csv, ID);
    write_snapshot(&snapshot_dir(&env.data_root(), CUSTOMER, ID), &spec).unwrap();
    let unready_id = ID + 60;
    let unready = snapshot_dir(&env.data_root(), CUSTOMER, unready_id);
    write_snapshot(
        &unready,
        &SampleSpec::with_rows(100, SampleFormat::Csv, unready_id),
    )
    .unwrap();
    std::fs::remove_file(unready.join("_SUCCESS")).unwrap();

    // A worker declares the topology (the dead queue is bound after the work
    // queue), then stops, so what the program publishes stays in the queue.
    env.spawn_worker("topology").unwrap();
    wait_for("the topology", Duration::from_secs(60), || async {
        Ok(env.queue_depth(&env.dead_queue()).await.ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.logs()));
    assert!(
        env.terminate("topology", Duration::from_secs(30)).is_some(),
        "the worker did not stop\n{}",
        env.logs()
    );

    // No `_SUCCESS`: refused, nothing published.
    let run = publish(&env, &python, &script, unready_id, 7).await;
    assert_eq!(
        run.code,
        Some(2),
        "unready snapshot: stdout {:?}, stderr {:?}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains("_SUCCESS"), "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert_eq!(env.queue_depth(&env.work_queue()).await.unwrap(), 0);

    // Ready: published and confirmed, with the contract's properties.
    let run = publish(&env, &python, &script, ID, 7).await;
    assert_eq!(
        run.code,
        Some(0),
        "ready snapshot: stdout {:?}, stderr {:?}",
        run.stdout,
        run.stderr
    );
    assert_eq!(env.queue_depth(&env.work_queue()).await.unwrap(), 1);
    let printed: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    {
        let (_con, ch) = env.amqp().await.unwrap();
        let msg = ch
            .basic_get(
                ShortString::from(env.work_queue()),
                BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap()
            .expect("the published event is in the work queue");
        let event = SnapshotEvent::decode(&msg.delivery.data).expect("a valid v1 event");
        assert_eq!(event.customer.as_str(), CUSTOMER);
        assert_eq!(event.snapshot_id.get(), ID);
        assert_eq!(event.priority, 7);
        assert_eq!(event.event_id.get_version_num(), 7, "a UUIDv7");
        let body: serde_json::Value = serde_json::from_slice(&msg.delivery.data).unwrap();
        assert_eq!(body, printed, "the program prints the event it published");
        assert_eq!(body["path"], format!("{CUSTOMER}/{ID}"));

        let p = &msg.delivery.properties;
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(*p.priority(), Some(7));
        assert_eq!(
            p.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(
            p.kind().as_ref().map(ShortString::as_str),
            Some(common::event::MESSAGE_TYPE)
        );
        assert_eq!(
            p.message_id().as_ref().map(ShortString::as_str),
            Some(event.event_id.to_string().as_str())
        );
        let ts = p.timestamp().expect("timestamp property");
        assert_eq!(ts, event.created_at.timestamp() as u64);
        let headers = p.headers().as_ref().expect("headers").inner();
        match headers.get("traceparent") {
            Some(AMQPValue::LongString(s)) => assert_eq!(s.to_string(), TRACEPARENT),
            other => panic!("traceparent header: {other:?}"),
        }
        assert!(headers.get("tracestate").is_none());
        // Put it back for the worker.
        msg.delivery
            .acker
            .reject(BasicRejectOptions { requeue: true })
            .await
            .unwrap();
        let _ = ch.close(200, "peeked".into()).await;
    }

    // A worker loads it and switches the alias.
    env.spawn_worker("worker").unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(120))
        .await;
    let live = format!("{CUSTOMER}-{ID}");
    assert_eq!(
        env.falkor
            .get(&format!("snapswitch:alias:{CUSTOMER}"))
            .as_deref(),
        Some(live.as_str()),
        "{}",
        env.logs()
    );
    assert_eq!(
        env.falkor.counts(CUSTOMER),
        (spec.node_count(), spec.relationship_count()),
        "live graph of {CUSTOMER}\n{}",
        env.logs()
    );

    // Publishing the same snapshot again is harmless: recognised, not reloaded.
    let run = publish(&env, &python, &script, ID, 7).await;
    assert_eq!(run.code, Some(0), "again: stderr {:?}", run.stderr);
    let again = wait_for(
        "the duplicate acknowledged",
        Duration::from_secs(60),
        || async { Ok((!env.audit("already_live").await.is_empty()).then_some(())) },
    )
    .await;
    assert!(again.is_ok(), "{again:?}\n{}", env.logs());
    assert_eq!(env.counter("completed").await, 1);
    assert_eq!(
        env.falkor
            .get(&format!("snapswitch:alias:{CUSTOMER}"))
            .as_deref(),
        Some(live.as_str())
    );
    // The unready snapshot was never announced: nothing was parked.
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);
}
