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
