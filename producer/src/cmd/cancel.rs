//! `producer cancel`: the operator's cancel marker for one snapshot.

use common::config::Config;
use common::ident::{Customer, SnapshotId};
use common::keys::Keys;
use common::state::FleetState;
use common::vocab::AuditEvent;

/// Marks `customer`/`snapshot_id` cancelled and audits the request.
pub async fn run(config: &Config, customer: &str, snapshot_id: u64) -> anyhow::Result<()> {
    let customer = Customer::parse(customer)?;
    let snapshot = SnapshotId::new(snapshot_id)?;
    let redis = common::state::connect_config(config).await?;
    let state = FleetState::new(redis, Keys::new(&config.namespace));
    state.cancel(&customer, snapshot).await?;
    state
        .audit(
            AuditEvent::CancelRequested.as_str(),
            &[
                ("customer", customer.to_string()),
                ("snapshot_id", snapshot.to_string()),
            ],
        )
        .await?;
    println!("cancelled {customer}/{snapshot}");
    Ok(())
}
