//! `producer approve` and `producer reject`: an operator's word on a held
//! snapshot (loaded and verified, refused by a guard or a check; see
//! docs/operations.md, "Why did my snapshot not go live"). Both run under
//! the customer's lock with its fencing token, like `producer rollback`.
//! `approve` makes the held database verified and switches the alias to it
//! (only forward: when it is still newer than the live one); `reject` drops
//! it. [`approve`] and [`reject`] are library-style: they print nothing and
//! return what they did, for the CLI and the console.

use common::config::Config;
use common::graph::{DbState, SwitchMode};
use common::ident::{Customer, DatabaseName, SnapshotId};
use common::vocab::AuditEvent;

use crate::session::OperatorSession;

/// What an approval or a rejection did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The customer.
    pub customer: String,
    /// The held snapshot.
    pub snapshot_id: u64,
    /// Its database.
    pub database: String,
    /// The live snapshot before (approve) or during (reject).
    pub live_before: Option<u64>,
    /// Why it was held, as recorded.
    pub reasons: Vec<String>,
}

/// May `snapshot` (in `state`) be approved while `live` is the alias target?
pub fn approvable(
    snapshot: SnapshotId,
    state: DbState,
    live: Option<SnapshotId>,
) -> Result<(), String> {
    if state != DbState::Held {
        return Err(format!(
            "snapshot {snapshot} is not held (state: {}); only a held snapshot can be approved",
            state.as_str()
        ));
    }
    match live {
        Some(l) if l >= snapshot => Err(format!(
            "snapshot {snapshot} is not newer than the live one ({l}); the alias only moves forward (superseded: reject it, or use producer rollback for an older verified one)"
        )),
        _ => Ok(()),
    }
}

/// May `snapshot` (in `state`) be rejected? Only a held one (a verified or
/// live database is never dropped by this command).
pub fn rejectable(snapshot: SnapshotId, state: DbState) -> Result<(), String> {
    if state == DbState::Held {
        Ok(())
    } else {
        Err(format!(
            "snapshot {snapshot} is not held (state: {}); only a held snapshot can be rejected",
            state.as_str()
        ))
    }
}

/// Approves the held `snapshot` of `customer`: it becomes verified and
/// live (fenced, forward only). Older held snapshots of the customer are
/// then superseded (the next cleanup drops them).
pub async fn approve(config: &Config, customer: &str, snapshot: u64) -> anyhow::Result<Decision> {
    let customer = Customer::parse(customer)?;
    let snapshot = SnapshotId::new(snapshot)?;
    let session = OperatorSession::open(config, &customer).await?;
    let result = async {
        let db = DatabaseName::new(customer.clone(), snapshot).to_string();
        let state = session.store.database_state(&db).await?;
        let live = session.live().await?;
        approvable(snapshot, state, live)
            .map_err(|m| anyhow::anyhow!("cannot approve {customer}/{snapshot}: {m}"))?;
        let reasons = session.reasons(snapshot).await?;
        let fence = session.fence();
        session.store.release_held(&db, &fence).await?;
        session
            .store
            .switch_fenced(customer.as_str(), &db, &fence, SwitchMode::Forward)
            .await
            .map_err(|e| anyhow::anyhow!("cannot approve {customer}/{snapshot}: {e}"))?;
        let st = &session.state;
        st.set_live(&customer, snapshot).await?;
        for (id, _) in st.held(&customer).await? {
            if id <= snapshot.get() {
                st.clear_held(&customer, SnapshotId::new(id)?).await?;
            }
        }
        st.audit(
            AuditEvent::Approved.as_str(),
            &[
                ("customer", customer.to_string()),
                ("snapshot_id", snapshot.to_string()),
                ("database", db.clone()),
                ("previous", live.map(|l| l.to_string()).unwrap_or_default()),
                ("reasons", reasons.join("; ")),
            ],
        )
        .await?;
        Ok(Decision {
            customer: customer.to_string(),
            snapshot_id: snapshot.get(),
            database: db,
            live_before: live.map(SnapshotId::get),
            reasons,
        })
    }
    .await;
    session.close().await;
    result
}

/// Rejects the held `snapshot` of `customer`: its database is dropped
/// (fenced); the alias does not move.
pub async fn reject(config: &Config, customer: &str, snapshot: u64) -> anyhow::Result<Decision> {
    let customer = Customer::parse(customer)?;
    let snapshot = SnapshotId::new(snapshot)?;
    let session = OperatorSession::open(config, &customer).await?;
    let result = async {
        let db = DatabaseName::new(customer.clone(), snapshot).to_string();
        let state = session.store.database_state(&db).await?;
        rejectable(snapshot, state)
            .map_err(|m| anyhow::anyhow!("cannot reject {customer}/{snapshot}: {m}"))?;
        let reasons = session.reasons(snapshot).await?;
        let live = session.live().await?;
        session.store.drop_fenced(&db, &session.fence()).await?;
        let st = &session.state;
        st.clear_held(&customer, snapshot).await?;
        st.audit(
            AuditEvent::Rejected.as_str(),
            &[
                ("customer", customer.to_string()),
                ("snapshot_id", snapshot.to_string()),
                ("database", db.clone()),
                ("reasons", reasons.join("; ")),
            ],
        )
        .await?;
        Ok(Decision {
            customer: customer.to_string(),
            snapshot_id: snapshot.get(),
            database: db,
            live_before: live.map(SnapshotId::get),
            reasons,
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
    fn only_a_held_snapshot_newer_than_live_is_approved() {
        let cases = [
            (id(3), Held, Some(id(2)), Ok(())),
            (id(3), Held, None, Ok(())),
            (id(2), Held, Some(id(3)), Err("not newer than the live one")),
            (id(3), Held, Some(id(3)), Err("not newer than the live one")),
            (
                id(3),
                Verified,
                Some(id(2)),
                Err("is not held (state: verified)"),
            ),
            (
                id(3),
                Loading,
                Some(id(2)),
                Err("is not held (state: loading)"),
            ),
            (id(3), Unmarked, None, Err("is not held (state: unmarked)")),
        ];
        for (snapshot, state, live, want) in cases {
            let got = approvable(snapshot, state, live);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{snapshot} {state:?} {live:?}"),
                Err(m) => assert!(got.as_ref().unwrap_err().contains(m), "{got:?}"),
            }
        }
    }

    #[test]
    fn only_a_held_snapshot_is_rejected() {
        assert_eq!(rejectable(id(1), Held), Ok(()));
        for s in [Verified, Loading, Retired, Unmarked, NotTracked] {
            assert!(rejectable(id(1), s).unwrap_err().contains("is not held"));
        }
    }
}
