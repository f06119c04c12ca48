//! The producer's library: everything the `producer` binary does, so the
//! binary is a thin face (`main.rs`: the command line) over it.
//!
//! - [`publish`]: one event onto the work exchange (the [`publish::Announcer`]);
//! - [`scan`] and [`watch`]: ready snapshots found by rescans and
//!   file-system notifications;
//! - [`rollback`], [`approve`] and [`session`]: operator actions on a
//!   customer's alias, fenced under the customer's lock;
//! - [`dlq`]: the parking queue; [`console`]: the operator console;
//! - [`ops`]: `producer watch`'s HTTP probe and status tick;
//! - [`cmd`]: one module per subcommand.

pub mod approve;
pub mod cmd;
pub mod console;
pub mod dlq;
pub mod ops;
// Being changed on another branch (publish throughput, a rescan fix): the
// house lints apply once that lands.
pub mod publish;
pub mod rollback;
pub mod scan;
pub mod session;
pub mod watch;
