//! Lifecycle marks kept in the coordination Redis, for a graph store that
//! cannot keep them next to its databases (Neo4j: no script runs beside its
//! aliases). One hash per database, `<ns>:db:<target>:<database>`
//! (`state`, `token`), written by Lua scripts that compare the caller's
//! fencing token with the customer's fencing counter (`<ns>:fence:<customer>`,
//! the lock's own): a token older than the newest acquisition is refused.
//!
//! A mark that is missing reads as [`DbState::NotTracked`], never as
//! verified: after a loss of Redis's data every database is kept by cleanup
//! (it may be complete) but none can become live by rollback or repair until
//! a new load verifies a newer one; no partial database can look verified
//! because of it.

use redis::aio::ConnectionManager;
use redis::Script;

use super::{DbState, Fence, GraphError};
use crate::contract::ident::Customer;
use crate::contract::keys::Keys;

/// KEYS = fence counter; ARGV = token. Refuses a token older than the
/// newest acquisition's.
const CHECK: &str = r"
local newest = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < newest then
  return redis.error_reply('FENCED token ' .. ARGV[1] .. ' is older than ' .. newest .. ' (' .. KEYS[1] .. '): a newer lock holder exists')
end
";

/// KEYS = fence counter, mark; ARGV = token.
const BEGIN: &str = r"
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'state', 'loading', 'token', ARGV[1])
return 1";

/// KEYS = fence counter, mark; ARGV = token, database.
const VERIFY: &str = r"
local state = redis.call('HGET', KEYS[2], 'state')
local owner = redis.call('HGET', KEYS[2], 'token')
if state == 'verified' and owner == ARGV[1] then return 0 end
if state ~= 'loading' or owner ~= ARGV[1] then
  return redis.error_reply('FENCED database ' .. ARGV[2] .. ' is not being loaded under token ' .. ARGV[1])
end
redis.call('HSET', KEYS[2], 'state', 'verified')
return 1";

/// KEYS = fence counter, mark; ARGV = token, database.
const HOLD: &str = r"
local state = redis.call('HGET', KEYS[2], 'state')
local owner = redis.call('HGET', KEYS[2], 'token')
if state == 'held' and owner == ARGV[1] then return 0 end
if state ~= 'loading' or owner ~= ARGV[1] then
  return redis.error_reply('FENCED database ' .. ARGV[2] .. ' is not being loaded under token ' .. ARGV[1])
end
redis.call('HSET', KEYS[2], 'state', 'held')
return 1";

/// KEYS = fence counter, mark; ARGV = token, database.
const RELEASE: &str = r"
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'held' then
  return redis.error_reply('NOTHELD database ' .. ARGV[2] .. ' is not held (state: ' .. (state or 'not tracked') .. ')')
end
redis.call('HSET', KEYS[2], 'state', 'verified')
return 1";

/// KEYS = fence counter; ARGV = token.
const NOTHING: &str = "return 1";

/// The lifecycle marks of one Neo4j target, kept in the coordination Redis.
#[derive(Clone)]
pub struct RedisMarks {
    con: ConnectionManager,
    keys: Keys,
    target: String,
}

fn map(e: redis::RedisError) -> GraphError {
    match e.code() {
        Some("FENCED") => GraphError::Fenced(e.detail().unwrap_or_default().to_owned()),
        _ if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
            GraphError::Transient(format!("Redis (lifecycle marks): {e}"))
        }
        _ => GraphError::Permanent(format!("Redis (lifecycle marks): {e}")),
    }
}

impl RedisMarks {
    /// The marks of `target`, under `keys`.
    pub fn new(con: ConnectionManager, keys: Keys, target: &str) -> Self {
        RedisMarks {
            con,
            keys,
            target: target.to_owned(),
        }
    }

    fn mark(&self, db: &str) -> String {
        self.keys.db_mark(&self.target, db)
    }

    fn fence_key(&self, fence: &Fence) -> Result<String, GraphError> {
        let customer = Customer::parse(&fence.customer)
            .map_err(|e| GraphError::Permanent(format!("fence of an invalid customer: {e}")))?;
        Ok(self.keys.fence(&customer))
    }

    async fn run(&self, body: &str, fence: &Fence, db: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = Script::new(&format!("{CHECK}{body}"))
            .key(self.fence_key(fence)?)
            .key(self.mark(db))
            .arg(fence.token)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map)?;
        Ok(())
    }

    /// Refused ([`GraphError::Fenced`]) when a newer lock holder exists.
    pub async fn check(&self, fence: &Fence) -> Result<(), GraphError> {
        self.run(NOTHING, fence, "").await
    }

    /// `db` is being loaded under `fence`.
    pub async fn begin(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.run(BEGIN, fence, db).await
    }

    /// `db`, loaded under `fence`, passed its count check.
    pub async fn verify(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.run(VERIFY, fence, db).await
    }

    /// `db`, loaded under `fence`, passed its count check but a guard or a
    /// check holds it.
    pub async fn hold(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.run(HOLD, fence, db).await
    }

    /// The held `db` was approved: it becomes verified.
    pub async fn release(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.run(RELEASE, fence, db).await
    }

    /// `db` was rolled back from.
    pub async fn retire(&self, db: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(self.mark(db))
            .arg("state")
            .arg("retired")
            .query_async(&mut con)
            .await
            .map_err(map)?;
        Ok(())
    }

    /// `db` is gone.
    pub async fn forget(&self, db: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.mark(db))
            .query_async(&mut con)
            .await
            .map_err(map)?;
        Ok(())
    }

    /// The mark; a missing one is [`DbState::NotTracked`].
    pub async fn state(&self, db: &str) -> Result<DbState, GraphError> {
        let mut con = self.con.clone();
        let state: Option<String> = redis::cmd("HGET")
            .arg(self.mark(db))
            .arg("state")
            .query_async(&mut con)
            .await
            .map_err(map)?;
        Ok(match state.as_deref() {
            Some("loading") => DbState::Loading,
            Some("verified") => DbState::Verified,
            Some("held") => DbState::Held,
            Some("retired") => DbState::Retired,
            _ => DbState::NotTracked,
        })
    }
}
