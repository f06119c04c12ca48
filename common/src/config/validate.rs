//! Checking a loaded configuration as a whole, before anything connects:
//! every problem is reported at once, one line each, naming the key, the
//! value (never a password) and what is allowed. The graph targets' keys are
//! checked here too ([`validate_targets`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::adapters::graph::{GraphKind, LoadMethod};
use crate::adapters::secret::{is_tls_scheme, url_problem, ServiceUrl};
use crate::config::build::active_names;
use crate::config::model::{Config, ConfigError};
use crate::config::targets::{schemes, server_of, DEFAULT_TARGET, MAX_TARGET_NAME_LEN};
use crate::contract::ident::Customer;

impl Config {
    /// Checks every value; the error lists each bad key with its value and what
    /// is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let mut check = |ok: bool, key: &str, value: String, allowed: &str| {
            if !ok {
                bad.push(format!("  {key} = {value}: {allowed}"));
            }
        };
        check(
            !self.namespace.is_empty()
                && self.namespace.len() <= 64
                && self
                    .namespace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "namespace",
            format!("{:?}", self.namespace),
            "1 to 64 characters from a-z, A-Z, 0-9, '-' and '_'",
        );
        for (key, url, schemes) in [
            ("amqp_url", &self.amqp_url, &["amqp", "amqps"][..]),
            ("redis_url", &self.redis_url, &["redis", "rediss"][..]),
        ] {
            check(
                url.scheme().is_some_and(|s| schemes.contains(&s)),
                key,
                url.redacted(),
                &format!("a URL with scheme {}", schemes.join(" or ")),
            );
        }
        let graph_schemes = crate::config::targets::schemes(self.graph_kind);
        check(
            self.graph_url
                .scheme()
                .is_some_and(|s| graph_schemes.contains(&s)),
            "graph_url",
            self.graph_url.redacted(),
            &format!(
                "for graph_kind = {}: a URL with scheme {}",
                self.graph_kind,
                graph_schemes.join(", ")
            ),
        );
        check(
            self.scan_interval >= 1 && self.scan_interval <= 86_400,
            "scan_interval",
            self.scan_interval.to_string(),
            "1 to 86400 seconds",
        );
        check(
            self.default_priority <= crate::contract::event::MAX_PRIORITY,
            "default_priority",
            self.default_priority.to_string(),
            "0 to 9",
        );
        check(
            (1..=64).contains(&self.workers),
            "workers",
            self.workers.to_string(),
            "1 to 64 concurrent loads per process",
        );
        check(
            (1..=100).contains(&self.keep_databases),
            "keep_databases",
            self.keep_databases.to_string(),
            "1 to 100",
        );
        check(
            self.max_databases >= 1,
            "max_databases",
            self.max_databases.to_string(),
            "at least 1",
        );
        for (key, v) in [
            ("heap_threshold_percent", self.heap_threshold_percent),
            (
                "pagecache_threshold_percent",
                self.pagecache_threshold_percent,
            ),
        ] {
            check(
                (1..=100).contains(&v),
                key,
                v.to_string(),
                "1 to 100 (percent)",
            );
        }
        check(
            (1..=86_400).contains(&self.health_check_retry_delay),
            "health_check_retry_delay",
            self.health_check_retry_delay.to_string(),
            "1 to 86400 seconds",
        );
        check(
            self.max_retries <= 20,
            "max_retries",
            self.max_retries.to_string(),
            "0 to 20",
        );
        check(
            (1..=10).contains(&self.retry_backoff_base),
            "retry_backoff_base",
            self.retry_backoff_base.to_string(),
            "1 to 10",
        );
        check(
            (1..=604_800).contains(&self.retry_max_delay),
            "retry_max_delay",
            self.retry_max_delay.to_string(),
            "1 to 604800 seconds (7 days)",
        );
        check(
            (1..=300).contains(&self.connect_timeout),
            "connect_timeout",
            self.connect_timeout.to_string(),
            "1 to 300 seconds",
        );
        check(
            self.retry_delays().iter().all(|d| d.as_secs() <= 7 * 86_400),
            "max_retries",
            format!("{} with retry_backoff_base = {}", self.max_retries, self.retry_backoff_base),
            "the longest retry delay (retry_backoff_base^max_retries seconds) must stay under 7 days",
        );
        check(
            self.shutdown_timeout <= 86_400,
            "shutdown_timeout",
            self.shutdown_timeout.to_string(),
            "0 to 86400 seconds",
        );
        check(
            (3..=3600).contains(&self.lock_ttl),
            "lock_ttl",
            self.lock_ttl.to_string(),
            "3 to 3600 seconds (renewed every third of it)",
        );
        check(
            (1..=3600).contains(&self.lock_wait_timeout),
            "lock_wait_timeout",
            self.lock_wait_timeout.to_string(),
            "1 to 3600 seconds",
        );
        check(
            (1..=1_000_000).contains(&self.batch_size),
            "batch_size",
            self.batch_size.to_string(),
            "1 to 1000000 rows",
        );
        check(
            self.batch_pause_ms <= 60_000,
            "batch_pause_ms",
            self.batch_pause_ms.to_string(),
            "0 to 60000 milliseconds",
        );
        check(
            (1..=86_400).contains(&self.reconcile_interval),
            "reconcile_interval",
            self.reconcile_interval.to_string(),
            "1 to 86400 seconds",
        );
        check(
            (1..=1000).contains(&self.breaker_threshold),
            "breaker_threshold",
            self.breaker_threshold.to_string(),
            "1 to 1000 consecutive failures",
        );
        check(
            (1..=3600).contains(&self.breaker_probe_interval),
            "breaker_probe_interval",
            self.breaker_probe_interval.to_string(),
            "1 to 3600 seconds",
        );
        check(
            self.bulk_max_stall_ms <= 60_000,
            "bulk_max_stall_ms",
            self.bulk_max_stall_ms.to_string(),
            "0 to 60000 milliseconds (0: no budget)",
        );
        check(
            !(self.load_method == Some(LoadMethod::Bulk) && self.graph_kind == GraphKind::Neo4j),
            "load_method",
            "bulk".into(),
            "cypher for graph_kind = neo4j (bulk is FalkorDB's GRAPH.BULK)",
        );
        check(
            (1..=1000).contains(&self.max_concurrent_loads),
            "max_concurrent_loads",
            self.max_concurrent_loads.to_string(),
            "1 to 1000 loads at once",
        );
        check(
            (1..=3600).contains(&self.slot_wait_timeout),
            "slot_wait_timeout",
            self.slot_wait_timeout.to_string(),
            "1 to 3600 seconds",
        );
        check(
            self.http_listen.parse::<std::net::SocketAddr>().is_ok(),
            "http_listen",
            format!("{:?}", self.http_listen),
            "an address with a port, e.g. 0.0.0.0:9464 or 127.0.0.1:0",
        );
        // --- loader ---
        check(
            (1..=64).contains(&self.load_concurrency),
            "load_concurrency",
            self.load_concurrency.to_string(),
            "1 to 64 write batches in flight",
        );
        // --- exactness ---
        check(
            (60..=31_536_000).contains(&self.max_future_seconds),
            "max_future_seconds",
            self.max_future_seconds.to_string(),
            "60 to 31536000 seconds",
        );
        // --- gates ---
        let percent = |v: Option<u32>, max: u32| v.is_none_or(|v| v <= max);
        check(
            percent(Some(self.max_shrink_percent), 100),
            "max_shrink_percent",
            self.max_shrink_percent.to_string(),
            "0 to 100 (100: never hold for shrinking)",
        );
        check(
            self.max_growth_percent
                .is_none_or(|g| (1..=1_000_000).contains(&g)),
            "max_growth_percent",
            format!("{:?}", self.max_growth_percent),
            "unset, or 1 to 1000000",
        );
        for (customer, o) in &self.customer_gates {
            check(
                crate::contract::ident::Customer::parse(customer).is_ok()
                    && percent(o.max_shrink_percent, 100)
                    && o.max_growth_percent
                        .is_none_or(|g| (1..=1_000_000).contains(&g)),
                &format!("customer_gates.{customer}"),
                format!("{o:?}"),
                "a valid customer name; max_shrink_percent 0 to 100, max_growth_percent 1 to 1000000",
            );
        }
        check(
            (1..=3600).contains(&self.check_timeout),
            "check_timeout",
            self.check_timeout.to_string(),
            "1 to 3600 seconds",
        );
        let mut names = std::collections::BTreeSet::new();
        for c in &self.checks {
            check(
                !c.name.trim().is_empty()
                    && names.insert(c.name.as_str())
                    && !c.query.trim().is_empty()
                    && c.customers
                        .iter()
                        .all(|n| crate::contract::ident::Customer::parse(n).is_ok()),
                "checks",
                format!("{:?}", c.name),
                "each check a unique non-empty name, a non-empty query and valid customer names",
            );
        }
        // --- security: URLs, names, TLS trust files (security helper) ---
        for (key, url) in [
            ("amqp_url", &self.amqp_url),
            ("redis_url", &self.redis_url),
            ("graph_url", &self.graph_url),
        ] {
            check(
                url_has_host(url.expose()),
                key,
                url.redacted(),
                "a URL with a host after `://`, without spaces or control characters",
            );
            if let Some(problem) = url_problem(url.expose()) {
                check(false, key, url.redacted(), &problem);
            }
        }
        check(
            !self.data_root.as_os_str().is_empty(),
            "data_root",
            "\"\"".into(),
            "a directory path",
        );
        check(
            self.max_databases <= 100_000,
            "max_databases",
            self.max_databases.to_string(),
            "1 to 100000",
        );
        check(
            self.graph_kind != GraphKind::Neo4j
                || (!self.graph_user.is_empty()
                    && self.graph_user.len() <= 256
                    && !self.graph_user.chars().any(char::is_control)),
            "graph_user",
            format!("{:?}", self.graph_user.chars().take(80).collect::<String>()),
            "for graph_kind = neo4j: 1 to 256 characters, no control characters",
        );
        check(
            self.status_file.as_deref().is_none_or(|p| !p.is_dir()),
            "status_file",
            self.status_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            "a file path, not a directory",
        );
        for (key, ca, url) in [
            ("amqp_ca_file", &self.amqp_ca_file, &self.amqp_url),
            ("redis_ca_file", &self.redis_ca_file, &self.redis_url),
            ("graph_ca_file", &self.graph_ca_file, &self.graph_url),
        ] {
            let Some(ca) = ca else { continue };
            check(
                ca.is_file(),
                key,
                ca.display().to_string(),
                "a readable PEM file",
            );
            check(
                url.scheme().is_some_and(is_tls_scheme),
                key,
                ca.display().to_string(),
                &format!(
                    "set only with a TLS URL (amqps, rediss, neo4j+s, bolt+s); the URL is {}",
                    url.redacted()
                ),
            );
        }
        // Graph targets
        validate_targets(self, &mut bad);
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad))
        }
    }
}

/// `scheme://host…`: something after `://` before any path, and no
/// whitespace or control characters anywhere.
fn url_has_host(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    !host.is_empty()
        && !host.starts_with(':')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Why `name` cannot name a target, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TARGET_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__");
    if name == DEFAULT_TARGET {
        Some("`default` is the target of the top-level graph_* keys; set those instead, or pick another name")
    } else if !ok {
        Some("1 to 32 characters from a-z, 0-9 and '_', starting with a letter, without '__' (the environment form is SNAPSWITCH_TARGETS__<NAME>__<KEY>)")
    } else {
        None
    }
}

/// Checks the target keys (`targets`, `customer_targets`, `default_target`)
/// and appends one `  key = value: allowed` line per problem to `bad`.
pub fn validate_targets(config: &Config, bad: &mut Vec<String>) {
    let mut check = |ok: bool, key: &str, value: String, allowed: &str| {
        if !ok {
            bad.push(format!("  {key} = {value}: {allowed}"));
        }
    };
    let mut defined: Vec<&str> = vec![DEFAULT_TARGET];
    defined.extend(
        config
            .targets
            .keys()
            .map(String::as_str)
            .filter(|n| name_problem(n).is_none()),
    );
    let one_of = format!(
        "one of {} (`default` is the top-level graph_* keys, the others are [targets.<name>] tables)",
        defined.join(", ")
    );
    for (name, t) in &config.targets {
        if let Some(why) = name_problem(name) {
            check(false, "targets", format!("{name:?}"), why);
            continue;
        }
        let key = |k: &str| format!("targets.{name}.{k}");
        let kind = t.graph_kind.unwrap_or(config.graph_kind);
        match &t.graph_url {
            None => check(
                false,
                &key("graph_url"),
                "(unset)".into(),
                "required: the URL of this target's graph server",
            ),
            Some(url) => check(
                url.scheme().is_some_and(|s| schemes(kind).contains(&s)),
                &key("graph_url"),
                url.redacted(),
                &format!(
                    "for graph_kind = {kind}: a URL with scheme {}",
                    schemes(kind).join(", ")
                ),
            ),
        }
        check(
            !(t.graph_password.is_some() && t.graph_password_file.is_some()),
            &key("graph_password_file"),
            t.graph_password_file
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
                .to_string(),
            &format!("set either {} or this, not both", key("graph_password")),
        );
        if let Some(ca) = &t.graph_ca_file {
            check(
                ca.is_file(),
                &key("graph_ca_file"),
                ca.display().to_string(),
                "a readable PEM file",
            );
            check(
                t.graph_url
                    .as_ref()
                    .and_then(ServiceUrl::scheme)
                    .is_some_and(crate::adapters::secret::is_tls_scheme),
                &key("graph_ca_file"),
                ca.display().to_string(),
                "set only with a TLS graph_url (rediss, neo4j+s, bolt+s)",
            );
        }
        if kind == GraphKind::Neo4j
            && t.load_method.or(config.load_method) == Some(LoadMethod::Bulk)
        {
            check(
                false,
                &key("load_method"),
                "bulk".into(),
                "cypher for graph_kind = neo4j (bulk is FalkorDB's GRAPH.BULK)",
            );
        }
        if let Some(n) = t.max_concurrent_loads {
            check(
                (1..=1000).contains(&n),
                &key("max_concurrent_loads"),
                n.to_string(),
                "1 to 1000 loads at once",
            );
        }
        if let Some(n) = t.max_databases {
            check(n >= 1, &key("max_databases"), n.to_string(), "at least 1");
        }
        for (k, v) in [
            ("heap_threshold_percent", t.heap_threshold_percent),
            ("pagecache_threshold_percent", t.pagecache_threshold_percent),
        ] {
            if let Some(v) = v {
                check(
                    (1..=100).contains(&v),
                    &key(k),
                    v.to_string(),
                    "1 to 100 (percent)",
                );
            }
        }
    }
    check(
        defined.contains(&config.default_target.as_str()),
        "default_target",
        format!("{:?}", config.default_target),
        &one_of,
    );
    for (customer, target) in &config.customer_targets {
        if let Err(e) = Customer::parse(customer) {
            check(
                false,
                &format!("customer_targets.{customer}"),
                format!("{target:?}"),
                &e.to_string(),
            );
        }
        check(
            defined.contains(&target.as_str()),
            &format!("customer_targets.{customer}"),
            format!("{target:?}"),
            &one_of,
        );
    }
    // Two targets on one server would double its cap (and, on FalkorDB,
    // share the alias keys).
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for name in active_names(config) {
        let (key, url) = if name == DEFAULT_TARGET {
            ("graph_url".to_owned(), Some(&config.graph_url))
        } else {
            (
                format!("targets.{name}.graph_url"),
                config.targets.get(&name).and_then(|t| t.graph_url.as_ref()),
            )
        };
        let Some(url) = url else { continue };
        let server = server_of(url);
        match seen.get(&server) {
            Some(first) => check(
                false,
                &key,
                url.redacted(),
                &format!("the same server as target `{first}`; every target must be a graph server of its own (two targets on one server would double its max_concurrent_loads)"),
            ),
            None => {
                seen.insert(server, name.clone());
            }
        }
    }
}
