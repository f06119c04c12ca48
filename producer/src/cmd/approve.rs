//! `producer approve` and `producer reject`: a held snapshot made live, or
//! dropped; the work is `crate::approve`'s, the report line is here.

use common::config::Config;

use crate::approve;

/// Approves the held `snapshot_id` of `customer` and prints what moved.
pub async fn approve(config: &Config, customer: &str, snapshot_id: u64) -> anyhow::Result<()> {
    let d = approve::approve(config, customer, snapshot_id).await?;
    println!(
        "{}: alias moved to {} (was {}); it was held for: {}",
        d.customer,
        d.snapshot_id,
        d.live_before.map_or("-".into(), |l| l.to_string()),
        d.reasons.join("; ")
    );
    Ok(())
}

/// Rejects the held `snapshot_id` of `customer` and prints what was dropped.
pub async fn reject(config: &Config, customer: &str, snapshot_id: u64) -> anyhow::Result<()> {
    let d = approve::reject(config, customer, snapshot_id).await?;
    println!(
        "{}: held snapshot {} rejected, database {} dropped; the alias stays on {}",
        d.customer,
        d.snapshot_id,
        d.database,
        d.live_before.map_or("-".into(), |l| l.to_string())
    );
    Ok(())
}
