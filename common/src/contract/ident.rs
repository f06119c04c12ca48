//! Identifiers that travel from events into Redis keys, AMQP headers and graph
//! database names.
//!
//! Everything that names a graph database is derived from a [`Customer`] and a
//! [`SnapshotId`], so the rules here are the ones Neo4j imposes on database and
//! alias names (ASCII, starts with a letter, 3 to 63 characters), narrowed so that
//! `<customer>-<snapshot_id>` always fits and never collides with a system name.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest customer name: `<customer>-<10-digit snapshot id>` must fit in
/// Neo4j's 63-character database-name limit.
pub const MAX_CUSTOMER_LEN: usize = 52;
/// Shortest customer name: the alias `<customer>` must be a valid Neo4j name.
pub const MIN_CUSTOMER_LEN: usize = 3;
/// Names the graph databases keep for themselves.
const RESERVED: [&str; 2] = ["system", "neo4j"];

/// Smallest accepted snapshot id (2001-09-09, the first 10-digit unix time).
pub const MIN_SNAPSHOT_ID: u64 = 1_000_000_000;
/// Largest accepted snapshot id (still 10 digits, year 2286).
pub const MAX_SNAPSHOT_ID: u64 = 9_999_999_999;

/// Why a name or id was refused.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdentError {
    #[error(
        "customer name `{name}` is not a safe identifier: {why}; use {MIN_CUSTOMER_LEN} to \
         {MAX_CUSTOMER_LEN} lowercase letters, digits and '-', starting with a letter"
    )]
    Customer { name: String, why: &'static str },
    #[error(
        "snapshot id `{value}` is not a unix timestamp in seconds between {MIN_SNAPSHOT_ID} and \
         {MAX_SNAPSHOT_ID}"
    )]
    SnapshotId { value: String },
    #[error("`{name}` is not a snapswitch database name (`<customer>-<snapshot_id>`)")]
    Database { name: String },
}

/// A validated customer name: safe as a path component, a Redis key part, an
/// AMQP header and a graph database/alias name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Customer(String);

impl Customer {
    /// Checks `name` against the customer-name rules.
    pub fn parse(name: &str) -> Result<Self, IdentError> {
        let fail = |why| {
            Err(IdentError::Customer {
                // Cap what we echo back: the name may be hostile and huge.
                name: name.chars().take(80).collect(),
                why,
            })
        };
        if name.len() < MIN_CUSTOMER_LEN {
            return fail("too short");
        }
        if name.len() > MAX_CUSTOMER_LEN {
            return fail("too long");
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return fail("it must start with a lowercase letter");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return fail("it contains a character other than a-z, 0-9 and '-'");
        }
        if name.ends_with('-') {
            return fail("it ends with '-'");
        }
        if RESERVED.contains(&name) {
            return fail("it is reserved by the graph database");
        }
        if name
            .rsplit_once('-')
            .is_some_and(|(_, tail)| SnapshotId::parse(tail).is_ok())
        {
            return fail("it ends with '-<snapshot id>' and would read as a database name");
        }
        Ok(Customer(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Customer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Customer::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A snapshot id: the unix time (seconds) the ETL job stamped on the snapshot.
/// Ordering of ids is the ordering of snapshots: newer is larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct SnapshotId(u64);

impl SnapshotId {
    /// Checks `value` against the snapshot-id rules.
    pub fn new(value: u64) -> Result<Self, IdentError> {
        if (MIN_SNAPSHOT_ID..=MAX_SNAPSHOT_ID).contains(&value) {
            Ok(SnapshotId(value))
        } else {
            Err(IdentError::SnapshotId {
                value: value.to_string(),
            })
        }
    }

    /// Parses a directory name: digits only, no sign, no leading zero.
    pub fn parse(text: &str) -> Result<Self, IdentError> {
        let err = || IdentError::SnapshotId {
            value: text.chars().take(40).collect(),
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
            return Err(err());
        }
        let value: u64 = text.parse().map_err(|_| err())?;
        SnapshotId::new(value).map_err(|_| err())
    }

    /// The id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for SnapshotId {
    type Error = IdentError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        SnapshotId::new(value)
    }
}

impl From<SnapshotId> for u64 {
    fn from(id: SnapshotId) -> u64 {
        id.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The graph database one snapshot is loaded into: `<customer>-<snapshot_id>`.
/// The customer's alias (`<customer>`) points at one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatabaseName {
    /// Whose database.
    pub customer: Customer,
    /// Of which snapshot.
    pub snapshot: SnapshotId,
}

impl DatabaseName {
    /// The database of `customer`'s `snapshot`.
    pub fn new(customer: Customer, snapshot: SnapshotId) -> Self {
        DatabaseName { customer, snapshot }
    }

    /// Parses a name produced by [`DatabaseName`]'s `Display`; any other name
    /// (aliases, system databases, foreign graphs) is an error.
    pub fn parse(name: &str) -> Result<Self, IdentError> {
        let err = || IdentError::Database {
            name: name.chars().take(80).collect(),
        };
        let (customer, snapshot) = name.rsplit_once('-').ok_or_else(err)?;
        Ok(DatabaseName {
            customer: Customer::parse(customer).map_err(|_| err())?,
            snapshot: SnapshotId::parse(snapshot).map_err(|_| err())?,
        })
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.customer, self.snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_names_accepted() {
        for ok in [
            "customer1",
            "acme-eu-2",
            "abc",
            &"a".repeat(MAX_CUSTOMER_LEN),
        ] {
            assert!(Customer::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn hostile_customer_names_rejected_with_reason() {
        for bad in [
            "../x",
            "",
            "ab",
            "Customer",
            "1abc",
            "abc-",
            "a.b.c",
            "a b c",
            "abc\0",
            "system",
            "neo4j",
            "zoë-co",
            "acme-1767741427",
            &"a".repeat(MAX_CUSTOMER_LEN + 1),
        ] {
            let err = Customer::parse(bad).unwrap_err();
            assert!(err.to_string().contains("not a safe identifier"), "{err}");
        }
    }

    #[test]
    fn longest_database_name_fits_neo4j_limit() {
        let c = Customer::parse(&"a".repeat(MAX_CUSTOMER_LEN)).unwrap();
        let db = DatabaseName::new(c, SnapshotId::new(MAX_SNAPSHOT_ID).unwrap());
        assert!(db.to_string().len() <= 63);
    }

    #[test]
    fn snapshot_ids_parse_only_plain_ten_digit_numbers() {
        assert_eq!(SnapshotId::parse("1767741427").unwrap().get(), 1767741427);
        for bad in [
            "",
            "0",
            "0767741427",
            "+1767741427",
            "999999999",
            "17677414270",
            "17a",
        ] {
            assert!(SnapshotId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn database_name_round_trips_and_rejects_aliases() {
        let db = DatabaseName::parse("acme-eu-1767741427").unwrap();
        assert_eq!(db.customer.as_str(), "acme-eu");
        assert_eq!(db.to_string(), "acme-eu-1767741427");
        for bad in ["acme", "acme.next", "acme-", "system", "acme-eu-17"] {
            assert!(DatabaseName::parse(bad).is_err(), "{bad}");
        }
    }
}
