//! The parked-events pages: the filtered list and one event.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::console::html::{esc, page, url, val};
use crate::console::Console;

type Shared = State<Arc<Console>>;

use super::*;

#[derive(Debug, Default, Deserialize)]
pub struct ParkedQuery {
    pub f_customer: Option<String>,
    pub f_reason: Option<String>,
    pub f_min_age: Option<String>,
}

impl ParkedQuery {
    pub fn filter(&self) -> crate::dlq::Filter {
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        crate::dlq::Filter {
            customer: nonempty(&self.f_customer),
            reason: nonempty(&self.f_reason),
            min_age_seconds: nonempty(&self.f_min_age).and_then(|a| a.parse().ok()),
        }
    }
}

pub(super) fn filter_fields(f: &crate::dlq::Filter) -> String {
    format!(
        "<input type=\"hidden\" name=\"f_customer\" value=\"{}\"><input type=\"hidden\" name=\"f_reason\" value=\"{}\"><input type=\"hidden\" name=\"f_min_age\" value=\"{}\">",
        esc(f.customer.as_deref().unwrap_or("")),
        esc(f.reason.as_deref().unwrap_or("")),
        f.min_age_seconds.map(|a| a.to_string()).unwrap_or_default()
    )
}

pub async fn parked(
    State(c): Shared,
    headers: HeaderMap,
    Query(q): Query<ParkedQuery>,
) -> Response {
    let session = session_of(&c, &headers);
    let viewer = c.viewer(session.as_ref());
    let flash = c.take_flash(&headers);
    let filter = q.filter();
    let list = match c.parked_json(&filter).await {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page(
                    "Parked events",
                    &viewer,
                    Some(&e.to_string()),
                    None,
                    "",
                )),
            )
                .into_response()
        }
    };
    let mut b = String::new();
    write!(
        b,
        "<form class=\"filters\" method=\"get\">customer <input name=\"f_customer\" id=\"f-customer\" value=\"{}\"> reason <input name=\"f_reason\" id=\"f-reason\" value=\"{}\"> parked at least <input name=\"f_min_age\" id=\"f-min-age\" size=\"6\" value=\"{}\"> s ago <button id=\"filter\">filter</button></form>",
        esc(filter.customer.as_deref().unwrap_or("")),
        esc(filter.reason.as_deref().unwrap_or("")),
        filter.min_age_seconds.map(|a| a.to_string()).unwrap_or_default()
    ).ok();
    write!(
        b,
        "<p id=\"parked-count\">{} parked events match</p>",
        list.len()
    )
    .ok();
    if viewer.session.is_some() {
        write!(
            b,
            "<form id=\"sel\" method=\"post\" action=\"/parked/confirm\" class=\"inline\"><input type=\"hidden\" name=\"scope\" value=\"selected\">\
<button name=\"op\" value=\"replay\" id=\"replay-selected\">Replay selected…</button> <button name=\"op\" value=\"delete\" id=\"delete-selected\">Delete selected…</button></form> \
<form method=\"post\" action=\"/parked/confirm\" class=\"inline\"><input type=\"hidden\" name=\"scope\" value=\"matching\">{}\
<button name=\"op\" value=\"replay\" id=\"replay-matching\">Replay all matching…</button> <button name=\"op\" value=\"delete\" id=\"delete-matching\">Delete all matching…</button></form>",
            filter_fields(&filter)
        ).ok();
    }
    b.push_str("<table id=\"parked\"><tr><th></th><th>event</th><th>customer</th><th>snapshot</th><th>reason</th><th>error</th><th>attempts</th><th>age s</th><th></th></tr>");
    for p in &list {
        let id = p["event_id"].as_str().unwrap_or("");
        let check = if viewer.session.is_some() && !id.is_empty() {
            format!(
                "<input type=\"checkbox\" form=\"sel\" name=\"id\" value=\"{}\">",
                esc(id)
            )
        } else {
            String::new()
        };
        let inspect = if id.is_empty() {
            String::new()
        } else {
            format!("<a href=\"/parked/event/{}\">inspect</a>", url(id))
        };
        write!(
            b,
            "<tr><td>{check}</td><td>{}</td><td class=\"customer\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{inspect}</td></tr>",
            esc(id),
            val(&p["customer"]),
            val(&p["snapshot_id"]),
            val(&p["reason"]),
            esc(&crate::console::html::plain(&p["error"]).chars().take(300).collect::<String>()),
            val(&p["attempts"]),
            val(&p["age_seconds"]),
        ).ok();
    }
    b.push_str("</table>");
    Html(page("Parked events", &viewer, flash.as_deref(), None, &b)).into_response()
}

pub async fn parked_one(State(c): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = session_of(&c, &headers);
    let viewer = c.viewer(session.as_ref());
    let list = match c.parked_json(&crate::dlq::Filter::default()).await {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page(
                    "Parked event",
                    &viewer,
                    Some(&e.to_string()),
                    None,
                    "",
                )),
            )
                .into_response()
        }
    };
    let Some(p) = list
        .iter()
        .find(|p| p["event_id"].as_str() == Some(id.as_str()))
    else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(
                "Parked event",
                &viewer,
                Some("no parked event with this id"),
                None,
                "",
            )),
        )
            .into_response();
    };
    let mut b = String::new();
    if viewer.session.is_some() {
        for (op, label) in [("replay", "Replay…"), ("delete", "Delete…")] {
            write!(
                b,
                "<form method=\"post\" action=\"/parked/confirm\" class=\"inline\"><input type=\"hidden\" name=\"scope\" value=\"selected\"><input type=\"hidden\" name=\"id\" value=\"{}\"><button name=\"op\" value=\"{op}\" id=\"{op}-one\">{label}</button></form> ",
                esc(&id)
            ).ok();
        }
    }
    b.push_str("<h2>Headers</h2><table id=\"headers\">");
    for (k, v) in p["headers"].as_object().into_iter().flatten() {
        write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), val(v)).ok();
    }
    write!(
        b,
        "</table><h2>Body</h2><pre id=\"body\">{}</pre>",
        val(&p["raw_body"])
    )
    .ok();
    Html(page(&format!("Parked event {id}"), &viewer, None, None, &b)).into_response()
}
