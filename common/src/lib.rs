//! snapswitch's shared library, in four layers. Each may use the layers above
//! it in this list, never one below:
//!
//! 1. [`contract`]: what every process agrees on — the event, identifiers,
//!    Redis key names, AMQP names. No I/O.
//! 2. [`adapters`]: the outside world — RabbitMQ, Redis (state, lock, slots),
//!    the graph stores, the snapshot files, the loader. Thin, tested against
//!    the real services; none reads the configuration.
//! 3. [`config`]: the configuration, its layering and validation, and the
//!    graph targets; it builds the adapters' options.
//! 4. [`ops`]: running a process — metrics, tracing, HTTP, the fleet status,
//!    the preflight checks; may read the whole configuration.
//!
//! Nothing in here decides what to do with an event; that is the worker's job.
//!
//! The flat paths the binaries use (`common::event`, `common::graph`, …) are
//! re-exports of the layered modules below, nothing more.

pub mod adapters;
pub mod config;
pub mod contract;
pub mod ops;

pub use adapters::{broker, graph, idmap, load, lock, slots, snapshot, state, tls};
pub use config::targets;
pub use contract::{event, ident, keys, topology};
pub use ops::{doctor, http, metrics, otel, status, telemetry};
