//! `producer history`: the audit trail, oldest first.

use common::config::Config;
use common::ident::Customer;
use common::keys::Keys;
use common::state::FleetState;

/// Prints the newest `limit` audit entries (of `customer` when given).
pub async fn run(
    config: &Config,
    customer: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(c) = &customer {
        Customer::parse(c)?;
    }
    let redis = common::state::connect_config(config).await?;
    let state = FleetState::new(redis, Keys::new(&config.namespace));
    let entries: Vec<_> = state
        .audit_entries(common::state::AUDIT_MAXLEN)
        .await?
        .into_iter()
        .filter(|e| {
            customer
                .as_deref()
                .is_none_or(|c| e.get("customer") == Some(c))
        })
        .collect();
    let skip = entries.len().saturating_sub(limit);
    let entries = &entries[skip..];
    if json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut m: serde_json::Map<String, serde_json::Value> = e
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                m.insert("id".into(), e.id.clone().into());
                serde_json::Value::Object(m)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for e in entries {
        let at = e
            .get("at_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let mut rest: Vec<String> = e
            .fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "event" | "at_ms" | "customer" | "snapshot_id"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rest.sort();
        println!(
            "{at}  {}/{}  {}  {}",
            e.get("customer").unwrap_or("-"),
            e.get("snapshot_id").unwrap_or("-"),
            e.get("event").unwrap_or("-"),
            rest.join(" ")
        );
    }
    Ok(())
}
