//! Configuration: one struct, layered from defaults, a TOML file, `SNAPSWITCH_*`
//! environment variables and command-line flags (later layers win), then
//! validated as a whole before anything connects anywhere.
//!
//! The seed orchestrator's key names are kept where they exist (`scan_interval`,
//! `max_databases`, `heap_threshold_percent`, `pagecache_threshold_percent`,
//! `health_check_retry_delay`, `max_retries`, `retry_backoff_base`,
//! `shutdown_timeout`, `workers`). Durations are whole seconds, as in the seed.

//!
//! The configuration layer, split by concern:
//! - `model.rs`: the [`Config`] struct, its defaults and accessors;
//! - `layering.rs`: loading it (file, environment, flags, secret files);
//! - `validate.rs`: checking it as a whole ([`Config::validate`]);
//! - `targets.rs`: the `[targets.<name>]` tables;
//! - `build.rs`: the adapters' options built from it (the adapters read no
//!   configuration).

pub mod build;
pub mod layering;
pub mod model;
pub mod targets;
pub mod validate;

#[cfg(test)]
mod tests;

pub use crate::adapters::graph::GraphKind;
pub use crate::adapters::secret::{
    is_tls_scheme, read_secret_file, redact_url, url_problem, Secret, ServiceUrl,
    MAX_SECRET_FILE_BYTES,
};
pub use layering::{
    secret_file_env_provider, unknown_env_vars, CONFIG_FILE_ENV, ENV_PREFIX, FILE_SUFFIX,
    SECRET_KEYS,
};
pub use model::{CheckConfig, Config, ConfigError, GateOverride, Guards};
