//! The HTTP surface: the ingestion endpoint, health, readiness, metrics and the OpenAPI
//! document. Response codes of the ingestion endpoint:
//!
//! | code | when |
//! |---|---|
//! | 200 | every event was acknowledged by the broker (single event: its receipt; batch: all receipts) |
//! | 207 | a batch with mixed outcomes; `results` holds each event's own status, in order |
//! | 400 | empty body, body not UTF-8, single body not JSON (dead-lettered), empty batch |
//! | 401 | no bearer key, or a key no tenant has |
//! | 403 | the key belongs to another tenant |
//! | 404 | the tenant has no such dataset |
//! | 413 | body over `gateway.max_body_bytes` (dead-lettered without its payload) |
//! | 415 | Content-Type is neither `application/json` nor `application/x-ndjson` |
//! | 422 | a single event failed validation (dead-lettered) |
//! | 429 | producer queue full or too many requests in flight for the tenant; `Retry-After` |
//! | 503 | the broker did not acknowledge; `Retry-After`; `may_have_been_written` says whether a retry may duplicate |

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use streamlake_core::DatasetId;
use streamlake_core::Violation;

use crate::auth::AuthError;
use crate::body::{parse, Framing, Parsed};
use crate::gateway::Gateway;
use crate::ingest::{dead_letter_body, ingest as ingest_event, ingest_all, Outcome, Target};

const OPENAPI: &str = include_str!("openapi.json");

/// The gateway's router; tests drive it over a real socket.
pub fn app(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/datasets/{dataset}/events",
            post(ingest),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(gw)
}

/// An error answer: `{"error": {"code", "message", ...}}`, plus `Retry-After` when retrying helps.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut r = (self.status, body).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Answers with a JSON body and, when an event was not acknowledged, `Retry-After`.
fn answer<T: serde::Serialize>(status: StatusCode, body: T, retry_after: Option<u64>) -> Response {
    let mut r = (status, Json(body)).into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

async fn ingest(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, dataset)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    gw.metrics.in_flight.inc();
    let (tenant_label, response) = handle(&gw, &tenant, &dataset, &headers, body).await;
    gw.metrics.in_flight.dec();
    gw.metrics
        .requests
        .with_label_values(&[tenant_label, response.status().as_str()])
        .inc();
    response
}

/// Handles one request; returns the tenant label for metrics (bounded: a configured tenant or
/// `unknown`) with the response.
async fn handle<'a>(
    gw: &'a Gateway,
    tenant: &str,
    dataset: &str,
    headers: &HeaderMap,
    body: Body,
) -> (&'a str, Response) {
    let authed = match gw.keys.authenticate(headers) {
        Ok(t) => t,
        Err(AuthError::Missing) => {
            return (
                "unknown",
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send the tenant's API key as `Authorization: Bearer <key>`",
                )
                .into_response(),
            )
        }
        Err(AuthError::Unknown) => {
            return (
                "unknown",
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the API key is not valid for any tenant",
                )
                .into_response(),
            )
        }
    };
    let label = authed.as_str();
    if authed.as_str() != tenant {
        return (
            label,
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this API key belongs to tenant {authed}, not {tenant}"),
            )
            .into_response(),
        );
    }
    let Some(route) = gw.tenants.get(authed) else {
        return (
            label,
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_tenant",
                format!("tenant {tenant} is not configured"),
            )
            .into_response(),
        );
    };
    let (dataset_id, raw_topic) = match DatasetId::new(dataset)
        .ok()
        .and_then(|d| route.raw_topics.get_key_value(&d))
    {
        Some(found) => found,
        None => {
            let known: Vec<&str> = route.raw_topics.keys().map(DatasetId::as_str).collect();
            return (
                label,
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_dataset",
                    format!(
                        "tenant {tenant} has no dataset {dataset:?}; its datasets are: {}",
                        known.join(", ")
                    ),
                )
                .into_response(),
            );
        }
    };
    let Some(schema) = gw.schemas.get(authed, dataset_id) else {
        return (
            label,
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_dataset",
                format!("dataset {dataset} has no schema"),
            )
            .into_response(),
        );
    };
    let Ok(_permit) = Arc::clone(&route.in_flight).try_acquire_owned() else {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "tenant {tenant} has {} requests in flight already; retry later",
                gw.settings.max_in_flight_per_tenant
            ),
        );
        e.retry_after = Some(gw.settings.retry_after_secs);
        return (label, e.into_response());
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(framing) = Framing::from_content_type(content_type) else {
        return (label, ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("Content-Type must be application/json (one event or an array) or application/x-ndjson (one event per line), got {:?}", content_type)).into_response());
    };
    let target = Target {
        tenant: authed,
        dataset: dataset_id,
        raw_topic,
        dlq_topic: &route.dlq_topic,
        schema,
        ingested_at: Target::now(),
        producer_service: &gw.settings.producer_service,
        extra_headers: &[],
        produce_latency: &route.produce_latency,
    };
    (label, events(gw, &target, framing, headers, body).await)
}

async fn events(
    gw: &Gateway,
    t: &Target<'_>,
    framing: Framing,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let limit = gw.settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = match declared {
        Some(n) if n > limit => None,
        _ => match axum::body::to_bytes(body, limit).await {
            Ok(b) => Some(b),
            Err(e) if e.to_string().contains("length limit") => None,
            Err(e) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("cannot read the request body: {e}"),
                )
                .into_response()
            }
        },
    };
    let Some(bytes) = bytes else {
        let violation = Violation {
            reason: format!("the body is larger than the limit of {limit} bytes (gateway.max_body_bytes); its payload was not kept"),
            path: String::new(),
            rule: "max_body_bytes".to_owned(),
        };
        let outcome = dead_letter_body(gw, t, b"", violation).await;
        count_all(gw, t, std::slice::from_ref(&outcome));
        return body_level(gw, StatusCode::PAYLOAD_TOO_LARGE, outcome);
    };
    if bytes.trim_ascii().is_empty() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the body is empty; send one JSON event, a JSON array of events, or NDJSON",
        )
        .into_response();
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let violation = Violation {
            reason: format!("the body is not valid UTF-8: {e}"),
            path: String::new(),
            rule: "utf8".to_owned(),
        };
        let outcome = dead_letter_body(gw, t, &bytes, violation).await;
        count_all(gw, t, std::slice::from_ref(&outcome));
        return body_level(gw, StatusCode::BAD_REQUEST, outcome);
    }
    match parse(&bytes, framing) {
        Parsed::Single(event) => {
            let malformed = event.value.is_err();
            let outcome = ingest_event(gw, t, event).await;
            count_all(gw, t, std::slice::from_ref(&outcome));
            if malformed {
                return body_level(gw, StatusCode::BAD_REQUEST, outcome);
            }
            let retry = retry_after(gw, std::slice::from_ref(&outcome));
            answer(outcome.status(), outcome.report(None), retry)
        }
        Parsed::Batch(events) if events.is_empty() => ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_batch",
            "the batch holds no events",
        )
        .into_response(),
        Parsed::Batch(events) => {
            let outcomes = ingest_all(gw, t, events).await;
            count_all(gw, t, &outcomes);
            batch_answer(gw, &outcomes)
        }
    }
}

/// A body-level refusal that was dead-lettered: the given status, or the failure's own status
/// when the dead letter itself was not acknowledged.
fn body_level(gw: &Gateway, status: StatusCode, outcome: Outcome) -> Response {
    if let Outcome::Failed { .. } = outcome {
        let retry = retry_after(gw, std::slice::from_ref(&outcome));
        return answer(outcome.status(), outcome.report(None), retry);
    }
    let mut body = outcome.report(None);
    body.status = status.as_u16();
    answer(status, body, None)
}

/// Counts a batch's outcomes with one counter update per outcome kind.
fn count_all(gw: &Gateway, t: &Target<'_>, outcomes: &[Outcome]) {
    for label in ["accepted", "rejected", "failed"] {
        let n = outcomes.iter().filter(|o| o.label() == label).count() as u64;
        if n > 0 {
            gw.metrics
                .events
                .with_label_values(&[t.tenant.as_str(), t.dataset.as_str(), label])
                .inc_by(n);
        }
    }
}

fn retry_after(gw: &Gateway, outcomes: &[Outcome]) -> Option<u64> {
    outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Failed { .. }))
        .then_some(gw.settings.retry_after_secs)
}

/// A batch's answer: counts and each event's report, in request order.
#[derive(serde::Serialize)]
struct BatchReport<'a> {
    accepted: usize,
    rejected: usize,
    failed: usize,
    results: Vec<crate::ingest::EventReport<'a>>,
}

fn batch_answer(gw: &Gateway, outcomes: &[Outcome]) -> Response {
    let count = |label: &str| outcomes.iter().filter(|o| o.label() == label).count();
    let (accepted, rejected, failed) = (count("accepted"), count("rejected"), count("failed"));
    let first = outcomes[0].status();
    let status = if accepted == outcomes.len() {
        StatusCode::OK
    } else if failed == outcomes.len() && outcomes.iter().all(|o| o.status() == first) {
        first
    } else {
        StatusCode::MULTI_STATUS
    };
    let results = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| o.report(Some(i)))
        .collect();
    answer(
        status,
        BatchReport {
            accepted,
            rejected,
            failed,
            results,
        },
        retry_after(gw, outcomes),
    )
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let ready = match gw.health.ready() {
        Ok(()) => gw
            .admin
            .ping(Duration::from_secs(2))
            .await
            .map_err(|e| e.to_string()),
        Err(down) => Err(down),
    };
    match ready {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                e.to_string(),
            );
            err.retry_after = Some(gw.settings.retry_after_secs);
            err.into_response()
        }
    }
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    gw.metrics
        .queue_depth
        .set(i64::from(gw.producer.in_flight()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gw.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
