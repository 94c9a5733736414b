//! The config-driven processor: per dataset, `normalize` conversions, semantic
//! `rules`, threshold `derive`s, then `data_type` and `processed_at`. Everything comes from
//! `[tenants.T.datasets.D.processing]`; see `streamlake_config::ProcessingConfig`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use streamlake_config::{
    Config, Conversion, DeriveConfig, NormalizeConfig, Pipeline, ProcessingConfig, RuleConfig,
};
use streamlake_core::{headers, Stage, Violation};
use streamlake_kafka::Record;

use crate::json::{number, parse_any_timestamp, parse_timestamp, rfc3339, set_pointer};
use crate::processor::{Outcome, Output, Processor};
use crate::runtime::original_headers;

/// One dataset's processing, ready to apply.
#[derive(Debug, Clone)]
pub struct DatasetProcessing {
    config: ProcessingConfig,
}

impl DatasetProcessing {
    /// Processing as configured.
    pub fn new(config: ProcessingConfig) -> Self {
        Self { config }
    }

    /// Applies the processing to `record` at time `now`: the clean record, or why not.
    pub fn apply(&self, mut record: Value, now: DateTime<Utc>) -> Result<Value, Violation> {
        if !record.is_object() {
            return Err(Violation::new(
                "",
                "json",
                "the record is not a JSON object",
            ));
        }
        for n in &self.config.normalize {
            normalize(&mut record, n)?;
        }
        for r in &self.config.rules {
            check(&record, r, now)?;
        }
        for d in &self.config.derive {
            derive(&mut record, d)?;
        }
        if let Some(t) = &self.config.data_type {
            set_pointer(&mut record, "/data_type", Value::String(t.clone()))
                .map_err(|e| Violation::new("/data_type", "data_type", e))?;
        }
        if let Some(field) = self.config.processed_at_field() {
            let at = format!("/{field}");
            set_pointer(&mut record, &at, Value::String(rfc3339(now)))
                .map_err(|e| Violation::new(&at, "processed_at", e))?;
        }
        Ok(record)
    }
}

fn present<'v>(record: &'v Value, pointer: &str) -> Option<&'v Value> {
    record.pointer(pointer).filter(|v| !v.is_null())
}

fn normalize(record: &mut Value, n: &NormalizeConfig) -> Result<(), Violation> {
    let rule = format!("normalize.{}", conversion_name(n.convert));
    let Some(value) = present(record, &n.field) else {
        return if n.optional {
            Ok(())
        } else {
            Err(Violation::new(
                &n.field,
                &rule,
                format!("{} is missing", n.field),
            ))
        };
    };
    let fail = |why: String| Violation::new(&n.field, &rule, format!("{}: {why}", n.field));
    let converted = match n.convert {
        Conversion::Number => {
            Value::from(number(value).ok_or_else(|| fail(format!("{value} is not a number")))?)
        }
        Conversion::Integer => {
            let f = number(value).ok_or_else(|| fail(format!("{value} is not a number")))?;
            if f.fract() != 0.0 || f.abs() > 9.0e15 {
                return Err(fail(format!("{value} is not an integer")));
            }
            Value::from(f as i64)
        }
        Conversion::String => match value {
            Value::String(s) => Value::String(s.clone()),
            Value::Number(_) | Value::Bool(_) => Value::String(value.to_string()),
            _ => return Err(fail(format!("{value} is not a scalar"))),
        },
        Conversion::Lowercase | Conversion::Uppercase | Conversion::Trim => {
            let s = value
                .as_str()
                .ok_or_else(|| fail(format!("{value} is not a string")))?;
            Value::String(match n.convert {
                Conversion::Lowercase => s.to_lowercase(),
                Conversion::Uppercase => s.to_uppercase(),
                _ => s.trim().to_owned(),
            })
        }
        Conversion::FahrenheitToCelsius | Conversion::KelvinToCelsius => {
            let f = number(value).ok_or_else(|| fail(format!("{value} is not a number")))?;
            let c = if n.convert == Conversion::FahrenheitToCelsius {
                (f - 32.0) * 5.0 / 9.0
            } else {
                f - 273.15
            };
            Value::from((c * 1000.0).round() / 1000.0)
        }
        Conversion::Rfc3339 => Value::String(rfc3339(parse_any_timestamp(value).map_err(fail)?)),
    };
    let target = n.target.as_deref().unwrap_or(&n.field);
    set_pointer(record, target, converted).map_err(|e| Violation::new(target, &rule, e))
}

fn conversion_name(c: Conversion) -> &'static str {
    match c {
        Conversion::Number => "number",
        Conversion::Integer => "integer",
        Conversion::String => "string",
        Conversion::Lowercase => "lowercase",
        Conversion::Uppercase => "uppercase",
        Conversion::Trim => "trim",
        Conversion::FahrenheitToCelsius => "fahrenheit_to_celsius",
        Conversion::KelvinToCelsius => "kelvin_to_celsius",
        Conversion::Rfc3339 => "rfc3339",
    }
}

fn check(record: &Value, r: &RuleConfig, now: DateTime<Utc>) -> Result<(), Violation> {
    let Some(value) = present(record, &r.field) else {
        return if r.optional {
            Ok(())
        } else {
            Err(Violation::new(
                &r.field,
                "required",
                format!("{} is missing or null", r.field),
            ))
        };
    };
    if r.min.is_some() || r.max.is_some() {
        let Some(n) = value.as_f64() else {
            let rule = if r.min.is_some() { "min" } else { "max" };
            return Err(Violation::new(
                &r.field,
                rule,
                format!("{} is {value}, not a number", r.field),
            ));
        };
        if let Some(min) = r.min.filter(|min| n < *min) {
            return Err(Violation::new(
                &r.field,
                "min",
                format!("{} is {n}, below the minimum {min}", r.field),
            ));
        }
        if let Some(max) = r.max.filter(|max| n > *max) {
            return Err(Violation::new(
                &r.field,
                "max",
                format!("{} is {n}, above the maximum {max}", r.field),
            ));
        }
    }
    if let Some(allowed) = &r.allowed {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(Violation::new(
                &r.field,
                "allowed",
                format!("{} is {value}; allowed: {}", r.field, list.join(", ")),
            ));
        }
    }
    if let Some(format) = r.timestamp {
        let t = parse_timestamp(value, format)
            .map_err(|e| Violation::new(&r.field, "timestamp", format!("{}: {e}", r.field)))?;
        let future = Duration::seconds(r.max_future_secs.unwrap_or(300) as i64);
        if t > now + future {
            return Err(Violation::new(
                &r.field,
                "timestamp",
                format!(
                    "{} is {}, more than {}s in the future",
                    r.field,
                    rfc3339(t),
                    future.num_seconds()
                ),
            ));
        }
        if let Some(age) = r.max_age_secs {
            if t < now - Duration::seconds(age as i64) {
                return Err(Violation::new(
                    &r.field,
                    "timestamp",
                    format!("{} is {}, older than {age}s", r.field, rfc3339(t)),
                ));
            }
        }
    }
    Ok(())
}

fn derive(record: &mut Value, d: &DeriveConfig) -> Result<(), Violation> {
    let value = match present(record, &d.from) {
        None => match &d.missing {
            Some(m) => m.clone(),
            None => return Ok(()),
        },
        Some(v) => {
            let n = number(v).ok_or_else(|| {
                Violation::new(
                    &d.from,
                    "derive",
                    format!("{} is {v}, not a number", d.from),
                )
            })?;
            d.bands
                .iter()
                .find(|b| n < b.below)
                .map_or_else(|| d.otherwise.clone(), |b| b.value.clone())
        }
    };
    set_pointer(record, &d.target, value).map_err(|e| Violation::new(&d.target, "derive", e))
}

/// Where a dataset's records go.
#[derive(Debug, Clone)]
struct Route {
    dataset: String,
    clean_topic: String,
    dlq_topic: String,
    processing: DatasetProcessing,
}

/// A pipeline's processor: reads the raw topics of its datasets and writes their clean topics.
/// A record's dataset comes from its `dataset` header, or from its topic when only one of the
/// pipeline's datasets reads that topic.
#[derive(Debug, Clone)]
pub struct ConfigProcessor {
    name: String,
    /// Per raw topic: the tenant's dead-letter topic and the datasets reading it.
    routes: BTreeMap<String, (String, Vec<Route>)>,
}

impl ConfigProcessor {
    /// The processor of `pipeline` (whose datasets `config` resolves).
    pub fn new(config: &Config, pipeline: &Pipeline) -> Self {
        let mut routes: BTreeMap<String, (String, Vec<Route>)> = BTreeMap::new();
        for r in &pipeline.datasets {
            let (tenant, ds) = config
                .dataset(r)
                .expect("a loaded config resolves its datasets");
            routes
                .entry(ds.raw_topic.clone())
                .or_insert_with(|| (tenant.dlq_topic.clone(), Vec::new()))
                .1
                .push(Route {
                    dataset: ds.id.to_string(),
                    clean_topic: ds.clean_topic.clone(),
                    dlq_topic: tenant.dlq_topic.clone(),
                    processing: DatasetProcessing::new(ds.processing.clone()),
                });
        }
        Self {
            name: pipeline.name.clone(),
            routes,
        }
    }

    /// The raw topics it reads.
    pub fn topics(&self) -> Vec<String> {
        self.routes.keys().cloned().collect()
    }

    fn dead(&self, topic: &str, v: Violation) -> Outcome {
        Outcome::DeadLetter {
            topic: topic.to_owned(),
            letter: v.dead_letter(Stage::Processor),
        }
    }
}

impl Processor for ConfigProcessor {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, record: &Record) -> Outcome {
        let Some((dlq, routes)) = self.routes.get(&record.topic) else {
            // Only subscribed topics arrive; a stray one is a bug worth a loud skip.
            tracing::error!(topic = %record.topic, "record from a topic this processor does not read");
            return Outcome::Skip;
        };
        let named = record
            .header(headers::DATASET)
            .and_then(|d| std::str::from_utf8(d).ok());
        let route = match named {
            Some(d) => routes.iter().find(|r| r.dataset == d),
            None if routes.len() == 1 => routes.first(),
            None => None,
        };
        let Some(route) = route else {
            let why = match named {
                Some(d) => format!("dataset \"{d}\" (header) is not processed from this topic"),
                None => "no dataset header and several datasets read this topic".to_owned(),
            };
            return self.dead(dlq, Violation::new("", "dataset", why));
        };
        let value: Value = match serde_json::from_slice(record.payload.as_deref().unwrap_or(b"")) {
            Ok(v) => v,
            Err(e) => {
                return self.dead(
                    &route.dlq_topic,
                    Violation::new("", "json", format!("the record is not JSON: {e}")),
                )
            }
        };
        let now = Utc::now();
        match route.processing.apply(value, now) {
            Err(v) => self.dead(&route.dlq_topic, v),
            Ok(clean) => {
                let mut headers = original_headers(record);
                headers.push(headers::PROCESSED_AT, rfc3339(now));
                headers.push(headers::PROCESSOR, &self.name);
                Outcome::Emit(vec![Output {
                    topic: route.clean_topic.clone(),
                    key: record.key.clone(),
                    payload: serde_json::to_vec(&clean).expect("a JSON value encodes"),
                    headers,
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format as _;
    use serde_json::json;

    fn processing(toml: &str) -> DatasetProcessing {
        let config: ProcessingConfig =
            figment::Figment::from(figment::providers::Toml::string(toml))
                .extract()
                .unwrap();
        DatasetProcessing::new(config)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn each_conversion_kind() {
        let p = processing(
            r#"
processed_at_field = ""
normalize = [
  { field = "/n", convert = "number" },
  { field = "/i", convert = "integer" },
  { field = "/s", convert = "string" },
  { field = "/lower", convert = "lowercase" },
  { field = "/upper", convert = "uppercase" },
  { field = "/trim", convert = "trim" },
  { field = "/f", convert = "fahrenheit_to_celsius" },
  { field = "/k", convert = "kelvin_to_celsius" },
  { field = "/epoch", convert = "rfc3339", target = "/meta/at" },
  { field = "/absent", convert = "number", optional = true },
]
"#,
        );
        let out = p
            .apply(
                json!({"n": "84.76", "i": "42", "s": 7, "lower": "ABC", "upper": "abc",
                       "trim": "  x  ", "f": 212, "k": 273.15, "epoch": 1_795_428_000}),
                now(),
            )
            .unwrap();
        assert_eq!(
            out,
            json!({"n": 84.76, "i": 42, "s": "7", "lower": "abc", "upper": "ABC", "trim": "x",
                   "f": 100.0, "k": 0.0, "epoch": 1_795_428_000,
                   "meta": {"at": "2026-11-23T10:00:00.000Z"}})
        );
    }

    #[test]
    fn a_failed_conversion_names_its_rule_and_field() {
        let p = processing(r#"normalize = [{ field = "/v", convert = "integer" }]"#);
        let v = p.apply(json!({"v": "2.5"}), now()).unwrap_err();
        assert_eq!(v.rule, "normalize.integer");
        assert_eq!(v.path, "/v");
        assert_eq!(v.reason, "/v: \"2.5\" is not an integer");
        let v = p.apply(json!({}), now()).unwrap_err();
        assert_eq!(
            (v.rule.as_str(), v.reason.as_str()),
            ("normalize.integer", "/v is missing")
        );
    }

    #[test]
    fn rules_check_ranges_allowed_values_and_timestamps() {
        let p = processing(
            r#"
rules = [
  { field = "/t", min = 0.0, max = 10.0 },
  { field = "/kind", allowed = ["a", "b"] },
  { field = "/at", timestamp = "date_time", max_future_secs = 60, max_age_secs = 3600 },
  { field = "/opt", min = 0.0, optional = true },
]
"#,
        );
        let ok = json!({"t": 5, "kind": "a", "at": "2026-11-23 11:30:00"});
        assert!(p.apply(ok.clone(), now()).is_ok());
        let fails = [
            (json!({"t": -1}), "/t", "min"),
            (json!({"t": 11}), "/t", "max"),
            (json!({"t": "5"}), "/t", "min"),
            (json!({"kind": "c"}), "/kind", "allowed"),
            (json!({"at": "2026-11-23 12:02:00"}), "/at", "timestamp"),
            (json!({"at": "2026-11-23 10:00:00"}), "/at", "timestamp"),
            (json!({"at": "2026-11-23T11:30:00Z"}), "/at", "timestamp"),
            (json!({"at": null}), "/at", "required"),
            (json!({"opt": -1}), "/opt", "min"),
        ];
        for (patch, path, rule) in fails {
            let mut record = ok.clone();
            for (k, v) in patch.as_object().unwrap() {
                record[k] = v.clone();
            }
            let v = p.apply(record.clone(), now()).unwrap_err();
            assert_eq!(
                (v.path.as_str(), v.rule.as_str()),
                (path, rule),
                "{record}: {v:?}"
            );
        }
    }

    #[test]
    fn derive_bands_data_type_and_processed_at() {
        let p = processing(
            r#"
data_type = "sensor"
derive = [{ target = "/status", from = "/t", bands = [{ below = 30.0, value = "normal" }, { below = 40.0, value = "warning" }], otherwise = "critical", missing = "unknown" }]
"#,
        );
        let status = |v: Value| p.apply(v, now()).unwrap()["status"].clone();
        assert_eq!(status(json!({"t": 29.9})), "normal");
        assert_eq!(status(json!({"t": 30})), "warning");
        assert_eq!(status(json!({"t": "45"})), "critical");
        assert_eq!(status(json!({})), "unknown");
        let out = p.apply(json!({"t": 1}), now()).unwrap();
        assert_eq!(out["data_type"], "sensor");
        assert_eq!(out["processed_at"], "2026-11-23T12:00:00.000Z");
        let not_object = p.apply(json!([1]), now()).unwrap_err();
        assert_eq!(not_object.rule, "json");
    }
}
