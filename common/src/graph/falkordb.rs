//! FalkorDB over its Redis protocol (`GRAPH.QUERY`), through the redis crate.
//!
//! Databases are graph keys. FalkorDB has no aliases, so the alias `<customer>`
//! is itself a graph: a copy of the target database, swapped in atomically:
//!
//! ```text
//! GRAPH.COPY <customer>-<id> <customer>.next
//! MULTI; RENAME <customer>.next <customer>; SET snapswitch:alias:<customer> <customer>-<id>; EXEC
//! ```
//! A reader of `<customer>` sees the old graph or the new one, never a mix;
//! RENAME onto an existing key frees the old copy. The retained databases stay
//! under their own names for rollback. The cost is one extra copy of the live
//! graph in memory.
//!
//! FalkorDB takes parameters as a `CYPHER name=value` prefix of the query
//! text, so values are written as Cypher literals by [`write_literal`], the one
//! place that must escape correctly.

use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value as RedisValue};

use super::cypher::{node_statement, relationship_statement};
use super::{quote, Counts, GraphError, GraphStore, Health, NodeWrite, RelWrite, Value};
use crate::config::{GraphKind, ServiceUrl};

/// Key holding the database an alias graph was copied from.
pub fn alias_key(alias: &str) -> String {
    format!("snapswitch:alias:{alias}")
}

/// Temporary name of the next alias copy; `.` cannot occur in customer names,
/// so it never collides with a database or an alias.
fn next_key(alias: &str) -> String {
    format!("{alias}.next")
}

pub struct FalkorStore {
    con: ConnectionManager,
}

impl FalkorStore {
    pub async fn connect(url: &ServiceUrl) -> Result<Self, GraphError> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| GraphError::Permanent(format!("FalkorDB URL {}: {e}", url.redacted())))?;
        // Big UNWIND batches can take a while; a stuck server is caught by the
        // lock renewal and the worker's own timeouts, not by this one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(600)));
        let con = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| {
                GraphError::Transient(format!(
                    "cannot connect to FalkorDB at {}: {e}",
                    url.redacted()
                ))
            })?;
        Ok(FalkorStore { con })
    }

    async fn query(&self, graph: &str, query: &str) -> Result<RedisValue, GraphError> {
        let mut con = self.con.clone();
        redis::cmd("GRAPH.QUERY")
            .arg(graph)
            .arg(query)
            .query_async(&mut con)
            .await
            .map_err(map_err)
    }

    async fn exists(&self, key: &str) -> Result<bool, GraphError> {
        let mut con = self.con.clone();
        con.exists(key).await.map_err(map_err)
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
            out.push('"');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }
    Ok(())
}

/// `CYPHER rows=[[v, v, …], …] ` for the given rows and columns.
fn rows_param(rows: &[usize], columns: &[&super::Values]) -> Result<String, GraphError> {
    let mut out = String::with_capacity(16 + rows.len() * columns.len() * 12);
    out.push_str("CYPHER rows=[");
    for (i, &row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, col) in columns.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_literal(&mut out, col.get(row))?;
        }
        out.push(']');
    }
    out.push_str("] ");
    Ok(out)
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
            memory_used_percent,
            pagecache_used_percent: None,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>, GraphError> {
        let mut con = self.con.clone();
        redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(map_err)
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>, GraphError> {
        let mut con = self.con.clone();
        con.get(alias_key(alias)).await.map_err(map_err)
    }

    async fn create_database(&self, db: &str) -> Result<(), GraphError> {
        if self.exists(db).await? {
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

    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        let q = format!(
            "CREATE INDEX FOR (n:{}) ON (n.{})",
            quote(label),
            quote(property)
        );
        match self.query(db, &q).await {
            Err(GraphError::Permanent(msg))
                if msg.to_ascii_lowercase().contains("already indexed") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let columns: Vec<&super::Values> = w.props.iter().map(|p| p.values).collect();
        let mut q = rows_param(w.rows, &columns)?;
        q.push_str(&node_statement(w));
        let reply = self.query(db, &q).await?;
        Ok(stat(&reply, "Nodes created"))
    }

    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let mut columns: Vec<&super::Values> = vec![w.start.values, w.end.values];
        columns.extend(w.props.iter().map(|p| p.values));
        let mut q = rows_param(w.rows, &columns)?;
        q.push_str(&relationship_statement(w));
        let reply = self.query(db, &q).await?;
        Ok(stat(&reply, "Relationships created"))
    }

    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        let nodes = self.query(db, super::cypher::COUNT_NODES).await?;
        let rels = self.query(db, super::cypher::COUNT_RELATIONSHIPS).await?;
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

    async fn switch_alias(&self, alias: &str, db: &str) -> Result<(), GraphError> {
        let next = next_key(alias);
        self.drop_database(&next).await?;
        let mut con = self.con.clone();
        let _: RedisValue = redis::cmd("GRAPH.COPY")
            .arg(db)
            .arg(&next)
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let _: () = redis::pipe()
            .atomic()
            .cmd("RENAME")
            .arg(&next)
            .arg(alias)
            .ignore()
            .set(alias_key(alias), db)
            .ignore()
            .query_async(&mut con)
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
        assert_eq!(lit(Value::Str(r#"a"b\c"#)), r#""a\"b\\c""#);
        let mut s = String::new();
        assert!(write_literal(&mut s, Value::Float(f64::NAN)).is_err());
    }
}
