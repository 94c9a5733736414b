//! Each processing step kind checks its own list when the configuration is loaded with
//! [`STEPS`]; its problems come with every other one, named by their full key.

use streamlake_config::ConfigErrors;
use streamlake_pipeline::STEPS;

fn errors_of(processing: &str) -> ConfigErrors {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    let toml = format!(
        "[tenants.acme.datasets.orders]\nschema = \"schema.json\"\nkey = \"/id\"\nprocessing = {processing}\n"
    );
    streamlake_config::load_str(&toml, dir.path(), &[&STEPS]).expect_err("rejected")
}

#[test]
fn every_step_kind_reports_its_own_mistakes_by_entry() {
    let errors = errors_of(
        r#"{ rules = [{ field = "/amount" }, { field = "amount", min = 5.0, max = 1.0 }], derive = [{ target = "/level", from = "/amount", bands = [{ below = 10.0, value = "a" }, { below = 5.0, value = "b" }], otherwise = "c" }], normalize = [{ field = "/t", convert = "celsius" }], enrich = [] }"#,
    );
    let at = "tenants.acme.datasets.orders.processing";
    for (key, problem) in [
        ("rules[0]", "at least one of min, max"),
        ("rules[1].field", "write it as \"/amount\""),
        ("rules[1]", "min (5) is greater than max (1)"),
        ("derive[0].bands", "ascending"),
        ("normalize[0].convert", "unknown variant `celsius`"),
        ("enrich", "a step kind: normalize, rules, derive"),
    ] {
        assert!(
            errors.mentions(&format!("{at}.{key}"), problem),
            "{key}: {problem}\n{errors}"
        );
    }
    assert_eq!(errors.0.len(), 6, "{errors}");
}

#[test]
fn the_examples_load_with_every_step_checked() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for example in ["air-quality", "seed-pipeline"] {
        let path = examples.join(example).join("streamlake.toml");
        if let Err(e) = streamlake_config::load(&path, &[&STEPS]) {
            panic!("{example}: {e}");
        }
    }
}
