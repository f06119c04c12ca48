//! The worker's library: everything the `worker` binary does, so the binary
//! is a thin face (`main.rs`: the command line). What the producer needs too
//! (alias reading, waiting for a lock, the vocabulary) lives in `common`.
//!
//! The path of one delivery: [`consumer`] takes it from the work queue,
//! [`pipeline`] runs it through the steps (lock, health gate, decide, slot,
//! create, load, verify, gates, mark, switch, repair, cleanup), every choice
//! made by a pure function in [`decide`] or [`gates`], and the consumer
//! settles the delivery as [`settle`] says. Each outcome is recorded once,
//! by a typed event in [`events`]. [`reconcile`] repairs what crashed
//! workers left;
//! [`breaker`] stops consuming while a dependency keeps failing; [`graphs`]
//! holds one connected store per graph target; [`ops`] is the HTTP probe and
//! status tick; [`service`] wires it all.

pub mod breaker;
pub mod consumer;
pub mod decide;
pub mod events;
pub mod gates;
pub mod graphs;
pub mod ops;
pub mod pipeline;
pub mod reconcile;
pub mod service;
pub mod settle;
