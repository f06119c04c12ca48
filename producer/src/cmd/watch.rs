//! `producer watch`: file-system notifications plus a periodic rescan,
//! forever, with the HTTP probe and status ticks, until SIGTERM/SIGINT.

use std::time::Duration;

use common::config::Config;
use tokio_util::sync::CancellationToken;

use crate::{ops, watch};

/// Watches the data root and publishes each snapshot once when it is ready.
pub async fn run(config: &Config, priority: Option<u8>) -> anyhow::Result<()> {
    let metrics = std::sync::Arc::new(common::metrics::Metrics::new(
        common::metrics::Role::Producer,
    ));
    let announcer = super::publish::announcer_with(config, metrics.clone()).await?;
    let stop = CancellationToken::new();
    let probe = std::sync::Arc::new(ops::ProducerProbe {
        reporter: common::status::Reporter {
            state: announcer.state.clone(),
            connection: announcer.connection.clone(),
            topology: announcer.topology.clone(),
            metrics,
            scan_interval: config.scan_interval,
            data_path: config.data_root.display().to_string(),
            status_file: config.status_file.clone(),
            started: std::time::Instant::now(),
            draining: std::sync::atomic::AtomicBool::new(false),
            targets: common::status::TargetCap::of_config(config),
        },
    });
    common::http::serve(&config.http_listen, probe.clone(), stop.clone()).await?;
    tokio::spawn(probe.clone().run(stop.clone()));
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("stopping");
        }
        signal_stop.cancel();
    });
    watch::run(
        &announcer,
        &config.data_root,
        Duration::from_secs(config.scan_interval),
        priority.unwrap_or(config.default_priority),
        stop,
    )
    .await
}
