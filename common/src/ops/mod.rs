//! Operations: what running a process needs around the adapters. May use
//! every layer, including the whole configuration.
//!
//! - [`metrics`]: this process's Prometheus metrics;
//! - [`otel`] and [`telemetry`]: OTLP traces and the tracing subscriber;
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`;
//! - [`status`]: the fleet status;
//! - [`doctor`]: the preflight checks of both binaries.

pub mod doctor;
pub mod http;
pub mod metrics;
pub mod otel;
pub mod status;
pub mod telemetry;
