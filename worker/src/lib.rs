//! The worker's library: everything the `worker` binary does, so the binary
//! is a thin face (`main.rs`: the command line) and the producer can use the
//! same domain helpers.
//!
//! The path of one delivery: [`consumer`] takes it from the work queue,
//! [`pipeline`] runs it through the steps (lock, health gate, decide, slot,
//! create, load, verify, gates, mark, switch, repair, cleanup), every choice
//! made by a pure function in [`decide`] or [`gates`], and the consumer
//! settles the delivery as [`settle`] says. Each outcome is recorded once, by a typed event
//! in [`events`]. [`reconcile`] repairs what crashed workers left;
//! [`ops`] is the HTTP probe and status tick; [`service`] wires it all.

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
