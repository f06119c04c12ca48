//! snapswitch's shared library: the contract every process agrees on and the
//! adapters to the outside world. Nothing in here decides what to do with an
//! event; that is the worker's job.
//!
//! The contract:
//! - [`event`]: the versioned snapshot event (JSON body) and its validation;
//! - [`ident`]: customer names, snapshot ids, database names;
//! - [`topology`]: AMQP exchange/queue names, arguments and header names;
//! - [`keys`]: every Redis key;
//! - [`vocab`]: the names operators see (failure codes, hold codes, audit
//!   events) as enums;
//! - [`config`]: the configuration struct, its layering and validation;
//! - [`targets`]: the graph databases of a deployment and which one serves
//!   each customer.
//!
//! The adapters (thin, tested against the real services):
//! - [`broker`]: RabbitMQ through lapin;
//! - [`lock`], [`state`] and [`claims`] (the producer's publish-once ledger):
//!   Redis through the redis crate; [`lock_wait`]: waiting for a customer's
//!   lock;
//! - [`alias`]: a customer's alias and databases on a graph store;
//! - [`graph`]: the graph-store trait with FalkorDB and Neo4j adapters;
//! - [`snapshot`]: the snapshot tree on disk and its file readers;
//! - [`load`]: one snapshot into one database;
//! - [`doctor`]: the preflight checks of both binaries;
//! - [`tls`]: the rustls provider and CA files for the three services.

pub mod alias;
pub mod broker;
pub mod claims;
pub mod config;
pub mod doctor;
pub mod event;
pub mod graph;
pub mod http;
pub mod ident;
pub mod idmap;
pub mod keys;
pub mod load;
pub mod lock;
pub mod lock_wait;
pub mod metrics;
pub mod otel;
pub mod slots;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod targets;
pub mod telemetry;
pub mod tls;
pub mod topology;
pub mod vocab;
