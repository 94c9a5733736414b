//! Connection settings shared by every client, and the producer defaults StreamLake relies on.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use streamlake_config::Config;

/// How to reach Kafka, with librdkafka properties from the configuration.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Properties for every client.
    pub common: BTreeMap<String, String>,
    /// Producer-only properties; they override [`PRODUCER_DEFAULTS`].
    pub producer: BTreeMap<String, String>,
    /// Consumer-only properties.
    pub consumer: BTreeMap<String, String>,
}

/// Defaults for every client. librdkafka waits up to 10 s between reconnection attempts to a
/// broker that went away; a restarted broker on the same machine is back within seconds, and
/// every second more without a connection is a second of 503s at the gateway, so the wait is
/// capped at one second.
pub const CLIENT_DEFAULTS: &[(&str, &str)] = &[("reconnect.backoff.max.ms", "1000")];

/// Producer defaults (reliability rule 1 in docs/ARCHITECTURE.md). Idempotence is set explicitly:
/// librdkafka does not enable it by default. Keyed records are placed as the Java client places
/// them ([`DEFAULT_PARTITIONER`](crate::DEFAULT_PARTITIONER), not librdkafka's CRC32 default), so
/// a key lands in the same partition whichever client wrote it.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("partitioner", crate::partitioner::DEFAULT_PARTITIONER),
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("queue.buffering.max.messages", "100000"),
    ("message.timeout.ms", "30000"),
];

/// The gateway's producer defaults, over [`PRODUCER_DEFAULTS`]: each HTTP request waits for its
/// events' acknowledgements, so time spent lingering is added to every request; under load,
/// records queued while earlier requests are in flight still leave in batches.
///
/// The linger is 0.2 ms, below librdkafka's timer resolution on purpose: its broker thread
/// sleeps in whole milliseconds (rounded up) and, whenever it wakes (an acknowledgement
/// arriving, a first record queued), sends every partition batch older than the linger. An
/// idle gateway therefore still gathers for about a millisecond (a lone request's latency is
/// that of `linger.ms = 1`), while a busy one sends at the first wake-up 0.2 ms on: close to
/// the throughput of `linger.ms = 0`, mostly at the broker CPU per event of `1`. At saturation,
/// on a broker short of CPU, the smaller produce requests cost accepted events (12-15 % on two
/// shared cores; docs/BENCHMARKS.md, "The gateway's linger below a millisecond").
///
/// The queue is bounded at 128 MiB (librdkafka's default is 1 GiB): beyond it requests get 429
/// instead of the process growing. Properties set in the configuration override these too.
pub const GATEWAY_PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("linger.ms", "0.2"),
    ("queue.buffering.max.kbytes", "131072"),
];

/// A processor's producer defaults, over [`PRODUCER_DEFAULTS`]: a processor queues a whole
/// batch's outputs at once, and its checkpoint (exactly once: the commit) waits for them, so
/// lingering only delays every checkpoint; records queued together still leave together.
/// Properties set in the configuration override these too.
pub const PROCESSOR_PRODUCER_DEFAULTS: &[(&str, &str)] = &[("linger.ms", "1")];

impl KafkaSettings {
    /// Settings for a cluster at `bootstrap_servers`, with no extra properties.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            common: BTreeMap::new(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }

    /// Settings from the configuration; `bootstrap_servers` is the configured cluster or the
    /// managed broker's address.
    pub fn from_config(config: &Config, bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            common: config.kafka.properties.clone(),
            producer: config.kafka.producer.clone(),
            consumer: config.kafka.consumer.clone(),
        }
    }

    /// A client config with the client defaults, the bootstrap servers and the common
    /// properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        for (k, v) in CLIENT_DEFAULTS {
            cfg.set(*k, *v);
        }
        cfg.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.common {
            cfg.set(k, v);
        }
        cfg
    }

    /// A producer config: defaults, then common properties, then producer properties.
    pub fn producer_config(&self) -> ClientConfig {
        self.producer_config_over(&[])
    }

    /// A producer config with a role's own `defaults` (e.g. [`GATEWAY_PRODUCER_DEFAULTS`])
    /// between StreamLake's defaults and the configured properties.
    pub fn producer_config_over(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        for (k, v) in CLIENT_DEFAULTS
            .iter()
            .chain(PRODUCER_DEFAULTS)
            .chain(defaults)
        {
            cfg.set(*k, *v);
        }
        cfg.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in self.common.iter().chain(&self.producer) {
            cfg.set(k, v);
        }
        cfg
    }

    /// A consumer config: common properties, then consumer properties.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut cfg = self.client_config();
        for (k, v) in &self.consumer {
            cfg.set(k, v);
        }
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_defaults_sit_between_streamlake_defaults_and_configured_properties() {
        let mut settings = KafkaSettings::new("127.0.0.1:9092");
        let gateway = settings.producer_config_over(GATEWAY_PRODUCER_DEFAULTS);
        assert_eq!(gateway.get("linger.ms"), Some("0.2"));
        assert_eq!(gateway.get("acks"), Some("all"));
        assert_eq!(settings.producer_config().get("linger.ms"), Some("5"));

        settings
            .producer
            .insert("linger.ms".to_owned(), "20".to_owned());
        let gateway = settings.producer_config_over(GATEWAY_PRODUCER_DEFAULTS);
        assert_eq!(gateway.get("linger.ms"), Some("20"));
    }

    #[test]
    fn every_client_reconnects_within_a_second_unless_configured_otherwise() {
        let mut settings = KafkaSettings::new("127.0.0.1:9092");
        for cfg in [settings.producer_config(), settings.consumer_config()] {
            assert_eq!(cfg.get("reconnect.backoff.max.ms"), Some("1000"));
        }
        settings
            .common
            .insert("reconnect.backoff.max.ms".to_owned(), "5000".to_owned());
        for cfg in [settings.producer_config(), settings.consumer_config()] {
            assert_eq!(cfg.get("reconnect.backoff.max.ms"), Some("5000"));
        }
    }
}
