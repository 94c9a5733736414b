//! The config-driven processor (SPEC P1): per dataset, `normalize` conversions, semantic
//! `rules`, threshold `derive`s, then `data_type` and `processed_at`. Everything comes from
//! `[tenants.T.datasets.D.processing]`; see `streamlake_config::ProcessingConfig`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use streamlake_config::{
    Config, Conversion, DeriveConfig, NormalizeConfig, Pipeline, ProcessingConfig, RuleConfig,
};
use streamlake_core::{headers, DeadLetter, Stage};
use streamlake_kafka::Record;

use crate::json::{number, parse_any_timestamp, parse_timestamp, rfc3339, set_pointer};
use crate::processor::{Outcome, Output, Processor};
use crate::runtime::original_headers;

/// Why a record failed processing: becomes a dead letter with stage `processor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What was wrong.
    pub reason: String,
    /// JSON pointer of the field.
    pub path: String,
    /// The rule: `min`, `max`, `allowed`, `timestamp`, `required`, `normalize.CONVERSION`,
    /// `derive`, `json`, `dataset`.
    pub rule: String,
}

impl Violation {
    fn new(path: &str, rule: &str, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            path: path.to_owned(),
            rule: rule.to_owned(),
        }
    }
}

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
            letter: DeadLetter {
                reason: v.reason,
                path: v.path,
                rule: v.rule,
                stage: Stage::Processor,
            },
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
