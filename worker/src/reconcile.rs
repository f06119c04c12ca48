//! Reconciliation, at start and every `reconcile_interval`: for each customer
//! not locked by a load, move an alias left behind on an older database
//! forward to the newest verified one, drop what `decide::plan_cleanup`
//! says (partial loads, rolled-back databases, verified ones beyond the
//! newest `keep_databases`), each effect fenced by the lock's token, and
//! correct the customer's Redis record from the graph database. Graph keys
//! named like an alias that block switches are reported (log and audit). Each customer is handled under its lock, so
//! reconciliation never races a load. Every action is logged and audited.
//!
//! Each graph target is reconciled on its own, and only for the customers it
//! serves: databases a customer left on a target it was moved away from are
//! never dropped here (its readers may still use that alias); they are
//! counted in `other_target` and logged.

use std::collections::BTreeMap;
use std::time::Duration;

use common::graph::{Fence, GraphStore, SwitchMode};
use common::ident::{Customer, DatabaseName, SnapshotId};
use common::lock;
use common::vocab::AuditEvent;

use common::alias::{alias_target, database_states};

use crate::decide;
use crate::graphs::TargetGraph;
use crate::pipeline::Pipeline;

/// What one reconciliation pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Customers looked at.
    pub customers: usize,
    /// Customers skipped because a load held their lock.
    pub skipped_locked: usize,
    /// Customers with databases on a target that does not serve them.
    pub other_target: usize,
    /// Leftover databases dropped.
    pub dropped: Vec<String>,
    /// Databases whose lifecycle state was corrected.
    pub corrected: Vec<String>,
    /// Aliases moved forward to the newest verified database.
    pub repaired: Vec<String>,
    /// Graph keys named like an alias that block switches.
    pub strays: Vec<String>,
}

/// One pass over every graph target.
pub async fn reconcile_once(p: &Pipeline) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut failed = Vec::new();
    for graph in p.graphs.all() {
        // One unreachable target does not keep the others from being reconciled.
        if let Err(e) = reconcile_target(p, graph, &mut report).await {
            tracing::warn!(graph_target = %graph.target.name, error = %e, "reconciliation of this target failed");
            failed.push(graph.target.name.clone());
        }
    }
    if !report.dropped.is_empty() || !report.corrected.is_empty() || !report.repaired.is_empty() {
        tracing::info!(dropped = ?report.dropped, corrected = ?report.corrected, repaired = ?report.repaired, skipped_locked = report.skipped_locked, "reconciliation changed state");
    } else {
        tracing::debug!(
            customers = report.customers,
            "reconciliation found nothing to do"
        );
    }
    if !failed.is_empty() {
        anyhow::bail!("reconciliation failed on target(s) {}", failed.join(", "));
    }
    Ok(report)
}

/// Every customer served by `graph`'s target that has a database there.
async fn reconcile_target(
    p: &Pipeline,
    graph: &TargetGraph,
    report: &mut Report,
) -> anyhow::Result<()> {
    let target = graph.target.name.as_str();
    report_strays(p, graph, report).await?;
    let mut by_customer: BTreeMap<Customer, Vec<SnapshotId>> = BTreeMap::new();
    for name in graph.store.list_databases().await? {
        if let Ok(db) = DatabaseName::parse(&name) {
            by_customer
                .entry(db.customer)
                .or_default()
                .push(db.snapshot);
        }
    }
    let mut con = p.state.connection();
    for customer in by_customer.into_keys() {
        if !p.graphs.serves(target, customer.as_str()) {
            tracing::debug!(%customer, graph_target = target, serving = %p.graphs.for_customer(customer.as_str()).target.name, "databases on a target that no longer serves the customer; left alone");
            report.other_target += 1;
            continue;
        }
        report.customers += 1;
        let Some(mut guard) =
            lock::try_acquire(&mut con, p.state.keys(), &customer, p.config.lock_ttl()).await?
        else {
            report.skipped_locked += 1;
            continue;
        };
        let result = async {
            let floor = graph.store.fence_seen(customer.as_str()).await?;
            if !guard.lift_above(&mut con, floor).await? {
                return Ok(());
            }
            let fence = Fence {
                customer: customer.to_string(),
                token: guard.fence,
            };
            reconcile_customer(p, graph.store.as_ref(), target, &customer, &fence, report).await
        }
        .await;
        guard.release(&mut con).await.ok();
        result?;
    }
    Ok(())
}

/// Graph keys named like an alias that snapswitch does not manage block
/// every switch of that customer: logged and audited on every pass.
async fn report_strays(
    p: &Pipeline,
    graph: &TargetGraph,
    report: &mut Report,
) -> anyhow::Result<()> {
    for (name, fix) in graph.store.stray_aliases().await? {
        tracing::warn!(graph_target = %graph.target.name, key = %name, "{fix}");
        p.state
            .audit(
                AuditEvent::StrayAlias.as_str(),
                &[
                    ("customer", name.clone()),
                    ("key", name.clone()),
                    ("target", graph.target.name.clone()),
                    ("fix", fix),
                    ("worker", p.worker_id.clone()),
                ],
            )
            .await?;
        report.strays.push(name);
    }
    Ok(())
}

async fn reconcile_customer(
    p: &Pipeline,
    store: &dyn GraphStore,
    target: &str,
    customer: &Customer,
    fence: &Fence,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut alias = alias_target(store, customer).await?;
    let states = database_states(store, customer).await?;
    // An alias behind the newest verified database moves forward.
    if let Some(newer) = decide::repair_target(&states, alias) {
        let db = DatabaseName::new(customer.clone(), newer).to_string();
        store
            .switch_fenced(customer.as_str(), &db, fence, SwitchMode::Forward)
            .await?;
        tracing::warn!(%customer, %db, was = ?alias, graph_target = target, "reconciliation moved the alias forward to the newest verified database");
        p.state
            .audit(
                AuditEvent::ReconciledSwitch.as_str(),
                &[
                    ("customer", customer.to_string()),
                    ("snapshot_id", newer.to_string()),
                    ("database", db.clone()),
                    ("was", alias.map(|a| a.to_string()).unwrap_or_default()),
                    ("target", target.to_owned()),
                    ("worker", p.worker_id.clone()),
                ],
            )
            .await?;
        report.repaired.push(db);
        alias = Some(newer);
    }
    for old in decide::plan_cleanup(&states, alias, p.config.keep_databases) {
        let db = DatabaseName::new(customer.clone(), old).to_string();
        store.drop_fenced(&db, fence).await?;
        // A held database dropped here was superseded: no longer held.
        p.state.clear_held(customer, old).await?;
        tracing::info!(%db, graph_target = target, "reconciliation dropped an orphan database");
        p.state
            .audit(
                AuditEvent::ReconciledDrop.as_str(),
                &[
                    ("customer", customer.to_string()),
                    ("database", db.clone()),
                    ("target", target.to_owned()),
                    ("worker", p.worker_id.clone()),
                ],
            )
            .await?;
        report.dropped.push(db);
    }
    if let Some(live) = alias {
        let record = p.state.customer(customer).await?;
        if record.live_snapshot != Some(live.get()) {
            p.state.set_live(customer, live).await?;
            tracing::info!(%customer, live = %live, was = ?record.live_snapshot, "reconciliation corrected the live snapshot in Redis");
            p.state
                .audit(
                    AuditEvent::ReconciledState.as_str(),
                    &[
                        ("customer", customer.to_string()),
                        ("live_snapshot", live.to_string()),
                        ("worker", p.worker_id.clone()),
                    ],
                )
                .await?;
            report.corrected.push(customer.to_string());
        }
    }
    Ok(())
}

/// Runs [`reconcile_once`] now and then every `interval` until `stop`.
pub async fn run(
    p: std::sync::Arc<Pipeline>,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = reconcile_once(&p).await {
                    tracing::warn!(error = %e, "reconciliation failed; next pass in reconcile_interval");
                }
            }
        }
    }
}
