//! The producer's publish-once ledger in Redis: which snapshots were
//! published (and confirmed), and which one a producer is publishing right
//! now (a claim with a TTL, so that a producer that dies mid-publish does not
//! hide a snapshot for longer than [`PUBLISH_CLAIM_TTL`]).
//!
//! Every claim names its owner (one id per producer process). A claim the
//! owner left behind — its release was lost, e.g. the first command after a
//! Redis restart fails — is retaken by the same producer at once instead of
//! hiding the snapshot until the TTL runs out; another producer's claim is
//! respected. Releases delete only the owner's own claim, and are retried.
//!
//! Everything works on batches: one script call claims many snapshots, one
//! records many as published, so a backfill costs a few Redis round trips
//! per thousand events, not three per event.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::adapters::state::{audit_command, Counter, StateError, REMEMBERED_SNAPSHOTS};
use crate::contract::ident::{Customer, SnapshotId};
use crate::contract::keys::Keys;
use crate::contract::vocab::AuditEvent;

/// How long a producer's claim on a snapshot lasts if it dies mid-publish.
pub const PUBLISH_CLAIM_TTL: Duration = Duration::from_secs(60);

/// The state of one snapshot's claim, as [`PublishLedger::claim`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed now by this producer: publish it.
    Claimed,
    /// Claimed by this producer before (its TTL renewed): publish it unless
    /// this process is publishing it right now.
    Ours,
    /// Published and confirmed before.
    Published,
    /// Another producer is publishing it.
    Theirs,
}

/// Per snapshot: 1 published, 2 claimed now, 3 ours already (TTL renewed),
/// 0 another owner's. KEYS: published set and claim key, in pairs.
/// ARGV: owner, ttl ms, then the snapshot ids.
const CLAIM: &str = r"
local owner, ttl = ARGV[1], ARGV[2]
local out = {}
for i = 1, #KEYS / 2 do
  local published, claim, id = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 2]
  if redis.call('ZSCORE', published, id) then
    out[i] = 1
  elseif redis.call('SET', claim, owner, 'NX', 'PX', ttl) then
    out[i] = 2
  elseif redis.call('GET', claim) == owner then
    redis.call('PEXPIRE', claim, ttl)
    out[i] = 3
  else
    out[i] = 0
  end
end
return out
";

/// Records published snapshots: adds each to its customer's capped
/// published set, deletes the owner's claim, counts them and names the
/// customers. KEYS: published set and claim key in pairs, then the stats
/// hash and the customers set. ARGV: owner, cap, counter field, then
/// customer and snapshot id in pairs.
const RECORD: &str = r"
local owner, cap, field = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = (#KEYS - 2) / 2
local stats, customers = KEYS[#KEYS - 1], KEYS[#KEYS]
for i = 1, n do
  local published, claim = KEYS[2 * i - 1], KEYS[2 * i]
  local customer, id = ARGV[2 * i + 2], ARGV[2 * i + 3]
  redis.call('ZADD', published, id, id)
  redis.call('ZREMRANGEBYRANK', published, 0, -cap - 1)
  if redis.call('GET', claim) == owner then redis.call('DEL', claim) end
  redis.call('SADD', customers, customer)
end
redis.call('HINCRBY', stats, field, n)
return n
";

/// Deletes the owner's claims (never another producer's). KEYS: claim keys.
/// ARGV: owner.
const RELEASE: &str = r"
local n = 0
for _, claim in ipairs(KEYS) do
  if redis.call('GET', claim) == ARGV[1] then
    redis.call('DEL', claim)
    n = n + 1
  end
end
return n
";

/// One published snapshot for [`PublishLedger::record`].
#[derive(Debug, Clone)]
pub struct Published {
    /// Whose snapshot.
    pub customer: Customer,
    /// Which snapshot.
    pub snapshot: SnapshotId,
    /// The published event's id (the message id).
    pub event_id: String,
    /// The event's priority.
    pub priority: u8,
}

/// The publish-once ledger of one producer process.
#[derive(Clone)]
pub struct PublishLedger {
    con: ConnectionManager,
    keys: Keys,
    owner: String,
}

impl PublishLedger {
    /// A ledger whose claims are owned by a fresh id (one per process).
    pub fn new(con: ConnectionManager, keys: Keys) -> Self {
        Self::with_owner(con, keys, uuid::Uuid::new_v4().to_string())
    }

    /// A ledger with a given owner id (tests: two producers).
    pub fn with_owner(con: ConnectionManager, keys: Keys, owner: String) -> Self {
        PublishLedger { con, keys, owner }
    }

    /// The id this ledger's claims carry.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims each snapshot for [`PUBLISH_CLAIM_TTL`] unless it was
    /// published or another producer claimed it; one script call.
    pub async fn claim(&self, items: &[(Customer, SnapshotId)]) -> Result<Vec<Claim>, StateError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let script = redis::Script::new(CLAIM);
        let mut call = script.prepare_invoke();
        for (customer, snapshot) in items {
            call.key(self.keys.published(customer))
                .key(self.keys.publishing(customer, snapshot.get()));
        }
        call.arg(&self.owner)
            .arg(u64::try_from(PUBLISH_CLAIM_TTL.as_millis()).unwrap_or(60_000));
        for (_, snapshot) in items {
            call.arg(snapshot.get());
        }
        let mut con = self.con.clone();
        let codes: Vec<i64> = call.invoke_async(&mut con).await?;
        Ok(codes
            .into_iter()
            .map(|c| match c {
                1 => Claim::Published,
                2 => Claim::Claimed,
                3 => Claim::Ours,
                _ => Claim::Theirs,
            })
            .collect())
    }

    /// Records confirmed publishes: the published sets, the claims deleted,
    /// the `published` counter and one `published` audit entry each; one
    /// script call and one pipeline.
    pub async fn record(&self, done: &[Published]) -> Result<(), StateError> {
        if done.is_empty() {
            return Ok(());
        }
        let script = redis::Script::new(RECORD);
        let mut call = script.prepare_invoke();
        for p in done {
            call.key(self.keys.published(&p.customer))
                .key(self.keys.publishing(&p.customer, p.snapshot.get()));
        }
        call.key(self.keys.stats()).key(self.keys.customers());
        call.arg(&self.owner)
            .arg(REMEMBERED_SNAPSHOTS)
            .arg(Counter::Published.as_str());
        for p in done {
            call.arg(p.customer.as_str()).arg(p.snapshot.get());
        }
        let mut con = self.con.clone();
        let _: i64 = call.invoke_async(&mut con).await?;
        let mut pipe = redis::pipe();
        for p in done {
            let fields = [
                ("customer", p.customer.to_string()),
                ("snapshot_id", p.snapshot.to_string()),
                ("event_id", p.event_id.clone()),
                ("priority", p.priority.to_string()),
            ];
            pipe.add_command(audit_command(
                &self.keys,
                AuditEvent::Published.as_str(),
                &fields,
            ))
            .ignore();
        }
        let _: () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Deletes this producer's claims on `items` (a publish failed), trying
    /// three times: a claim whose release is lost is retaken by this
    /// producer's next scan anyway ([`Claim::Ours`]), but another producer
    /// would wait for its TTL.
    pub async fn release(&self, items: &[(Customer, SnapshotId)]) -> Result<(), StateError> {
        if items.is_empty() {
            return Ok(());
        }
        let script = redis::Script::new(RELEASE);
        let mut call = script.prepare_invoke();
        for (customer, snapshot) in items {
            call.key(self.keys.publishing(customer, snapshot.get()));
        }
        call.arg(&self.owner);
        let mut attempt = 0u32;
        loop {
            let mut con = self.con.clone();
            match call.invoke_async::<i64>(&mut con).await {
                Ok(_) => return Ok(()),
                Err(_) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * 5u64.pow(attempt - 1))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
