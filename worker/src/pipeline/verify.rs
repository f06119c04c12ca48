//! Steps "manifest", "gates" and "hold": the snapshot's files against its
//! `_SUCCESS` manifest before anything is written, the loaded database's
//! census against the manifest and the live database, guards and checks, and
//! a snapshot they refuse kept as `held`.

use std::time::Duration;

use common::ident::{DatabaseName, SnapshotId};
use common::snapshot::manifest::{self, Manifest};
use common::snapshot::SnapshotError;
use common::vocab::AuditEvent;
use tracing::Instrument;

use crate::decide::{self, ErrorClass};
use crate::gates::{self, Hold};

use super::*;

impl Pipeline {
    /// Step "manifest", before anything is written: when `_SUCCESS` holds a
    /// manifest, every data file must be listed, with its size and SHA-256
    /// (read on a blocking thread); a difference refuses the snapshot
    /// (`manifest_mismatch`, permanent: parked) before its database exists.
    pub(super) async fn step_manifest(
        &self,
        step: &Step<'_>,
        dir: &std::path::Path,
    ) -> Result<Option<Manifest>, Failure> {
        let canonical = dir.to_path_buf();
        let dir = dir.to_path_buf();
        let checked = tokio::task::spawn_blocking(move || {
            let Some(m) = manifest::read(&dir)? else {
                return Ok::<_, SnapshotError>(None);
            };
            let facts = manifest::file_facts(&dir)?;
            let diffs = manifest::compare_files(&m, &facts);
            Ok(Some((m, diffs, facts.len())))
        })
        .await
        .map_err(|e| {
            Failure::new(
                ErrorClass::Transient,
                FailureCode::SnapshotIo,
                e.to_string(),
            )
        })??;
        let Some((m, mut diffs, files)) = checked else {
            return Ok(None);
        };
        if diffs.is_empty() {
            // The files are the ones the ETL job described: now their rows.
            let counted = manifest::count_rows(&canonical, &m).await?;
            diffs = manifest::compare_rows(&m, &counted);
        }
        if diffs.is_empty() {
            tracing::info!(customer = %step.customer(), files, "snapshot files match the manifest");
            return Ok(Some(m));
        }
        Err(Failure::new(
            ErrorClass::Permanent,
            FailureCode::ManifestMismatch,
            format!(
                "the snapshot's files do not match the manifest in _SUCCESS (nothing was written): {}",
                diffs.join("; ")
            ),
        ))
    }

    /// Step "gates", between verify and switch: the new database's counts
    /// per label and type, the guards against the live database's (only
    /// when this snapshot would go live) and what changed. A failure here
    /// drops the new database like a failed load.
    pub(super) async fn step_gates(
        &self,
        step: &Step<'_>,
        manifest: Option<&Manifest>,
        skipped: u64,
    ) -> Result<GateAudit, Failure> {
        let result = async {
            let store = step.store();
            let census = store.census(&step.db).await?;
            if let Some(m) = manifest {
                let loaded = manifest::Loaded {
                    nodes: census.nodes,
                    relationship_rows: census.relationships + skipped,
                    labels: census.labels.clone(),
                    types: census.types.clone(),
                };
                let diffs = manifest::compare_counts(m, &loaded);
                if !diffs.is_empty() {
                    return Err(Failure::new(
                        ErrorClass::Permanent,
                        FailureCode::ManifestMismatch,
                        format!(
                            "the loaded database does not match the manifest in _SUCCESS: {}",
                            diffs.join("; ")
                        ),
                    ));
                }
            }
            let live = alias_target(store, step.customer()).await?;
            let live_census = match live {
                Some(l) => {
                    let db = DatabaseName::new(step.customer().clone(), l).to_string();
                    Some(store.census(&db).await?)
                }
                None => None,
            };
            let mut holds = Vec::new();
            if decide::should_switch(live, step.event.snapshot_id) {
                let guards = self.config.guards_for(step.customer().as_str());
                holds = gates::guard(&census, live_census.as_ref(), &guards);
                holds.extend(self.run_checks(step).await);
            }
            let changed = gates::diff(&census, live_census.as_ref());
            Ok::<_, Failure>(GateAudit {
                census,
                live,
                changed,
                holds,
            })
        }
        .await;
        match result {
            Ok(audit) => Ok(audit),
            Err(f) if f.code == FailureCode::LockLost => {
                Err(self.abandoned(step.event, step.held, "gates"))
            }
            Err(f) => {
                self.drop_partial(step).await;
                Err(f)
            }
        }
    }

    /// The `[[checks]]` that apply to the customer, each read-only against
    /// the new database with `check_timeout`; a failed, failing or
    /// timed-out check is a hold naming it.
    pub(super) async fn run_checks(&self, step: &Step<'_>) -> Vec<Hold> {
        let timeout = Duration::from_secs(self.config.check_timeout);
        let mut holds = Vec::new();
        for check in self.config.checks_for(step.customer().as_str()) {
            let ran = tokio::time::timeout(
                timeout,
                step.store().read_scalar(&step.db, &check.query, timeout),
            )
            .instrument(tracing::info_span!("check", name = %check.name))
            .await;
            let result = match ran {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "timed out after {} s (check_timeout)",
                    self.config.check_timeout
                )),
            };
            tracing::info!(db = %step.db, check = %check.name, result = ?result, "check ran");
            holds.extend(gates::check_verdict(&check.name, result));
        }
        holds
    }

    /// A snapshot a guard or a check refused: marked `held` (fenced), its
    /// reasons recorded for `producer status` and the audit trail, the alias
    /// left where it is; cleanup keeps it (it counts toward
    /// `keep_databases`).
    pub(super) async fn step_hold(
        &self,
        step: &Step<'_>,
        audit: GateAudit,
    ) -> Result<Outcome, Failure> {
        if !step.held.still_valid().await? {
            return Err(self.abandoned(step.event, step.held, "hold"));
        }
        match step.store().mark_held(&step.db, &step.fence()).await {
            Ok(()) => {}
            Err(e) if e.is_fenced() => return Err(self.abandoned(step.event, step.held, "hold")),
            Err(e) => {
                // Not held, not verified: it must not stay behind.
                tracing::warn!(db = %step.db, error = %e, "could not mark the database held; dropping it");
                self.drop_partial(step).await;
                return Err(e.into());
            }
        }
        let reasons: Vec<String> = audit
            .holds
            .iter()
            .map(|h| format!("{}: {}", h.code, h.message))
            .collect();
        let mut codes: Vec<&str> = audit.holds.iter().map(|h| h.code.as_str()).collect();
        codes.dedup();
        for code in &codes {
            self.metrics.hold(code);
        }
        tracing::warn!(customer = %step.customer(), db = %step.db, reasons = %reasons.join("; "), "snapshot held: loaded and verified, not switched");
        let record = serde_json::json!({
            "database": step.db,
            "reasons": audit.holds,
            "changed": audit.changed,
            "live_snapshot": audit.live.map(|l| l.get()),
            "census": audit.census,
            "held_at": chrono::Utc::now().to_rfc3339(),
        });
        self.state
            .record_held(step.customer(), step.event.snapshot_id, &record)
            .await?;
        self.audit(
            AuditEvent::Held,
            step.event,
            &[
                ("database", step.db.clone()),
                ("reason", codes.join(",")),
                ("reasons", reasons.join("; ")),
                ("changed", audit.changed()),
                ("census", audit.census_json()),
                (
                    "live",
                    audit.live.map(|l| l.to_string()).unwrap_or_default(),
                ),
            ],
        )
        .await?;
        self.step_cleanup(step, audit.live)
            .instrument(tracing::info_span!("cleanup"))
            .await?;
        Ok(Outcome::Held {
            reasons: audit.holds,
        })
    }
}

/// What the gates found for one verified database.
pub(super) struct GateAudit {
    pub(super) census: common::graph::Census,
    /// The live snapshot it was compared with.
    pub(super) live: Option<SnapshotId>,
    /// What changed against the live database (`gates::diff`).
    pub(super) changed: Vec<String>,
    pub(super) holds: Vec<Hold>,
}

impl GateAudit {
    pub(super) fn changed(&self) -> String {
        if self.changed.is_empty() {
            "nothing".into()
        } else {
            self.changed.join("; ")
        }
    }
    pub(super) fn census_json(&self) -> String {
        serde_json::to_string(&self.census).unwrap_or_default()
    }
}
