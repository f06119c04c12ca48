//! The per-customer distributed lock: one load per customer at a time across the
//! whole fleet.
//!
//! `SET key token NX PX ttl` takes it; a Lua compare-and-pexpire renews it; a Lua
//! compare-and-delete releases it, so a worker can never extend or free a lock
//! that expired and was taken by someone else. Each acquisition also increments a
//! per-customer counter, the fencing token, which the holder can re-check before
//! an irreversible step.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{ExistenceCheck, Script, SetExpiry, SetOptions};
use uuid::Uuid;

use crate::contract::ident::Customer;
use crate::contract::keys::Keys;

const RENEW: &str = r"
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0";

/// Lifts the fencing counter above a floor while we hold the lock:
/// KEYS = lock, fence; ARGV = our lock token, our fencing token, floor.
/// Returns our (possibly new) fencing token, 0 when the lock is not ours.
const LIFT: &str = r"
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local current = tonumber(redis.call('get', KEYS[2]) or '0')
if current ~= tonumber(ARGV[2]) then return 0 end
local floor = tonumber(ARGV[3])
if current > floor then return current end
redis.call('set', KEYS[2], floor + 1)
return floor + 1";

const RELEASE: &str = r"
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0";

/// A held lock. Dropping it without [`LockGuard::release`] leaves the key to
/// expire after its TTL. A clone renews the same lock (for a renewal task).
#[derive(Debug, Clone)]
pub struct LockGuard {
    customer: String,
    key: String,
    fence_key: String,
    token: String,
    ttl: Duration,
    /// The fencing token of this acquisition.
    pub fence: u64,
}

/// Tries once to take `customer`'s lock; `None` when another holder has it.
pub async fn try_acquire(
    con: &mut ConnectionManager,
    keys: &Keys,
    customer: &Customer,
    ttl: Duration,
) -> redis::RedisResult<Option<LockGuard>> {
    let key = keys.lock(customer);
    let token = Uuid::new_v4().to_string();
    let opts = SetOptions::default()
        .conditional_set(ExistenceCheck::NX)
        .with_expiration(SetExpiry::PX(millis(ttl)));
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&token)
        .arg(opts)
        .query_async(con)
        .await?;
    if set.is_none() {
        return Ok(None);
    }
    let fence_key = keys.fence(customer);
    let fence: u64 = redis::cmd("INCR").arg(&fence_key).query_async(con).await?;
    Ok(Some(LockGuard {
        customer: customer.to_string(),
        key,
        fence_key,
        token,
        ttl,
        fence,
    }))
}

impl LockGuard {
    /// Extends the lock by its TTL; `false` when it is no longer ours.
    pub async fn renew(&self, con: &mut ConnectionManager) -> redis::RedisResult<bool> {
        let n: i64 = Script::new(RENEW)
            .key(&self.key)
            .arg(&self.token)
            .arg(millis(self.ttl))
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// True while we hold the lock and no later acquisition happened.
    pub async fn still_valid(&self, con: &mut ConnectionManager) -> redis::RedisResult<bool> {
        let (holder, fence): (Option<String>, Option<u64>) = redis::pipe()
            .get(&self.key)
            .get(&self.fence_key)
            .query_async(con)
            .await?;
        Ok(holder.as_deref() == Some(self.token.as_str()) && fence == Some(self.fence))
    }

    /// Frees the lock if it is still ours; `false` when it had expired.
    pub async fn release(self, con: &mut ConnectionManager) -> redis::RedisResult<bool> {
        let n: i64 = Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// Makes our fencing token higher than `floor` (the highest token the
    /// graph store has seen for the customer). After a loss of Redis's data
    /// the counter restarts low; without this every later fenced effect
    /// would be refused by the store. `false` when the lock is no longer ours.
    pub async fn lift_above(
        &mut self,
        con: &mut ConnectionManager,
        floor: u64,
    ) -> redis::RedisResult<bool> {
        if self.fence > floor {
            return Ok(true);
        }
        let n: u64 = Script::new(LIFT)
            .key(&self.key)
            .key(&self.fence_key)
            .arg(&self.token)
            .arg(self.fence)
            .arg(floor)
            .invoke_async(con)
            .await?;
        if n == 0 {
            return Ok(false);
        }
        self.fence = n;
        Ok(true)
    }

    /// The customer this lock is for.
    pub fn customer(&self) -> &str {
        &self.customer
    }

    /// How long the lock lives without a renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
