//! Steps "mark", "switch", "repair" and "cleanup", each under a valid fence,
//! and what a worker that lost its lock does: abandon, never drop or switch.

use common::event::SnapshotEvent;
use common::graph::{GraphError, SwitchMode};
use common::ident::{DatabaseName, SnapshotId};
use common::vocab::AuditEvent;
use tracing::Instrument;

use crate::decide::{self, ErrorClass};

use super::*;

impl Pipeline {
    /// Step "mark": the database becomes `verified`, under a valid fence.
    pub(super) async fn step_mark(&self, step: &Step<'_>) -> Result<(), Failure> {
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "mark"));
        }
        let marked = step.store().mark_verified(&step.db, &step.fence()).await;
        self.fenced(step, "mark", marked)
    }

    /// Step "switch": the alias onto the new database when it is the newest;
    /// the store refuses a stale fence, an unverified database and a move
    /// backwards. A switch that fails otherwise drops the new database.
    /// Returns (switched, the previous target).
    pub(super) async fn step_switch(
        &self,
        step: &Step<'_>,
    ) -> Result<(bool, Option<SnapshotId>), Failure> {
        let (store, customer, db) = (step.store(), step.customer(), &step.db);
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "switch"));
        }
        // Re-read the alias: it is the last word on what is live.
        let previous = alias_target(store, customer).await?;
        if !decide::should_switch(previous, step.event.snapshot_id) {
            tracing::info!(alias = %customer, %db, live = ?previous, "loaded, alias stays on the newer snapshot");
            return Ok((false, previous));
        }
        let switched = store
            .switch_fenced(customer.as_str(), db, &step.fence(), SwitchMode::Forward)
            .instrument(tracing::info_span!("switch", alias = %customer, database = %db))
            .await;
        match switched {
            Ok(_) => {}
            Err(e) if e.is_fenced() => return Err(self.abandoned(step.event, step.held, "switch")),
            Err(e) => {
                tracing::warn!(alias = %customer, %db, error = %e, "switch failed; dropping the new database");
                self.drop_partial(step).await;
                return Err(e.into());
            }
        }
        tracing::info!(alias = %customer, %db, previous = ?previous, "alias switched");
        self.audit(
            AuditEvent::Switched,
            step.event,
            &[
                ("database", db.clone()),
                (
                    "previous",
                    previous.map(|p| p.to_string()).unwrap_or_default(),
                ),
            ],
        )
        .await?;
        Ok((true, previous))
    }

    /// Step "repair": an alias left behind on an older verified database
    /// (a switch lost or refused) moves forward to the newest verified one.
    pub(super) async fn step_repair(
        &self,
        step: &Step<'_>,
        live: Option<SnapshotId>,
    ) -> Result<Option<SnapshotId>, Failure> {
        let states = database_states(step.store(), step.customer()).await?;
        let Some(target) = decide::repair_target(&states, live) else {
            return Ok(live);
        };
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "repair"));
        }
        let db = DatabaseName::new(step.customer().clone(), target).to_string();
        let switched = step
            .store()
            .switch_fenced(
                step.customer().as_str(),
                &db,
                &step.fence(),
                SwitchMode::Forward,
            )
            .await;
        self.fenced(step, "repair", switched.map(|_| ()))?;
        tracing::warn!(alias = %step.customer(), %db, was = ?live, "alias was behind the newest verified database; moved forward");
        self.audit(
            AuditEvent::Repaired,
            step.event,
            &[
                ("database", db),
                ("was", live.map(|p| p.to_string()).unwrap_or_default()),
            ],
        )
        .await?;
        Ok(Some(target))
    }

    /// Step "cleanup": drops what `decide::plan_cleanup` says, each drop fenced.
    pub(super) async fn step_cleanup(
        &self,
        step: &Step<'_>,
        live: Option<SnapshotId>,
    ) -> Result<(), Failure> {
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "cleanup"));
        }
        let (store, customer) = (step.store(), step.customer());
        let states = database_states(store, customer).await?;
        let mut dropped = Vec::new();
        for old in decide::plan_cleanup(&states, live, self.config.keep_databases) {
            let db = DatabaseName::new(customer.clone(), old).to_string();
            let result = store.drop_fenced(&db, &step.fence()).await;
            self.fenced(step, "cleanup", result)?;
            tracing::info!(%db, "dropped old database");
            // A held database that is dropped was superseded.
            self.state.clear_held(customer, old).await?;
            dropped.push(db);
        }
        if !dropped.is_empty() {
            self.audit(
                AuditEvent::Cleaned,
                step.event,
                &[("dropped", dropped.join(","))],
            )
            .await?;
        }
        Ok(())
    }

    /// A store effect's result: a fenced refusal means the lock was lost.
    pub(super) fn fenced(
        &self,
        step: &Step<'_>,
        what: &str,
        result: Result<(), GraphError>,
    ) -> Result<(), Failure> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_fenced() => Err(self.abandoned(step.event, step.held, what)),
            Err(e) => Err(e.into()),
        }
    }

    /// The one line a worker that lost its lock logs: it drops, switches and
    /// marks nothing more; its in-flight work is abandoned.
    pub(super) fn abandoned(&self, event: &SnapshotEvent, held: &Held<'_>, step: &str) -> Failure {
        let token = held.token();
        tracing::warn!(customer = %event.customer, snapshot_id = %event.snapshot_id, token, step, "lost the lock; in-flight work abandoned (nothing dropped, switched or marked)");
        held.cancel.cancel();
        Failure::new(
            ErrorClass::Transient,
            FailureCode::LockLost,
            format!(
                "lost the lock of {} (token {token}) at step {step}; the work was abandoned to the new holder",
                event.customer
            ),
        )
    }

    /// Best effort, fenced: a failed load never leaves its database behind.
    pub(super) async fn drop_partial(&self, step: &Step<'_>) {
        let db = &step.db;
        match step.store().drop_fenced(db, &step.fence()).await {
            Ok(()) => tracing::info!(%db, "dropped the partial database"),
            Err(e) if e.is_fenced() => {
                tracing::warn!(%db, error = %e, "not dropping the partial database: a newer lock holder owns it")
            }
            Err(e) => {
                tracing::error!(%db, error = %e, "could not drop the partial database; reconciliation will")
            }
        }
    }
}
