//! The adapters: the outside world, thin, each tested against the real
//! service. They use the contract and each other, never the configuration:
//! each takes its own options, which [`crate::config`] builds.
//!
//! - [`secret`]: secrets and service URLs that never print a password;
//! - [`tls`]: the rustls provider and CA files for the three services;
//! - [`broker`]: RabbitMQ through lapin;
//! - [`state`], [`lock`] and [`slots`]: Redis through the redis crate;
//! - [`snapshot`]: the snapshot tree on disk and its file readers;
//! - [`graph`]: the graph-store traits with FalkorDB and Neo4j adapters;
//! - [`load`]: one snapshot into one database, with its id map [`idmap`].

pub mod broker;
pub mod claims;
pub mod graph;
pub mod idmap;
pub mod load;
pub mod lock;
pub mod secret;
pub mod slots;
pub mod snapshot;
pub mod state;
pub mod tls;
