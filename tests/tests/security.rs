//! Secrets stay secret and Redis stays bounded, on real services: a
//! test-owned RabbitMQ with its own user and password, a test-owned Redis
//! with `requirepass`, passwords handed over through files (`*_FILE` and
//! `{ file = … }`), and the whole pipeline run with debug logging, good and
//! bad snapshots, every CLI command that prints something, the HTTP
//! endpoints and the status file. Then every byte captured is searched for
//! the passwords, and every Redis key for its namespace and its bound.

use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::services::{RabbitNode, RedisNode};
use harness::{http_get, wait_for, TestEnv};

const ID: u64 = 1_767_741_427;
const RABBIT_PW: &str = "Rabbit-Pw-4711x";
const REDIS_PW: &str = "Redis-Pw-0815x";
const GRAPH_PW: &str = "Graph-Pw-2342x";
const WRONG_PW: &str = "Wrong-Pw-9999x";
/// The worker's log level: everything, every crate.
const LOG_LEVEL: &str = "trace";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_logs_status_or_messages_and_redis_keys_are_bounded() {
    let rabbit = RabbitNode::start(&format!(
        "default_user = snapadmin\ndefault_pass = {RABBIT_PW}\n"
    ))
    .unwrap();
    let redis = RedisNode::start_with(&["--requirepass", REDIS_PW]).unwrap();
    let amqp_url = format!("amqp://snapadmin:{RABBIT_PW}@127.0.0.1:{}/%2f", rabbit.port);
    let redis_url = format!("redis://:{REDIS_PW}@127.0.0.1:{}/", redis.port);

    let secrets = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = secrets.path().join(name);
        std::fs::write(&p, format!("{text}\n")).unwrap();
        p
    };
    let amqp_file = file("amqp-url", &amqp_url);
    let redis_file = file("redis-url", &redis_url);
    let graph_file = file("graph-password", GRAPH_PW);
    let status_file = secrets.path().join("status.json");

    // The config file names files, never passwords.
    let mut env = TestEnv::with_services(
        "secrets",
        &format!(
            "amqp_url = {{ file = {:?} }}\nredis_url = {{ file = {:?} }}\nstatus_file = {:?}\nmax_retries = 0",
            amqp_file, redis_file, status_file
        ),
        &amqp_url,
        &redis_url,
    )
    .unwrap();
    let config_text = std::fs::read_to_string(&env.config_path).unwrap();
    for pw in [RABBIT_PW, REDIS_PW, GRAPH_PW] {
        assert!(!config_text.contains(pw), "{config_text}");
    }

    // Everything at debug level, so a library that logs credentials would be caught.
    let graph_env = graph_file.display().to_string();
    let envs = [
        ("RUST_LOG", LOG_LEVEL),
        ("SNAPSWITCH_GRAPH_PASSWORD_FILE", graph_env.as_str()),
    ];
    env.spawn_env("worker", "worker", &[], &envs).unwrap();

    // A good snapshot and a broken one.
    let good = sample::snapshot_dir(&env.data_root(), "acme", ID);
    sample::write_snapshot(&good, &SampleSpec::with_rows(200, SampleFormat::Csv, 1)).unwrap();
    let bad = sample::snapshot_dir(&env.data_root(), "globex", ID);
    std::fs::create_dir_all(bad.join("nodes")).unwrap();
    std::fs::write(bad.join("nodes/x.csv"), "name\nno id column\n").unwrap();
    std::fs::write(bad.join("_SUCCESS"), "").unwrap();

    let mut captured = String::new();
    for customer in ["acme", "globex"] {
        captured += &env
            .producer(&[
                "publish",
                "--customer",
                customer,
                "--snapshot-id",
                &ID.to_string(),
            ])
            .unwrap();
    }
    env.wait_counter("completed", 1, Duration::from_secs(60))
        .await;
    env.wait_counter("parked", 1, Duration::from_secs(60)).await;

    let addr = env.http_addr("worker").await.unwrap();
    for path in ["/status", "/metrics", "/readyz", "/healthz"] {
        let (_, body) = http_get(&addr, path).unwrap();
        captured += &body;
    }
    let status = wait_for("the status file", Duration::from_secs(20), || async {
        Ok(std::fs::read_to_string(&status_file).ok())
    })
    .await
    .unwrap();
    captured += &status;
    for args in [
        &["status", "--json"][..],
        &["status"][..],
        &["dlq", "list"][..],
        &["history"][..],
        &["doctor"][..],
    ] {
        let (_, out, err) = env.run("producer", args).unwrap();
        captured += &out;
        captured += &err;
    }
    let (_, out, err) = env.run("worker", &["doctor"]).unwrap();
    captured += &out;
    captured += &err;
    // The parked message: headers and body.
    for (headers, body) in env.drain_dead().await.unwrap() {
        captured += &format!("{headers:?}");
        captured += &String::from_utf8_lossy(&body);
    }
    // What the fleet recorded: customer records and the audit trail.
    let fleet = env.fleet().await.unwrap();
    for c in ["acme", "globex"] {
        let rec = fleet
            .customer(&common::ident::Customer::parse(c).unwrap())
            .await
            .unwrap();
        captured += &format!("{rec:?}");
    }
    captured += &format!("{:?}", fleet.audit_entries(10_000).await.unwrap());

    // Failures that print URLs: a config error, a wrong password, an
    // unreachable broker (inline URLs this time).
    let bad_config = secrets.path().join("bad.toml");
    std::fs::write(
        &bad_config,
        format!(
            "namespace = {:?}\ndata_root = {:?}\namqp_url = {:?}\nredis_url = {:?}\nworkers = 0\n",
            env.namespace,
            env.data_root(),
            amqp_url,
            format!("redis://:{WRONG_PW}@127.0.0.1:{}/", redis.port)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(harness::bin("worker"))
        .args(["--config"])
        .arg(&bad_config)
        .env_remove("SNAPSWITCH_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let config_error = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(config_error.contains("workers = 0"), "{config_error}");
    captured += &config_error;
    let wrong = secrets.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        format!(
            "namespace = {:?}\ndata_root = {:?}\namqp_url = {:?}\nredis_url = {:?}\ngraph_url = {:?}\n",
            env.namespace,
            env.data_root(),
            format!("amqp://snapadmin:{WRONG_PW}@127.0.0.1:{}/%2f", rabbit.port),
            format!("redis://:{WRONG_PW}@127.0.0.1:{}/", redis.port),
            env.falkor.url(),
        ),
    )
    .unwrap();
    for binary in ["worker", "producer"] {
        let out = std::process::Command::new(harness::bin(binary))
            .arg("--config")
            .arg(&wrong)
            .arg("doctor")
            .env_remove("SNAPSWITCH_CONFIG")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("***"),
            "doctor shows the redacted URL: {text}"
        );
        captured += &text;
    }

    env.terminate("worker", Duration::from_secs(20));
    let log = env.log_of("worker");
    assert!(log.contains("TRACE"), "trace logging was on: {log}");
    captured += &log;
    // The search can find things: the user names are there, masked URLs too.
    assert!(captured.contains("snapadmin:***@"), "{captured}");
    for pw in [RABBIT_PW, REDIS_PW, GRAPH_PW, WRONG_PW] {
        if let Some(at) = captured.find(pw) {
            let from = captured[..at]
                .char_indices()
                .rev()
                .nth(300)
                .map_or(0, |(i, _)| i);
            panic!(
                "`{pw}` leaked:\n{}",
                &captured[from..(at + 100).min(captured.len())]
            );
        }
    }
    // The passwords were in use: the pipeline did its work through them.
    assert_eq!(env.falkor.graphs(), ["acme"], "{}", env.logs());

    // Redis: every key is under the namespace; every key named after a
    // snapshot expires; every per-customer collection is capped.
    let mut con = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let fleet = env.fleet().await.unwrap();
    let acme = common::ident::Customer::parse("acme").unwrap();
    fleet
        .cancel(&acme, common::ident::SnapshotId::new(ID + 60).unwrap())
        .await
        .unwrap();
    let ledger = common::claims::PublishLedger::new(fleet.connection(), fleet.keys().clone());
    assert_eq!(
        ledger
            .claim(&[(
                acme.clone(),
                common::ident::SnapshotId::new(ID + 120).unwrap()
            )])
            .await
            .unwrap(),
        [common::claims::Claim::Claimed]
    );
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(!keys.is_empty());
    let mut per_snapshot = 0;
    for key in &keys {
        assert!(
            key.starts_with(&format!("{}:", env.namespace)),
            "key `{key}` is outside the namespace"
        );
        let names_snapshot = key
            .split(':')
            .any(|p| p.len() == 10 && p.bytes().all(|b| b.is_ascii_digit()));
        if names_snapshot {
            per_snapshot += 1;
            let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut con).unwrap();
            assert!(
                ttl > 0,
                "per-snapshot key `{key}` does not expire (TTL {ttl})"
            );
        }
    }
    assert_eq!(
        per_snapshot, 2,
        "the cancel and the publish claim: {keys:?}"
    );
    for n in 0..(common::state::REMEMBERED_SNAPSHOTS as u64 + 25) {
        let id = common::ident::SnapshotId::new(ID + 1_000 + n).unwrap();
        fleet.mark_seen(&acme, id).await.unwrap();
        ledger
            .record(&[common::claims::Published {
                customer: acme.clone(),
                snapshot: id,
                event_id: String::new(),
                priority: 5,
            }])
            .await
            .unwrap();
    }
    for key in [fleet.keys().seen(&acme), fleet.keys().published(&acme)] {
        let len: i64 = redis::cmd("ZCARD").arg(&key).query(&mut con).unwrap();
        assert_eq!(len, common::state::REMEMBERED_SNAPSHOTS as i64, "{key}");
        // The newest are kept.
        let newest: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(-1)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert_eq!(
            newest,
            [(ID + 1_000 + common::state::REMEMBERED_SNAPSHOTS as u64 + 24).to_string()]
        );
    }
    drop(rabbit);
}

/// Passwords holding every reserved URL character, not percent-encoded where
/// a user would forget to: `#`, `/`, `?`, `@`, `:`, `%`.
const HOSTILE_PASSWORDS: [&str; 6] = [
    "Kq7#Vx9/Lm3?Tz5@Rw1:Np8",
    "Hb4/Jc6",
    "Qd2?Fe5=Gh8",
    "Zy3#Xw6",
    "Uv9@Ts4@Rq7",
    "Po1:Nm2%Lk3",
];

/// Percent-encodes everything but ASCII letters and digits.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The password, its encoded form, and every piece of it between reserved
/// characters: none may appear in `text`.
fn leaks(text: &str, pw: &str) -> Vec<String> {
    let mut found = Vec::new();
    let pieces = pw
        .split(['#', '/', '?', '@', ':', '%', '='])
        .filter(|p| p.len() >= 3);
    for needle in [pw.to_owned(), encode(pw)]
        .into_iter()
        .chain(pieces.map(str::to_owned))
    {
        if text.contains(&needle) {
            found.push(needle);
        }
    }
    found
}

/// A hostile password in config errors (not encoded), in a failed connect
/// (encoded, but wrong), and in a working setup (a test-owned Redis whose
/// password is hostile): no output — config errors, doctor, logs at trace
/// level, `status`, `/status`, `/metrics`, `/readyz` — shows any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_passwords_never_reach_config_errors_doctor_logs_status_or_metrics() {
    let redis_pw = HOSTILE_PASSWORDS[0];
    let redis = RedisNode::start_with(&["--requirepass", redis_pw]).unwrap();
    let redis_url = format!("redis://:{}@127.0.0.1:{}/", encode(redis_pw), redis.port);
    let mut env = TestEnv::with_services(
        "hostile",
        &format!("redis_url = {redis_url:?}"),
        &harness::amqp_url(),
        &redis_url,
    )
    .unwrap();
    let mut captured = Vec::new();

    // 1. Config errors: each password unencoded in each URL.
    for pw in HOSTILE_PASSWORDS {
        for (key, url) in [
            ("amqp_url", format!("amqp://guest:{pw}@127.0.0.1:5672/%2f")),
            ("redis_url", format!("redis://:{pw}@127.0.0.1:6379/")),
            ("graph_url", format!("redis://:{pw}@127.0.0.1:6380/")),
        ] {
            let path = env.dir.path().join("hostile.toml");
            std::fs::write(
                &path,
                format!(
                    "namespace = {:?}\ndata_root = {:?}\n{key} = {url:?}\nconnect_timeout = 2\n",
                    env.namespace,
                    env.data_root()
                ),
            )
            .unwrap();
            for (binary, args) in [("producer", &["status"][..]), ("worker", &["doctor"][..])] {
                let out = std::process::Command::new(harness::bin(binary))
                    .arg("--config")
                    .arg(&path)
                    .args(args)
                    .env("RUST_LOG", LOG_LEVEL)
                    .env_remove("SNAPSWITCH_CONFIG")
                    .output()
                    .unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                // `#`, `/` or `?` unencoded: refused by validation, naming the
                // key (an unencoded `@` or `:` the URL parser can place).
                if pw.contains(['#', '/', '?']) {
                    assert!(!out.status.success(), "{key} with {pw}: {text}");
                    assert!(
                        text.contains(&format!("{key} = ")) && text.contains("percent-encode"),
                        "{key} with {pw}: {text}"
                    );
                }
                captured.push((pw, format!("{binary} {args:?}, {key} unencoded"), text));
            }
        }
    }

    // 2. A wrong password, encoded, for RabbitMQ: doctor and a command fail
    // naming the URL without it.
    for pw in HOSTILE_PASSWORDS {
        let path = env.dir.path().join("wrong.toml");
        std::fs::write(
            &path,
            format!(
                "namespace = {:?}\ndata_root = {:?}\namqp_url = {:?}\nredis_url = {redis_url:?}\nconnect_timeout = 2\n",
                env.namespace,
                env.data_root(),
                format!("amqp://guest:{}@127.0.0.1:5672/%2f", encode(pw))
            ),
        )
        .unwrap();
        for args in [&["doctor"][..], &["dlq", "list"][..]] {
            let out = std::process::Command::new(harness::bin("producer"))
                .arg("--config")
                .arg(&path)
                .args(args)
                .env("RUST_LOG", LOG_LEVEL)
                .env_remove("SNAPSWITCH_CONFIG")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{pw}: {text}");
            assert!(text.contains("guest:***@127.0.0.1:5672"), "{pw}: {text}");
            captured.push((pw, format!("producer {args:?}, wrong AMQP password"), text));
        }
    }

    // 3. A working Redis with a hostile password: a load, then every output.
    env.spawn_env("worker", "worker", &[], &[("RUST_LOG", LOG_LEVEL)])
        .unwrap();
    let good = sample::snapshot_dir(&env.data_root(), "acme", ID);
    sample::write_snapshot(&good, &SampleSpec::with_rows(100, SampleFormat::Csv, 1)).unwrap();
    let mut outputs = String::new();
    outputs += &env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(60))
        .await;
    let addr = env.http_addr("worker").await.unwrap();
    for path in ["/status", "/metrics", "/readyz", "/healthz"] {
        outputs += &http_get(&addr, path).unwrap().1;
    }
    for (binary, args) in [
        ("producer", &["status"][..]),
        ("producer", &["status", "--json"][..]),
        ("producer", &["history"][..]),
        ("producer", &["doctor"][..]),
        ("worker", &["doctor"][..]),
    ] {
        let (_, out, err) = env.run(binary, args).unwrap();
        outputs += &out;
        outputs += &err;
    }
    outputs += &env.log_of("worker");
    assert!(outputs.contains("redis://:***@127.0.0.1:"), "{outputs}");
    captured.push((redis_pw, "a working setup".into(), outputs));

    let mut shown = Vec::new();
    for (pw, what, text) in &captured {
        let found = leaks(text, pw);
        if !found.is_empty() {
            shown.push(format!("{what}: {found:?} in\n{text}"));
        }
    }
    assert!(shown.is_empty(), "{}", shown.join("\n---\n"));
}
