//! `producer backfill`: every ready, unpublished snapshot once, then exit.

use common::config::Config;

use crate::scan;

/// Publishes what is ready and not yet published; a progress bar on a terminal.
pub async fn run(config: &Config, priority: Option<u8>) -> anyhow::Result<()> {
    let announcer = super::publish::announcer(config).await?;
    // A progress bar for people; plain output for scripts and logs.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} snapshots checked ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    // The bar owns the terminal while it runs: the per-snapshot
    // lines show only at debug (RUST_LOG=debug) meanwhile.
    let quiet = bar
        .as_ref()
        .map(|_| common::telemetry::ProgressGuard::start());
    let n = scan::publish_ready(
        &announcer,
        &config.data_root,
        priority.unwrap_or(config.default_priority),
        bar.as_ref(),
    )
    .await;
    if let Some(bar) = bar {
        bar.finish();
    }
    drop(quiet);
    let n = n?;
    tracing::info!(published = n, "backfill done");
    println!("published {n}");
    Ok(())
}
