//! The configuration model: serde structs with `deny_unknown_fields`, one per section. Doc
//! comments here are the reference for every key (docs/CONFIG.md points at them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[kafka]`: how to reach Kafka. Without `bootstrap_servers` StreamLake starts its embedded
/// broker and connects to that.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of an existing Kafka cluster. Absent: the managed
    /// broker (`[broker]`).
    pub bootstrap_servers: Option<String>,
    /// librdkafka properties applied to every client (TLS, SASL, `client.id`, ...).
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for producers only; they override StreamLake's producer defaults.
    pub producer: BTreeMap<String, String>,
    /// librdkafka properties for consumers only.
    pub consumer: BTreeMap<String, String>,
}

/// `[broker]`: the Apache Kafka that StreamLake starts and supervises on this machine when
/// `kafka.bootstrap_servers` is absent: KRaft nodes that are broker and controller at once, as
/// child processes of `streamlake up` (docs/BROKER.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Client address of the first node; node `i` (from 0) listens on this port + `i`, and its
    /// controller on this port + `nodes` + `i` (one node: 9092 for clients, 9093 controller).
    pub listen: SocketAddr,
    /// Number of nodes: 1, or 3 for a replicated cluster (topics then default to replication
    /// factor 3 with `min.insync.replicas = 2`).
    pub nodes: u16,
    /// Directory holding the Kafka jars. Absent: `$STREAMLAKE_TOOLS_DIR/kafka-4.4.0/libs`, by
    /// default `~/.cache/streamlake/kafka-4.4.0/libs`, where `scripts/setup.sh` puts them.
    pub kafka_libs: Option<PathBuf>,
    /// The `java` executable (17 or later). Absent: `$JAVA_HOME/bin/java`, then `$PATH`.
    pub java: Option<PathBuf>,
    /// Maximum Java heap of each node, in MiB.
    pub heap_mb: u32,
    /// Seconds to wait for the cluster to answer after it was started.
    pub startup_timeout_secs: u64,
    /// Seconds a node gets for its controlled shutdown after SIGTERM before it is killed.
    pub shutdown_timeout_secs: u64,
    /// More Kafka server properties for every node, by their Kafka names; they override
    /// StreamLake's (e.g. `"log.retention.hours" = "24"`).
    pub properties: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            nodes: 1,
            kafka_libs: None,
            java: None,
            heap_mb: 512,
            startup_timeout_secs: 60,
            shutdown_timeout_secs: 20,
            properties: BTreeMap::new(),
        }
    }
}

/// `[http]`: the HTTP server (gateway, admin API, console, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Seconds a client has to send a request's headers, and a kept-alive connection may sit
    /// idle before the next request; then the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Connections open at once; one more is answered 503 with `Retry-After` and closed.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout_secs: 10,
            max_connections: 4096,
        }
    }
}

/// Compression codec of a topic (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Keep whatever the producer used.
    Producer,
    /// Uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
    /// snappy.
    Snappy,
}

impl Compression {
    /// The value of Kafka's `compression.type` topic config.
    pub fn as_kafka(self) -> &'static str {
        match self {
            Compression::Producer => "producer",
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        }
    }
}

/// Cleanup policy of a topic (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    /// Delete old segments by retention.
    Delete,
    /// Keep the latest record per key.
    Compact,
    /// Both.
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy` topic config.
    pub fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// `[topic_defaults]`: settings of topics that do not state their own, including the raw, clean
/// and dead-letter topics derived from datasets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    /// Partition count.
    pub partitions: i32,
    /// Replication factor; absent leaves the broker's `default.replication.factor` (on the
    /// managed broker: the number of nodes).
    pub replication_factor: Option<i32>,
    /// `retention.ms`; absent leaves the broker's default.
    pub retention_ms: Option<i64>,
    /// `compression.type`; absent leaves the broker's default.
    pub compression: Option<Compression>,
    /// `cleanup.policy`; absent leaves the broker's default.
    pub cleanup_policy: Option<CleanupPolicy>,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        Self {
            partitions: 3,
            replication_factor: None,
            retention_ms: None,
            compression: None,
            cleanup_policy: None,
        }
    }
}

/// `[[topics]]`: a topic declared by name. Unset settings come from `[topic_defaults]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name (Kafka rules: letters, digits, `.`, `_`, `-`; at most 249 characters).
    pub name: String,
    /// Partition count.
    pub partitions: Option<i32>,
    /// Replication factor.
    pub replication_factor: Option<i32>,
    /// `retention.ms` (-1: forever).
    pub retention_ms: Option<i64>,
    /// `compression.type`.
    pub compression: Option<Compression>,
    /// `cleanup.policy`.
    pub cleanup_policy: Option<CleanupPolicy>,
    /// Any other Kafka topic config, by its Kafka name.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// A dataset's partition key: one JSON pointer, or several joined into a composite key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    /// One JSON pointer, e.g. `/sensor/id`.
    Pointer(String),
    /// Several JSON pointers; their values are joined with `|`.
    Composite(Vec<String>),
}

impl KeySpec {
    /// The JSON pointers of the key, in order.
    pub fn pointers(&self) -> &[String] {
        match self {
            KeySpec::Pointer(p) => std::slice::from_ref(p),
            KeySpec::Composite(ps) => ps,
        }
    }
}

/// `[tenants.NAME.datasets.NAME]`: one stream of events of one schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// JSON Schema file, relative to the config file: a dataset of one schema version. Leave it
    /// out and list `versions` for several.
    pub schema: Option<PathBuf>,
    /// The version name of `schema`, carried in the `schema_version` header; `1` by default.
    pub schema_version: Option<String>,
    /// The dataset's schema versions, oldest first; the last is the newest, used for events
    /// that name no version (the `Schema-Version` request header names one).
    #[serde(default)]
    pub versions: Vec<SchemaVersionConfig>,
    /// How each version must relate to the ones before it; `backward` by default.
    #[serde(default)]
    pub compatibility: Compatibility,
    /// Partition key.
    pub key: KeySpec,
    /// Raw topic name; default from `[naming]`.
    pub raw_topic: Option<String>,
    /// Clean topic name; default from `[naming]`.
    pub clean_topic: Option<String>,
    /// Partition count of the dataset's raw and clean topics; default from `[topic_defaults]`.
    pub partitions: Option<i32>,
    /// What the processor does between the raw and the clean topic.
    #[serde(default)]
    pub processing: crate::pipeline::ProcessingConfig,
    /// Columns the sinks write (besides the metadata columns every sink writes).
    #[serde(default)]
    pub columns: Vec<crate::pipeline::ColumnConfig>,
    /// How fresh the dataset's data must be; no objective when absent.
    pub freshness: Option<FreshnessObjective>,
    /// JSON pointer to the event's own time in its clean record (RFC 3339, or seconds or
    /// milliseconds since the epoch), e.g. `/event_time`: freshness then reports how late
    /// events arrive.
    pub event_time: Option<String>,
    /// Rate limits of this dataset's HTTP ingestion, within the tenant's; none when absent.
    pub quota: Option<QuotaConfig>,
}

/// `[tenants.NAME.datasets.NAME.freshness]`: how fresh a dataset's data must be. Each is
/// optional; the dataset is *breached* when one is exceeded and *at risk* from half the age
/// (or 80 % of the latency), or while a stage falls behind or stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessObjective {
    /// The oldest record a stage (processor, sink) may leave unread, in seconds.
    pub max_age_secs: Option<u64>,
    /// The 99th percentile from ingestion to the clean topic, in milliseconds.
    pub p99_end_to_end_ms: Option<u64>,
}

/// One entry of a dataset's `versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaVersionConfig {
    /// The version's name, e.g. `2` (letters, digits, `.`, `_`, `-`).
    pub version: String,
    /// Its JSON Schema file, relative to the config file.
    pub schema: PathBuf,
}

/// How a dataset's schema versions must relate, as a schema registry defines it for JSON Schema.
/// *Backward*: the new version accepts every event the previous one accepted (consumers on the
/// new version read old data). *Forward*: the previous version accepts every event the new one
/// accepts (consumers still on the old version read new data). *Full*: both. The `_transitive`
/// forms check against every earlier version, not only the previous one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// No check.
    None,
    /// The new version reads the previous one's events.
    #[default]
    Backward,
    /// The new version reads every earlier version's events.
    BackwardTransitive,
    /// The previous version reads the new one's events.
    Forward,
    /// Every earlier version reads the new one's events.
    ForwardTransitive,
    /// Backward and forward.
    Full,
    /// Backward and forward against every earlier version.
    FullTransitive,
}

impl Compatibility {
    /// Every mode, in the order documented.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    /// Its name in the configuration, e.g. `backward_transitive`.
    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "none",
            Compatibility::Backward => "backward",
            Compatibility::BackwardTransitive => "backward_transitive",
            Compatibility::Forward => "forward",
            Compatibility::ForwardTransitive => "forward_transitive",
            Compatibility::Full => "full",
            Compatibility::FullTransitive => "full_transitive",
        }
    }

    /// Whether new versions must read earlier versions' events.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether earlier versions must read new versions' events.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether every earlier version is checked, not only the previous one.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

impl std::str::FromStr for Compatibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Compatibility::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Compatibility::ALL.iter().map(|c| c.name()).collect();
                format!("unknown compatibility \"{s}\"; one of {}", names.join(", "))
            })
    }
}

/// One entry of `api_keys`: a key by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyHashConfig {
    /// What the key is for, e.g. `ci-2026-12` (shown in logs, never the key).
    pub name: String,
    /// SHA-256 of the key, 64 hex digits.
    pub sha256: String,
}

/// `[tenants.NAME]`: a tenant and its datasets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Human-readable name shown in the console.
    pub display_name: Option<String>,
    /// Name of the environment variable that holds the tenant's API key. The key itself is
    /// never written in the file.
    pub api_key_env: Option<String>,
    /// Development key used when `api_key_env` is unset or its variable is empty; printed at
    /// start-up so examples work out of the box. Leave it out in production.
    pub dev_api_key: Option<String>,
    /// More keys, stored as their SHA-256 (`streamlake keys new` makes one): several keys at
    /// once let a key be rotated without downtime; removing one and reloading (SIGHUP) refuses
    /// it at once.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyHashConfig>,
    /// Dead-letter topic name; default from `[naming]`.
    pub dlq_topic: Option<String>,
    /// Rate limits of the tenant's HTTP ingestion; none when absent.
    pub quota: Option<QuotaConfig>,
    /// The tenant's datasets, by id.
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetConfig>,
}

/// `[tenants.NAME.quota]`: token buckets over the tenant's HTTP ingestion (all its datasets). A
/// request over a bucket is answered 429 with `Retry-After` from the bucket, and nothing of it
/// is written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Events per second, sustained.
    pub events_per_sec: Option<u32>,
    /// Request body bytes per second, sustained.
    pub bytes_per_sec: Option<u32>,
    /// How many seconds of the rate may arrive at once (the buckets' size); default 1.
    #[serde(default = "default_burst_secs")]
    pub burst_secs: f64,
}

fn default_burst_secs() -> f64 {
    1.0
}

/// `[gateway]`: HTTP ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Requests of one tenant handled at once; more get 429.
    pub max_in_flight_per_tenant: usize,
    /// Bytes of request bodies held at once over all tenants (a body counts with its declared
    /// length, or `max_body_bytes` when chunked); a request that would exceed it gets 429.
    /// Together with the producer's queue (`queue.buffering.max.kbytes`) this bounds the
    /// gateway's memory under load.
    pub max_in_flight_bytes: usize,
    /// Events one request may carry; a larger batch is refused with 413 before any is written.
    pub max_events_per_request: usize,
    /// Seconds clients are told to wait (`Retry-After`) on 429 and 503.
    pub retry_after_secs: u64,
    /// Value of the `producer_service` header.
    pub producer_service: String,
    /// Seconds a request's body may take to arrive once its headers did; a slower body is
    /// answered 408 and frees the tenant's request slot.
    pub body_timeout_secs: u64,
    /// Milliseconds a request waits for the broker's acknowledgement before it is answered 503
    /// ("may have been written": the record stays queued and may still be written).
    pub produce_timeout_ms: u64,
    /// Seconds to wait for in-flight requests and the producer queue at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Seconds a request's `Idempotency-Key` is remembered after its answer: a retry within
    /// them gets the first answer and writes nothing again.
    pub idempotency_window_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_in_flight_per_tenant: 64,
            max_events_per_request: 10_000,
            max_in_flight_bytes: 64 * 1024 * 1024,
            retry_after_secs: 1,
            producer_service: "streamlake-gateway".to_owned(),
            body_timeout_secs: 10,
            produce_timeout_ms: 10_000,
            shutdown_timeout_secs: 30,
            idempotency_window_secs: 24 * 3600,
        }
    }
}

/// `[admin]`: the admin REST API (`/api`) and the web console (`/console`), served on
/// `http.listen` by `streamlake up` and `streamlake console`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Environment variable holding the admin token (full access). Tenants' API keys give
    /// access to their own tenant only.
    pub token_env: String,
    /// Development admin token used when the variable is unset or empty; printed at start-up so
    /// the console works out of the box. Leave it out in production.
    pub dev_token: Option<String>,
    /// Most records one message-browser or dead-letter request returns; larger `limit`s are
    /// refused with 400.
    pub max_messages: usize,
    /// Seconds between the console's samples of consumer lag and topic throughput; datasets'
    /// freshness is evaluated at each.
    pub sample_interval_secs: u64,
    /// URL that receives a JSON notice (POST) each time a dataset's freshness state changes.
    pub freshness_webhook: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token_env: "STREAMLAKE_ADMIN_TOKEN".to_owned(),
            dev_token: None,
            max_messages: 500,
            sample_interval_secs: 5,
            freshness_webhook: None,
        }
    }
}

/// `[mqtt]`: ingestion over MQTT. StreamLake subscribes to
/// `{topic_prefix}/{tenant}/{dataset}` with QoS 1 and a persistent session, and acknowledges a
/// message only after Kafka acknowledged the event (or its dead letter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Whether `streamlake up` runs MQTT ingestion.
    pub enabled: bool,
    /// MQTT broker host.
    pub host: String,
    /// MQTT broker port.
    pub port: u16,
    /// Client id; the broker keeps unacknowledged messages for it across reconnects.
    pub client_id: String,
    /// First topic level; events are published to `{topic_prefix}/{tenant}/{dataset}`.
    pub topic_prefix: String,
    /// User name, if the broker requires one.
    pub username: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Keep-alive interval in seconds.
    pub keep_alive_secs: u64,
    /// Messages ingested at once (acknowledged in order).
    pub max_in_flight: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: "streamlake".to_owned(),
            topic_prefix: "streamlake".to_owned(),
            username: None,
            password_env: None,
            keep_alive_secs: 30,
            max_in_flight: 64,
        }
    }
}
