//! What an operator can do from the console, parsed from a form (or the
//! JSON API's object), done, and written to the audit trail as
//! `operator_action` with `operator`, `action` and `effect` (or `refused`).

use common::ident::{Customer, SnapshotId};
use common::vocab::AuditEvent;
use serde_json::Value;

use super::Console;
use crate::dlq::{Filter, Selection};

/// Which parked events a DLQ action takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Parked {
    /// These event ids.
    Selected(Vec<String>),
    /// Every event the filter matches.
    Matching(Filter),
}

/// An operator action the console can take, checked before it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Cancel a snapshot (`producer cancel`).
    Cancel {
        /// The customer.
        customer: Customer,
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// Move the alias back (`producer rollback`).
    Rollback {
        /// The customer.
        customer: Customer,
        /// The retained snapshot to go back to (default: the newest older one).
        to: Option<u64>,
    },
    /// Make a held snapshot live (`producer approve`).
    Approve {
        /// The customer.
        customer: Customer,
        /// The held snapshot.
        snapshot: SnapshotId,
    },
    /// Drop a held snapshot (`producer reject`).
    Reject {
        /// The customer.
        customer: Customer,
        /// The held snapshot.
        snapshot: SnapshotId,
    },
    /// Pause the fleet or one customer: workers delay their events.
    Pause {
        /// The customer; none: the whole fleet.
        customer: Option<Customer>,
    },
    /// Resume what a pause stopped.
    Resume {
        /// The customer; none: the whole fleet.
        customer: Option<Customer>,
    },
    /// `confirmed`: how many events the operator was told the action takes.
    DlqReplay {
        /// The parked events it takes.
        which: Parked,
        /// How many the operator confirmed.
        confirmed: usize,
    },
    /// Delete parked events; `confirmed` as for [`Action::DlqReplay`].
    DlqDelete {
        /// The parked events it takes.
        which: Parked,
        /// How many the operator confirmed.
        confirmed: usize,
    },
}

impl Action {
    /// The action's name in the audit trail's `operator_action` entries.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Cancel { .. } => "cancel",
            Action::Rollback { .. } => "rollback",
            Action::Approve { .. } => "approve",
            Action::Reject { .. } => "reject",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::DlqReplay { .. } => "dlq_replay",
            Action::DlqDelete { .. } => "dlq_delete",
        }
    }

    fn customer(&self) -> Option<&Customer> {
        match self {
            Action::Cancel { customer, .. }
            | Action::Rollback { customer, .. }
            | Action::Approve { customer, .. }
            | Action::Reject { customer, .. } => Some(customer),
            Action::Pause { customer } | Action::Resume { customer } => customer.as_ref(),
            Action::DlqReplay { .. } | Action::DlqDelete { .. } => None,
        }
    }

    /// Parses a form's fields (`action` names the action).
    pub fn from_pairs(p: &[(String, String)]) -> Result<Action, String> {
        let get = |k: &str| {
            p.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let customer = || -> Result<Customer, String> {
            Customer::parse(get("customer").ok_or("customer is missing")?)
                .map_err(|e| e.to_string())
        };
        let optional_customer = || -> Result<Option<Customer>, String> {
            get("customer")
                .map(|c| Customer::parse(c).map_err(|e| e.to_string()))
                .transpose()
        };
        let snapshot = || -> Result<SnapshotId, String> {
            SnapshotId::parse(get("snapshot_id").ok_or("snapshot_id is missing")?)
                .map_err(|e| e.to_string())
        };
        let parked = || -> Result<(Parked, usize), String> {
            let confirmed = get("confirm")
                .ok_or("confirm (the number of events confirmed) is missing")?
                .parse::<usize>()
                .map_err(|_| "confirm must be a number".to_owned())?;
            let which = match get("scope") {
                Some("selected") => {
                    let ids: Vec<String> = p
                        .iter()
                        .filter(|(k, v)| k == "id" && !v.is_empty())
                        .map(|(_, v)| v.clone())
                        .collect();
                    if ids.is_empty() {
                        return Err("no parked event selected".into());
                    }
                    Parked::Selected(ids)
                }
                Some("matching") => Parked::Matching(filter_of(p)?),
                _ => return Err("scope must be `selected` or `matching`".into()),
            };
            Ok((which, confirmed))
        };
        Ok(match get("action").ok_or("action is missing")? {
            "cancel" => Action::Cancel {
                customer: customer()?,
                snapshot: snapshot()?,
            },
            "rollback" => Action::Rollback {
                customer: customer()?,
                to: get("to")
                    .map(|t| {
                        t.parse::<u64>()
                            .map_err(|_| format!("to: {t:?} is not a snapshot id"))
                    })
                    .transpose()?,
            },
            "approve" => Action::Approve {
                customer: customer()?,
                snapshot: snapshot()?,
            },
            "reject" => Action::Reject {
                customer: customer()?,
                snapshot: snapshot()?,
            },
            "pause" => Action::Pause {
                customer: optional_customer()?,
            },
            "resume" => Action::Resume {
                customer: optional_customer()?,
            },
            "dlq_replay" => {
                let (which, confirmed) = parked()?;
                Action::DlqReplay { which, confirmed }
            }
            "dlq_delete" => {
                let (which, confirmed) = parked()?;
                Action::DlqDelete { which, confirmed }
            }
            other => {
                return Err(format!(
                    "unknown action {:?}",
                    other.chars().take(40).collect::<String>()
                ))
            }
        })
    }
}

/// The parked-events filter in a form or query (`f_customer`, `f_reason`,
/// `f_min_age`).
pub fn filter_of(p: &[(String, String)]) -> Result<Filter, String> {
    let get = |k: &str| {
        p.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Ok(Filter {
        customer: get("f_customer"),
        reason: get("f_reason"),
        min_age_seconds: get("f_min_age")
            .map(|a| {
                a.parse::<i64>()
                    .map_err(|_| format!("minimum age {a:?} is not a number of seconds"))
            })
            .transpose()?,
    })
}

/// A JSON object as form fields: strings and numbers as they are, arrays
/// as repeated fields.
pub fn json_pairs(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                match item {
                    Value::String(s) => out.push((k.clone(), s.clone())),
                    Value::Number(n) => out.push((k.clone(), n.to_string())),
                    Value::Bool(b) => out.push((k.clone(), b.to_string())),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Does `action` for `operator`; returns its effect. Audited either way.
pub async fn perform(c: &Console, action: &Action, operator: &str) -> anyhow::Result<String> {
    let result = run(c, action, operator).await;
    let mut fields = vec![
        ("operator", operator.to_owned()),
        ("action", action.name().to_owned()),
    ];
    match &result {
        Ok(effect) => fields.push(("effect", effect.clone())),
        Err(e) => fields.push(("refused", format!("{e:#}"))),
    }
    if let Some(customer) = action.customer() {
        fields.push(("customer", customer.to_string()));
    }
    if let Action::Cancel { snapshot, .. }
    | Action::Approve { snapshot, .. }
    | Action::Reject { snapshot, .. } = action
    {
        fields.push(("snapshot_id", snapshot.to_string()));
    }
    if let Err(e) = c
        .state
        .audit(AuditEvent::OperatorAction.as_str(), &fields)
        .await
    {
        tracing::error!(error = %e, "could not write the audit entry of a console action");
    }
    tracing::info!(%operator, action = action.name(), ok = result.is_ok(), "console action");
    result
}

async fn run(c: &Console, action: &Action, operator: &str) -> anyhow::Result<String> {
    match action {
        Action::Cancel { customer, snapshot } => {
            c.state.cancel(customer, *snapshot).await?;
            c.state
                .audit(
                    AuditEvent::CancelRequested.as_str(),
                    &[
                        ("customer", customer.to_string()),
                        ("snapshot_id", snapshot.to_string()),
                        ("operator", operator.to_owned()),
                    ],
                )
                .await?;
            Ok(format!(
                "cancelled {customer}/{snapshot}: a queued event is acknowledged as cancelled, a running load is aborted and its database dropped"
            ))
        }
        Action::Rollback { customer, to } => {
            let moved =
                crate::rollback::roll_back(&c.config, customer.as_str(), *to, operator).await?;
            Ok(format!(
                "{}: alias moved back from {} to {}",
                moved.customer, moved.from, moved.to
            ))
        }
        Action::Approve { customer, snapshot } => match &c.gate {
            Some(g) => g.approve(&c.config, customer, *snapshot, operator).await,
            None => anyhow::bail!("{}", super::gate::NOT_AVAILABLE),
        },
        Action::Reject { customer, snapshot } => match &c.gate {
            Some(g) => g.reject(&c.config, customer, *snapshot, operator).await,
            None => anyhow::bail!("{}", super::gate::NOT_AVAILABLE),
        },
        Action::Pause { customer } => {
            c.state.pause(customer.as_ref(), operator).await?;
            Ok(match customer {
                None => "paused the whole fleet: workers delay every event until resumed".into(),
                Some(c) => format!("paused {c}: its events wait in the delay queues until resumed"),
            })
        }
        Action::Resume { customer } => {
            c.state.resume(customer.as_ref()).await?;
            Ok(match customer {
                None => "resumed the fleet".into(),
                Some(c) => format!("resumed {c}"),
            })
        }
        Action::DlqReplay { which, confirmed } | Action::DlqDelete { which, confirmed } => {
            let replay = matches!(action, Action::DlqReplay { .. });
            let con = c.amqp().await?;
            let selection = selection_of(which);
            let now = chrono::Utc::now();
            // Count what the action takes now; refuse when it is not what
            // the operator confirmed.
            let matching: Vec<crate::dlq::Parked> = crate::dlq::list(&con, &c.topology)
                .await?
                .into_iter()
                .filter(|p| match which {
                    Parked::Selected(ids) => p.event_id.as_ref().is_some_and(|id| ids.contains(id)),
                    Parked::Matching(f) => f.matches(p, now),
                })
                .collect();
            if matching.len() != *confirmed {
                anyhow::bail!(
                    "the selection now matches {} parked events, not the {confirmed} confirmed; nothing was changed",
                    matching.len()
                );
            }
            // Exactly the counted events when each has an id.
            let selection = if matching.iter().all(|p| p.event_id.is_some()) {
                Selection::Ids(matching.iter().filter_map(|p| p.event_id.clone()).collect())
            } else {
                selection
            };
            let n = if replay {
                crate::dlq::replay(&con, &c.topology, &selection).await?
            } else {
                crate::dlq::delete(&con, &c.topology, &selection).await?
            };
            Ok(format!(
                "{} {n} parked event{}",
                if replay { "replayed" } else { "deleted" },
                if n == 1 { "" } else { "s" }
            ))
        }
    }
}

fn selection_of(which: &Parked) -> Selection {
    match which {
        Parked::Selected(ids) => Selection::Ids(ids.clone()),
        Parked::Matching(f) => Selection::Filter(f.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_parse_into_actions_or_say_what_is_wrong() {
        let acme = Customer::parse("acme").unwrap();
        let ok = [
            (p(&[("action", "pause")]), Action::Pause { customer: None }),
            (
                p(&[("action", "resume"), ("customer", "acme")]),
                Action::Resume {
                    customer: Some(acme.clone()),
                },
            ),
            (
                p(&[("action", "rollback"), ("customer", "acme"), ("to", "")]),
                Action::Rollback {
                    customer: acme.clone(),
                    to: None,
                },
            ),
            (
                p(&[
                    ("action", "cancel"),
                    ("customer", "acme"),
                    ("snapshot_id", "1767741427"),
                ]),
                Action::Cancel {
                    customer: acme.clone(),
                    snapshot: SnapshotId::new(1_767_741_427).unwrap(),
                },
            ),
            (
                p(&[
                    ("action", "dlq_replay"),
                    ("scope", "selected"),
                    ("id", "a"),
                    ("id", "b"),
                    ("confirm", "2"),
                ]),
                Action::DlqReplay {
                    which: Parked::Selected(vec!["a".into(), "b".into()]),
                    confirmed: 2,
                },
            ),
            (
                p(&[
                    ("action", "dlq_delete"),
                    ("scope", "matching"),
                    ("f_reason", "snapshot_invalid"),
                    ("confirm", "0"),
                ]),
                Action::DlqDelete {
                    which: Parked::Matching(Filter {
                        reason: Some("snapshot_invalid".into()),
                        ..Filter::default()
                    }),
                    confirmed: 0,
                },
            ),
        ];
        for (form, want) in ok {
            assert_eq!(Action::from_pairs(&form), Ok(want));
        }
        let bad = [
            (p(&[]), "action is missing"),
            (p(&[("action", "drop_everything")]), "unknown action"),
            (
                p(&[("action", "cancel"), ("customer", "<script>")]),
                "customer",
            ),
            (
                p(&[("action", "cancel"), ("customer", "acme")]),
                "snapshot_id is missing",
            ),
            (
                p(&[("action", "dlq_delete"), ("scope", "matching")]),
                "confirm",
            ),
            (
                p(&[
                    ("action", "dlq_delete"),
                    ("scope", "selected"),
                    ("confirm", "1"),
                ]),
                "no parked event selected",
            ),
            (
                p(&[
                    ("action", "dlq_delete"),
                    ("scope", "matching"),
                    ("confirm", "1"),
                    ("f_min_age", "old"),
                ]),
                "not a number of seconds",
            ),
        ];
        for (form, want) in bad {
            let err = Action::from_pairs(&form).unwrap_err();
            assert!(err.contains(want), "{form:?}: {err}");
        }
    }

    #[test]
    fn json_objects_become_form_fields() {
        let v = serde_json::json!({"action": "dlq_replay", "id": ["a", "b"], "confirm": 2});
        let mut got = json_pairs(&v);
        got.sort();
        assert_eq!(
            got,
            p(&[
                ("action", "dlq_replay"),
                ("confirm", "2"),
                ("id", "a"),
                ("id", "b")
            ])
        );
    }
}
