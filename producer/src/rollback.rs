//! `producer rollback`: moves a customer's alias back to an older retained
//! database that was fully loaded and verified, under the customer's lock and
//! with its fencing token; the database it leaves is retired (never live
//! again; cleanup drops it). A database that was never verified (a partial
//! load, a graph made by hand) is refused, saying why.

use common::alias::database_states;
use common::config::Config;
use common::graph::{DbState, SwitchMode};
use common::ident::{Customer, DatabaseName, SnapshotId};
use common::vocab::AuditEvent;

use crate::session::OperatorSession;

/// The database to roll back to: `to` if it is retained, older than the
/// live one and verified, else the newest verified retained database older
/// than the live one.
pub fn rollback_target(
    customer: &Customer,
    live: SnapshotId,
    retained: &[(SnapshotId, DbState)],
    to: Option<SnapshotId>,
) -> Result<SnapshotId, String> {
    let older: Vec<SnapshotId> = retained
        .iter()
        .filter(|(s, _)| *s < live)
        .map(|(s, _)| *s)
        .collect();
    match to {
        Some(t) if older.contains(&t) => {
            let state = retained
                .iter()
                .find(|(s, _)| *s == t)
                .map_or(DbState::Unmarked, |(_, st)| *st);
            if state.may_go_live() {
                Ok(t)
            } else {
                Err(format!(
                    "database {} is not verified (state: {}): it may be a partial load or not snapswitch's, and only a fully loaded and verified database can become live",
                    DatabaseName::new(customer.clone(), t),
                    state.as_str()
                ))
            }
        }
        Some(t) => Err(format!(
            "snapshot {t} is not a retained database older than the live one ({live}); retained older: {older:?}"
        )),
        None => {
            let verified = retained
                .iter()
                .filter(|(s, st)| *s < live && st.may_go_live())
                .map(|(s, _)| *s)
                .max();
            verified.ok_or_else(|| {
                if older.is_empty() {
                    let kept: Vec<String> = retained.iter().map(|(s, _)| s.to_string()).collect();
                    format!("no database older than the live one ({live}) is retained (retained: {}); a rollback needs one, and keep_databases = N keeps only the newest N after each load", kept.join(", "))
                } else {
                    format!("no verified database older than the live one ({live}) is retained (older but not verified: {older:?})")
                }
            })
        }
    }
}

/// `producer rollback`: rolls back and says what moved.
pub async fn rollback(config: &Config, customer: &str, to: Option<u64>) -> anyhow::Result<()> {
    let moved = roll_back(config, customer, to, "cli").await?;
    println!(
        "{}: alias moved back from {} to {}",
        moved.customer, moved.from, moved.to
    );
    Ok(())
}

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The customer.
    pub customer: Customer,
    /// The snapshot that was live.
    pub from: SnapshotId,
    /// The snapshot live now.
    pub to: SnapshotId,
}

/// Moves `customer`'s alias back (see the module doc); `operator` is who
/// asked, for the audit trail.
pub async fn roll_back(
    config: &Config,
    customer: &str,
    to: Option<u64>,
    operator: &str,
) -> anyhow::Result<RolledBack> {
    let customer = Customer::parse(customer)?;
    let to = to.map(SnapshotId::new).transpose()?;
    // Under the customer's lock: no load of this customer runs meanwhile.
    let session = OperatorSession::open(config, &customer).await?;
    let result = async {
        let (state, store) = (&session.state, &session.store);
        let fence = session.fence();
        let live = session
            .live()
            .await?
            .ok_or_else(|| anyhow::anyhow!("customer {customer} has no alias to roll back"))?;
        let retained = database_states(store.as_ref(), &customer).await?;
        let target = rollback_target(&customer, live, &retained, to)
            .map_err(|m| anyhow::anyhow!("cannot roll back {customer}: {m}"))?;
        let db = DatabaseName::new(customer.clone(), target).to_string();
        store
            .switch_fenced(customer.as_str(), &db, &fence, SwitchMode::Rollback)
            .await
            .map_err(|e| anyhow::anyhow!("cannot roll back {customer}: {e}"))?;
        state.set_live(&customer, target).await?;
        // The one live before it is the one rolled back from (not the old
        // `previous`, which is now live: `live X (previous X)`).
        redis::cmd("HSET")
            .arg(state.keys().customer(&customer))
            .arg("previous_snapshot")
            .arg(live.get())
            .query_async::<()>(&mut state.connection())
            .await?;
        state
            .audit(
                AuditEvent::RolledBack.as_str(),
                &[
                    ("customer", customer.to_string()),
                    ("snapshot_id", target.to_string()),
                    ("from", live.to_string()),
                    ("operator", operator.to_owned()),
                ],
            )
            .await?;
        Ok::<_, anyhow::Error>(RolledBack {
            customer: customer.clone(),
            from: live,
            to: target,
        })
    }
    .await;
    session.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use DbState::*;

    fn id(n: u64) -> SnapshotId {
        SnapshotId::new(1_700_000_000 + n).unwrap()
    }

    #[test]
    fn rollback_goes_to_the_newest_older_verified_database_or_the_one_asked_for() {
        let acme = Customer::parse("acme").unwrap();
        let retained = [(id(1), Verified), (id(2), Verified), (id(3), Verified)];
        assert_eq!(rollback_target(&acme, id(3), &retained, None), Ok(id(2)));
        assert_eq!(
            rollback_target(&acme, id(3), &retained, Some(id(1))),
            Ok(id(1))
        );
        assert!(rollback_target(&acme, id(3), &retained, Some(id(3)))
            .unwrap_err()
            .contains("not a retained database older"));
        let none_older = rollback_target(&acme, id(1), &retained, None).unwrap_err();
        assert!(none_older.contains("no database older"), "{none_older}");
        assert!(!none_older.contains("must be at least 2"), "{none_older}");
    }

    #[test]
    fn rollback_never_goes_to_an_unverified_database() {
        let acme = Customer::parse("acme").unwrap();
        // Scenario 3: a partial S1 between S0 and the live S2.
        let retained = [(id(0), Verified), (id(1), Loading), (id(2), Verified)];
        assert_eq!(rollback_target(&acme, id(2), &retained, None), Ok(id(0)));
        for state in [Loading, Retired, Unmarked] {
            let retained = [(id(1), state), (id(2), Verified)];
            let err = rollback_target(&acme, id(2), &retained, Some(id(1))).unwrap_err();
            assert!(
                err.contains("database acme-1700000001 is not verified")
                    && err.contains(state.as_str()),
                "{err}"
            );
            let err = rollback_target(&acme, id(2), &retained, None).unwrap_err();
            assert!(err.contains("no verified database older"), "{err}");
        }
        // Marks lost with Redis's data (Neo4j): nothing to roll back to.
        let retained = [(id(1), NotTracked), (id(2), Verified)];
        assert!(rollback_target(&acme, id(2), &retained, None)
            .unwrap_err()
            .contains("no verified database older"));
    }
}
