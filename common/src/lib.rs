//! snapswitch's shared library, in four layers. Each may use itself and the
//! layers before it in this list, never one after it (checked by
//! `tests/tests/layers.rs`, with no import circle between modules):
//!
//! 1. [`contract`] — what every process agrees on; no I/O:
//!    [`contract::event`] (the versioned snapshot event and its validation),
//!    [`contract::ident`] (customer names, snapshot ids, database names),
//!    [`contract::keys`] (every Redis key), [`contract::topology`] (AMQP
//!    names, arguments, header names), [`contract::vocab`] (the names
//!    operators see: failure codes, hold codes, audit events, as enums).
//! 2. [`adapters`] — the outside world, thin, tested against the real
//!    services; none reads the configuration, each takes its own options:
//!    [`adapters::secret`] (values that never print a password),
//!    [`adapters::tls`] (the rustls provider and CA files),
//!    [`adapters::broker`] (RabbitMQ), [`adapters::state`],
//!    [`adapters::claims`] (the producer's publish-once ledger),
//!    [`adapters::lock`] and [`adapters::slots`] (Redis),
//!    [`adapters::lock_wait`] (waiting for a customer's lock),
//!    [`adapters::alias`] (a customer's alias and databases on a graph store),
//!    [`adapters::snapshot`] (the snapshot tree on disk and its readers),
//!    [`adapters::graph`] (the graph-store traits, FalkorDB and Neo4j, the
//!    resolved graph targets), [`adapters::load`] (one snapshot into one
//!    database) with its id map [`adapters::idmap`].
//! 3. [`config`] — the configuration: [`config::model`] (the struct),
//!    [`config::layering`] (defaults, file, environment, flags, secret
//!    files), [`config::validate`], [`config::targets`] (the
//!    `[targets.<name>]` tables) and [`config::build`] (the adapters'
//!    options, built from it).
//! 4. [`ops`] — running a process; may read the whole configuration:
//!    [`ops::metrics`], [`ops::otel`] and [`ops::telemetry`] (traces and
//!    logs), [`ops::http`], [`ops::status`] (the fleet status),
//!    [`ops::doctor`] (the preflight checks).
//!
//! Nothing in here decides what to do with an event; that is the worker's
//! job (its pure core is `worker/src/decide.rs`). The few pure decisions that
//! live here sit beside the adapter whose data they judge
//! (`adapters::graph::target::target_of`, `adapters::graph::DbState::may_go_live`).
//!
//! The flat paths the binaries use (`common::event`, `common::graph`,
//! `common::targets`, …) are re-exports of the layered modules, nothing more.

pub mod adapters;
pub mod config;
pub mod contract;
pub mod ops;

pub use adapters::{
    alias, broker, claims, graph, idmap, load, lock, lock_wait, slots, snapshot, state, tls,
};
pub use config::targets;
pub use contract::{event, ident, keys, topology, vocab};
pub use ops::{doctor, http, metrics, otel, status, telemetry};
