//! `deploy/prometheus/`: the alerting rules, the example Prometheus
//! configuration, the rules' unit tests and the Grafana dashboard, against the
//! metric contract (the names the worker and the producer serve at /metrics).
//!
//! The static checks always run: the YAML and JSON parse, every alert has a
//! severity and operator instructions and a unit test that makes it fire, the
//! dashboard is a Grafana model on a Prometheus data-source variable, and every
//! PromQL expression (dashboard and alerts) names only contract metrics (plus
//! `up`) and known functions. The contract itself is checked against what
//! `common::metrics` really registers.
//!
//! The tests also run `promtool check rules`, `promtool check config`,
//! `promtool test rules`, and `promtool check rules` on the dashboard's
//! expressions turned into recording rules (a PromQL syntax check). They need
//! `promtool` on PATH (Debian's `prometheus` package; `scripts/ensure-services.sh
//! --test-tools`, which `scripts/test` and CI run, installs it) and fail,
//! saying so, without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::metrics::{Metrics, Role};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

// --------------------------------------------------------------- contract

/// Counters, as Prometheus sees them (prometheus-client appends `_total`).
const WORKER_COUNTERS: &[&str] = &[
    "snapswitch_discovered_total",
    "snapswitch_completed_total",
    "snapswitch_failed_total",
    "snapswitch_retried_total",
    "snapswitch_parked_total",
    "snapswitch_superseded_total",
    "snapswitch_cancelled_total",
    "snapswitch_skipped_relationships_total",
    "snapswitch_skipped_nodes_total",
    "snapswitch_breaker_opened_total",
    "snapswitch_dependency_waits_total",
    "snapswitch_held_total",
];
const WORKER_HISTOGRAMS: &[&str] = &[
    "snapswitch_load_duration_seconds",
    "snapswitch_load_rows_per_second",
    "snapswitch_slot_wait_seconds",
];
const WORKER_GAUGES: &[&str] = &[
    "snapswitch_loads_in_flight",
    "snapswitch_lock_held_seconds",
    "snapswitch_breaker_open",
    "snapswitch_draining",
    "snapswitch_slots_in_use",
];
/// Served by the worker and the producer alike.
const SHARED_GAUGES: &[&str] = &[
    "snapswitch_queue_messages",
    "snapswitch_workers_live",
    "snapswitch_status_updated_timestamp_seconds",
];
const PRODUCER_COUNTERS: &[&str] = &[
    "snapswitch_published_total",
    "snapswitch_publish_failures_total",
];
/// Not snapswitch's, but fine to use: Prometheus's own per-target series.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// (metric family name, type) pairs a role exposes, per the contract.
fn contract(role: Role) -> BTreeSet<(String, &'static str)> {
    let mut out = BTreeSet::new();
    let mut add = |names: &[&str], kind: &'static str| {
        for n in names {
            out.insert(((*n).to_owned(), kind));
        }
    };
    match role {
        Role::Worker => {
            add(WORKER_COUNTERS, "counter");
            add(WORKER_HISTOGRAMS, "histogram");
            add(WORKER_GAUGES, "gauge");
        }
        Role::Producer => add(PRODUCER_COUNTERS, "counter"),
    }
    add(SHARED_GAUGES, "gauge");
    out
}

/// Every series name a PromQL expression may select: the contract's names, a
/// histogram's `_bucket`, `_sum` and `_count`, and `up`.
fn allowed_series() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = WORKER_COUNTERS
        .iter()
        .chain(WORKER_GAUGES)
        .chain(SHARED_GAUGES)
        .chain(PRODUCER_COUNTERS)
        .chain(PROMETHEUS_SERIES)
        .map(|s| (*s).to_owned())
        .collect();
    for h in WORKER_HISTOGRAMS {
        for suffix in ["_bucket", "_sum", "_count"] {
            out.insert(format!("{h}{suffix}"));
        }
    }
    out
}

/// The metric families a process really registers, from the `# TYPE` lines
/// of its exposition, with counters named as Prometheus stores them.
fn exposed(role: Role) -> BTreeSet<(String, &'static str)> {
    let metrics = Metrics::new(role);
    // Labelled families are exposed only once they have a series.
    metrics.fail("graph_unavailable");
    metrics.park("retries_exhausted");
    metrics.hold("shrink");
    metrics.set_queue("work", 0);
    metrics.init_targets(["default"]);
    let text = metrics.encode();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("odd TYPE line: {line}"));
        let (name, kind) = match kind {
            "counter" => (format!("{name}_total"), "counter"),
            "gauge" => (name.to_owned(), "gauge"),
            "histogram" => (name.to_owned(), "histogram"),
            other => panic!("{name}: unexpected metric type {other}"),
        };
        out.insert((name, kind));
    }
    out
}

// ----------------------------------------------------------------- PromQL

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a label list in parentheses.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

const OTHER_KEYWORDS: &[&str] = &[
    "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan",
];

const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "end",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_by_label",
    "sort_by_label_desc",
    "sort_desc",
    "sqrt",
    "start",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Index just past the bracket that closes the one at `open` (`{`, `[` or
/// `(`), skipping quoted strings.
fn skip_group(chars: &[char], open: usize) -> Result<usize, String> {
    let (o, c) = match chars[open] {
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        '(' => ('(', ')'),
        other => return Err(format!("not a bracket: {other}")),
    };
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i)?;
                continue;
            }
            x if x == o => depth += 1,
            x if x == c => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("unclosed {o}"))
}

/// Index just past the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(format!("unclosed string {quote}"))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names a PromQL expression selects (bare selector names; a
/// `{__name__=...}` matcher is not looked into). Grafana variables (`$x`,
/// `${x}`) are skipped. An error for an unknown function or an unbalanced
/// bracket.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut parens = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '(' {
            parens += 1;
            i += 1;
        } else if c == ')' {
            parens = parens.checked_sub(1).ok_or("unbalanced )")?;
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i)?;
        } else if c == '{' || c == '[' {
            // Label matchers, ranges and subqueries: no metric names inside.
            i = skip_group(&chars, i)?;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                i = skip_group(&chars, i)?;
            } else {
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations (5m, 1h30m, 1e3, 0x1f).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if next == Some('(') {
                    i = skip_group(&chars, j)?;
                }
            } else if OTHER_KEYWORDS.contains(&lower.as_str()) {
            } else if next == Some('(') {
                if !FUNCTIONS.contains(&word.as_str()) && !AGGREGATIONS.contains(&word.as_str()) {
                    return Err(format!("unknown function {word}()"));
                }
            } else if AGGREGATIONS.contains(&word.as_str()) {
                // `sum by (x) (...)`: the keyword comes next.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    if parens != 0 {
        return Err("unclosed (".into());
    }
    Ok(names)
}

// ---------------------------------------------------------------- helpers

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERT_TESTS: &str = "deploy/prometheus/alerts.test.yml";
const CONFIG: &str = "deploy/prometheus/prometheus.yml";
const DASHBOARD: &str = "deploy/prometheus/grafana-dashboard.json";

/// Every alerting rule of alerts.yml.
fn alert_rules() -> Vec<Yaml> {
    let doc = yaml(ALERTS);
    let groups = doc["groups"].as_sequence().expect("alerts.yml: groups");
    let mut rules = Vec::new();
    for g in groups {
        for r in g["rules"]
            .as_sequence()
            .expect("alerts.yml: group without rules")
        {
            rules.push(r.clone());
        }
    }
    rules
}

fn str_of<'a>(v: &'a Yaml, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(d: &Json) -> Vec<Json> {
    fn walk(list: &Json, out: &mut Vec<Json>) {
        for p in list.as_array().expect("panels is an array") {
            out.push(p.clone());
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// (panel title, expression) for every query of the dashboard.
fn dashboard_exprs(d: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title}: a target without expr"));
            out.push((title.clone(), expr.to_owned()));
        }
    }
    out
}

/// `promtool` on PATH.
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Runs promtool with `args` in `dir`; panics with its output unless it
/// succeeds. Returns stdout + stderr.
fn run_promtool(promtool: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ promtool {}\n{text}", args.join(" "));
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

/// promtool, or a failed test saying how to install it (`scripts/test`,
/// which CI runs, installs it): a check that cannot run never passes.
fn required_promtool() -> PathBuf {
    promtool().unwrap_or_else(|| {
        panic!("promtool is not on PATH, so this check cannot run: Debian: apt-get install --no-install-recommends prometheus, or scripts/ensure-services.sh --test-tools (scripts/test does)")
    })
}

// ------------------------------------------------------------------ tests

#[test]
fn promql_name_extraction() {
    let names = |e: &str| metric_names(e).unwrap().into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum by (le) (rate(a_bucket{job="x",le=~"1.*"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        names("sum without (instance) (b) / on (queue) group_left (code) max by (queue) (c offset 15m) and d > bool 1e3"),
        ["b", "c", "d"]
    );
    assert_eq!(
        names(r#"time() - max(e) or absent(up{job="w"} == 1) unless vector(0) + f @ 1609746000"#),
        ["e", "f", "up"]
    );
    assert_eq!(
        names(r#"label_replace(g, "dst", "$1 {x} (y) z", "src", "(.*)") > Inf"#),
        ["g"]
    );
    assert_eq!(names("max_over_time(h[1h:5m]) * ${factor} + $x"), ["h"]);
    assert!(metric_names("rte(x[5m])")
        .unwrap_err()
        .contains("unknown function rte()"));
    assert!(metric_names("sum(x{a=\"b\"}").is_err());
}

#[test]
fn the_contract_is_what_the_code_registers() {
    for role in [Role::Worker, Role::Producer] {
        let want = contract(role);
        let got = exposed(role);
        assert_eq!(
            got,
            want,
            "{role:?}: common::metrics registers {:?} beyond the contract and lacks {:?}",
            got.difference(&want).collect::<Vec<_>>(),
            want.difference(&got).collect::<Vec<_>>()
        );
    }
}

#[test]
fn every_expression_uses_only_contract_metrics() {
    let allowed = allowed_series();
    let mut exprs: Vec<(String, String)> = dashboard_exprs(&dashboard())
        .into_iter()
        .map(|(t, e)| (format!("dashboard panel {t:?}"), e))
        .collect();
    for r in alert_rules() {
        let name = str_of(&r["alert"], "alert").to_owned();
        exprs.push((
            format!("alert {name}"),
            str_of(&r["expr"], "expr").to_owned(),
        ));
    }
    let mut bad = Vec::new();
    let mut used = BTreeSet::new();
    for (what, expr) in &exprs {
        match metric_names(expr) {
            Ok(names) => {
                for n in names {
                    if !allowed.contains(&n) {
                        bad.push(format!("{what}: {n} in {expr}"));
                    }
                    used.insert(n);
                }
            }
            Err(e) => bad.push(format!("{what}: {e} in {expr}")),
        }
    }
    assert!(
        bad.is_empty(),
        "names outside the metric contract:\n{}",
        bad.join("\n")
    );
    assert!(exprs.len() > 20, "only {} expressions found", exprs.len());
    eprintln!(
        "{} expressions use {} metric names",
        exprs.len(),
        used.len()
    );
}

#[test]
fn the_dashboard_shows_every_contract_metric() {
    let mut used = BTreeSet::new();
    for (_, expr) in dashboard_exprs(&dashboard()) {
        used.extend(metric_names(&expr).unwrap());
    }
    let mut missing = Vec::new();
    for role in [Role::Worker, Role::Producer] {
        for (name, kind) in contract(role) {
            let shown = if kind == "histogram" {
                used.contains(&format!("{name}_bucket"))
            } else {
                used.contains(&name)
            };
            if !shown {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn the_dashboard_is_a_grafana_model_on_a_prometheus_datasource_variable() {
    let d = dashboard();
    for key in ["title", "uid"] {
        assert!(d[key].is_string(), "dashboard {key}");
    }
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds_vars: Vec<&Json> = vars
        .iter()
        .filter(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .collect();
    assert_eq!(ds_vars.len(), 1, "one Prometheus data-source variable");
    let var = ds_vars[0]["name"].as_str().expect("variable name");
    let uid = format!("${{{var}}}");

    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut queries = 0;
    for p in panels(&d) {
        let title = p["title"]
            .as_str()
            .expect("every panel has a title")
            .to_owned();
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: id"));
        assert!(ids.insert(id), "{title}: duplicate panel id {id}");
        let g = &p["gridPos"];
        let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.clone()) {
                    panic!("panels {other:?} and {title:?} overlap at x={cx} y={cy}");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(p["type"].is_string(), "{title}: type");
        assert_eq!(
            p["datasource"]["type"], "prometheus",
            "{title}: datasource type"
        );
        assert_eq!(
            p["datasource"]["uid"],
            uid.as_str(),
            "{title}: datasource uid"
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"],
                uid.as_str(),
                "{title}: target datasource"
            );
            let r = t["refId"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: refId"));
            assert!(refs.insert(r.to_owned()), "{title}: duplicate refId {r}");
            queries += 1;
        }
    }
    let titles: BTreeSet<String> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect();
    for needed in [
        "Outcomes per minute",
        "Success rate (30m window)",
        "Queue depths",
        "Load duration",
        "Load speed (rows/s)",
        "Loads in flight",
        "Lock hold",
        "Live workers",
        "Circuit breaker and draining",
    ] {
        assert!(titles.contains(needed), "no panel {needed:?}: {titles:?}");
    }
    eprintln!("{} panels, {queries} queries", ids.len());
}

#[test]
fn every_alert_has_severity_instructions_and_a_firing_unit_test() {
    let rules = alert_rules();
    let names: BTreeSet<String> = rules
        .iter()
        .map(|r| str_of(&r["alert"], "alert").to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "SnapswitchBreakerOpen",
            "SnapswitchLoadsStuck",
            "SnapswitchNoLiveWorker",
            "SnapswitchParkingQueueGrowing",
            "SnapswitchQueueBacklog",
            "SnapswitchSnapshotHeld",
            "SnapswitchStatusStale",
            "SnapswitchSuccessRateLow",
        ]
        .map(String::from)
        .into(),
        "alerts"
    );
    let mut all_text = String::new();
    for r in &rules {
        let name = str_of(&r["alert"], "alert");
        let severity = str_of(&r["labels"]["severity"], &format!("{name} severity"));
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity}"
        );
        let summary = str_of(&r["annotations"]["summary"], &format!("{name} summary"));
        let description = str_of(
            &r["annotations"]["description"],
            &format!("{name} description"),
        );
        assert!(!summary.is_empty(), "{name}: empty summary");
        assert!(
            [
                "`producer status`",
                "`producer dlq list`",
                "`worker doctor`"
            ]
            .iter()
            .any(|cmd| description.contains(cmd)),
            "{name}: the description names no operator command"
        );
        all_text.push_str(description);
    }
    for cmd in [
        "`producer status`",
        "`producer dlq list`",
        "`worker doctor`",
    ] {
        assert!(all_text.contains(cmd), "no alert mentions {cmd}");
    }

    // Each alert fires in at least one unit test; the success-rate alert also
    // has a test where it stays silent at 97 %.
    let tests = yaml(ALERT_TESTS);
    assert_eq!(
        tests["rule_files"][0], "alerts.yml",
        "alerts.test.yml rule_files"
    );
    let mut fired = BTreeSet::new();
    let mut silent_at_97 = false;
    for t in tests["tests"]
        .as_sequence()
        .expect("alerts.test.yml: tests")
    {
        let test_name = t["name"].as_str().unwrap_or("");
        for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let alert = str_of(&a["alertname"], "alertname").to_owned();
            assert!(
                names.contains(&alert),
                "alerts.test.yml tests unknown alert {alert}"
            );
            let firing = a["exp_alerts"].as_sequence().is_some_and(|s| !s.is_empty());
            if firing {
                fired.insert(alert);
            } else if alert == "SnapswitchSuccessRateLow" && test_name.contains("97 %") {
                silent_at_97 = true;
            }
        }
    }
    assert_eq!(fired, names, "alerts that no unit test makes fire");
    assert!(
        silent_at_97,
        "no unit test keeps SnapswitchSuccessRateLow silent at 97 %"
    );
}

#[test]
fn the_config_scrapes_both_jobs_and_loads_the_rules() {
    let c = yaml(CONFIG);
    let jobs: BTreeSet<&str> = c["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .map(|s| str_of(&s["job_name"], "job_name"))
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["snapswitch-producer", "snapswitch-worker"])
    );
    let rule_files: Vec<&str> = c["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .map(|f| str_of(f, "rule file"))
        .collect();
    assert_eq!(rule_files, ["alerts.yml"]);
}

#[test]
fn promtool_check_rules() {
    let promtool = required_promtool();
    let out = run_promtool(&promtool, &repo_root(), &["check", "rules", ALERTS]);
    let n = alert_rules().len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "expected {n} rules:\n{out}"
    );
}

#[test]
fn promtool_check_config() {
    let promtool = required_promtool();
    // rule_files are relative to the config file, whatever the working directory.
    let out = run_promtool(&promtool, &repo_root(), &["check", "config", CONFIG]);
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
}

#[test]
fn promtool_test_rules() {
    let promtool = required_promtool();
    let out = run_promtool(&promtool, &repo_root(), &["test", "rules", ALERT_TESTS]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The dashboard's queries as recording rules, so that promtool parses them
/// as PromQL (Grafana's `$__rate_interval` becomes 1m).
#[test]
fn promtool_parses_the_dashboard_queries() {
    let promtool = required_promtool();
    let exprs = dashboard_exprs(&dashboard());
    let mut rules = Vec::new();
    for (i, (title, expr)) in exprs.iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "1m");
        assert!(
            !expr.contains('$'),
            "panel {title:?}: a Grafana variable promtool cannot parse: {expr}"
        );
        let mut rule = serde_yaml_ng::Mapping::new();
        rule.insert(
            "record".into(),
            format!("snapswitch_dashboard:query_{i}").into(),
        );
        rule.insert("expr".into(), expr.into());
        rules.push(Yaml::Mapping(rule));
    }
    let mut group = serde_yaml_ng::Mapping::new();
    group.insert("name".into(), "grafana-dashboard".into());
    group.insert("rules".into(), Yaml::Sequence(rules));
    let mut doc = serde_yaml_ng::Mapping::new();
    doc.insert("groups".into(), Yaml::Sequence(vec![Yaml::Mapping(group)]));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    let out = run_promtool(
        &promtool,
        dir.path(),
        &["check", "rules", "dashboard-queries.yml"],
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
}
