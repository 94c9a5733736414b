//! Declarative mapping of a source record into a tenant's message structure: each output
//! field comes from a JSON pointer, a Sensor.Community measurement (`value = "P1"`), all
//! measurements as a map, or a constant, with an optional conversion. A failure names the
//! output field and the rule, and the record is dead-lettered.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use streamlake_config::{FieldMapping, MapConversion};
use streamlake_pipeline::json::{number, parse_any_timestamp, set_pointer};

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// The output field (as configured).
    pub field: String,
    /// `from`, `value`, `all_values` or `convert.CONVERSION`.
    pub rule: String,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mapping of {} ({}): {}",
            self.field, self.rule, self.reason
        )
    }
}

fn measurement<'r>(record: &'r Value, value_type: &str) -> Option<&'r Value> {
    record
        .get("sensordatavalues")?
        .as_array()?
        .iter()
        .find(|v| v.get("value_type").and_then(Value::as_str) == Some(value_type))?
        .get("value")
}

fn convert(value: &Value, c: MapConversion) -> Result<Value, String> {
    match c {
        MapConversion::Number => number(value)
            .map(Value::from)
            .ok_or_else(|| format!("{value} is not a number")),
        MapConversion::Integer => match number(value) {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
            _ => Err(format!("{value} is not an integer")),
        },
        MapConversion::String => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok(Value::String(value.to_string())),
            _ => Err(format!("{value} is not a scalar")),
        },
        MapConversion::EpochSeconds => {
            parse_any_timestamp(value).map(|t| Value::from(t.timestamp()))
        }
        MapConversion::Rfc3339 => parse_any_timestamp(value)
            .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
    }
}

fn conversion_name(c: MapConversion) -> &'static str {
    match c {
        MapConversion::Number => "number",
        MapConversion::Integer => "integer",
        MapConversion::String => "string",
        MapConversion::EpochSeconds => "epoch_seconds",
        MapConversion::Rfc3339 => "rfc3339",
    }
}

/// Maps `record` with `fields` (output field → mapping).
pub fn map_record(
    record: &Value,
    fields: &BTreeMap<String, FieldMapping>,
) -> Result<Value, MappingError> {
    let mut out = Value::Object(Map::new());
    for (field, m) in fields {
        let fail = |rule: &str, reason: String| MappingError {
            field: field.clone(),
            rule: rule.to_owned(),
            reason,
        };
        let (rule, found): (String, Option<Value>) = if let Some(c) = &m.constant {
            ("const".to_owned(), Some(c.clone()))
        } else if let Some(p) = &m.from {
            (format!("from {p}"), record.pointer(p).cloned())
        } else if let Some(t) = &m.value {
            (format!("value {t}"), measurement(record, t).cloned())
        } else {
            let values: Map<String, Value> = record
                .get("sensordatavalues")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|v| {
                            Some((
                                v.get("value_type")?.as_str()?.to_owned(),
                                v.get("value")?.clone(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            ("all_values".to_owned(), Some(Value::Object(values)))
        };
        let Some(value) = found.filter(|v| !v.is_null()) else {
            if m.optional {
                continue;
            }
            return Err(fail(
                &rule,
                "missing or null in the source record".to_owned(),
            ));
        };
        let value = match m.convert {
            Some(c) => convert(&value, c)
                .map_err(|why| fail(&format!("{rule}, convert {}", conversion_name(c)), why))?,
            None => value,
        };
        // A JSON pointer nests (`/meta/event_id`); a plain name is a top-level field.
        let pointer = if field.starts_with('/') {
            field.clone()
        } else {
            format!("/{}", field.replace('~', "~0").replace('/', "~1"))
        };
        set_pointer(&mut out, &pointer, value).map_err(|why| fail("place", why))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(toml: &str) -> FieldMapping {
        use figment::providers::Format as _;
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    fn record() -> Value {
        json!({"id": 28386647166_i64, "sampling_rate": null, "timestamp": "2026-02-26 22:05:03",
               "location": {"id": 49, "latitude": "48.53", "country": "DE", "indoor": 0},
               "sensor": {"id": 107, "sensor_type": {"name": "PPD42NS"}},
               "sensordatavalues": [{"value": "84.76", "value_type": "P1"},
                                    {"value": "14.30", "value_type": "P2"},
                                    {"value": "x", "value_type": "bad"}]})
    }

    #[test]
    fn each_kind_of_mapping() {
        let fields: BTreeMap<String, FieldMapping> = [
            ("tenant_id", r#"const = "tenantA""#),
            (
                "lat",
                r#"from = "/location/latitude"
convert = "number""#,
            ),
            ("/geo/location_id", r#"from = "/location/id""#),
            (
                "pm10_P1",
                r#"value = "P1"
convert = "number""#,
            ),
            (
                "/meta/ts_epoch",
                r#"from = "/timestamp"
convert = "epoch_seconds""#,
            ),
            (
                "event_time",
                r#"from = "/timestamp"
convert = "rfc3339""#,
            ),
            (
                "/meta/event_id",
                r#"from = "/id"
convert = "integer""#,
            ),
            (
                "sensor_id",
                r#"from = "/sensor/id"
convert = "string""#,
            ),
            (
                "altitude",
                r#"from = "/location/altitude"
optional = true"#,
            ),
            ("measurements", "all_values = true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), field(v)))
        .collect();
        let out = map_record(&record(), &fields).unwrap();
        assert_eq!(
            out,
            json!({"tenant_id": "tenantA", "lat": 48.53, "geo": {"location_id": 49},
                   "pm10_P1": 84.76, "meta": {"ts_epoch": 1772143503, "event_id": 28386647166_i64},
                   "event_time": "2026-02-26T22:05:03Z", "sensor_id": "107",
                   "measurements": {"P1": "84.76", "P2": "14.30", "bad": "x"}})
        );
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let fields: BTreeMap<String, FieldMapping> = [(
            "v".to_owned(),
            field("value = \"bad\"\nconvert = \"number\""),
        )]
        .into();
        let e = map_record(&record(), &fields).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mapping of v (value bad, convert number): \"x\" is not a number"
        );
        let fields: BTreeMap<String, FieldMapping> =
            [("s".to_owned(), field("from = \"/sampling_rate\""))].into();
        let e = map_record(&record(), &fields).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mapping of s (from /sampling_rate): missing or null in the source record"
        );
    }
}
