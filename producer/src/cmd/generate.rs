//! `producer generate`: sample snapshots under the data root.

use std::time::Duration;

use anyhow::Context;
use common::config::Config;
use common::ident::{Customer, SnapshotId};
use common::snapshot::sample::{self, SampleFormat, SampleSpec};

/// Writes `snapshots` sample snapshots per customer, 60 s apart.
pub fn run(
    config: &Config,
    customers: &[String],
    snapshots: u64,
    rows: usize,
    format: SampleFormat,
    start_id: Option<u64>,
    pause_ms: u64,
) -> anyhow::Result<()> {
    let start =
        start_id.unwrap_or_else(|| u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0));
    let customers: Vec<Customer> = customers
        .iter()
        .map(|c| Customer::parse(c))
        .collect::<Result<_, _>>()?;
    for n in 0..snapshots {
        for (i, customer) in customers.iter().enumerate() {
            let id = SnapshotId::new(start + n * 60)?;
            let dir = sample::snapshot_dir(&config.data_root, customer.as_str(), id.get());
            let spec = SampleSpec::with_rows(rows, format, id.get() ^ (i as u64) << 32);
            sample::write_snapshot(&dir, &spec)
                .with_context(|| format!("writing {}", dir.display()))?;
            println!(
                "{} nodes={} relationships={}",
                dir.display(),
                spec.node_count(),
                spec.relationship_count()
            );
        }
        if pause_ms > 0 && n + 1 < snapshots {
            std::thread::sleep(Duration::from_millis(pause_ms));
        }
    }
    Ok(())
}
