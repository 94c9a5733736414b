//! How an ingestion outcome is answered over HTTP: its status code and its entry in the
//! response body. The outcome itself is transport-neutral (`streamlake_ingest::Outcome`).

use axum::http::StatusCode;
use serde::Serialize;
use streamlake_ingest::{Outcome, MAX_RECORD_RULE};
use streamlake_kafka::{DeliveryReceipt, ProduceError};
use utoipa::ToSchema;

/// An outcome as HTTP answers it.
pub(crate) trait Answer {
    /// The event's own status: 200, 413, 422, 429 (queue full) or 503.
    fn status(&self) -> StatusCode;
    /// The outcome as the response reports it; `index` is its position in a batch.
    fn report(&self, index: Option<usize>) -> EventReport<'_>;
}

impl Answer for Outcome {
    /// The event's own status: 200, 413 (larger than a record can be), 422, 429 (queue full)
    /// or 503.
    fn status(&self) -> StatusCode {
        match self {
            Outcome::Accepted { .. } => StatusCode::OK,
            Outcome::Rejected { violation, .. } if violation.rule == MAX_RECORD_RULE => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Outcome::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::Failed {
                error: ProduceError::QueueFull { .. },
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Failed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The outcome as the response reports it; `index` is its position in a batch.
    fn report(&self, index: Option<usize>) -> EventReport<'_> {
        let mut r = EventReport {
            index,
            status: self.status().as_u16(),
            ingestion_id: "",
            topic: None,
            partition: None,
            offset: None,
            error: None,
            dead_letter: None,
            may_have_been_written: None,
        };
        match self {
            Outcome::Accepted {
                ingestion_id,
                receipt,
            } => {
                r.ingestion_id = ingestion_id;
                r.topic = Some(&receipt.topic);
                r.partition = Some(receipt.partition);
                r.offset = Some(receipt.offset);
            }
            Outcome::Rejected {
                ingestion_id,
                violation,
                dead_letter,
            } => {
                r.ingestion_id = ingestion_id;
                r.error = Some(ErrorReport::Violation {
                    reason: &violation.reason,
                    path: &violation.path,
                    rule: &violation.rule,
                });
                r.dead_letter = Some(dead_letter);
            }
            Outcome::Failed {
                ingestion_id,
                error,
            } => {
                r.ingestion_id = ingestion_id;
                r.error = Some(ErrorReport::Failure {
                    code: if matches!(error, ProduceError::QueueFull { .. }) {
                        "queue_full"
                    } else {
                        "broker_unavailable"
                    },
                    message: error.to_string(),
                });
                r.may_have_been_written = Some(error.possibly_persisted());
            }
        }
        r
    }
}

/// One event's outcome.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventResult)]
pub(crate) struct EventReport<'a> {
    /// Position in the batch (batches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<usize>,
    /// The event's own status: 200, 400, 413, 422, 429 or 503.
    pub(crate) status: u16,
    /// UUID v7, also in the record's `ingestion_id` header.
    pub(crate) ingestion_id: &'a str,
    /// Topic written (accepted events).
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    /// Partition written (accepted events).
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    /// Offset written (accepted events).
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    /// Why the event was not accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorReport<'a>>,
    /// Where the dead letter was written (rejected events).
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter: Option<&'a DeliveryReceipt>,
    /// On 503: whether the broker may have stored the event although it did not acknowledge
    /// (a retry may then duplicate it).
    #[serde(skip_serializing_if = "Option::is_none")]
    may_have_been_written: Option<bool>,
}

/// Why an event was not accepted: a violation of the schema or a gateway rule, or a failure to
/// write it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum ErrorReport<'a> {
    /// The event broke a rule.
    Violation {
        /// What was wrong, in words.
        reason: &'a str,
        /// JSON pointer of the failing field.
        path: &'a str,
        /// The schema keyword or gateway rule that failed.
        rule: &'a str,
    },
    /// The event could not be written.
    Failure {
        /// Machine-readable, e.g. `queue_full`, `broker_unavailable`.
        code: &'static str,
        /// What happened, in words.
        message: String,
    },
}
