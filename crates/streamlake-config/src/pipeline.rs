//! Configuration of the processing stage and the sinks:
//! per-dataset processing rules and columns, `[pipelines.NAME]` and `[sinks.NAME]`.
//!
//! Everything a processor or a sink does is declared here, so changing it needs no
//! recompilation. Doc comments document every key (docs/CONFIG.md points here).

use serde::{Deserialize, Serialize};

use crate::component::ComponentSettings;

/// `[tenants.T.datasets.D.processing]`: what the processor does to each record of the dataset
/// on its way from the raw to the clean topic: its steps (`normalize`, `rules`, `derive`, each a
/// list), then `data_type` and `processed_at` are set. The step kinds, their keys and their
/// order belong to `streamlake-pipeline`, which checks them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessingConfig {
    /// Written into the record as `data_type` and usable as `{data_type}` in sink paths, e.g.
    /// `sensor` or `activity`.
    pub data_type: Option<String>,
    /// Field that receives the processing time (RFC 3339 UTC); empty to leave it out.
    pub processed_at_field: Option<String>,
    /// Every other key: a list of steps of the kind it names.
    #[serde(flatten)]
    pub steps: std::collections::BTreeMap<String, serde_json::Value>,
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

    /// The steps as component settings; `at` is the key of this table
    /// (`tenants.T.datasets.D.processing`).
    pub fn steps(&self, at: &str) -> Vec<ComponentSettings> {
        self.steps
            .iter()
            .map(|(kind, list)| {
                ComponentSettings::new(kind.clone(), format!("{at}.{kind}"), list.clone())
            })
            .collect()
    }
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
    pub fn pointer(&self) -> std::borrow::Cow<'_, str> {
        match &self.pointer {
            Some(p) => p.into(),
            None => format!("/{}", self.name).into(),
        }
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
    /// Longest a batch gathers records after its first, in milliseconds: a record can wait
    /// this long before it is processed.
    #[serde(default = "default_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// With `exactly_once`, the longest a transaction gathers batches before it is committed,
    /// in milliseconds: a processed record becomes visible in the clean topic at the commit, so
    /// this bounds the added latency; each commit costs the processor a wait for the broker.
    /// A transaction commits sooner, once open ten times as long as recent commits took, when
    /// that is shorter.
    /// At-least-once, the longest the processor reads on before it waits for the
    /// acknowledgements still to come and stores the offsets.
    #[serde(default = "default_wait_ms")]
    pub commit_interval_ms: u64,
    /// Whether `streamlake up` runs it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Each batch's outputs, dead letters and input offsets written in one Kafka transaction,
    /// so a crash never leaves a record processed twice in the clean topic. `false`:
    /// at-least-once (outputs acknowledged first, offsets committed after; a crash between the
    /// two processes those records again).
    #[serde(default = "default_true")]
    pub exactly_once: bool,
}

fn default_batch() -> usize {
    500
}

fn default_wait_ms() -> u64 {
    100
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
    /// Longest a batch gathers records after its first, in milliseconds (0: only what is
    /// already fetched). Each batch is written, and for most stores made durable, at once: a
    /// shorter wait lands rows sooner and pays more writes.
    #[serde(default = "default_sink_wait_ms")]
    pub batch_max_wait_ms: u64,
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

fn default_sink_wait_ms() -> u64 {
    200
}
