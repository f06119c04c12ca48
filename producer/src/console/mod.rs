//! `producer console`: the operator console in the browser. Server-rendered
//! pages (fleet, customers, one customer, parked events) over the same JSON
//! the scripts use (`/api/...`); a small script refreshes the pages from
//! that JSON every second. State changes only by POST, with the operator
//! token (a session made by logging in with it, plus the session's CSRF
//! token in every form; or `Authorization: Bearer` on `/api/action`); every
//! action lands in the audit trail as `operator_action` with the operator,
//! the action and its effect.

pub mod actions;
pub mod auth;
pub mod gate;
mod html;
mod model;
mod pages;
mod timeline;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::config::Config;
use common::graph::GraphStore;
use common::state::FleetState;
use common::topology::Topology;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use self::auth::Auth;

/// Audit entries the console reads for timelines, rates and the chart.
const AUDIT_WINDOW: usize = 20_000;

/// The console's shared state: configuration, Redis, queue names, graph
/// targets and the operator sessions.
pub struct Console {
    /// The configuration.
    pub config: Config,
    /// The fleet's state in Redis.
    pub state: FleetState,
    /// Queue and exchange names.
    pub topology: Topology,
    /// The graph targets and which one serves each customer.
    pub targets: common::targets::Targets,
    /// The operator token and sessions.
    pub auth: Auth,
    /// Approve/reject of held snapshots, when this build has them.
    pub gate: Option<Arc<dyn gate::HeldGate>>,
    amqp: Mutex<Option<Arc<lapin::Connection>>>,
    stores: Mutex<HashMap<String, Arc<dyn GraphStore>>>,
    /// One message per session, shown on the next page it loads.
    flashes: std::sync::Mutex<HashMap<String, String>>,
}

pub use model::{customer_state, held_now, windowed_success_rate};

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

type Shared = State<Arc<Console>>;

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/customers", get(pages::customers))
        .route("/customers/{name}", get(pages::customer))
        .route("/parked", get(pages::parked))
        .route("/parked/event/{id}", get(pages::parked_one))
        .route("/parked/confirm", post(pages::confirm))
        .route("/login", get(pages::login_form).post(login))
        .route("/logout", post(logout))
        .route("/action", post(form_action))
        .route("/api/fleet", get(api_fleet))
        .route("/api/customers", get(api_customers))
        .route("/api/customers/{name}", get(api_customer))
        .route("/api/parked", get(api_parked))
        .route("/api/action", post(api_action))
        .route(
            "/static/console.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], html::JS) }),
        )
        .route(
            "/static/console.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], html::CSS) }),
        )
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    response
}

/// Serves the console on `listen` until `stop`.
pub async fn serve(
    console: Arc<Console>,
    listen: &str,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, writable = console.auth.writable(), "console listening");
    println!("console listening on http://{addr}/");
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

fn pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn login(State(c): Shared, body: Bytes) -> Response {
    let p = pairs(&body);
    let operator = first(&p, "operator").unwrap_or("").trim().to_owned();
    match c.auth.login(&operator, first(&p, "token").unwrap_or("")) {
        Ok((id, _)) => {
            tracing::info!(%operator, "console login");
            let cookie = format!("{}={id}; HttpOnly; SameSite=Strict; Path=/", auth::COOKIE);
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "console login refused");
            let viewer = c.viewer(None);
            (
                StatusCode::UNAUTHORIZED,
                axum::response::Html(html::page(
                    "Log in",
                    &viewer,
                    Some(&e.to_string()),
                    None,
                    &pages::login_body(),
                )),
            )
                .into_response()
        }
    }
}

async fn logout(State(c): Shared, headers: HeaderMap) -> Response {
    c.auth.logout(cookie(&headers));
    let clear = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::COOKIE
    );
    ([(header::SET_COOKIE, clear)], Redirect::to("/")).into_response()
}

/// A state-changing form POST: session, CSRF and origin checked, the action
/// done and audited, then back to the page it came from with the result.
async fn form_action(State(c): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let p = pairs(&body);
    let session = match c.auth.authorize_form(
        cookie(&headers),
        first(&p, "csrf"),
        header_str(&headers, "origin"),
        header_str(&headers, "host"),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "console action refused");
            return refused(&c, e);
        }
    };
    let back = first(&p, "back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//"))
        .unwrap_or("/")
        .to_owned();
    let result = match actions::Action::from_pairs(&p) {
        Ok(action) => actions::perform(&c, &action, &session.operator).await,
        Err(e) => Err(anyhow::anyhow!(e)),
    };
    let (ok, text) = match result {
        Ok(effect) => (true, effect),
        Err(e) => (false, format!("refused: {e:#}")),
    };
    // The page's script (an in-page confirmation) asks for JSON: the
    // result is shown without a reload.
    if header_str(&headers, "accept").is_some_and(|a| a.contains("application/json")) {
        return Json(json!({"ok": ok, "effect": text})).into_response();
    }
    c.set_flash(&headers, text);
    Redirect::to(&back).into_response()
}

fn refused(c: &Console, e: auth::AuthError) -> Response {
    let code = match e {
        auth::AuthError::NoSession | auth::AuthError::BadToken => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    let viewer = c.viewer(None);
    (
        code,
        axum::response::Html(html::page(
            "Action refused",
            &viewer,
            Some(&e.to_string()),
            None,
            "<p id=\"refused\">Nothing was changed.</p>",
        )),
    )
        .into_response()
}

async fn api_action(State(c): Shared, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let operator = match c.auth.authorize_bearer(
        header_str(&headers, "authorization"),
        header_str(&headers, "x-snapswitch-operator"),
    ) {
        Ok(o) => o,
        Err(e) => {
            let code = match e {
                auth::AuthError::BadToken => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            return (code, Json(json!({"error": e.to_string()}))).into_response();
        }
    };
    let p = actions::json_pairs(&body);
    let result = match actions::Action::from_pairs(&p) {
        Ok(action) => actions::perform(&c, &action, &operator).await,
        Err(e) => Err(anyhow::anyhow!(e)),
    };
    match result {
        Ok(effect) => Json(json!({"ok": true, "effect": effect})).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(json!({"ok": false, "error": format!("{e:#}")})),
        )
            .into_response(),
    }
}

async fn api_fleet(State(c): Shared) -> Json<Value> {
    Json(c.fleet_json().await)
}

async fn api_customers(State(c): Shared, Query(q): Query<pages::CustomerQuery>) -> Response {
    match c.customers_json().await {
        Ok(list) => Json(Value::from(pages::filter_customers(list, &q))).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn api_customer(State(c): Shared, Path(name): Path<String>) -> Response {
    match c.customer_json(&name).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn api_parked(State(c): Shared, Query(q): Query<pages::ParkedQuery>) -> Response {
    match c.parked_json(&q.filter()).await {
        Ok(list) => Json(Value::from(list)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::model::with_eta;
    use super::*;
    use common::state::AuditEntry;

    #[test]
    fn held_now_counts_every_customers_held_snapshots() {
        let table = [
            (json!({}), 0),
            (json!({"customers": {}}), 0),
            (
                json!({"customers": {"a": {"held": [{"snapshot_id": 1}, {"snapshot_id": 2}]}, "b": {"held": []}, "c": {}}}),
                2,
            ),
            (
                json!({"customers": {"a": {"held": [{}]}, "b": {"held": [{}]}}}),
                2,
            ),
        ];
        for (status, want) in table {
            assert_eq!(held_now(&status), want, "{status}");
        }
    }

    fn e(event: &str, at_ms: i64) -> AuditEntry {
        AuditEntry {
            id: "0-0".into(),
            fields: [("event", event.to_owned()), ("at_ms", at_ms.to_string())]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    #[test]
    fn windowed_rate_counts_only_the_window() {
        let now = 100 * 3_600_000;
        let audit = [
            e("load_finished", now - 10),
            e("load_finished", now - 20),
            e("load_finished", now - 30),
            e("parked", now - 40),
            e("parked", now - 2 * 3_600_000),
            e("published", now - 5),
        ];
        assert_eq!(windowed_success_rate(&audit, now, 1), Some(75.0));
        assert_eq!(windowed_success_rate(&audit, now, 24), Some(60.0));
        assert_eq!(windowed_success_rate(&[], now, 1), None);
    }

    #[test]
    fn customer_states() {
        assert_eq!(customer_state(true, true, false, true), "loading");
        assert_eq!(customer_state(true, false, true, true), "paused");
        assert_eq!(customer_state(false, false, true, true), "error");
        assert_eq!(customer_state(false, false, false, true), "live");
        assert_eq!(customer_state(false, false, false, false), "never loaded");
    }

    #[test]
    fn eta_from_the_previous_load_and_the_rate() {
        let mut prev = e("load_finished", 1);
        prev.fields.insert("customer".into(), "acme".into());
        prev.fields.insert("nodes".into(), "600".into());
        prev.fields.insert("relationships".into(), "400".into());
        let p = json!({"customer": "acme", "nodes": 300, "relationships": 100, "rows_per_second": 100.0, "started_ms": 0, "updated_ms": 4000});
        let v = with_eta(p.clone(), std::slice::from_ref(&prev));
        assert_eq!(v["expected_rows_estimate"], 1000);
        assert_eq!(v["eta_seconds"], 6.0);
        assert_eq!(v["elapsed_seconds"], 4);
        let v = with_eta(p, &[]);
        assert!(v["eta_seconds"].is_null());
    }
}
