//! The audit trail: a capped Redis stream of every task state change.

use super::*;

/// One audit-trail entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The stream entry's id (`<ms>-<seq>`).
    pub id: String,
    /// Its fields (`event`, `customer`, …).
    pub fields: HashMap<String, String>,
}

impl AuditEntry {
    /// The value of `field`, if the entry has it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// The `XADD` that appends one entry (`event`, `at_ms`, then `fields`) to
/// the capped audit stream under `keys`; [`FleetState::audit`] sends one, a
/// caller with many entries pipelines them.
pub fn audit_command(keys: &Keys, event: &str, fields: &[(&str, String)]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys.audit())
        .arg("MAXLEN")
        .arg("~")
        .arg(AUDIT_MAXLEN)
        .arg("*")
        .arg("event")
        .arg(event)
        .arg("at_ms")
        .arg(chrono::Utc::now().timestamp_millis());
    for (k, v) in fields {
        cmd.arg(*k).arg(v);
    }
    cmd
}

impl FleetState {
    /// Appends a task state change to the capped audit stream.
    pub async fn audit(&self, event: &str, fields: &[(&str, String)]) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: String = audit_command(&self.keys, event, fields)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// The audit trail, oldest first (at most `count` entries).
    pub async fn audit_entries(&self, count: usize) -> Result<Vec<AuditEntry>, StateError> {
        let mut con = self.con.clone();
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(self.keys.audit())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut con)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(id, pairs)| AuditEntry {
                id,
                fields: pairs.into_iter().collect(),
            })
            .collect())
    }

    /// The newest `count` audit entries, oldest first.
    pub async fn audit_recent(&self, count: usize) -> Result<Vec<AuditEntry>, StateError> {
        let mut con = self.con.clone();
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.audit())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut con)
            .await?;
        Ok(raw
            .into_iter()
            .rev()
            .map(|(id, pairs)| AuditEntry {
                id,
                fields: pairs.into_iter().collect(),
            })
            .collect())
    }
}
