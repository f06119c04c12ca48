//! The operator console (`producer console`) in a real headless Chromium,
//! against real RabbitMQ, Redis, FalkorDB and a running worker: live
//! progress and the alias switching without a reload, rollback, pause and
//! resume, replay from the parked-events page, refusal without the token,
//! hostile names shown as text. Screenshots of each page go to the test's
//! directory, and to docs/console/ with UPDATE_CONSOLE_SCREENSHOTS=1.
//!
//! Needs `chromium` and `chromedriver` on PATH (`scripts/ensure-services.sh
//! --browser`); without them the tests are reported ignored.

use std::path::PathBuf;
use std::time::Duration;

use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::webdriver::Browser;
use harness::TestEnv;

const ID: u64 = 1_767_741_427;
const TOKEN: &str = "console-test-token-0123456789";

fn write(env: &TestEnv, customer: &str, id: u64, rows: usize) -> SampleSpec {
    let spec = SampleSpec::with_rows(rows, SampleFormat::Csv, id);
    sample::write_snapshot(&sample::snapshot_dir(&env.data_root(), customer, id), &spec).unwrap();
    spec
}

fn event(customer: &str, id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7(),
        "customer": customer,
        "snapshot_id": id,
        "path": format!("{customer}/{id}"),
        "priority": 4,
        "created_at": "2026-11-22T10:00:00Z",
    }))
    .unwrap()
}

/// Starts `producer console` for `env`; returns its base URL.
fn console(env: &mut TestEnv, label: &str, token: Option<&str>) -> String {
    let port = harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["console".to_owned(), "--listen".into(), listen.clone()];
    if let Some(token) = token {
        let path = env.dir.path().join(format!("{label}.token"));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        args.push("--token-file".into());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.spawn(label, "producer", &args).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "console did not listen:\n{}",
            env.log_of(label)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://{listen}")
}

fn shot(env: &TestEnv, browser: &Browser, name: &str) {
    let file = format!("{name}.png");
    browser
        .screenshot(&env.dir.path().join("screenshots").join(&file))
        .unwrap();
    if std::env::var_os("UPDATE_CONSOLE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
        browser.screenshot(&docs.join(&file)).unwrap();
    }
}

fn login(browser: &Browser, base: &str, operator: &str) {
    browser.goto(&format!("{base}/login")).unwrap();
    browser.type_into("#operator-name", operator).unwrap();
    browser.type_into("#token", TOKEN).unwrap();
    browser.click("#login").unwrap();
    browser
        .wait("logged in", Duration::from_secs(10), |b| {
            Ok(b.text("#operator").ok().filter(|t| t == operator))
        })
        .unwrap();
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The text of `css` once the (next) page shows it.
fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .wait(css, Duration::from_secs(15), |b| Ok(b.text(css).ok()))
        .unwrap()
}

fn flash(browser: &Browser) -> String {
    text_of(browser, "#flash")
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium and chromedriver are not installed (scripts/ensure-services.sh --browser)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_follows_a_load_live_and_its_actions_change_the_fleet() {
    let mut env = TestEnv::new(
        "console",
        "keep_databases = 3\nskip_superseded = false\nbatch_size = 50\nbatch_pause_ms = 150",
    )
    .unwrap();
    let base = console(&mut env, "console", Some(TOKEN));
    env.spawn_worker("worker").unwrap();
    let browser = Browser::start().unwrap();
    login(&browser, &base, "ann");

    // A load's progress advances and the alias switches, without a reload.
    write(&env, "acme", ID, 3000);
    browser.goto(&format!("{base}/customers/acme")).unwrap();
    browser.execute("window.__sameDocument = 42;").unwrap();
    env.producer(&[
        "publish",
        "--customer",
        "acme",
        "--snapshot-id",
        &ID.to_string(),
    ])
    .unwrap();
    let first = browser
        .wait("progress rows", Duration::from_secs(60), |b| {
            Ok(b.text("#progress-rows")
                .ok()
                .and_then(|t| number(&t))
                .filter(|n| *n > 0))
        })
        .unwrap();
    shot(&env, &browser, "customer-loading");
    // The same progress in `producer status` and the worker's /status.
    let text = env.producer(&["status"]).unwrap();
    assert!(text.contains(&format!("loading acme/{ID} on ")), "{text}");
    let worker_http = env.http_addr("worker").await.unwrap();
    let (code, body) = harness::http_get(&worker_http, "/status").unwrap();
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let load = &status["loads_in_progress"][0];
    assert_eq!(load["customer"], "acme", "{status}");
    assert_eq!(load["snapshot_id"], ID);
    assert!(load["nodes"].as_u64().unwrap() > 0, "{load}");
    let later = browser
        .wait("progress advancing", Duration::from_secs(60), |b| {
            Ok(b.text("#progress-rows")
                .ok()
                .and_then(|t| number(&t))
                .filter(|n| *n > first))
        })
        .unwrap();
    assert!(later > first);
    let alias = format!("acme-{ID}");
    browser
        .wait(
            "the alias switching on the page",
            Duration::from_secs(60),
            |b| Ok(b.text("#alias").ok().filter(|t| *t == alias)),
        )
        .unwrap();
    assert_eq!(
        browser.execute("return window.__sameDocument;").unwrap(),
        42,
        "the page was reloaded"
    );
    env.wait_counter("completed", 1, Duration::from_secs(30))
        .await;

    // A second snapshot; the fleet page shows it loading.
    let id2 = ID + 60;
    write(&env, "acme", id2, 3000);
    browser.goto(&format!("{base}/")).unwrap();
    env.producer(&[
        "publish",
        "--customer",
        "acme",
        "--snapshot-id",
        &id2.to_string(),
    ])
    .unwrap();
    browser
        .wait(
            "a load in progress on the fleet page",
            Duration::from_secs(60),
            |b| Ok(b.text("#loads .c-customer").ok().filter(|t| t == "acme")),
        )
        .unwrap();
    browser
        .wait(
            "rows written on the fleet page",
            Duration::from_secs(30),
            |b| {
                Ok(b.text("#loads .c-nodes")
                    .ok()
                    .and_then(|t| number(&t))
                    .filter(|n| *n > 0))
            },
        )
        .unwrap();
    shot(&env, &browser, "fleet");
    assert_eq!(browser.text("#workers .c-breaker").unwrap(), "closed");
    assert_eq!(
        browser.text("#workers .c-version").unwrap(),
        env!("CARGO_PKG_VERSION")
    );
    env.wait_counter("completed", 2, Duration::from_secs(60))
        .await;
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some(format!("acme-{id2}").as_str())
    );

    // Rollback from the customer page moves the alias back.
    browser.goto(&format!("{base}/customers/acme")).unwrap();
    shot(&env, &browser, "customer");
    browser.click(&format!("#rollback-{ID}")).unwrap();
    browser
        .wait("the rollback's result", Duration::from_secs(30), |b| {
            Ok(b.text("#flash").ok().filter(|f| !f.is_empty()))
        })
        .unwrap();
    assert_eq!(
        flash(&browser),
        format!("acme: alias moved back from {id2} to {ID}")
    );
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some(format!("acme-{ID}").as_str())
    );
    browser
        .wait("the alias on the page", Duration::from_secs(10), |b| {
            Ok(b.text("#alias").ok().filter(|t| *t == format!("acme-{ID}")))
        })
        .unwrap();
    let audit = env.audit("operator_action").await;
    assert!(
        audit.iter().any(|e| e.get("operator") == Some("ann")
            && e.get("action") == Some("rollback")
            && e.get("effect").is_some_and(|f| f.contains("moved back"))),
        "{audit:?}"
    );

    // Pause stops consumption; resume restarts it.
    browser.goto(&format!("{base}/")).unwrap();
    browser.click("#pause-fleet").unwrap();
    browser
        .wait("paused", Duration::from_secs(10), |b| {
            Ok(b.text("#fleet-paused").ok().filter(|t| t == "ann"))
        })
        .unwrap();
    write(&env, "globex", ID, 200);
    env.producer(&[
        "publish",
        "--customer",
        "globex",
        "--snapshot-id",
        &ID.to_string(),
    ])
    .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(env.counter("completed").await, 2, "a paused fleet loaded");
    assert!(env
        .audit("load_started")
        .await
        .iter()
        .all(|e| e.get("customer") != Some("globex")));
    assert_eq!(
        env.counter("parked").await,
        0,
        "a paused event must wait, not fail"
    );
    assert_eq!(
        env.queue_depth(&env.work_queue()).await.unwrap(),
        1,
        "the event waits in the work queue: the worker stopped consuming"
    );
    assert!(env.log_of("worker").contains("stopped consuming"));
    browser.click("#resume-fleet").unwrap();
    env.wait_counter("completed", 3, Duration::from_secs(30))
        .await;
    assert_eq!(
        env.falkor.get("snapswitch:alias:globex").as_deref(),
        Some(format!("globex-{ID}").as_str())
    );

    // A parked event is replayed from the parked-events page and then loads;
    // a hostile customer name shows as text.
    let hostile = "<script>alert(1)</script>\"'\u{1b}[31m";
    env.publish_raw(&event(hostile, ID), 4).await.unwrap();
    env.publish_raw(&event("initech", ID), 4).await.unwrap();
    env.wait_counter("parked", 2, Duration::from_secs(30)).await;
    write(&env, "initech", ID, 200);
    browser.goto(&format!("{base}/parked")).unwrap();
    let page = browser.source().unwrap();
    assert!(!page.contains("<script>alert(1)"), "unescaped hostile name");
    assert_eq!(
        browser.execute("return document.scripts.length;").unwrap(),
        1,
        "only the console's own script"
    );
    let shown = browser
        .execute("return Array.from(document.querySelectorAll('td.customer')).map(td => td.textContent);")
        .unwrap();
    assert!(
        shown
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "<script>alert(1)</script>\"'\\x1b[31m"),
        "{shown}"
    );
    shot(&env, &browser, "parked");
    browser.type_into("#f-customer", "initech").unwrap();
    browser.click("#filter").unwrap();
    browser
        .wait("the filter", Duration::from_secs(10), |b| {
            Ok(b.text("#parked-count")
                .ok()
                .filter(|t| t.starts_with("1 parked")))
        })
        .unwrap();
    browser.click("#parked input[type=checkbox]").unwrap();
    browser.click("#replay-selected").unwrap();
    let confirm = text_of(&browser, "#confirm-text");
    assert_eq!(confirm, "Replay 1 parked event to the work queue?");
    shot(&env, &browser, "confirm");
    browser.click("#confirm").unwrap();
    assert_eq!(flash(&browser), "replayed 1 parked event");
    env.wait_counter("completed", 4, Duration::from_secs(30))
        .await;
    assert_eq!(
        env.falkor.get("snapswitch:alias:initech").as_deref(),
        Some(format!("initech-{ID}").as_str())
    );

    // The hostile event's body and headers, inspected: text.
    browser.goto(&format!("{base}/parked")).unwrap();
    browser.click("#parked a").unwrap();
    let body = text_of(&browser, "#body");
    assert!(body.contains("<script>alert(1)</script>"), "{body}");
    assert_eq!(
        browser.execute("return document.scripts.length;").unwrap(),
        1
    );
    shot(&env, &browser, "parked-event");

    // Delete all matching a filter, behind a confirmation that counts them.
    browser
        .goto(&format!("{base}/parked?f_reason=event_invalid_customer"))
        .unwrap();
    browser.click("#delete-matching").unwrap();
    assert_eq!(
        text_of(&browser, "#confirm-text"),
        "Delete 1 parked event (they are gone for good)?"
    );
    browser.click("#confirm").unwrap();
    assert_eq!(flash(&browser), "deleted 1 parked event");
    assert_eq!(env.queue_depth(&env.dead_queue()).await.unwrap(), 0);

    browser.goto(&format!("{base}/customers")).unwrap();
    assert_eq!(
        browser.count("#customers tr").unwrap(),
        4,
        "header + 3 customers"
    );
    shot(&env, &browser, "customers");

    // Without the token (logged out): refused, nothing changes.
    browser.goto(&format!("{base}/")).unwrap();
    browser.click("header form button").unwrap();
    text_of(&browser, "#login-link");
    assert_eq!(
        browser.count("#pause-fleet").unwrap(),
        0,
        "no action forms when logged out"
    );
    let status = browser
        .execute("return fetch('/action', {method: 'POST', body: new URLSearchParams({action: 'pause'})}).then(r => r.status);")
        .unwrap();
    assert_eq!(status, 401);
    let fleet = env.fleet().await.unwrap();
    assert_eq!(
        fleet.pauses().await.unwrap().0,
        None,
        "refused pause changed the fleet"
    );
    drop(browser);
    env.terminate("worker", Duration::from_secs(20));
}

/// A POST with a JSON body, for the console's API: (status, body).
fn post_json(base: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

/// The JSON API (no browser): a customer paused with the bearer token
/// waits, the other customer loads, resume lets it load; every call is
/// audited with its operator; a wrong token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pauses_one_customer_whose_events_wait_then_load_on_resume() {
    let mut env = TestEnv::new("console-api", "").unwrap();
    let base = console(&mut env, "console", Some(TOKEN));
    env.spawn_worker("worker").unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [
        ("Authorization", bearer.as_str()),
        ("X-Snapswitch-Operator", "ops-bot"),
    ];
    let (code, body) = post_json(
        &base,
        "/api/action",
        &auth,
        r#"{"action": "pause", "customer": "acme"}"#,
    );
    assert_eq!(
        (code, body.as_str()),
        (
            200,
            r#"{"effect":"paused acme: its events wait in the delay queues until resumed","ok":true}"#
        )
    );
    let (code, _) = post_json(
        &base,
        "/api/action",
        &[
            ("Authorization", "Bearer wrong-token-0123456789"),
            ("X-Snapswitch-Operator", "eve"),
        ],
        r#"{"action": "resume", "customer": "acme"}"#,
    );
    assert_eq!(code, 401);
    write(&env, "acme", ID, 200);
    write(&env, "globex", ID, 200);
    env.producer(&["backfill"]).unwrap();
    env.wait_counter("completed", 1, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        env.counter("completed").await,
        1,
        "the paused customer loaded"
    );
    assert_eq!(env.falkor.get("snapswitch:alias:acme"), None);
    assert_eq!(env.counter("parked").await, 0);
    assert_eq!(
        env.counter("retried").await,
        0,
        "a pause is not a failed attempt"
    );
    // A DLQ action whose confirmed count is not what it would take: refused.
    let (code, body) = post_json(
        &base,
        "/api/action",
        &auth,
        r#"{"action": "dlq_delete", "scope": "matching", "confirm": 5}"#,
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("matches 0 parked events, not the 5 confirmed; nothing was changed"),
        "{body}"
    );
    let text = env.producer(&["status"]).unwrap();
    assert!(
        text.contains("customer acme is PAUSED (by ops-bot)"),
        "{text}"
    );
    let (code, _) = post_json(
        &base,
        "/api/action",
        &auth,
        r#"{"action": "resume", "customer": "acme"}"#,
    );
    assert_eq!(code, 200);
    env.wait_counter("completed", 2, Duration::from_secs(30))
        .await;
    assert_eq!(
        env.falkor.get("snapswitch:alias:acme").as_deref(),
        Some(format!("acme-{ID}").as_str())
    );
    let audit = env.audit("operator_action").await;
    let seen: Vec<(Option<&str>, Option<&str>, Option<&str>)> = audit
        .iter()
        .map(|e| (e.get("operator"), e.get("action"), e.get("customer")))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("ops-bot"), Some("pause"), Some("acme")),
            (Some("ops-bot"), Some("dlq_delete"), None),
            (Some("ops-bot"), Some("resume"), Some("acme"))
        ]
    );
    env.terminate("worker", Duration::from_secs(20));
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium and chromedriver are not installed (scripts/ensure-services.sh --browser)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_without_a_token_is_read_only_and_refuses_actions() {
    let mut env = TestEnv::new("console-ro", "").unwrap();
    let base = console(&mut env, "console", None);
    let browser = Browser::start().unwrap();
    browser.goto(&format!("{base}/")).unwrap();
    browser.find("#read-only").unwrap();
    assert_eq!(browser.count("form[action='/action']").unwrap(), 0);
    let status = browser
        .execute("return fetch('/action', {method: 'POST', body: new URLSearchParams({action: 'pause'})}).then(r => r.status);")
        .unwrap();
    assert_eq!(status, 403);
    let status = browser
        .execute("return fetch('/api/action', {method: 'POST', headers: {'Authorization': 'Bearer x', 'Content-Type': 'application/json'}, body: '{\"action\":\"pause\"}'}).then(r => r.status);")
        .unwrap();
    assert_eq!(status, 403);
    // GET never changes state: a GET of the action URL is not a route.
    let status = browser
        .execute("return fetch('/action?action=pause').then(r => r.status);")
        .unwrap();
    assert_eq!(status, 405);
    let fleet = env.fleet().await.unwrap();
    assert_eq!(fleet.pauses().await.unwrap().0, None);
}
