//! Waiting for a customer's lock: the one loop the worker (before a load)
//! and the producer's operator commands (rollback, approve, reject) use.
//! `lock::try_acquire` tries once; this polls until the lock is free or the
//! wait is over.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::adapters::lock::{self, LockGuard};
use crate::contract::ident::Customer;
use crate::contract::keys::Keys;

/// How long to wait for a customer's lock and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct LockWait {
    /// The lock's TTL once taken.
    pub ttl: Duration,
    /// Give up after this long.
    pub within: Duration,
    /// Pause between two attempts.
    pub poll: Duration,
}

/// The customer's lock, with when the successful attempt was sent (its TTL
/// runs from no earlier than that); `None` when another holder kept it for
/// the whole wait.
pub async fn wait_for_lock(
    con: &mut ConnectionManager,
    keys: &Keys,
    customer: &Customer,
    wait: LockWait,
) -> redis::RedisResult<Option<(LockGuard, Instant)>> {
    let deadline = Instant::now() + wait.within;
    loop {
        let asked_at = Instant::now();
        if let Some(guard) = lock::try_acquire(con, keys, customer, wait.ttl).await? {
            return Ok(Some((guard, asked_at)));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(wait.poll).await;
    }
}
