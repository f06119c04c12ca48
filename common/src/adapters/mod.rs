//! The adapters: the outside world, thin, each tested against the real
//! service. They use the contract and each other, never the configuration:
//! each takes its own options, which [`crate::config`] builds.
//!
//! - [`secret`]: secrets and service URLs that never print a password;
//! - [`tls`]: the rustls provider and CA files for the three services;
//! - [`broker`]: RabbitMQ through lapin;
//! - [`state`], [`lock`], [`slots`] and [`claims`] (the producer's publish-once
//!   ledger): Redis through the redis crate; [`lock_wait`]: waiting for a
//!   customer's lock;
//! - [`snapshot`]: the snapshot tree on disk and its file readers;
//! - [`graph`]: the graph-store traits with FalkorDB and Neo4j adapters;
//!   [`alias`]: a customer's alias and databases on a graph store;
//! - [`load`]: one snapshot into one database, with its id map [`idmap`].

pub mod alias;
pub mod broker;
pub mod claims;
pub mod graph;
pub mod idmap;
pub mod load;
pub mod lock;
pub mod lock_wait;
pub mod secret;
pub mod slots;
pub mod snapshot;
pub mod state;
pub mod tls;
