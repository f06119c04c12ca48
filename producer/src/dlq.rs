//! `producer dlq`: the operator's view of the parking (dead-letter) queue.
//!
//! - `list`: takes every parked message without acknowledging it, prints it,
//!   then hands all of them back (nack with requeue), so listing loses nothing;
//! - `replay`: republishes the selected messages to the events exchange with
//!   their original body and priority and a reset attempt count, then removes
//!   them from the parking queue (only after the broker confirmed the copy);
//! - `purge`: empties the parking queue.

use std::collections::BTreeMap;

use common::broker::{header_str, header_u32, Publisher};
use common::topology::{self, Topology, ROUTING_KEY};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueuePurgeOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use serde::Serialize;

/// One parked message, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    /// The event's id.
    pub event_id: Option<String>,
    /// The event's customer.
    pub customer: Option<String>,
    /// The event's snapshot.
    pub snapshot_id: Option<u64>,
    /// The event's priority.
    pub priority: Option<u8>,
    /// The failure code (`x-snapswitch-reason`).
    pub reason: Option<String>,
    /// `transient` or `permanent`.
    pub error_class: Option<String>,
    /// The failure message.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: Option<u32>,
    /// The worker that parked it.
    pub worker: Option<String>,
    /// Its host.
    pub host: Option<String>,
    /// When (RFC 3339).
    pub failed_at: Option<String>,
    /// The body when it is not a JSON object (malformed events).
    pub body: Option<String>,
    /// The whole body (lossy UTF-8), for the console's inspect view.
    #[serde(skip)]
    pub raw_body: String,
    /// Every header, as text, for the console's inspect view.
    #[serde(skip)]
    pub headers: BTreeMap<String, String>,
}

impl Parked {
    fn from_message(msg: &BasicGetMessage) -> Self {
        let headers = msg.delivery.properties.headers().as_ref();
        let json: Option<serde_json::Value> = serde_json::from_slice(&msg.delivery.data)
            .ok()
            .filter(|v: &serde_json::Value| v.is_object());
        let field = |k: &str| json.as_ref().and_then(|v| v.get(k)).cloned();
        Parked {
            event_id: field("event_id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .or_else(|| {
                    msg.delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                }),
            customer: field("customer").and_then(|v| v.as_str().map(str::to_owned)),
            snapshot_id: field("snapshot_id").and_then(|v| v.as_u64()),
            priority: *msg.delivery.properties.priority(),
            reason: header_str(headers, topology::HEADER_REASON),
            error_class: header_str(headers, topology::HEADER_ERROR_CLASS),
            error: header_str(headers, topology::HEADER_ERROR),
            attempts: header_u32(headers, topology::HEADER_ATTEMPT).map(|a| a + 1),
            worker: header_str(headers, topology::HEADER_WORKER),
            host: header_str(headers, topology::HEADER_HOST),
            failed_at: header_str(headers, topology::HEADER_FAILED_AT),
            raw_body: String::from_utf8_lossy(&msg.delivery.data).into_owned(),
            headers: headers
                .map(|h| {
                    h.inner()
                        .iter()
                        .map(|(k, v)| (k.to_string(), header_text(v)))
                        .collect()
                })
                .unwrap_or_default(),
            body: json.is_none().then(|| {
                String::from_utf8_lossy(&msg.delivery.data)
                    .chars()
                    .take(200)
                    .collect()
            }),
        }
    }
}

/// A header value as text.
fn header_text(v: &lapin::types::AMQPValue) -> String {
    use lapin::types::AMQPValue;
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// Which parked messages `replay` (and the console's delete) takes.
#[derive(Debug, Clone)]
pub enum Selection {
    /// The event with this event id.
    Id(String),
    /// Every parked event of this customer.
    Customer(String),
    /// Every parked event.
    All,
    /// These event ids.
    Ids(Vec<String>),
    /// Every message the filter matches.
    Filter(Filter),
}

/// The console's parked-events filter; an empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this customer's.
    pub customer: Option<String>,
    /// Only this failure code.
    pub reason: Option<String>,
    /// Parked at least this many seconds ago.
    pub min_age_seconds: Option<i64>,
}

impl Filter {
    /// Whether `p` passes, at `now`. A message without a parse-able
    /// `failed_at` fails an age filter (its age is unknown).
    pub fn matches(&self, p: &Parked, now: chrono::DateTime<chrono::Utc>) -> bool {
        let customer = self
            .customer
            .as_deref()
            .is_none_or(|c| p.customer.as_deref() == Some(c));
        let reason = self
            .reason
            .as_deref()
            .is_none_or(|r| p.reason.as_deref() == Some(r));
        let age = self.min_age_seconds.is_none_or(|min| {
            p.failed_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds() >= min)
        });
        customer && reason && age
    }
}

impl Selection {
    fn matches(&self, p: &Parked) -> bool {
        match self {
            Selection::Id(id) => p.event_id.as_deref() == Some(id.as_str()),
            Selection::Customer(c) => p.customer.as_deref() == Some(c.as_str()),
            Selection::All => true,
            Selection::Ids(ids) => p.event_id.as_ref().is_some_and(|id| ids.contains(id)),
            Selection::Filter(f) => f.matches(p, chrono::Utc::now()),
        }
    }
}

/// Takes every message currently in the parking queue, unacknowledged.
async fn take_all(channel: &Channel, queue: &str) -> anyhow::Result<Vec<BasicGetMessage>> {
    let depth = common::broker::queue_depth(channel, queue).await?;
    let mut taken = Vec::new();
    for _ in 0..depth {
        match channel
            .basic_get(ShortString::from(queue), BasicGetOptions { no_ack: false })
            .await?
        {
            Some(msg) => taken.push(msg),
            None => break,
        }
    }
    Ok(taken)
}

async fn give_back(messages: &[BasicGetMessage]) -> anyhow::Result<()> {
    for msg in messages {
        msg.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await?;
    }
    Ok(())
}

/// Every parked event, with its headers read (nothing is removed).
pub async fn list(connection: &Connection, topology: &Topology) -> anyhow::Result<Vec<Parked>> {
    let channel = connection.create_channel().await?;
    let taken = take_all(&channel, &topology.dead_queue).await?;
    let parked = taken.iter().map(Parked::from_message).collect();
    give_back(&taken).await?;
    Ok(parked)
}

/// Replays the selected messages; returns how many.
pub async fn replay(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
) -> anyhow::Result<usize> {
    let channel = connection.create_channel().await?;
    let publisher = Publisher::new(connection).await?;
    let taken = take_all(&channel, &topology.dead_queue).await?;
    let mut replayed = 0;
    let mut keep = Vec::new();
    for msg in taken {
        let parked = Parked::from_message(&msg);
        if !selection.matches(&parked) {
            keep.push(msg);
            continue;
        }
        let props = msg
            .delivery
            .properties
            .clone()
            .with_headers(replay_headers(msg.delivery.properties.headers().as_ref()));
        match publisher
            .publish(
                &topology.events_exchange,
                ROUTING_KEY,
                &msg.delivery.data,
                props,
            )
            .await
        {
            Ok(()) => {
                msg.delivery.ack(BasicAckOptions::default()).await?;
                replayed += 1;
                tracing::info!(event_id = ?parked.event_id, customer = ?parked.customer, snapshot_id = ?parked.snapshot_id, "replayed");
            }
            Err(e) => {
                keep.push(msg);
                give_back(&keep).await?;
                return Err(e.into());
            }
        }
    }
    give_back(&keep).await?;
    Ok(replayed)
}

/// The original headers without snapswitch's failure and attempt headers and
/// without the broker's dead-letter history: a replay starts afresh.
fn replay_headers(headers: Option<&FieldTable>) -> FieldTable {
    let mut fresh = FieldTable::default();
    let kept: BTreeMap<_, _> = headers
        .map(|h| {
            h.inner()
                .iter()
                .filter(|(k, _)| {
                    let k = k.as_str();
                    !k.starts_with("x-snapswitch-")
                        && !k.starts_with("x-death")
                        && !k.starts_with("x-first-death")
                        && !k.starts_with("x-last-death")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in kept {
        fresh.insert(k, v);
    }
    fresh
}

/// Deletes the selected parked messages (acked away); returns how many.
pub async fn delete(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
) -> anyhow::Result<usize> {
    let channel = connection.create_channel().await?;
    let taken = take_all(&channel, &topology.dead_queue).await?;
    let mut deleted = 0;
    let mut keep = Vec::new();
    for msg in taken {
        let parked = Parked::from_message(&msg);
        if selection.matches(&parked) {
            msg.delivery.ack(BasicAckOptions::default()).await?;
            deleted += 1;
            tracing::info!(event_id = ?parked.event_id, customer = ?parked.customer, snapshot_id = ?parked.snapshot_id, "deleted from the parking queue");
        } else {
            keep.push(msg);
        }
    }
    give_back(&keep).await?;
    Ok(deleted)
}

/// Deletes every parked event; returns how many.
pub async fn purge(connection: &Connection, topology: &Topology) -> anyhow::Result<u32> {
    let channel = connection.create_channel().await?;
    Ok(channel
        .queue_purge(
            ShortString::from(topology.dead_queue.as_str()),
            QueuePurgeOptions::default(),
        )
        .await?)
}

/// How many events are parked.
pub async fn depth(connection: &Connection, topology: &Topology) -> anyhow::Result<u32> {
    let channel = connection.create_channel().await?;
    Ok(common::broker::queue_depth(&channel, &topology.dead_queue).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{AMQPValue, LongString};

    fn parked(customer: &str, reason: &str, failed_at: Option<&str>) -> Parked {
        Parked {
            event_id: Some("e".into()),
            customer: Some(customer.into()),
            snapshot_id: Some(1),
            priority: None,
            reason: Some(reason.into()),
            error_class: None,
            error: None,
            attempts: None,
            worker: None,
            host: None,
            failed_at: failed_at.map(str::to_owned),
            body: None,
            raw_body: String::new(),
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn filter_matches_customer_reason_and_age() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let old = parked("acme", "snapshot_invalid", Some("2026-01-01T00:00:00Z"));
        let new = parked("globex", "graph_unavailable", Some("2026-01-01T00:59:30Z"));
        let unknown = parked("acme", "snapshot_invalid", None);
        let all = Filter::default();
        let table = [
            (&all, [true, true, true]),
            (
                &Filter {
                    customer: Some("acme".into()),
                    ..Filter::default()
                },
                [true, false, true],
            ),
            (
                &Filter {
                    reason: Some("graph_unavailable".into()),
                    ..Filter::default()
                },
                [false, true, false],
            ),
            (
                &Filter {
                    min_age_seconds: Some(60),
                    ..Filter::default()
                },
                [true, false, false],
            ),
        ];
        for (filter, want) in table {
            let got = [&old, &new, &unknown].map(|p| filter.matches(p, now));
            assert_eq!(got, want, "{filter:?}");
        }
    }

    #[test]
    fn replay_headers_drop_failure_and_attempt_but_keep_trace_context() {
        let mut h = FieldTable::default();
        for (k, v) in [
            ("traceparent", "00-abc-def-01"),
            ("x-snapswitch-reason", "graph_unavailable"),
            ("x-snapswitch-attempt", "3"),
            ("x-death", "..."),
            ("x-custom", "kept"),
        ] {
            h.insert(
                ShortString::from(k),
                AMQPValue::LongString(LongString::from(v)),
            );
        }
        let fresh = replay_headers(Some(&h));
        let keys: Vec<&str> = fresh.inner().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["traceparent", "x-custom"]);
    }
}
