//! The FalkorDB store's Redis keys and Lua scripts: the alias record, the
//! per-customer fence, the lifecycle marks, and the fenced create, mark,
//! switch and drop, each one atomic script.

use super::*;

/// Key holding the database an alias graph was copied from.
pub fn alias_key(alias: &str) -> String {
    format!("snapswitch:alias:{alias}")
}

/// Integer: the highest fencing token this server has seen for a customer.
pub fn fence_key(customer: &str) -> String {
    format!("snapswitch:fence:{customer}")
}

/// Hash: a database's lifecycle mark (`state`, `token`, `snapshot`).
pub fn mark_key(db: &str) -> String {
    format!("snapswitch:db:{db}")
}

/// The fence check every fenced script starts with: KEYS[1] = fence key,
/// ARGV[1] = token. A lower token than the one seen is refused (`FENCED`);
/// a higher one raises the fence.
pub(super) const FENCE_CHECK: &str = r"
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < seen then
  return redis.error_reply('FENCED token ' .. ARGV[1] .. ' is older than ' .. seen .. ' (' .. KEYS[1] .. '): a newer lock holder exists')
end
if token > seen then redis.call('SET', KEYS[1], ARGV[1]) end
";

/// KEYS = fence, mark, database; ARGV = token, snapshot, database name.
pub(super) const CREATE_FENCED: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('EXISTS graph `' .. ARGV[3] .. '` already exists')
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'state', 'loading', 'token', ARGV[1], 'snapshot', ARGV[2])
return 1";

/// KEYS = fence, mark, database; ARGV = token, database name, the new
/// state (`verified` or `held`).
pub(super) const MARK_VERIFIED: &str = r"
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('MISSING database ' .. ARGV[2] .. ' does not exist')
end
local state = redis.call('HGET', KEYS[2], 'state')
local owner = redis.call('HGET', KEYS[2], 'token')
if state == ARGV[3] and owner == ARGV[1] then return 0 end
if state ~= 'loading' or owner ~= ARGV[1] then
  return redis.error_reply('FENCED database ' .. ARGV[2] .. ' is not being loaded under token ' .. ARGV[1] .. ' (state ' .. tostring(state) .. ', token ' .. tostring(owner) .. ')')
end
redis.call('HSET', KEYS[2], 'state', ARGV[3])
return 1";

/// KEYS = fence, mark, database; ARGV = token, database name. A held
/// database becomes verified (approved by an operator).
pub(super) const RELEASE_HELD: &str = r"
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('MISSING database ' .. ARGV[2] .. ' does not exist')
end
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'held' then
  return redis.error_reply('NOTHELD database ' .. ARGV[2] .. ' is not held (state: ' .. (state or 'unmarked') .. ')')
end
redis.call('HSET', KEYS[2], 'state', 'verified')
return 1";

/// KEYS = fence, alias key, alias graph, new database, its mark;
/// ARGV = token, database name, mode (`forward`/`rollback`), snapshot id.
/// Returns 1 when switched, 0 when the alias already pointed there.
pub(super) const SWITCH_FENCED: &str = r"
local current = redis.call('GET', KEYS[2])
if current == ARGV[2] then return 0 end
local state = redis.call('HGET', KEYS[5], 'state')
if state ~= 'verified' then
  return redis.error_reply('UNVERIFIED database ' .. ARGV[2] .. ' is not verified (state: ' .. (state or 'unmarked') .. '); only a fully loaded and verified database can become live')
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return redis.error_reply('MISSING database ' .. ARGV[2] .. ' does not exist')
end
if current then
  local live = tonumber(string.match(current, '%-(%d+)$'))
  if ARGV[3] == 'forward' and live and live > tonumber(ARGV[4]) then
    return redis.error_reply('STALE alias ' .. KEYS[3] .. ' is on ' .. current .. ', newer than ' .. ARGV[2] .. '; it only moves forward')
  end
  if redis.call('EXISTS', current) == 1 then
    return redis.error_reply('both ' .. KEYS[3] .. ' and ' .. current .. ' exist; refusing to overwrite')
  end
  redis.call('RENAME', KEYS[3], current)
  if ARGV[3] == 'rollback' then
    redis.call('HSET', 'snapswitch:db:' .. current, 'state', 'retired')
  end
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('STRAY graph ' .. KEYS[3] .. ' exists but is not managed by snapswitch (no ' .. KEYS[2] .. '); it blocks every switch of this customer: rename or delete it (GRAPH.DELETE ' .. KEYS[3] .. ') after checking what it holds')
end
redis.call('RENAME', KEYS[4], KEYS[3])
redis.call('SET', KEYS[2], ARGV[2])
return 1";

/// KEYS = fence, mark, database, alias key; ARGV = token, database name.
pub(super) const DROP_FENCED: &str = r"
if redis.call('GET', KEYS[4]) == ARGV[2] then
  return redis.error_reply('LIVE database ' .. ARGV[2] .. ' is the live target of its alias; switch the alias first')
end
redis.call('DEL', KEYS[3])
redis.call('DEL', KEYS[2])
return 1";

/// The hash of the fenced switch script (tests recognise its call).
pub fn switch_script_hash() -> String {
    redis::Script::new(&fenced(SWITCH_FENCED))
        .get_hash()
        .to_owned()
}

pub(super) fn fenced(body: &str) -> String {
    format!("{FENCE_CHECK}{body}")
}

/// A fenced script's refusal: `FENCED` becomes [`GraphError::Fenced`], the
/// lifecycle refusals a permanent error with the script's own words.
pub(super) fn map_fenced(e: redis::RedisError) -> GraphError {
    let detail = e.detail().unwrap_or_default().to_owned();
    match e.code() {
        Some("FENCED") => GraphError::Fenced(detail),
        Some("UNVERIFIED" | "STALE" | "STRAY" | "LIVE" | "EXISTS" | "MISSING" | "NOTHELD") => {
            GraphError::Permanent(detail)
        }
        _ => map_err(e),
    }
}

/// Removes an alias: the live graph gets its database name back and the
/// alias key goes. KEYS = alias key, alias graph. Returns 1 when removed.
pub(super) const UNALIAS: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if redis.call('EXISTS', current) == 1 then
  return redis.error_reply('both ' .. KEYS[2] .. ' and ' .. current .. ' exist; refusing to overwrite')
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], current)
end
redis.call('DEL', KEYS[1])
return 1";

/// Moves the alias onto a database: KEYS = alias key, alias graph, new
/// database; ARGV = new database name. Returns 1 when switched, 0 when the
/// alias already pointed there.
pub(super) const SWITCH: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('database ' .. ARGV[1] .. ' does not exist')
end
if current then
  if redis.call('EXISTS', current) == 1 then
    return redis.error_reply('both ' .. KEYS[2] .. ' and ' .. current .. ' exist; refusing to overwrite')
  end
  redis.call('RENAME', KEYS[2], current)
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('graph ' .. KEYS[2] .. ' exists but is not managed by snapswitch (no ' .. KEYS[1] .. '); refusing to replace it')
end
redis.call('RENAME', KEYS[3], KEYS[2])
redis.call('SET', KEYS[1], ARGV[1])
return 1";
