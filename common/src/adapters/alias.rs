//! A customer's alias and databases on a graph store, read the one way every
//! process reads them: a database counts as the customer's only when its name
//! parses as `<customer>-<snapshot>` with exactly that customer (a customer
//! `acme` never sees `acme-eu`'s databases, a stray graph is nobody's).
//!
//! The worker's pipeline and reconciler and the producer's operator commands
//! use these; nothing else parses database names for a customer.

use crate::adapters::graph::{DbState, GraphError, GraphStore};
use crate::contract::ident::{Customer, DatabaseName, SnapshotId};

/// The snapshot of `customer` that `target` (an alias target) names, if it
/// is one of the customer's databases.
pub fn customer_snapshot(customer: &Customer, target: &str) -> Option<SnapshotId> {
    DatabaseName::parse(target)
        .ok()
        .filter(|d| &d.customer == customer)
        .map(|d| d.snapshot)
}

/// The snapshot the customer's alias points to on `store` (none: no alias,
/// or an alias on a database that is not the customer's).
pub async fn alias_target(
    store: &dyn GraphStore,
    customer: &Customer,
) -> Result<Option<SnapshotId>, GraphError> {
    let target = store.alias_target(customer.as_str()).await?;
    Ok(target.and_then(|t| customer_snapshot(customer, &t)))
}

/// The snapshots of the customer's databases on `store`, in the store's order.
pub async fn databases_of(
    store: &dyn GraphStore,
    customer: &Customer,
) -> Result<Vec<SnapshotId>, GraphError> {
    Ok(store
        .list_databases()
        .await?
        .iter()
        .filter_map(|n| customer_snapshot(customer, n))
        .collect())
}

/// The customer's databases on `store` with their lifecycle states.
pub async fn database_states(
    store: &dyn GraphStore,
    customer: &Customer,
) -> Result<Vec<(SnapshotId, DbState)>, GraphError> {
    let mut out = Vec::new();
    for name in store.list_databases().await? {
        if let Some(snapshot) = customer_snapshot(customer, &name) {
            out.push((snapshot, store.database_state(&name).await?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: &str) -> Customer {
        Customer::parse(name).unwrap()
    }

    #[test]
    fn a_database_counts_only_for_its_own_customer() {
        let acme = customer("acme");
        assert_eq!(
            customer_snapshot(&acme, "acme-1767741427").map(SnapshotId::get),
            Some(1_767_741_427)
        );
        assert_eq!(customer_snapshot(&acme, "acme-eu-1767741427"), None);
        assert_eq!(
            customer_snapshot(&customer("acme-eu"), "acme-1767741427"),
            None
        );
        assert_eq!(customer_snapshot(&acme, "acme"), None);
        assert_eq!(customer_snapshot(&acme, "not a database"), None);
    }
}
