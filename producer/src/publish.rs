//! Publishing snapshot events: one [`Announcer`] shared by `publish`,
//! `backfill` and `watch`. It remembers in Redis what was published, so a
//! restarted producer, or a second one, does not publish a snapshot again.

use common::broker::{event_properties, Publisher};
use common::event::SnapshotEvent;
use common::ident::{Customer, SnapshotId};
use common::state::FleetState;
use common::topology::{Topology, ROUTING_KEY};
use lapin::types::FieldTable;
use tracing::Instrument;

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
}
