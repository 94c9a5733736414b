//! Loading and validation of configuration files: the examples load, and each kind of mistake
//! gets its own message naming the file, the key and the problem.

use std::path::{Path, PathBuf};

use streamlake_config::{ComponentKinds, ComponentSettings, Config, ConfigErrors, Problem};

/// Loads without component registries: stores' tables are taken as written.
fn load(path: &Path) -> Result<Config, ConfigErrors> {
    streamlake_config::load(path, &[])
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Writes `toml` as `streamlake.toml` in a fresh directory holding one valid schema file.
fn write_config(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    let path = dir.path().join("streamlake.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

fn errors_of(toml: &str) -> (ConfigErrors, PathBuf) {
    let (dir, path) = write_config(toml);
    let errors = load(&path).expect_err("configuration should be rejected");
    // Keep the directory alive until the errors were produced.
    drop(dir);
    (errors, path)
}

const VALID_TENANT: &str = r#"
[tenants.acme.datasets.orders]
schema = "schema.json"
key = "/order_id"
"#;

#[test]
fn air_quality_example_loads_with_both_reference_tenants() {
    let config = load(&examples().join("air-quality/streamlake.toml")).unwrap();
    assert!(config.uses_embedded_broker());
    let names: Vec<String> = config.tenants.keys().map(|t| t.to_string()).collect();
    assert_eq!(names, ["tenant-a", "tenant-b"]);
    let topics: Vec<String> = config
        .declared_topics()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for t in [
        "tenant-a.dlq",
        "tenant-a.air-quality.raw",
        "tenant-a.air-quality.clean",
        "tenant-b.dlq",
        "tenant-b.air-quality.raw",
        "tenant-b.air-quality.clean",
    ] {
        assert!(
            topics.contains(&t.to_owned()),
            "{t} missing from {topics:?}"
        );
    }
    let spec = config
        .declared_topics()
        .into_iter()
        .find(|t| t.name == "tenant-a.air-quality.raw")
        .unwrap();
    assert_eq!(spec.partitions, 6);
    assert_eq!(
        spec.configs.get("retention.ms").map(String::as_str),
        Some("604800000")
    );
    assert_eq!(
        spec.configs.get("compression.type").map(String::as_str),
        Some("lz4")
    );
}

#[test]
fn seed_pipeline_example_declares_the_demo_topics_with_their_settings() {
    let config = load(&examples().join("seed-pipeline/streamlake.toml")).unwrap();
    let topics = config.declared_topics();
    let find = |n: &str| {
        topics
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    for (name, partitions, retention) in [
        ("user-events", 3, "604800000"),
        ("orders", 3, "2592000000"),
        ("payments", 5, "2592000000"),
        ("notifications", 1, "86400000"),
        ("order-processing.DLQ", 3, "7776000000"),
    ] {
        let t = find(name);
        assert_eq!(t.partitions, partitions, "{name}");
        assert_eq!(t.configs["retention.ms"], retention, "{name}");
    }
    for name in ["sensor_data", "user_activity", "processed_data", "demo.dlq"] {
        find(name);
    }
    // The explicitly declared topic is not declared a second time by the dataset.
    assert_eq!(topics.iter().filter(|t| t.name == "sensor_data").count(), 1);
}

#[test]
fn unknown_key_is_named_with_file_and_path() {
    let (errors, path) = errors_of(&format!(
        "{VALID_TENANT}\n[kafka]\nbootstrap = \"x:9092\"\n"
    ));
    let e = errors
        .0
        .iter()
        .find(|e| e.key.starts_with("kafka"))
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(
        e.problem.contains("unknown field") && e.problem.contains("bootstrap"),
        "{e}"
    );
    assert_eq!(e.origin, path.display().to_string());
}

#[test]
fn unknown_top_level_section_is_reported() {
    let (errors, _) = errors_of(&format!("{VALID_TENANT}\n[kafak]\nx = 1\n"));
    assert!(errors.mentions("kafak", "unknown key"), "{errors}");
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    let (errors, _) = errors_of("[topic_defaults]\npartitions = \"three\"\n");
    let e = errors
        .0
        .iter()
        .find(|e| e.key == "topic_defaults.partitions")
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(
        e.problem.contains("invalid type") && e.problem.contains("three"),
        "{e}"
    );
}

#[test]
fn missing_schema_file_names_the_dataset_and_the_path() {
    let (errors, _) =
        errors_of("[tenants.acme.datasets.orders]\nschema = \"nope.json\"\nkey = \"/id\"\n");
    assert!(
        errors.mentions("tenants.acme.datasets.orders.schema", "cannot be read"),
        "{errors}"
    );
    assert!(errors.to_string().contains("nope.json"));
}

#[test]
fn bad_topic_name_is_rejected_with_the_offending_character() {
    let (errors, _) = errors_of("[[topics]]\nname = \"bad topic\"\n");
    assert!(
        errors.mentions("topics[0].name", "contains ' ' at position 3"),
        "{errors}"
    );
}

#[test]
fn zero_partitions_is_rejected() {
    let (errors, _) = errors_of("[[topics]]\nname = \"orders\"\npartitions = 0\n");
    assert!(
        errors.mentions("topics[0].partitions", "at least 1 partition"),
        "{errors}"
    );
}

#[test]
fn key_that_is_not_a_json_pointer_is_rejected() {
    let (errors, _) =
        errors_of("[tenants.acme.datasets.orders]\nschema = \"schema.json\"\nkey = \"order_id\"\n");
    assert!(
        errors.mentions(
            "tenants.acme.datasets.orders.key",
            "write it as \"/order_id\""
        ),
        "{errors}"
    );
}

#[test]
fn snappy_is_accepted_with_the_managed_broker_and_with_a_cluster() {
    let toml = "[topic_defaults]\ncompression = \"snappy\"\n[kafka.producer]\n\"compression.type\" = \"snappy\"\n";
    let (_dir, path) = write_config(toml);
    assert!(load(&path).is_ok());
    let (_dir, path) = write_config(&format!(
        "[kafka]\nbootstrap_servers = \"kafka:9092\"\n{toml}"
    ));
    assert!(load(&path).is_ok());
}

#[test]
fn the_managed_broker_runs_one_or_three_nodes_and_cannot_replicate_beyond_them() {
    let (errors, _) = errors_of("[broker]\nnodes = 2\nheap_mb = 64\n");
    assert!(errors.mentions("broker.nodes", "1 node, or 3"), "{errors}");
    assert!(
        errors.mentions("broker.heap_mb", "at least 128"),
        "{errors}"
    );
    let (errors, _) = errors_of("[topic_defaults]\nreplication_factor = 3\n");
    assert!(
        errors.mentions(
            "topic_defaults.replication_factor",
            "more than the managed broker's 1 node"
        ),
        "{errors}"
    );
    let (_dir, path) =
        write_config("[broker]\nnodes = 3\n[topic_defaults]\nreplication_factor = 3\n");
    assert!(load(&path).is_ok());
}

#[test]
fn every_error_is_reported_at_once() {
    let (errors, _) = errors_of(
        r#"
[topic_defaults]
partitions = 0

[[topics]]
name = "a b"

[[topics]]
name = "ok"
retention = 5

[tenants.Acme.datasets.x]
schema = "schema.json"
key = "/id"

[tenants.beta.datasets.y]
schema = "missing.json"
key = "/id"
"#,
    );
    assert!(
        errors.mentions("topic_defaults.partitions", "at least 1"),
        "{errors}"
    );
    assert!(
        errors.mentions("topics[0].name", "contains ' '"),
        "{errors}"
    );
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.key.starts_with("topics[1]") && e.problem.contains("retention")),
        "{errors}"
    );
    assert!(errors.mentions("tenants.Acme", "tenant id"), "{errors}");
    assert!(
        errors.mentions("tenants.beta.datasets.y.schema", "cannot be read"),
        "{errors}"
    );
    assert_eq!(errors.0.len(), 5, "{errors}");
}

#[test]
fn two_tenants_cannot_share_a_topic() {
    let (errors, _) = errors_of(
        r#"
[tenants.a.datasets.x]
schema = "schema.json"
key = "/id"
raw_topic = "shared"

[tenants.b.datasets.y]
schema = "schema.json"
key = "/id"
raw_topic = "shared"
"#,
    );
    assert!(
        errors.mentions("tenants.b.datasets.y.raw_topic", "another tenant"),
        "{errors}"
    );
}

#[test]
fn syntax_error_is_reported_with_the_file() {
    let (errors, path) = errors_of("[kafka\n");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert!(
        errors.to_string().contains(&path.display().to_string()),
        "{errors}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let errors = load(Path::new("/nonexistent/streamlake.toml")).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("cannot read the configuration file"),
        "{errors}"
    );
}

#[test]
fn examples_declare_their_pipelines_and_sinks() {
    let seed = load(&examples().join("seed-pipeline/streamlake.toml")).unwrap();
    assert_eq!(seed.pipelines["seed"].group, "processor-group");
    assert_eq!(seed.pipelines["seed"].datasets.len(), 2);
    let csv = &seed.sinks["csv"];
    assert_eq!(csv.group, "sink-group");
    assert_eq!(csv.store.kind, "csv");
    assert_eq!(csv.batch_max_wait, std::time::Duration::from_millis(200));
    assert_eq!(csv.store.at, "sinks.csv.csv");
    assert_eq!(
        csv.store.table["path"],
        "sinks/csv/processed_data_{data_type}.csv"
    );
    let aq = load(&examples().join("air-quality/streamlake.toml")).unwrap();
    let kinds: Vec<&str> = aq.sinks.values().map(|s| s.store.kind.as_str()).collect();
    assert_eq!(kinds, ["postgres", "parquet"], "bronze, lake");
    assert_eq!(
        aq.pipelines["air-quality"].group,
        "streamlake-process-air-quality"
    );
}

#[test]
fn pipeline_and_sink_mistakes_are_all_reported() {
    let (errors, _) = errors_of(
        r#"
[tenants.acme.datasets.orders]
schema = "schema.json"
key = "/order_id"
processing = { rules = [{ field = "/amount" }, { field = "amount", min = 5.0, max = 1.0 }], derive = [{ target = "/level", from = "/amount", bands = [{ below = 10.0, value = "a" }, { below = 5.0, value = "b" }], otherwise = "c" }] }

[pipelines.one]
datasets = ["acme/orders", "acme/nope", "orders"]

[pipelines.two]
datasets = ["acme/orders"]

[sinks.both]
datasets = ["acme/orders"]
batch_max_wait_ms = 70000
csv = {}
parquet = {}

[sinks.none]
datasets = ["acme/orders"]
batch_max_sise = 5
"#,
    );
    assert!(
        errors.mentions("pipelines.one.datasets", "unknown dataset \"acme/nope\""),
        "{errors}"
    );
    assert!(
        errors.mentions(
            "pipelines.one.datasets",
            "\"orders\" is not \"TENANT/DATASET\""
        ),
        "{errors}"
    );
    assert!(
        errors.mentions(
            "pipelines.two.datasets",
            "already processed by pipeline \"one\""
        ),
        "{errors}"
    );
    assert!(
        errors.mentions(
            "sinks.both",
            "exactly one store table, e.g. [sinks.both.csv]; found csv, parquet"
        ),
        "{errors}"
    );
    assert!(
        errors.mentions("sinks.both.batch_max_wait_ms", "must be 0 to 60000"),
        "{errors}"
    );
    assert!(
        errors.mentions("sinks.none.batch_max_sise", "unknown key"),
        "{errors}"
    );
    assert!(errors.mentions("sinks.none", "found none"), "{errors}");
}

/// A registry that knows one kind, `files`, whose `dir` must not be empty.
struct FilesOnly;

impl ComponentKinds for FilesOnly {
    fn section(&self) -> &'static str {
        "sinks"
    }

    fn check(&self, settings: &ComponentSettings) -> Vec<Problem> {
        if settings.kind != "files" {
            return vec![Problem::new(
                "",
                format!("unknown store kind \"{}\"", settings.kind),
            )];
        }
        match settings.table.get("dir").and_then(|d| d.as_str()) {
            Some("") => vec![Problem::new("dir", "must not be empty")],
            _ => Vec::new(),
        }
    }
}

#[test]
fn a_registry_checks_the_tables_of_its_section_with_every_other_error() {
    let (dir, path) = write_config(
        r#"
[tenants.acme.datasets.orders]
schema = "schema.json"
key = "order_id"

[sinks.a]
datasets = ["acme/orders"]
files = { dir = "" }

[sinks.b]
datasets = ["acme/orders"]
fils = {}
"#,
    );
    let errors = streamlake_config::load(&path, &[&FilesOnly]).unwrap_err();
    drop(dir);
    assert!(
        errors.mentions("sinks.a.files.dir", "must not be empty"),
        "{errors}"
    );
    assert!(
        errors.mentions("sinks.b.fils", "unknown store kind \"fils\""),
        "{errors}"
    );
    assert!(
        errors.mentions(
            "tenants.acme.datasets.orders.key",
            "write it as \"/order_id\""
        ),
        "{errors}"
    );
    assert_eq!(errors.0.len(), 3, "{errors}");
}

#[test]
fn column_names_are_checked() {
    let (errors, _) = errors_of(
        r#"
[tenants.acme.datasets.orders]
schema = "schema.json"
key = "/order_id"
columns = [{ name = "order id", type = "string" }, { name = "tenant", type = "string" }, { name = "x", type = "string" }, { name = "x", type = "float", pointer = "y" }]
"#,
    );
    let at = "tenants.acme.datasets.orders.columns";
    assert!(
        errors.mentions(&format!("{at}[0].name"), "is not a column name"),
        "{errors}"
    );
    assert!(
        errors.mentions(&format!("{at}[1].name"), "metadata column"),
        "{errors}"
    );
    assert!(
        errors.mentions(&format!("{at}[3].name"), "declared twice"),
        "{errors}"
    );
    assert!(
        errors.mentions(&format!("{at}[3].pointer"), "not a JSON pointer"),
        "{errors}"
    );
}

#[test]
fn an_unknown_column_type_lists_the_known_ones() {
    let (errors, _) = errors_of(
        r#"
[tenants.acme.datasets.orders]
schema = "schema.json"
key = "/order_id"
columns = [{ name = "n", type = "decimal" }]
"#,
    );
    assert!(
        errors.mentions(
            "tenants.acme.datasets.orders.columns.0.type",
            "found `decimal`, expected `one of `string`"
        ),
        "{errors}"
    );
}

#[test]
fn a_quota_is_read_and_its_mistakes_are_named() {
    let (_dir, path) = write_config(&format!(
        "{VALID_TENANT}\n[tenants.acme.quota]\nevents_per_sec = 500\nburst_secs = 2.0\n"
    ));
    let config = load(&path).unwrap();
    let quota = config.tenants.values().next().unwrap().quota.unwrap();
    assert_eq!(
        (quota.events_per_sec, quota.bytes_per_sec, quota.burst_secs),
        (Some(500), None, 2.0)
    );
    let (errors, _) = errors_of(&format!(
        "{VALID_TENANT}\n[tenants.acme.quota]\nevents_per_sec = 0\nburst_secs = -1.0\n"
    ));
    assert!(
        errors.mentions("tenants.acme.quota.events_per_sec", "at least 1"),
        "{errors}"
    );
    assert!(
        errors.mentions("tenants.acme.quota.burst_secs", "above 0"),
        "{errors}"
    );
    let (errors, _) = errors_of(&format!("{VALID_TENANT}\n[tenants.acme.quota]\n"));
    assert!(
        errors.mentions("tenants.acme.quota", "events_per_sec, bytes_per_sec"),
        "{errors}"
    );
}

#[test]
fn a_pipelines_batch_wait_and_commit_interval_are_read_and_bounded() {
    let (_dir, path) = write_config(&format!(
        "{VALID_TENANT}\n[pipelines.p]\ndatasets = [\"acme/orders\"]\nbatch_max_wait_ms = 10\ncommit_interval_ms = 20\n"
    ));
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let p = &config.pipelines["p"];
    assert_eq!(p.batch_max_wait, std::time::Duration::from_millis(10));
    assert_eq!(p.commit_interval, std::time::Duration::from_millis(20));
    let (_dir, path) = write_config(&format!(
        "{VALID_TENANT}\n[pipelines.p]\ndatasets = [\"acme/orders\"]\n"
    ));
    let defaults = load(&path).unwrap();
    assert_eq!(
        defaults.pipelines["p"].commit_interval,
        std::time::Duration::from_millis(100)
    );
    let (_dir, path) = write_config(&format!(
        "{VALID_TENANT}\n[pipelines.p]\ndatasets = [\"acme/orders\"]\nbatch_max_wait_ms = 0\ncommit_interval_ms = 0\n"
    ));
    let eager = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(eager.pipelines["p"].batch_max_wait.is_zero());
    assert!(eager.pipelines["p"].commit_interval.is_zero());
    let (errors, _) = errors_of(&format!(
        "{VALID_TENANT}\n[pipelines.p]\ndatasets = [\"acme/orders\"]\ncommit_interval_ms = 60001\n"
    ));
    assert!(
        errors.mentions("pipelines.p.commit_interval_ms", "must be 0 to 60000"),
        "{errors}"
    );
}
