//! The worker process, wired: wait for Redis, the graph targets and
//! RabbitMQ (readiness says which one it waits for), declare the topology,
//! then consume until the first SIGTERM/SIGINT and drain. `main.rs` parses
//! the command line and calls [`run`].

use std::sync::Arc;

use common::config::Config;
use common::topology::Topology;
use common::vocab::FailureCode;
use tokio_util::sync::CancellationToken;

use crate::{breaker, consumer, decide, graphs, ops, pipeline, reconcile};

/// Runs the worker until it is stopped (SIGTERM/SIGINT: drain, then return)
/// or its broker connection is gone for good (an error).
pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let worker_id = format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    tracing::info!(%worker_id, namespace = %config.namespace, "worker starting");

    config.check_data_root()?;
    let stop = CancellationToken::new();
    tokio::spawn(watch_signals(stop.clone()));

    let metrics = Arc::new(common::metrics::Metrics::new(common::metrics::Role::Worker));
    // Every code at 0 from the start, so increase() sees the first failure.
    for code in common::vocab::FailureCode::ALL.map(FailureCode::as_str) {
        drop(
            metrics
                .failed
                .get_or_create(&common::metrics::CodeLabel { code: code.into() }),
        );
        drop(metrics.parked.get_or_create(&common::metrics::ReasonLabel {
            reason: code.into(),
        }));
    }
    for reason in common::vocab::HoldCode::ALL.map(common::vocab::HoldCode::as_str) {
        drop(metrics.held.get_or_create(&common::metrics::ReasonLabel {
            reason: reason.into(),
        }));
    }

    // /healthz from the first second; /readyz says what the start waits for.
    let startup = Arc::new(ops::StartupProbe::new(metrics.clone()));
    let http_stop = CancellationToken::new();
    common::http::serve(&config.http_listen, startup.clone(), http_stop.clone()).await?;

    let waited = async {
        let redis = format!("Redis at {}", config.redis_url.redacted());
        let Some(state) = ops::wait_for(&redis, &startup, &stop, || async {
            Ok(common::state::fleet(&config).await?)
        })
        .await?
        else {
            return Ok(None);
        };
        let Some(graphs) = ops::wait_for("the graph database", &startup, &stop, || {
            graphs::Graphs::connect(&config)
        })
        .await?
        else {
            return Ok(None);
        };
        let amqp = format!("RabbitMQ at {}", config.amqp_url.redacted());
        let Some(connection) = ops::wait_for(&amqp, &startup, &stop, || async {
            Ok(common::broker::connect_config(&config, &worker_id).await?)
        })
        .await?
        else {
            return Ok(None);
        };
        Ok::<_, anyhow::Error>(Some((state, graphs, connection)))
    }
    .await;
    let (state, graphs, connection) = match waited {
        Ok(Some(deps)) => deps,
        Ok(None) => {
            tracing::info!("stopped while waiting for a dependency");
            http_stop.cancel();
            return Ok(());
        }
        Err(e) => {
            http_stop.cancel();
            return Err(e);
        }
    };
    for g in graphs.all() {
        tracing::info!(graph_target = %g.target.name, graph = %g.target.url, graph_kind = %g.target.kind, max_concurrent_loads = g.target.max_concurrent_loads, "graph target connected");
    }

    let topology = Topology::from_config(&config);
    let setup = connection.create_channel().await?;
    common::broker::declare(&setup, &topology).await?;
    let publisher = common::broker::Publisher::new(&connection).await?;

    metrics.init_targets(graphs.all().iter().map(|g| g.target.name.as_str()));
    let pipeline = Arc::new(pipeline::Pipeline {
        config: config.clone(),
        graphs,
        state,
        worker_id,
        metrics,
        locks_held: pipeline::LocksHeld::default(),
    });
    let connection = Arc::new(connection);
    let probe = Arc::new(ops::WorkerProbe {
        pipeline: pipeline.clone(),
        reporter: common::status::Reporter {
            state: pipeline.state.clone(),
            connection: common::broker::SharedConnection::new(connection.clone()),
            topology: topology.clone(),
            metrics: pipeline.metrics.clone(),
            scan_interval: config.scan_interval,
            data_path: config.data_root.display().to_string(),
            status_file: config.status_file.clone(),
            started: std::time::Instant::now(),
            draining: std::sync::atomic::AtomicBool::new(false),
            targets: common::status::TargetCap::of_config(&config),
        },
    });
    startup.ready(probe.clone());
    let ticker = tokio::spawn(probe.clone().run(http_stop.clone()));
    {
        // Readiness turns red as soon as draining starts.
        let (probe, stop) = (probe.clone(), stop.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            probe
                .reporter
                .draining
                .store(true, std::sync::atomic::Ordering::SeqCst);
            probe.pipeline.metrics.draining.set(1);
            probe
                .pipeline
                .state
                .farewell(&probe.pipeline.worker_id)
                .await
                .ok();
        });
    }
    let reconciler = tokio::spawn(reconcile::run(
        pipeline.clone(),
        std::time::Duration::from_secs(config.reconcile_interval),
        stop.clone(),
    ));
    let consumer = Arc::new(consumer::Consumer {
        pipeline,
        topology: topology.clone(),
        publisher,
        host,
        breaker: std::sync::Mutex::new(breaker::Breaker::new(
            config.breaker_threshold,
            std::time::Duration::from_secs(config.breaker_probe_interval),
        )),
        breaker_opened: tokio::sync::Notify::new(),
        ladder: decide::Ladder {
            delays: config.retry_delays(),
            dependency_wait: std::time::Duration::from_secs(config.health_check_retry_delay),
        },
    });
    let result = consumer.run(&connection, stop.clone()).await;
    stop.cancel();
    reconciler.await.ok();
    http_stop.cancel();
    ticker.await.ok();
    probe
        .pipeline
        .state
        .farewell(&probe.pipeline.worker_id)
        .await
        .ok();
    connection.close(200, "worker stopping".into()).await.ok();
    tracing::info!("worker stopped");
    result
}

/// First SIGTERM/SIGINT: drain. Second: exit at once.
pub async fn watch_signals(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("shutdown requested; draining (send the signal again to exit at once)");
    stop.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("second signal; exiting now");
    std::process::exit(130);
}
