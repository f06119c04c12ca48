//! The worker's operational face: the HTTP probe (its readiness adds every
//! graph target and the circuit breaker to the shared checks) and a tick
//! every 5 s that sends the heartbeat and refreshes gauges and status file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::http::Probe;
use common::status::Reporter;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// The worker's `/readyz`, `/metrics` and `/status`, and its 5 s tick.
pub struct WorkerProbe {
    /// The pipeline whose dependencies readiness checks.
    pub pipeline: Arc<Pipeline>,
    /// The shared readiness checks and the status report.
    pub reporter: Reporter,
}

impl WorkerProbe {
    /// Ticks every 5 s until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {
                    let p = &self.pipeline;
                    if !self.reporter.is_draining() {
                        if let Err(e) = p.state.heartbeat(&p.worker_id).await {
                            tracing::warn!(error = %e, "heartbeat failed");
                        }
                        let open = p.metrics.breaker_open.get() == 1;
                        p.state.report_breaker(&p.worker_id, open).await.ok();
                    }
                    p.metrics.lock_held_seconds.set(p.locks_held.longest().as_secs_f64());
                    self.reporter.tick().await;
                }
            }
        }
    }
}

#[async_trait]
impl Probe for WorkerProbe {
    async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let p = &self.pipeline;
        let mut checks = self.reporter.readiness().await;
        // Every graph target must answer.
        checks.push(("graph", p.graphs.ping_all().await));
        let breaker = if p.metrics.breaker_open.get() == 1 {
            Err("circuit breaker open".into())
        } else {
            Ok(())
        };
        checks.push(("breaker", breaker));
        checks
    }

    async fn status(&self) -> serde_json::Value {
        self.reporter.status().await
    }

    fn metrics(&self) -> String {
        let p = &self.pipeline;
        p.metrics
            .lock_held_seconds
            .set(p.locks_held.longest().as_secs_f64());
        p.metrics.encode()
    }
}

/// The probe the HTTP server starts with, before the dependencies answer:
/// `/healthz` is served from the first second, `/readyz` is 503 naming the
/// dependency the start waits for, `/metrics` has the worker's metrics.
/// Once every dependency answered, it hands over to the [`WorkerProbe`].
pub struct StartupProbe {
    waiting_for: std::sync::Mutex<String>,
    ready: std::sync::OnceLock<Arc<WorkerProbe>>,
    metrics: Arc<common::metrics::Metrics>,
}

impl StartupProbe {
    /// A probe that answers `/healthz` and says what the start waits for.
    pub fn new(metrics: Arc<common::metrics::Metrics>) -> Self {
        StartupProbe {
            waiting_for: std::sync::Mutex::new("starting".into()),
            ready: std::sync::OnceLock::new(),
            metrics,
        }
    }

    /// Every dependency answered: the worker's own probe takes over.
    pub fn ready(&self, probe: Arc<WorkerProbe>) {
        self.ready.set(probe).ok();
    }

    fn set_waiting(&self, what: String) {
        if let Ok(mut w) = self.waiting_for.lock() {
            *w = what;
        }
    }

    fn waiting(&self) -> String {
        self.waiting_for
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Probe for StartupProbe {
    async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        match self.ready.get() {
            Some(p) => p.readiness().await,
            None => vec![("startup", Err(self.waiting()))],
        }
    }

    async fn status(&self) -> serde_json::Value {
        match self.ready.get() {
            Some(p) => p.status().await,
            None => serde_json::json!({ "status": "starting", "waiting_for": self.waiting() }),
        }
    }

    fn metrics(&self) -> String {
        match self.ready.get() {
            Some(p) => p.metrics(),
            None => self.metrics.encode(),
        }
    }
}

/// Tries `attempt` (itself bounded by `connect_timeout`) until it succeeds,
/// with one log line per failed try and a pause doubling from 1 s to 30 s;
/// `/readyz` names `what` and the last error meanwhile. `None` when `stop`
/// came first. A permanent graph-database refusal (wrong edition, bad URL)
/// is returned as an error: waiting cannot fix it.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    startup: &StartupProbe,
    stop: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut pause = Duration::from_secs(1);
    let mut tries = 0u32;
    loop {
        tries += 1;
        startup.set_waiting(format!("waiting for {what}"));
        let result = tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            r = attempt() => r,
        };
        match result {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(dependency = what, tries, "dependency answers; starting");
                }
                return Ok(Some(value));
            }
            Err(e)
                if e.downcast_ref::<common::graph::GraphError>()
                    .is_some_and(|g| !g.is_transient()) =>
            {
                return Err(e);
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::warn!(dependency = what, attempt = tries, %error, retry_in_s = pause.as_secs(), "waiting for a dependency; the worker keeps trying");
                startup.set_waiting(format!("waiting for {what}: {error}"));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
