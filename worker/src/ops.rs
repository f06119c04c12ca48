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

pub struct WorkerProbe {
    pub pipeline: Arc<Pipeline>,
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
                        let _ = p.state.report_breaker(&p.worker_id, open).await;
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
