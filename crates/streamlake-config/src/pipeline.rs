//! Configuration of the processing stage and the sinks:
//! per-dataset processing rules and columns, `[pipelines.NAME]` and `[sinks.NAME]`.
//!
//! Everything a processor or a sink does is declared here, so changing it needs no
//! recompilation. Doc comments document every key (docs/CONFIG.md points here).

use serde::{Deserialize, Serialize};

/// `[tenants.T.datasets.D.processing]`: what the processor does to each record of the dataset
/// on its way from the raw to the clean topic. Order: `normalize`, then `rules`, then `derive`,
/// then `data_type` and `processed_at` are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Written into the record as `data_type` and usable as `{data_type}` in sink paths, e.g.
    /// `sensor` or `activity`.
    pub data_type: Option<String>,
    /// Conversions applied first, e.g. `"84.76"` → `84.76` or °F → °C.
    pub normalize: Vec<NormalizeConfig>,
    /// Semantic checks; a record failing one goes to the tenant's dead-letter topic.
    pub rules: Vec<RuleConfig>,
    /// Fields derived from others by thresholds, e.g. a sensor `status`.
    pub derive: Vec<DeriveConfig>,
    /// Field that receives the processing time (RFC 3339 UTC); empty to leave it out.
    pub processed_at_field: Option<String>,
}

impl ProcessingConfig {
    /// The field that receives the processing time, `processed_at` unless configured.
    pub fn processed_at_field(&self) -> Option<&str> {
        match self.processed_at_field.as_deref() {
            None => Some("processed_at"),
            Some("") => None,
            Some(f) => Some(f),
        }
    }
}

/// How a timestamp field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// RFC 3339 with an offset, e.g. `2026-11-23T10:00:00Z`.
    Rfc3339,
    /// `YYYY-MM-DD HH:MM:SS` in UTC, as Sensor.Community writes it.
    DateTime,
    /// Seconds since the Unix epoch (a number).
    EpochSeconds,
    /// Milliseconds since the Unix epoch (a number).
    EpochMillis,
}

/// One semantic check on one field. At least one of `min`, `max`, `allowed`, `timestamp` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// JSON pointer of the field, e.g. `/temperature`.
    pub field: String,
    /// When true a missing or null field passes; otherwise it fails the rule.
    #[serde(default)]
    pub optional: bool,
    /// Smallest accepted number (inclusive).
    pub min: Option<f64>,
    /// Largest accepted number (inclusive).
    pub max: Option<f64>,
    /// The accepted values.
    pub allowed: Option<Vec<serde_json::Value>>,
    /// The field is a timestamp in this format and must parse.
    pub timestamp: Option<TimestampFormat>,
    /// With `timestamp`: seconds a timestamp may lie in the future (clock skew). Default 300.
    pub max_future_secs: Option<u64>,
    /// With `timestamp`: seconds a timestamp may lie in the past; absent means no limit.
    pub max_age_secs: Option<u64>,
}

/// A conversion applied by `normalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    /// A number or a numeric string to a number (`"84.76"` → `84.76`).
    Number,
    /// A number or a numeric string to an integer; refuses fractions.
    Integer,
    /// Any scalar to a string.
    String,
    /// Lower-case a string.
    Lowercase,
    /// Upper-case a string.
    Uppercase,
    /// Trim white space around a string.
    Trim,
    /// Degrees Fahrenheit to degrees Celsius.
    FahrenheitToCelsius,
    /// Kelvin to degrees Celsius.
    KelvinToCelsius,
    /// A timestamp in any [`TimestampFormat`] to RFC 3339 UTC.
    Rfc3339,
}

/// `normalize = [{ field = "/temp_f", convert = "fahrenheit_to_celsius", target = "/temperature" }]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// JSON pointer of the input field.
    pub field: String,
    /// The conversion.
    pub convert: Conversion,
    /// JSON pointer the result is written to; default: the input field itself.
    pub target: Option<String>,
    /// When true a missing or null field is left alone; otherwise the record is dead-lettered.
    #[serde(default)]
    pub optional: bool,
}

/// One band of a threshold derivation: values below `below` get `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Upper bound (exclusive).
    pub below: f64,
    /// The derived value.
    pub value: serde_json::Value,
}

/// `derive = [{ target = "/status", from = "/temperature", bands = [...], otherwise = "critical" }]`:
/// the first band whose `below` exceeds the input's value gives the target's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveConfig {
    /// JSON pointer of the derived field.
    pub target: String,
    /// JSON pointer of the numeric input.
    pub from: String,
    /// Bands in ascending order of `below`.
    pub bands: Vec<Band>,
    /// Value when no band matches.
    pub otherwise: serde_json::Value,
    /// Value when the input is missing or null; absent leaves the target unset.
    pub missing: Option<serde_json::Value>,
}

/// Type of a sink column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Text.
    String,
    /// 64-bit integer.
    Integer,
    /// 64-bit float.
    Float,
    /// Boolean.
    Boolean,
    /// UTC timestamp; accepts RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) and epoch seconds.
    Timestamp,
    /// Any JSON value, stored as its JSON text (PostgreSQL: `jsonb`).
    Json,
}

/// `[[tenants.T.datasets.D.columns]]`: a column the sinks write, taken from the clean record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// Column name (letters, digits, `_`; starts with a letter or `_`).
    pub name: String,
    /// JSON pointer of the value; default `/NAME`.
    pub pointer: Option<String>,
    /// Column type.
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

impl ColumnConfig {
    /// The JSON pointer of the value.
    pub fn pointer(&self) -> String {
        self.pointer
            .clone()
            .unwrap_or_else(|| format!("/{}", self.name))
    }
}

/// `[pipelines.NAME]`: a processor that reads the raw topics of `datasets`, applies each
/// dataset's `processing`, and writes the clean topics (invalid records to the tenant's DLQ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Datasets as `TENANT/DATASET`.
    pub datasets: Vec<String>,
    /// Consumer group; instances with the same group share the partitions. Default
    /// `streamlake-process-NAME`.
    pub group: Option<String>,
    /// Largest batch read at once.
    #[serde(default = "default_batch")]
    pub batch_max_size: usize,
    /// Whether `streamlake up` runs it.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_batch() -> usize {
    500
}

fn default_true() -> bool {
    true
}

/// Which topic of a dataset a sink reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadTopic {
    /// The clean topic (after processing). The default.
    #[default]
    Clean,
    /// The raw topic (as ingested: a bronze copy).
    Raw,
}

/// `[sinks.NAME]`: lands the records of `datasets` in one store, configured by a table named
/// after the store's kind (`[sinks.NAME.csv]`, `[sinks.NAME.parquet]`, ...). The kinds and
/// their keys belong to `streamlake-sinks`, which checks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkConfig {
    /// Datasets as `TENANT/DATASET`.
    pub datasets: Vec<String>,
    /// Which topic of each dataset is read.
    #[serde(default)]
    pub read: ReadTopic,
    /// Consumer group. Default `streamlake-sink-NAME`.
    pub group: Option<String>,
    /// Largest batch read at once.
    #[serde(default = "default_sink_batch")]
    pub batch_max_size: usize,
    /// Whether `streamlake up` runs it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Every other key: the store's table, by kind (exactly one is expected).
    #[serde(flatten)]
    pub stores: std::collections::BTreeMap<String, serde_json::Value>,
}

fn default_sink_batch() -> usize {
    1000
}
