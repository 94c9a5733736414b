//! Dataset schemas: each dataset's JSON Schema versions compiled once at start-up and checked
//! against its compatibility mode ([`compat`]), event validation that reports where and which
//! rule failed, and partition-key extraction by JSON pointer.
//!
//! This crate decides whether an event is acceptable and what its key is. It does not produce,
//! dead-letter or answer requests: the gateway does that with what this crate returns.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use streamlake_config::{Config, KeySpec};
use streamlake_core::{DatasetId, TenantId};

pub mod compat;
pub mod doc;

pub use doc::{Doc, DocJson};

/// Why an event was refused (defined in core, with every stage's violations).
pub use streamlake_core::Violation;

/// A dataset's schemas that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema that could not be read or compiled.
    #[error(
        "schema {version} of {tenant}/{dataset} ({file}) is not a valid JSON Schema: {reason}"
    )]
    Invalid {
        /// Tenant.
        tenant: TenantId,
        /// Dataset.
        dataset: DatasetId,
        /// The version's name.
        version: String,
        /// Schema file.
        file: String,
        /// What the compiler said.
        reason: String,
    },
    /// Two versions that break the dataset's compatibility mode.
    #[error("tenants.{tenant}.datasets.{dataset}: compatibility {mode}: {incompatibility}")]
    Incompatible {
        /// Tenant.
        tenant: TenantId,
        /// Dataset.
        dataset: DatasetId,
        /// The mode configured.
        mode: &'static str,
        /// The versions and the changes.
        incompatibility: compat::Incompatibility,
    },
}

/// A `Schema-Version` a dataset does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dataset {dataset} has no schema version \"{version}\"; its versions are {known}")]
pub struct UnknownVersion {
    /// The dataset.
    pub dataset: String,
    /// The version asked for.
    pub version: String,
    /// The dataset's versions, oldest first, comma-separated.
    pub known: String,
}

/// Whether `schema` compiles as a JSON Schema; what is wrong with it if not.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A dataset's compiled schema, version and key policy.
pub struct DatasetSchema {
    validator: jsonschema::Validator<DocJson>,
    version: String,
    key: KeySpec,
    key_warning: Option<String>,
}

impl std::fmt::Debug for DatasetSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetSchema")
            .field("version", &self.version)
            .field("key", &self.key)
            .finish()
    }
}

impl DatasetSchema {
    /// Compiles `schema` for a dataset keyed by `key`.
    pub fn compile(schema: &Value, version: &str, key: KeySpec) -> Result<Self, String> {
        let validator = jsonschema::options_for::<DocJson>()
            .build(schema)
            .map_err(|e| e.to_string())?;
        let key_warning = key_policy_warning(schema, &key);
        Ok(Self {
            validator,
            version: version.to_owned(),
            key,
            key_warning,
        })
    }

    /// The version's name.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Why the configured key cannot spread load, if it cannot.
    pub fn key_warning(&self) -> Option<&str> {
        self.key_warning.as_deref()
    }

    /// Validates `event` and extracts its key. The first schema violation wins; the reason says
    /// how many there were in all.
    pub fn check(&self, event: &Doc<'_>) -> Result<String, Violation> {
        // The common case, a valid event, skips collecting error details.
        if self.validator.is_valid(event) {
            return self.key_of(event);
        }
        let mut errors = self.validator.iter_errors(event);
        if let Some(first) = errors.next() {
            let more = errors.count();
            return Err(violation_of(&first, more));
        }
        self.key_of(event)
    }

    /// The partition key: the pointed-to values, joined with `|` for a composite key.
    pub fn key_of(&self, event: &Doc<'_>) -> Result<String, Violation> {
        let mut key = String::new();
        for (i, pointer) in self.key.pointers().iter().enumerate() {
            if i > 0 {
                key.push('|');
            }
            match event.pointer(pointer) {
                None | Some(Doc::Null) => {
                    return Err(Violation {
                        reason: format!("the key field {pointer} is missing or null"),
                        path: pointer.to_owned(),
                        rule: "key".to_owned(),
                    })
                }
                Some(Doc::String(s)) => key.push_str(s),
                Some(Doc::Number(n)) => match n.as_f64() {
                    // 107 and 107.0 are one key (and one partition).
                    Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        let _ = write!(key, "{}", f as i64);
                    }
                    _ => {
                        let _ = write!(key, "{n}");
                    }
                },
                Some(Doc::Bool(b)) => {
                    let _ = write!(key, "{b}");
                }
                Some(_) => {
                    return Err(Violation {
                        reason: format!(
                            "the key field {pointer} must be a string, number or boolean, not an object or array"
                        ),
                        path: pointer.to_owned(),
                        rule: "key".to_owned(),
                    })
                }
            }
        }
        Ok(key)
    }
}

/// Longest violation reason kept: a reason quotes the failing value, and an answer, a log line
/// and a dead letter's header should not carry a large one.
const MAX_REASON_CHARS: usize = 300;

fn violation_of(e: &jsonschema::ValidationError<'_>, more: usize) -> Violation {
    let schema_path = e.schema_path().as_str();
    let rule = schema_path
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("schema")
        .to_owned();
    let mut path = e.instance_path().as_str().to_owned();
    if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
        if let Some(name) = property.as_str() {
            path = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
        }
    }
    let mut reason = e.to_string();
    if reason.len() > MAX_REASON_CHARS {
        // The message quotes the failing value, which can be as large as the event.
        let cut = reason
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|i| *i <= MAX_REASON_CHARS)
            .last()
            .unwrap_or(0);
        let total = reason.len();
        reason.truncate(cut);
        reason.push_str(&format!("… ({total} bytes, cut)"));
    }
    if more > 0 {
        reason.push_str(&format!(
            " (and {more} more violation{})",
            if more == 1 { "" } else { "s" }
        ));
    }
    Violation { reason, path, rule }
}

/// A key that is `tenant_id`, or a field the schema pins to one value, sends every event of the
/// dataset to one partition.
fn key_policy_warning(schema: &Value, key: &KeySpec) -> Option<String> {
    let pointers = key.pointers();
    let all_constant = pointers.iter().all(|p| {
        let last = p.rsplit('/').next().unwrap_or_default();
        if last == "tenant_id" || last == "tenant" {
            return true;
        }
        // Walk the schema's properties along the pointer.
        let mut node = schema;
        for segment in p.split('/').skip(1) {
            match node.get("properties").and_then(|props| props.get(segment)) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.get("const").is_some()
            || node
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|e| e.len() <= 1)
    });
    all_constant.then(|| {
        format!(
            "key {} is constant for every event: all of the dataset's events go to one partition, so consumers cannot share the load; key by an entity id such as a sensor or location",
            pointers.join(" + ")
        )
    })
}

/// A dataset's schema versions, oldest first.
#[derive(Debug)]
pub struct DatasetSchemas {
    dataset: DatasetId,
    versions: Vec<DatasetSchema>,
}

impl DatasetSchemas {
    /// The newest version: the one for events that name none.
    pub fn newest(&self) -> &DatasetSchema {
        self.versions
            .last()
            .expect("a dataset has at least one schema version")
    }

    /// The version named `version`.
    pub fn version(&self, version: &str) -> Result<&DatasetSchema, UnknownVersion> {
        self.versions
            .iter()
            .find(|s| s.version == version)
            .ok_or_else(|| UnknownVersion {
                dataset: self.dataset.to_string(),
                version: version.to_owned(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// The versions' names, oldest first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.versions.iter().map(|s| s.version.as_str())
    }
}

/// Every dataset's compiled schema versions, by tenant and dataset.
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    schemas: BTreeMap<(TenantId, DatasetId), DatasetSchemas>,
}

impl SchemaRegistry {
    /// Compiles every dataset's schema versions and checks them against the dataset's
    /// compatibility mode; reports every schema that does not compile and every pair of versions
    /// that breaks the mode.
    pub fn from_config(config: &Config) -> Result<Self, Vec<SchemaError>> {
        let mut schemas = BTreeMap::new();
        let mut errors = Vec::new();
        for tenant in config.tenants.values() {
            for ds in tenant.datasets.values() {
                let mut versions = Vec::new();
                let mut documents = Vec::new();
                for v in &ds.schemas {
                    let compiled = std::fs::read(&v.path)
                        .map_err(|e| e.to_string())
                        .and_then(|b| {
                            serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string())
                        })
                        .and_then(|doc| {
                            let s = DatasetSchema::compile(&doc, &v.version, ds.key.clone())?;
                            Ok((doc, s))
                        });
                    match compiled {
                        Ok((doc, s)) => {
                            documents.push((v.version.as_str(), doc));
                            versions.push(s);
                        }
                        Err(reason) => errors.push(SchemaError::Invalid {
                            tenant: tenant.id.clone(),
                            dataset: ds.id.clone(),
                            version: v.version.clone(),
                            file: v.path.display().to_string(),
                            reason,
                        }),
                    }
                }
                if versions.len() != ds.schemas.len() {
                    continue;
                }
                let docs: Vec<(&str, &Value)> = documents.iter().map(|(n, d)| (*n, d)).collect();
                for incompatibility in compat::check_versions(ds.compatibility, &docs) {
                    errors.push(SchemaError::Incompatible {
                        tenant: tenant.id.clone(),
                        dataset: ds.id.clone(),
                        mode: ds.compatibility.name(),
                        incompatibility,
                    });
                }
                schemas.insert(
                    (tenant.id.clone(), ds.id.clone()),
                    DatasetSchemas {
                        dataset: ds.id.clone(),
                        versions,
                    },
                );
            }
        }
        if errors.is_empty() {
            Ok(Self { schemas })
        } else {
            Err(errors)
        }
    }

    /// The schema versions of a tenant's dataset.
    pub fn get(&self, tenant: &TenantId, dataset: &DatasetId) -> Option<&DatasetSchemas> {
        self.schemas.get(&(tenant.clone(), dataset.clone()))
    }

    /// Every dataset with its schema versions.
    pub fn iter(&self) -> impl Iterator<Item = (&(TenantId, DatasetId), &DatasetSchemas)> {
        self.schemas.iter()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `check` and `key_of` of a value, parsed from its JSON text as ingestion parses events.
    trait OfValue {
        fn check_value(&self, event: &Value) -> Result<String, Violation>;
        fn key_of_value(&self, event: &Value) -> Result<String, Violation>;
    }

    impl OfValue for DatasetSchema {
        fn check_value(&self, event: &Value) -> Result<String, Violation> {
            self.check(&Doc::parse(event.to_string().as_bytes()).unwrap())
        }

        fn key_of_value(&self, event: &Value) -> Result<String, Violation> {
            self.key_of(&Doc::parse(event.to_string().as_bytes()).unwrap())
        }
    }

    fn schema() -> DatasetSchema {
        DatasetSchema::compile(
            &json!({
                "type": "object",
                "required": ["sensor", "value"],
                "properties": {
                    "tenant_id": {"const": "a"},
                    "sensor": {"type": "object", "properties": {"id": {"type": "integer"}}},
                    "value": {"type": "number", "minimum": 0}
                }
            }),
            "3",
            KeySpec::Pointer("/sensor/id".into()),
        )
        .unwrap()
    }

    #[test]
    fn a_valid_event_gives_its_key() {
        assert_eq!(
            schema().check_value(&json!({"sensor": {"id": 107}, "value": 1.5})),
            Ok("107".into())
        );
    }

    #[test]
    fn a_whole_number_is_one_key_however_it_is_written() {
        let s = DatasetSchema::compile(&json!({}), "1", KeySpec::Pointer("/id".into())).unwrap();
        for id in [json!(107), json!(107.0), json!(1.07e2)] {
            assert_eq!(
                s.key_of_value(&json!({ "id": id })),
                Ok("107".into()),
                "{id}"
            );
        }
        assert_eq!(s.key_of_value(&json!({"id": 107.5})), Ok("107.5".into()));
        assert_eq!(s.key_of_value(&json!({"id": -3.0})), Ok("-3".into()));
    }

    #[test]
    fn a_wrong_type_names_the_field_and_the_keyword() {
        let v = schema()
            .check_value(&json!({"sensor": {"id": 1}, "value": "high"}))
            .unwrap_err();
        assert_eq!((v.path.as_str(), v.rule.as_str()), ("/value", "type"));
        assert!(v.reason.contains("\"high\""), "{v:?}");
    }

    #[test]
    fn a_missing_required_field_points_at_the_field() {
        let v = schema()
            .check_value(&json!({"sensor": {"id": 1}}))
            .unwrap_err();
        assert_eq!((v.path.as_str(), v.rule.as_str()), ("/value", "required"));
    }

    #[test]
    fn a_range_violation_names_minimum() {
        let v = schema()
            .check_value(&json!({"sensor": {"id": 1}, "value": -2}))
            .unwrap_err();
        assert_eq!((v.path.as_str(), v.rule.as_str()), ("/value", "minimum"));
    }

    #[test]
    fn several_violations_are_counted_in_the_reason() {
        let v = schema()
            .check_value(&json!({"sensor": {"id": "x"}, "value": "y"}))
            .unwrap_err();
        assert!(v.reason.contains("and 1 more violation"), "{v:?}");
    }

    #[test]
    fn required_fields_are_enforced_beside_a_schema_for_additional_properties() {
        // jsonschema 0.41 skipped `required` of exactly two names in this shape.
        let s = DatasetSchema::compile(
            &json!({
                "type": "object",
                "properties": {"a": {}, "c": {}},
                "additionalProperties": {"type": "number"},
                "required": ["a", "c"]
            }),
            "1",
            KeySpec::Pointer("/a".into()),
        )
        .unwrap();
        let v = s.check_value(&json!({"a": 1})).unwrap_err();
        assert_eq!((v.path.as_str(), v.rule.as_str()), ("/c", "required"));
    }

    #[test]
    fn a_missing_key_field_is_a_violation() {
        let v = schema()
            .check_value(&json!({"sensor": {}, "value": 1}))
            .unwrap_err();
        assert_eq!((v.path.as_str(), v.rule.as_str()), ("/sensor/id", "key"));
    }

    #[test]
    fn an_object_key_is_a_violation() {
        let s = DatasetSchema::compile(&json!({}), "1", KeySpec::Pointer("/k".into())).unwrap();
        assert_eq!(
            s.check_value(&json!({"k": {"a": 1}})).unwrap_err().rule,
            "key"
        );
    }

    #[test]
    fn composite_keys_join_their_parts() {
        let s = DatasetSchema::compile(
            &json!({}),
            "1",
            KeySpec::Composite(vec!["/country".into(), "/sensor_id".into()]),
        )
        .unwrap();
        assert_eq!(
            s.check_value(&json!({"country": "DE", "sensor_id": 7})),
            Ok("DE|7".into())
        );
    }

    #[test]
    fn constant_keys_are_warned_about() {
        let by_tenant =
            DatasetSchema::compile(&json!({}), "1", KeySpec::Pointer("/tenant_id".into())).unwrap();
        assert!(by_tenant.key_warning().is_some());
        let by_const = DatasetSchema::compile(
            &json!({"properties": {"source": {"const": "x"}}}),
            "1",
            KeySpec::Pointer("/source".into()),
        )
        .unwrap();
        assert!(by_const.key_warning().is_some());
        assert!(schema().key_warning().is_none());
    }
}
