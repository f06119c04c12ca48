//! `producer publish`: one ready snapshot's event (what an ETL job runs
//! after writing `_SUCCESS`), and the announcer the publishing commands share.

use common::config::Config;
use common::ident::{Customer, SnapshotId};
use common::topology::Topology;

use crate::publish::Announcer;

/// Publishes the event of `customer`/`snapshot_id` and prints its event id.
pub async fn run(
    config: &Config,
    customer: &str,
    snapshot_id: u64,
    priority: Option<u8>,
) -> anyhow::Result<()> {
    let customer = Customer::parse(customer)?;
    let snapshot = SnapshotId::new(snapshot_id)?;
    common::snapshot::layout::resolve_ready(&config.data_root, &customer, snapshot)?;
    let announcer = announcer(config).await?;
    let event = announcer
        .publish(
            &customer,
            snapshot,
            priority.unwrap_or(config.default_priority),
        )
        .await?;
    println!("{}", event.event_id);
    Ok(())
}

/// The announcer with its own metrics (commands that serve none).
pub async fn announcer(config: &Config) -> anyhow::Result<Announcer> {
    announcer_with(
        config,
        std::sync::Arc::new(common::metrics::Metrics::new(
            common::metrics::Role::Producer,
        )),
    )
    .await
}

/// Redis, RabbitMQ (topology declared) and a publisher, for publishing events.
pub async fn announcer_with(
    config: &Config,
    metrics: std::sync::Arc<common::metrics::Metrics>,
) -> anyhow::Result<Announcer> {
    config.check_data_root()?;
    let state = common::state::fleet(config).await?;
    let connection = common::broker::connect_config(config, "snapswitch-producer").await?;
    let topology = Topology::from_config(config);
    common::broker::declare(&connection.create_channel().await?, &topology).await?;
    let publisher = common::broker::Publisher::new(&connection).await?;
    Ok(Announcer::new(
        std::sync::Arc::new(connection),
        publisher,
        common::broker::BrokerAddress {
            options: config.into(),
            name: "snapswitch-producer".into(),
        },
        topology,
        state,
        metrics,
    ))
}
