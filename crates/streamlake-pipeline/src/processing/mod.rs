//! The config-driven processor. Per dataset, `[tenants.T.datasets.D.processing]` lists steps by
//! kind (`normalize`, `rules`, `derive`, each in its own module with its config type, its checks
//! and how it applies); they run in the order of [`STEPS`], then `data_type` and
//! `processed_at` are set. The config loader hands each list to [`STEPS`], so adding a step
//! kind is one module and one line in `KINDS`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use streamlake_config::{
    ComponentKinds, ComponentSettings, Config, Pipeline, Problem, ProcessingConfig,
};
use streamlake_core::{headers, Stage, Violation};
use streamlake_kafka::Record;

use crate::json::{get_pointer, rfc3339, set_pointer};
use crate::processor::{Outcome, Output, Processor};
use crate::runtime::original_headers;

pub mod derive;
pub mod normalize;
pub mod rules;

/// Every step kind, in the order they run. A new kind: its module, and one line here.
const KINDS: &[&dyn AnyStep] = &[&normalize::Normalize, &rules::Rules, &derive::Derive];

/// A kind of processing step, configured as a list under its name (`rules = [...]`).
pub trait StepKind: Sync + 'static {
    /// The list's key, e.g. `rules`.
    const NAME: &'static str;
    /// One entry of the list, read with serde (`deny_unknown_fields`).
    type Config: DeserializeOwned + fmt::Debug + Clone + Send + Sync + 'static;

    /// Problems the types cannot express, as keys below the entry.
    fn check(config: &Self::Config) -> Vec<Problem>;

    /// Applies one entry to `record` at time `now`, or says why the record is refused.
    fn apply(
        config: &Self::Config,
        record: &mut Value,
        now: DateTime<Utc>,
    ) -> Result<(), Violation>;
}

/// The registry of step kinds, as the config loader sees it (`section` `processing`).
#[derive(Debug, Clone, Copy)]
pub struct Steps;

/// The processing step kinds of this build, for [`streamlake_config::load`].
pub static STEPS: Steps = Steps;

impl Steps {
    /// The kinds' names, in the order they run.
    pub fn names(&self) -> Vec<&'static str> {
        KINDS.iter().map(|k| k.name()).collect()
    }

    fn position(&self, kind: &str) -> Result<usize, Problem> {
        KINDS.iter().position(|k| k.name() == kind).ok_or_else(|| {
            Problem::new(
                "",
                format!(
                    "unknown key; expected data_type, processed_at_field or a step kind: {}",
                    self.names().join(", ")
                ),
            )
        })
    }
}

impl ComponentKinds for Steps {
    fn section(&self) -> &'static str {
        "processing"
    }

    fn check(&self, settings: &ComponentSettings) -> Vec<Problem> {
        match self.position(&settings.kind) {
            Ok(i) => KINDS[i].check(settings),
            Err(problem) => vec![problem],
        }
    }
}

/// Steps of one kind, ready to apply.
trait Compiled: fmt::Debug + Send + Sync {
    fn apply(&self, record: &mut Value, now: DateTime<Utc>) -> Result<(), Violation>;
    fn clone_box(&self) -> Box<dyn Compiled>;
}

struct List<K: StepKind>(Vec<K::Config>);

impl<K: StepKind> fmt::Debug for List<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(K::NAME).field(&self.0).finish()
    }
}

impl<K: StepKind> Compiled for List<K> {
    fn apply(&self, record: &mut Value, now: DateTime<Utc>) -> Result<(), Violation> {
        self.0.iter().try_for_each(|c| K::apply(c, record, now))
    }

    fn clone_box(&self) -> Box<dyn Compiled> {
        Box::new(List::<K>(self.0.clone()))
    }
}

/// A step kind with its types erased, so the registry can hold every kind in one list.
trait AnyStep: Sync {
    fn name(&self) -> &'static str;
    fn check(&self, settings: &ComponentSettings) -> Vec<Problem>;
    fn compile(&self, settings: &ComponentSettings) -> Result<Box<dyn Compiled>, Problem>;
}

impl<K: StepKind> AnyStep for K {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn check(&self, settings: &ComponentSettings) -> Vec<Problem> {
        match settings.parse::<Vec<K::Config>>() {
            Err(problem) => vec![problem],
            Ok(list) => list
                .iter()
                .enumerate()
                .flat_map(|(i, entry)| {
                    K::check(entry).into_iter().map(move |p| {
                        let key = if p.key.is_empty() {
                            format!("[{i}]")
                        } else {
                            format!("[{i}].{}", p.key)
                        };
                        Problem::new(key, p.problem)
                    })
                })
                .collect(),
        }
    }

    fn compile(&self, settings: &ComponentSettings) -> Result<Box<dyn Compiled>, Problem> {
        if let Some(p) = self.check(settings).into_iter().next() {
            return Err(p);
        }
        let list = settings.parse::<Vec<K::Config>>()?;
        Ok(Box::new(List::<K>(list)))
    }
}

fn present<'v>(record: &'v Value, pointer: &str) -> Option<&'v Value> {
    get_pointer(record, pointer).filter(|v| !v.is_null())
}

/// One dataset's processing, ready to apply.
#[derive(Debug)]
pub struct DatasetProcessing {
    data_type: Option<String>,
    processed_at: Option<String>,
    /// Per kind present, in registry order.
    steps: Vec<Box<dyn Compiled>>,
}

impl Clone for DatasetProcessing {
    fn clone(&self) -> Self {
        Self {
            data_type: self.data_type.clone(),
            processed_at: self.processed_at.clone(),
            steps: self.steps.iter().map(|s| s.clone_box()).collect(),
        }
    }
}

impl DatasetProcessing {
    /// Processing as configured at `at` (`tenants.T.datasets.D.processing`); a step that does
    /// not pass its checks is an error naming its key.
    pub fn new(config: &ProcessingConfig, at: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        for settings in config.steps(at) {
            let compiled = STEPS
                .position(&settings.kind)
                .and_then(|i| Ok((i, KINDS[i].compile(&settings)?)))
                .map_err(|p| format!("{}: {}", settings.key_of(&p), p.problem))?;
            steps.push(compiled);
        }
        steps.sort_by_key(|(i, _)| *i);
        Ok(Self {
            data_type: config.data_type.clone(),
            processed_at: config.processed_at_field().map(|f| format!("/{f}")),
            steps: steps.into_iter().map(|(_, s)| s).collect(),
        })
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
        for step in &self.steps {
            step.apply(&mut record, now)?;
        }
        if let Some(t) = &self.data_type {
            set_pointer(&mut record, "/data_type", Value::String(t.clone()))
                .map_err(|e| Violation::new("/data_type", "data_type", e))?;
        }
        if let Some(at) = &self.processed_at {
            set_pointer(&mut record, at, Value::String(rfc3339(now)))
                .map_err(|e| Violation::new(at, "processed_at", e))?;
        }
        Ok(record)
    }
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
    /// The processor of `pipeline` (whose datasets `config` resolves); an error names a
    /// processing step that does not pass its checks.
    pub fn new(config: &Config, pipeline: &Pipeline) -> Result<Self, String> {
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
                    processing: DatasetProcessing::new(
                        &ds.processing,
                        &format!("tenants.{}.datasets.{}.processing", tenant.id, ds.id),
                    )?,
                });
        }
        Ok(Self {
            name: pipeline.name.clone(),
            routes,
        })
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
        DatasetProcessing::new(&config, "processing").unwrap()
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
