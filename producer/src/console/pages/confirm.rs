//! The confirmation page shown before an action takes effect.

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use crate::console::html::{esc, page, val};
use crate::console::Console;

type Shared = State<Arc<Console>>;

use super::*;

/// The confirmation step of every DLQ action: says how many events it
/// takes now; its button does the action with that count.
pub async fn confirm(State(c): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let session = session_of(&c, &headers);
    let viewer = c.viewer(session.as_ref());
    let Some(s) = session.as_ref() else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(page(
                "Confirm",
                &viewer,
                Some("log in with the operator token to act"),
                None,
                "",
            )),
        )
            .into_response();
    };
    let p = crate::console::pairs(&body);
    let op = if crate::console::first(&p, "op") == Some("delete") {
        "delete"
    } else {
        "replay"
    };
    let scope = if crate::console::first(&p, "scope") == Some("selected") {
        "selected"
    } else {
        "matching"
    };
    let filter = match crate::console::actions::filter_of(&p) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page("Confirm", &viewer, Some(&e), None, "")),
            )
                .into_response()
        }
    };
    let ids: Vec<&str> = p
        .iter()
        .filter(|(k, v)| k == "id" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    let wanted = if scope == "selected" {
        crate::dlq::Filter::default()
    } else {
        filter.clone()
    };
    let listed = match c.parked_json(&wanted).await {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page("Confirm", &viewer, Some(&e.to_string()), None, "")),
            )
                .into_response()
        }
    };
    let taken: Vec<&Value> = listed
        .iter()
        .filter(|v| {
            scope != "selected" || v["event_id"].as_str().is_some_and(|id| ids.contains(&id))
        })
        .collect();
    let n = taken.len();
    let mut b = format!(
        "<p id=\"confirm-text\">{} {n} parked event{}{}?</p><ul>",
        if op == "delete" { "Delete" } else { "Replay" },
        if n == 1 { "" } else { "s" },
        if op == "delete" {
            " (they are gone for good)"
        } else {
            " to the work queue"
        }
    );
    for v in &taken {
        write!(
            b,
            "<li>{} · {}/{} · {}</li>",
            val(&v["event_id"]),
            val(&v["customer"]),
            val(&v["snapshot_id"]),
            val(&v["reason"])
        )
        .ok();
    }
    b.push_str("</ul>");
    let mut hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"dlq_{op}\"><input type=\"hidden\" name=\"scope\" value=\"{scope}\"><input type=\"hidden\" name=\"confirm\" value=\"{n}\"><input type=\"hidden\" name=\"back\" value=\"/parked\">",
        esc(&s.csrf)
    );
    if scope == "selected" {
        for id in &ids {
            write!(
                hidden,
                "<input type=\"hidden\" name=\"id\" value=\"{}\">",
                esc(id)
            )
            .ok();
        }
    } else {
        hidden.push_str(&filter_fields(&filter));
    }
    write!(
        b,
        "<form method=\"post\" action=\"/action\">{hidden}<button id=\"confirm\">{} {n}</button> <a href=\"/parked\">cancel</a></form>",
        if op == "delete" { "Delete" } else { "Replay" }
    ).ok();
    Html(page("Confirm", &viewer, None, None, &b)).into_response()
}
