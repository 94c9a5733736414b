//! Connection settings shared by every client, and the producer defaults StreamLake relies on.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use streamlake_config::Config;

/// What kind of broker the platform talks to. The embedded broker lacks some Kafka APIs and
/// has one dangerous one (docs/BROKER.md); callers check this before using them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The single-node broker `streamlake up` manages (tansu).
    Embedded,
    /// A Kafka cluster given by `kafka.bootstrap_servers`.
    External,
}

/// How to reach Kafka, with librdkafka properties from the configuration.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Which broker this is.
    pub kind: BrokerKind,
    /// Properties for every client.
    pub common: BTreeMap<String, String>,
    /// Producer-only properties; they override [`PRODUCER_DEFAULTS`].
    pub producer: BTreeMap<String, String>,
    /// Consumer-only properties.
    pub consumer: BTreeMap<String, String>,
}

/// Producer defaults (SPEC K1, DESIGN reliability rule 1). Idempotence is set explicitly:
/// librdkafka does not enable it by default.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("queue.buffering.max.messages", "100000"),
    ("message.timeout.ms", "30000"),
];

/// The gateway's producer defaults, over [`PRODUCER_DEFAULTS`]: each HTTP request waits for its
/// events' acknowledgements, so time spent lingering is added to every request; under load,
/// records queued while earlier requests are in flight still leave in batches. Properties set
/// in the configuration override these too.
pub const GATEWAY_PRODUCER_DEFAULTS: &[(&str, &str)] = &[("linger.ms", "1")];

impl KafkaSettings {
    /// Settings for a cluster at `bootstrap_servers`, with no extra properties.
    pub fn new(bootstrap_servers: impl Into<String>, kind: BrokerKind) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            kind,
            common: BTreeMap::new(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }

    /// Settings from the configuration; `bootstrap_servers` is the configured cluster or the
    /// embedded broker's address.
    pub fn from_config(config: &Config, bootstrap_servers: impl Into<String>) -> Self {
        let kind = if config.uses_embedded_broker() {
            BrokerKind::Embedded
        } else {
            BrokerKind::External
        };
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            kind,
            common: config.kafka.properties.clone(),
            producer: config.kafka.producer.clone(),
            consumer: config.kafka.consumer.clone(),
        }
    }

    /// A client config with the bootstrap servers and the common properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
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
        for (k, v) in PRODUCER_DEFAULTS.iter().chain(defaults) {
            cfg.set(*k, *v);
        }
        if self.kind == BrokerKind::Embedded {
            // A delivery timeout makes librdkafka bump the idempotent producer's epoch, and the
            // embedded broker's storage fails on the next produce of the bumped epoch and then
            // refuses every request until restarted (docs/BROKER.md). So records wait in the
            // queue until the broker is back; callers bound their wait with a deadline instead
            // (`Producer::with_deadline`), and a full queue is still reported.
            cfg.set("message.timeout.ms", "0");
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
        let mut settings = KafkaSettings::new("127.0.0.1:9092", BrokerKind::External);
        let gateway = settings.producer_config_over(GATEWAY_PRODUCER_DEFAULTS);
        assert_eq!(gateway.get("linger.ms"), Some("1"));
        assert_eq!(gateway.get("acks"), Some("all"));
        assert_eq!(settings.producer_config().get("linger.ms"), Some("5"));

        settings
            .producer
            .insert("linger.ms".to_owned(), "20".to_owned());
        let gateway = settings.producer_config_over(GATEWAY_PRODUCER_DEFAULTS);
        assert_eq!(gateway.get("linger.ms"), Some("20"));
    }
}
