//! Loading the configuration: defaults ← TOML file ← `SNAPSWITCH_*`
//! environment variables (`__` reaches into a table) ← command-line flags,
//! then [`Config::validate`]; secrets given as files (`<KEY>_FILE`,
//! `{ file = "<path>" }`); and the messages for a value of the wrong type
//! (key, value, what is allowed, where it came from).

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::Serialize;

use crate::config::model::{Config, ConfigError};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "SNAPSWITCH_CONFIG";
/// Prefix of every environment override: `SNAPSWITCH_<KEY>` (upper case).
pub const ENV_PREFIX: &str = "SNAPSWITCH_";

impl Config {
    /// Loads defaults ← file ← environment ← `overrides` (typically the CLI
    /// flags that were given, as a serializable struct with `None`s skipped),
    /// then validates.
    pub fn load<O: Serialize>(file: Option<&Path>, overrides: O) -> Result<Config, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let both = secret_env_conflicts();
        if !both.is_empty() {
            return Err(ConfigError::Load(format!(
                "set either the variable or its _FILE form, not both: {}",
                both.join(", ")
            )));
        }
        let config: Config = figment
            .merge(env_provider())
            .merge(secret_file_env_provider(ENV_PREFIX, &SECRET_KEYS))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(load_error)?;
        config.validate()?;
        Ok(config)
    }
}

/// A value the config loader could not take, one line per key: the key,
/// the value found (hidden for keys that may hold a password), what is
/// allowed and where the value came from — instead of the deserializer's
/// raw text (`expected u16 for key "default.workers"`).
fn load_error(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let lines = error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "(top level)".to_owned()
            } else {
                e.path.join(".")
            };
            let secret = SECRET_KEYS
                .iter()
                .any(|k| key == *k || key.ends_with(&format!(".{k}")));
            let from = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (from {} {source})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            let shown = |actual: &figment::error::Actual| {
                if secret {
                    "***".to_owned()
                } else {
                    actual.to_string()
                }
            };
            match &e.kind {
                Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                    format!("  {key} = {}: {}{from}", shown(actual), allowed(expected))
                }
                Kind::UnknownVariant(actual, expected) => format!(
                    "  {key} = {:?}: one of {}{from}",
                    if secret { "***" } else { actual.as_str() },
                    expected.join(", ")
                ),
                Kind::UnknownField(field, _) => {
                    let key = if e.path.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    format!("  {key}: not a config key (see docs/configuration.md){from}")
                }
                other => format!("  {key}: {other}{from}"),
            }
        })
        .collect();
    ConfigError::Invalid(lines)
}

/// What a Rust type name in a deserializer's message allows, in words.
fn allowed(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i64" | "isize" | "i32" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "a string (in quotes in TOML)".into(),
        other => other.to_owned(),
    }
}

/// `SNAPSWITCH_<KEY>` for every config key. Other `SNAPSWITCH_*` variables
/// (the config file's name, the log format, the scripts' and tests' own) are
/// not config keys; [`unknown_env_vars`] lists them so a typo can be warned about.
fn env_provider() -> Env {
    let keys = Config::keys();
    Env::prefixed(ENV_PREFIX)
        .filter(move |key| {
            keys.iter()
                .any(|k| k.eq_ignore_ascii_case(top_key(key.as_str())))
        })
        .split(NEST)
}

/// `SNAPSWITCH_TARGETS__EAST__GRAPH_URL` sets `targets.east.graph_url`.
const NEST: &str = "__";

/// The top-level key of a (possibly nested) environment key.
fn top_key(key: &str) -> &str {
    key.split(NEST).next().unwrap_or(key)
}

/// `SNAPSWITCH_*` variables that are neither config keys nor known to belong
/// to something else: most likely typos.
pub fn unknown_env_vars() -> Vec<String> {
    const OTHERS: [&str; 4] = ["CONFIG", "LOG_FORMAT", "TOOLS", "PY_TOOLS"];
    let keys = Config::keys();
    std::env::vars()
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            let secret_file = rest
                .strip_suffix(FILE_SUFFIX)
                .is_some_and(|k| SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)));
            let known = keys.iter().any(|k| k.eq_ignore_ascii_case(top_key(rest)))
                || secret_file
                || OTHERS.contains(&rest)
                || rest.starts_with("TEST_");
            (!known).then_some(name)
        })
        .collect()
}

// --- security: secrets from files (security helper) ---

/// Suffix of the environment variable that names a file holding a secret
/// key's value: `SNAPSWITCH_GRAPH_PASSWORD_FILE=/run/secrets/neo4j`.
pub const FILE_SUFFIX: &str = "_FILE";
/// The keys whose value may be given as a file (`<KEY>_FILE` in the
/// environment, `key = { file = "..." }` in TOML): every key that may hold a
/// password.
pub const SECRET_KEYS: [&str; 4] = ["amqp_url", "redis_url", "graph_url", "graph_password"];
/// A figment layer turning `<prefix><KEY>_FILE=<path>` into `key = { file =
/// "<path>" }` for each of `keys` (dotted keys address nested tables, e.g.
/// `graph_targets.blue.password`); the [`Secret`]/[`ServiceUrl`] field then
/// reads the file when the config is extracted.
pub fn secret_file_env_provider(prefix: &str, keys: &[&str]) -> Env {
    let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    let suffix = FILE_SUFFIX.to_ascii_lowercase();
    Env::prefixed(prefix).filter_map(move |name| {
        let name = name.as_str().to_ascii_lowercase();
        let base = name.strip_suffix(suffix.as_str())?;
        keys.iter()
            .find(|k| k.replace('.', "_") == base)
            .map(|k| format!("{k}.file").into())
    })
}

/// Secret keys given both directly and as `_FILE` in the environment.
fn secret_env_conflicts() -> Vec<String> {
    SECRET_KEYS
        .iter()
        .map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
        .filter(|var| {
            std::env::var_os(var).is_some()
                && std::env::var_os(format!("{var}{FILE_SUFFIX}")).is_some()
        })
        .collect()
}
