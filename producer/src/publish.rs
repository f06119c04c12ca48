//! Publishing snapshot events: one [`Announcer`] shared by `publish`,
//! `backfill` and `watch`. It remembers in Redis what was published
//! (`common::claims`), so a restarted producer, or a second one, does not
//! publish a snapshot again.
//!
//! Many snapshots at once (`backfill`, a rescan) go through
//! [`Announcer::publish_many`] in batches of [`PUBLISH_IN_FLIGHT`]: one
//! Redis call claims the batch, its publishes are outstanding together on the
//! one confirm-mode channel, one call records the confirmed ones. Each
//! snapshot still counts as published only after its own confirm, and only
//! after it won its publish-once claim. A claim this process left behind (its
//! release lost to a Redis restart) is taken again by its next scan.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use common::broker::{event_properties, BrokerAddress, DownClock, Publisher, SharedConnection};
use common::claims::{Claim, PublishLedger, Published};
use common::event::SnapshotEvent;
use common::ident::{Customer, SnapshotId};
use common::state::FleetState;
use common::topology::{Topology, ROUTING_KEY};
use futures_util::stream::{self, StreamExt};
use lapin::types::FieldTable;
use tracing::Instrument;

/// Publishes awaiting their confirms at once in [`Announcer::publish_many`],
/// and snapshots claimed and recorded per Redis call.
pub const PUBLISH_IN_FLIGHT: usize = 1024;

/// One snapshot to announce: customer, snapshot id, priority.
type Item = (Customer, SnapshotId, u8);

/// Publishes snapshot events and remembers them (see the module docs).
pub struct Announcer {
    /// The current broker connection (replaced when lapin's recovery hangs).
    pub connection: SharedConnection,
    /// Where events go.
    pub topology: Topology,
    /// The fleet state (for the status reporter).
    pub state: FleetState,
    /// This process's metrics (`published`, `publish_failures`).
    pub metrics: Arc<common::metrics::Metrics>,
    /// The confirm-mode channel on the current connection.
    publisher: RwLock<Publisher>,
    /// How to open a new connection.
    address: BrokerAddress,
    /// Since when the connection has not been up.
    down: Mutex<DownClock>,
    /// Held while a new connection is being opened: one at a time.
    healing: tokio::sync::Mutex<()>,
    /// The publish-once claims and records of this process.
    ledger: PublishLedger,
    /// Snapshots this process is publishing right now: its own claims on
    /// them are in use, not left behind.
    in_flight: Mutex<HashSet<(Customer, SnapshotId)>>,
}

/// What happened to one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// Published now.
    Published,
    /// Published before (or being published by another producer right now).
    AlreadyPublished,
}

impl Announcer {
    /// An announcer publishing on `publisher` (a channel of `connection`),
    /// able to open a new connection at `address`.
    pub fn new(
        connection: Arc<lapin::Connection>,
        publisher: Publisher,
        address: BrokerAddress,
        topology: Topology,
        state: FleetState,
        metrics: Arc<common::metrics::Metrics>,
    ) -> Self {
        let ledger = PublishLedger::new(state.connection(), state.keys().clone());
        Announcer {
            connection: SharedConnection::new(connection),
            topology,
            state,
            metrics,
            publisher: RwLock::new(publisher),
            address,
            down: Mutex::new(DownClock::default()),
            healing: tokio::sync::Mutex::new(()),
            ledger,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    fn publisher(&self) -> Publisher {
        match self.publisher.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Watches the connection every second until `stop` and heals it
    /// ([`Self::heal`]) when it stays down: a long-running producer's
    /// publishes do not wait for a recovery that never ends.
    pub async fn keep_connection(&self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.heal().await,
            }
        }
    }

    /// If the connection has not been up for [`common::broker::RECOVERY_PATIENCE`], stops
    /// waiting for lapin's recovery (it can hang for good) and opens a new
    /// connection and channel.
    async fn heal(&self) {
        let connected = self.connection.get().status().connected();
        let down_for = match self.down.lock() {
            Ok(mut d) => d.overdue(connected).then(|| d.down_for()),
            Err(_) => None,
        };
        let Some(down_for) = down_for else {
            return;
        };
        let Ok(_one_at_a_time) = self.healing.try_lock() else {
            return;
        };
        tracing::warn!(
            down_s = down_for.as_secs(),
            "the RabbitMQ connection has not recovered; opening a new one"
        );
        let fresh = async {
            let connection = self.address.connect().await?;
            let publisher = Publisher::new(&connection).await?;
            Ok::<_, common::broker::BrokerError>((connection, publisher))
        }
        .await;
        match fresh {
            Ok((connection, publisher)) => {
                if let Ok(mut p) = self.publisher.write() {
                    *p = publisher;
                }
                self.connection.replace(Arc::new(connection));
                if let Ok(mut d) = self.down.lock() {
                    d.reset();
                }
                tracing::info!("new RabbitMQ connection open; publishing again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "opening a new RabbitMQ connection failed; the next scan tries again")
            }
        }
    }

    /// Sends one event and waits for its confirm; records nothing.
    async fn send(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
        priority: u8,
    ) -> anyhow::Result<SnapshotEvent> {
        let event = SnapshotEvent::new(customer.clone(), snapshot, priority)?;
        let span = tracing::info_span!(
            "publish",
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation = "publish",
            messaging.destination.name = %self.topology.events_exchange,
            messaging.message.id = %event.event_id,
            customer = %customer,
            snapshot_id = %snapshot,
        );
        let published = async {
            // The W3C trace context travels in the message headers.
            let mut headers = FieldTable::default();
            common::otel::inject(&tracing::Span::current(), &mut headers);
            self.publisher()
                .publish(
                    &self.topology.events_exchange,
                    ROUTING_KEY,
                    &event.encode(),
                    event_properties(&event, headers),
                )
                .await
        }
        .instrument(span)
        .await;
        match published {
            Ok(()) => {
                self.metrics.published.inc();
                Ok(event)
            }
            Err(e) => {
                self.metrics.publish_failures.inc();
                Err(e.into())
            }
        }
    }

    /// Records confirmed events in the ledger, then logs each.
    async fn record(&self, events: &[SnapshotEvent]) -> anyhow::Result<()> {
        let done: Vec<Published> = events
            .iter()
            .map(|e| Published {
                customer: e.customer.clone(),
                snapshot: e.snapshot_id,
                event_id: e.event_id.to_string(),
                priority: e.priority,
            })
            .collect();
        self.ledger.record(&done).await?;
        for e in events {
            tracing::info!(customer = %e.customer, snapshot = %e.snapshot_id, priority = e.priority, event_id = %e.event_id, "published");
        }
        Ok(())
    }

    /// Publishes one event unconditionally (the ETL's explicit request) and
    /// remembers it.
    pub async fn publish(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
        priority: u8,
    ) -> anyhow::Result<SnapshotEvent> {
        let event = self.send(customer, snapshot, priority).await?;
        self.record(std::slice::from_ref(&event)).await?;
        Ok(event)
    }

    /// Publishes unless this snapshot was published already.
    pub async fn publish_once(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
        priority: u8,
    ) -> anyhow::Result<Announced> {
        let n = self
            .publish_many([(customer.clone(), snapshot, priority)], || {})
            .await?;
        Ok(if n == 1 {
            Announced::Published
        } else {
            Announced::AlreadyPublished
        })
    }

    /// [`Self::publish_once`] for each `(customer, snapshot, priority)`, in
    /// batches of [`PUBLISH_IN_FLIGHT`]: one Redis call claims a batch, its
    /// publishes await their confirms together, one call records the
    /// confirmed ones and one releases the claims of those that failed.
    /// Every item is tried, even after a failure; returns how many were
    /// published, or the first error. `done` is called once per item.
    pub async fn publish_many(
        &self,
        items: impl IntoIterator<Item = Item>,
        done: impl Fn(),
    ) -> anyhow::Result<usize> {
        let items: Vec<Item> = items.into_iter().collect();
        let mut published = 0;
        let mut first_error = None;
        for batch in items.chunks(PUBLISH_IN_FLIGHT) {
            match self.publish_batch(batch).await {
                Ok(n) => published += n,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            for _ in batch {
                done();
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    async fn publish_batch(&self, batch: &[Item]) -> anyhow::Result<usize> {
        let keys: Vec<(Customer, SnapshotId)> =
            batch.iter().map(|(c, s, _)| (c.clone(), *s)).collect();
        let claims = self.ledger.claim(&keys).await?;
        // Claimed now, or claimed by this process before and not in use:
        // a claim whose release was lost is taken again, not waited out.
        let mine: Vec<&Item> = {
            let mut in_flight = self
                .in_flight
                .lock()
                .map_err(|_| anyhow::anyhow!("publish bookkeeping poisoned"))?;
            batch
                .iter()
                .zip(claims)
                .filter(|((c, s, _), claim)| {
                    matches!(claim, Claim::Claimed | Claim::Ours)
                        && in_flight.insert((c.clone(), *s))
                })
                .map(|(item, _)| item)
                .collect()
        };
        if mine.is_empty() {
            return Ok(0);
        }
        let results: Vec<(&Item, anyhow::Result<SnapshotEvent>)> =
            stream::iter(mine.iter().copied())
                .map(|item| async move { (item, self.send(&item.0, item.1, item.2).await) })
                .buffer_unordered(PUBLISH_IN_FLIGHT)
                .collect()
                .await;
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        for ((customer, snapshot, _), result) in results {
            match result {
                Ok(event) => sent.push(event),
                Err(e) => {
                    tracing::warn!(
                        %customer,
                        %snapshot,
                        error = %e,
                        connection_up = self.connection.get().status().connected(),
                        "publish failed"
                    );
                    failed.push((customer.clone(), *snapshot));
                    first_error.get_or_insert(e);
                }
            }
        }
        if !failed.is_empty() {
            self.heal().await;
        }
        let recorded = self.record(&sent).await;
        if let Err(e) = self.ledger.release(&failed).await {
            tracing::warn!(error = %e, claims = failed.len(), "releasing publish claims failed; this producer retakes them at its next scan, another one after their TTL");
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            for (c, s, _) in &mine {
                in_flight.remove(&(c.clone(), *s));
            }
        }
        // Confirmed but not recorded: the claims stay this producer's and
        // its next scan publishes them again (workers are idempotent).
        recorded?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }
}
