//! RabbitMQ adapter: connect (within a deadline, then with lapin's automatic recovery),
//! declare the [`Topology`] idempotently, publish with publisher confirms.
//! Nothing here decides anything; callers choose what to publish where.

use std::path::Path;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use thiserror::Error;

use crate::adapters::secret::ServiceUrl;
use crate::contract::topology::Topology;

/// Why talking to RabbitMQ failed.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("cannot connect to RabbitMQ at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("RabbitMQ refused to declare {what}: {source} (if it says PRECONDITION_FAILED, the existing object was declared with other arguments)")]
    Declare { what: String, source: lapin::Error },
    #[error("RabbitMQ TLS settings: {0}")]
    Tls(String),
    #[error("RabbitMQ error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm the message (nack)")]
    Nacked,
    #[error("RabbitMQ did not confirm the message within {0:?} (connection lost or recovering); it may or may not have been delivered")]
    ConfirmTimeout(std::time::Duration),
    #[error("message to exchange `{exchange}` with routing key `{routing_key}` was not routed to any queue")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
}

/// Connects within [`crate::adapters::state::DEFAULT_CONNECT_TIMEOUT`] and enables
/// lapin's automatic connection recovery. `amqps://` trusts the system's
/// certificate store.
pub async fn connect(url: &ServiceUrl, name: &str) -> Result<Connection, BrokerError> {
    connect_tls(url, name, None).await
}

/// [`connect`] with `amqps://` trusting the CA certificate(s) in `ca` (the
/// `amqp_ca_file` key).
pub async fn connect_tls(
    url: &ServiceUrl,
    name: &str,
    ca: Option<&Path>,
) -> Result<Connection, BrokerError> {
    connect_within(
        url,
        name,
        ca,
        crate::adapters::state::DEFAULT_CONNECT_TIMEOUT,
    )
    .await
}

/// Connects within `timeout`, then keeps the connection recovering by
/// itself. lapin's recovery also retries the *first* connect, for minutes
/// (16 tries with growing pauses), so the first contact is made without it:
/// a check connection, tried until the deadline and closed, then the
/// connection that is kept, with recovery, cut at the deadline too. The
/// error names the URL (password hidden) and the last reason.
pub async fn connect_within(
    url: &ServiceUrl,
    name: &str,
    ca: Option<&Path>,
    timeout: std::time::Duration,
) -> Result<Connection, BrokerError> {
    let tls = crate::adapters::tls::amqp_tls(ca).map_err(BrokerError::Tls)?;
    let redacted = url.redacted();
    let failed = |reason: String| BrokerError::Connect {
        url: redacted.clone(),
        reason,
    };
    let start = std::time::Instant::now();
    let attempt = |recover: bool| {
        let tls = tls.clone();
        async move {
            let mut props =
                ConnectionProperties::default().with_connection_name(LongString::from(name));
            if recover {
                // Recovery never gives up (lapin's default stops after 16
                // tries, about 11 minutes): an outage of any length is
                // waited out, reconnecting within 30 s of the broker's return.
                props = props
                    .with_backoff(
                        backon::ExponentialBuilder::default()
                            .with_min_delay(std::time::Duration::from_secs(1))
                            .with_max_delay(std::time::Duration::from_secs(30))
                            .without_max_times(),
                    )
                    .enable_auto_recover();
            }
            let runtime = lapin::runtime::default_runtime()?;
            Connection::connect_with_config(url.expose(), props, tls, runtime).await
        }
    };
    let check =
        crate::adapters::state::within_deadline("RabbitMQ", &redacted, timeout, || attempt(false))
            .await
            .map_err(failed)?;
    check.close(200, "connection check".into()).await.ok();
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(std::time::Duration::from_secs(1));
    crate::adapters::state::within_deadline("RabbitMQ", &redacted, left, || attempt(true))
        .await
        .map_err(failed)
}

/// Where RabbitMQ is and how long a first connection may take; the
/// configuration layer builds it (`From<&Config>`).
#[derive(Debug, Clone)]
pub struct AmqpOptions {
    /// The broker URL (`amqp://` or `amqps://`); may carry a password.
    pub url: ServiceUrl,
    /// CA file for `amqps://` (`None`: the system's trust store).
    pub ca_file: Option<std::path::PathBuf>,
    /// The deadline of the first connection (`connect_timeout`).
    pub connect_timeout: std::time::Duration,
}

/// Connects to the RabbitMQ `options` name (its URL and CA file) within its
/// `connect_timeout`. Takes a `&Config` too (the configuration layer
/// converts it).
pub async fn connect_config(
    options: impl Into<AmqpOptions>,
    name: &str,
) -> Result<Connection, BrokerError> {
    let options = options.into();
    connect_within(
        &options.url,
        name,
        options.ca_file.as_deref(),
        options.connect_timeout,
    )
    .await
}

/// How long a connection may stay in lapin's automatic recovery before its
/// owner gives up on it: lapin's recovery can hang for good after a broker
/// restart with publishes in flight (amqp-rs/lapin#450; reproduced by
/// `tests/tests/outage.rs`). The producer then opens a new connection
/// ([`SharedConnection::replace`]); the worker's consumer stops waiting and
/// replaces its channel, and exits when that keeps failing (its supervisor
/// starts it again).
pub const RECOVERY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// How long a connection has not been up, fed one observation at a time;
/// says when that reaches [`RECOVERY_PATIENCE`].
#[derive(Debug, Default)]
pub struct DownClock(Option<std::time::Instant>);

impl DownClock {
    /// Feeds whether the connection is up now; true once it has been down
    /// for [`RECOVERY_PATIENCE`] without a break.
    pub fn overdue(&mut self, connected: bool) -> bool {
        if connected {
            self.0 = None;
            return false;
        }
        self.0.get_or_insert_with(std::time::Instant::now).elapsed() >= RECOVERY_PATIENCE
    }

    /// How long it has been down (zero when up).
    pub fn down_for(&self) -> std::time::Duration {
        self.0.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Starts over (a new connection is up).
    pub fn reset(&mut self) {
        self.0 = None;
    }
}

/// Where and how to open a connection again: the broker's options and the
/// connection's name.
#[derive(Debug, Clone)]
pub struct BrokerAddress {
    /// URL, CA file and first-connection deadline.
    pub options: AmqpOptions,
    /// The connection name the broker shows.
    pub name: String,
}

impl BrokerAddress {
    /// A new connection ([`connect_config`]).
    pub async fn connect(&self) -> Result<Connection, BrokerError> {
        connect_config(self.options.clone(), &self.name).await
    }
}

/// A process's current broker connection, which its owner may replace (see
/// [`RECOVERY_PATIENCE`]); readers always see the current one.
#[derive(Clone)]
pub struct SharedConnection(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Connection>>>);

impl SharedConnection {
    /// Shares `connection`.
    pub fn new(connection: std::sync::Arc<Connection>) -> Self {
        SharedConnection(std::sync::Arc::new(std::sync::RwLock::new(connection)))
    }

    /// The current connection.
    pub fn get(&self) -> std::sync::Arc<Connection> {
        match self.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `connection` in place of the current one and closes the old one
    /// in the background (at most 5 s: a hung recovery may never answer).
    pub fn replace(&self, connection: std::sync::Arc<Connection>) {
        let old = match self.0.write() {
            Ok(mut c) => std::mem::replace(&mut *c, connection),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), connection),
        };
        tokio::spawn(async move {
            // Best effort: the old connection may never answer.
            drop(
                tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    old.close(200, "replaced: recovery did not finish".into()),
                )
                .await,
            );
        });
    }
}

/// Declares every exchange, queue and binding of `topology`. Safe to call from
/// every process on every start.
pub async fn declare(channel: &Channel, topology: &Topology) -> Result<(), BrokerError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let exchanges = [
        (&topology.events_exchange, ExchangeKind::Direct),
        (&topology.delay_exchange, ExchangeKind::Direct),
        (&topology.dead_exchange, ExchangeKind::Fanout),
    ];
    for (name, kind) in exchanges {
        channel
            .exchange_declare(
                ShortString::from(name.as_str()),
                kind,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|source| BrokerError::Declare {
                what: format!("exchange `{name}`"),
                source,
            })?;
    }
    let mut queues = vec![
        (
            topology.work_queue.clone(),
            topology.work_queue_args(),
            topology.events_exchange.clone(),
            crate::contract::topology::ROUTING_KEY.to_owned(),
        ),
        (
            topology.dead_queue.clone(),
            FieldTable::default(),
            topology.dead_exchange.clone(),
            String::new(),
        ),
    ];
    for delay in &topology.delays {
        let (queue, key) = topology.delay_queue(*delay);
        queues.push((
            queue,
            topology.delay_queue_args(*delay),
            topology.delay_exchange.clone(),
            key,
        ));
    }
    for (queue, args, exchange, key) in queues {
        channel
            .queue_declare(
                ShortString::from(queue.as_str()),
                QueueDeclareOptions::durable(),
                args,
            )
            .await
            .map_err(|source| BrokerError::Declare {
                what: format!("queue `{queue}`"),
                source,
            })?;
        channel
            .queue_bind(
                ShortString::from(queue.as_str()),
                ShortString::from(exchange.as_str()),
                ShortString::from(key.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| BrokerError::Declare {
                what: format!("binding `{exchange}` -> `{queue}`"),
                source,
            })?;
    }
    Ok(())
}

/// Messages ready in `queue` (passive declare: fails if it does not exist).
pub async fn queue_depth(channel: &Channel, queue: &str) -> Result<u32, BrokerError> {
    let q = channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// A channel in confirm mode. Every `publish` waits for the broker's confirm
/// and fails on a nack or when nothing was routed.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// A confirm-mode channel on `connection`.
    pub async fn new(connection: &Connection) -> Result<Self, BrokerError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher { channel })
    }

    /// The channel the publisher publishes on.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes and waits for the broker's confirm, at most
    /// [`CONFIRM_TIMEOUT`]: a publish caught in a connection loss may never
    /// be confirmed or refused, and must not hang its caller (the message
    /// may still have been delivered; consumers are idempotent).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        tokio::time::timeout(
            CONFIRM_TIMEOUT,
            self.publish_confirmed(exchange, routing_key, body, properties),
        )
        .await
        .map_err(|_| BrokerError::ConfirmTimeout(CONFIRM_TIMEOUT))?
    }

    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(BrokerError::Nacked);
        }
        if confirm.take_message().is_some() {
            return Err(BrokerError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            });
        }
        Ok(())
    }
}

/// How long a publish waits for its confirm.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Properties of a snapshot event: persistent, JSON, typed, with its priority
/// and the event id as message id.
pub fn event_properties(
    event: &crate::contract::event::SnapshotEvent,
    headers: FieldTable,
) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_type(ShortString::from(crate::contract::event::MESSAGE_TYPE))
        .with_message_id(ShortString::from(event.event_id.to_string()))
        .with_priority(event.priority)
        .with_timestamp(u64::try_from(event.created_at.timestamp()).unwrap_or(0))
        .with_headers(headers)
}

/// Reads an integer header whatever width the broker encoded it with.
pub fn header_u32(headers: Option<&FieldTable>, name: &str) -> Option<u32> {
    let value = headers?.inner().get(name)?;
    let n: i64 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => *v,
        _ => return None,
    };
    u32::try_from(n).ok()
}

/// Reads a string header.
pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod down_clock_tests {
    use super::DownClock;

    #[test]
    fn down_clock_counts_only_an_unbroken_outage() {
        let mut d = DownClock::default();
        assert!(!d.overdue(true));
        assert_eq!(d.down_for(), std::time::Duration::ZERO);
        assert!(!d.overdue(false), "not overdue the moment it goes down");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(d.down_for() > std::time::Duration::ZERO);
        assert!(!d.overdue(true), "up again: the outage is over");
        assert_eq!(d.down_for(), std::time::Duration::ZERO);
        assert!(!d.overdue(false));
        d.reset();
        assert_eq!(d.down_for(), std::time::Duration::ZERO);
    }
}
