//! Publishing once: the producer's short-lived claim on a snapshot and the capped set of
//! snapshots already published.

use super::*;

impl FleetState {
    /// Producer: true when `snapshot` was already published (or is being
    /// published right now by another producer).
    pub async fn already_published(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<bool, StateError> {
        let mut con = self.con.clone();
        let score: Option<f64> = con
            .zscore(self.keys.published(customer), snapshot.get())
            .await?;
        Ok(score.is_some())
    }

    /// Producer: claims the right to publish `snapshot` for
    /// [`PUBLISH_CLAIM_TTL`]; false when it is published or claimed already.
    /// A producer that dies after claiming leaves the claim to expire, and the
    /// next scan publishes the snapshot.
    pub async fn claim_publish(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<bool, StateError> {
        if self.already_published(customer, snapshot).await? {
            return Ok(false);
        }
        let mut con = self.con.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.keys.publishing(customer, snapshot.get()))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(PUBLISH_CLAIM_TTL.as_millis()).unwrap_or(60_000))
            .query_async(&mut con)
            .await?;
        Ok(claimed.is_some())
    }

    /// Producer: the snapshot was published and confirmed.
    pub async fn confirm_published(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<(), StateError> {
        let key = self.keys.published(customer);
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .zadd(&key, snapshot.get(), snapshot.get())
            .ignore()
            .cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-REMEMBERED_SNAPSHOTS - 1)
            .ignore()
            .del(self.keys.publishing(customer, snapshot.get()))
            .ignore()
            .hincr(self.keys.stats(), Counter::Published.as_str(), 1)
            .ignore()
            .sadd(self.keys.customers(), customer.as_str())
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Producer: publishing failed; let the next scan try again.
    pub async fn release_claim(
        &self,
        customer: &Customer,
        snapshot: SnapshotId,
    ) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: () = con
            .del(self.keys.publishing(customer, snapshot.get()))
            .await?;
        Ok(())
    }
}
