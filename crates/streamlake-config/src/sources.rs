//! Configuration of pollers: `[pollers.NAME]` fetches Sensor.Community's data list
//! (or replays a file) and maps each record into each configured tenant's message structure
//! with a declarative mapping, no code per tenant.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A conversion applied to a mapped value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapConversion {
    /// A number or numeric string to a number (`"84.76"` → 84.76).
    Number,
    /// A number or numeric string to an integer; refuses fractions.
    Integer,
    /// A scalar to a string.
    String,
    /// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339 to epoch seconds.
    EpochSeconds,
    /// `YYYY-MM-DD HH:MM:SS` (UTC) or epoch seconds to RFC 3339.
    Rfc3339,
}

/// How one output field is made. Exactly one of `from`, `value`, `all_values`, `const`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// JSON pointer into the source record, e.g. `/location/id`.
    pub from: Option<String>,
    /// The `value` of the `sensordatavalues` entry with this `value_type`, e.g. `P1`.
    pub value: Option<String>,
    /// Every `sensordatavalues` entry as an object `value_type → value`.
    #[serde(default)]
    pub all_values: bool,
    /// A constant.
    #[serde(rename = "const")]
    pub constant: Option<serde_json::Value>,
    /// Conversion of the value.
    pub convert: Option<MapConversion>,
    /// When true a missing or null source value leaves the field out; otherwise the record
    /// cannot be mapped and is dead-lettered.
    #[serde(default)]
    pub optional: bool,
}

/// `[pollers.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerConfig {
    /// URL of the data list. Default: Sensor.Community's `static/v2/data.json`.
    #[serde(default = "default_url")]
    pub url: String,
    /// Replay this file (a JSON array in the same format) instead of fetching `url`.
    pub file: Option<PathBuf>,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Seconds a request may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts per poll before the poll is given up (logged; the next poll comes).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// JSON pointer of a record's id; a record id seen in the previous polls is not emitted again.
    #[serde(default = "default_id")]
    pub id_pointer: String,
    /// Whether `streamlake up` runs it.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Per `TENANT/DATASET`: output field (a name or a JSON pointer for nesting) → mapping.
    pub outputs: BTreeMap<String, BTreeMap<String, FieldMapping>>,
}

fn default_url() -> String {
    "https://data.sensor.community/static/v2/data.json".to_owned()
}
fn default_interval() -> u64 {
    150
}
fn default_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    3
}
fn default_id() -> String {
    "/id".to_owned()
}
fn default_enabled() -> bool {
    true
}

/// What a configured generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorKind {
    /// Sensor readings keyed by `sensor_id`.
    Sensor,
    /// User activity keyed by `user_id`.
    Activity,
}

/// `[generators.NAME]`: a generator `streamlake up` runs as a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSourceConfig {
    /// What to generate.
    pub kind: GeneratorKind,
    /// Target as `TENANT/DATASET`.
    pub dataset: String,
    /// Events per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Distinct sensors or users.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Stop after this many events; absent: until shutdown.
    pub count: Option<u64>,
    /// Whether `streamlake up` runs it.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_rate() -> f64 {
    1.0
}
fn default_keys() -> u64 {
    50
}
