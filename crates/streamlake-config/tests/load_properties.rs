//! Properties of the configuration loader over generated input: any text is loaded or refused
//! with errors that each say where and what (never a panic), configurations assembled from real
//! and wrong keys and values are too, and a loaded configuration declares only topics Kafka
//! accepts. Cases per property: proptest's default (256), or `PROPTEST_CASES`.

use std::path::Path;

use proptest::prelude::*;
use streamlake_config::{load_str, Config, ConfigErrors};

fn load(toml: &str, dir: &Path) -> Result<Config, ConfigErrors> {
    load_str(toml, dir, &[])
}

fn schema_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    dir
}

/// Whatever the outcome, it is an answer: a configuration whose declared topics Kafka accepts,
/// or errors that each name a problem (and a key, or the file when the text is not TOML).
fn check(outcome: Result<Config, ConfigErrors>) -> Result<(), TestCaseError> {
    match outcome {
        Ok(config) => {
            for t in config.declared_topics() {
                prop_assert!(
                    streamlake_core::validate_topic_name(&t.name).is_ok(),
                    "declared topic {:?} is not a Kafka name",
                    t.name
                );
                prop_assert!(t.partitions >= 1);
            }
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty());
            for e in &errors.0 {
                prop_assert!(!e.problem.trim().is_empty(), "{e:?}");
                prop_assert!(!e.key.is_empty() || !e.origin.is_empty(), "{e:?}");
            }
        }
    }
    Ok(())
}

/// A TOML value of any kind, written as TOML.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("1.5".to_owned()),
        Just("\"schema.json\"".to_owned()),
        Just("\"/sensor_id\"".to_owned()),
        Just("\"{tenant}.{dataset}.raw\"".to_owned()),
        Just("\"{tenant}.{nope}\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        "[ -~]{0,16}".prop_map(|s| toml_string(&s)),
        "\\PC{0,8}".prop_map(|s| toml_string(&s)),
    ]
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Table headers and keys the loader knows, a few it does not, and ids of every shape.
fn line() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        Just("acme".to_owned()),
        Just("tenant-a".to_owned()),
        "[a-zA-Z0-9_.-]{1,10}",
        "\\PC{1,4}".prop_map(|s| toml_string(&s)),
    ];
    let table = prop_oneof![
        Just("[kafka]".to_owned()),
        Just("[http]".to_owned()),
        Just("[gateway]".to_owned()),
        Just("[admin]".to_owned()),
        Just("[naming]".to_owned()),
        Just("[topic_defaults]".to_owned()),
        Just("[[topics]]".to_owned()),
        Just("[nonsense]".to_owned()),
        id.clone().prop_map(|t| format!("[tenants.{t}]")),
        (id.clone(), id).prop_map(|(t, d)| format!("[tenants.{t}.datasets.{d}]")),
    ];
    let key = prop_oneof![
        Just("bootstrap_servers"),
        Just("listen"),
        Just("max_body_bytes"),
        Just("max_events_per_request"),
        Just("dev_token"),
        Just("dev_api_key"),
        Just("partitions"),
        Just("replication_factor"),
        Just("retention_ms"),
        Just("cleanup_policy"),
        Just("name"),
        Just("raw"),
        Just("dlq"),
        Just("replays"),
        Just("idempotency"),
        Just("schema"),
        Just("key"),
        Just("dlq_topic"),
        Just("raw_topic"),
        Just("data_dir"),
        Just("no_such_key"),
    ];
    prop_oneof![
        table,
        (key, value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

proptest! {
    #[test]
    fn any_text_is_loaded_or_refused_with_located_errors(text in "\\PC{0,200}") {
        let dir = schema_dir();
        check(load(&text, dir.path()))?;
    }

    #[test]
    fn configurations_of_real_and_wrong_keys_are_loaded_or_refused_with_located_errors(
        lines in prop::collection::vec(line(), 0..24),
    ) {
        let dir = schema_dir();
        check(load(&lines.join("\n"), dir.path()))?;
    }

    #[test]
    fn a_tenant_loads_exactly_when_its_ids_are_valid(
        tenant in "[a-zA-Z0-9_.-]{1,12}",
        dataset in "[a-zA-Z0-9_.-]{1,12}",
    ) {
        let dir = schema_dir();
        let toml = format!(
            "[tenants.\"{tenant}\"]\ndev_api_key = \"k\"\n[tenants.\"{tenant}\".datasets.\"{dataset}\"]\nschema = \"schema.json\"\nkey = \"/id\"\n"
        );
        let valid = streamlake_core::TenantId::new(tenant.clone()).is_ok()
            && streamlake_core::DatasetId::new(dataset.clone()).is_ok();
        match load(&toml, dir.path()) {
            Ok(config) => {
                prop_assert!(valid, "{tenant}/{dataset} loaded");
                prop_assert_eq!(config.tenants.len(), 1);
            }
            Err(errors) => {
                prop_assert!(!valid, "{tenant}/{dataset} refused: {errors}");
                prop_assert!(errors.0.iter().all(|e| e.key.starts_with(&format!("tenants.{tenant}"))), "{errors}");
            }
        }
    }
}
