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

use super::marks::RedisMarks;
use super::{
    Census, Counts, DbState, Fence, GraphError, GraphStore, GraphWriter, Health, NodeWrite,
    RelWrite, Scalar, SwitchMode,
};
use crate::adapters::graph::GraphKind;
use crate::adapters::secret::{Secret, ServiceUrl};
use crate::contract::ident::DatabaseName;

const SYSTEM: &str = "system";

/// A Neo4j (or ArcadeDB, through Bolt) store: the load path and the admin path.
pub struct Neo4jStore {
    bolt: BoltWriter,
    /// Lifecycle marks and the fence check, in the coordination Redis.
    marks: Option<RedisMarks>,
}

/// What `dbms.components()` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edition {
    /// `enterprise` or `community`.
    pub edition: String,
    /// The server version.
    pub version: String,
}

/// Whether a fenced switch of `alias` (on `current` now) to `db` must run:
/// `false` when it is already there; refused when `Forward` would move it
/// to an older snapshot. Decided from what was read just before the
/// statement: `CREATE OR REPLACE ALIAS` itself is unconditional.
pub fn switch_needed(
    alias: &str,
    current: Option<&str>,
    db: &str,
    mode: SwitchMode,
) -> Result<bool, GraphError> {
    if current == Some(db) {
        return Ok(false);
    }
    let snapshot = |name: &str| DatabaseName::parse(name).ok().map(|d| d.snapshot);
    if let (SwitchMode::Forward, Some(live), Some(new)) =
        (mode, current.and_then(snapshot), snapshot(db))
    {
        if live > new {
            return Err(GraphError::Permanent(format!(
                "alias `{alias}` is on snapshot {live}, newer than `{db}`; it only moves forward"
            )));
        }
    }
    Ok(true)
}

/// The alias read back after a switch must point where it was switched to;
/// anything else (another worker's switch in between) is reported.
pub fn read_back(alias: &str, db: &str, after: Option<&str>) -> Result<(), GraphError> {
    if after == Some(db) {
        Ok(())
    } else {
        Err(GraphError::Transient(format!(
            "alias `{alias}` reads back as {after:?} after switching it to `{db}`"
        )))
    }
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
        Ok(Neo4jStore { bolt, marks: None })
    }

    /// Keeps lifecycle marks (and checks fences) in the coordination Redis.
    pub fn with_marks(mut self, marks: Option<RedisMarks>) -> Self {
        self.marks = marks;
        self
    }

    async fn check_fence(&self, fence: &Fence) -> Result<(), GraphError> {
        match &self.marks {
            Some(m) => m.check(fence).await,
            None => Ok(()),
        }
    }

    /// The server's edition and version.
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

    // Neo4j runs no script next to its aliases: the fence cannot be checked
    // atomically with the effect. Each effect is checked against the
    // customer's fencing counter in Redis just before it (`RedisMarks`),
    // the switch refuses to go backwards from what it reads just before,
    // and the alias is read back after (see ARCHITECTURE.md, "Database
    // lifecycle and fencing", for the window that remains).

    async fn fence_seen(&self, _customer: &str) -> Result<u64, GraphError> {
        Ok(0)
    }

    async fn create_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        if let Some(m) = &self.marks {
            m.begin(db, fence).await?;
        }
        self.create_database(db).await
    }

    async fn mark_verified(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        match &self.marks {
            Some(m) => m.verify(db, fence).await,
            None => Ok(()),
        }
    }

    async fn mark_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        match &self.marks {
            Some(m) => m.hold(db, fence).await,
            None => Err(GraphError::Permanent(format!(
                "cannot hold {db}: this Neo4j target keeps no lifecycle marks"
            ))),
        }
    }

    async fn release_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        match &self.marks {
            Some(m) => m.release(db, fence).await,
            None => Err(GraphError::Permanent(format!(
                "cannot approve {db}: this Neo4j target keeps no lifecycle marks"
            ))),
        }
    }

    async fn census(&self, db: &str) -> Result<Census, GraphError> {
        self.bolt.census(db).await
    }

    async fn apply_schema(
        &self,
        db: &str,
        statement: &crate::adapters::snapshot::schema::SchemaStatement,
    ) -> Result<(), GraphError> {
        self.bolt.apply_schema(db, statement).await
    }

    async fn read_scalar(
        &self,
        db: &str,
        query: &str,
        _timeout: std::time::Duration,
    ) -> Result<Scalar, GraphError> {
        self.bolt.read_scalar(db, query).await
    }

    async fn switch_fenced(
        &self,
        alias: &str,
        db: &str,
        fence: &Fence,
        mode: SwitchMode,
    ) -> Result<bool, GraphError> {
        let state = self.database_state(db).await?;
        if !state.may_go_live() {
            return Err(GraphError::Permanent(format!(
                "database {db} is not verified (state: {}); only a fully loaded and verified database can become live",
                state.as_str()
            )));
        }
        let current = self.alias_target(alias).await?;
        if !switch_needed(alias, current.as_deref(), db, mode)? {
            return Ok(false);
        }
        self.check_fence(fence).await?;
        self.switch_alias(alias, db).await?;
        // CREATE OR REPLACE is unconditional: read back what it left.
        let after = self.alias_target(alias).await?;
        read_back(alias, db, after.as_deref())?;
        if let (SwitchMode::Rollback, Some(m), Some(previous)) = (mode, &self.marks, current) {
            m.retire(&previous).await?;
        }
        Ok(true)
    }

    async fn drop_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.check_fence(fence).await?;
        self.drop_database(db).await?;
        if let Some(m) = &self.marks {
            m.forget(db).await?;
        }
        Ok(())
    }

    async fn database_state(&self, db: &str) -> Result<DbState, GraphError> {
        match &self.marks {
            Some(m) => m.state(db).await,
            None => Ok(DbState::NotTracked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_switch_never_goes_back_and_is_read_back() {
        let (s1, s2) = ("acme-1767741487", "acme-1767741547");
        let fwd = SwitchMode::Forward;
        assert!(switch_needed("acme", None, s1, fwd).unwrap());
        assert!(switch_needed("acme", Some(s1), s2, fwd).unwrap());
        assert!(!switch_needed("acme", Some(s2), s2, fwd).unwrap());
        let err = switch_needed("acme", Some(s2), s1, fwd)
            .unwrap_err()
            .to_string();
        assert!(err.contains("it only moves forward"), "{err}");
        assert!(switch_needed("acme", Some(s2), s1, SwitchMode::Rollback).unwrap());
        assert!(read_back("acme", s2, Some(s2)).is_ok());
        let err = read_back("acme", s2, Some(s1)).unwrap_err();
        assert!(err.is_transient() && err.to_string().contains("reads back as"));
    }

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
