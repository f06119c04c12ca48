//! The fleet-wide cap on concurrent loads per graph database ("drip-feed"):
//! a fair semaphore of expiring leases in Redis.
//!
//! One semaphore per graph target (`<target>` is its name, see
//! [`crate::config::targets`]; `default` for the top-level graph keys):
//!
//! - `<ns>:slots:<target>`: sorted set, lease token → expiry (ms). A lease is
//!   renewed like the customer lock; a crashed worker's lease expires and its
//!   slot frees itself.
//! - `<ns>:slotq:<target>`: sorted set, waiting token → arrival number (from
//!   the counter `<ns>:slotseq:<target>`, so two waiters arriving in the same
//!   millisecond still have an order). Slots go to waiters in arrival order,
//!   so no one can jump the queue.
//! - `<ns>:slotq-alive:<token>`: a waiter's pulse (expires unless it keeps
//!   polling); a waiter that died is dropped from the queue.
//!
//! Why this is fair across customers: a worker only waits for a slot while it
//! holds its customer's lock, so each customer has at most one load running
//! or waiting per target, and the queue is first come, first served. One
//! customer publishing many snapshots cannot take more than its turn.
//! The scripts touch keys they compute (`slotq-alive:*`), so they need a
//! single Redis, not a cluster.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use uuid::Uuid;

use crate::contract::keys::Keys;

const ACQUIRE: &str = r"
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if w ~= ARGV[1] and redis.call('EXISTS', ARGV[5] .. w) == 0 then
    redis.call('ZREM', KEYS[2], w)
  end
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('SET', ARGV[5] .. ARGV[1], '1', 'PX', lease)
local free = tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return 0 end
if redis.call('ZRANK', KEYS[2], ARGV[1]) < free then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('DEL', ARGV[5] .. ARGV[1])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  return 1
end
return 0";

const RENEW: &str = r"
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry and tonumber(expiry) > tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 0";

/// A waiter's or holder's handle on one target's slots.
#[derive(Debug, Clone)]
pub struct Slot {
    slots: String,
    queue: String,
    seq: String,
    alive_prefix: String,
    token: String,
    lease: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl Slot {
    /// The slots of `target`, each lease lasting `lease` unless renewed.
    pub fn new(keys: &Keys, target: &str, lease: Duration) -> Self {
        Slot {
            slots: keys.slots(target),
            queue: keys.slot_queue(target),
            seq: keys.slot_seq(target),
            alive_prefix: keys.slot_alive_prefix(),
            token: Uuid::new_v4().to_string(),
            lease,
        }
    }

    /// One attempt: true when this handle now holds a slot (it joins the
    /// queue otherwise; call again within `lease` to keep its place).
    pub async fn try_acquire(
        &self,
        con: &mut ConnectionManager,
        max: u32,
    ) -> redis::RedisResult<bool> {
        let got: i64 = Script::new(ACQUIRE)
            .key(&self.slots)
            .key(&self.queue)
            .key(&self.seq)
            .arg(&self.token)
            .arg(now_ms())
            .arg(ms(self.lease))
            .arg(max)
            .arg(&self.alive_prefix)
            .invoke_async(con)
            .await?;
        Ok(got == 1)
    }

    /// Extends the lease; false when the slot is no longer held.
    pub async fn renew(&self, con: &mut ConnectionManager) -> redis::RedisResult<bool> {
        let n: i64 = Script::new(RENEW)
            .key(&self.slots)
            .arg(&self.token)
            .arg(now_ms())
            .arg(ms(self.lease))
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// Frees the slot, or leaves the queue.
    pub async fn release(&self, con: &mut ConnectionManager) -> redis::RedisResult<()> {
        let _: () = redis::pipe()
            .zrem(&self.slots, &self.token)
            .ignore()
            .zrem(&self.queue, &self.token)
            .ignore()
            .del(format!("{}{}", self.alive_prefix, self.token))
            .ignore()
            .query_async(con)
            .await?;
        Ok(())
    }

    /// Leases alive now on `target` (expired ones not counted).
    pub async fn in_use(
        con: &mut ConnectionManager,
        keys: &Keys,
        target: &str,
    ) -> redis::RedisResult<u64> {
        redis::cmd("ZCOUNT")
            .arg(keys.slots(target))
            .arg(now_ms())
            .arg("+inf")
            .query_async(con)
            .await
    }
}
