//! Publishing snapshot events: one [`Announcer`] shared by `publish`,
//! `backfill` and `watch`. It remembers in Redis what was published, so a
//! restarted producer, or a second one, does not publish a snapshot again.
//!
//! Many snapshots at once (`backfill`, a rescan) go through
//! [`Announcer::publish_many`]: up to [`PUBLISH_IN_FLIGHT`] publishes are
//! outstanding on the one confirm-mode channel, so confirms are awaited
//! together instead of one round trip at a time. Each snapshot still counts
//! as published only after its own confirm, and only after it won its
//! publish-once claim.

use common::broker::{event_properties, Publisher};
use common::event::SnapshotEvent;
use common::ident::{Customer, SnapshotId};
use common::state::FleetState;
use common::topology::{Topology, ROUTING_KEY};
use futures_util::stream::{self, StreamExt};
use lapin::types::FieldTable;
use tracing::Instrument;

/// Publishes awaiting their confirms at once in [`Announcer::publish_many`].
pub const PUBLISH_IN_FLIGHT: usize = 1024;

pub struct Announcer {
    /// Kept open for the publisher's channel.
    pub connection: std::sync::Arc<lapin::Connection>,
    pub publisher: Publisher,
    pub topology: Topology,
    pub state: FleetState,
    pub metrics: std::sync::Arc<common::metrics::Metrics>,
}

/// What happened to one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    Published,
    /// Published before (or being published by another producer right now).
    AlreadyPublished,
}

impl Announcer {
    /// Publishes one event unconditionally (the ETL's explicit request) and
    /// remembers it.
    pub async fn publish(
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
            self.publisher
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
        if let Err(e) = published {
            self.metrics.publish_failures.inc();
            return Err(e.into());
        }
        self.metrics.published.inc();
        self.state.confirm_published(customer, snapshot).await?;
        let _ = self
            .state
            .audit(
                "published",
                &[
                    ("customer", customer.to_string()),
                    ("snapshot_id", snapshot.to_string()),
                    ("event_id", event.event_id.to_string()),
                    ("priority", priority.to_string()),
                ],
            )
            .await;
        tracing::info!(%customer, %snapshot, priority, event_id = %event.event_id, "published");
        Ok(event)
    }

    /// Publishes unless this snapshot was published already.
    pub async fn publish_once(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
        priority: u8,
    ) -> anyhow::Result<Announced> {
        if !self.state.claim_publish(customer, snapshot).await? {
            return Ok(Announced::AlreadyPublished);
        }
        match self.publish(customer, snapshot, priority).await {
            Ok(_) => Ok(Announced::Published),
            Err(e) => {
                let _ = self.state.release_claim(customer, snapshot).await;
                Err(e)
            }
        }
    }

    /// [`Self::publish_once`] for each `(customer, snapshot, priority)`, up
    /// to [`PUBLISH_IN_FLIGHT`] at a time. Every item is tried, even after a
    /// failure (a publish is never abandoned between its claim and its
    /// confirm); returns how many were published, or the first error.
    /// `done` is called once per item.
    pub async fn publish_many(
        &self,
        items: impl IntoIterator<Item = (Customer, SnapshotId, u8)>,
        done: impl Fn(),
    ) -> anyhow::Result<usize> {
        let mut results = stream::iter(items)
            .map(|(customer, snapshot, priority)| async move {
                let r = self.publish_once(&customer, snapshot, priority).await;
                if let Err(e) = &r {
                    tracing::warn!(%customer, %snapshot, error = %e, "publish failed");
                }
                r
            })
            .buffer_unordered(PUBLISH_IN_FLIGHT);
        let mut published = 0;
        let mut first_error = None;
        while let Some(result) = results.next().await {
            done();
            match result {
                Ok(Announced::Published) => published += 1,
                Ok(Announced::AlreadyPublished) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }
}
