//! Ingestion for sources other than HTTP (MQTT, pollers, generators): the same validation, key,
//! metadata headers, acknowledged produce and dead letters as an HTTP request, one event at a
//! time, without authentication (a source is configured, not a client).

use streamlake_core::{DatasetId, TenantId};
use streamlake_kafka::{DeliveryReceipt, ProduceError};

use crate::body::Event;
use crate::gateway::Gateway;
use crate::ingest::{dead_letter_body, ingest, Outcome, Target};

/// What became of one event from a source.
#[derive(Debug)]
pub enum Ingested {
    /// Written to the dataset's raw topic.
    Accepted {
        /// The event's `ingestion_id`.
        ingestion_id: String,
        /// Where the broker stored it.
        receipt: DeliveryReceipt,
    },
    /// Refused by validation and written, with the reason, to the tenant's dead-letter topic.
    DeadLettered {
        /// The event's `ingestion_id`.
        ingestion_id: String,
        /// Why.
        reason: String,
        /// JSON pointer of the failing field.
        path: String,
        /// The schema keyword that failed.
        rule: String,
        /// Where the dead letter was written.
        dead_letter: DeliveryReceipt,
    },
    /// Not acknowledged by the broker; `error.possibly_persisted()` says whether it may have
    /// been written anyway. The source must not consider the event delivered.
    Failed {
        /// The event's `ingestion_id`.
        ingestion_id: String,
        /// Why.
        error: ProduceError,
    },
}

impl Ingested {
    /// Whether the broker acknowledged the event or its dead letter: the source may advance.
    pub fn acknowledged(&self) -> bool {
        !matches!(self, Ingested::Failed { .. })
    }
}

/// The configuration has no such tenant or dataset.
#[derive(Debug, thiserror::Error)]
#[error("unknown dataset {tenant}/{dataset}")]
pub struct UnknownDataset {
    /// Tenant.
    pub tenant: String,
    /// Dataset.
    pub dataset: String,
}

impl Gateway {
    /// Where events of `tenant`/`dataset` go.
    fn target<'a>(
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
        let route = self.tenants.get(tenant).ok_or_else(unknown)?;
        Ok(Target {
            tenant,
            dataset,
            raw_topic: route.raw_topics.get(dataset).ok_or_else(unknown)?,
            dlq_topic: &route.dlq_topic,
            schema: self.schemas.get(tenant, dataset).ok_or_else(unknown)?,
            ingested_at: Target::now(),
            producer_service,
            extra_headers,
            produce_latency: &route.produce_latency,
        })
    }

    /// Dead-letters bytes a source could not turn into an event (e.g. a record its mapping
    /// refused), with the reason, to the tenant's dead-letter topic (`error.stage = gateway`).
    #[allow(clippy::too_many_arguments)]
    pub async fn dead_letter(
        &self,
        tenant: &TenantId,
        dataset: &DatasetId,
        bytes: &[u8],
        reason: String,
        path: String,
        rule: String,
        producer_service: &str,
    ) -> Result<Ingested, UnknownDataset> {
        let target = self.target(tenant, dataset, producer_service, &[])?;
        let violation = streamlake_core::Violation { reason, path, rule };
        Ok(convert(
            dead_letter_body(self, &target, bytes, violation).await,
        ))
    }

    /// A fresh `ingestion_id` (UUID v7), for a source that may have to retry an event: passing
    /// the same id to every attempt lets sinks deduplicate an attempt that timed out but was
    /// written anyway.
    pub fn new_ingestion_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }

    /// Ingests one event's bytes for `tenant`/`dataset` as HTTP would, with `ingestion_id`
    /// (see [`Gateway::new_ingestion_id`]); `producer_service` becomes the `producer_service`
    /// header (e.g. `streamlake-generator-sensor`, `streamlake-mqtt`). Returns once the broker
    /// acknowledged the event or its dead letter, or gave up.
    pub async fn ingest(
        &self,
        tenant: &TenantId,
        dataset: &DatasetId,
        bytes: Vec<u8>,
        producer_service: &str,
        ingestion_id: String,
    ) -> Result<Ingested, UnknownDataset> {
        self.ingest_with_headers(tenant, dataset, bytes, producer_service, ingestion_id, &[])
            .await
    }

    /// [`Gateway::ingest`] with `extra_headers` after the metadata headers, on the raw record
    /// or on its dead letter (a dead-letter replay records its provenance this way).
    pub async fn ingest_with_headers(
        &self,
        tenant: &TenantId,
        dataset: &DatasetId,
        bytes: Vec<u8>,
        producer_service: &str,
        ingestion_id: String,
        extra_headers: &[(String, String)],
    ) -> Result<Ingested, UnknownDataset> {
        let target = self.target(tenant, dataset, producer_service, extra_headers)?;
        let mut event = Event::from_bytes(bytes);
        event.ingestion_id = Some(ingestion_id);
        let outcome = ingest(self, &target, event).await;
        self.metrics
            .events
            .with_label_values(&[tenant.as_str(), dataset.as_str(), outcome.label()])
            .inc();
        Ok(convert(outcome))
    }
}

/// The source-facing form of an outcome.
fn convert(outcome: Outcome) -> Ingested {
    match outcome {
        Outcome::Accepted {
            ingestion_id,
            receipt,
        } => Ingested::Accepted {
            ingestion_id,
            receipt,
        },
        Outcome::Rejected {
            ingestion_id,
            violation,
            dead_letter,
        } => Ingested::DeadLettered {
            ingestion_id,
            reason: violation.reason,
            path: violation.path,
            rule: violation.rule,
            dead_letter,
        },
        Outcome::Failed {
            ingestion_id,
            error,
        } => Ingested::Failed {
            ingestion_id,
            error,
        },
    }
}
