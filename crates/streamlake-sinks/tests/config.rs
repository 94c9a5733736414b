//! Each sink kind checks its own table when the configuration is loaded with [`SINKS`], and its
//! problems come with every other one, named by their full key.

use streamlake_config::ConfigErrors;
use streamlake_sinks::SINKS;

fn errors_of(sinks: &str) -> ConfigErrors {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    let toml = format!(
        "[tenants.acme.datasets.orders]\nschema = \"schema.json\"\nkey = \"/id\"\n\n{sinks}"
    );
    streamlake_config::load_str(&toml, dir.path(), &[&SINKS]).expect_err("rejected")
}

#[test]
fn every_kind_reports_its_own_mistakes_under_its_table() {
    let errors = errors_of(
        r#"
[sinks.pg]
datasets = ["acme/orders"]
postgres = { schema = "bad-schema" }

[sinks.lake]
datasets = ["acme/orders"]
parquet = { roll_rows = 0 }

[sinks.files]
datasets = ["acme/orders"]
csv = { path = "out.csv", rotate_every = "1d" }

[sinks.typo]
datasets = ["acme/orders"]
cvs = {}
"#,
    );
    assert!(
        errors.mentions("sinks.pg.postgres", "needs `url` or `url_env`"),
        "{errors}"
    );
    assert!(
        errors.mentions("sinks.pg.postgres.schema", "not a schema name"),
        "{errors}"
    );
    assert!(
        errors.mentions("sinks.lake.parquet.roll_rows", "at least 1"),
        "{errors}"
    );
    assert!(
        errors.mentions(
            "sinks.files.csv.rotate_every",
            "unknown field `rotate_every`, expected one of `path`"
        ),
        "{errors}"
    );
    assert!(
        errors.mentions(
            "sinks.typo.cvs",
            "unknown store kind \"cvs\"; this build has: csv"
        ),
        "{errors}"
    );
    assert_eq!(errors.0.len(), 5, "{errors}");
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key() {
    let errors = errors_of(
        r#"
[sinks.lake]
datasets = ["acme/orders"]
parquet = { roll_secs = "soon" }
"#,
    );
    assert!(
        errors.mentions(
            "sinks.lake.parquet.roll_secs",
            "invalid type: string \"soon\""
        ),
        "{errors}"
    );
}

#[test]
fn the_examples_load_with_every_kind_checked() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for example in ["air-quality", "seed-pipeline"] {
        let path = examples.join(example).join("streamlake.toml");
        if let Err(e) = streamlake_config::load(&path, &[&SINKS]) {
            panic!("{example}: {e}");
        }
    }
}
