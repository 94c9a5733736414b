//! One event to Kafka: validated and keyed, it goes with its original bytes and the metadata
//! headers to the dataset's raw topic; refused, it goes to the tenant's dead-letter topic with
//! the reason. Either way the outcome is known only once the broker acknowledged (reliability
//! rules 1 and 2 in docs/ARCHITECTURE.md).

use std::time::SystemTime;

use streamlake_core::{headers as h, DatasetId, LatencyWindows, Stage, TenantId, Violation};
use streamlake_kafka::{
    DeliveryReceipt, Header, Headers, Late, Outgoing, OwnedHeaders, ProduceError,
};
use streamlake_schema::{DatasetSchema, DatasetSchemas, UnknownVersion};

use crate::event::Event;
use crate::ingestor::Ingestor;

/// Where one request's (or one source message's) events go.
#[derive(Debug)]
pub struct Target<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The dataset.
    pub dataset: &'a DatasetId,
    /// The dataset's raw topic.
    pub raw_topic: &'a str,
    /// The tenant's dead-letter topic.
    pub dlq_topic: &'a str,
    /// The dataset's schema versions.
    pub schemas: &'a DatasetSchemas,
    /// The version events are validated against and labelled with: the newest unless the
    /// request names one ([`Target::at_version`]).
    pub schema: &'a DatasetSchema,
    /// Acceptance time of the request, RFC 3339 UTC; shared by its events.
    pub ingested_at: String,
    /// Value of the `producer_service` header.
    pub producer_service: &'a str,
    /// Headers added after the metadata headers (a replay's provenance).
    pub extra_headers: &'a [(String, String)],
    /// The tenant's produce-latency histogram.
    pub produce_latency: &'a prometheus::Histogram,
    /// Recent produce latencies per dataset (ingestion to the raw topic's acknowledgement).
    pub acknowledged: &'a LatencyWindows,
}

impl Target<'_> {
    /// The request's acceptance time, formatted once per request.
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }

    /// Validates against schema version `version` (a request's `Schema-Version`) instead of
    /// the newest.
    pub fn at_version(mut self, version: &str) -> Result<Self, UnknownVersion> {
        self.schema = self.schemas.version(version)?;
        Ok(self)
    }
}

/// A fresh `ingestion_id`: a UUIDv7 (time-ordered), in its hyphenated lower-case form.
pub(crate) fn new_ingestion_id() -> String {
    // Encoded into a buffer rather than through `Display`: one id per event, on the hot path.
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// What became of one event.
#[derive(Debug)]
pub enum Outcome {
    /// Written to the raw topic.
    Accepted {
        /// The event's `ingestion_id`.
        ingestion_id: String,
        /// Where the broker stored it.
        receipt: DeliveryReceipt,
    },
    /// Refused and written to the dead-letter topic.
    Rejected {
        /// The event's `ingestion_id`.
        ingestion_id: String,
        /// Why.
        violation: Violation,
        /// Where the dead letter was written.
        dead_letter: DeliveryReceipt,
    },
    /// Not acknowledged by the broker (raw or dead-letter write).
    Failed {
        /// The event's `ingestion_id`.
        ingestion_id: String,
        /// Why; `possibly_persisted()` says whether it may have been written anyway.
        error: ProduceError,
    },
}

impl Outcome {
    /// `accepted`, `rejected` or `failed`: the outcome label of metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// The metadata headers of an event, then the target's extra headers, as name and
/// value pairs: one list for both forms below.
fn metadata_pairs<'a>(
    t: &'a Target<'_>,
    ingestion_id: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    [
        (h::TENANT, t.tenant.as_str()),
        (h::DATASET, t.dataset.as_str()),
        (h::SCHEMA_VERSION, t.schema.version()),
        (h::INGESTION_ID, ingestion_id),
        (h::PRODUCER_SERVICE, t.producer_service),
        (h::INGESTED_AT, t.ingested_at.as_str()),
        (h::CONTENT_TYPE, "application/json"),
    ]
    .into_iter()
    .chain(
        t.extra_headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    )
}

/// The metadata headers as [`Headers`], for dead letters (which add the error headers).
fn metadata(t: &Target<'_>, ingestion_id: &str) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in metadata_pairs(t, ingestion_id) {
        headers.push(name, value);
    }
    headers
}

/// The metadata headers straight into librdkafka's form: the accepted event's hot path.
fn owned_metadata(t: &Target<'_>, ingestion_id: &str) -> OwnedHeaders {
    metadata_pairs(t, ingestion_id).fold(
        OwnedHeaders::new_with_capacity(7 + t.extra_headers.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
}

/// What a record carries besides its key, value and headers, as librdkafka counts it; kept
/// free under `message.max.bytes` so an event that passes the check is not refused by the
/// producer.
const RECORD_OVERHEAD: usize = 512;

/// Bytes of a dead letter's payload kept from an event too large to write.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 4096;

/// The rule of a violation for an event larger than the largest record.
pub const MAX_RECORD_RULE: &str = "max_record_bytes";

/// Whether an event with `key` and `headers` bytes of metadata headers fits in one record.
fn fits(gw: &Ingestor, headers: usize, key: &str, bytes: &[u8]) -> Result<(), Violation> {
    let size = bytes.len() + key.len() + headers;
    let max = gw.max_record_bytes;
    if size + RECORD_OVERHEAD <= max {
        return Ok(());
    }
    Err(Violation::new(
        "",
        MAX_RECORD_RULE,
        format!(
            "the event is {size} bytes with its key and headers; the largest record is {} bytes ({max} in kafka.producer message.max.bytes, less {RECORD_OVERHEAD} of record overhead); the dead letter keeps its first {TRUNCATED_PAYLOAD_BYTES} bytes",
            max - RECORD_OVERHEAD
        ),
    ))
}

/// Validates, keys and writes one event, or dead-letters it.
pub async fn ingest(gw: &Ingestor, t: &Target<'_>, event: Event<'_>) -> Outcome {
    match ingest_all(gw, t, vec![event]).await.pop() {
        Some(outcome) => outcome,
        None => unreachable!("one outcome per event"),
    }
}

/// An event that passed validation, reduced to what is written.
struct Valid {
    index: usize,
    ingestion_id: String,
    key: String,
    bytes: bytes::Bytes,
}

/// Validates, keys and writes a request's events, dead-lettering the invalid ones; the
/// outcomes are in the events' order. The valid events are queued in order, so per-key order
/// holds, and wait for the broker together.
pub async fn ingest_all(gw: &Ingestor, t: &Target<'_>, events: Vec<Event<'_>>) -> Vec<Outcome> {
    ingest_all_late(gw, t, events).await.0
}

/// The events of a request still unacknowledged when it was answered (their outcome was
/// [`Outcome::Failed`] with a timeout), to learn later whether they were written.
#[derive(Debug)]
pub struct LateOutcomes {
    late: Late,
    /// The request index of each record of the produced batch.
    indices: Vec<usize>,
}

impl LateOutcomes {
    /// Whether every event's outcome was known in time.
    pub fn is_empty(&self) -> bool {
        self.late.is_empty()
    }

    /// Waits for the delivery reports still to come: each late event's request index and its
    /// acknowledgement, or the error that ended it.
    pub async fn settle(self) -> Vec<(usize, Result<DeliveryReceipt, ProduceError>)> {
        let indices = self.indices;
        self.late
            .settle()
            .await
            .into_iter()
            .map(|(i, result)| (indices[i], result))
            .collect()
    }
}

/// [`ingest_all`], with the events whose acknowledgement was still to come when the outcomes
/// were decided.
pub async fn ingest_all_late(
    gw: &Ingestor,
    t: &Target<'_>,
    events: Vec<Event<'_>>,
) -> (Vec<Outcome>, LateOutcomes) {
    let count = events.len();
    // The metadata headers' size but for the ingestion id, the same for every event here.
    let headers: usize = metadata_pairs(t, "")
        .map(|(name, value)| name.len() + value.len())
        .sum();
    let mut valid = Vec::with_capacity(count);
    let mut invalid = Vec::new();
    for (index, mut event) in events.into_iter().enumerate() {
        let ingestion_id = event.ingestion_id.take().unwrap_or_else(new_ingestion_id);
        let checked = event
            .value
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|v| t.schema.check(v))
            .and_then(|key| {
                fits(gw, headers + ingestion_id.len(), &key, &event.bytes).map(|()| key)
            });
        match checked {
            Ok(key) => valid.push(Valid {
                index,
                ingestion_id,
                key,
                bytes: event.bytes,
            }),
            Err(violation) => invalid.push((index, event, ingestion_id, violation)),
        }
    }
    let records = valid.iter().map(|v| Outgoing {
        key: Some(v.key.as_bytes()),
        payload: &v.bytes,
        headers: Some(owned_metadata(t, &v.ingestion_id)),
    });
    let dead_letters =
        invalid
            .into_iter()
            .map(|(index, event, ingestion_id, violation)| async move {
                let key = event
                    .value
                    .as_ref()
                    .ok()
                    .and_then(|v| t.schema.key_of(v).ok());
                let headers = metadata(t, &ingestion_id);
                let bytes = if violation.rule == MAX_RECORD_RULE {
                    &event.bytes[..event.bytes.len().min(TRUNCATED_PAYLOAD_BYTES)]
                } else {
                    &event.bytes[..]
                };
                let outcome =
                    dead_letter(gw, t, bytes, key, headers, ingestion_id, violation).await;
                (index, outcome)
            });
    let ((sent, late), dead_lettered) = futures::join!(
        gw.producer.send_all_late(t.raw_topic, records),
        futures::future::join_all(dead_letters)
    );
    let late = LateOutcomes {
        late,
        indices: valid.iter().map(|v| v.index).collect(),
    };
    let mut outcomes: Vec<Option<Outcome>> = std::iter::repeat_with(|| None).take(count).collect();
    t.acknowledged.record(
        t.tenant.as_str(),
        t.dataset.as_str(),
        streamlake_core::latency::now_ms(),
        sent.iter()
            .filter(|s| s.result.is_ok())
            .map(|s| i64::try_from(s.latency.as_millis()).unwrap_or(i64::MAX)),
    );
    // Observed locally and added to the shared histogram once per request.
    let produce_latency = t.produce_latency.local();
    for (v, sent) in valid.into_iter().zip(sent) {
        produce_latency.observe(sent.latency.as_secs_f64());
        let ingestion_id = v.ingestion_id;
        outcomes[v.index] = Some(match sent.result {
            Ok(receipt) => {
                tracing::debug!(tenant = %t.tenant, dataset = %t.dataset, topic = %receipt.topic, partition = receipt.partition, offset = receipt.offset, %ingestion_id, "event accepted");
                Outcome::Accepted {
                    ingestion_id,
                    receipt,
                }
            }
            Err(error) => {
                tracing::debug!(tenant = %t.tenant, dataset = %t.dataset, topic = %t.raw_topic, %ingestion_id, %error, may_have_been_written = error.possibly_persisted(), "produce failed");
                Outcome::Failed {
                    ingestion_id,
                    error,
                }
            }
        });
    }
    produce_latency.flush();
    for (index, outcome) in dead_lettered {
        outcomes[index] = Some(outcome);
    }
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    log_refusals(gw, t, &outcomes);
    (outcomes, late)
}

/// Logs a request's events that were not accepted in one line per kind, not one per event (a
/// 10,000-event batch of invalid events is one line; each event's reason is in its dead letter
/// and in the answer). A full producer queue is back-pressure that the answers report (429):
/// it is logged at most once per 10 s, with the count of the reports left out.
fn log_refusals(gw: &Ingestor, t: &Target<'_>, outcomes: &[Outcome]) {
    let rejected: Vec<(&String, &Violation)> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Rejected {
                ingestion_id,
                violation,
                ..
            } => Some((ingestion_id, violation)),
            _ => None,
        })
        .collect();
    if let Some((first_id, v)) = rejected.first() {
        tracing::warn!(tenant = %t.tenant, dataset = %t.dataset, events = rejected.len(), dlq = %t.dlq_topic, first_ingestion_id = %first_id, reason = %v.reason, path = %v.path, rule = %v.rule, "events dead-lettered (the first one's reason)");
    }
    let (full, failed): (Vec<_>, Vec<_>) = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed {
                ingestion_id,
                error,
            } => Some((ingestion_id, error)),
            _ => None,
        })
        .partition(|(_, e)| matches!(e, ProduceError::QueueFull { .. }));
    if let Some((first_id, error)) = failed.first() {
        let may_have_been_written = failed
            .iter()
            .filter(|(_, e)| e.possibly_persisted())
            .count();
        tracing::warn!(tenant = %t.tenant, dataset = %t.dataset, events = failed.len(), may_have_been_written, first_ingestion_id = %first_id, %error, "events not acknowledged by the broker (the first one's error)");
    }
    if let Some((_, ProduceError::QueueFull { queued })) = full.first() {
        if let Some(left_out) = gw.queue_full_reports.admit() {
            tracing::warn!(tenant = %t.tenant, dataset = %t.dataset, events = full.len(), queued, reports_left_out = left_out, "producer queue full: events answered 429 (reported at most every 10 s)");
        }
    }
}

/// Dead-letters a request body that could not be split into events (not UTF-8, too large).
pub async fn dead_letter_body(
    gw: &Ingestor,
    t: &Target<'_>,
    bytes: &[u8],
    violation: Violation,
) -> Outcome {
    let ingestion_id = new_ingestion_id();
    let headers = metadata(t, &ingestion_id);
    let outcome = dead_letter(gw, t, bytes, None, headers, ingestion_id, violation).await;
    log_refusals(gw, t, std::slice::from_ref(&outcome));
    outcome
}

async fn dead_letter(
    gw: &Ingestor,
    t: &Target<'_>,
    bytes: &[u8],
    key: Option<String>,
    mut headers: Headers,
    ingestion_id: String,
    violation: Violation,
) -> Outcome {
    let letter = violation.clone().dead_letter(Stage::Gateway);
    for (name, value) in letter.headers() {
        headers.push(name, value);
    }
    // Without a key, the ingestion id spreads dead letters over the partitions.
    let key = key.unwrap_or_else(|| ingestion_id.clone());
    match gw
        .producer
        .send(t.dlq_topic, Some(key.as_bytes()), bytes, &headers)
        .await
    {
        Ok(dead_letter) => {
            tracing::debug!(tenant = %t.tenant, dataset = %t.dataset, %ingestion_id, reason = %violation.reason, path = %violation.path, rule = %violation.rule, dlq = %dead_letter.topic, partition = dead_letter.partition, offset = dead_letter.offset, "event dead-lettered");
            Outcome::Rejected {
                ingestion_id,
                violation,
                dead_letter,
            }
        }
        Err(error) => {
            tracing::debug!(tenant = %t.tenant, dataset = %t.dataset, topic = %t.dlq_topic, %ingestion_id, %error, "dead letter not acknowledged");
            Outcome::Failed {
                ingestion_id,
                error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingestion_ids_are_hyphenated_v7_uuids_as_display_writes_them() {
        let id = new_ingestion_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(id, parsed.to_string());
        assert_ne!(id, new_ingestion_id());
    }
}
