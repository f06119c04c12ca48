//! Logging and tracing setup shared by the binaries: `tracing` with
//! `RUST_LOG` filtering (default `info`), human-readable or JSON
//! (`SNAPSWITCH_LOG_FORMAT=json`), always to stderr so stdout stays free for
//! command output; plus OpenTelemetry export when the standard `OTEL_*`
//! variables name an endpoint ([`crate::otel`]). `RUST_LOG` filters the log
//! lines only: spans at info level and above are exported whatever it says.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::otel::Otel;

/// Installs the subscriber; returns the OpenTelemetry exporter to shut down
/// (flush) on exit, when tracing is configured.
pub fn init(service: &str) -> Option<Otel> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SNAPSWITCH_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (otel, otel_error) = match Otel::from_env(service) {
        Ok(o) => (o, None),
        Err(e) => (None, Some(e)),
    };
    let otel_layer = otel
        .as_ref()
        .map(|o| o.layer().with_filter(LevelFilter::INFO));
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel_layer)
        .try_init();
    if let Some(e) = otel_error {
        tracing::error!(error = %e, "OpenTelemetry is configured but could not start; tracing is off");
    }
    if let Some(o) = &otel {
        tracing::info!(service = o.service_name(), "exporting traces over OTLP");
    }
    otel
}
