//! FalkorDB over its Redis protocol (`GRAPH.QUERY`), through the redis crate.
//!
//! Databases are graph keys. FalkorDB has no aliases, so the alias `<customer>`
//! is the live database's graph key itself, and the string key
//! `snapswitch:alias:<customer>` records which database that is. A switch is
//! one Lua script, atomic like every Redis script:
//!
//! ```text
//! RENAME <customer> <customer>-<old id>     (the old live graph gets its name back)
//! RENAME <customer>-<new id> <customer>     (the new one becomes the alias)
//! SET snapswitch:alias:<customer> <customer>-<new id>
//! ```
//! A reader of `<customer>` sees the old graph or the new one, never a mix and
//! never nothing; no data is copied. The adapter presents the same model as
//! Neo4j: the live database is listed, counted and addressed by its own name
//! (`<customer>-<id>`), and it cannot be dropped while live.
//!
//! `GRAPH.COPY` (a copy instead of a rename) was tried first and dropped:
//! it forks the server, and two concurrent copies wedge FalkorDB 4.16
//! ("Can't fork for module: File exists", then no reply to anything).
//!
//! FalkorDB takes parameters as a `CYPHER name=value` prefix of the query
//! text, so values are written as Cypher literals by [`write_literal`], the one
//! place that must escape correctly.
//!
//! Over 600 lines: the Lua scripts of the fenced lifecycle, the literal writer,
//! the reply parsing and both trait impls of the one FalkorDB store. Its split
//! into `scripts`, `literals` and `replies` waits for the GRAPH.BULK work on
//! this file (node reservations) to land, so the two do not collide.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value as RedisValue};

use super::cypher::{node_statement_with, relationship_statement_with};
use super::values::{Cell, CellKind};
use super::{
    quote, Census, Counts, DbState, Fence, GraphError, GraphStore, GraphWriter, Health, NodeWrite,
    RelWrite, Scalar, SwitchMode, Value,
};
use crate::adapters::graph::GraphKind;
use crate::adapters::secret::ServiceUrl;
use crate::adapters::snapshot::schema::SchemaStatement;
use crate::adapters::snapshot::PropType;
use crate::contract::ident::{Customer, DatabaseName};

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
const FENCE_CHECK: &str = r"
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < seen then
  return redis.error_reply('FENCED token ' .. ARGV[1] .. ' is older than ' .. seen .. ' (' .. KEYS[1] .. '): a newer lock holder exists')
end
if token > seen then redis.call('SET', KEYS[1], ARGV[1]) end
";

/// KEYS = fence, mark, database; ARGV = token, snapshot, database name.
const CREATE_FENCED: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('EXISTS graph `' .. ARGV[3] .. '` already exists')
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'state', 'loading', 'token', ARGV[1], 'snapshot', ARGV[2])
return 1";

/// KEYS = fence, mark, database; ARGV = token, database name, the new
/// state (`verified` or `held`).
const MARK_VERIFIED: &str = r"
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
const RELEASE_HELD: &str = r"
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
const SWITCH_FENCED: &str = r"
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
const DROP_FENCED: &str = r"
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

fn fenced(body: &str) -> String {
    format!("{FENCE_CHECK}{body}")
}

/// A fenced script's refusal: `FENCED` becomes [`GraphError::Fenced`], the
/// lifecycle refusals a permanent error with the script's own words.
fn map_fenced(e: redis::RedisError) -> GraphError {
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
const UNALIAS: &str = r"
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
const SWITCH: &str = r"
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

/// Connections for write batches when the caller does not say.
pub const DEFAULT_WRITE_CONNECTIONS: usize = 4;

/// A FalkorDB server: the load path and the admin path, with its marks.
pub struct FalkorStore {
    con: ConnectionManager,
    /// Write batches go round-robin over these: Redis runs one blocking
    /// command per connection at a time, so K batches in flight need K
    /// connections to reach the server's thread pool together.
    writers: Vec<ConnectionManager>,
    next_writer: AtomicUsize,
    /// Opens a connection of its own for each check query: a slow check
    /// (FalkorDB notices its TIMEOUT late) must not hold up the store's
    /// other commands, nor the next check.
    /// (Boxed: the store stays small.)
    client: Box<redis::Client>,
}

async fn graph_query(
    mut con: ConnectionManager,
    graph: &str,
    query: &str,
) -> Result<RedisValue, GraphError> {
    redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(query)
        .query_async(&mut con)
        .await
        .map_err(map_err)
}

impl FalkorStore {
    /// Connects to `url` with the default write connections.
    pub async fn connect(url: &ServiceUrl) -> Result<Self, GraphError> {
        Self::connect_with(url, None, DEFAULT_WRITE_CONNECTIONS).await
    }

    /// [`FalkorStore::connect`] with `rediss://` trusting the CA in `ca`.
    pub async fn connect_tls(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, GraphError> {
        Self::connect_with(url, ca, DEFAULT_WRITE_CONNECTIONS).await
    }

    /// Connects with `writers` connections for write batches (at least 1).
    pub async fn connect_with_writers(
        url: &ServiceUrl,
        writers: usize,
    ) -> Result<Self, GraphError> {
        Self::connect_with(url, None, writers).await
    }

    /// Connects with `writers` connections for write batches (at least 1),
    /// `rediss://` trusting the CA in `ca`.
    pub async fn connect_with(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
        writers: usize,
    ) -> Result<Self, GraphError> {
        let con = Self::open(url, ca).await?;
        let mut pool = Vec::with_capacity(writers.max(1));
        for _ in 0..writers.max(1) {
            pool.push(Self::open(url, ca).await?);
        }
        let client = crate::adapters::tls::redis_client(url, ca)
            .map_err(|e| GraphError::Permanent(format!("FalkorDB URL {}: {e}", url.redacted())))?;
        Ok(FalkorStore {
            con,
            writers: pool,
            next_writer: AtomicUsize::new(0),
            client: Box::new(client),
        })
    }

    async fn open(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
    ) -> Result<ConnectionManager, GraphError> {
        let client = crate::adapters::tls::redis_client(url, ca)
            .map_err(|e| GraphError::Permanent(format!("FalkorDB URL {}: {e}", url.redacted())))?;
        // Big UNWIND batches can take a while; a stuck server is caught by the
        // lock renewal and the worker's own timeouts, not by this one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(600)))
            // Fail fast on the first connect; callers decide how long to retry.
            .set_number_of_retries(2);
        let con = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| {
                GraphError::Transient(format!(
                    "cannot connect to FalkorDB at {}: {e}",
                    url.redacted()
                ))
            })?;
        Ok(con)
    }

    async fn query(&self, graph: &str, query: &str) -> Result<RedisValue, GraphError> {
        graph_query(self.con.clone(), graph, query).await
    }

    /// `loading` (under this fence's token) → `state` (`verified`/`held`).
    async fn mark_loaded(&self, db: &str, fence: &Fence, state: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(MARK_VERIFIED))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .arg(fence.token)
            .arg(db)
            .arg(state)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(())
    }

    /// A write statement, on the next write connection.
    async fn write_query(&self, graph: &str, query: &str) -> Result<RedisValue, GraphError> {
        let i = self.next_writer.fetch_add(1, AtomicOrdering::Relaxed) % self.writers.len();
        graph_query(self.writers[i].clone(), graph, query).await
    }

    async fn exists(&self, key: &str) -> Result<bool, GraphError> {
        let mut con = self.con.clone();
        con.exists(key).await.map_err(map_err)
    }

    /// The customer whose alias currently holds `db`, if `db` is live.
    async fn live_alias(&self, db: &str) -> Result<Option<String>, GraphError> {
        let Ok(name) = DatabaseName::parse(db) else {
            return Ok(None);
        };
        let alias = name.customer.to_string();
        let target = self.alias_target(&alias).await?;
        Ok((target.as_deref() == Some(db)).then_some(alias))
    }

    /// The graph key that holds database `db`: its own name, or the alias's
    /// while it is live.
    async fn key_of(&self, db: &str) -> Result<String, GraphError> {
        Ok(self.live_alias(db).await?.unwrap_or_else(|| db.to_owned()))
    }
}

fn map_err(e: redis::RedisError) -> GraphError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "OOM" | "MASTERDOWN")
        );
    if transient {
        GraphError::Transient(e.to_string())
    } else {
        GraphError::Permanent(e.to_string())
    }
}

/// Appends `v` as a Cypher literal FalkorDB parses back to the same value.
pub fn write_literal(out: &mut String, v: Value<'_>) -> Result<(), GraphError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(i) => {
            write!(out, "{i}").ok();
        }
        Value::Float(f) if f.is_finite() => {
            // Debug keeps a decimal point or exponent, so it reads back as a float.
            write!(out, "{f:?}").ok();
        }
        Value::Float(f) => {
            return Err(GraphError::Permanent(format!(
                "float value {f} cannot be stored (not finite)"
            )));
        }
        Value::Cell(c) => write_cell(out, c)?,
        Value::Str(s) => {
            // FalkorDB decodes \\ and \' (among others) inside quotes and
            // passes every other character through raw; a NUL would end the
            // query text early, so it is refused (measured: docs/notes/falkordb-facts.md).
            if s.contains('\0') {
                return Err(GraphError::Permanent(
                    "string value contains a NUL character, which FalkorDB cannot store".into(),
                ));
            }
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
    }
    Ok(())
}

fn refuse(ty: &str, why: &str) -> GraphError {
    GraphError::Permanent(format!(
        "FalkorDB 4.16 cannot store `{ty}` values{why}; load this snapshot into a Neo4j target, or declare the column `string` to keep the text"
    ))
}

fn write_str(out: &mut String, s: &str) {
    out.push('\'');
    out.push_str(s);
    out.push('\'');
}

/// The FalkorDB function that builds a value of `ty` from its parameter,
/// or a refusal naming the type when FalkorDB 4.16 has none. Measured on
/// 4.16.3 (docs/notes/falkordb-facts.md, "Temporal values and points"):
/// `date`, `localtime`, `localdatetime`, `duration` and `point` exist;
/// zoned `time` and `datetime` do not.
fn constructor(ty: PropType) -> Result<Option<&'static str>, GraphError> {
    Ok(match ty {
        PropType::Date => Some("date"),
        PropType::LocalTime => Some("localtime"),
        PropType::LocalDateTime => Some("localdatetime"),
        PropType::Duration => Some("duration"),
        PropType::Point => Some("point"),
        PropType::Time => return Err(refuse("time", " (it has no time-with-offset type)")),
        PropType::DateTime => {
            return Err(refuse("datetime", " (it has no date-time-with-zone type)"))
        }
        PropType::Int
        | PropType::Int32
        | PropType::Short
        | PropType::Byte
        | PropType::Float
        | PropType::Bool
        | PropType::String => None,
    })
}

/// The expression that stores column `values` from the row expression `e`.
fn wrap(values: &super::Values, e: String) -> String {
    let Some(CellKind { ty, array }) = values.cell_kind() else {
        return e;
    };
    match (constructor(ty), array) {
        (Ok(Some(f)), false) => format!("{f}({e})"),
        (Ok(Some(f)), true) => format!("[x IN {e} | {f}(x)]"),
        // Refused when the literal is written (`write_cell`).
        _ => e,
    }
}

/// A cell as the literal its constructor function takes: FalkorDB 4.16
/// keeps whole seconds only in `localtime`/`localdatetime`, turns a
/// fractional or negative duration into null, and stores points as 32-bit
/// floats (measured); each of those is refused here, naming the value, so
/// nothing is stored different from the file.
fn write_cell(out: &mut String, c: &Cell) -> Result<(), GraphError> {
    use chrono::{Datelike, Timelike};
    match c {
        Cell::Int(i) => write_literal(out, Value::Int(*i))?,
        Cell::Float(f) => write_literal(out, Value::Float(*f))?,
        Cell::Bool(b) => write_literal(out, Value::Bool(*b))?,
        Cell::Str(s) => write_literal(out, Value::Str(s))?,
        Cell::Date(d) => {
            if !(1..=9999).contains(&d.year()) {
                return Err(refuse(
                    "date",
                    &format!(" outside the years 1 to 9999 (value {d})"),
                ));
            }
            write_str(out, &d.format("%Y-%m-%d").to_string());
        }
        Cell::LocalTime(t) => {
            if t.nanosecond() != 0 {
                return Err(refuse(
                    "localtime",
                    &format!(
                        " with fractions of a second (value {t}: it keeps whole seconds only)"
                    ),
                ));
            }
            write_str(out, &t.format("%H:%M:%S").to_string());
        }
        Cell::LocalDateTime(t) => {
            if t.nanosecond() != 0 {
                return Err(refuse(
                    "localdatetime",
                    &format!(
                        " with fractions of a second (value {t}: it keeps whole seconds only)"
                    ),
                ));
            }
            if !(1..=9999).contains(&t.year()) {
                return Err(refuse(
                    "localdatetime",
                    &format!(" outside the years 1 to 9999 (value {t})"),
                ));
            }
            write_str(out, &t.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        Cell::Time(..) => constructor(PropType::Time).map(|_| ())?,
        Cell::DateTime(_) | Cell::ZonedDateTime(..) => {
            constructor(PropType::DateTime).map(|_| ())?
        }
        Cell::Duration(d) => {
            if d.months < 0 || d.days < 0 || d.seconds < 0 || d.nanos != 0 {
                return Err(refuse(
                    "duration",
                    &format!(" that are negative or have fractions of a second (value {d:?})"),
                ));
            }
            // FalkorDB keeps a duration as one count of seconds and splits it
            // back into months and days on reading: PT90000S reads as P1DT1H,
            // P31D as P1M, P1M30D as P2M2D (measured). Only durations that
            // read back as written are stored.
            let max_days = if d.months == 0 { 30 } else { 27 };
            if d.seconds >= 86_400 || d.days > max_days {
                return Err(refuse("duration", &format!(" with 24 hours or more in the time part, or more than {max_days} days (value {d:?}: it would read back as other days and months)")));
            }
            let (h, m, s) = (d.seconds / 3600, d.seconds / 60 % 60, d.seconds % 60);
            write!(out, "'P{}M{}DT{h}H{m}M{s}S'", d.months, d.days).ok();
        }
        Cell::Point(p) => {
            if p.srid != 4326 {
                return Err(refuse(
                    "point",
                    &format!(" other than 2D WGS-84 latitude/longitude (srid {})", p.srid),
                ));
            }
            let exact = |v: f64| f64::from(v as f32) == v;
            if !exact(p.x) || !exact(p.y) {
                return Err(refuse("point", &format!(" whose coordinates are not exact 32-bit floats (latitude {}, longitude {}: it keeps 32-bit floats)", p.y, p.x)));
            }
            write!(out, "{{latitude: {:?}, longitude: {:?}}}", p.y, p.x).ok();
        }
        Cell::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_cell(out, item)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

/// `CYPHER rows=[[v, v, …], …] ` for the given rows and columns; with
/// `ends`, each row starts with its two internal node ids. `names[j]` names
/// column `j` in a refusal.
fn rows_param(
    rows: &[usize],
    ends: Option<&[[super::NodeRef; 2]]>,
    columns: &[&super::Values],
    names: &[&str],
) -> Result<String, GraphError> {
    let mut out = String::with_capacity(16 + rows.len() * (columns.len() + 2) * 12);
    out.push_str("CYPHER rows=[");
    for (i, &row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        let mut first = true;
        if let Some([a, b]) = ends.and_then(|e| e.get(i)) {
            write!(out, "{a},{b}").ok();
            first = false;
        }
        for (j, col) in columns.iter().enumerate() {
            if !first {
                out.push(',');
            }
            first = false;
            write_literal(&mut out, col.get(row)).map_err(|e| match e {
                GraphError::Permanent(m) => GraphError::Permanent(format!(
                    "property `{}`: {m}",
                    names.get(j).copied().unwrap_or("?")
                )),
                other => other,
            })?;
        }
        out.push(']');
    }
    out.push_str("] ");
    Ok(out)
}

/// The first column of every row of a reply, as integers: `[header, rows, stats]`.
fn int_column(reply: &RedisValue) -> Option<Vec<i64>> {
    let RedisValue::Array(parts) = reply else {
        return None;
    };
    let RedisValue::Array(rows) = parts.get(1)? else {
        return None;
    };
    rows.iter()
        .map(|row| match row {
            RedisValue::Array(cells) => match cells.first()? {
                RedisValue::Int(n) => Some(*n),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Reads `<label>: <n>` from the statistics part of a reply.
fn stat(reply: &RedisValue, label: &str) -> u64 {
    let RedisValue::Array(parts) = reply else {
        return 0;
    };
    let Some(RedisValue::Array(stats)) = parts.last() else {
        return 0;
    };
    stats
        .iter()
        .filter_map(|s| match s {
            RedisValue::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            RedisValue::SimpleString(s) => Some(s.clone()),
            _ => None,
        })
        .find_map(|s| {
            s.strip_prefix(label)
                .and_then(|v| v.trim_start_matches(':').trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Distinct property names one FalkorDB graph can hold: attribute ids are
/// `unsigned short` and `USHRT_MAX`, `USHRT_MAX - 1` are reserved
/// (`ATTRIBUTE_ID_NONE`, `ATTRIBUTE_ID_ALL` in FalkorDB's
/// `src/graph/entities/attribute_set.h`). Past it, ids wrap and properties
/// are silently mixed up.
pub const FALKORDB_MAX_PROPERTY_KEYS: usize = 65534;
/// The first column of every row of a reply `[header, rows, stats]`, as
/// strings (label and type names of `CALL db.labels()`).
fn first_column_strings(reply: &RedisValue) -> Result<Vec<String>, GraphError> {
    let bad = || GraphError::Permanent(format!("unexpected reply from FalkorDB: {reply:?}"));
    let RedisValue::Array(parts) = reply else {
        return Err(bad());
    };
    let Some(RedisValue::Array(rows)) = parts.get(1) else {
        return Err(bad());
    };
    rows.iter()
        .map(|row| match row {
            RedisValue::Array(cells) => match cells.first() {
                Some(RedisValue::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
                Some(RedisValue::SimpleString(s)) => Ok(s.clone()),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

/// The status of the unique constraint on `label`(`property`) in a
/// `CALL db.constraints()` reply of (label, properties, status) rows.
fn constraint_status(reply: &RedisValue, label: &str, property: &str) -> Option<String> {
    let text = |v: &RedisValue| match v {
        RedisValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RedisValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let RedisValue::Array(parts) = reply else {
        return None;
    };
    let RedisValue::Array(rows) = parts.get(1)? else {
        return None;
    };
    rows.iter().find_map(|row| {
        let RedisValue::Array(cells) = row else {
            return None;
        };
        let props = match cells.get(1)? {
            RedisValue::Array(ps) => ps.iter().filter_map(text).collect::<Vec<_>>(),
            other => vec![text(other)?],
        };
        let props_match = props == [property.to_owned()] || props == [format!("[{property}]")];
        (text(cells.first()?)?.as_str() == label && props_match).then(|| text(cells.get(2)?))?
    })
}

/// The one value of a `[header, rows, stats]` reply. FalkorDB's verbose
/// replies give integers as integers and booleans, floats and strings as
/// text: `true`/`false` read as booleans, decimal text as a float.
fn scalar_of(reply: &RedisValue) -> Scalar {
    let rows = match reply {
        RedisValue::Array(parts) => match parts.get(1) {
            Some(RedisValue::Array(rows)) => rows,
            _ => return Scalar::Null,
        },
        other => return Scalar::Other(format!("{other:?}")),
    };
    let cells = match rows.as_slice() {
        [RedisValue::Array(cells)] => cells,
        _ => return Scalar::Other(format!("{} rows", rows.len())),
    };
    let cell = match cells.as_slice() {
        [cell] => cell,
        _ => return Scalar::Other(format!("{} columns", cells.len())),
    };
    match cell {
        RedisValue::Int(n) => Scalar::Int(*n),
        RedisValue::Nil => Scalar::Null,
        RedisValue::Double(f) => Scalar::Float(*f),
        RedisValue::Boolean(b) => Scalar::Bool(*b),
        RedisValue::BulkString(b) => {
            let text = String::from_utf8_lossy(b);
            match text.as_ref() {
                "true" => Scalar::Bool(true),
                "false" => Scalar::Bool(false),
                t => t
                    .parse::<f64>()
                    .map_or_else(|_| Scalar::Other(format!("{t:?}")), Scalar::Float),
            }
        }
        RedisValue::SimpleString(t) => Scalar::Other(format!("{t:?}")),
        other => Scalar::Other(format!("{other:?}")),
    }
}

/// The single integer of a `RETURN count(..)` reply: `[header, [[n]], stats]`.
fn single_int(reply: &RedisValue) -> Option<u64> {
    let RedisValue::Array(parts) = reply else {
        return None;
    };
    let RedisValue::Array(rows) = parts.get(1)? else {
        return None;
    };
    let RedisValue::Array(row) = rows.first()? else {
        return None;
    };
    match row.first()? {
        RedisValue::Int(n) => u64::try_from(*n).ok(),
        RedisValue::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl GraphWriter for FalkorStore {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        let q = format!(
            "CREATE INDEX FOR (n:{}) ON (n.{})",
            quote(label),
            quote(property)
        );
        match self.query(&self.key_of(db).await?, &q).await {
            Err(GraphError::Permanent(msg))
                if msg.to_ascii_lowercase().contains("already indexed") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn write_nodes(
        &self,
        db: &str,
        w: &NodeWrite<'_>,
    ) -> Result<Vec<super::NodeRef>, GraphError> {
        if w.rows.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<&super::Values> = w.props.iter().map(|p| p.values).collect();
        let names: Vec<&str> = w.props.iter().map(|p| p.name).collect();
        let mut q = rows_param(w.rows, None, &columns, &names)?;
        q.push_str(&node_statement_with(w, &wrap));
        let reply = self.write_query(&self.key_of(db).await?, &q).await?;
        match int_column(&reply) {
            Some(ids) if ids.len() == w.rows.len() => Ok(ids),
            _ => Err(GraphError::Permanent(format!(
                "FalkorDB returned {} node ids for {} created nodes",
                int_column(&reply).map_or(0, |i| i.len()),
                w.rows.len()
            ))),
        }
    }

    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let columns: Vec<&super::Values> = w.props.iter().map(|p| p.values).collect();
        let names: Vec<&str> = w.props.iter().map(|p| p.name).collect();
        let mut q = rows_param(w.rows, Some(w.ends), &columns, &names)?;
        q.push_str(&relationship_statement_with(w, &wrap));
        let reply = self.write_query(&self.key_of(db).await?, &q).await?;
        Ok(stat(&reply, "Relationships created"))
    }

    fn lacks(&self, ty: PropType) -> Option<String> {
        constructor(ty).err().map(|e| match e {
            GraphError::Permanent(m) | GraphError::Transient(m) | GraphError::Fenced(m) => m,
        })
    }

    fn can_bulk(&self) -> bool {
        true
    }

    async fn bulk_call(&self, db: &str, args: Vec<Vec<u8>>) -> Result<(), GraphError> {
        let key = self.key_of(db).await?;
        let i = self.next_writer.fetch_add(1, AtomicOrdering::Relaxed) % self.writers.len();
        let mut con = self.writers[i].clone();
        let mut cmd = redis::cmd("GRAPH.BULK");
        cmd.arg(&key);
        for a in &args {
            cmd.arg(a.as_slice());
        }
        let reply: RedisValue = cmd.query_async(&mut con).await.map_err(map_err)?;
        let text = match &reply {
            RedisValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            RedisValue::SimpleString(s) => s.clone(),
            other => format!("{other:?}"),
        };
        if text.contains("nodes created") {
            Ok(())
        } else {
            Err(GraphError::Permanent(format!(
                "unexpected GRAPH.BULK reply for `{key}`: {text}"
            )))
        }
    }

    async fn bulk_reserve(&self, db: &str, nodes: u64) -> Result<(), GraphError> {
        // A call with no tokens: `Graph_AllocateNodes(nodes)`, nothing created.
        let zero = b"0".to_vec();
        let args = vec![
            nodes.to_string().into_bytes(),
            zero.clone(),
            zero.clone(),
            zero,
        ];
        self.bulk_call(db, args).await
    }

    async fn bulk_sync(
        &self,
        db: &str,
        target: &super::falkordb_bulk::SyncTarget,
    ) -> Result<(), GraphError> {
        use super::falkordb_bulk::SyncTarget;
        // A query reading the matrix makes FalkorDB resize it and apply its
        // pending changes (on a worker thread, under the graph's read lock).
        let key = self.key_of(db).await?;
        let q = match target {
            SyncTarget::NodeLabels => "MATCH (n) WHERE id(n) = 0 RETURN labels(n)".to_owned(),
            SyncTarget::Adjacency => "MATCH (a)-->() WHERE id(a) = 0 RETURN count(a)".to_owned(),
            SyncTarget::Label(label) => {
                format!("MATCH (n:{}) WHERE id(n) = 0 RETURN count(n)", quote(label))
            }
            SyncTarget::RelType(rel_type) => format!(
                "MATCH (a)-[:{}]->() WHERE id(a) = 0 RETURN count(a)",
                quote(rel_type)
            ),
        };
        self.query(&key, &q).await.map(|_| ())
    }

    fn limits(&self) -> super::StoreLimits {
        super::StoreLimits {
            property_keys: Some(FALKORDB_MAX_PROPERTY_KEYS),
        }
    }

    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        let key = self.key_of(db).await?;
        let nodes = self.query(&key, super::cypher::COUNT_NODES).await?;
        let rels = self.query(&key, super::cypher::COUNT_RELATIONSHIPS).await?;
        match (single_int(&nodes), single_int(&rels)) {
            (Some(nodes), Some(relationships)) => Ok(Counts {
                nodes,
                relationships,
            }),
            _ => Err(GraphError::Permanent(format!(
                "unexpected count reply from FalkorDB: {nodes:?} / {rels:?}"
            ))),
        }
    }
}

#[async_trait]
impl GraphStore for FalkorStore {
    fn kind(&self) -> GraphKind {
        GraphKind::Falkordb
    }

    async fn ping(&self) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let _: Vec<String> = redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(|e| {
                GraphError::Permanent(format!(
                    "server answers but is not FalkorDB (GRAPH.LIST failed: {e})"
                ))
            })?;
        Ok(())
    }

    async fn health(&self) -> Result<Health, GraphError> {
        let mut con = self.con.clone();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let field = |name: &str| -> Option<f64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
        };
        let used = field("used_memory");
        let limit = field("maxmemory")
            .filter(|m| *m > 0.0)
            .or_else(|| field("total_system_memory"));
        let memory_used_percent = match (used, limit) {
            (Some(u), Some(l)) if l > 0.0 => Some(u / l * 100.0),
            _ => None,
        };
        Ok(Health {
            databases: self.list_databases().await?.len(),
            max_databases: None,
            memory_used_percent,
            pagecache_used_percent: None,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>, GraphError> {
        let mut con = self.con.clone();
        let graphs: Vec<String> = redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(graphs.len());
        for graph in graphs {
            // An alias graph is listed under the database it holds.
            let target = match Customer::parse(&graph) {
                Ok(_) => self.alias_target(&graph).await?,
                Err(_) => None,
            };
            out.push(target.unwrap_or(graph));
        }
        Ok(out)
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>, GraphError> {
        let mut con = self.con.clone();
        con.get(alias_key(alias)).await.map_err(map_err)
    }

    async fn create_database(&self, db: &str) -> Result<(), GraphError> {
        if self.exists(db).await? || self.live_alias(db).await?.is_some() {
            return Err(GraphError::Permanent(format!(
                "graph `{db}` already exists"
            )));
        }
        // An unfenced database carries no lifecycle mark (a stale one from
        // an earlier database of that name must not make it look verified).
        let mut con = self.con.clone();
        let _: i64 = con.del(mark_key(db)).await.map_err(map_err)?;
        // A graph key comes into being with its first write; an empty query
        // creates it, so that even an empty snapshot has a database.
        self.query(db, "RETURN 0").await?;
        Ok(())
    }

    async fn drop_database(&self, db: &str) -> Result<(), GraphError> {
        if let Some(alias) = self.live_alias(db).await? {
            return Err(GraphError::Permanent(format!(
                "database `{db}` is the live target of alias `{alias}`; switch the alias first"
            )));
        }
        if !self.exists(db).await? {
            return Ok(());
        }
        let mut con = self.con.clone();
        let _: RedisValue = redis::cmd("GRAPH.DELETE")
            .arg(db)
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let _: i64 = con.del(mark_key(db)).await.map_err(map_err)?;
        Ok(())
    }

    async fn switch_alias(&self, alias: &str, db: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(SWITCH)
            .key(alias_key(alias))
            .key(alias)
            .key(db)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn drop_alias(&self, alias: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(UNALIAS)
            .key(alias_key(alias))
            .key(alias)
            .invoke_async(&mut con)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn fence_seen(&self, customer: &str) -> Result<u64, GraphError> {
        let mut con = self.con.clone();
        let seen: Option<u64> = con.get(fence_key(customer)).await.map_err(map_err)?;
        Ok(seen.unwrap_or(0))
    }

    async fn create_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        if self.live_alias(db).await?.is_some() {
            return Err(GraphError::Permanent(format!(
                "graph `{db}` already exists"
            )));
        }
        let snapshot = DatabaseName::parse(db)
            .map(|d| d.snapshot.get())
            .unwrap_or(0);
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(CREATE_FENCED))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .arg(fence.token)
            .arg(snapshot)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        // The mark says `loading` before the graph exists: a crash in
        // between leaves only a mark, which the next create replaces.
        self.query(db, "RETURN 0").await?;
        Ok(())
    }

    async fn mark_verified(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.mark_loaded(db, fence, "verified").await
    }

    async fn mark_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.mark_loaded(db, fence, "held").await
    }

    async fn release_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(RELEASE_HELD))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .arg(fence.token)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(())
    }

    async fn read_scalar(
        &self,
        db: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Scalar, GraphError> {
        let key = self.key_of(db).await?;
        // Its own connection, dropped with this future (by the caller's
        // timeout too); the server may finish the query later on its own.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(timeout + Duration::from_secs(1)));
        let mut con = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(map_err)?;
        let reply: RedisValue = redis::cmd("GRAPH.RO_QUERY")
            .arg(&key)
            .arg(query)
            .arg("TIMEOUT")
            .arg(
                u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        Ok(scalar_of(&reply))
    }

    async fn apply_schema(&self, db: &str, statement: &SchemaStatement) -> Result<(), GraphError> {
        let key = self.key_of(db).await?;
        let index = |label: &str, props: &[String]| {
            let props: Vec<String> = props.iter().map(|p| format!("n.{}", quote(p))).collect();
            format!(
                "CREATE INDEX FOR (n:{}) ON ({})",
                quote(label),
                props.join(", ")
            )
        };
        let ignore = |r: Result<RedisValue, GraphError>, what: &str| match r {
            Err(GraphError::Permanent(m)) if m.to_ascii_lowercase().contains(what) => Ok(()),
            other => other.map(|_| ()),
        };
        match statement {
            SchemaStatement::Index { label, properties } => ignore(
                self.query(&key, &index(label, properties)).await,
                "already indexed",
            ),
            SchemaStatement::Unique { label, property } => {
                // FalkorDB needs an exact-match index under a unique constraint.
                let q = index(label, std::slice::from_ref(property));
                ignore(self.query(&key, &q).await, "already indexed")?;
                let mut con = self.con.clone();
                let created: Result<RedisValue, GraphError> = redis::cmd("GRAPH.CONSTRAINT")
                    .arg("CREATE")
                    .arg(&key)
                    .arg("UNIQUE")
                    .arg("NODE")
                    .arg(label)
                    .arg("PROPERTIES")
                    .arg(1)
                    .arg(property)
                    .query_async(&mut con)
                    .await
                    .map_err(map_err);
                ignore(created, "already exists")?;
                // Constraints are built in the background: wait until it is
                // enforced (immediate on an empty graph).
                for _ in 0..300 {
                    let reply = self.query(&key, "CALL db.constraints() YIELD label, properties, status RETURN label, properties, status").await?;
                    match constraint_status(&reply, label, property).as_deref() {
                        Some("OPERATIONAL") => return Ok(()),
                        Some("FAILED") => {
                            return Err(GraphError::Permanent(format!(
                                "FalkorDB could not build the uniqueness constraint on :{label}({property})"
                            )))
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                Err(GraphError::Transient(format!(
                    "the uniqueness constraint on :{label}({property}) was not operational after 30 s"
                )))
            }
        }
    }

    async fn census(&self, db: &str) -> Result<Census, GraphError> {
        let key = self.key_of(db).await?;
        let counts = self.counts(db).await?;
        let mut census = Census {
            nodes: counts.nodes,
            relationships: counts.relationships,
            ..Census::default()
        };
        let labels = self.query(&key, "CALL db.labels()").await?;
        for label in first_column_strings(&labels)? {
            let q = format!("MATCH (n:{}) RETURN count(n)", quote(&label));
            let n = single_int(&self.query(&key, &q).await?).unwrap_or(0);
            census.labels.insert(label, n);
        }
        let types = self.query(&key, "CALL db.relationshipTypes()").await?;
        for ty in first_column_strings(&types)? {
            let q = format!("MATCH ()-[r:{}]->() RETURN count(r)", quote(&ty));
            let n = single_int(&self.query(&key, &q).await?).unwrap_or(0);
            census.types.insert(ty, n);
        }
        Ok(census)
    }

    async fn switch_fenced(
        &self,
        alias: &str,
        db: &str,
        fence: &Fence,
        mode: SwitchMode,
    ) -> Result<bool, GraphError> {
        let snapshot = DatabaseName::parse(db)
            .map(|d| d.snapshot.get())
            .map_err(|e| {
                GraphError::Permanent(format!("`{db}` is not a snapshot database: {e}"))
            })?;
        let mut con = self.con.clone();
        let n: i64 = redis::Script::new(&fenced(SWITCH_FENCED))
            .key(fence_key(&fence.customer))
            .key(alias_key(alias))
            .key(alias)
            .key(db)
            .key(mark_key(db))
            .arg(fence.token)
            .arg(db)
            .arg(match mode {
                SwitchMode::Forward => "forward",
                SwitchMode::Rollback => "rollback",
            })
            .arg(snapshot)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(n == 1)
    }

    async fn drop_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        let alias = DatabaseName::parse(db)
            .map(|d| d.customer.to_string())
            .unwrap_or_else(|_| fence.customer.clone());
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(DROP_FENCED))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .key(alias_key(&alias))
            .arg(fence.token)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(())
    }

    async fn database_state(&self, db: &str) -> Result<DbState, GraphError> {
        let mut con = self.con.clone();
        let state: Option<String> = con.hget(mark_key(db), "state").await.map_err(map_err)?;
        Ok(match state.as_deref() {
            Some("loading") => DbState::Loading,
            Some("verified") => DbState::Verified,
            Some("held") => DbState::Held,
            Some("retired") => DbState::Retired,
            _ => DbState::Unmarked,
        })
    }

    async fn stray_aliases(&self) -> Result<Vec<(String, String)>, GraphError> {
        let mut con = self.con.clone();
        let graphs: Vec<String> = redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for graph in graphs {
            if Customer::parse(&graph).is_err() || DatabaseName::parse(&graph).is_ok() {
                continue;
            }
            if self.alias_target(&graph).await?.is_none() {
                out.push((
                    graph.clone(),
                    format!("graph `{graph}` is named like customer {graph}'s alias but snapswitch does not manage it (no {}); it blocks every switch of {graph}: check what it holds, then GRAPH.DELETE {graph} (or rename it)", alias_key(&graph)),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value<'_>) -> String {
        let mut s = String::new();
        write_literal(&mut s, v).unwrap();
        s
    }

    #[test]
    fn literals() {
        assert_eq!(lit(Value::Null), "null");
        assert_eq!(lit(Value::Int(-3)), "-3");
        assert_eq!(lit(Value::Float(1.0)), "1.0");
        assert_eq!(lit(Value::Bool(true)), "true");
        assert_eq!(lit(Value::Str(r#"a'b"c\d"#)), r#"'a\'b"c\\d'"#);
        assert!(write_literal(&mut String::new(), Value::Str("a\0b")).is_err());
        let mut s = String::new();
        assert!(write_literal(&mut s, Value::Float(f64::NAN)).is_err());
    }
}
