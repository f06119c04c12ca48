//! Neo4j Enterprise over Bolt, through neo4rs.
//!
//! Two halves: the admin path runs statements on the `system` database
//! (create, drop, alias, list); the load path runs UNWIND batches in explicit
//! transactions on the snapshot's own database. Statement text is built by the
//! pure functions in [`statements`], pinned by unit tests, because no Neo4j
//! server runs in CI; the integration tests run whenever
//! `SNAPSWITCH_TEST_NEO4J_URL` is set.

use async_trait::async_trait;
use neo4rs::{BoltType, ConfigBuilder, Graph, Query};

use super::cypher::{node_statement, relationship_statement, COUNT_NODES, COUNT_RELATIONSHIPS};
use super::{Counts, GraphError, GraphStore, Health, NodeWrite, RelWrite, Value, Values};
use crate::config::{Config, GraphKind};

const SYSTEM: &str = "system";

/// Statement text for the admin path. Every name is quoted; the callers pass
/// only validated database names and aliases.
pub mod statements {
    use super::super::quote;

    pub fn create_database(db: &str) -> String {
        format!("CREATE DATABASE {} WAIT", quote(db))
    }
    pub fn drop_database(db: &str) -> String {
        format!("DROP DATABASE {} IF EXISTS WAIT", quote(db))
    }
    pub fn switch_alias(alias: &str, db: &str) -> String {
        format!(
            "CREATE OR REPLACE ALIAS {} FOR DATABASE {}",
            quote(alias),
            quote(db)
        )
    }
    /// Parameter `$alias`.
    pub const ALIAS_TARGET: &str =
        "SHOW ALIASES FOR DATABASE YIELD name, database WHERE name = $alias RETURN database";
    pub const LIST_DATABASES: &str = "SHOW DATABASES YIELD name RETURN DISTINCT name";
    pub fn create_index(label: &str, property: &str) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS FOR (n:{}) ON (n.{})",
            quote(label),
            quote(property)
        )
    }
    pub const AWAIT_INDEXES: &str = "CALL db.awaitIndexes(300)";
    pub const HEAP: &str = "CALL dbms.queryJmx('java.lang:type=Memory') YIELD attributes \
         RETURN attributes.HeapMemoryUsage.value.properties.used AS used, \
         attributes.HeapMemoryUsage.value.properties.max AS max";
}

pub struct Neo4jStore {
    graph: Graph,
}

impl Neo4jStore {
    pub async fn connect(config: &Config) -> Result<Self, GraphError> {
        let neo = ConfigBuilder::default()
            .uri(config.graph_url.expose())
            .user(config.graph_user.as_str())
            .password(config.graph_password.expose())
            .max_connections(usize::from(config.workers) + 2)
            .build()
            .map_err(|e| {
                GraphError::Permanent(format!(
                    "Neo4j config for {}: {e}",
                    config.graph_url.redacted()
                ))
            })?;
        let graph = Graph::connect(neo).map_err(map_err)?;
        Ok(Neo4jStore { graph })
    }

    async fn run(&self, db: &str, q: Query) -> Result<(), GraphError> {
        self.graph.run_on(db, q).await.map_err(map_err)
    }

    /// Runs `q` on `db` and returns column `col` of every row.
    async fn column<T: serde::de::DeserializeOwned>(
        &self,
        db: &str,
        q: Query,
        col: &str,
    ) -> Result<Vec<T>, GraphError> {
        let mut stream = self.graph.execute_on(db, q).await.map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(row) = stream.next().await.map_err(map_err)? {
            out.push(row.get::<T>(col).map_err(|e| {
                GraphError::Permanent(format!("unexpected reply column `{col}`: {e}"))
            })?);
        }
        Ok(out)
    }

    /// One write statement in its own explicit transaction.
    async fn write(&self, db: &str, q: Query) -> Result<(), GraphError> {
        let mut txn = self.graph.start_txn_on(db).await.map_err(map_err)?;
        if let Err(e) = txn.run(q).await {
            // The server rolls back a failed transaction; tell it we are done.
            let _ = txn.rollback().await;
            return Err(map_err(e));
        }
        txn.commit().await.map_err(map_err)?;
        Ok(())
    }
}

/// Transient: the server says so, or the connection failed. Everything else
/// (syntax, constraint, security) is permanent.
fn map_err(e: neo4rs::Error) -> GraphError {
    use neo4rs::Error as E;
    let transient = match &e {
        E::Neo4j(n) => matches!(n.kind(), neo4rs::Neo4jErrorKind::Transient),
        E::IOError { .. } | E::ConnectionError | E::ConnectionTimedOut => true,
        _ => false,
    };
    if transient {
        GraphError::Transient(e.to_string())
    } else {
        GraphError::Permanent(e.to_string())
    }
}

fn bolt(v: Value<'_>) -> BoltType {
    match v {
        Value::Null => BoltType::from(Option::<i64>::None),
        Value::Int(i) => BoltType::from(i),
        Value::Float(f) => BoltType::from(f),
        Value::Bool(b) => BoltType::from(b),
        Value::Str(s) => BoltType::from(s),
    }
}

fn rows_param(rows: &[usize], columns: &[&Values]) -> BoltType {
    rows.iter()
        .map(|&row| {
            columns
                .iter()
                .map(|c| bolt(c.get(row)))
                .collect::<BoltType>()
        })
        .collect::<BoltType>()
}

#[async_trait]
impl GraphStore for Neo4jStore {
    fn kind(&self) -> GraphKind {
        GraphKind::Neo4j
    }

    async fn ping(&self) -> Result<(), GraphError> {
        let one: Vec<i64> = self
            .column(SYSTEM, Query::new("RETURN 1 AS one".into()), "one")
            .await?;
        if one == [1] {
            Ok(())
        } else {
            Err(GraphError::Permanent(
                "Neo4j answered RETURN 1 oddly".into(),
            ))
        }
    }

    async fn health(&self) -> Result<Health, GraphError> {
        let databases = self.list_databases().await?.len();
        let heap = self
            .graph
            .execute_on(SYSTEM, Query::new(statements::HEAP.into()))
            .await;
        let memory_used_percent = match heap {
            Ok(mut stream) => match stream.next().await {
                Ok(Some(row)) => match (row.get::<f64>("used"), row.get::<f64>("max")) {
                    (Ok(used), Ok(max)) if max > 0.0 => Some(used / max * 100.0),
                    _ => None,
                },
                _ => None,
            },
            Err(e) => {
                tracing::debug!(error = %e, "heap figures unavailable");
                None
            }
        };
        Ok(Health {
            databases,
            memory_used_percent,
            pagecache_used_percent: None,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>, GraphError> {
        self.column(
            SYSTEM,
            Query::new(statements::LIST_DATABASES.into()),
            "name",
        )
        .await
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>, GraphError> {
        let q = Query::new(statements::ALIAS_TARGET.into()).param("alias", alias);
        Ok(self
            .column::<String>(SYSTEM, q, "database")
            .await?
            .into_iter()
            .next())
    }

    async fn create_database(&self, db: &str) -> Result<(), GraphError> {
        self.run(SYSTEM, Query::new(statements::create_database(db)))
            .await
    }

    async fn drop_database(&self, db: &str) -> Result<(), GraphError> {
        self.run(SYSTEM, Query::new(statements::drop_database(db)))
            .await
    }

    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.run(db, Query::new(statements::create_index(label, property)))
            .await?;
        self.run(db, Query::new(statements::AWAIT_INDEXES.into()))
            .await
    }

    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let columns: Vec<&Values> = w.props.iter().map(|p| p.values).collect();
        let q = Query::new(node_statement(w)).param("rows", rows_param(w.rows, &columns));
        self.write(db, q).await?;
        Ok(w.rows.len() as u64)
    }

    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let mut columns: Vec<&Values> = vec![w.start.values, w.end.values];
        columns.extend(w.props.iter().map(|p| p.values));
        let q = Query::new(relationship_statement(w)).param("rows", rows_param(w.rows, &columns));
        self.write(db, q).await?;
        Ok(w.rows.len() as u64)
    }

    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        let nodes: Vec<i64> = self.column(db, Query::new(COUNT_NODES.into()), "c").await?;
        let rels: Vec<i64> = self
            .column(db, Query::new(COUNT_RELATIONSHIPS.into()), "c")
            .await?;
        let n = |v: &[i64]| v.first().and_then(|n| u64::try_from(*n).ok()).unwrap_or(0);
        Ok(Counts {
            nodes: n(&nodes),
            relationships: n(&rels),
        })
    }

    async fn switch_alias(&self, alias: &str, db: &str) -> Result<(), GraphError> {
        self.run(SYSTEM, Query::new(statements::switch_alias(alias, db)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::statements::*;

    #[test]
    fn admin_statements_are_pinned() {
        assert_eq!(
            create_database("acme-1767741427"),
            "CREATE DATABASE `acme-1767741427` WAIT"
        );
        assert_eq!(
            drop_database("acme-1767741427"),
            "DROP DATABASE `acme-1767741427` IF EXISTS WAIT"
        );
        assert_eq!(
            switch_alias("acme", "acme-1767741427"),
            "CREATE OR REPLACE ALIAS `acme` FOR DATABASE `acme-1767741427`"
        );
        assert_eq!(
            create_index("Person", "personId"),
            "CREATE INDEX IF NOT EXISTS FOR (n:`Person`) ON (n.`personId`)"
        );
    }

    #[test]
    fn hostile_names_stay_inside_their_backticks() {
        assert_eq!(
            drop_database("x` WAIT; DROP DATABASE `y"),
            "DROP DATABASE `x`` WAIT; DROP DATABASE ``y` IF EXISTS WAIT"
        );
    }
}
