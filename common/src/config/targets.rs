//! Graph targets: the graph databases one deployment loads into, and which of
//! them serves each customer.
//!
//! The top-level `graph_kind`, `graph_url`, `graph_user`, `graph_password`,
//! `max_concurrent_loads` and health-gate keys describe the target named
//! `default`; every `[targets.<name>]` table describes one more. A table may
//! leave out everything but `graph_url`: what it leaves out comes from the
//! top-level keys. `[customer_targets]` maps a customer to its target;
//! customers not in the map go to `default_target`.
//!
//! A target is *active* when a worker connects to it: every named target, and
//! `default` when it is `default_target` or some customer is mapped to it (so
//! a deployment whose customers all live on named targets needs no server at
//! the top-level `graph_url`).
//!
//! [`target_of`] is the decision "which target serves this customer" (pure);
//! [`validate`] checks the keys as part of [`Config::validate`]; [`Targets`]
//! is the resolved, ready-to-connect list (it reads `graph_password_file`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::adapters::graph::target::{
    target_of, GraphTarget, HealthThresholds, TargetError, Targets, DEFAULT_TARGET,
};
use crate::adapters::graph::GraphKind;
use crate::adapters::secret::{Secret, ServiceUrl};

/// Longest target name (it is a metric label and part of Redis keys).
pub const MAX_TARGET_NAME_LEN: usize = 32;

/// One `[targets.<name>]` table. Every key but `graph_url` falls back to the
/// top-level key of the same name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Default: the top-level `graph_kind`.
    pub graph_kind: Option<GraphKind>,
    /// Required.
    pub graph_url: Option<ServiceUrl>,
    /// Default: the top-level `graph_user`.
    #[serde(deserialize_with = "opt_string_like")]
    pub graph_user: Option<String>,
    /// Default: the top-level `graph_password`.
    pub graph_password: Option<Secret>,
    /// A file holding the password (trailing newline ignored); instead of
    /// `graph_password`.
    pub graph_password_file: Option<PathBuf>,
    /// The CA to check this target's TLS certificate against (default:
    /// the top-level `graph_ca_file`).
    pub graph_ca_file: Option<PathBuf>,
    /// Default: the top-level `max_concurrent_loads`.
    pub max_concurrent_loads: Option<u32>,
    /// `bulk` or `cypher` (default: the top-level `load_method`, else by kind).
    pub load_method: Option<crate::adapters::load::LoadMethod>,
    /// Default: the top-level `max_databases`.
    pub max_databases: Option<usize>,
    /// Default: the top-level `heap_threshold_percent`.
    pub heap_threshold_percent: Option<u8>,
    /// Default: the top-level `pagecache_threshold_percent`.
    pub pagecache_threshold_percent: Option<u8>,
}

impl TargetConfig {
    /// The keys a target table takes, for tests that keep the docs honest.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(TargetConfig::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

fn opt_string_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    crate::adapters::secret::string_like(d).map(Some)
}

/// The URL schemes a kind of graph database speaks.
pub fn schemes(kind: GraphKind) -> &'static [&'static str] {
    match kind {
        GraphKind::Falkordb => &["redis", "rediss"],
        GraphKind::Neo4j => &[
            "neo4j",
            "neo4j+s",
            "neo4j+ssc",
            "bolt",
            "bolt+s",
            "bolt+ssc",
        ],
    }
}

/// `host:port` of a URL, lower case, without user, password or path: two
/// targets with the same one are the same server.
pub fn server_of(url: &ServiceUrl) -> String {
    let rest = url
        .expose()
        .split_once("://")
        .map_or(url.expose(), |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Config;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn target(url: &str) -> TargetConfig {
        TargetConfig {
            graph_url: Some(ServiceUrl::new(url)),
            ..TargetConfig::default()
        }
    }

    fn two_targets() -> Config {
        Config {
            targets: [
                ("east".to_owned(), target("redis://east:6379/")),
                (
                    "west".to_owned(),
                    TargetConfig {
                        max_concurrent_loads: Some(3),
                        heap_threshold_percent: Some(70),
                        graph_user: Some("loader".into()),
                        ..target("redis://west:6379/")
                    },
                ),
            ]
            .into(),
            customer_targets: map(&[("acme", "east"), ("globex", "west"), ("initech", "default")]),
            ..Config::default()
        }
    }

    #[test]
    fn customers_go_to_their_mapped_target_else_the_default_target() {
        let m = map(&[("acme", "east"), ("globex", "west")]);
        for (customer, default, want) in [
            ("acme", "default", "east"),
            ("globex", "default", "west"),
            ("initech", "default", "default"),
            ("initech", "east", "east"),
            ("acme", "west", "east"),
        ] {
            assert_eq!(target_of(customer, &m, default), want, "{customer}");
        }
        assert_eq!(target_of("acme", &BTreeMap::new(), "default"), "default");
    }

    #[test]
    fn the_top_level_keys_are_the_default_target_and_tables_inherit_them() {
        let c = two_targets();
        c.validate().unwrap();
        let t = Targets::from_config(&c).unwrap();
        let names: Vec<&str> = t.all().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["default", "east", "west"]);
        assert_eq!(t.for_customer("acme").url.expose(), "redis://east:6379/");
        assert_eq!(t.for_customer("initech").url, c.graph_url);
        assert_eq!(t.for_customer("unmapped").name, "default");
        let west = t.get("west").unwrap();
        assert_eq!(
            (
                west.max_concurrent_loads,
                west.health.heap_threshold_percent
            ),
            (3, 70)
        );
        assert_eq!(west.user, "loader");
        let east = t.get("east").unwrap();
        assert_eq!(east.max_concurrent_loads, c.max_concurrent_loads);
        assert_eq!(east.health.max_databases, c.max_databases);
        assert_eq!((east.kind, east.user.as_str()), (c.graph_kind, "neo4j"));
    }

    #[test]
    fn a_default_target_nobody_uses_is_not_connected() {
        let c = Config {
            default_target: "east".into(),
            customer_targets: map(&[("globex", "west")]),
            ..two_targets()
        };
        c.validate().unwrap();
        let t = Targets::from_config(&c).unwrap();
        let names: Vec<&str> = t.all().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["east", "west"]);
        assert_eq!(t.for_customer("acme").name, "east");
    }

    #[test]
    fn bad_target_keys_name_key_value_and_what_is_allowed() {
        let mut c = two_targets();
        c.targets.insert("Bad-Name".into(), target("redis://x:1/"));
        c.targets.insert("default".into(), target("redis://y:1/"));
        c.targets.insert("nourl".into(), TargetConfig::default());
        c.targets.insert(
            "neo".into(),
            TargetConfig {
                graph_kind: Some(GraphKind::Neo4j),
                max_concurrent_loads: Some(0),
                load_method: Some(crate::adapters::load::LoadMethod::Bulk),
                ..target("redis://u:hunter2@neo:7687")
            },
        );
        c.targets
            .insert("twin".into(), target("redis://EAST:6379/1"));
        c.customer_targets.insert("umbrella".into(), "north".into());
        c.customer_targets.insert("Bad".into(), "east".into());
        c.default_target = "south".into();
        let msg = c.validate().unwrap_err().to_string();
        for want in [
            "targets = \"Bad-Name\": 1 to 32 characters",
            "targets = \"default\": `default` is the target of the top-level graph_* keys",
            "targets.nourl.graph_url = (unset): required",
            "targets.neo.graph_url = redis://u:***@neo:7687: for graph_kind = neo4j: a URL with scheme neo4j",
            "targets.neo.max_concurrent_loads = 0: 1 to 1000",
            "targets.neo.load_method = bulk: cypher for graph_kind = neo4j",
            "customer_targets.umbrella = \"north\": one of default, ",
            "customer_targets.Bad = \"east\": customer name `Bad`",
            "default_target = \"south\": one of default, east,",
            "targets.twin.graph_url = redis://EAST:6379/1: the same server as target `east`",
        ] {
            assert!(msg.contains(want), "missing {want:?} in\n{msg}");
        }
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn load_method_comes_from_the_target_else_the_top_level_else_the_kind() {
        use crate::adapters::load::LoadMethod;
        let mut c = two_targets();
        c.load_method = Some(LoadMethod::Cypher);
        let mut east = target("redis://east2:6379/");
        east.load_method = Some(LoadMethod::Bulk);
        c.targets.insert("east".into(), east);
        let all = Targets::from_config(&c).unwrap();
        let by_name = |n: &str| all.get(n).unwrap().load_method;
        assert_eq!(by_name("east"), LoadMethod::Bulk);
        assert_eq!(by_name("west"), LoadMethod::Cypher, "the top-level key");
        assert_eq!(by_name("default"), LoadMethod::Cypher);
        c.load_method = None;
        let all = Targets::from_config(&c).unwrap();
        assert_eq!(
            all.get("default").unwrap().load_method,
            LoadMethod::Bulk,
            "unset on FalkorDB: bulk"
        );
    }

    #[test]
    fn an_unused_default_target_may_share_nothing_and_a_used_one_is_compared() {
        // The top-level graph_url defaults to 127.0.0.1:6380; a named target
        // there clashes only while `default` is in use.
        let mut c = Config {
            targets: [("only".to_owned(), target("redis://127.0.0.1:6380/"))].into(),
            ..Config::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("targets.only.graph_url = redis://127.0.0.1:6380/: the same server as target `default`"),
            "{msg}"
        );
        c.default_target = "only".into();
        c.validate().unwrap();
    }

    #[test]
    fn a_password_file_gives_the_password_and_excludes_graph_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut c = two_targets();
        if let Some(east) = c.targets.get_mut("east") {
            east.graph_password_file = Some(path.clone());
        }
        c.validate().unwrap();
        let t = Targets::from_config(&c).unwrap();
        assert_eq!(t.get("east").unwrap().password.expose(), "s3cret");
        if let Some(east) = c.targets.get_mut("east") {
            east.graph_password = Some(Secret::new("other"));
        }
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("targets.east.graph_password_file = ") && msg.contains("not both"),
            "{msg}"
        );
        if let Some(east) = c.targets.get_mut("east") {
            east.graph_password = None;
            east.graph_password_file = Some(dir.path().join("missing"));
        }
        let msg = Targets::from_config(&c).unwrap_err().to_string();
        assert!(msg.contains("targets.east.graph_password_file = "), "{msg}");
    }

    #[test]
    fn target_passwords_never_print() {
        let mut c = two_targets();
        if let Some(east) = c.targets.get_mut("east") {
            east.graph_password = Some(Secret::new("t4rget-pw"));
            east.graph_url = Some(ServiceUrl::new("redis://:url-pw@east:6379/"));
        }
        let t = Targets::from_config(&c).unwrap();
        for shown in [format!("{c:?}"), format!("{t:?}")] {
            assert!(
                !shown.contains("t4rget-pw") && !shown.contains("url-pw"),
                "{shown}"
            );
        }
    }

    #[test]
    fn server_identity_ignores_credentials_path_and_case() {
        assert_eq!(
            server_of(&ServiceUrl::new("redis://:pw@Host:1/0")),
            "host:1"
        );
        assert_eq!(server_of(&ServiceUrl::new("bolt://h:7687")), "h:7687");
        assert_ne!(
            server_of(&ServiceUrl::new("redis://h:1/")),
            server_of(&ServiceUrl::new("redis://h:2/"))
        );
    }
}
