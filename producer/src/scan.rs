//! One pass over the data root: every ready snapshot not yet published is
//! published (many at a time: `Announcer::publish_many`). Used by `backfill` and by `watch`'s periodic rescan.

use std::path::Path;

use common::snapshot::{layout, ReadySnapshot};

use crate::publish::Announcer;

/// Priority of each snapshot: the newest of each customer one above `base`
/// (capped at 9), so that with many snapshots queued the ones that will become
/// live go first and the older ones are skipped as superseded.
pub fn newest_first_priorities(snapshots: &[ReadySnapshot], base: u8) -> Vec<u8> {
    snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let newest = snapshots
                .get(i + 1)
                .is_none_or(|next| next.customer != s.customer);
            if newest {
                base.saturating_add(1).min(common::event::MAX_PRIORITY)
            } else {
                base
            }
        })
        .collect()
}

/// Publishes every ready, unpublished snapshot; returns how many it
/// published. `progress`, when given, counts the snapshots looked at.
pub async fn publish_ready(
    announcer: &Announcer,
    root: &Path,
    base_priority: u8,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<usize> {
    let ready = layout::scan(root)?;
    let priorities = newest_first_priorities(&ready, base_priority);
    if let Some(bar) = progress {
        bar.set_length(ready.len() as u64);
    }
    let items = ready
        .iter()
        .zip(priorities)
        .map(|(s, priority)| (s.customer.clone(), s.id, priority));
    announcer
        .publish_many(items, || {
            if let Some(bar) = progress {
                bar.inc(1);
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ident::{Customer, SnapshotId};

    #[test]
    fn newest_snapshot_of_each_customer_goes_first() {
        let s = |c: &str, id: u64| ReadySnapshot {
            customer: Customer::parse(c).unwrap(),
            id: SnapshotId::new(id).unwrap(),
            dir: Default::default(),
        };
        let list = [
            s("aaa", 1_700_000_001),
            s("aaa", 1_700_000_002),
            s("bbb", 1_700_000_001),
        ];
        assert_eq!(newest_first_priorities(&list, 5), [5, 6, 6]);
        assert_eq!(newest_first_priorities(&list[..1], 9), [9]);
    }
}
