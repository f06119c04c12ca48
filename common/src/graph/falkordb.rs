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

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value as RedisValue};

use super::cypher::{node_statement, relationship_statement};
use super::{
    quote, Counts, GraphError, GraphStore, GraphWriter, Health, NodeWrite, RelWrite, Value,
};
use crate::config::{GraphKind, ServiceUrl};
use crate::ident::{Customer, DatabaseName};

/// Key holding the database an alias graph was copied from.
pub fn alias_key(alias: &str) -> String {
    format!("snapswitch:alias:{alias}")
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

pub struct FalkorStore {
    con: ConnectionManager,
    /// Write batches go round-robin over these: Redis runs one blocking
    /// command per connection at a time, so K batches in flight need K
    /// connections to reach the server's thread pool together.
    writers: Vec<ConnectionManager>,
    next_writer: AtomicUsize,
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
        Ok(FalkorStore {
            con,
            writers: pool,
            next_writer: AtomicUsize::new(0),
        })
    }

    async fn open(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
    ) -> Result<ConnectionManager, GraphError> {
        let client = crate::tls::redis_client(url, ca)
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
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            // Debug keeps a decimal point or exponent, so it reads back as a float.
            let _ = write!(out, "{f:?}");
        }
        Value::Float(f) => {
            return Err(GraphError::Permanent(format!(
                "float value {f} cannot be stored (not finite)"
            )));
        }
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

/// `CYPHER rows=[[v, v, …], …] ` for the given rows and columns; with
/// `ends`, each row starts with its two internal node ids.
fn rows_param(
    rows: &[usize],
    ends: Option<&[[super::NodeRef; 2]]>,
    columns: &[&super::Values],
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
            let _ = write!(out, "{a},{b}");
            first = false;
        }
        for col in columns {
            if !first {
                out.push(',');
            }
            first = false;
            write_literal(&mut out, col.get(row))?;
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
        let mut q = rows_param(w.rows, None, &columns)?;
        q.push_str(&node_statement(w));
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
        let mut q = rows_param(w.rows, Some(w.ends), &columns)?;
        q.push_str(&relationship_statement(w));
        let reply = self.write_query(&self.key_of(db).await?, &q).await?;
        Ok(stat(&reply, "Relationships created"))
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
