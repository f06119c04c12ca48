//! The graph targets of a deployment, resolved: everything needed to connect
//! to each one, cap its loads and gate them, and which one serves each
//! customer ([`target_of`], pure). The configuration layer builds them
//! (`Targets::from_config` in `config/targets.rs`, which reads password
//! files); this module reads no configuration.
//!
//! **Invariant: every customer resolves to exactly one active target.**
//! [`Targets::new`] refuses a routing that names a target it was not given
//! ([`TargetError`]), so a lookup never falls back to another server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

use crate::adapters::graph::{GraphKind, LoadMethod};
use crate::adapters::secret::{Secret, ServiceUrl};

/// The name of the target the top-level graph keys describe.
pub const DEFAULT_TARGET: &str = "default";

/// The health-gate thresholds of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthThresholds {
    /// The most databases the server may hold before loads wait.
    pub max_databases: usize,
    /// The heap use, in percent, above which loads wait.
    pub heap_threshold_percent: u8,
    /// The page-cache use, in percent, above which loads wait.
    pub pagecache_threshold_percent: u8,
}

/// One graph database, resolved: everything needed to connect to it, cap its
/// loads and gate them.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphTarget {
    /// `default` or the name of its `[targets.<name>]` table.
    pub name: String,
    /// Which adapter speaks to it.
    pub kind: GraphKind,
    /// Its server.
    pub url: ServiceUrl,
    /// The user (Bolt).
    pub user: String,
    /// The password (Bolt).
    pub password: Secret,
    /// CA file for a TLS URL (`None`: the system's trust store).
    pub ca_file: Option<PathBuf>,
    /// Loads the fleet runs on it at once.
    pub max_concurrent_loads: u32,
    /// How loads into this target write.
    pub load_method: LoadMethod,
    /// When loads wait for it.
    pub health: HealthThresholds,
}

impl GraphTarget {
    /// The config key a message should name for this target's `key`
    /// (`graph_url` or `targets.east.graph_url`).
    pub fn key(&self, key: &str) -> String {
        if self.name == DEFAULT_TARGET {
            key.to_owned()
        } else {
            format!("targets.{}.{key}", self.name)
        }
    }
}

/// Which target serves `customer`: its entry in `customer_targets`, else
/// `default_target`. The one place this is decided.
pub fn target_of<'a>(
    customer: &str,
    customer_targets: &'a BTreeMap<String, String>,
    default_target: &'a str,
) -> &'a str {
    customer_targets
        .get(customer)
        .map_or(default_target, String::as_str)
}

/// A routing that names a target the list does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// `default_target` names no target.
    #[error("default_target = {0:?}: not a defined target")]
    UnknownDefault(String),
    #[error("customer_targets.{customer} = {target:?}: not a defined target")]
    /// A `customer_targets` entry names no target.
    UnknownForCustomer {
        /// The customer.
        customer: String,
        /// The target it names.
        target: String,
    },
}

/// The active targets and the routing of customers to them.
#[derive(Debug, Clone)]
pub struct Targets {
    targets: Vec<GraphTarget>,
    customer_targets: BTreeMap<String, String>,
    default_target: String,
    /// Positions in `targets`, checked by [`Targets::new`].
    customer_index: BTreeMap<String, usize>,
    default_index: usize,
}

impl Targets {
    /// The targets and their routing; every target the routing names must be
    /// among `targets`.
    pub fn new(
        targets: Vec<GraphTarget>,
        customer_targets: BTreeMap<String, String>,
        default_target: String,
    ) -> Result<Targets, TargetError> {
        let position = |name: &str| targets.iter().position(|t| t.name == name);
        let default_index = position(&default_target)
            .ok_or_else(|| TargetError::UnknownDefault(default_target.clone()))?;
        let mut customer_index = BTreeMap::new();
        for (customer, target) in &customer_targets {
            let index = position(target).ok_or_else(|| TargetError::UnknownForCustomer {
                customer: customer.clone(),
                target: target.clone(),
            })?;
            customer_index.insert(customer.clone(), index);
        }
        Ok(Targets {
            targets,
            customer_targets,
            default_target,
            customer_index,
            default_index,
        })
    }

    /// Every active target, `default` first when active.
    pub fn all(&self) -> &[GraphTarget] {
        &self.targets
    }

    /// The target called `name`.
    pub fn get(&self, name: &str) -> Option<&GraphTarget> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The name of the target serving `customer`.
    pub fn name_for(&self, customer: &str) -> &str {
        target_of(customer, &self.customer_targets, &self.default_target)
    }

    /// The position in [`Targets::all`] of the target serving `customer`
    /// (checked when the list was built).
    pub fn index_for(&self, customer: &str) -> usize {
        self.customer_index
            .get(customer)
            .copied()
            .unwrap_or(self.default_index)
    }

    /// The target serving `customer`.
    pub fn for_customer(&self, customer: &str) -> &GraphTarget {
        &self.targets[self.index_for(customer)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> GraphTarget {
        GraphTarget {
            name: name.into(),
            kind: GraphKind::Falkordb,
            url: ServiceUrl::new(format!("redis://{name}:6379")),
            user: String::new(),
            password: Secret::default(),
            ca_file: None,
            max_concurrent_loads: 1,
            load_method: LoadMethod::Cypher,
            health: HealthThresholds {
                max_databases: 10,
                heap_threshold_percent: 90,
                pagecache_threshold_percent: 90,
            },
        }
    }

    #[test]
    fn a_routing_that_names_a_missing_target_is_refused_not_sent_elsewhere() {
        let map = BTreeMap::from([("acme".to_owned(), "east".to_owned())]);
        let err = Targets::new(vec![target("default")], map, "default".into()).unwrap_err();
        assert_eq!(
            err,
            TargetError::UnknownForCustomer {
                customer: "acme".into(),
                target: "east".into()
            }
        );
        let err =
            Targets::new(vec![target("east")], BTreeMap::new(), "default".into()).unwrap_err();
        assert_eq!(err, TargetError::UnknownDefault("default".into()));
    }

    #[test]
    fn customers_resolve_to_their_target_else_the_default() {
        let map = BTreeMap::from([("acme".to_owned(), "east".to_owned())]);
        let t = Targets::new(
            vec![target("default"), target("east")],
            map,
            "default".into(),
        )
        .unwrap();
        assert_eq!(t.for_customer("acme").name, "east");
        assert_eq!(t.for_customer("globex").name, "default");
        assert_eq!(t.index_for("acme"), 1);
    }
}
