//! The gates between "verified" and "live", as pure functions: the guards
//! against the live graph (empty, shrink, growth), the verdict of one
//! `[[checks]]` query and "what changed" between two loads. A snapshot that
//! any of them refuses is held (loaded, verified, kept, not live); see
//! docs/operations.md, "Why did my snapshot not go live". No I/O here.

use common::config::Guards;
use common::graph::{Census, Scalar};
use common::vocab::HoldCode;
use serde::Serialize;

/// Why a snapshot is held: a stable code (`empty`, `shrink`, `growth`,
/// `check`) and a message naming what and both values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// `empty`, `shrink`, `growth` or `check`.
    pub code: HoldCode,
    /// What and both values.
    pub message: String,
}

/// The guards' verdict on `new` against the database now `live` (None: no
/// alias yet). Empty: nothing else is reported.
pub fn guard(new: &Census, live: Option<&Census>, g: &Guards) -> Vec<Hold> {
    let Some(live) = live else {
        return Vec::new();
    };
    let live_empty = live.nodes == 0 && live.relationships == 0;
    if live_empty {
        return Vec::new();
    }
    if new.nodes == 0 && new.relationships == 0 {
        return if g.allow_empty {
            Vec::new()
        } else {
            vec![Hold {
                code: HoldCode::Empty,
                message: format!(
                    "the snapshot is empty and the live graph is not ({} nodes, {} relationships); allow_empty is false",
                    live.nodes, live.relationships
                ),
            }]
        };
    }
    let mut pairs: Vec<(String, u64, u64)> = vec![
        ("nodes".into(), live.nodes, new.nodes),
        (
            "relationships".into(),
            live.relationships,
            new.relationships,
        ),
    ];
    for (label, n) in &live.labels {
        pairs.push((
            format!("label {label}"),
            *n,
            new.labels.get(label).copied().unwrap_or(0),
        ));
    }
    for (ty, n) in &live.types {
        pairs.push((
            format!("type {ty}"),
            *n,
            new.types.get(ty).copied().unwrap_or(0),
        ));
    }
    let mut holds = Vec::new();
    for (what, was, now) in pairs {
        if was == 0 {
            continue;
        }
        let max = u128::from(g.max_shrink_percent);
        if now < was && u128::from(was - now) * 100 > max * u128::from(was) {
            holds.push(Hold {
                code: HoldCode::Shrink,
                message: format!(
                    "{what}: {now} in the snapshot, {was} live ({}); max_shrink_percent is {}",
                    percent(was, now),
                    g.max_shrink_percent
                ),
            });
        }
        if let Some(max) = g.max_growth_percent {
            if now > was && u128::from(now - was) * 100 > u128::from(max) * u128::from(was) {
                holds.push(Hold {
                    code: HoldCode::Growth,
                    message: format!(
                        "{what}: {now} in the snapshot, {was} live ({}); max_growth_percent is {max}",
                        percent(was, now)
                    ),
                });
            }
        }
    }
    holds
}

/// `-60.0%`, `+12.5%`.
fn percent(was: u64, now: u64) -> String {
    if was == 0 {
        return "new".into();
    }
    let p = (now as f64 - was as f64) / was as f64 * 100.0;
    format!("{p:+.1}%")
}

/// The verdict of check `name`: `None` when it passed (true, or a non-zero
/// number); a hold naming the check and the value, or the error (a failed
/// or timed-out query holds too).
pub fn check_verdict(name: &str, result: Result<Scalar, String>) -> Option<Hold> {
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            return Some(Hold {
                code: HoldCode::Check,
                message: format!("check {name:?} could not run: {e}"),
            })
        }
    };
    let passed = match &value {
        Scalar::Bool(b) => *b,
        Scalar::Int(n) => *n != 0,
        Scalar::Float(f) => *f != 0.0 && !f.is_nan(),
        Scalar::Null | Scalar::Other(_) => false,
    };
    (!passed).then(|| Hold {
        code: HoldCode::Check,
        message: match value {
            Scalar::Other(text) => {
                format!("check {name:?} failed: it returned {text}, not one boolean or number")
            }
            v => format!("check {name:?} failed: it returned {}", show(&v)),
        },
    })
}

fn show(v: &Scalar) -> String {
    match v {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Null => "null".into(),
        Scalar::Other(t) => t.clone(),
    }
}

/// What changed from `live` to `new`: one entry per total, label and type
/// whose count differs, e.g. `label Person 1000 → 400 (-60.0%)`; a label or
/// type only on one side shows 0 on the other. Empty: nothing changed.
pub fn diff(new: &Census, live: Option<&Census>) -> Vec<String> {
    let empty = Census::default();
    let live = live.unwrap_or(&empty);
    let mut out = Vec::new();
    let mut one = |what: String, was: u64, now: u64| {
        if was != now {
            out.push(format!("{what} {was} → {now} ({})", percent(was, now)));
        }
    };
    one("nodes".into(), live.nodes, new.nodes);
    one(
        "relationships".into(),
        live.relationships,
        new.relationships,
    );
    let labels: std::collections::BTreeSet<&String> =
        live.labels.keys().chain(new.labels.keys()).collect();
    for l in labels {
        one(
            format!("label {l}"),
            live.labels.get(l).copied().unwrap_or(0),
            new.labels.get(l).copied().unwrap_or(0),
        );
    }
    let types: std::collections::BTreeSet<&String> =
        live.types.keys().chain(new.types.keys()).collect();
    for t in types {
        one(
            format!("type {t}"),
            live.types.get(t).copied().unwrap_or(0),
            new.types.get(t).copied().unwrap_or(0),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(labels: &[(&str, u64)], types: &[(&str, u64)]) -> Census {
        Census {
            nodes: labels.iter().map(|l| l.1).sum(),
            relationships: types.iter().map(|t| t.1).sum(),
            labels: labels.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
            types: types.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
        }
    }

    const DEFAULTS: Guards = Guards {
        max_shrink_percent: 50,
        max_growth_percent: None,
        allow_empty: false,
    };

    fn codes(h: &[Hold]) -> Vec<&str> {
        h.iter().map(|h| h.code.as_str()).collect()
    }

    #[test]
    fn guards_table() {
        let live = census(&[("Person", 1000), ("Company", 50)], &[("KNOWS", 2000)]);
        let growth = Guards {
            max_growth_percent: Some(100),
            ..DEFAULTS
        };
        let empty_ok = Guards {
            allow_empty: true,
            ..DEFAULTS
        };
        let nothing = Census::default();
        type Case<'a> = (&'a str, Census, Option<&'a Census>, Guards, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("first load", census(&[], &[]), None, DEFAULTS, vec![]),
            ("same", live.clone(), Some(&live), DEFAULTS, vec![]),
            (
                "empty",
                census(&[], &[]),
                Some(&live),
                DEFAULTS,
                vec!["empty"],
            ),
            (
                "empty allowed",
                census(&[], &[]),
                Some(&live),
                empty_ok,
                vec![],
            ),
            (
                "live empty",
                census(&[], &[]),
                Some(&nothing),
                DEFAULTS,
                vec![],
            ),
            (
                "50% fewer is allowed",
                census(&[("Person", 500), ("Company", 50)], &[("KNOWS", 1000)]),
                Some(&live),
                DEFAULTS,
                vec![],
            ),
            (
                "one label 60% fewer",
                census(&[("Person", 1000), ("Company", 20)], &[("KNOWS", 2000)]),
                Some(&live),
                DEFAULTS,
                vec!["shrink"],
            ),
            (
                "a label gone",
                census(&[("Person", 1000)], &[("KNOWS", 2000)]),
                Some(&live),
                DEFAULTS,
                vec!["shrink"],
            ),
            (
                "growth off by default",
                census(&[("Person", 9000), ("Company", 50)], &[("KNOWS", 2000)]),
                Some(&live),
                DEFAULTS,
                vec![],
            ),
            (
                "growth over 100%: total and label",
                census(&[("Person", 3000), ("Company", 50)], &[("KNOWS", 2000)]),
                Some(&live),
                growth,
                vec!["growth", "growth"],
            ),
            (
                "a new label is not growth",
                census(
                    &[("Person", 1000), ("Company", 50), ("Order", 10)],
                    &[("KNOWS", 2000)],
                ),
                Some(&live),
                growth,
                vec![],
            ),
        ];
        for (name, new, live, g, want) in cases {
            assert_eq!(codes(&guard(&new, live, &g)), want, "{name}");
        }
    }

    #[test]
    fn a_shrink_names_the_label_and_both_counts() {
        let live = census(&[("Person", 1000)], &[]);
        let new = census(&[("Person", 400)], &[]);
        let holds = guard(&new, Some(&live), &DEFAULTS);
        assert_eq!(codes(&holds), vec!["shrink", "shrink"]);
        assert_eq!(
            holds[1].message,
            "label Person: 400 in the snapshot, 1000 live (-60.0%); max_shrink_percent is 50"
        );
        assert!(holds[0]
            .message
            .starts_with("nodes: 400 in the snapshot, 1000 live"));
    }

    #[test]
    fn check_verdicts() {
        let ok = [Scalar::Bool(true), Scalar::Int(3), Scalar::Float(0.5)];
        for v in ok {
            assert_eq!(check_verdict("c", Ok(v.clone())), None, "{v:?}");
        }
        let held = [
            (Scalar::Bool(false), "check \"c\" failed: it returned false"),
            (Scalar::Int(0), "check \"c\" failed: it returned 0"),
            (Scalar::Null, "check \"c\" failed: it returned null"),
            (
                Scalar::Other("'x'".into()),
                "check \"c\" failed: it returned 'x', not one boolean or number",
            ),
        ];
        for (v, msg) in held {
            let h = check_verdict("c", Ok(v)).unwrap();
            assert_eq!((h.code.as_str(), h.message.as_str()), ("check", msg));
        }
        let h = check_verdict("c", Err("timed out after 1 s".into())).unwrap();
        assert_eq!(h.message, "check \"c\" could not run: timed out after 1 s");
    }

    #[test]
    fn diff_names_each_changed_count() {
        let live = census(&[("Person", 1000), ("Company", 50)], &[("KNOWS", 2000)]);
        let new = census(&[("Person", 400), ("Order", 5)], &[("KNOWS", 2000)]);
        assert_eq!(
            diff(&new, Some(&live)),
            vec![
                "nodes 1050 → 405 (-61.4%)",
                "label Company 50 → 0 (-100.0%)",
                "label Order 0 → 5 (new)",
                "label Person 1000 → 400 (-60.0%)",
            ]
        );
        assert!(diff(&live, Some(&live)).is_empty());
    }
}
