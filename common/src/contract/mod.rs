//! The contract: what every process agrees on. Pure data and parsing, no I/O;
//! imports nothing from the other layers.
//!
//! - [`event`]: the versioned snapshot event (JSON body) and its validation;
//! - [`ident`]: customer names, snapshot ids, database names;
//! - [`keys`]: every Redis key;
//! - [`topology`]: AMQP exchange/queue names, arguments and header names;
//! - [`vocab`]: the names operators see (failure codes, hold codes, audit
//!   events) as enums.

pub mod event;
pub mod ident;
pub mod keys;
pub mod topology;
pub mod vocab;
