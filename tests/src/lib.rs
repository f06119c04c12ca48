//! The test harness: every test gets its own namespace on the machine's
//! RabbitMQ and Redis, its own FalkorDB server on a free port, its own data
//! root, and real `producer`/`worker` processes whose logs land in the test's
//! temp dir (kept and printed on failure). Dropping a [`TestEnv`] stops every
//! process and server it started and deletes its queues and keys.
//!
//! Services: `SNAPSWITCH_TEST_AMQP_URL` (default the local RabbitMQ),
//! `SNAPSWITCH_TEST_REDIS_URL` (default the local Redis); FalkorDB binaries
//! from `FALKORDB_REDIS_SERVER`/`FALKORDB_MODULE` or the file
//! `scripts/ensure-services.sh` writes.

pub mod arcadedb;
pub mod hold_proxy;
pub mod otlp;
pub mod services;
pub mod tls_proxy;
pub mod webdriver;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::broker;
use common::config::ServiceUrl;
use common::keys::Keys;
use common::state::FleetState;
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::ShortString;
use lapin::{Channel, Connection};

pub fn amqp_url() -> String {
    std::env::var("SNAPSWITCH_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("SNAPSWITCH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// The directory holding the workspace's `producer` and `worker` binaries.
pub fn bin_dir() -> PathBuf {
    // target/debug/deps/<test-binary> -> target/debug; a binary of this
    // crate (the bench) sits next to them: target/release/bench.
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new(""));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test does)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Where the FalkorDB `redis-server` and `falkordb.so` are.
pub fn falkordb_binaries() -> (PathBuf, PathBuf) {
    let from_env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    if let (Some(server), Some(module)) = (
        from_env("FALKORDB_REDIS_SERVER"),
        from_env("FALKORDB_MODULE"),
    ) {
        return (server, module);
    }
    let tools = from_env("SNAPSWITCH_TOOLS").unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/snapswitch")
    });
    let env_file = tools.join("falkordb.env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| PathBuf::from(v.trim().trim_matches('"')))
    };
    match (get("FALKORDB_REDIS_SERVER"), get("FALKORDB_MODULE")) {
        (Some(s), Some(m)) => (s, m),
        _ => panic!(
            "FalkorDB is not installed ({} not found): run scripts/ensure-services.sh",
            env_file.display()
        ),
    }
}

/// A FalkorDB server owned by a test, stopped on drop. It keeps nothing on
/// disk: a restart comes back empty, like a crashed server without persistence.
pub struct FalkorServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl FalkorServer {
    pub fn start() -> anyhow::Result<Self> {
        let mut s = FalkorServer {
            port: 0,
            child: None,
            dir: tempfile::tempdir()?,
        };
        for _ in 0..5 {
            s.port = free_port();
            if s.spawn()? {
                return Ok(s);
            }
        }
        bail!("FalkorDB did not start")
    }

    /// Starts the server on `self.port`; false when it did not come up.
    fn spawn(&mut self) -> anyhow::Result<bool> {
        let (server, module) = falkordb_binaries();
        let child = Command::new(&server)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--loadmodule")
            .arg(&module)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut con) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                if redis::cmd("GRAPH.LIST")
                    .query::<Vec<String>>(&mut con)
                    .is_ok()
                {
                    return Ok(true);
                }
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                break; // port taken in the meantime
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Ok(false)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.spawn()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("FalkorDB did not restart on port {}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("FalkorDB connection")
    }

    /// Every graph key.
    pub fn graphs(&self) -> Vec<String> {
        let mut list: Vec<String> = redis::cmd("GRAPH.LIST")
            .query(&mut self.connection())
            .unwrap_or_default();
        list.sort();
        list
    }

    /// (nodes, relationships) of a graph.
    pub fn counts(&self, graph: &str) -> (u64, u64) {
        let mut con = self.connection();
        let mut one = |q: &str| -> u64 {
            let reply: redis::Value = redis::cmd("GRAPH.QUERY")
                .arg(graph)
                .arg(q)
                .query(&mut con)
                .unwrap_or(redis::Value::Nil);
            match reply {
                redis::Value::Array(parts) => match parts.get(1) {
                    Some(redis::Value::Array(rows)) => match rows.first() {
                        Some(redis::Value::Array(row)) => match row.first() {
                            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                            _ => 0,
                        },
                        _ => 0,
                    },
                    _ => 0,
                },
                _ => 0,
            }
        };
        (
            one("MATCH (n) RETURN count(n)"),
            one("MATCH ()-[r]->() RETURN count(r)"),
        )
    }

    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .unwrap_or(None)
    }
}

impl Drop for FalkorServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A person row of the sample generator's `nodes/people.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePerson {
    pub name: String,
    pub age: Option<i64>,
    pub score: f64,
    pub active: bool,
    /// Carries the extra label `Employee`.
    pub employee: bool,
}

/// The first `n` people of a sample snapshot's `nodes/people.csv`, by id
/// (the Parquet and Arrow files hold the same data for the same seed).
pub fn sample_people(csv: &str, n: usize) -> HashMap<String, SamplePerson> {
    csv.lines()
        .skip(1)
        .take(n)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some((
                (*f.first()?).to_owned(),
                SamplePerson {
                    name: (*f.get(2)?).to_owned(),
                    age: f.get(3)?.parse().ok(),
                    score: f.get(4)?.parse().ok()?,
                    active: *f.get(5)? == "true",
                    employee: f.get(1)?.contains("Employee"),
                },
            ))
        })
        .collect()
}

/// One load, as the audit trail recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadInterval {
    pub start_ms: i64,
    pub end_ms: i64,
    pub customer: String,
    /// The graph target it ran on (`(none)` if the entry did not say).
    pub target: String,
}

impl LoadInterval {
    pub fn overlaps(&self, other: &LoadInterval) -> bool {
        self.start_ms < other.end_ms && other.start_ms < self.end_ms
    }
}

/// One test's world.
pub struct TestEnv {
    pub name: String,
    pub namespace: String,
    pub dir: tempfile::TempDir,
    pub falkor: FalkorServer,
    pub config_path: PathBuf,
    children: Vec<(String, Child)>,
    /// Extra config lines appended to the generated file.
    pub extra_config: String,
    pub amqp_url: String,
    pub redis_url: String,
    /// CA file the harness's own RabbitMQ and Redis connections trust
    /// (tests on TLS-only, test-owned services).
    pub tls_ca: Option<PathBuf>,
}

impl TestEnv {
    /// `extra_config`: TOML lines that override the test defaults.
    pub fn new(name: &str, extra_config: &str) -> anyhow::Result<Self> {
        Self::with_services(name, extra_config, &amqp_url(), &redis_url())
    }

    /// A test world on a given RabbitMQ and Redis (test-owned ones, see
    /// [`services`]).
    pub fn with_services(
        name: &str,
        extra_config: &str,
        amqp: &str,
        redis: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("snapswitch-{name}-"))
            .tempdir()?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        let falkor = FalkorServer::start()?;
        let namespace = format!(
            "t-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let config_path = dir.path().join("snapswitch.toml");
        let mut env = TestEnv {
            name: name.into(),
            namespace,
            dir,
            falkor,
            config_path,
            children: Vec::new(),
            extra_config: extra_config.into(),
            amqp_url: amqp.into(),
            redis_url: redis.into(),
            tls_ca: None,
        };
        env.write_config()?;
        Ok(env)
    }

    fn write_config(&mut self) -> anyhow::Result<()> {
        let mut lines: Vec<(String, String)> = [
            ("namespace", format!("{:?}", self.namespace)),
            ("data_root", format!("{:?}", self.data_root())),
            ("amqp_url", format!("{:?}", self.amqp_url)),
            ("redis_url", format!("{:?}", self.redis_url)),
            ("graph_kind", "\"falkordb\"".into()),
            ("graph_url", format!("{:?}", self.falkor.url())),
            ("scan_interval", "2".into()),
            ("lock_wait_timeout", "1".into()),
            ("health_check_retry_delay", "2".into()),
            ("retry_backoff_base", "1".into()),
            ("max_retries", "2".into()),
            ("shutdown_timeout", "10".into()),
            ("lock_ttl", "6".into()),
            ("http_listen", "\"127.0.0.1:0\"".into()),
            // Tests written before the gates (issue 18) load snapshots of any
            // size one after another; the shrink guard (product default 50)
            // is off unless a test sets it (tests/tests/gates.rs does).
            ("max_shrink_percent", "100".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // The test's own lines override the defaults above.
        for line in self.extra_config.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once('=')
                .context("extra config line without `=`")?;
            let key = key.trim().to_owned();
            lines.retain(|(k, _)| *k != key);
            lines.push((key, value.trim().to_owned()));
        }
        let text: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(&self.config_path, text)?;
        Ok(())
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Starts a long-running process (`worker`, or `producer watch`) whose
    /// output goes to `<label>.log`.
    pub fn spawn(&mut self, label: &str, binary: &str, args: &[&str]) -> anyhow::Result<()> {
        self.spawn_env(label, binary, args, &[])
    }

    /// [`TestEnv::spawn`] with extra environment variables (they win over
    /// the default `RUST_LOG`).
    pub fn spawn_env(
        &mut self,
        label: &str,
        binary: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log_path(label))?;
        let child = Command::new(bin(binary))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env("RUST_LOG", "info,worker=debug")
            // An error's message, not anyhow's backtrace, should end the log.
            .env("RUST_LIB_BACKTRACE", "0")
            .envs(envs.iter().copied())
            .env_remove("SNAPSWITCH_CONFIG")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.children.push((label.into(), child));
        Ok(())
    }

    pub fn spawn_worker(&mut self, label: &str) -> anyhow::Result<()> {
        self.spawn(label, "worker", &[])
    }

    /// Runs `producer <args>` to completion; returns stdout, fails with its
    /// output on a non-zero exit.
    pub fn producer(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(bin("producer"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("SNAPSWITCH_CONFIG")
            .output()?;
        if !out.status.success() {
            bail!(
                "producer {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `binary <args>` to completion with this test's config; returns
    /// (exit code, stdout, stderr), whatever the exit code.
    pub fn run(&self, binary: &str, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
        let out = Command::new(bin(binary))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("SNAPSWITCH_CONFIG")
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The HTTP address the process `label` logged at start.
    pub async fn http_addr(&self, label: &str) -> anyhow::Result<String> {
        wait_for(
            &format!("{label}'s HTTP address"),
            Duration::from_secs(30),
            || async {
                let log = self.log_of(label);
                Ok(log.lines().find_map(|l| {
                    let l = strip_ansi(l);
                    if !l.contains("http listening") {
                        return None;
                    }
                    let rest = &l[l.find("addr=")? + 5..];
                    Some(rest.split_whitespace().next()?.to_owned())
                }))
            },
        )
        .await
    }

    /// True while the process started under `label` runs.
    pub fn is_running(&mut self, label: &str) -> bool {
        self.children
            .iter_mut()
            .find(|(l, _)| l == label)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM to `label` and waits for it to exit (up to `timeout`).
    pub fn terminate(
        &mut self,
        label: &str,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let (_, child) = self.children.iter_mut().find(|(l, _)| l == label)?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process id of `label`, while it runs.
    pub fn pid(&mut self, label: &str) -> Option<u32> {
        let (_, child) = self.children.iter_mut().find(|(l, _)| l == label)?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process `label` while it
    /// runs: SIGSTOP pauses it like a long GC stall or a frozen VM.
    pub fn signal(&mut self, label: &str, signal: &str) {
        if let Some(pid) = self.pid(label) {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// SIGKILL: no drain, no cleanup, like a machine that died.
    pub fn kill(&mut self, label: &str) {
        if let Some((_, child)) = self.children.iter_mut().find(|(l, _)| l == label) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The logs of every process, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (label, _) in &self.children {
            let text = std::fs::read_to_string(self.log_path(label)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            out.push_str(&format!(
                "\n===== {label} (last {} lines) =====\n",
                tail.len()
            ));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    pub fn log_of(&self, label: &str) -> String {
        std::fs::read_to_string(self.log_path(label)).unwrap_or_default()
    }

    pub async fn fleet(&self) -> anyhow::Result<FleetState> {
        let con = common::state::connect_tls(
            &ServiceUrl::new(self.redis_url.clone()),
            self.tls_ca.as_deref(),
        )
        .await?;
        Ok(FleetState::new(con, Keys::new(&self.namespace)))
    }

    pub async fn amqp(&self) -> anyhow::Result<(Connection, Channel)> {
        let con = broker::connect_tls(
            &ServiceUrl::new(self.amqp_url.clone()),
            "snapswitch-test",
            self.tls_ca.as_deref(),
        )
        .await?;
        let ch = con.create_channel().await?;
        Ok((con, ch))
    }

    pub fn work_queue(&self) -> String {
        format!("{}.work", self.namespace)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    /// Every message in the parking queue, taken off it: (headers, body).
    pub async fn drain_dead(&self) -> anyhow::Result<Vec<(HashMap<String, String>, Vec<u8>)>> {
        let (_con, ch) = self.amqp().await?;
        let mut out = Vec::new();
        while let Some(msg) = ch
            .basic_get(
                ShortString::from(self.dead_queue()),
                BasicGetOptions { no_ack: true },
            )
            .await?
        {
            let headers = msg
                .delivery
                .properties
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .filter_map(|(k, v)| {
                            let text = match v {
                                lapin::types::AMQPValue::LongString(s) => s.to_string(),
                                lapin::types::AMQPValue::LongInt(n) => n.to_string(),
                                lapin::types::AMQPValue::LongLongInt(n) => n.to_string(),
                                _ => return None,
                            };
                            Some((k.to_string(), text))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((headers, msg.delivery.data.clone()));
        }
        Ok(out)
    }

    /// Publishes a raw body to the events exchange, as an upstream job would.
    pub async fn publish_raw(&self, body: &[u8], priority: u8) -> anyhow::Result<()> {
        let (_con, _) = self.amqp().await?;
        let publisher = broker::Publisher::new(&_con).await?;
        let props = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_priority(priority)
            .with_content_type(ShortString::from("application/json"));
        publisher
            .publish(
                &format!("{}.events", self.namespace),
                common::topology::ROUTING_KEY,
                body,
                props,
            )
            .await?;
        Ok(())
    }

    /// A fleet counter (0 when never incremented).
    pub async fn counter(&self, name: &str) -> i64 {
        match self.fleet().await {
            Ok(f) => f
                .counters()
                .await
                .ok()
                .and_then(|c| c.get(name).copied())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Waits until counter `name` reaches `n`; fails with every log otherwise.
    pub async fn wait_counter(&self, name: &str, n: i64, timeout: Duration) {
        let r = wait_for(&format!("{name} = {n}"), timeout, || async {
            Ok((self.counter(name).await >= n).then_some(()))
        })
        .await;
        assert!(r.is_ok(), "{r:?}\n{}", self.logs());
    }

    /// Audit entries with event name `event`.
    pub async fn audit(&self, event: &str) -> Vec<common::state::AuditEntry> {
        self.audit_all()
            .await
            .into_iter()
            .filter(|e| e.get("event") == Some(event))
            .collect()
    }

    /// Every load the audit trail recorded (`load_started` paired with the
    /// same event's `load_finished` or `load_aborted` by the same worker),
    /// sorted by start, and how many started loads never ended.
    pub async fn loads(&self) -> (Vec<LoadInterval>, usize) {
        let entries = self.audit_all().await;
        let mut open: HashMap<(String, String), LoadInterval> = HashMap::new();
        let mut done = Vec::new();
        for e in entries {
            let key = (
                e.get("event_id").unwrap_or("").to_owned(),
                e.get("worker").unwrap_or("").to_owned(),
            );
            let at: i64 = e.get("at_ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            match e.get("event") {
                Some("load_started") => {
                    open.insert(
                        key,
                        LoadInterval {
                            start_ms: at,
                            end_ms: at,
                            customer: e.get("customer").unwrap_or("").to_owned(),
                            target: e.get("target").unwrap_or("(none)").to_owned(),
                        },
                    );
                }
                Some("load_finished" | "load_aborted") => {
                    if let Some(mut l) = open.remove(&key) {
                        l.end_ms = at;
                        done.push(l);
                    }
                }
                _ => {}
            }
        }
        done.sort_by_key(|l| (l.start_ms, l.end_ms));
        (done, open.len())
    }

    async fn audit_all(&self) -> Vec<common::state::AuditEntry> {
        let fleet = self.fleet().await.expect("redis");
        fleet.audit_entries(100_000).await.unwrap_or_default()
    }

    pub async fn queue_depth(&self, queue: &str) -> anyhow::Result<u32> {
        let (_con, ch) = self.amqp().await?;
        Ok(broker::queue_depth(&ch, queue).await?)
    }

    fn kill_all(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "{}", self.logs());
            // Whole logs of a failed test, for a post-mortem.
            if let Some(keep) = std::env::var_os("SNAPSWITCH_TEST_KEEP_LOGS") {
                let to = PathBuf::from(keep).join(&self.namespace);
                if std::fs::create_dir_all(&to).is_ok() {
                    for (label, _) in &self.children {
                        let _ =
                            std::fs::copy(self.log_path(label), to.join(format!("{label}.log")));
                    }
                    let _ = writeln!(std::io::stderr(), "whole logs kept in {}", to.display());
                }
            }
        }
        // Best effort: remove this test's queues, exchanges and keys.
        let ns = self.namespace.clone();
        let (amqp, redis_url) = (self.amqp_url.clone(), self.redis_url.clone());
        let cleanup = async move {
            if let Ok(con) =
                Connection::connect(&amqp, lapin::ConnectionProperties::default()).await
            {
                if let Ok(ch) = con.create_channel().await {
                    for delay in 1..=120u64 {
                        let _ = ch
                            .queue_delete(
                                ShortString::from(format!("{ns}.delay.{delay}s")),
                                QueueDeleteOptions::default(),
                            )
                            .await;
                    }
                    for q in ["work", "dead"] {
                        let _ = ch
                            .queue_delete(
                                ShortString::from(format!("{ns}.{q}")),
                                QueueDeleteOptions::default(),
                            )
                            .await;
                    }
                    for x in ["events", "delay", "dead"] {
                        let _ = ch
                            .exchange_delete(
                                ShortString::from(format!("{ns}.{x}")),
                                ExchangeDeleteOptions::default(),
                            )
                            .await;
                    }
                }
                let _ = con.close(200, "test cleanup".into()).await;
            }
            if let Ok(client) = redis::Client::open(redis_url) {
                if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{ns}:*"))
                        .query_async(&mut con)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<(), _> =
                            redis::cmd("DEL").arg(keys).query_async(&mut con).await;
                    }
                }
            }
        };
        // Drop may run inside or outside a runtime: use a fresh thread.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(cleanup);
            }
        })
        .join();
    }
}

/// Removes terminal colour codes from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A plain HTTP GET (HTTP/1.0, no client library): (status code, body).
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// Polls `check` every 200 ms until it returns `Ok(Some(v))` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last error: {last_err:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
