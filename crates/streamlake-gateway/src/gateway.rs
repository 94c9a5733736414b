//! Everything a request needs, built once at start-up: tenants' keys and in-flight limits, the
//! ingestion core, the admin client for readiness, limits and metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use streamlake_config::{ApiKeySource, Config, GatewayConfig};
use streamlake_core::{DatasetId, Health, TenantId};
use streamlake_ingest::{IngestError, Ingestor, TenantKeys};
use streamlake_kafka::{Admin, AdminError, KafkaSettings};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::server::ServerLimits;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The ingestion core could not be set up.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The admin client could not be created.
    #[error("cannot create the admin client: {0}")]
    Admin(#[from] AdminError),
}

/// The ingestion gateway's shared state.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) keys: TenantKeys,
    /// Each tenant's requests in flight, bounded by `gateway.max_in_flight_per_tenant`.
    pub(crate) in_flight: BTreeMap<TenantId, Arc<Semaphore>>,
    /// Request bodies held at once, in KiB, bounded by `gateway.max_in_flight_bytes`.
    pub(crate) body_bytes: Arc<Semaphore>,
    /// Tenants' quotas (`[tenants.NAME.quota]`), for those that have one.
    pub(crate) quotas: BTreeMap<TenantId, crate::quota::TenantQuota>,
    /// Datasets' quotas (`[tenants.NAME.datasets.NAME.quota]`), within their tenant's.
    pub(crate) dataset_quotas: BTreeMap<TenantId, BTreeMap<DatasetId, crate::quota::TenantQuota>>,
    pub(crate) ingestor: Arc<Ingestor>,
    pub(crate) admin: Admin,
    pub(crate) settings: GatewayConfig,
    pub(crate) metrics: Metrics,
    /// What the platform's components report; `/readyz` is 503 while one is down.
    pub(crate) health: Health,
    /// Timeouts and the connection cap of the HTTP server.
    pub(crate) server_limits: ServerLimits,
    /// Requests sent with an `Idempotency-Key`: the tenants' idempotency logs.
    pub(crate) idempotency: crate::idempotency::Idempotency,
}

impl Gateway {
    /// Compiles every schema and creates the clients. Quiet: a server calls
    /// [`Gateway::announce`] to log what an operator should know at start-up.
    pub fn new(config: &Config, kafka: &KafkaSettings) -> Result<Self, GatewayError> {
        let metrics = Metrics::new();
        let ingestor = Arc::new(Ingestor::new(config, kafka, &metrics.registry)?);
        let keys = TenantKeys::from_config(config);
        let mut in_flight = BTreeMap::new();
        for t in config.tenants.values() {
            in_flight.insert(
                t.id.clone(),
                Arc::new(Semaphore::new(config.gateway.max_in_flight_per_tenant)),
            );
        }
        let quotas = config
            .tenants
            .values()
            .filter_map(|t| {
                Some((
                    t.id.clone(),
                    crate::quota::TenantQuota::new(t.quota.as_ref()?),
                ))
            })
            .collect();
        let dataset_quotas = config
            .tenants
            .values()
            .map(|t| {
                let quotas: BTreeMap<_, _> = t
                    .datasets
                    .values()
                    .filter_map(|d| {
                        Some((
                            d.id.clone(),
                            crate::quota::TenantQuota::new(d.quota.as_ref()?),
                        ))
                    })
                    .collect();
                (t.id.clone(), quotas)
            })
            .filter(|(_, quotas)| !quotas.is_empty())
            .collect();
        Ok(Self {
            keys,
            in_flight,
            quotas,
            dataset_quotas,
            body_bytes: Arc::new(Semaphore::new(
                config.gateway.max_in_flight_bytes.div_ceil(1024),
            )),
            ingestor,
            admin: Admin::new(kafka)?,
            settings: config.gateway.clone(),
            server_limits: ServerLimits {
                header_read_timeout: Duration::from_secs(config.http.header_read_timeout_secs),
                max_connections: config.http.max_connections,
                retry_after_secs: config.gateway.retry_after_secs,
                shutdown_timeout: Duration::from_secs(config.gateway.shutdown_timeout_secs),
            },
            metrics,
            health: Health::new(),
            idempotency: crate::idempotency::Idempotency::new(config, kafka),
        })
    }

    /// The ingestion core, for the other transports (MQTT, pollers, generators, replay).
    pub fn ingestor(&self) -> &Arc<Ingestor> {
        &self.ingestor
    }

    /// Reports readiness from `health` too (e.g. the managed broker's nodes), besides the
    /// gateway's own check that the broker answers.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Serves `registry`'s metrics on `/metrics` with the gateway's; `refresh` runs before each
    /// scrape (to bring counters up to what they follow). Its metric names must not collide
    /// with the gateway's (`streamlake_gateway_*`).
    pub fn serve_metrics(
        &self,
        registry: prometheus::Registry,
        refresh: impl Fn() + Send + Sync + 'static,
    ) {
        self.metrics
            .extra
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((registry, Box::new(refresh)));
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
        for (tenant, dataset, warning) in self.ingestor.key_warnings() {
            tracing::warn!(%tenant, %dataset, warning, "key policy");
        }
    }

    /// The tenant whose API key `token` is (compared in constant time), for other HTTP
    /// surfaces that accept tenant keys.
    pub fn tenant_of_key(&self, token: &str) -> Option<&TenantId> {
        let tenant = self.keys.lookup(token)?;
        // The configured tenant's id, borrowed from the gateway for as long as it lives.
        self.in_flight.get_key_value(&tenant).map(|(id, _)| id)
    }

    /// Replaces the tenants' API keys with those of `config` (on SIGHUP): a key it no longer
    /// holds is refused from now on. Returns how many keys each tenant has.
    pub fn reload_keys(&self, config: &Config) -> Vec<(TenantId, usize)> {
        self.keys.replace(config)
    }

    /// Waits for every queued record to be acknowledged (bounded by the shutdown timeout).
    pub fn flush(&self) {
        self.ingestor
            .flush(Duration::from_secs(self.settings.shutdown_timeout_secs));
    }
}
