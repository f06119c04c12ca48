//! `producer watch`'s operational face: the HTTP probe (broker, Redis,
//! draining), its metrics and the fleet status, refreshed every 5 s.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::http::Probe;
use common::status::Reporter;
use tokio_util::sync::CancellationToken;

/// `producer watch`'s `/readyz`, `/metrics` and `/status`.
pub struct ProducerProbe {
    /// The shared readiness checks and the status report.
    pub reporter: Reporter,
}

impl ProducerProbe {
    /// Refreshes the status every 5 s until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => self.reporter.tick().await,
            }
        }
    }
}

#[async_trait]
impl Probe for ProducerProbe {
    async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        self.reporter.readiness().await
    }

    async fn status(&self) -> serde_json::Value {
        self.reporter.status().await
    }

    fn metrics(&self) -> String {
        self.reporter.metrics.encode()
    }
}
