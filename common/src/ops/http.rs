//! The HTTP face of every long-running process (axum): `/healthz` (the
//! process answers), `/readyz` (its dependencies answer and it is not
//! draining; 503 with the failing checks otherwise), `/metrics` (Prometheus
//! text) and `/status` (the fleet status as JSON).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

/// What a process exposes.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// Each named check: Ok, or why not.
    async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)>;
    /// The `/status` document.
    async fn status(&self) -> serde_json::Value;
    /// The `/metrics` text (Prometheus exposition format).
    fn metrics(&self) -> String;
}

/// Binds `listen` and serves until `stop`; returns the bound address (so
/// port 0 works).
pub async fn serve(
    listen: &str,
    probe: Arc<dyn Probe>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {listen} (http_listen): {e}; give each process its own address, e.g. SNAPSWITCH_HTTP_LISTEN=127.0.0.1:0"),
        )
    })?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(probe);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, "http listening (/healthz /readyz /metrics /status)");
    Ok(addr)
}

async fn readyz(State(probe): State<Arc<dyn Probe>>) -> Response {
    let checks = probe.readiness().await;
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let body: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(name, r)| {
            (
                name.to_owned(),
                serde_json::Value::String(r.err().unwrap_or_else(|| "ok".into())),
            )
        })
        .collect();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(probe): State<Arc<dyn Probe>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probe.metrics(),
    )
        .into_response()
}

async fn status(State(probe): State<Arc<dyn Probe>>) -> Json<serde_json::Value> {
    Json(probe.status().await)
}
