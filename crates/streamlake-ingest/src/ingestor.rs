//! [`Ingestor`]: everything ingestion needs, built once from the configuration: each tenant's
//! topics, the compiled schemas, one producer and the ingestion metrics. Shared by every
//! transport (HTTP, MQTT, pollers, generators, dead-letter replay).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use streamlake_config::Config;
use streamlake_core::{DatasetId, LatencyWindows, TenantId};
use streamlake_kafka::{KafkaError, KafkaSettings, Producer, GATEWAY_PRODUCER_DEFAULTS};
use streamlake_schema::{SchemaError, SchemaRegistry};

use crate::ingest::Target;
use crate::source::UnknownDataset;
use crate::throttle::Throttle;

/// Why ingestion could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Dataset schemas that do not compile.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Schemas(Vec<SchemaError>),
    /// The producer could not be created.
    #[error("cannot create the producer: {0}")]
    Producer(#[from] KafkaError),
}

/// Where a tenant's events go.
#[derive(Debug)]
struct Route {
    dlq_topic: String,
    raw_topics: BTreeMap<DatasetId, String>,
    /// The tenant's produce-latency histogram, looked up once instead of per event.
    produce_latency: prometheus::Histogram,
}

/// Ingestion's metrics: label values are tenant and dataset ids from the configuration and
/// outcomes from a fixed set.
#[derive(Debug)]
pub(crate) struct IngestMetrics {
    /// Events by tenant, dataset and outcome (`accepted`, `rejected`, `failed`).
    pub(crate) events: IntCounterVec,
    /// Time from produce to acknowledgement, by tenant.
    produce_latency: HistogramVec,
}

impl IngestMetrics {
    fn new(registry: &Registry) -> Self {
        let events = IntCounterVec::new(
            Opts::new("events_total", "Events by tenant, dataset and outcome"),
            &["tenant", "dataset", "outcome"],
        )
        .expect("constant metric definition");
        let produce_latency = HistogramVec::new(
            HistogramOpts::new(
                "produce_latency_seconds",
                "Time from produce to broker acknowledgement",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["tenant"],
        )
        .expect("constant metric definition");
        for c in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(produce_latency.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "cannot register an ingestion metric");
            }
        }
        Self {
            events,
            produce_latency,
        }
    }
}

/// The transport-neutral ingestion core.
#[derive(Debug)]
pub struct Ingestor {
    routes: BTreeMap<TenantId, Route>,
    pub(crate) schemas: SchemaRegistry,
    pub(crate) producer: Producer,
    pub(crate) metrics: IngestMetrics,
    /// The largest record the producer sends (`message.max.bytes`); a larger event is
    /// dead-lettered, not retried.
    pub(crate) max_record_bytes: usize,
    /// Reports of a full producer queue: one every 10 s, with the count of the others.
    pub(crate) queue_full_reports: Throttle,
    /// Recent latencies from ingestion to the raw topic's acknowledgement, per dataset.
    acknowledged: LatencyWindows,
}

/// librdkafka's `message.max.bytes` when the configuration does not set it.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

impl Ingestor {
    /// Compiles every schema and creates the producer (acks=all, idempotence, the gateway's
    /// 0.2 ms linger, `gateway.produce_timeout_ms` as each write's deadline); its metrics go to
    /// `registry`.
    pub fn new(
        config: &Config,
        kafka: &KafkaSettings,
        registry: &Registry,
    ) -> Result<Self, IngestError> {
        let schemas = SchemaRegistry::from_config(config).map_err(IngestError::Schemas)?;
        let metrics = IngestMetrics::new(registry);
        let routes = config
            .tenants
            .values()
            .map(|t| {
                let route = Route {
                    dlq_topic: t.dlq_topic.clone(),
                    raw_topics: t
                        .datasets
                        .values()
                        .map(|d| (d.id.clone(), d.raw_topic.clone()))
                        .collect(),
                    produce_latency: metrics.produce_latency.with_label_values(&[t.id.as_str()]),
                };
                (t.id.clone(), route)
            })
            .collect();
        let producer_config = kafka.producer_config_over(GATEWAY_PRODUCER_DEFAULTS);
        let max_record_bytes = producer_config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let producer = Producer::from_config(producer_config)?
            .with_deadline(Duration::from_millis(config.gateway.produce_timeout_ms));
        Ok(Self {
            routes,
            schemas,
            producer,
            metrics,
            max_record_bytes,
            queue_full_reports: Throttle::new(Duration::from_secs(10)),
            acknowledged: LatencyWindows::default(),
        })
    }

    /// The datasets of `tenant`, in order.
    pub fn datasets_of(&self, tenant: &TenantId) -> Vec<&DatasetId> {
        self.routes
            .get(tenant)
            .map(|r| r.raw_topics.keys().collect())
            .unwrap_or_default()
    }

    /// Where events of `tenant`/`dataset` go, accepted now, with `producer_service` as their
    /// `producer_service` header and `extra_headers` after the metadata headers.
    pub fn target<'a>(
        &'a self,
        tenant: &'a TenantId,
        dataset: &'a DatasetId,
        producer_service: &'a str,
        extra_headers: &'a [(String, String)],
    ) -> Result<Target<'a>, UnknownDataset> {
        let unknown = || UnknownDataset {
            tenant: tenant.to_string(),
            dataset: dataset.to_string(),
        };
        let route = self.routes.get(tenant).ok_or_else(unknown)?;
        let (dataset, raw_topic) = route
            .raw_topics
            .get_key_value(dataset)
            .ok_or_else(unknown)?;
        let schemas = self.schemas.get(tenant, dataset).ok_or_else(unknown)?;
        Ok(Target {
            tenant,
            dataset,
            raw_topic,
            dlq_topic: &route.dlq_topic,
            schemas,
            schema: schemas.newest(),
            ingested_at: Target::now(),
            producer_service,
            extra_headers,
            produce_latency: &route.produce_latency,
            acknowledged: &self.acknowledged,
        })
    }

    /// Warnings about keys that cannot spread load, by tenant and dataset.
    pub fn key_warnings(&self) -> Vec<(&TenantId, &DatasetId, &str)> {
        self.schemas
            .iter()
            .filter_map(|((tenant, dataset), schemas)| {
                schemas.newest().key_warning().map(|w| (tenant, dataset, w))
            })
            .collect()
    }

    /// Counts outcomes in the events metric, one update per outcome kind.
    pub fn count(&self, t: &Target<'_>, outcomes: &[crate::Outcome]) {
        for label in ["accepted", "rejected", "failed"] {
            let n = outcomes.iter().filter(|o| o.label() == label).count() as u64;
            if n > 0 {
                self.metrics
                    .events
                    .with_label_values(&[t.tenant.as_str(), t.dataset.as_str(), label])
                    .inc_by(n);
            }
        }
    }

    /// Recent latencies from ingestion to the raw topic's acknowledgement of the events this
    /// ingestor wrote, per dataset (the last [`LatencyWindows::KEPT`] of each).
    pub fn acknowledged(&self) -> &LatencyWindows {
        &self.acknowledged
    }

    /// Records queued in the producer or awaiting acknowledgement.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight()
    }

    /// Whether the producer's queue has room for `events` more now: a request that finds no
    /// room for even one can be refused before its body is read.
    pub fn has_room(&self, events: usize) -> bool {
        self.producer.has_room(events)
    }

    /// Waits up to `timeout` for every queued record to be acknowledged. Blocks its thread.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::error!(error = %e, in_flight = self.producer.in_flight(), "producer flush at shutdown failed; unacknowledged records may be lost");
        }
    }
}
