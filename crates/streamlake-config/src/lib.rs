//! StreamLake configuration: one TOML file, overridden by `STREAMLAKE_*`
//! environment variables, validated as a whole.
//!
//! Layering: built-in defaults, then the file, then the environment. Nested keys are joined with
//! `__`: `STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092` sets `kafka.bootstrap_servers`.
//!
//! Loading never stops at the first problem: each section, tenant and topic is read on its own,
//! then the semantic rules run over what could be read, and every problem is returned together
//! in [`ConfigErrors`], each naming the file (or environment variable), the key and the rule.
//!
//! This crate reads and checks configuration; it does not compile schemas or talk to Kafka.
//!
//! # Layout
//! - [`model`]: the serde structs, one per section; their doc comments document every key.
//! - [`error`]: [`ConfigError`] and [`ConfigErrors`].
//! - [`component`]: the tables components own (a sink's store), checked by the crate that
//!   implements them through a [`ComponentKinds`] registry.
//! - `load`: layering, per-section extraction and the semantic checks; [`Config`] is the result.

pub mod component;
pub mod error;
mod load;
pub mod model;
pub mod pipeline;
pub mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use component::{ComponentKinds, ComponentSettings, Problem};
pub use error::{ConfigError, ConfigErrors};
pub use load::{is_identifier, json_pointer, load, load_defaults, load_str, ENV_PREFIX};
pub use model::*;
pub use pipeline::*;
pub use sources::*;
use streamlake_core::{DatasetId, TenantId, TopicNaming, TopicSpec};

/// Columns every sink writes before the declared ones, so each row can be traced to its
/// record (reliability rule 6 in docs/ARCHITECTURE.md).
pub const METADATA_COLUMNS: &[&str] = &[
    "ingestion_id",
    "tenant",
    "dataset",
    "ingested_at",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "schema_version",
];

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./streamlake-data";

/// A loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (schema paths are relative to its directory).
    pub file: Option<PathBuf>,
    /// Where StreamLake keeps its state (the managed broker's storage, sink files).
    pub data_dir: PathBuf,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// The managed Kafka broker, used when `kafka.bootstrap_servers` is absent.
    pub broker: BrokerConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// HTTP ingestion settings.
    pub gateway: GatewayConfig,
    /// Admin API and console settings.
    pub admin: AdminConfig,
    /// The admin token (`admin.token_env` in the environment, else `admin.dev_token`), if any.
    pub admin_token: Option<ApiKey>,
    /// Topic naming templates.
    pub naming: TopicNaming,
    /// Defaults for topics.
    pub topic_defaults: TopicDefaults,
    /// Tenants by id.
    pub tenants: BTreeMap<TenantId, Tenant>,
    /// Topics declared by name in `[[topics]]`.
    pub topics: Vec<TopicConfig>,
    /// MQTT ingestion.
    pub mqtt: MqttConfig,
    /// Generators by name (`[generators.NAME]`) with their dataset resolved.
    pub generators: BTreeMap<String, (GeneratorSourceConfig, DatasetRef)>,
    /// Pollers by name (`[pollers.NAME]`), with their outputs resolved.
    pub pollers: BTreeMap<String, Poller>,
    /// Processors by name (`[pipelines.NAME]`).
    pub pipelines: BTreeMap<String, Pipeline>,
    /// Sinks by name (`[sinks.NAME]`).
    pub sinks: BTreeMap<String, Sink>,
}

/// A dataset named as `TENANT/DATASET`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetRef {
    /// Tenant id.
    pub tenant: TenantId,
    /// Dataset id.
    pub dataset: DatasetId,
}

impl std::fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.dataset)
    }
}

/// A processor pipeline with its datasets resolved.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Name (the key under `[pipelines]`).
    pub name: String,
    /// Datasets it processes.
    pub datasets: Vec<DatasetRef>,
    /// Consumer group.
    pub group: String,
    /// Largest batch read at once.
    pub batch_max_size: usize,
    /// Longest a batch gathers records after its first.
    pub batch_max_wait: std::time::Duration,
    /// How long a transaction gathers batches before its commit (with `exactly_once`); without,
    /// how long the processor reads on before waiting for its acknowledgements.
    pub commit_interval: std::time::Duration,
    /// Whether `up` runs it.
    pub enabled: bool,
    /// Batches written in Kafka transactions (exactly once into the clean topic).
    pub exactly_once: bool,
}

/// A poller with its outputs resolved.
#[derive(Debug, Clone)]
pub struct Poller {
    /// Name (the key under `[pollers]`).
    pub name: String,
    /// The configuration; `file` is resolved against the config file's directory.
    pub config: PollerConfig,
    /// Outputs: the dataset and its field mappings.
    pub outputs: Vec<(DatasetRef, BTreeMap<String, FieldMapping>)>,
}

/// A sink with its datasets resolved.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Name (the key under `[sinks]`).
    pub name: String,
    /// Datasets it lands.
    pub datasets: Vec<DatasetRef>,
    /// Which topic of each dataset it reads.
    pub read: ReadTopic,
    /// Consumer group.
    pub group: String,
    /// Largest batch read at once.
    pub batch_max_size: usize,
    /// Longest a batch gathers records after its first (zero: only what is already fetched).
    pub batch_max_wait: std::time::Duration,
    /// Whether `up` runs it.
    pub enabled: bool,
    /// The store: its kind and table, read by `streamlake-sinks`.
    pub store: ComponentSettings,
}

/// Where a tenant's API key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeySource {
    /// The environment variable named by `api_key_env`.
    Environment,
    /// `dev_api_key` from the file.
    Development,
}

/// A tenant's API key. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    secret: String,
    /// Where it came from.
    pub source: ApiKeySource,
}

impl ApiKey {
    /// A key with its source.
    pub fn new(secret: impl Into<String>, source: ApiKeySource) -> Self {
        Self {
            secret: secret.into(),
            source,
        }
    }

    /// The secret, for authentication only; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// A tenant's key known by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedKey {
    /// What it is for.
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
}

/// A tenant with its resolved topic names.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Tenant id.
    pub id: TenantId,
    /// Human-readable name.
    pub display_name: String,
    /// API key, when one is configured (`api_key_env` set in the environment, or `dev_api_key`).
    pub api_key: Option<ApiKey>,
    /// The environment variable `api_key_env` names, if any.
    pub api_key_env: Option<String>,
    /// More keys, by their SHA-256 (`api_keys`).
    pub api_key_hashes: Vec<HashedKey>,
    /// The tenant's dead-letter topic.
    pub dlq_topic: String,
    /// Rate limits of its HTTP ingestion.
    pub quota: Option<QuotaConfig>,
    /// The tenant's replay log: which of its dead letters were replayed, and where to; a
    /// compacted topic (`naming.replays`) keyed by the dead letter's `{partition}/{offset}`.
    pub replays_topic: String,
    /// The tenant's idempotency log: each request sent with an `Idempotency-Key`, its claim
    /// and its answer; a compacted topic (`naming.idempotency`) keyed by `{dataset}/{key}`.
    pub idempotency_topic: String,
    /// Datasets by id.
    pub datasets: BTreeMap<DatasetId, Dataset>,
}

/// A dataset with its resolved topic names and schema path.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Dataset id.
    pub id: DatasetId,
    /// Schema versions, oldest first (at least one); the last is the newest.
    pub schemas: Vec<SchemaVersion>,
    /// How each version must relate to the ones before it.
    pub compatibility: Compatibility,
    /// Partition key.
    pub key: KeySpec,
    /// Raw topic name.
    pub raw_topic: String,
    /// Clean topic name.
    pub clean_topic: String,
    /// Partition count of its raw and clean topics.
    pub partitions: i32,
    /// Processing between the raw and the clean topic.
    pub processing: ProcessingConfig,
    /// How fresh its data must be, if declared.
    pub freshness: Option<FreshnessObjective>,
    /// Pointer to the event's own time in its clean record, if declared.
    pub event_time: Option<String>,
    /// Rate limits of its HTTP ingestion (within the tenant's), if declared.
    pub quota: Option<QuotaConfig>,
    /// Columns the sinks write.
    pub columns: Vec<ColumnConfig>,
}

/// One schema version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Its name, carried in the `schema_version` header.
    pub version: String,
    /// Its schema file, resolved against the config file's directory.
    pub path: PathBuf,
}

impl Dataset {
    /// The newest schema version, used for events that name none.
    pub fn newest_schema(&self) -> &SchemaVersion {
        self.schemas
            .last()
            .expect("a loaded dataset has at least one schema version")
    }
}

/// The largest record of an idempotency log (a batch's answer, every event's outcome in it).
pub const IDEMPOTENCY_RECORD_BYTES: usize = 16 * 1024 * 1024;

impl Config {
    /// The tenant and dataset `r` names; every `DatasetRef` in a loaded config resolves.
    pub fn dataset(&self, r: &DatasetRef) -> Option<(&Tenant, &Dataset)> {
        let tenant = self.tenants.get(&r.tenant)?;
        Some((tenant, tenant.datasets.get(&r.dataset)?))
    }

    /// Whether StreamLake must start its own broker (no `kafka.bootstrap_servers`).
    pub fn uses_embedded_broker(&self) -> bool {
        self.kafka.bootstrap_servers.is_none()
    }

    /// Every topic the configuration declares: `[[topics]]` first, then each tenant's dead-letter
    /// topic and each dataset's raw and clean topics unless `[[topics]]` already names them.
    pub fn declared_topics(&self) -> Vec<TopicSpec> {
        let mut specs: Vec<TopicSpec> = self.topics.iter().map(|t| self.spec_of(t)).collect();
        let mut derived = Vec::new();
        let compacted = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
        for tenant in self.tenants.values() {
            let dlq = self.topic_defaults.partitions;
            derived.push((tenant.dlq_topic.clone(), dlq, BTreeMap::new()));
            // One partition: the replay log is small and read whole at start-up.
            derived.push((tenant.replays_topic.clone(), 1, compacted.clone()));
            // One partition: every gateway follows it whole. Compacted, and deleted once no
            // key it holds can still be answered (the window, and an hour for clocks).
            let window_ms = self.gateway.idempotency_window_secs.saturating_mul(1000);
            let idempotency = BTreeMap::from([
                ("cleanup.policy".to_owned(), "compact,delete".to_owned()),
                (
                    "retention.ms".to_owned(),
                    window_ms.saturating_add(3_600_000).to_string(),
                ),
                // A batch's answer is one record: room for the largest.
                (
                    "max.message.bytes".to_owned(),
                    IDEMPOTENCY_RECORD_BYTES.to_string(),
                ),
            ]);
            derived.push((tenant.idempotency_topic.clone(), 1, idempotency));
            for ds in tenant.datasets.values() {
                derived.push((ds.raw_topic.clone(), ds.partitions, BTreeMap::new()));
                derived.push((ds.clean_topic.clone(), ds.partitions, BTreeMap::new()));
            }
        }
        for (name, partitions, configs) in derived {
            if specs.iter().any(|s| s.name == name) {
                continue;
            }
            let topic = TopicConfig {
                name,
                partitions: Some(partitions),
                replication_factor: None,
                retention_ms: None,
                compression: None,
                cleanup_policy: None,
                configs,
            };
            specs.push(self.spec_of(&topic));
        }
        specs
    }

    fn spec_of(&self, t: &TopicConfig) -> TopicSpec {
        let d = &self.topic_defaults;
        let mut configs = BTreeMap::new();
        if let Some(ms) = t.retention_ms.or(d.retention_ms) {
            configs.insert("retention.ms".to_owned(), ms.to_string());
        }
        if let Some(c) = t.compression.or(d.compression) {
            configs.insert("compression.type".to_owned(), c.as_kafka().to_owned());
        }
        if let Some(p) = t.cleanup_policy.or(d.cleanup_policy) {
            configs.insert("cleanup.policy".to_owned(), p.as_kafka().to_owned());
        }
        configs.extend(t.configs.clone());
        TopicSpec {
            name: t.name.clone(),
            partitions: t.partitions.unwrap_or(d.partitions),
            replication_factor: t.replication_factor.or(d.replication_factor),
            configs,
        }
    }
}
