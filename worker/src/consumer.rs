//! The AMQP side of the worker: consume the work queue with manual acks and a
//! prefetch of `workers`, run each delivery through the [`Pipeline`], and settle
//! it: ack, or republish (delay queue, retry ladder, parking queue) and then
//! ack, so the broker never holds two live copies. Shutdown stops consuming,
//! lets in-flight loads finish within `shutdown_timeout`, then aborts them and
//! hands their events back to the broker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::{header_u32, Publisher};
use common::topology::{self, Topology};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::breaker::Breaker;
use crate::decide::Ladder;
use crate::events::{DependencyWait, Parked, Retried};
use crate::pipeline::{Failure, Outcome, Pipeline};
use crate::settle::{settle, Settlement};

/// How often an event has waited for a dependency without using a retry
/// (`decide::MAX_DEPENDENCY_WAITS`).
pub const HEADER_WAITS: &str = "x-snapswitch-dependency-waits";

/// Why the consumer stopped pulling deliveries.
enum Pause {
    Stop,
    Breaker,
    /// An operator paused the fleet (`<ns>:pause`).
    Operator,
    ChannelLost(String),
}

/// How often a consuming worker looks at the operator's fleet pause.
const PAUSE_CHECK: Duration = Duration::from_secs(1);

/// The work queue's consumer: one per worker process.
pub struct Consumer {
    /// Runs each delivery.
    pub pipeline: Arc<Pipeline>,
    /// Queue and exchange names.
    pub topology: Topology,
    /// Republishes to the delay and parking queues (confirms on).
    pub publisher: Publisher,
    /// This host's name, for the parking headers.
    pub host: String,
    /// Stops consuming while the graph database or Redis keeps failing.
    pub breaker: Mutex<Breaker>,
    /// Signalled when the breaker opens: stop consuming.
    pub breaker_opened: Notify,
    /// The retry ladder (`max_retries`, `retry_backoff_base`,
    /// `retry_max_delay`) and the wait while a dependency is down.
    pub ladder: Ladder,
}

impl Consumer {
    /// Runs until `stop` is cancelled (then drains) or the broker connection
    /// is gone for good (then returns an error). While the circuit breaker is
    /// open it consumes nothing and probes the graph database and Redis.
    pub async fn run(
        self: Arc<Self>,
        connection: &Connection,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let config = self.pipeline.config.clone();
        let mut channel = connection.create_channel().await?;
        channel
            .basic_qos(config.workers, BasicQosOptions::default())
            .await?;
        // `abort` is cancelled only when the drain times out.
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut round = 0u32;
        let mut fresh_channels = 0u32;
        let result = loop {
            round += 1;
            let tag = format!("{}-{round}", self.pipeline.worker_id);
            let consumed = channel
                .basic_consume(
                    ShortString::from(self.topology.work_queue.as_str()),
                    ShortString::from(tag.as_str()),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await;
            let mut consumer = match consumed {
                Ok(c) => c,
                Err(e) => match self
                    .fresh_channel(connection, &mut fresh_channels, &e)
                    .await
                {
                    Ok(c) => {
                        channel = c;
                        continue;
                    }
                    Err(e) => break Err(e),
                },
            };
            tracing::info!(queue = %self.topology.work_queue, prefetch = config.workers, "consuming");
            let mut pause_check = tokio::time::interval(PAUSE_CHECK);
            // Since when the connection has not been up, with no consumer
            // error to say so (lapin's recovery can hang silently).
            let mut down = common::broker::DownClock::default();
            let why = loop {
                tokio::select! {
                    _ = stop.cancelled() => break Pause::Stop,
                    _ = self.breaker_opened.notified() => break Pause::Breaker,
                    _ = pause_check.tick() => {
                        if down.overdue(connection.status().connected()) {
                            break Pause::ChannelLost(format!(
                                "the connection did not recover within {}s",
                                common::broker::RECOVERY_PATIENCE.as_secs()
                            ));
                        }
                        if matches!(self.pipeline.state.fleet_paused().await, Ok(Some(_))) {
                            break Pause::Operator;
                        }
                    }
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => {
                            fresh_channels = 0;
                            let this = self.clone();
                            let abort = abort.clone();
                            tracker.spawn(async move { this.handle(delivery, &abort).await });
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "consumer error; waiting for the channel to recover");
                            // lapin's recovery can hang for good
                            // (common::broker::RECOVERY_PATIENCE): wait a
                            // bounded time, and not past a stop.
                            tokio::select! {
                                _ = stop.cancelled() => break Pause::Stop,
                                recovered = tokio::time::timeout(
                                    common::broker::RECOVERY_PATIENCE,
                                    channel.wait_for_recovery(e),
                                ) => match recovered {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => break Pause::ChannelLost(e.to_string()),
                                    Err(_) => break Pause::ChannelLost(format!(
                                        "the connection did not recover within {}s",
                                        common::broker::RECOVERY_PATIENCE.as_secs()
                                    )),
                                },
                            }
                        }
                        None => break Pause::ChannelLost("the consumer was cancelled".into()),
                    }
                }
            };
            channel
                .basic_cancel(
                    ShortString::from(tag.as_str()),
                    BasicCancelOptions::default(),
                )
                .await
                .ok();
            match why {
                Pause::Stop => break Ok(()),
                Pause::ChannelLost(e) => match self
                    .fresh_channel(connection, &mut fresh_channels, &e)
                    .await
                {
                    Ok(c) => channel = c,
                    Err(e) => break Err(e),
                },
                Pause::Operator => {
                    tracing::warn!("the fleet is paused by an operator; stopped consuming");
                    if !self.wait_for_resume(&stop).await {
                        break Ok(());
                    }
                    tracing::info!("the fleet is resumed; consuming");
                }
                Pause::Breaker => {
                    tracing::error!(
                        probe_interval_s = config.breaker_probe_interval,
                        "circuit breaker open: graph database or Redis keeps failing; stopped consuming"
                    );
                    if !self.wait_for_dependencies(&stop).await {
                        break Ok(());
                    }
                    tracing::info!("circuit breaker closed: dependencies answer again; consuming");
                }
            }
        };

        tracker.close();
        let in_flight = tracker.len();
        if in_flight > 0 {
            tracing::info!(
                in_flight,
                timeout_s = config.shutdown_timeout,
                "stopped consuming; waiting for in-flight loads"
            );
        }
        if tokio::time::timeout(Duration::from_secs(config.shutdown_timeout), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = tracker.len(),
                "shutdown_timeout reached; aborting in-flight loads"
            );
            abort.cancel();
            tracker.wait().await;
        }
        tracing::info!("all in-flight work settled");
        result
    }

    /// A channel that closed without recovering (a consumer_timeout closes
    /// the channel, not the connection) is replaced, up to 10 times in a row
    /// with a growing pause; a replacement that cannot be opened (the
    /// connection is itself recovering) counts as one more time. After that
    /// the worker gives up and exits.
    async fn fresh_channel(
        &self,
        connection: &Connection,
        attempts: &mut u32,
        why: &dyn std::fmt::Display,
    ) -> anyhow::Result<lapin::Channel> {
        let mut why = why.to_string();
        loop {
            *attempts += 1;
            if *attempts > 10 {
                anyhow::bail!("RabbitMQ channel lost 10 times in a row, last: {why}");
            }
            tracing::warn!(error = %why, attempt = *attempts, "RabbitMQ channel lost; opening a new one");
            tokio::time::sleep(Duration::from_millis(500 * u64::from(*attempts))).await;
            let opened = async {
                let channel = connection.create_channel().await?;
                channel
                    .basic_qos(self.pipeline.config.workers, BasicQosOptions::default())
                    .await?;
                Ok::<_, lapin::Error>(channel)
            }
            .await;
            match opened {
                Ok(channel) => return Ok(channel),
                Err(e) => why = format!("opening a new channel failed: {e}"),
            }
        }
    }

    /// Probes until the graph database and Redis answer (true) or `stop` (false).
    /// Waits while the fleet is paused; false when `stop` came first.
    async fn wait_for_resume(&self, stop: &CancellationToken) -> bool {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(PAUSE_CHECK) => {}
            }
            // Redis unreachable: stay paused (the breaker sees Redis too).
            if matches!(self.pipeline.state.fleet_paused().await, Ok(None)) {
                return true;
            }
        }
    }

    async fn wait_for_dependencies(&self, stop: &CancellationToken) -> bool {
        loop {
            let due = self.breaker.lock().map(|b| b.probe_at()).unwrap_or(None);
            let wait = due.map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
            // Every graph target must answer, as for readiness.
            let graph = self.pipeline.graphs.ping_all().await;
            let redis = self.pipeline.state.ping().await;
            if let Ok(mut b) = self.breaker.lock() {
                if graph.is_ok() && redis.is_ok() {
                    b.success();
                    self.pipeline.metrics.breaker_open.set(0);
                    return true;
                }
                b.probe_failed(Instant::now());
            }
            tracing::warn!(graph = ?graph.err(), redis = ?redis.err().map(|e| e.to_string()), "probe failed; still paused");
        }
    }

    /// Whether a failure happened because a dependency is down: its code
    /// says "unavailable" and the graph databases or Redis do not answer a
    /// probe now (within `connect_timeout`). A dependency that answers means
    /// the failure is counted against the event.
    async fn dependency_down(&self, failure: &Failure) -> bool {
        if !failure.code.is_unavailable() {
            return false;
        }
        let within = self.pipeline.config.connect_timeout();
        let graph = tokio::time::timeout(within, self.pipeline.graphs.ping_all()).await;
        let redis = tokio::time::timeout(within, self.pipeline.state.ping()).await;
        !matches!((graph, redis), (Ok(Ok(())), Ok(Ok(()))))
    }

    /// Feeds an outcome to the circuit breaker.
    fn observe(&self, outcome: &Outcome) {
        let Ok(mut b) = self.breaker.lock() else {
            return;
        };
        let unavailable = |f: &Failure| f.code.is_unavailable();
        match outcome {
            Outcome::Failed(f) if unavailable(f) && b.failure(Instant::now()) => {
                self.pipeline.metrics.breaker_open.set(1);
                self.pipeline.metrics.breaker_opened.inc();
                self.breaker_opened.notify_one();
            }
            Outcome::Loaded { .. }
            | Outcome::AlreadyLive
            | Outcome::AlreadyLoaded
            | Outcome::Held { .. }
            | Outcome::Superseded => b.success(),
            _ => {}
        }
    }

    async fn handle(&self, delivery: Delivery, abort: &CancellationToken) {
        let attempt = header_u32(
            delivery.properties.headers().as_ref(),
            topology::HEADER_ATTEMPT,
        )
        .unwrap_or(0);
        let metrics = &self.pipeline.metrics;
        metrics.loads_in_flight.inc();
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        let span = tracing::info_span!(
            parent: None,
            "process",
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation = "process",
            messaging.destination.name = %self.topology.work_queue,
            messaging.message.id = %message_id,
            attempt,
            customer = tracing::field::Empty,
            snapshot_id = tracing::field::Empty,
        );
        // Continue the publisher's trace (or the upstream job's); none: a new trace.
        common::otel::set_parent(&span, delivery.properties.headers().as_ref());
        let outcome = self
            .pipeline
            .process(&delivery.data, abort)
            .instrument(span)
            .await;
        metrics.loads_in_flight.dec();
        self.observe(&outcome);
        let recorder = self.pipeline.recorder();
        // Only a failure can need the probe; the decision itself is pure.
        let dependency_down = match &outcome {
            Outcome::Failed(failure) => self.dependency_down(failure).await,
            _ => false,
        };
        let waits = header_u32(delivery.properties.headers().as_ref(), HEADER_WAITS).unwrap_or(0);
        let settled = match settle(outcome, attempt, waits, dependency_down, &self.ladder) {
            Settlement::Ack => ack(&delivery).await,
            Settlement::GiveBack => {
                tracing::info!("load aborted by shutdown; event returned to the queue");
                nack(&delivery, true).await
            }
            Settlement::Delay { delay, reason } => {
                tracing::info!(%reason, delay_s = delay.as_secs(), "event delayed");
                self.delay(&delivery, delay, attempt).await
            }
            Settlement::WaitForDependency {
                delay,
                waits,
                failure,
            } => {
                DependencyWait {
                    failure: &failure,
                    delay_s: delay.as_secs(),
                    attempt,
                    waits,
                }
                .emit(&recorder);
                self.delay_with(&delivery, delay, attempt, Some(waits))
                    .await
            }
            Settlement::Retry {
                attempt: next,
                delay,
                failure,
            } => {
                Retried {
                    fields: event_fields(&delivery.data),
                    attempt: next,
                    delay_s: delay.as_secs(),
                    code: failure.code,
                }
                .emit(&recorder)
                .await;
                self.delay(&delivery, delay, next).await
            }
            Settlement::Park(failure) => {
                Parked {
                    fields: event_fields(&delivery.data),
                    code: failure.code,
                }
                .emit(&recorder)
                .await;
                self.park(&delivery, &failure, attempt).await
            }
        };
        if let Err(e) = settled {
            // The delivery stays unacked; the broker redelivers it when the
            // channel closes. Effects are idempotent, so that is safe.
            tracing::error!(error = %e, "could not settle the delivery");
        }
    }

    /// Republishes to the delay queue (same body, same properties, `attempt`
    /// header set), then acks the original.
    async fn delay(
        &self,
        delivery: &Delivery,
        delay: Duration,
        attempt: u32,
    ) -> anyhow::Result<()> {
        self.delay_with(delivery, delay, attempt, None).await
    }

    /// [`Consumer::delay`], with the count of dependency waits set when given.
    async fn delay_with(
        &self,
        delivery: &Delivery,
        delay: Duration,
        attempt: u32,
        waits: Option<u32>,
    ) -> anyhow::Result<()> {
        let delay = self.topology.delay_for(delay);
        let (_, key) = self.topology.delay_queue(delay);
        let mut props = republished(delivery, attempt, &[]);
        if let Some(waits) = waits {
            let mut headers = props.headers().clone().unwrap_or_default();
            headers.insert(
                ShortString::from(HEADER_WAITS),
                AMQPValue::LongInt(waits.try_into().unwrap_or(i32::MAX)),
            );
            props = props.with_headers(headers);
        }
        match self
            .publisher
            .publish(&self.topology.delay_exchange, &key, &delivery.data, props)
            .await
        {
            Ok(()) => ack(delivery).await,
            Err(e) => {
                tracing::warn!(error = %e, "could not republish to the delay queue; requeueing directly");
                tokio::time::sleep(Duration::from_secs(1)).await;
                nack(delivery, true).await
            }
        }
    }

    /// Publishes to the parking queue with the failure as headers, then acks.
    async fn park(
        &self,
        delivery: &Delivery,
        failure: &Failure,
        attempt: u32,
    ) -> anyhow::Result<()> {
        tracing::warn!(code = %failure.code, class = failure.class.as_str(), error = %failure.message, attempts = attempt + 1, "event parked in the dead-letter queue");
        let message: String = failure.message.chars().take(4000).collect();
        let failed_at = chrono::Utc::now().to_rfc3339();
        let props = republished(
            delivery,
            attempt,
            &[
                (topology::HEADER_REASON, failure.code.as_str()),
                (topology::HEADER_ERROR_CLASS, failure.class.as_str()),
                (topology::HEADER_ERROR, &message),
                (topology::HEADER_WORKER, &self.pipeline.worker_id),
                (topology::HEADER_HOST, &self.host),
                (topology::HEADER_FAILED_AT, &failed_at),
            ],
        );
        match self
            .publisher
            .publish(&self.topology.dead_exchange, "", &delivery.data, props)
            .await
        {
            Ok(()) => ack(delivery).await,
            // The work queue's dead-letter exchange still parks it, without our headers.
            Err(e) => {
                tracing::warn!(error = %e, "could not publish to the parking queue; rejecting to the dead-letter exchange");
                nack(delivery, false).await
            }
        }
    }
}

/// The delivery's properties for a republished copy: its headers (trace
/// context included) with the attempt count and `extra` text headers set,
/// and without RabbitMQ's growing `x-death` history.
fn republished(
    delivery: &Delivery,
    attempt: u32,
    extra: &[(&str, &str)],
) -> lapin::BasicProperties {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ShortString::from(topology::HEADER_ATTEMPT),
        AMQPValue::LongInt(attempt.try_into().unwrap_or(i32::MAX)),
    );
    for (name, value) in extra {
        headers.insert(
            ShortString::from(*name),
            AMQPValue::LongString(LongString::from(*value)),
        );
    }
    strip_x_death(&mut headers);
    delivery.properties.clone().with_headers(headers)
}

/// Customer, snapshot and event id of a body, as far as it is readable (a
/// malformed event has none), for audit entries.
fn event_fields(body: &[u8]) -> Vec<(&'static str, String)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(c) = v
        .get("customer")
        .and_then(|c| c.as_str())
        .filter(|c| common::ident::Customer::parse(c).is_ok())
    {
        out.push(("customer", c.to_owned()));
    }
    for key in ["snapshot_id", "event_id"] {
        if let Some(x) = v.get(key) {
            out.push((
                key,
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string()),
            ));
        }
    }
    out
}

/// `x-death` grows with every pass through a delay queue; the attempt header
/// already counts what matters.
fn strip_x_death(headers: &mut FieldTable) {
    let kept: Vec<(ShortString, AMQPValue)> = headers
        .inner()
        .iter()
        .filter(|(k, _)| {
            !k.as_str().starts_with("x-death")
                && !k.as_str().starts_with("x-first-death")
                && !k.as_str().starts_with("x-last-death")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut fresh = FieldTable::default();
    for (k, v) in kept {
        fresh.insert(k, v);
    }
    *headers = fresh;
}

async fn ack(delivery: &Delivery) -> anyhow::Result<()> {
    if !delivery.ack(BasicAckOptions::default()).await? {
        // Its channel closed (broker restart, consumer_timeout): the broker
        // redelivers the event, and the redelivery finds the work done.
        tracing::warn!(
            "delivery could not be acknowledged (its channel closed); the broker will redeliver it"
        );
    }
    Ok(())
}

async fn nack(delivery: &Delivery, requeue: bool) -> anyhow::Result<()> {
    let done = delivery
        .nack(BasicNackOptions {
            requeue,
            ..BasicNackOptions::default()
        })
        .await?;
    if !done {
        tracing::warn!(
            "delivery could not be rejected (its channel closed); the broker will redeliver it"
        );
    }
    Ok(())
}
