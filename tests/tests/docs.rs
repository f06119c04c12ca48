//! Documents that must not drift from the code.

use std::path::PathBuf;

use common::config::Config;
use common::event::SnapshotEvent;
use common::targets::TargetConfig;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn configuration_doc_lists_every_key_and_no_other() {
    let doc = read("docs/configuration.md");
    for key in Config::keys() {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/configuration.md lacks a row for `{key}`"
        );
        assert!(
            doc.contains(&format!("SNAPSWITCH_{}", key.to_uppercase())),
            "docs/configuration.md lacks SNAPSWITCH_{}",
            key.to_uppercase()
        );
    }
    // Rows whose first cell is a bare `snake_case` name document a key.
    let rows: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    let keys = Config::keys();
    for row in rows {
        assert!(
            keys.iter().any(|k| k == row),
            "docs/configuration.md documents `{row}`, which is not a config key"
        );
    }
}

#[test]
fn configuration_doc_lists_every_graph_target_key_and_no_other() {
    let doc = read("docs/configuration.md");
    let keys = TargetConfig::keys();
    assert!(keys.len() > 5, "{keys:?}");
    for key in &keys {
        assert!(
            doc.contains(&format!("| `targets.<name>.{key}` |")),
            "docs/configuration.md lacks a row for `targets.<name>.{key}`"
        );
        assert!(
            doc.contains(&format!(
                "`SNAPSWITCH_TARGETS__<NAME>__{}`",
                key.to_uppercase()
            )),
            "docs/configuration.md lacks SNAPSWITCH_TARGETS__<NAME>__{}",
            key.to_uppercase()
        );
    }
    let rows: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `targets.<name>.")?.split('`').next())
        .collect();
    for row in rows {
        assert!(
            keys.iter().any(|k| k == row),
            "docs/configuration.md documents `targets.<name>.{row}`, which is not a target key"
        );
    }
}

#[test]
fn configuration_doc_example_with_targets_is_a_valid_config() {
    // The "Graph targets" example block must load and validate as written.
    let doc = read("docs/configuration.md");
    let start = doc
        .find("```toml\n# graph targets")
        .expect("docs/configuration.md has a ```toml block starting with `# graph targets`");
    let block = &doc[start + "```toml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let config: Config = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    config.validate().unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert!(!config.targets.is_empty() && !config.customer_targets.is_empty());
}

#[test]
fn event_schema_matches_the_contract() {
    let schema: serde_json::Value =
        serde_json::from_str(&read("docs/event-v1.schema.json")).unwrap();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    required.sort();
    let example = &schema["examples"][0];
    let event = SnapshotEvent::decode(&serde_json::to_vec(example).unwrap())
        .expect("the schema's example is a valid event");
    let serde_json::Value::Object(fields) = serde_json::to_value(&event).unwrap() else {
        panic!()
    };
    let mut fields: Vec<String> = fields.keys().cloned().collect();
    fields.sort();
    assert_eq!(
        required, fields,
        "schema `required` vs SnapshotEvent fields"
    );
    let mut properties: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    properties.sort();
    assert_eq!(properties, fields);
}

// --- What an operator sees (issue 15, item 5): each mismatch stays fixed ---

use std::process::Command;
use std::time::Duration;

use harness::TestEnv;

/// Runs `binary args` with `config`, stderr not a terminal; (code, stdout, stderr).
fn run_with(
    config: &std::path::Path,
    binary: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    let out = Command::new(harness::bin(binary))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SNAPSWITCH_CONFIG")
        .env_remove("SNAPSWITCH_LOG_FORMAT")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config whose Redis port is closed: commands log warnings, then fail.
fn unreachable_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("unreachable.toml");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        &path,
        format!(
            "data_root = {:?}\nredis_url = \"redis://127.0.0.1:{}/\"\nconnect_timeout = 2\n",
            dir.join("data"),
            harness::free_port()
        ),
    )
    .unwrap();
    path
}

#[test]
fn logs_have_colour_only_on_a_terminal_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = unreachable_config(dir.path());
    // Flags after the subcommand, for both binaries.
    let (code, _, text) = run_with(&config, "producer", &["history"], &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
    let (code, _, json) = run_with(
        &config,
        "producer",
        &["history", "--log-format", "json"],
        &[],
    );
    assert_eq!(code, 1, "{json}");
    let lines: Vec<&str> = json.lines().collect();
    let (last, logs) = lines.split_last().unwrap();
    assert!(
        last.starts_with("error: cannot connect to Redis at redis://127.0.0.1:"),
        "{json}"
    );
    assert!(!logs.is_empty(), "{json}");
    for line in logs {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    // The environment variable does the same.
    let (_, _, json) = run_with(
        &config,
        "producer",
        &["history"],
        &[("SNAPSWITCH_LOG_FORMAT", "json")],
    );
    assert!(
        json.lines().next().is_some_and(|l| l.starts_with('{')),
        "{json}"
    );
}

#[test]
fn global_flags_are_accepted_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let config = unreachable_config(dir.path());
    for (binary, args) in [
        (
            "worker",
            &["doctor", "--namespace", "x", "--workers", "2"][..],
        ),
        (
            "producer",
            &["status", "--namespace", "x", "--data-root", "/tmp"][..],
        ),
        (
            "producer",
            &["history", "--limit", "3", "--namespace", "x"][..],
        ),
    ] {
        // `--config` comes last (run_with): a usage error would exit 2.
        let (code, out, err) = run_with(&config, binary, args, &[]);
        assert_eq!(code, 1, "{binary} {args:?}: {out}{err}");
        assert!(!err.contains("unexpected argument"), "{err}");
    }
}

#[test]
fn every_argument_has_help_text() {
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("worker", vec![]),
        ("worker", vec!["doctor"]),
        ("producer", vec![]),
        ("producer", vec!["publish"]),
        ("producer", vec!["watch"]),
        ("producer", vec!["backfill"]),
        ("producer", vec!["generate"]),
        ("producer", vec!["rollback"]),
        ("producer", vec!["dlq"]),
        ("producer", vec!["dlq", "list"]),
        ("producer", vec!["dlq", "replay"]),
        ("producer", vec!["dlq", "purge"]),
        ("producer", vec!["cancel"]),
        ("producer", vec!["doctor"]),
        ("producer", vec!["history"]),
        ("producer", vec!["status"]),
    ];
    let mut missing = Vec::new();
    for (binary, args) in commands {
        let out = Command::new(harness::bin(binary))
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = help.lines().collect();
        let mut in_options = false;
        for (i, line) in lines.iter().enumerate() {
            if line.ends_with(':') && !line.starts_with(' ') {
                in_options = *line == "Options:" || *line == "Arguments:";
                continue;
            }
            let arg = line.trim_start();
            if !in_options
                || !(arg.starts_with('-') || arg.starts_with('<'))
                || line.starts_with("          ")
            {
                continue;
            }
            // Long help: the text is on the next line, indented further.
            let described = lines
                .get(i + 1)
                .is_some_and(|next| next.starts_with("          ") && !next.trim().is_empty());
            if !described {
                missing.push(format!("{binary} {args:?}: `{}`", arg));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "arguments without help text:\n{}",
        missing.join("\n")
    );
}

#[test]
fn config_type_errors_name_the_key_the_value_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "workers = \"four\"\n").unwrap();
    let (code, _, err) = run_with(&path, "worker", &["doctor"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("workers = string \"four\": a whole number from 0 to 65535 (from TOML file"),
        "{err}"
    );
    assert!(!err.contains("default.workers"), "{err}");
    assert_eq!(
        err.trim().lines().next().unwrap_or(""),
        "error: invalid configuration:",
        "{err}"
    );
}

#[test]
fn a_successful_doctor_prints_no_error_line() {
    let env = TestEnv::new("doctor-quiet", "").unwrap();
    for binary in ["producer", "worker"] {
        let (code, out, err) = env.run(binary, &["doctor"]).unwrap();
        assert_eq!(code, 0, "{out}{err}");
        assert!(!err.contains("ERROR"), "{binary} doctor: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_escapes_terminal_sequences_from_event_bodies() {
    use lapin::options::BasicPublishOptions;
    use lapin::types::ShortString;
    let env = TestEnv::new("dlq-escape", "").unwrap();
    // The topology, as every command declares it.
    env.producer(&["dlq", "list"]).unwrap();
    let (_con, channel) = env.amqp().await.unwrap();
    let body = b"{\"customer\":\"acme\x1b]0;owned\x07\x1b[2J\"}";
    channel
        .basic_publish(
            ShortString::from(format!("{}.dead", env.namespace)),
            ShortString::from(""),
            BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let listed = harness::wait_for("the parked message", Duration::from_secs(10), || async {
        let out = env.producer(&["dlq", "list"])?;
        Ok((!out.contains("is empty")).then_some(out))
    })
    .await
    .unwrap();
    assert!(
        !listed.contains('\u{1b}') && !listed.contains('\u{7}'),
        "{listed:?}"
    );
    assert!(listed.contains("\\u{1b}[2J"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_a_rollback_and_a_second_rollback_say_what_happened() {
    use common::snapshot::sample::{self, SampleFormat, SampleSpec};
    const BASE: u64 = 1_767_741_427;
    let mut env = TestEnv::new("rollback-docs", "keep_databases = 2").unwrap();
    env.spawn_worker("worker").unwrap();
    for (n, id) in [BASE, BASE + 60].into_iter().enumerate() {
        let dir = sample::snapshot_dir(&env.data_root(), "acme", id);
        sample::write_snapshot(&dir, &SampleSpec::with_rows(50, SampleFormat::Csv, id)).unwrap();
        env.producer(&[
            "publish",
            "--customer",
            "acme",
            "--snapshot-id",
            &id.to_string(),
        ])
        .unwrap();
        env.wait_counter("completed", n as i64 + 1, Duration::from_secs(60))
            .await;
    }
    env.producer(&["rollback", "--customer", "acme"]).unwrap();
    let status = env.producer(&["status"]).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("acme:"))
        .unwrap_or_default();
    assert!(
        line.starts_with(&format!("acme: live {BASE} (previous {})", BASE + 60)),
        "{status}"
    );
    let (code, _, err) = env
        .run("producer", &["rollback", "--customer", "acme"])
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "no database older than the live one ({BASE}) is retained"
        )),
        "{err}"
    );
    assert!(!err.contains("must be at least 2"), "{err}");
}

/// On a terminal, `backfill`'s progress bar owns it: no line per snapshot.
#[test]
fn the_backfill_progress_bar_is_not_buried_under_log_lines() {
    let env = TestEnv::new("backfill-bar", "").unwrap();
    for i in 0..12u64 {
        let dir = common::snapshot::sample::snapshot_dir(
            &env.data_root(),
            "acme",
            1_767_741_427 + i * 60,
        );
        common::snapshot::sample::write_snapshot(
            &dir,
            &common::snapshot::sample::SampleSpec::with_rows(
                10,
                common::snapshot::sample::SampleFormat::Csv,
                i,
            ),
        )
        .unwrap();
    }
    // `script` gives the command a terminal (a pty) and records it.
    let typescript = env.dir.path().join("typescript");
    let cmd = format!(
        "{} backfill --config {}",
        harness::bin("producer").display(),
        env.config_path.display()
    );
    let status = Command::new("script")
        .args(["-q", "-e", "-c", &cmd])
        .arg(&typescript)
        .stdout(std::process::Stdio::null())
        .env_remove("SNAPSWITCH_CONFIG")
        .env("RUST_LOG", "info")
        .status()
        .unwrap();
    assert!(status.success());
    let screen = std::fs::read_to_string(&typescript).unwrap();
    assert!(screen.contains("published 12"), "{screen}");
    assert!(
        screen.contains("snapshots checked"),
        "no progress bar: {screen}"
    );
    assert!(
        !screen.contains(" published "),
        "a log line per snapshot while the bar runs: {screen}"
    );
}
