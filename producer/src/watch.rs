//! `producer watch`: file-system notifications on the data root (inotify
//! through the notify crate) for low latency, plus a full rescan every
//! `scan_interval` seconds in case a notification was missed (network file
//! systems, overflowed queues, a watcher started after the copy).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::ident::{Customer, SnapshotId};
use common::snapshot::layout;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::publish::{Announced, Announcer};
use crate::scan::publish_ready;

/// Publishes ready snapshots as they appear (notifications, and a rescan every
/// `scan_interval`) until `stop`.
pub async fn run(
    announcer: &Announcer,
    root: &Path,
    scan_interval: Duration,
    priority: u8,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                for path in event.paths {
                    // The receiver is gone only when the loop has ended.
                    drop(tx.send(path));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; the periodic rescan covers it")
            }
        })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    tracing::info!(root = %root.display(), scan_interval_s = scan_interval.as_secs(), "watching for ready snapshots");

    // Snapshots this process already settled: skips Redis for repeated events.
    let mut done: HashSet<(Customer, SnapshotId)> = HashSet::new();
    let mut rescan = tokio::time::interval(scan_interval);
    let work = async {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = rescan.tick() => {
                    match publish_ready(announcer, root, priority, None).await {
                        Ok(n) if n > 0 => tracing::info!(published = n, "rescan published snapshots the watcher had not"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "rescan failed; next one in scan_interval"),
                    }
                }
                Some(path) = rx.recv() => {
                    let Some((customer, id)) = layout::parse_relative(root, &path) else { continue };
                    if done.contains(&(customer.clone(), id)) {
                        continue;
                    }
                    let dir = root.join(customer.as_str()).join(id.to_string());
                    if !dir.join(layout::READY_MARKER).is_file() {
                        continue; // still being written
                    }
                    match announcer.publish_once(&customer, id, priority).await {
                        Ok(Announced::Published | Announced::AlreadyPublished) => {
                            done.insert((customer, id));
                        }
                        Err(e) => tracing::warn!(%customer, snapshot = %id, error = %e, "publish failed; the rescan retries it"),
                    }
                }
            }
        }
    };
    // The connection is watched while the loop waits on a publish.
    let (_, result) = tokio::join!(announcer.keep_connection(stop.clone()), work);
    result
}
