//! The snapshot event contract, version 1: the JSON body every publisher (the
//! `producer` binary or an upstream ETL job) sends, and its validation.
//!
//! This module is the contract's single source of truth; `docs/events.md` and
//! `docs/event-v1.schema.json` describe it for other languages and a test keeps
//! the schema file and this code in agreement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::contract::ident::{Customer, IdentError, SnapshotId};

/// The only schema version this build understands.
pub const SCHEMA_VERSION: u64 = 1;
/// The AMQP `type` property set on every event.
pub const MESSAGE_TYPE: &str = "snapswitch.snapshot.v1";
/// Largest body accepted; a snapshot event is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Highest message priority (the work queue is declared with x-max-priority 10,
/// the contract uses 0-9).
pub const MAX_PRIORITY: u8 = 9;

/// A snapshot event, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEvent {
    /// Always 1 in contract v1.
    pub schema_version: u64,
    /// Unique per publish (a republish keeps it).
    pub event_id: Uuid,
    /// Whose snapshot it is.
    pub customer: Customer,
    /// The snapshot's id: its Unix time in seconds.
    pub snapshot_id: SnapshotId,
    /// The snapshot directory relative to the data root: `<customer>/<snapshot_id>`.
    pub path: String,
    /// 0 (lowest) to [`MAX_PRIORITY`].
    pub priority: u8,
    /// When the event was made.
    pub created_at: DateTime<Utc>,
}

/// Why a message body is not a valid v1 event. Every variant is permanent: the
/// same body will never become valid, so it is parked with [`EventError::code`].
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EventError {
    #[error("event body is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("event body is not JSON: {0}")]
    NotJson(String),
    #[error("event has no numeric `schema_version` field")]
    MissingVersion,
    #[error("event schema_version {0} is not supported: this worker understands version {SCHEMA_VERSION}")]
    UnsupportedVersion(u64),
    #[error("event does not match schema v{SCHEMA_VERSION}: {0}")]
    Schema(String),
    #[error("{0}")]
    Ident(#[from] IdentError),
    #[error("event priority {0} is out of range 0-{MAX_PRIORITY}")]
    Priority(u8),
    #[error("event path `{path}` must be `{expected}` (the snapshot directory relative to the data root)")]
    Path { path: String, expected: String },
}

impl EventError {
    /// A short, stable code for the dead-letter `x-snapswitch-reason` header.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::TooLarge { .. } => "event_too_large",
            EventError::NotJson(_) => "event_not_json",
            EventError::MissingVersion => "event_missing_version",
            EventError::UnsupportedVersion(_) => "event_unsupported_version",
            EventError::Schema(_) => "event_schema",
            EventError::Ident(IdentError::Customer { .. }) => "event_invalid_customer",
            EventError::Ident(_) => "event_invalid_snapshot_id",
            EventError::Priority(_) => "event_invalid_priority",
            EventError::Path { .. } => "event_invalid_path",
        }
    }
}

impl SnapshotEvent {
    /// A new event for a ready snapshot, with a fresh uuid v7 and the current time.
    pub fn new(
        customer: Customer,
        snapshot_id: SnapshotId,
        priority: u8,
    ) -> Result<Self, EventError> {
        if priority > MAX_PRIORITY {
            return Err(EventError::Priority(priority));
        }
        Ok(SnapshotEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            path: expected_path(&customer, snapshot_id),
            customer,
            snapshot_id,
            priority,
            created_at: Utc::now(),
        })
    }

    /// Decodes and validates a message body. Unknown fields are ignored (v1 may
    /// grow optional fields); an unknown `schema_version` is refused.
    pub fn decode(body: &[u8]) -> Result<Self, EventError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(EventError::TooLarge {
                size: body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or(EventError::MissingVersion)?;
        if version != SCHEMA_VERSION {
            return Err(EventError::UnsupportedVersion(version));
        }
        // Identifiers first, so their precise messages win over serde's.
        if let Some(c) = value.get("customer").and_then(serde_json::Value::as_str) {
            Customer::parse(c)?;
        }
        if let Some(id) = value.get("snapshot_id").and_then(serde_json::Value::as_u64) {
            SnapshotId::new(id)?;
        }
        let event: SnapshotEvent =
            serde_json::from_value(value).map_err(|e| EventError::Schema(e.to_string()))?;
        if event.priority > MAX_PRIORITY {
            return Err(EventError::Priority(event.priority));
        }
        let expected = expected_path(&event.customer, event.snapshot_id);
        if event.path != expected {
            return Err(EventError::Path {
                path: event.path.chars().take(200).collect(),
                expected,
            });
        }
        Ok(event)
    }

    /// The JSON body, as published.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn expected_path(customer: &Customer, snapshot_id: SnapshotId) -> String {
    format!("{customer}/{snapshot_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "schema_version": 1,
            "event_id": "01943f6e-7c4a-7cc2-9d0e-3b1f2a4c5d6e",
            "customer": "customer1",
            "snapshot_id": 1767741427u64,
            "path": "customer1/1767741427",
            "priority": 5,
            "created_at": "2026-01-06T22:30:00Z"
        })
    }

    fn decode(v: &serde_json::Value) -> Result<SnapshotEvent, EventError> {
        SnapshotEvent::decode(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn valid_event_round_trips() {
        let e = decode(&valid()).unwrap();
        assert_eq!(e.customer.as_str(), "customer1");
        assert_eq!(e.snapshot_id.get(), 1767741427);
        assert_eq!(SnapshotEvent::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn new_event_uses_uuid_v7_and_valid_path() {
        let e = SnapshotEvent::new(
            Customer::parse("acme").unwrap(),
            SnapshotId::new(1767741427).unwrap(),
            9,
        )
        .unwrap();
        assert_eq!(e.event_id.get_version_num(), 7);
        assert_eq!(SnapshotEvent::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = valid();
        v["future_field"] = serde_json::json!({"x": 1});
        assert!(decode(&v).is_ok());
    }

    #[test]
    fn malformed_events_have_stable_reason_codes() {
        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|v| v["schema_version"] = 2.into()),
                "event_unsupported_version",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("schema_version");
                }),
                "event_missing_version",
            ),
            (
                Box::new(|v| v["customer"] = "../x".into()),
                "event_invalid_customer",
            ),
            (
                Box::new(|v| v["snapshot_id"] = 12.into()),
                "event_invalid_snapshot_id",
            ),
            (
                Box::new(|v| v["priority"] = 10.into()),
                "event_invalid_priority",
            ),
            (
                Box::new(|v| v["path"] = "customer1/../../etc".into()),
                "event_invalid_path",
            ),
            (Box::new(|v| v["event_id"] = "nope".into()), "event_schema"),
            (
                Box::new(|v| v["created_at"] = "yesterday".into()),
                "event_schema",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("customer");
                }),
                "event_schema",
            ),
        ];
        for (mutate, code) in cases {
            let mut v = valid();
            mutate(&mut v);
            let err = decode(&v).unwrap_err();
            assert_eq!(err.code(), code, "{v} -> {err}");
        }
        assert_eq!(
            SnapshotEvent::decode(b"not json").unwrap_err().code(),
            "event_not_json"
        );
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            SnapshotEvent::decode(&big).unwrap_err().code(),
            "event_too_large"
        );
    }

    // Property tests stand in for cargo-fuzz (which needs a nightly toolchain
    // this project does not use): the same functions, random and mutated
    // inputs, and the invariants a fuzzer would check. `PROPTEST_CASES=100000
    // cargo test -p snapswitch-common --lib proptests` runs a longer campaign.
    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value, a few levels deep.
        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                ".{0,40}".prop_map(serde_json::Value::from),
                (1_000_000_000u64..=9_999_999_999).prop_map(serde_json::Value::from),
                "[a-z][a-z0-9-]{0,60}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                    prop::collection::btree_map(".{0,12}", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        const FIELDS: [&str; 7] = [
            "schema_version",
            "event_id",
            "customer",
            "snapshot_id",
            "path",
            "priority",
            "created_at",
        ];

        /// What every accepted event guarantees to the rest of the system.
        fn check_accepted(e: &SnapshotEvent) {
            assert_eq!(e.schema_version, SCHEMA_VERSION);
            assert!(Customer::parse(e.customer.as_str()).is_ok());
            assert!(SnapshotId::new(e.snapshot_id.get()).is_ok());
            assert!(e.priority <= MAX_PRIORITY);
            assert_eq!(e.path, format!("{}/{}", e.customer, e.snapshot_id));
            assert_eq!(SnapshotEvent::decode(&e.encode()).as_ref(), Ok(e));
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(e) = SnapshotEvent::decode(&body) {
                    check_accepted(&e);
                }
            }

            #[test]
            fn mutated_events_are_refused_or_valid(
                field in prop::sample::select(FIELDS.to_vec()),
                value in json(),
                remove in any::<bool>(),
                extra in prop::option::of((".{1,12}", json())),
            ) {
                let mut v = valid();
                let map = v.as_object_mut().unwrap();
                if remove {
                    map.remove(field);
                } else {
                    map.insert(field.to_owned(), value);
                }
                if let Some((k, x)) = extra {
                    if !FIELDS.contains(&k.as_str()) {
                        map.insert(k, x);
                    }
                }
                match decode(&v) {
                    Ok(e) => check_accepted(&e),
                    Err(err) => {
                        // Every refusal has a stable code and a bounded message.
                        prop_assert!(!err.code().is_empty());
                        prop_assert!(err.to_string().len() < 2_000, "{}", err);
                    }
                }
            }

            #[test]
            fn customer_names_accepted_are_safe_everywhere(name in ".{0,70}") {
                if let Ok(c) = Customer::parse(&name) {
                    let s = c.as_str();
                    prop_assert!((3..=52).contains(&s.len()));
                    prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                    prop_assert!(s.as_bytes()[0].is_ascii_lowercase());
                    prop_assert!(!s.ends_with('-'));
                    // Its database names parse back to it.
                    let db = crate::contract::ident::DatabaseName::new(c.clone(), SnapshotId::new(1_767_741_427).unwrap());
                    prop_assert_eq!(crate::contract::ident::DatabaseName::parse(&db.to_string()).map(|d| d.customer), Ok(c));
                }
            }

            #[test]
            fn snapshot_id_text_parses_only_to_its_own_number(text in "[0-9+-]{0,14}") {
                if let Ok(id) = SnapshotId::parse(&text) {
                    prop_assert_eq!(id.to_string(), text);
                }
            }
        }
    }
}
