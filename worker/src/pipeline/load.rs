//! Steps "create", "schema" and "load": the new database under our fence,
//! its schema, and the rows written through a writer that stops as soon as
//! the lock's lease has run out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::graph::{
    Counts, GraphError, GraphStore, GraphWriter, NodeRef, NodeWrite, RelWrite, StoreLimits,
};
use common::load::{load_snapshot, LoadError, LoadMethod, LoadOptions};
use common::snapshot::schema::SchemaStatement;
use common::snapshot::PropType;
use common::vocab::AuditEvent;
use tracing::Instrument;

use super::*;

/// The load path, refused as soon as the local lease has run out: a worker
/// that wakes from a pause writes nothing more into a database that may now
/// be another holder's.
pub(super) struct FencedWriter<'a> {
    pub(super) store: &'a dyn GraphStore,
    pub(super) lease: Lease,
    /// Rows written so far (for the progress the worker publishes).
    pub(super) written: &'a Written,
}

/// Nodes and relationships written by a running load.
#[derive(Default)]
pub(super) struct Written {
    pub(super) nodes: AtomicU64,
    pub(super) relationships: AtomicU64,
}

/// How often a running load publishes its progress to Redis (at most).
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl FencedWriter<'_> {
    pub(super) fn check(&self) -> Result<(), GraphError> {
        if self.lease.alive() {
            Ok(())
        } else {
            Err(GraphError::Fenced(
                "the lock's lease ran out; no more writes".into(),
            ))
        }
    }
}

#[async_trait::async_trait]
impl GraphWriter for FencedWriter<'_> {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.check()?;
        self.store.create_index(db, label, property).await
    }
    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<Vec<NodeRef>, GraphError> {
        self.check()?;
        let n = self.store.write_nodes(db, w).await?;
        self.written
            .nodes
            .fetch_add(w.rows.len() as u64, Ordering::Relaxed);
        Ok(n)
    }
    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        self.check()?;
        let n = self.store.write_relationships(db, w).await?;
        self.written
            .relationships
            .fetch_add(w.rows.len() as u64, Ordering::Relaxed);
        Ok(n)
    }
    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        self.store.counts(db).await
    }
    // The store's own refusals and limits, checked before anything is written.
    fn lacks(&self, ty: PropType) -> Option<String> {
        self.store.lacks(ty)
    }
    fn limits(&self) -> StoreLimits {
        self.store.limits()
    }
    fn can_bulk(&self) -> bool {
        self.store.can_bulk()
    }
    async fn bulk_call(&self, db: &str, args: Vec<Vec<u8>>) -> Result<(), GraphError> {
        self.check()?;
        // The call's first two arguments are its node and edge counts.
        let count = |i: usize| {
            args.get(i)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|a| a.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (nodes, relationships) = (count(0), count(1));
        self.store.bulk_call(db, args).await?;
        self.written.nodes.fetch_add(nodes, Ordering::Relaxed);
        self.written
            .relationships
            .fetch_add(relationships, Ordering::Relaxed);
        Ok(())
    }
    async fn bulk_reserve(&self, db: &str, nodes: u64) -> Result<(), GraphError> {
        self.check()?;
        self.store.bulk_reserve(db, nodes).await
    }
    async fn bulk_sync(
        &self,
        db: &str,
        target: &common::graph::falkordb_bulk::SyncTarget,
    ) -> Result<(), GraphError> {
        self.store.bulk_sync(db, target).await
    }
}

/// The load method for the snapshot in `dir`: the target's, except that a
/// snapshot whose `schema.cypher` declares a constraint loads through
/// Cypher, because FalkorDB 4.16's GRAPH.BULK does not check constraints
/// (`tests/tests/gates.rs`: a duplicate `personId` across ID spaces loaded
/// through GRAPH.BULK without an error).
pub(super) fn load_method_for(target: LoadMethod, dir: &std::path::Path) -> LoadMethod {
    let constrained = std::fs::read_to_string(dir.join("schema.cypher"))
        .is_ok_and(|s| s.to_ascii_uppercase().contains("CONSTRAINT"));
    if constrained && target == LoadMethod::Bulk {
        tracing::info!(
            "schema.cypher declares a constraint: loading through cypher (GRAPH.BULK does not check constraints)"
        );
        LoadMethod::Cypher
    } else {
        target
    }
}

impl Pipeline {
    /// Step "create": drops a leftover of an interrupted load, then creates
    /// the database marked `loading` under our fence.
    pub(super) async fn step_create(
        &self,
        step: &Step<'_>,
        drop_leftover: bool,
    ) -> Result<(), Failure> {
        let (store, db, fence) = (step.store(), &step.db, step.fence());
        if drop_leftover {
            tracing::info!(%db, "dropping a database left by an interrupted load");
            self.fenced(step, "drop_leftover", store.drop_fenced(db, &fence).await)?;
        }
        self.audit(
            AuditEvent::LoadStarted,
            step.event,
            &[
                ("database", db.clone()),
                ("target", step.graph.target.name.clone()),
            ],
        )
        .await?;
        let created = store
            .create_fenced(db, &fence)
            .instrument(tracing::info_span!("create_database", database = %db))
            .await;
        self.fenced(step, "create", created)
    }

    /// Step "schema": the snapshot's `schema.cypher` (indexes, uniqueness
    /// constraints) on the new, empty database, so the load runs under the
    /// constraints. A failure drops the database like a failed load.
    pub(super) async fn step_schema(
        &self,
        step: &Step<'_>,
        schema: &[SchemaStatement],
    ) -> Result<(), Failure> {
        for statement in schema {
            if !step.held.lease.alive() {
                return Err(self.abandoned(step.event, step.held, "schema"));
            }
            if let Err(e) = step.store().apply_schema(&step.db, statement).await {
                tracing::warn!(db = %step.db, statement = %statement.describe(), error = %e, "schema statement failed; dropping the new database");
                self.drop_partial(step).await;
                let mut f = Failure::from(e);
                f.message = format!("schema.cypher ({}): {}", statement.describe(), f.message);
                return Err(f);
            }
            tracing::info!(db = %step.db, statement = %statement.describe(), "schema applied");
        }
        Ok(())
    }

    /// Step "load" (with its count check, "verify"): a failure drops the
    /// partial database, unless the lock was lost (then it may be another
    /// holder's, and nothing is dropped).
    pub(super) async fn step_load(
        &self,
        step: &Step<'_>,
        dir: &std::path::Path,
    ) -> Result<common::load::LoadReport, Failure> {
        let cancel = &step.held.cancel;
        let written = Written::default();
        let writer = FencedWriter {
            store: step.store(),
            lease: step.held.lease.clone(),
            written: &written,
        };
        let method = load_method_for(step.graph.target.load_method, dir);
        let options = LoadOptions::from_config(&self.config).with_method(method);
        let started_ms = chrono::Utc::now().timestamp_millis();
        let publish = |phase: &str| common::state::LoadProgress {
            customer: step.customer().to_string(),
            snapshot_id: step.event.snapshot_id.get(),
            worker: self.worker_id.clone(),
            phase: phase.to_owned(),
            nodes: written.nodes.load(Ordering::Relaxed),
            relationships: written.relationships.load(Ordering::Relaxed),
            started_ms,
            updated_ms: chrono::Utc::now().timestamp_millis(),
        };
        // Progress at most once a second while the load runs; the loop
        // never ends by itself, the load does.
        let report_progress = async {
            loop {
                let p = publish(if written.relationships.load(Ordering::Relaxed) > 0 {
                    "relationships"
                } else {
                    "nodes"
                });
                if let Err(e) = self.state.set_progress(&p).await {
                    tracing::debug!(error = %e, "cannot publish load progress");
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        };
        let result = tokio::select! {
            r = load_snapshot(&writer, &step.db, dir, options, cancel) => r,
            () = report_progress => unreachable!("the progress loop never ends"),
        };
        if result.is_ok() {
            self.state
                .set_progress(&publish("verify_switch"))
                .await
                .ok();
        }
        let result = match result {
            Ok(_) if cancel.is_cancelled() => Err(LoadError::Cancelled),
            other => other,
        };
        match result {
            Ok(report) => {
                tracing::info!(db = %step.db, nodes = report.nodes, relationships = report.relationships, skipped_relationships = report.skipped_relationships, skipped_nodes = report.skipped_nodes, "snapshot loaded and verified");
                self.metrics
                    .skipped_relationships
                    .inc_by(report.skipped_relationships);
                self.metrics.skipped_nodes.inc_by(report.skipped_nodes);
                Ok(report)
            }
            Err(e) => {
                let fenced = matches!(&e, LoadError::Graph(g) if g.is_fenced());
                if fenced || !step.held.still_valid().await.unwrap_or(false) {
                    return Err(self.abandoned(step.event, step.held, "load"));
                }
                self.drop_partial(step).await;
                self.audit(
                    AuditEvent::LoadAborted,
                    step.event,
                    &[("database", step.db.clone())],
                )
                .await
                .ok();
                Err(e.into())
            }
        }
    }
}
