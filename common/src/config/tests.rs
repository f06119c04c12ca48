//! The configuration's tests: defaults, layering, validation, secrets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::*;

#[test]
fn defaults_are_valid_and_keep_seed_values() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.scan_interval, 30);
    assert_eq!(c.keep_databases, 2);
    // The seed's 2, 4, 8 s are the ladder's first steps, not its whole budget.
    assert_eq!(c.retry_delays()[..3], [2, 4, 8].map(Duration::from_secs));
    assert_eq!(
        c.retry_delays(),
        [2, 4, 8, 16, 32, 64, 128, 256].map(Duration::from_secs)
    );
    assert_eq!(c.connect_timeout(), Duration::from_secs(10));
}

#[test]
fn the_retry_ladder_is_capped_by_retry_max_delay() {
    let c = Config {
        max_retries: 12,
        retry_max_delay: 100,
        ..Config::default()
    };
    c.validate().unwrap();
    let d = c.retry_delays();
    assert_eq!(d.len(), 12);
    assert_eq!(d[5], Duration::from_secs(64));
    assert!(d[6..].iter().all(|x| *x == Duration::from_secs(100)));
}

#[test]
fn invalid_values_name_key_value_and_allowed_range() {
    let c = Config {
        workers: 0,
        heap_threshold_percent: 150,
        amqp_url: ServiceUrl::new("http://u:hunter2@h"),
        ..Config::default()
    };
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("workers = 0: 1 to 64"), "{msg}");
    assert!(
        msg.contains("heap_threshold_percent = 150: 1 to 100"),
        "{msg}"
    );
    assert!(msg.contains("amqp_url = http://u:***@h"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn graph_url_scheme_must_match_kind() {
    let c = Config {
        graph_kind: GraphKind::Neo4j,
        ..Config::default()
    };
    assert!(c.validate().unwrap_err().to_string().contains("graph_url"));
}

#[test]
fn secrets_never_print() {
    let c = Config {
        graph_password: Secret::new("s3cret-pw"),
        redis_url: ServiceUrl::new("redis://:p4ss@127.0.0.1:6379/0"),
        ..Config::default()
    };
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cret-pw") && !shown.contains("p4ss"),
        "{shown}"
    );
    assert!(shown.contains("redis://:***@127.0.0.1:6379/0"), "{shown}");
}

/// Passwords no output may show, whatever they hold.
pub const HOSTILE_PASSWORDS: [&str; 14] = [
    "s3cr#t-pw",
    "pa/ss-word",
    "pa?ss=word",
    "p@ss@word",
    "pa:ss:word",
    "1234/5678",
    "9999#x",
    "#leading",
    "trailing@",
    "a/b?c#d@e:f",
    "%zz-not-encoded",
    "sp ace",
    "uni\u{e9}code-\u{1f511}",
    "p%40ss%23encoded",
];

#[test]
fn no_password_survives_redaction() {
    for pw in HOSTILE_PASSWORDS {
        for template in [
            "amqp://guest:{pw}@rabbit.example:5672/%2f",
            "amqps://guest:{pw}@rabbit.example/vhost",
            "redis://:{pw}@127.0.0.1:6379/0",
            "rediss://default:{pw}@redis.example:6380",
            "neo4j://neo4j:{pw}@graph.example:7687",
            "bolt://u:{pw}@h",
            "redis://:{pw}@",
            "u:{pw}@h:5672",
        ] {
            let raw = template.replace("{pw}", pw);
            let shown = redact_url(&raw);
            // The password, and each piece of it between reserved
            // characters that is long enough to mean something.
            let pieces: Vec<&str> = pw
                .split(['#', '/', '?', '@', ':', '%', ' ', '='])
                .filter(|p| p.len() >= 4)
                .collect();
            assert!(!shown.contains(pw), "{raw} shown as {shown}");
            for piece in pieces {
                assert!(!shown.contains(piece), "{raw} shown as {shown} ({piece})");
            }
        }
    }
}

#[test]
fn a_url_with_unencoded_reserved_characters_is_refused_without_showing_it() {
    for pw in ["s3cr#t-pw", "pa/ss-word", "pa?ss=word", "1234/5678"] {
        let c = Config {
            amqp_url: ServiceUrl::new(format!("amqp://guest:{pw}@h:5672/%2f")),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("amqp_url"), "{err}");
        assert!(err.contains("percent-encode"), "{err}");
        assert!(!err.contains(pw), "{err}");
    }
    let ok = Config {
        amqp_url: ServiceUrl::new("amqp://guest:s3cr%23t@h:5672/%2f"),
        ..Config::default()
    };
    ok.validate().unwrap();
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn type_errors_name_the_key_the_value_and_what_is_allowed() {
    figment::Jail::expect_with(|jail| {
        let none = BTreeMap::<String, String>::new();
        // The deserializer stops at the first bad value: one file each.
        for (text, want) in [
            (
                "workers = \"four\"",
                "workers = string \"four\": a whole number from 0 to 65535 (from TOML file",
            ),
            (
                "skip_superseded = \"yes\"",
                "skip_superseded = string \"yes\": true or false",
            ),
            ("amqp_url = [4242]", "amqp_url = ***: "),
        ] {
            jail.create_file("c.toml", text)?;
            let err = Config::load(Some(Path::new("c.toml")), &none)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(!err.contains("default."), "{err}");
            assert!(!err.contains("4242"), "{err}");
        }
        jail.set_env("SNAPSWITCH_KEEP_DATABASES", "-3");
        jail.create_file("d.toml", "")?;
        let err = Config::load(Some(Path::new("d.toml")), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep_databases = "), "{err}");
        assert!(err.contains("environment variable"), "{err}");
        Ok(())
    });
}

#[test]
fn redact_url_masks_only_the_password() {
    assert_eq!(
        redact_url("amqp://guest:guest@h:5672/%2f"),
        "amqp://guest:***@h:5672/%2f"
    );
    assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
    assert_eq!(redact_url("bolt://u@h"), "bolt://u@h");
    // An `@` after the authority: where the password ends is not sure.
    assert_eq!(redact_url("amqp://u:p@ss@h/x@y"), "amqp://***@y");
    assert_eq!(redact_url("amqp://u:p@ss@h/x"), "amqp://u:***@h/x");
    // A scheme-less mistake still hides the password.
    assert_eq!(redact_url("guest:hunter2@h:5672"), "***@h:5672");
    assert_eq!(redact_url("localhost:6379"), "localhost:6379");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn file_then_env_then_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "workers = 3\nkeep_databases = 4\nscan_interval = 7\n",
    )
    .unwrap();
    #[derive(Serialize)]
    struct Flags {
        keep_databases: usize,
    }
    figment::Jail::expect_with(|jail| {
        jail.set_env("SNAPSWITCH_WORKERS", "5");
        jail.set_env("SNAPSWITCH_TEST_NEO4J_URL", "bolt://x");
        jail.set_env("SNAPSWITCH_TOOLS", "/opt/tools");
        jail.set_env("SNAPSWITCH_GRAPH_PASSWORD", "12345");
        jail.set_env("SNAPSWITCH_WOKERS", "2");
        let c = Config::load(Some(&path), Flags { keep_databases: 9 }).unwrap();
        assert_eq!((c.workers, c.keep_databases, c.scan_interval), (5, 9, 7));
        assert_eq!(c.graph_password.expose(), "12345");
        assert_eq!(unknown_env_vars(), ["SNAPSWITCH_WOKERS"]);
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn targets_come_from_tables_and_from_nested_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[targets.east]\ngraph_url = \"redis://east:6379/\"\nmax_concurrent_loads = 2\n\n[customer_targets]\nacme = \"east\"\n",
    )
    .unwrap();
    #[derive(Serialize)]
    struct NoFlags {}
    figment::Jail::expect_with(|jail| {
        jail.set_env("SNAPSWITCH_TARGETS__EAST__MAX_CONCURRENT_LOADS", "3");
        jail.set_env("SNAPSWITCH_TARGETS__WEST__GRAPH_URL", "redis://west:6379/");
        jail.set_env("SNAPSWITCH_TARGETS__WEST__GRAPH_PASSWORD", "12345");
        jail.set_env("SNAPSWITCH_CUSTOMER_TARGETS__GLOBEX", "west");
        jail.set_env("SNAPSWITCH_DEFAULT_TARGET", "east");
        let c = Config::load(Some(&path), NoFlags {}).unwrap();
        assert_eq!(c.targets["east"].max_concurrent_loads, Some(3));
        assert_eq!(
            c.targets["east"].graph_url,
            Some(ServiceUrl::new("redis://east:6379/"))
        );
        assert_eq!(
            c.targets["west"]
                .graph_password
                .as_ref()
                .map(Secret::expose),
            Some("12345")
        );
        assert_eq!(c.customer_targets["acme"], "east");
        assert_eq!(c.customer_targets["globex"], "west");
        assert_eq!(c.default_target, "east");
        assert!(unknown_env_vars().is_empty(), "{:?}", unknown_env_vars());
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        // A whole map in one variable: customer names with '-' too.
        jail.set_env(
            "SNAPSWITCH_CUSTOMER_TARGETS",
            "{big-co = east, acme = default}",
        );
        let c = Config::load(Some(&path), NoFlags {}).unwrap();
        assert_eq!(c.customer_targets["big-co"], "east");
        assert_eq!(c.customer_targets["acme"], "default");
        jail.set_env("SNAPSWITCH_TARGETS__EAST__GRAPH_URLL", "redis://x:1/");
        let err = Config::load(Some(&path), NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("graph_urll"), "{err}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn unknown_file_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "wokers = 3\n").unwrap();
    #[derive(Serialize)]
    struct NoFlags {}
    // In a Jail: other tests set SNAPSWITCH_* variables in theirs.
    figment::Jail::expect_with(|_| {
        let err = Config::load(Some(&path), NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("wokers"), "{err}");
        Ok(())
    });
}

// --- security: secrets from files, URL and TLS checks (security helper) ---

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn secrets_come_from_files_named_in_env_or_toml() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-file-pw\n").unwrap();
    let amqp = dir.path().join("amqp");
    std::fs::write(&amqp, "amqp://u:url-pw@127.0.0.1:5672/%2f\r\n").unwrap();
    let redis = dir.path().join("redis");
    std::fs::write(&redis, "redis://:redis-pw@127.0.0.1:6379/").unwrap();
    let toml = dir.path().join("c.toml");
    std::fs::write(&toml, format!("redis_url = {{ file = {:?} }}\n", redis)).unwrap();
    #[derive(Serialize)]
    struct NoFlags {}
    figment::Jail::expect_with(|jail| {
        jail.set_env("SNAPSWITCH_GRAPH_PASSWORD_FILE", pw.display());
        jail.set_env("SNAPSWITCH_AMQP_URL_FILE", amqp.display());
        let c = Config::load(Some(&toml), NoFlags {}).unwrap();
        assert_eq!(c.graph_password.expose(), "from-file-pw");
        assert_eq!(c.amqp_url.expose(), "amqp://u:url-pw@127.0.0.1:5672/%2f");
        assert_eq!(c.redis_url.expose(), "redis://:redis-pw@127.0.0.1:6379/");
        assert!(unknown_env_vars().is_empty(), "{:?}", unknown_env_vars());
        let shown = format!("{c:?}");
        for secret in ["from-file-pw", "url-pw", "redis-pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // Both forms at once is ambiguous.
        jail.set_env("SNAPSWITCH_GRAPH_PASSWORD", "direct");
        let err = Config::load(Some(&toml), NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SNAPSWITCH_GRAPH_PASSWORD") && err.contains("not both"),
            "{err}"
        );
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "SNAPSWITCH_GRAPH_PASSWORD_FILE",
            dir.path().join("nope").display(),
        );
        let err = Config::load(None, NoFlags {}).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.to_lowercase().contains("graph_password"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn secret_files_are_bounded_and_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    assert!(read_secret_file(&empty).unwrap_err().contains("is empty"));
    let big = dir.path().join("big");
    std::fs::write(&big, "x".repeat(70_000)).unwrap();
    assert!(read_secret_file(&big).unwrap_err().contains("larger than"));
    let binary = dir.path().join("bin");
    std::fs::write(&binary, [0xff, 0xfe, b'p', b'w']).unwrap();
    let err = read_secret_file(&binary).unwrap_err();
    assert!(err.contains("not UTF-8") && !err.contains("pw"), "{err}");
    assert!(read_secret_file(dir.path())
        .unwrap_err()
        .contains("not a file"));
}

#[test]
fn urls_need_a_host_and_ca_files_need_tls_urls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let c = Config {
        amqp_url: ServiceUrl::new("amqp://"),
        redis_url: ServiceUrl::new("redis://:pw-in-url@"),
        graph_url: ServiceUrl::new("redis://host name:1/"),
        redis_ca_file: Some(ca.clone()),
        amqp_ca_file: Some(dir.path().join("missing.pem")),
        graph_kind: GraphKind::Falkordb,
        ..Config::default()
    };
    let msg = c.validate().unwrap_err().to_string();
    for want in [
        "amqp_url = amqp://: a URL with a host",
        // A URL that does not parse is not shown (it may hold a password).
        "redis_url = redis://*** (not a valid URL): a URL with a host",
        "graph_url = redis://*** (not a valid URL): a URL with a host",
        "redis_ca_file",
        "set only with a TLS URL",
        "missing.pem: a readable PEM file",
    ] {
        assert!(msg.contains(want), "{want}: {msg}");
    }
    assert!(!msg.contains("pw-in-url"), "{msg}");
    let ok = Config {
        redis_url: ServiceUrl::new("rediss://:pw@127.0.0.1:6390/"),
        redis_ca_file: Some(ca),
        ..Config::default()
    };
    ok.validate().unwrap();
    let neo = Config {
        graph_kind: GraphKind::Neo4j,
        graph_url: ServiceUrl::new("neo4j+s://db.example:7687"),
        graph_user: String::new(),
        ..Config::default()
    };
    assert!(neo
        .validate()
        .unwrap_err()
        .to_string()
        .contains("graph_user"));
}
