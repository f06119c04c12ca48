//! Neo4j Enterprise over Bolt, through neo4rs, in two halves:
//!
//! - the load path ([`BoltWriter`], `bolt.rs`): UNWIND batches in explicit
//!   transactions on the snapshot's own database; run in CI against ArcadeDB;
//! - the admin path (this file): statements on `system` from
//!   [`statements`] — create, drop, alias, list, health, edition.
//!
//! No Neo4j server runs in CI: the statements are pinned by unit tests, and
//! the blue/green integration test runs whenever `SNAPSWITCH_TEST_NEO4J_URL`
//! is set.

pub mod bolt;
pub mod statements;

use async_trait::async_trait;
use neo4rs::Query;

pub use bolt::{BoltWriter, Dialect};

use super::{Counts, GraphError, GraphStore, GraphWriter, Health, NodeWrite, RelWrite};
use crate::config::{GraphKind, Secret, ServiceUrl};
use crate::ident::DatabaseName;

const SYSTEM: &str = "system";

pub struct Neo4jStore {
    bolt: BoltWriter,
}

/// What `dbms.components()` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edition {
    pub edition: String,
    pub version: String,
}

/// Refuses an edition that cannot do blue/green.
pub fn check_edition(edition: &Edition) -> Result<(), GraphError> {
    if edition.edition.eq_ignore_ascii_case("enterprise") {
        Ok(())
    } else {
        Err(GraphError::Permanent(format!(
            "blue/green needs Neo4j Enterprise: CREATE DATABASE is not available in the {} edition (Neo4j {})",
            edition.edition, edition.version
        )))
    }
}

impl Neo4jStore {
    /// `pool`: connections kept (see `graph::pool_size`: every concurrent load keeps `load_concurrency` write batches in flight); `ca_file`:
    /// the CA to check a `neo4j+s://` / `bolt+s://` server against.
    pub async fn connect(
        url: &ServiceUrl,
        user: &str,
        password: &Secret,
        pool: usize,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, GraphError> {
        let bolt = BoltWriter::connect_tls(url, user, password, pool, Dialect::Neo4j, ca_file)?;
        Ok(Neo4jStore { bolt })
    }

    pub async fn edition(&self) -> Result<Edition, GraphError> {
        let mut stream = self
            .bolt
            .graph()
            .execute_on(SYSTEM, Query::new(statements::COMPONENTS.into()))
            .await
            .map_err(bolt::map_err)?;
        let row =
            stream.next().await.map_err(bolt::map_err)?.ok_or_else(|| {
                GraphError::Permanent("dbms.components() returned nothing".into())
            })?;
        let edition: String = row
            .get("edition")
            .map_err(|e| GraphError::Permanent(e.to_string()))?;
        let versions: Vec<String> = row.get("versions").unwrap_or_default();
        Ok(Edition {
            edition,
            version: versions.join(","),
        })
    }

    async fn first_f64(&self, q: &str, col: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .bolt
            .column(SYSTEM, Query::new(q.into()), col)
            .await
            .ok()?;
        values.first().copied()
    }

    async fn server_max_databases(&self) -> Option<usize> {
        for q in [statements::MAX_DATABASES, statements::MAX_DATABASES_4] {
            if let Ok(values) = self
                .bolt
                .column::<String>(SYSTEM, Query::new(q.into()), "value")
                .await
            {
                if let Some(n) = values.first().and_then(|v| v.trim().parse().ok()) {
                    return Some(n);
                }
            }
        }
        None
    }
}

#[async_trait]
impl GraphWriter for Neo4jStore {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.bolt.create_index(db, label, property).await
    }
    async fn write_nodes(
        &self,
        db: &str,
        w: &NodeWrite<'_>,
    ) -> Result<Vec<super::NodeRef>, GraphError> {
        self.bolt.write_nodes(db, w).await
    }
    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        self.bolt.write_relationships(db, w).await
    }
    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        self.bolt.counts(db).await
    }
}

#[async_trait]
impl GraphStore for Neo4jStore {
    fn kind(&self) -> GraphKind {
        GraphKind::Neo4j
    }

    /// Reachable, and Enterprise.
    async fn ping(&self) -> Result<(), GraphError> {
        check_edition(&self.edition().await?)
    }

    async fn health(&self) -> Result<Health, GraphError> {
        let databases = self.list_databases().await?.len();
        let memory_used_percent = match (
            self.first_f64(statements::HEAP, "used").await,
            self.first_f64(statements::HEAP, "max").await,
        ) {
            (Some(used), Some(max)) if max > 0.0 => Some(used / max * 100.0),
            _ => {
                tracing::debug!("heap figures unavailable (dbms.queryJmx)");
                None
            }
        };
        let pagecache_used_percent = self
            .first_f64(statements::PAGECACHE, "ratio")
            .await
            .map(|r| r * 100.0);
        Ok(Health {
            databases,
            max_databases: self.server_max_databases().await,
            memory_used_percent,
            pagecache_used_percent,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>, GraphError> {
        self.bolt
            .column(
                SYSTEM,
                Query::new(statements::LIST_DATABASES.into()),
                "name",
            )
            .await
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>, GraphError> {
        let q = Query::new(statements::ALIAS_TARGET.into()).param("alias", alias);
        Ok(self
            .bolt
            .column::<String>(SYSTEM, q, "database")
            .await?
            .into_iter()
            .next())
    }

    async fn create_database(&self, db: &str) -> Result<(), GraphError> {
        if self.list_databases().await?.iter().any(|d| d == db) {
            return Err(GraphError::Permanent(format!(
                "database `{db}` already exists"
            )));
        }
        self.bolt
            .run(SYSTEM, Query::new(statements::create_database(db)))
            .await
    }

    async fn drop_database(&self, db: &str) -> Result<(), GraphError> {
        if let Ok(name) = DatabaseName::parse(db) {
            let alias = name.customer.to_string();
            if self.alias_target(&alias).await?.as_deref() == Some(db) {
                return Err(GraphError::Permanent(format!(
                    "database `{db}` is the live target of alias `{alias}`; switch the alias first"
                )));
            }
        }
        self.bolt
            .run(SYSTEM, Query::new(statements::drop_database(db)))
            .await
    }

    async fn switch_alias(&self, alias: &str, db: &str) -> Result<(), GraphError> {
        self.bolt
            .run(SYSTEM, Query::new(statements::switch_alias(alias, db)))
            .await
    }

    async fn drop_alias(&self, alias: &str) -> Result<(), GraphError> {
        self.bolt
            .run(SYSTEM, Query::new(statements::drop_alias(alias)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_edition_is_refused_with_the_reason() {
        let community = Edition {
            edition: "community".into(),
            version: "5.26.0".into(),
        };
        let err = check_edition(&community).unwrap_err().to_string();
        assert!(
            err.contains("blue/green needs Neo4j Enterprise: CREATE DATABASE is not available"),
            "{err}"
        );
        assert!(check_edition(&Edition {
            edition: "enterprise".into(),
            version: "5.26.0".into()
        })
        .is_ok());
    }
}
