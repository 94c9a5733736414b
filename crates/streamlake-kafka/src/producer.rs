//! Acknowledged produce (SPEC K1). Every send resolves to the broker's acknowledgement or to an
//! error the caller must handle: a full local queue is [`ProduceError::QueueFull`], never a
//! silent wait or drop. Dropping a librdkafka producer purges its queue, so owners call
//! [`Producer::flush`] before letting go of it.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use serde::Serialize;

use crate::record::Headers;
use crate::settings::KafkaSettings;

/// Where the broker stored a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReceipt {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Why a record was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The local queue (`queue.buffering.max.messages`) is full: back off and retry.
    #[error("the producer queue is full ({queued} records waiting); retry later")]
    QueueFull {
        /// Records queued or in flight when it was refused.
        queued: i32,
    },
    /// No acknowledgement within `message.timeout.ms`. The record may still have been written.
    #[error(
        "no acknowledgement from the broker in time; the record may or may not have been written"
    )]
    TimedOut,
    /// The value could not be encoded as JSON.
    #[error("cannot encode the value as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The broker or client refused the record.
    #[error("produce failed: {0}")]
    Kafka(KafkaError),
    /// The producer was shut down before the record was acknowledged.
    #[error("the producer was closed before the record was acknowledged")]
    Closed,
}

impl ProduceError {
    /// Whether the record may have been persisted despite the error (DESIGN reliability rule 4).
    pub fn possibly_persisted(&self) -> bool {
        matches!(self, ProduceError::TimedOut | ProduceError::Closed)
    }

    fn from_kafka(e: KafkaError, queued: i32) -> Self {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull { queued },
            Some(RDKafkaErrorCode::MessageTimedOut) => ProduceError::TimedOut,
            _ => ProduceError::Kafka(e),
        }
    }
}

/// A producer with StreamLake's defaults (acks=all, idempotence, lz4, linger 5 ms). Cheap to
/// clone; clones share one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Producer {
    /// Creates a producer; fails when a property is unknown or invalid.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Ok(Self {
            inner: settings.producer_config().create()?,
        })
    }

    /// Sends raw bytes and waits for the acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &Headers,
    ) -> Result<DeliveryReceipt, ProduceError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if !headers.0.is_empty() {
            record = record.headers(headers.to_owned_headers());
        }
        let delivery = self
            .inner
            .send_result(record)
            .map_err(|(e, _)| ProduceError::from_kafka(e, self.in_flight()))?;
        match delivery.await {
            Err(_canceled) => Err(ProduceError::Closed),
            Ok(Err((e, _))) => Err(ProduceError::from_kafka(e, self.in_flight())),
            Ok(Ok(d)) => Ok(DeliveryReceipt {
                topic: topic.to_owned(),
                partition: d.partition,
                offset: d.offset,
            }),
        }
    }

    /// Encodes `value` as JSON and sends it.
    pub async fn send_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &T,
        headers: &Headers,
    ) -> Result<DeliveryReceipt, ProduceError> {
        let payload = serde_json::to_vec(value)?;
        self.send(topic, key, &payload, headers).await
    }

    /// Records queued or awaiting acknowledgement.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Waits until every queued record is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}
