//! RabbitMQ and Redis instances owned by one test, on free ports, for tests
//! that restart or break a service. Each keeps its data directory across
//! restarts (durable queues and persistent messages survive a broker restart;
//! Redis runs with an append-only file) and is stopped on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::free_port;

fn wait_port(port: u16, up: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn stop_group(child: &mut Child, timeout: Duration) {
    // The child leads its own process group: signal the whole tree (`--`:
    // without it, kill(1) reads `-<pgid>` as an option).
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

/// A RabbitMQ node of its own (`rabbitmq.conf` lines given by the test).
pub struct RabbitNode {
    pub port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RabbitNode {
    /// `conf`: extra `rabbitmq.conf` lines, e.g. `consumer_timeout = 60000`.
    pub fn start(conf: &str) -> anyhow::Result<Self> {
        Self::start_with(conf, "[].")
    }

    /// `advanced`: an `advanced.config` term, for settings `rabbitmq.conf`
    /// cannot express (e.g. `[{rabbit, [{channel_tick_interval, 5000}]}].`).
    pub fn start_with(conf: &str, advanced: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("snapswitch-rabbit-")
            .tempdir()?;
        let port = free_port();
        let mut dist_port = free_port();
        while dist_port == port {
            dist_port = free_port();
        }
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n")?;
        std::fs::write(dir.path().join("advanced.config"), format!("{advanced}\n"))?;
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.default = {port}\nloopback_users = none\n{conf}\n"),
        )?;
        let mut node = RabbitNode {
            port,
            dist_port,
            dir,
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    fn server_binary() -> PathBuf {
        // Debian's /usr/sbin wrapper switches to the rabbitmq user; the real
        // script runs as whoever we are, with HOME as its cookie directory.
        let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
        if direct.is_file() {
            direct
        } else {
            PathBuf::from("rabbitmq-server")
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("server.out"))?;
        let child = Command::new(Self::server_binary())
            .env(
                "RABBITMQ_NODENAME",
                format!("snapswitch-test-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("HOME", d)
            .current_dir(d)
            .process_group(0)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting rabbitmq-server (apt-get install rabbitmq-server)")?;
        self.child = Some(child);
        if !wait_port(self.port, true, Duration::from_secs(60)) {
            bail!(
                "RabbitMQ on port {} did not start:\n{}",
                self.port,
                std::fs::read_to_string(d.join("server.out")).unwrap_or_default()
            );
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The node's own log, for failure messages.
    pub fn log(&self) -> String {
        let dir = self.dir.path().join("log");
        let mut out = String::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        out
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child, Duration::from_secs(30));
            wait_port(self.port, false, Duration::from_secs(10));
        }
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis server of its own, persisting to an append-only file.
pub struct RedisNode {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra `redis-server` arguments (e.g. `--requirepass`).
    extra: Vec<String>,
    /// TLS only: the port speaks TLS, there is no plain port.
    tls: bool,
}

impl RedisNode {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// A server with extra arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(extra.iter().map(|s| s.to_string()).collect(), false)
    }

    /// A TLS-only server (`rediss://`) with this certificate and key, signed by
    /// `ca`; clients are not asked for certificates.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<Self> {
        let mut extra = Vec::new();
        for (flag, path) in [
            ("--tls-cert-file", cert),
            ("--tls-key-file", key),
            ("--tls-ca-cert-file", ca),
        ] {
            extra.push(flag.to_owned());
            extra.push(path.display().to_string());
        }
        extra.extend(["--tls-auth-clients".to_owned(), "no".to_owned()]);
        Self::launch(extra, true)
    }

    fn launch(extra: Vec<String>, tls: bool) -> anyhow::Result<Self> {
        let mut node = RedisNode {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("snapswitch-redis-")
                .tempdir()?,
            child: None,
            extra,
            tls,
        };
        node.spawn()?;
        Ok(node)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let port = self.port.to_string();
        let ports: Vec<&str> = if self.tls {
            vec!["--port", "0", "--tls-port", &port]
        } else {
            vec!["--port", &port]
        };
        let child = Command::new("redis-server")
            .args(ports)
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        self.child = Some(child);
        if !wait_port(self.port, true, Duration::from_secs(20)) {
            bail!("Redis on port {} did not start", self.port);
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child, Duration::from_secs(10));
            wait_port(self.port, false, Duration::from_secs(10));
        }
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.stop();
    }
}
