//! Logging and tracing setup shared by the binaries: `tracing` with
//! `RUST_LOG` filtering (default `info`), human-readable or JSON
//! (`--log-format json`, or `SNAPSWITCH_LOG_FORMAT=json`), always to stderr
//! so stdout stays free for command output, with colours only when stderr
//! is a terminal; plus OpenTelemetry export when the standard `OTEL_*`
//! variables name an endpoint ([`crate::ops::otel`]). `RUST_LOG` filters the log
//! lines only: spans at info level and above are exported whatever it says.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::filter::{FilterFn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::ops::otel::Otel;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// While a progress bar owns the terminal, info lines (one per item) are
/// held back; they show only when `RUST_LOG` asks for debug.
static PROGRESS: AtomicBool = AtomicBool::new(false);

/// Held while a progress bar runs: info lines are not written meanwhile
/// (unless `RUST_LOG` enables debug); warnings and errors still are.
pub struct ProgressGuard(());

impl ProgressGuard {
    /// Holds info lines back until the guard is dropped.
    pub fn start() -> Self {
        PROGRESS.store(true, Ordering::SeqCst);
        ProgressGuard(())
    }
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        PROGRESS.store(false, Ordering::SeqCst);
    }
}

/// Installs the subscriber with the `SNAPSWITCH_LOG_FORMAT` format (text
/// unless `json`); see [`init_with`].
pub fn init(service: &str) -> Option<Otel> {
    let json = std::env::var("SNAPSWITCH_LOG_FORMAT").is_ok_and(|v| v == "json");
    init_with(
        service,
        if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
    )
}

/// Installs the subscriber; returns the OpenTelemetry exporter to shut down
/// (flush) on exit, when tracing is configured.
pub fn init_with(service: &str, format: LogFormat) -> Option<Otel> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let debug_asked = filter
        .max_level_hint()
        .is_some_and(|l| l >= LevelFilter::DEBUG);
    let progress = FilterFn::new(move |meta| {
        debug_asked || *meta.level() != tracing::Level::INFO || !PROGRESS.load(Ordering::Relaxed)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Json => fmt.json().with_filter(filter).with_filter(progress).boxed(),
        LogFormat::Text => fmt.with_filter(filter).with_filter(progress).boxed(),
    };
    let (otel, otel_error) = match Otel::from_env(service) {
        Ok(o) => (o, None),
        Err(e) => (None, Some(e)),
    };
    let otel_layer = otel
        .as_ref()
        .map(|o| o.layer().with_filter(LevelFilter::INFO));
    // try_init: a second call (tests) keeps the first subscriber.
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel_layer)
        .try_init()
        .ok();
    if let Some(e) = otel_error {
        tracing::error!(error = %e, "OpenTelemetry is configured but could not start; tracing is off");
    }
    if let Some(o) = &otel {
        tracing::info!(service = o.service_name(), "exporting traces over OTLP");
    }
    otel
}
