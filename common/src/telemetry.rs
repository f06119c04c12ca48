//! Logging setup shared by the binaries: `tracing` with `RUST_LOG` filtering
//! (default `info`), human-readable or JSON (`SNAPSWITCH_LOG_FORMAT=json`),
//! always to stderr so stdout stays free for command output.

use tracing_subscriber::EnvFilter;

pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SNAPSWITCH_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
