//! The console's pages: server-rendered from the same JSON as `/api/...`;
//! every value escaped (see [`super::html::esc`]).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::html::{action_form, chart_svg, esc, page, time_ms, url, val};
use super::{cookie, Console};

type Shared = State<Arc<Console>>;

mod confirm;
mod parked;

pub use confirm::confirm;
use parked::filter_fields;
pub use parked::{parked, parked_one, ParkedQuery};

fn session_of(c: &Console, headers: &HeaderMap) -> Option<super::auth::Session> {
    c.auth.session(cookie(headers))
}

pub async fn fleet(State(c): Shared, headers: HeaderMap) -> Html<String> {
    let session = session_of(&c, &headers);
    let viewer = c.viewer(session.as_ref());
    let flash = c.take_flash(&headers);
    let f = c.fleet_json().await;
    let mut b = String::new();
    let paused = !f["paused"]["fleet"].is_null();
    write!(
        b,
        "<p>Fleet: <b data-field=\"status\">{}</b> · consumption <b id=\"fleet-paused\" data-field=\"paused.fleet\">{}</b> {} {}</p>",
        val(&f["status"]),
        if paused { val(&f["paused"]["fleet"]) } else { "-".into() },
        action_form(&viewer, "pause", &[("back", "/")], "Pause the fleet", "pause-fleet"),
        action_form(&viewer, "resume", &[("back", "/")], "Resume the fleet", "resume-fleet"),
    ).ok();
    b.push_str("<p class=\"muted\">consumption: <code>-</code> = running; otherwise who paused it (events wait in the delay queues).</p>");
    b.push_str("<h2>Counters</h2><table><tr>");
    let keys = [
        ("workers", "workers"),
        ("queue_size", "work queue (all priorities)"),
        ("parked_queue_size", "parked"),
        ("success_rate", "success % (all time)"),
        ("success_rate_1h", "success % (1 h)"),
        ("success_rate_24h", "success % (24 h)"),
        ("tasks_published", "published"),
        ("tasks_completed", "completed"),
        ("tasks_failed", "failed"),
        ("tasks_retried", "retried"),
        ("tasks_parked", "parked (total)"),
        ("tasks_superseded", "superseded"),
        ("tasks_cancelled", "cancelled"),
        ("held_now", "held now (awaiting approve/reject)"),
        ("tasks_held", "held (total)"),
    ];
    for (_, label) in keys {
        write!(b, "<th>{}</th>", esc(label)).ok();
    }
    b.push_str("</tr><tr>");
    for (k, _) in keys {
        write!(b, "<td id=\"f-{k}\" data-field=\"{k}\">{}</td>", val(&f[k])).ok();
    }
    b.push_str("</tr></table><p class=\"muted\">RabbitMQ reports a priority queue's depth as one number; the depth per priority is not available over AMQP.</p>");

    b.push_str("<h2>Loads in progress</h2><table><thead><tr><th>customer</th><th>snapshot</th><th>worker</th><th>phase</th><th>nodes written</th><th>relationships written</th><th>rows/s</th><th>elapsed s</th><th>rows expected (previous load)</th><th>ETA s</th></tr></thead>");
    b.push_str("<tbody id=\"loads\" data-rows=\"loads_in_progress\" data-cols=\"customer,snapshot_id,worker,phase,nodes,relationships,rows_per_second,elapsed_seconds,expected_rows_estimate,eta_seconds\"></tbody></table>");

    b.push_str("<h2>Workers</h2><table><thead><tr><th>host</th><th>pid</th><th>version</th><th>circuit breaker</th><th>loading now</th><th>id</th></tr></thead>");
    b.push_str("<tbody id=\"workers\" data-rows=\"workers_list\" data-cols=\"host,pid,version,breaker,loading,id\"></tbody></table>");

    b.push_str("<h2>Retry queues</h2><table><thead><tr><th>queue</th><th>delay s</th><th>messages</th></tr></thead>");
    b.push_str("<tbody data-rows=\"retry_queues\" data-cols=\"queue,delay_seconds,depth\"></tbody></table>");

    b.push_str("<h2>Graph targets</h2><table><tr><th>target</th><th>load slots in use</th><th>cap</th></tr>");
    if let Some(targets) = f["targets"].as_object() {
        for (name, t) in targets {
            write!(
                b,
                "<tr><td>{}</td><td data-field=\"targets.{}.loads\">{}</td><td>{}</td></tr>",
                esc(name),
                esc(name),
                val(&t["loads"]),
                val(&t["max_concurrent_loads"])
            )
            .ok();
        }
    }
    b.push_str("</table>");

    b.push_str("<h2>Dependencies</h2><table>");
    if let Some(deps) = f["dependencies"].as_object() {
        for (name, health) in deps {
            let class = if health == "ok" { "good" } else { "bad" };
            write!(
                b,
                "<tr><td>{}</td><td class=\"{class}\">{}</td></tr>",
                esc(name),
                val(health)
            )
            .ok();
        }
    }
    b.push_str("</table><p class=\"muted\">Each worker's circuit breaker is in the workers table (reported every 5 s).</p>");

    write!(
        b,
        "<h2>Loads in the last 24 hours</h2>{}",
        chart_svg(
            &c.chart_points().await,
            chrono::Utc::now().timestamp_millis()
        )
    )
    .ok();
    Html(page(
        "Fleet",
        &viewer,
        flash.as_deref(),
        Some("/api/fleet"),
        &b,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct CustomerQuery {
    pub q: Option<String>,
    pub state: Option<String>,
    pub target: Option<String>,
    /// `1h`, `24h`, `older`, `never`.
    pub age: Option<String>,
}

/// The customers the query selects (all with an empty query).
pub fn filter_customers(list: Vec<Value>, q: &CustomerQuery) -> Vec<Value> {
    let nonempty = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (text, state, target, age) = (
        nonempty(&q.q),
        nonempty(&q.state),
        nonempty(&q.target),
        nonempty(&q.age),
    );
    list.into_iter()
        .filter(|c| {
            text.as_deref()
                .is_none_or(|t| c["customer"].as_str().unwrap_or("").contains(t))
        })
        .filter(|c| state.as_deref().is_none_or(|s| c["state"] == s))
        .filter(|c| target.as_deref().is_none_or(|t| c["target"] == t))
        .filter(|c| {
            let secs = c["last_load_age_seconds"].as_i64();
            match age.as_deref() {
                None => true,
                Some("1h") => secs.is_some_and(|s| s <= 3600),
                Some("24h") => secs.is_some_and(|s| s <= 86_400),
                Some("older") => secs.is_some_and(|s| s > 86_400),
                Some("never") => secs.is_none(),
                Some(_) => true,
            }
        })
        .collect()
}

fn select(name: &str, current: Option<&str>, options: &[(&str, &str)]) -> String {
    let mut s = format!("<select name=\"{name}\">");
    for (v, label) in options {
        let sel = if current == Some(*v) { " selected" } else { "" };
        write!(
            s,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(v),
            esc(label)
        )
        .ok();
    }
    s.push_str("</select>");
    s
}

pub async fn customers(
    State(c): Shared,
    headers: HeaderMap,
    Query(q): Query<CustomerQuery>,
) -> Response {
    let session = session_of(&c, &headers);
    let viewer = c.viewer(session.as_ref());
    let flash = c.take_flash(&headers);
    let list = match c.customers_json().await {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page("Customers", &viewer, Some(&e.to_string()), None, "")),
            )
                .into_response()
        }
    };
    let total = list.len();
    let list = filter_customers(list, &q);
    let mut b = String::new();
    let targets: Vec<(String, String)> = std::iter::once((String::new(), "any target".to_owned()))
        .chain(
            c.targets
                .all()
                .iter()
                .map(|t| (t.name.clone(), t.name.clone())),
        )
        .collect();
    let targets: Vec<(&str, &str)> = targets
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write!(
        b,
        "<form class=\"filters\" method=\"get\"><input name=\"q\" id=\"search\" placeholder=\"customer contains\" value=\"{}\">{}{}{}<button id=\"filter\">filter</button></form>",
        esc(q.q.as_deref().unwrap_or("")),
        select("state", q.state.as_deref(), &[("", "any state"), ("live", "live"), ("loading", "loading"), ("paused", "paused"), ("error", "error"), ("never loaded", "never loaded")]),
        select("target", q.target.as_deref(), &targets),
        select("age", q.age.as_deref(), &[("", "any last load"), ("1h", "within 1 h"), ("24h", "within 24 h"), ("older", "older than 24 h"), ("never", "never")]),
    ).ok();
    let held_total: usize = list
        .iter()
        .map(|cu| cu["held"].as_array().map_or(0, Vec::len))
        .sum();
    write!(
        b,
        "<p>{} of {total} customers · <span id=\"held-total\">{held_total}</span> held snapshot{} awaiting approve/reject</p>",
        list.len(),
        if held_total == 1 { "" } else { "s" }
    ).ok();
    b.push_str("<table id=\"customers\"><tr><th>customer</th><th>state</th><th>target</th><th>alias →</th><th>live</th><th>previous</th><th>retained databases</th><th>held</th><th>last load</th><th>took s</th><th>last error</th></tr>");
    for cu in &list {
        let name = cu["customer"].as_str().unwrap_or("");
        let dbs: Vec<String> = cu["databases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| format!("{} ({})", val(&d["database"]), val(&d["state"])))
                    .collect()
            })
            .unwrap_or_default();
        let held: Vec<String> = cu["held"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| {
                        format!(
                            "{} ({})",
                            val(&h["snapshot_id"]),
                            esc(&super::gate::reasons_text(h))
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        write!(
            b,
            "<tr><td><a href=\"/customers/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"held\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url(name),
            esc(name),
            val(&cu["state"]),
            val(&cu["target"]),
            val(&cu["alias"]),
            val(&cu["live_snapshot"]),
            val(&cu["previous_snapshot"]),
            dbs.join("<br>"),
            held.join(", "),
            val(&cu["last_loaded_at"]),
            val(&cu["last_load_seconds"]),
            val(&cu["last_error"]),
        ).ok();
    }
    b.push_str("</table>");
    Html(page("Customers", &viewer, flash.as_deref(), None, &b)).into_response()
}

pub async fn customer(State(c): Shared, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let session = session_of(&c, &headers);
    let viewer = c.viewer(session.as_ref());
    let flash = c.take_flash(&headers);
    let v = match c.customer_json(&name).await {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                Html(page("Customer", &viewer, Some(&e.to_string()), None, "")),
            )
                .into_response()
        }
    };
    let back = format!("/customers/{}", url(&name));
    let mut b = String::new();
    write!(
        b,
        "<table><tr><th>alias {}</th><td><b id=\"alias\" data-field=\"alias\">{}</b></td></tr>\
<tr><th>state</th><td id=\"state\" data-field=\"state\">{}</td></tr>\
<tr><th>live snapshot</th><td id=\"live\" data-field=\"live_snapshot\">{}</td></tr>\
<tr><th>previous</th><td data-field=\"previous_snapshot\">{}</td></tr>\
<tr><th>target</th><td>{}</td></tr>\
<tr><th>last load</th><td data-field=\"last_loaded_at\">{}</td></tr>\
<tr><th>last load took (s)</th><td data-field=\"last_load_seconds\">{}</td></tr>\
<tr><th>last error</th><td data-field=\"last_error\">{}</td></tr></table>",
        esc(&name),
        val(&v["alias"]),
        val(&v["state"]),
        val(&v["live_snapshot"]),
        val(&v["previous_snapshot"]),
        val(&v["target"]),
        val(&v["last_loaded_at"]),
        val(&v["last_load_seconds"]),
        val(&v["last_error"]),
    )
    .ok();
    let p = &v["progress"];
    write!(
        b,
        "<h2>Load in progress</h2><table><tr><th>snapshot</th><th>phase</th><th>nodes written</th><th>relationships written</th><th>rows written</th><th>rows/s</th><th>rows expected (previous load)</th><th>ETA s</th></tr>\
<tr><td data-field=\"progress.snapshot_id\">{}</td><td id=\"progress-phase\" data-field=\"progress.phase\">{}</td><td data-field=\"progress.nodes\">{}</td><td data-field=\"progress.relationships\">{}</td>\
<td id=\"progress-rows\" data-field=\"progress.rows_written\">{}</td><td data-field=\"progress.rows_per_second\">{}</td><td data-field=\"progress.expected_rows_estimate\">{}</td><td data-field=\"progress.eta_seconds\">{}</td></tr></table>",
        val(&p["snapshot_id"]),
        val(&p["phase"]),
        val(&p["nodes"]),
        val(&p["relationships"]),
        val(&p["rows_written"]),
        val(&p["rows_per_second"]),
        val(&p["expected_rows_estimate"]),
        val(&p["eta_seconds"]),
    ).ok();

    // Actions.
    b.push_str("<h2>Actions</h2>");
    if viewer.session.is_none() {
        b.push_str("<p class=\"muted\">Log in with the operator token to act.</p>");
    } else {
        let paused = v["paused"].as_bool().unwrap_or(false);
        write!(
            b,
            "<p>Consumption for {}: <b id=\"customer-paused\">{}</b> {}</p>",
            esc(&name),
            if paused { "paused" } else { "running" },
            if paused {
                action_form(
                    &viewer,
                    "resume",
                    &[("customer", &name), ("back", &back)],
                    "Resume this customer",
                    "resume-customer",
                )
            } else {
                action_form(
                    &viewer,
                    "pause",
                    &[("customer", &name), ("back", &back)],
                    "Pause this customer",
                    "pause-customer",
                )
            }
        )
        .ok();
        if let Some(s) = viewer.session {
            write!(
                b,
                "<form method=\"post\" action=\"/action\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<input type=\"hidden\" name=\"action\" value=\"cancel\"><input type=\"hidden\" name=\"customer\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"{}\">\
Cancel a queued or running load: snapshot <input name=\"snapshot_id\" id=\"cancel-snapshot\" size=\"12\"> <button id=\"cancel\">Cancel load</button></form>",
                esc(&s.csrf),
                esc(&name),
                esc(&back)
            ).ok();
            write!(
                b,
                " <form method=\"post\" action=\"/parked/confirm\" class=\"inline\"><input type=\"hidden\" name=\"op\" value=\"replay\"><input type=\"hidden\" name=\"scope\" value=\"matching\"><input type=\"hidden\" name=\"f_customer\" value=\"{}\"><button id=\"replay-customer\">Replay its parked events…</button></form>",
                esc(&name)
            ).ok();
        }
        let live = v["live_snapshot"].as_u64();
        let mut rollback = Vec::new();
        for d in v["databases"].as_array().into_iter().flatten() {
            let (Some(id), Some(state)) = (d["snapshot_id"].as_u64(), d["state"].as_str()) else {
                continue;
            };
            if live.is_some_and(|l| id < l) {
                if matches!(state, "verified" | "not tracked") {
                    rollback.push(action_form(
                        &viewer,
                        "rollback",
                        &[
                            ("customer", &name),
                            ("to", &id.to_string()),
                            ("back", &back),
                        ],
                        &format!("Roll back to {id}"),
                        &format!("rollback-{id}"),
                    ));
                } else {
                    rollback.push(format!(
                        "<span class=\"muted\">{id}: {} (not verified: cannot go live)</span>",
                        esc(state)
                    ));
                }
            }
        }
        write!(
            b,
            "<p>Roll back (to a verified database only): {}</p>",
            if rollback.is_empty() {
                "<span class=\"muted\">no older retained database</span>".into()
            } else {
                rollback.join(" ")
            }
        )
        .ok();
    }

    held_section(&mut b, &c, &viewer, &name, &back, &v);

    b.push_str("<h2>Databases</h2><table><thead><tr><th>database</th><th>state</th><th>live</th></tr></thead><tbody id=\"databases\" data-rows=\"databases\" data-cols=\"database,state,live\">");
    for d in v["databases"].as_array().into_iter().flatten() {
        write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            val(&d["database"]),
            val(&d["state"]),
            val(&d["live"])
        )
        .ok();
    }
    b.push_str("</tbody></table>");

    b.push_str("<h2>Timeline</h2><table id=\"timeline\"><tr><th>snapshot</th><th>what happened</th><th>nodes</th><th>relationships</th><th>vs previous live</th><th>load s</th></tr>");
    for row in v["timeline"].as_array().into_iter().flatten().rev() {
        let mut steps = String::new();
        for s in row["steps"].as_array().into_iter().flatten() {
            write!(
                steps,
                "<div><b>{}</b> {} <span class=\"muted\">{}</span></div>",
                val(&s["what"]),
                esc(&time_ms(s["at_ms"].as_i64())),
                val(&s["detail"])
            )
            .ok();
        }
        let diff = match (
            row["diff_nodes"].as_i64(),
            row["diff_relationships"].as_i64(),
        ) {
            (Some(n), Some(r)) => format!("{n:+} nodes, {r:+} relationships"),
            _ => "-".into(),
        };
        write!(
            b,
            "<tr><td>{}{}</td><td>{steps}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            val(&row["snapshot_id"]),
            if row["went_live"].as_bool() == Some(true) {
                " <span class=\"good\">(went live)</span>"
            } else {
                ""
            },
            val(&row["nodes"]),
            val(&row["relationships"]),
            esc(&diff),
            val(&row["seconds"]),
        )
        .ok();
    }
    b.push_str("</table>");
    let poll = format!("/api/customers/{}", url(&name));
    Html(page(
        &format!("Customer {name}"),
        &viewer,
        flash.as_deref(),
        Some(&poll),
        &b,
    ))
    .into_response()
}

/// The customer's held snapshots (loaded and verified, not live: a guard
/// or a check stopped them), each with why; approve/reject buttons for a
/// logged-in operator. A button asks for confirmation in the page
/// (`data-confirm`, see [`super::html::JS`]) and acts without a reload.
fn held_section(
    b: &mut String,
    c: &Console,
    viewer: &super::html::Viewer,
    name: &str,
    back: &str,
    v: &Value,
) {
    let held = v["held"].as_array().cloned().unwrap_or_default();
    write!(
        b,
        "<h2>Held snapshots</h2><p id=\"held-count\">{} held (loaded and verified, not live: approve switches the alias to it, reject drops its database)</p>",
        held.len()
    ).ok();
    if c.gate.is_none() {
        b.push_str("<p class=\"muted\">Approve/reject of held snapshots: not in this build.</p>");
        return;
    }
    if held.is_empty() {
        return;
    }
    b.push_str("<table id=\"held\"><tr><th>snapshot</th><th>database</th><th>why held</th><th>what changed</th><th>held at</th><th></th></tr>");
    for h in &held {
        let id = super::html::plain(&h["snapshot_id"]);
        let db = super::html::plain(&h["database"]);
        let fields = [
            ("customer", name),
            ("snapshot_id", id.as_str()),
            ("back", back),
        ];
        let approve = super::html::confirmed_action_form(
            viewer,
            "approve",
            &fields,
            "Approve (switch)…",
            &format!("approve-{id}"),
            &format!("Approve held snapshot {id} of {name}? The alias moves to {db}."),
        );
        let reject = super::html::confirmed_action_form(
            viewer,
            "reject",
            &fields,
            "Reject…",
            &format!("reject-{id}"),
            &format!("Reject held snapshot {id} of {name}? Its database {db} is dropped."),
        );
        write!(
            b,
            "<tr id=\"held-{}\"><td>{}</td><td>{}</td><td class=\"reasons\">{}</td><td class=\"changed\">{}</td><td>{}</td><td>{approve} {reject}</td></tr>",
            esc(&id),
            esc(&id),
            esc(&db),
            esc(&super::gate::reasons_text(h)),
            esc(&changed_text(&h["changed"])),
            val(&h["held_at"]),
        ).ok();
    }
    b.push_str("</table>");
    b.push_str("<div id=\"confirm-box\" class=\"flash\" hidden><span id=\"confirm-text\"></span> <button type=\"button\" id=\"confirm\">Confirm</button> <button type=\"button\" id=\"confirm-cancel\">Cancel</button></div>");
}

/// What changed against the live graph: a list as one line per item.
fn changed_text(changed: &Value) -> String {
    match changed.as_array() {
        Some(items) => items
            .iter()
            .map(super::html::plain)
            .collect::<Vec<_>>()
            .join("\n"),
        None => super::html::plain(changed),
    }
}

pub fn login_body() -> String {
    "<form method=\"post\" action=\"/login\"><p>operator name <input name=\"operator\" id=\"operator-name\" autocomplete=\"username\"></p>\
<p>operator token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\"></p><button id=\"login\">Log in</button></form>"
        .into()
}

pub async fn login_form(State(c): Shared) -> Html<String> {
    let viewer = c.viewer(None);
    let body = if c.auth.writable() {
        login_body()
    } else {
        "<p>No operator token is configured (<code>console_token_file</code>): this console is read-only.</p>".into()
    };
    Html(page("Log in", &viewer, None, None, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_changed_is_one_line_per_item() {
        let table = [
            (
                json!(["nodes 5 → 0", "label A 5 → 0"]),
                "nodes 5 → 0\nlabel A 5 → 0",
            ),
            (json!("nodes 5 → 0"), "nodes 5 → 0"),
            (json!(null), "-"),
        ];
        for (changed, want) in table {
            assert_eq!(changed_text(&changed), want, "{changed}");
        }
    }

    #[test]
    fn customers_filter_by_text_state_target_and_age() {
        let list = vec![
            json!({"customer": "acme", "state": "live", "target": "default", "last_load_age_seconds": 100}),
            json!({"customer": "globex", "state": "error", "target": "east", "last_load_age_seconds": 100_000}),
            json!({"customer": "initech", "state": "never loaded", "target": "default", "last_load_age_seconds": null}),
        ];
        let names = |q: CustomerQuery| -> Vec<String> {
            filter_customers(list.clone(), &q)
                .iter()
                .map(|c| c["customer"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(CustomerQuery::default()).len(), 3);
        assert_eq!(
            names(CustomerQuery {
                q: Some("lob".into()),
                ..Default::default()
            }),
            ["globex"]
        );
        assert_eq!(
            names(CustomerQuery {
                state: Some("live".into()),
                ..Default::default()
            }),
            ["acme"]
        );
        assert_eq!(
            names(CustomerQuery {
                target: Some("default".into()),
                ..Default::default()
            }),
            ["acme", "initech"]
        );
        assert_eq!(
            names(CustomerQuery {
                age: Some("1h".into()),
                ..Default::default()
            }),
            ["acme"]
        );
        assert_eq!(
            names(CustomerQuery {
                age: Some("older".into()),
                ..Default::default()
            }),
            ["globex"]
        );
        assert_eq!(
            names(CustomerQuery {
                age: Some("never".into()),
                ..Default::default()
            }),
            ["initech"]
        );
        assert_eq!(
            names(CustomerQuery {
                state: Some(String::new()),
                ..Default::default()
            })
            .len(),
            3
        );
    }
}
