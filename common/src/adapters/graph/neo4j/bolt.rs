//! The Bolt load path: database-scoped UNWIND batches in explicit
//! transactions, index creation, counts. The same code loads Neo4j in
//! production and ArcadeDB in CI; the one place their Cypher differs is
//! [`Dialect`].

use async_trait::async_trait;
use neo4rs::{BoltType, ConfigBuilder, Graph, Query};

use super::super::cypher::{
    node_statement, relationship_statement, COUNT_NODES, COUNT_RELATIONSHIPS,
};
use super::super::values::Cell;
use super::super::{
    quote, Census, Counts, GraphError, GraphWriter, NodeRef, NodeWrite, RelWrite, Scalar, Value,
    Values,
};
use super::statements;
use crate::adapters::secret::{Secret, ServiceUrl};

/// Where Bolt servers' Cypher differs on the load path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Neo4j: waits for new indexes with `db.awaitIndexes`.
    Neo4j,
    /// ArcadeDB's Bolt plugin: indexes are complete when `CREATE INDEX`
    /// returns, and it has no `db.awaitIndexes` procedure (calling it fails).
    ArcadeDb,
}

impl Dialect {
    /// The statement that waits for new indexes to come online, if needed.
    pub fn await_indexes(self) -> Option<&'static str> {
        match self {
            Dialect::Neo4j => Some(statements::AWAIT_INDEXES),
            Dialect::ArcadeDb => None,
        }
    }
}

/// The Bolt load path, on its own: what `load_snapshot` needs.
#[derive(Clone)]
pub struct BoltWriter {
    graph: Graph,
    dialect: Dialect,
}

impl BoltWriter {
    /// A Bolt connection pool of `pool` connections to `url`.
    pub fn connect(
        url: &ServiceUrl,
        user: &str,
        password: &Secret,
        max_connections: usize,
        dialect: Dialect,
    ) -> Result<Self, GraphError> {
        Self::connect_tls(url, user, password, max_connections, dialect, None)
    }

    /// [`BoltWriter::connect`] with `neo4j+s://`/`bolt+s://` trusting the CA
    /// certificate in `ca` (`graph_ca_file`).
    pub fn connect_tls(
        url: &ServiceUrl,
        user: &str,
        password: &Secret,
        max_connections: usize,
        dialect: Dialect,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, GraphError> {
        crate::adapters::tls::install_crypto_provider();
        let mut builder = ConfigBuilder::default()
            .uri(url.expose())
            .user(user)
            .password(password.expose())
            .max_connections(max_connections);
        if let Some(ca) = ca {
            builder = builder.with_client_certificate(ca);
        }
        let config = builder.build().map_err(|e| {
            GraphError::Permanent(format!("Bolt config for {}: {e}", url.redacted()))
        })?;
        let graph = Graph::connect(config).map_err(map_err)?;
        Ok(BoltWriter { graph, dialect })
    }

    /// The neo4rs pool.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs `q` on `db`, discarding its result.
    pub async fn run(&self, db: &str, q: Query) -> Result<(), GraphError> {
        self.graph.run_on(db, q).await.map_err(map_err)
    }

    /// Runs `q` on `db` and returns column `col` of every row.
    pub async fn column<T: serde::de::DeserializeOwned>(
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

    /// One `schema.cypher` statement in Neo4j's syntax
    /// ([`crate::adapters::snapshot::schema::neo4j_statement`]), then waits for the
    /// new index or constraint to come online (Neo4j). Not tried against
    /// ArcadeDB's Bolt server: refused there, naming the store.
    pub async fn apply_schema(
        &self,
        db: &str,
        statement: &crate::adapters::snapshot::schema::SchemaStatement,
    ) -> Result<(), GraphError> {
        if self.dialect == Dialect::ArcadeDb {
            return Err(GraphError::Permanent(format!(
                "store ArcadeDB (Bolt) does not support schema.cypher here ({}); remove schema.cypher or load into a Neo4j or FalkorDB target",
                statement.describe()
            )));
        }
        let q = crate::adapters::snapshot::schema::neo4j_statement(statement);
        self.write(db, Query::new(q)).await?;
        if let Some(wait) = self.dialect.await_indexes() {
            self.write(db, Query::new(wait.into())).await?;
        }
        Ok(())
    }

    /// `q`'s one value, in a transaction that is always rolled back (so a
    /// check can never write).
    pub async fn read_scalar(&self, db: &str, q: &str) -> Result<Scalar, GraphError> {
        let mut txn = self.graph.start_txn_on(db).await.map_err(map_err)?;
        let result = async {
            let mut stream = txn
                .execute(Query::new(q.to_owned()))
                .await
                .map_err(map_err)?;
            let mut rows = Vec::new();
            while let Some(row) = stream.next(txn.handle()).await.map_err(map_err)? {
                rows.push(row);
            }
            Ok::<_, GraphError>(rows)
        }
        .await;
        txn.rollback().await.ok();
        let rows = result?;
        let [row] = rows.as_slice() else {
            return Ok(Scalar::Other(format!("{} rows", rows.len())));
        };
        let keys = row.keys();
        let [key] = keys.as_slice() else {
            return Ok(Scalar::Other(format!("{} columns", keys.len())));
        };
        let value: serde_json::Value = row
            .get(&key.value)
            .map_err(|e| GraphError::Permanent(format!("unreadable check value: {e}")))?;
        Ok(Scalar::from_json(value))
    }

    /// Counts in total, per label and per relationship type.
    pub async fn census(&self, db: &str) -> Result<Census, GraphError> {
        let counts = GraphWriter::counts(self, db).await?;
        let mut census = Census {
            nodes: counts.nodes,
            relationships: counts.relationships,
            ..Census::default()
        };
        let count = |v: Vec<i64>| v.first().and_then(|n| u64::try_from(*n).ok()).unwrap_or(0);
        let labels: Vec<String> = self
            .column(db, Query::new(statements::LABELS.into()), "label")
            .await?;
        for label in labels {
            let q = format!("MATCH (n:{}) RETURN count(n) AS c", quote(&label));
            census
                .labels
                .insert(label, count(self.column(db, Query::new(q), "c").await?));
        }
        let types: Vec<String> = self
            .column(db, Query::new(statements::TYPES.into()), "type")
            .await?;
        for ty in types {
            let q = format!("MATCH ()-[r:{}]->() RETURN count(r) AS c", quote(&ty));
            census
                .types
                .insert(ty, count(self.column(db, Query::new(q), "c").await?));
        }
        Ok(census)
    }

    /// One write statement in its own explicit transaction.
    async fn write(&self, db: &str, q: Query) -> Result<(), GraphError> {
        let mut txn = self.graph.start_txn_on(db).await.map_err(map_err)?;
        if let Err(e) = txn.run(q).await {
            // The server rolls back a failed transaction; tell it we are done.
            txn.rollback().await.ok();
            return Err(map_err(e));
        }
        txn.commit().await.map_err(map_err)?;
        Ok(())
    }

    /// One write statement in its own explicit transaction; returns the
    /// integer column `col` of every row.
    async fn write_returning(&self, db: &str, q: Query, col: &str) -> Result<Vec<i64>, GraphError> {
        let mut txn = self.graph.start_txn_on(db).await.map_err(map_err)?;
        let read = async {
            let mut stream = txn.execute(q).await?;
            let mut out = Vec::new();
            while let Some(row) = stream.next(txn.handle()).await? {
                out.push(row.get::<i64>(col));
            }
            Ok::<_, neo4rs::Error>(out)
        }
        .await;
        match read {
            Ok(values) => {
                txn.commit().await.map_err(map_err)?;
                values
                    .into_iter()
                    .map(|v| {
                        v.map_err(|e| {
                            GraphError::Permanent(format!("unexpected reply column `{col}`: {e}"))
                        })
                    })
                    .collect()
            }
            Err(e) => {
                txn.rollback().await.ok();
                Err(map_err(e))
            }
        }
    }
}

/// Transient: the server says so, or the connection failed. Everything else
/// (syntax, constraint, security) is permanent.
pub fn map_err(e: neo4rs::Error) -> GraphError {
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

fn bolt(v: Value<'_>, dialect: Dialect) -> BoltType {
    match v {
        Value::Null => BoltType::from(Option::<i64>::None),
        Value::Int(i) => BoltType::from(i),
        Value::Float(f) => BoltType::from(f),
        Value::Bool(b) => BoltType::from(b),
        Value::Str(s) => BoltType::from(s),
        Value::Cell(c) => bolt_cell(c, dialect),
    }
}

/// Every cell has a native Bolt type (Neo4j stores them all). One dialect
/// difference, measured: ArcadeDB stores a Bolt `DateTime` (fixed offset)
/// as a local date-time in UTC, dropping the offset, but keeps a
/// `DateTimeZoneId` whose zone is the offset (`+01:00`) as a date-time
/// with that offset; so ArcadeDB gets the latter.
fn bolt_cell(c: &Cell, dialect: Dialect) -> BoltType {
    use neo4rs::{BoltDuration, BoltFloat, BoltPoint2D, BoltPoint3D};
    match c {
        Cell::Int(i) => BoltType::from(*i),
        Cell::Float(f) => BoltType::from(*f),
        Cell::Bool(b) => BoltType::from(*b),
        Cell::Str(s) => BoltType::from(s.as_str()),
        Cell::Date(d) => BoltType::Date((*d).into()),
        Cell::LocalTime(t) => BoltType::LocalTime((*t).into()),
        Cell::Time(t, o) => BoltType::Time((*t, *o).into()),
        Cell::LocalDateTime(t) => BoltType::LocalDateTime((*t).into()),
        Cell::DateTime(t) => match dialect {
            Dialect::Neo4j => BoltType::DateTime((*t).into()),
            Dialect::ArcadeDb => {
                let zone = t.offset().to_string();
                BoltType::DateTimeZoneId((t.naive_local(), zone.as_str()).into())
            }
        },
        Cell::ZonedDateTime(local, tz) => BoltType::DateTimeZoneId((*local, tz.name()).into()),
        Cell::Duration(d) => BoltType::Duration(BoltDuration::new(
            d.months.into(),
            d.days.into(),
            d.seconds.into(),
            d.nanos.into(),
        )),
        Cell::Point(p) => match p.z {
            None => BoltType::Point2D(BoltPoint2D {
                sr_id: i64::from(p.srid).into(),
                x: BoltFloat::new(p.x),
                y: BoltFloat::new(p.y),
            }),
            Some(z) => BoltType::Point3D(BoltPoint3D {
                sr_id: i64::from(p.srid).into(),
                x: BoltFloat::new(p.x),
                y: BoltFloat::new(p.y),
                z: BoltFloat::new(z),
            }),
        },
        Cell::List(items) => items
            .iter()
            .map(|i| bolt_cell(i, dialect))
            .collect::<BoltType>(),
    }
}

/// `$rows`: a list of rows, each a list of values in column order (after the
/// two internal node ids when `ends` is given), built straight from the Arrow
/// arrays.
fn rows_param(
    rows: &[usize],
    ends: Option<&[[NodeRef; 2]]>,
    columns: &[&Values],
    dialect: Dialect,
) -> BoltType {
    rows.iter()
        .enumerate()
        .map(|(i, &row)| {
            let ids = ends
                .and_then(|e| e.get(i))
                .into_iter()
                .flat_map(|[a, b]| [BoltType::from(*a), BoltType::from(*b)]);
            ids.chain(columns.iter().map(|c| bolt(c.get(row), dialect)))
                .collect::<BoltType>()
        })
        .collect::<BoltType>()
}

#[async_trait]
impl GraphWriter for BoltWriter {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.run(db, Query::new(statements::create_index(label, property)))
            .await?;
        if let Some(wait) = self.dialect.await_indexes() {
            self.run(db, Query::new(wait.into())).await?;
        }
        Ok(())
    }

    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<Vec<NodeRef>, GraphError> {
        if w.rows.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<&Values> = w.props.iter().map(|p| p.values).collect();
        let q = Query::new(node_statement(w))
            .param("rows", rows_param(w.rows, None, &columns, self.dialect));
        let ids = self.write_returning(db, q, "i").await?;
        if ids.len() != w.rows.len() {
            return Err(GraphError::Permanent(format!(
                "the server returned {} node ids for {} created nodes",
                ids.len(),
                w.rows.len()
            )));
        }
        Ok(ids)
    }

    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let columns: Vec<&Values> = w.props.iter().map(|p| p.values).collect();
        // The count says how many were created: all of them, the endpoints
        // having been resolved by the loader.
        let q = Query::new(format!(
            "{} RETURN count(*) AS c",
            relationship_statement(w)
        ))
        .param(
            "rows",
            rows_param(w.rows, Some(w.ends), &columns, self.dialect),
        );
        let c = self.write_returning(db, q, "c").await?;
        Ok(c.iter().map(|n| u64::try_from(*n).unwrap_or(0)).sum())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_neo4j_waits_for_indexes() {
        assert_eq!(
            Dialect::Neo4j.await_indexes(),
            Some("CALL db.awaitIndexes(300)")
        );
        assert_eq!(Dialect::ArcadeDb.await_indexes(), None);
    }
}
