//! Everything a request needs, built once at start-up: tenants' keys and topics, compiled
//! schemas, the producer, limits and metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use streamlake_config::{ApiKeySource, Config, GatewayConfig};
use streamlake_core::{DatasetId, Health, TenantId};
use streamlake_kafka::{
    Admin, AdminError, KafkaError, KafkaSettings, Producer, GATEWAY_PRODUCER_DEFAULTS,
};
use streamlake_schema::{SchemaError, SchemaRegistry};
use tokio::sync::Semaphore;

use crate::auth::Keys;
use crate::metrics::Metrics;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Dataset schemas that do not compile.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Schemas(Vec<SchemaError>),
    /// The producer could not be created.
    #[error("cannot create the producer: {0}")]
    Producer(#[from] KafkaError),
    /// The admin client could not be created.
    #[error("cannot create the admin client: {0}")]
    Admin(#[from] AdminError),
}

/// Where a tenant's events go.
#[derive(Debug)]
pub(crate) struct TenantRoute {
    pub(crate) dlq_topic: String,
    pub(crate) raw_topics: BTreeMap<DatasetId, String>,
    pub(crate) in_flight: Arc<Semaphore>,
    /// The tenant's produce-latency histogram, looked up once instead of per event.
    pub(crate) produce_latency: prometheus::Histogram,
}

/// The ingestion gateway's shared state.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) keys: Keys,
    pub(crate) tenants: BTreeMap<TenantId, TenantRoute>,
    pub(crate) schemas: SchemaRegistry,
    pub(crate) producer: Producer,
    pub(crate) admin: Admin,
    pub(crate) settings: GatewayConfig,
    pub(crate) metrics: Metrics,
    /// What the platform's components report; `/readyz` is 503 while one is down.
    pub(crate) health: Health,
}

impl Gateway {
    /// Compiles every schema and creates the clients. Quiet: a server calls
    /// [`Gateway::announce`] to log what an operator should know at start-up.
    pub fn new(config: &Config, kafka: &KafkaSettings) -> Result<Self, GatewayError> {
        let schemas = SchemaRegistry::from_config(config).map_err(GatewayError::Schemas)?;
        let mut keys = Keys::default();
        let mut tenants = BTreeMap::new();
        let metrics = Metrics::new();
        for t in config.tenants.values() {
            if let Some(key) = &t.api_key {
                keys.insert(t.id.clone(), key.expose_secret());
            }
            tenants.insert(
                t.id.clone(),
                TenantRoute {
                    dlq_topic: t.dlq_topic.clone(),
                    raw_topics: t
                        .datasets
                        .values()
                        .map(|d| (d.id.clone(), d.raw_topic.clone()))
                        .collect(),
                    in_flight: Arc::new(Semaphore::new(config.gateway.max_in_flight_per_tenant)),
                    produce_latency: metrics.produce_latency.with_label_values(&[t.id.as_str()]),
                },
            );
        }
        Ok(Self {
            keys,
            tenants,
            schemas,
            producer: Producer::from_config(kafka.producer_config_over(GATEWAY_PRODUCER_DEFAULTS))?
                .with_deadline(Duration::from_millis(config.gateway.produce_timeout_ms)),
            admin: Admin::new(kafka)?,
            settings: config.gateway.clone(),
            metrics,
            health: Health::new(),
        })
    }

    /// Reports readiness from `health` too (e.g. the managed broker's nodes), besides the
    /// gateway's own check that the broker answers.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Logs development keys in use, tenants without a key and keys that cannot spread load;
    /// never logs a key from the environment.
    pub fn announce(&self, config: &Config) {
        for t in config.tenants.values() {
            match &t.api_key {
                Some(key) if key.source == ApiKeySource::Development => tracing::warn!(
                    tenant = %t.id,
                    dev_api_key = key.expose_secret(),
                    env = t.api_key_env.as_deref().unwrap_or("-"),
                    "tenant uses its development API key; set the environment variable to replace it"
                ),
                Some(_) => {}
                None => tracing::warn!(
                    tenant = %t.id,
                    env = t.api_key_env.as_deref().unwrap_or("-"),
                    "tenant has no API key: its requests are refused until the key's environment variable is set"
                ),
            }
        }
        for ((tenant, dataset), schema) in self.schemas.iter() {
            if let Some(w) = schema.key_warning() {
                tracing::warn!(%tenant, %dataset, warning = w, "key policy");
            }
        }
    }

    /// The tenant whose API key `token` is (compared in constant time), for other HTTP
    /// surfaces that accept tenant keys.
    pub fn tenant_of_key(&self, token: &str) -> Option<&TenantId> {
        self.keys.lookup(token)
    }

    /// Waits for every queued record to be acknowledged (bounded by the shutdown timeout).
    pub fn flush(&self) {
        let timeout = Duration::from_secs(self.settings.shutdown_timeout_secs);
        if let Err(e) = self.producer.flush(timeout) {
            tracing::error!(error = %e, in_flight = self.producer.in_flight(), "producer flush at shutdown failed; unacknowledged records may be lost");
        }
    }
}
