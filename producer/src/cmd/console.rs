//! `producer console`: the operator console over HTTP until SIGTERM/SIGINT.

use common::config::Config;
use tokio_util::sync::CancellationToken;

use crate::console;

/// Serves the console on `listen`; `token_file` (or `console_token_file`)
/// holds the operator token, none makes it read-only.
pub async fn run(
    config: &Config,
    listen: &str,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let auth = match token_file.or(config.console_token_file.as_deref()) {
        Some(path) => console::auth::Auth::from_file(path)?,
        None => {
            tracing::warn!(
                "no operator token configured (console_token_file): the console is read-only"
            );
            console::auth::Auth::read_only()
        }
    };
    let console = console::Console::new(config.clone(), auth).await?;
    let stop = CancellationToken::new();
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        }
        signal_stop.cancel();
    });
    console::serve(console, listen, stop).await
}
