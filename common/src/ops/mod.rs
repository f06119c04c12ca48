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
#[allow(missing_docs)] // public fields and variants still to document; the lint covers the rest
pub mod metrics;
pub mod otel;
#[allow(missing_docs)] // public fields and variants still to document; the lint covers the rest
pub mod status;
pub mod telemetry;
