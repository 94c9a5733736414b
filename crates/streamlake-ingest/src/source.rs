//! Ingestion for sources other than HTTP (MQTT, pollers, generators): the same validation, key,
//! metadata headers, acknowledged produce and dead letters as an HTTP request, one event at a
//! time, without authentication (a source is configured, not a client).

use streamlake_core::{DatasetId, TenantId, Violation};
use streamlake_kafka::{DeliveryReceipt, ProduceError};

use crate::event::Event;
use crate::ingest::{dead_letter_body, ingest, Outcome};
use crate::ingestor::Ingestor;

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

impl Ingestor {
    /// Dead-letters bytes a source could not turn into an event (e.g. a record its mapping
    /// refused), with the `violation`, to the tenant's dead-letter topic
    /// (`error.stage = gateway`).
    pub async fn dead_letter(
        &self,
        tenant: &TenantId,
        dataset: &DatasetId,
        bytes: &[u8],
        violation: Violation,
        producer_service: &str,
    ) -> Result<Ingested, UnknownDataset> {
        let target = self.target(tenant, dataset, producer_service, &[])?;
        Ok(convert(
            dead_letter_body(self, &target, bytes, violation).await,
        ))
    }

    /// A fresh `ingestion_id` (UUID v7), for a source that may have to retry an event: passing
    /// the same id to every attempt lets sinks deduplicate an attempt that timed out but was
    /// written anyway.
    pub fn new_ingestion_id() -> String {
        crate::ingest::new_ingestion_id()
    }

    /// Ingests one event's bytes for `tenant`/`dataset` as HTTP would, with `ingestion_id`
    /// (see [`Ingestor::new_ingestion_id`]); `producer_service` becomes the `producer_service`
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

    /// [`Ingestor::ingest`] with `extra_headers` after the metadata headers, on the raw record
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
        let bytes = bytes::Bytes::from(bytes);
        let mut event = Event::from_bytes(&bytes);
        event.ingestion_id = Some(ingestion_id);
        let outcome = ingest(self, &target, event).await;
        self.count(&target, std::slice::from_ref(&outcome));
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
