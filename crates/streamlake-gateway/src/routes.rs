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
//! | 409 | another attempt of the request with this `Idempotency-Key` is being written; `Retry-After` |
//! | 422 | a single event failed validation (dead-lettered), or the `Idempotency-Key` was used for another request |
//! | 429 | producer queue full (or without room for the whole batch), too many requests in flight for the tenant, or too many request bytes held; `Retry-After` |
//! | 503 | the broker did not acknowledge; `Retry-After`; `may_have_been_written` says whether a retry may duplicate (with an `Idempotency-Key` it never does) |

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use streamlake_core::DatasetId;
use streamlake_core::Violation;
use tokio::sync::OwnedSemaphorePermit;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use streamlake_ingest::{
    dead_letter_body, ingest as ingest_event, ingest_all, ingest_all_late, parse, Framing, Outcome,
    Parsed, PartitionPreview, PreviewError, Target,
};

use crate::answer::{Answer, EventReport};
use crate::auth::AuthError;
use crate::gateway::Gateway;
use crate::idempotency::{self, Stored, Verdict};
use crate::openapi::ErrorBody;

/// The document's frame; the paths come from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamLake ingestion gateway",
        version = "1",
        description = "Events are validated against the dataset's JSON Schema, keyed, given \
            metadata headers and written to the dataset's raw Kafka topic. The answer comes only \
            after the broker acknowledged the write. Invalid events are written to the tenant's \
            dead-letter topic with the reason."
    ),
    components(schemas(EventReport<'static>, BatchReport<'static>, ErrorBody))
)]
struct ApiDoc;

/// Declares the answers whose body depends on whether the request was one event or a batch.
fn ingest_bodies(doc: &mut utoipa::openapi::OpenApi) {
    let events = "/v1/tenants/{tenant}/datasets/{dataset}/events";
    for (status, schemas) in [
        ("200", &["EventResult", "BatchResult"][..]),
        ("400", &["EventResult", "Error"]),
        ("413", &["EventResult", "Error"]),
        ("422", &["EventResult", "Error"]),
        ("429", &["EventResult", "BatchResult", "Error"]),
        ("503", &["EventResult", "BatchResult", "Error"]),
    ] {
        crate::openapi::one_of(doc, events, status, schemas);
    }
}

/// The ingestion route, described by its annotation.
fn ingestion() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(ingest))
}

/// The partition preview, described by its annotation.
fn preview() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(partition))
}

/// Health, readiness, metrics and this document, described by their annotations.
fn service() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// The gateway's OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ingestion().merge(preview()).merge(service()).into_openapi();
    ingest_bodies(&mut doc);
    crate::openapi::finish(&mut doc);
    doc
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    openapi_document()
        .to_pretty_json()
        .expect("an OpenAPI document serializes")
});

/// The gateway's router; tests drive it over a real socket.
pub fn app(gw: Arc<Gateway>) -> Router {
    let ingestion = ingestion().route_layer(axum::middleware::from_fn_with_state(
        Arc::clone(&gw),
        track_requests,
    ));
    let (router, _) = ingestion
        .merge(preview())
        .merge(service())
        .split_for_parts();
    router.with_state(gw)
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
        let body = Json(ErrorBody::new(self.code, self.message));
        let mut r = (self.status, body).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Answers with a JSON body and, when an event was not acknowledged, `Retry-After`.
fn answer<T: Serialize>(status: StatusCode, body: T, retry_after: Option<u64>) -> Response {
    let mut r = (status, Json(body)).into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Why a request was refused as a whole, before or instead of its events' own outcomes.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("send the tenant's API key as `Authorization: Bearer <key>`")]
    MissingKey,
    #[error("the API key is not valid for any tenant")]
    UnknownKey,
    #[error("this API key belongs to tenant {authed}, not {tenant}")]
    WrongTenant { authed: String, tenant: String },
    #[error("tenant {0} is not configured")]
    UnknownTenant(String),
    #[error("tenant {tenant} has no dataset {dataset:?}; its datasets are: {known}")]
    UnknownDataset {
        tenant: String,
        dataset: String,
        known: String,
    },
    #[error("tenant {tenant} has {limit} requests in flight already; retry later")]
    TooManyInFlight {
        tenant: String,
        limit: usize,
        retry_after: u64,
    },
    #[error("{scope} is over its quota of {per_sec} {unit} per second ([{table}]): this request needs {asked}; retry in {retry_after} s")]
    OverQuota {
        scope: String,
        table: String,
        unit: &'static str,
        asked: u32,
        per_sec: u32,
        retry_after: u64,
    },
    #[error("this request carries {asked} {unit}, more than {scope}'s quota lets through at once ({burst}; [{table}]): split it")]
    OverBurst {
        scope: String,
        table: String,
        unit: &'static str,
        asked: u32,
        burst: u32,
    },
    #[error("the producer queue is full ({queued} records waiting for the broker); retry in {retry_after} s")]
    QueueFull { queued: i32, retry_after: u64 },
    #[error("the gateway holds {limit_mib} MiB of request bodies already (gateway.max_in_flight_bytes); retry in {retry_after} s")]
    TooManyBytes { limit_mib: usize, retry_after: u64 },
    #[error("Content-Type must be application/json (one event or an array) or application/x-ndjson (one event per line), got {0:?}")]
    UnsupportedMediaType(String),
    #[error("cannot read the request body: {0}")]
    UnreadableBody(String),
    #[error("the body did not arrive within {0} s (gateway.body_timeout_secs)")]
    SlowBody(u64),
    #[error("the body is empty; send one JSON event, a JSON array of events, or NDJSON")]
    EmptyBody,
    #[error("the batch holds no events")]
    EmptyBatch,
    #[error("the batch holds {count} events; at most {limit} per request (gateway.max_events_per_request): split it")]
    TooManyEvents { count: usize, limit: usize },
    #[error("Content-Encoding {0:?} is not accepted: send the body uncompressed")]
    UnsupportedEncoding(String),
    #[error(
        "no key in the event: {reason} (at {path:?}); send one JSON event, or the key as ?key="
    )]
    NoKey { reason: String, path: String },
    #[error(transparent)]
    NoPreview(#[from] PreviewError),
    #[error("{0}")]
    BadIdempotencyKey(String),
    #[error("{0}")]
    BadSchemaVersion(String),
    #[error("Idempotency-Key {key:?} was used for a different request to this dataset within gateway.idempotency_window_secs; send a new request with a new key")]
    IdempotencyKeyReused { key: String },
    #[error("another attempt of this request (Idempotency-Key {key:?}) is being written; retry in {retry_after} s for its answer")]
    InProgress { key: String, retry_after: u64 },
    #[error("{0}; nothing was written, retry in {1} s")]
    IdempotencyLog(idempotency::LogError, u64),
}

impl From<AuthError> for RequestError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Self::MissingKey,
            AuthError::Unknown => Self::UnknownKey,
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        use RequestError as E;
        let (status, code) = match &self {
            E::MissingKey | E::UnknownKey => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            E::WrongTenant { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            E::UnknownTenant(_) => (StatusCode::NOT_FOUND, "unknown_tenant"),
            E::UnknownDataset { .. } => (StatusCode::NOT_FOUND, "unknown_dataset"),
            E::TooManyInFlight { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            E::TooManyBytes { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_bytes"),
            E::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            E::OverQuota { .. } => (StatusCode::TOO_MANY_REQUESTS, "over_quota"),
            E::OverBurst { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "over_quota_burst"),
            E::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            E::UnreadableBody(_) => (StatusCode::BAD_REQUEST, "unreadable_body"),
            E::SlowBody(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            E::EmptyBody => (StatusCode::BAD_REQUEST, "empty_body"),
            E::EmptyBatch => (StatusCode::BAD_REQUEST, "empty_batch"),
            E::TooManyEvents { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_events"),
            E::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding")
            }
            E::NoKey { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "no_key"),
            E::NoPreview(PreviewError::NotByKey(_)) => (StatusCode::NOT_IMPLEMENTED, "no_preview"),
            E::NoPreview(PreviewError::Topic { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable")
            }
            E::BadIdempotencyKey(_) => (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            E::BadSchemaVersion(_) => (StatusCode::BAD_REQUEST, "unknown_schema_version"),
            E::IdempotencyKeyReused { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            E::InProgress { .. } => (StatusCode::CONFLICT, "idempotency_in_progress"),
            E::IdempotencyLog(..) => (StatusCode::SERVICE_UNAVAILABLE, "idempotency_unavailable"),
        };
        let mut e = ApiError::new(status, code, self.to_string());
        if let E::TooManyInFlight { retry_after, .. }
        | E::TooManyBytes { retry_after, .. }
        | E::QueueFull { retry_after, .. }
        | E::OverQuota { retry_after, .. }
        | E::InProgress { retry_after, .. }
        | E::IdempotencyLog(_, retry_after) = self
        {
            e.retry_after = Some(retry_after);
        }
        e.into_response()
    }
}

/// Counts a request as in flight for as long as it lives, so a request whose future is
/// dropped (the client went away) leaves the gauge as it found it.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The authenticated tenant of a request, left on its response for the request metrics.
#[derive(Clone)]
struct TenantLabel(streamlake_core::TenantId);

/// The ingestion route's metrics layer: requests in flight (a drop guard, so a request whose
/// future is dropped is no longer counted) and requests by tenant and status. The tenant label
/// is bounded: a configured tenant, or `unknown` before authentication succeeded.
async fn track_requests(
    State(gw): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let _in_flight = InFlight::enter(&gw.metrics.in_flight);
    let response = next.run(request).await;
    let tenant = response
        .extensions()
        .get::<TenantLabel>()
        .map_or("unknown", |t| t.0.as_str());
    gw.metrics
        .requests
        .with_label_values(&[tenant, response.status().as_str()])
        .inc();
    response
}

/// Ingest one event, a JSON array of events, or NDJSON.
///
/// The answer comes after the broker acknowledged every write: a single event answers its own
/// status; a batch answers 200 when every event was accepted, 207 with each event's status in
/// request order when outcomes differ.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/datasets/{dataset}/events",
    security(("bearer" = [])),
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("dataset" = String, Path, description = "Dataset name"),
        ("Schema-Version" = Option<String>, Header, description = "The schema version the events follow (one of the dataset's `versions`); the newest when absent. Recorded in each record's `schema_version` header; an unknown version is 400 `unknown_schema_version`, nothing written."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a request repeated with the same key (1 to 255 printable ASCII characters, per tenant and dataset, remembered for gateway.idempotency_window_secs) gets the first answer, with `Idempotent-Replayed: true`, and writes nothing again; the same key with another body is 422."),
    ),
    request_body(description = "One event (an object), an array of events, or one event per line",
        content(("application/json"), ("application/x-ndjson"))),
    responses(
        (status = 200, description = "Every event acknowledged. One event: its receipt; a batch: all receipts.",
            headers(("Idempotent-Replayed" = String, description = "`true` when the answer is a stored one: the request was written before under its Idempotency-Key"))),
        (status = 207, body = BatchReport<'static>, description = "A batch with mixed outcomes; each result carries its own status, in request order."),
        (status = 400, description = "Empty body, body not UTF-8 or not JSON (dead-lettered), empty batch, an unknown Schema-Version."),
        (status = 401, description = "No bearer key, or an unknown key."),
        (status = 403, description = "The key belongs to another tenant."),
        (status = 404, description = "Unknown tenant or dataset."),
        (status = 408, description = "The body did not arrive within gateway.body_timeout_secs."),
        (status = 413, description = "Body over gateway.max_body_bytes (dead-lettered without payload), an event over the broker's record size (dead-lettered, truncated), or more events than gateway.max_events_per_request."),
        (status = 409, description = "Another attempt of the request with this Idempotency-Key is being written; see Retry-After.",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 415, description = "Content-Type other than JSON or NDJSON, or a Content-Encoding."),
        (status = 422, description = "The single event failed validation and was dead-lettered, or the Idempotency-Key was used for a different request."),
        (status = 429, description = "Producer queue full, too many requests in flight for the tenant, or too many request bytes held; see Retry-After.",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The broker did not acknowledge (see may_have_been_written), or the idempotency log cannot be used (nothing written); see Retry-After.",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn ingest(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, dataset)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let authed = match crate::auth::authenticate(&gw, &headers) {
        Ok(authed) => authed,
        Err(e) => return refuse(&gw, &headers, body, RequestError::from(e)).await,
    };
    let key = match headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| idempotency::check_key(v.as_bytes()))
    {
        None => None,
        Some(Ok(key)) => Some(key.to_owned()),
        Some(Err(why)) => {
            return refuse(&gw, &headers, body, RequestError::BadIdempotencyKey(why)).await
        }
    };
    let mut response = match admit(&gw, authed, &tenant, &dataset, &headers) {
        Ok((target, framing, _permit)) => {
            events(&gw, &target, framing, &headers, body, key.as_deref())
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        Err(e) => refuse(&gw, &headers, body, e).await,
    };
    response
        .extensions_mut()
        .insert(TenantLabel(authed.clone()));
    response
}

/// The body length the request declares (`Content-Length`), if any.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Longest a refused request's body is read for before the answer goes out anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers a request refused before its body was read. The body is read and dropped first (up
/// to `gateway.max_body_bytes`, for at most [`DRAIN_TIMEOUT`]): a client still uploading would
/// otherwise see the connection reset instead of the answer and its `Retry-After`. Each chunk
/// is dropped as it arrives, so refusing holds no body in memory: under overload most requests
/// are refused, and collecting each one's body would cost as much memory as admitting it.
async fn refuse(gw: &Gateway, headers: &HeaderMap, body: Body, e: RequestError) -> Response {
    let limit = gw.settings.max_body_bytes;
    if declared_length(headers).is_none_or(|n| n <= limit) {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain(body, limit)).await;
    }
    e.into_response()
}

/// Reads `body` to its end, or to `limit` bytes, dropping every chunk.
async fn drain(body: Body, limit: usize) {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.len();
            if read > limit {
                return;
            }
        }
    }
}

/// Routes an authenticated request to its dataset and takes one of the tenant's request slots:
/// where its events go, how they are framed, and the slot (held until the answer).
fn admit<'g>(
    gw: &'g Gateway,
    authed: &'g streamlake_core::TenantId,
    tenant: &str,
    dataset: &str,
    headers: &HeaderMap,
) -> Result<(Target<'g>, Framing, [OwnedSemaphorePermit; 2]), RequestError> {
    if authed.as_str() != tenant {
        return Err(RequestError::WrongTenant {
            authed: authed.to_string(),
            tenant: tenant.to_owned(),
        });
    }
    // The tenants with request slots are the configured ones.
    let slots = gw
        .in_flight
        .get(authed)
        .ok_or_else(|| RequestError::UnknownTenant(tenant.to_owned()))?;
    let dataset_id = dataset_of(gw, authed, dataset)?;
    // A queue without room for one more record would refuse every event: answer before the
    // body is read and parsed, so overload costs the gateway little and leaves the machine to
    // the broker that drains the queue.
    if !gw.ingestor.has_room(1) {
        return Err(RequestError::QueueFull {
            queued: gw.ingestor.in_flight(),
            retry_after: gw.settings.retry_after_secs,
        });
    }
    let permit =
        Arc::clone(slots)
            .try_acquire_owned()
            .map_err(|_| RequestError::TooManyInFlight {
                tenant: tenant.to_owned(),
                limit: gw.settings.max_in_flight_per_tenant,
                retry_after: gw.settings.retry_after_secs,
            })?;
    // Room for the body among all requests' bodies: its declared length, or the largest
    // allowed when it is not declared (chunked).
    let max_body = gw.settings.max_body_bytes;
    let body_bytes = declared_length(headers).map_or(max_body, |n| n.min(max_body));
    let kib = u32::try_from(body_bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let bytes = Arc::clone(&gw.body_bytes)
        .try_acquire_many_owned(kib)
        .map_err(|_| RequestError::TooManyBytes {
            limit_mib: gw.settings.max_in_flight_bytes / (1024 * 1024),
            retry_after: gw.settings.retry_after_secs,
        })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let framing = Framing::from_content_type(content_type)
        .ok_or_else(|| RequestError::UnsupportedMediaType(content_type.to_owned()))?;
    if let Some(encoding) = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|e| !e.is_empty() && e != "identity")
    {
        return Err(RequestError::UnsupportedEncoding(encoding));
    }
    let target = gw
        .ingestor
        .target(authed, dataset_id, &gw.settings.producer_service, &[])
        .map_err(|_| unknown_dataset(gw, authed, dataset))?;
    let target = match headers.get(SCHEMA_VERSION) {
        None => target,
        Some(v) => {
            let version = v.to_str().map_err(|_| {
                RequestError::BadSchemaVersion("Schema-Version must be ASCII".to_owned())
            })?;
            target
                .at_version(version.trim())
                .map_err(|e| RequestError::BadSchemaVersion(e.to_string()))?
        }
    };
    Ok((target, framing, [permit, bytes]))
}

/// Takes a request's events and bytes from its dataset's quota, then its tenant's, or refuses
/// it (nothing of it is written). A request the dataset admits and the tenant refuses has used
/// the dataset's share: a dataset's quota is a ceiling within the tenant's, so this only errs
/// towards refusing.
fn over_quota(
    gw: &Gateway,
    tenant: &streamlake_core::TenantId,
    dataset: &DatasetId,
    events: usize,
    bytes: usize,
) -> Result<(), RequestError> {
    if let Some(quota) = gw.dataset_quotas.get(tenant).and_then(|d| d.get(dataset)) {
        take_quota(gw, tenant, Some(dataset), quota, events, bytes)?;
    }
    if let Some(quota) = gw.quotas.get(tenant) {
        take_quota(gw, tenant, None, quota, events, bytes)?;
    }
    Ok(())
}

/// One quota's answer to a request: the dataset's (with `dataset`) or the tenant's.
fn take_quota(
    gw: &Gateway,
    tenant: &streamlake_core::TenantId,
    dataset: Option<&DatasetId>,
    quota: &crate::quota::TenantQuota,
    events: usize,
    bytes: usize,
) -> Result<(), RequestError> {
    use crate::quota::Refusal;
    // Named only when refused: admitting costs no allocation.
    let named = || match dataset {
        Some(d) => (
            format!("dataset {tenant}/{d}"),
            format!("tenants.{tenant}.datasets.{d}.quota"),
        ),
        None => (
            format!("tenant {tenant}"),
            format!("tenants.{tenant}.quota"),
        ),
    };
    match quota.admit(events, bytes) {
        Ok(()) => Ok(()),
        Err(Refusal::Later {
            unit,
            asked,
            per_sec,
            wait,
        }) => {
            gw.metrics
                .over_quota
                .with_label_values(&[tenant.as_str(), unit.as_str()])
                .inc();
            let (scope, table) = named();
            Err(RequestError::OverQuota {
                scope,
                table,
                unit: unit.as_str(),
                asked,
                per_sec,
                // Whole seconds, rounded up: a client that waits that long finds room.
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            })
        }
        Err(Refusal::TooLarge { unit, asked, burst }) => {
            gw.metrics
                .over_quota
                .with_label_values(&[tenant.as_str(), unit.as_str()])
                .inc();
            let (scope, table) = named();
            Err(RequestError::OverBurst {
                scope,
                table,
                unit: unit.as_str(),
                asked,
                burst,
            })
        }
    }
}

/// The ingestor's id of `authed`'s `dataset` (so a target borrows nothing of the request).
fn dataset_of<'g>(
    gw: &'g Gateway,
    authed: &'g streamlake_core::TenantId,
    dataset: &str,
) -> Result<&'g DatasetId, RequestError> {
    gw.ingestor
        .datasets_of(authed)
        .into_iter()
        .find(|d| d.as_str() == dataset)
        .ok_or_else(|| unknown_dataset(gw, authed, dataset))
}

fn unknown_dataset(
    gw: &Gateway,
    tenant: &streamlake_core::TenantId,
    dataset: &str,
) -> RequestError {
    RequestError::UnknownDataset {
        tenant: tenant.to_string(),
        dataset: dataset.to_owned(),
        known: gw
            .ingestor
            .datasets_of(tenant)
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The body, or `None` when it is larger than `limit`; a body that takes longer than `timeout`
/// to arrive is an error.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Option<bytes::Bytes>, RequestError> {
    if declared_length(headers).is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| RequestError::SlowBody(timeout.as_secs()))?;
    match read {
        Ok(b) => Ok(Some(b)),
        Err(e) => {
            let cause = e.into_inner();
            if cause.is::<http_body_util::LengthLimitError>() {
                Ok(None)
            } else {
                Err(RequestError::UnreadableBody(cause.to_string()))
            }
        }
    }
}

async fn events(
    gw: &Arc<Gateway>,
    t: &Target<'_>,
    framing: Framing,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
) -> Result<Response, RequestError> {
    let limit = gw.settings.max_body_bytes;
    let body_timeout = Duration::from_secs(gw.settings.body_timeout_secs);
    let Some(bytes) = read_body(headers, body, limit, body_timeout).await? else {
        let violation = Violation {
            reason: format!("the body is larger than the limit of {limit} bytes (gateway.max_body_bytes); its payload was not kept"),
            path: String::new(),
            rule: "max_body_bytes".to_owned(),
        };
        let outcome = dead_letter_body(&gw.ingestor, t, b"", violation).await;
        gw.ingestor.count(t, std::slice::from_ref(&outcome));
        return Ok(body_level(gw, StatusCode::PAYLOAD_TOO_LARGE, outcome));
    };
    if bytes.trim_ascii().is_empty() {
        return Err(RequestError::EmptyBody);
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let violation = Violation {
            reason: format!("the body is not valid UTF-8: {e}"),
            path: String::new(),
            rule: "utf8".to_owned(),
        };
        let outcome = dead_letter_body(&gw.ingestor, t, &bytes, violation).await;
        gw.ingestor.count(t, std::slice::from_ref(&outcome));
        return Ok(body_level(gw, StatusCode::BAD_REQUEST, outcome));
    }
    let parsed = parse(&bytes, framing);
    let events_in = match &parsed {
        Parsed::Single(_) => 1,
        Parsed::Batch(events) => events.len(),
    };
    if events_in <= gw.settings.max_events_per_request {
        over_quota(gw, t.tenant, t.dataset, events_in, bytes.len())?;
    }
    if let Some(key) = key {
        let (events, single) = match parsed {
            Parsed::Single(event) => (vec![event], true),
            Parsed::Batch(events) if events.is_empty() => return Err(RequestError::EmptyBatch),
            Parsed::Batch(events) if events.len() > gw.settings.max_events_per_request => {
                return Err(RequestError::TooManyEvents {
                    count: events.len(),
                    limit: gw.settings.max_events_per_request,
                })
            }
            Parsed::Batch(events) => (events, false),
        };
        let request = Keyed {
            key,
            // A version named by the request is part of what it asks; the default is not, so
            // a request stays the same request when its dataset gains a version.
            fingerprint: match headers.get(SCHEMA_VERSION) {
                None => idempotency::fingerprint(framing.as_str(), &bytes),
                Some(_) => idempotency::fingerprint(
                    &format!("{};schema_version={}", framing.as_str(), t.schema.version()),
                    &bytes,
                ),
            },
            single,
        };
        return keyed(gw, t, &request, events).await;
    }
    match parsed {
        Parsed::Single(event) => {
            let malformed = event.value.is_err();
            let outcome = ingest_event(&gw.ingestor, t, event).await;
            gw.ingestor.count(t, std::slice::from_ref(&outcome));
            if malformed {
                return Ok(body_level(gw, StatusCode::BAD_REQUEST, outcome));
            }
            let retry = retry_after(gw, std::slice::from_ref(&outcome));
            Ok(answer(outcome.status(), outcome.report(None), retry))
        }
        Parsed::Batch(events) if events.is_empty() => Err(RequestError::EmptyBatch),
        Parsed::Batch(events) if events.len() > gw.settings.max_events_per_request => {
            Err(RequestError::TooManyEvents {
                count: events.len(),
                limit: gw.settings.max_events_per_request,
            })
        }
        Parsed::Batch(events) => {
            let outcomes = ingest_all(&gw.ingestor, t, events).await;
            gw.ingestor.count(t, &outcomes);
            Ok(batch_answer(gw, &outcomes))
        }
    }
}

/// The `Idempotency-Key` request header.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request header that names the schema version of a request's events.
const SCHEMA_VERSION: &str = "schema-version";

/// The response header that marks a stored answer.
const REPLAYED: &str = "idempotent-replayed";

/// A request sent with an `Idempotency-Key`.
struct Keyed<'a> {
    key: &'a str,
    /// Its framing and body, hashed: what makes a retry the same request.
    fingerprint: String,
    /// One event, not a batch.
    single: bool,
}

/// Writes a keyed request once: the idempotency log decides whether this attempt writes it
/// (only its events not written before), answers from a previous one, or waits for one.
async fn keyed(
    gw: &Arc<Gateway>,
    t: &Target<'_>,
    request: &Keyed<'_>,
    mut events: Vec<streamlake_ingest::Event<'_>>,
) -> Result<Response, RequestError> {
    let verdict = gw
        .idempotency
        .decide(t.tenant, t.dataset, request.key, &request.fingerprint)
        .await
        .map_err(|e| RequestError::IdempotencyLog(e, gw.settings.retry_after_secs))?;
    let (claim, prior) = match verdict {
        Verdict::Write { claim, prior } => (claim, prior),
        Verdict::Answered(stored) => {
            let mut r = stored_answer(gw, request.single, stored.events.into_iter().flatten());
            r.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            return Ok(r);
        }
        Verdict::InProgress { retry_after } => {
            return Err(RequestError::InProgress {
                key: request.key.to_owned(),
                retry_after,
            })
        }
        Verdict::Reused => {
            return Err(RequestError::IdempotencyKeyReused {
                key: request.key.to_owned(),
            })
        }
    };
    let count = events.len();
    let mut stored = prior.map_or_else(|| vec![None; count], |p| p.events);
    stored.resize(count, None);
    let id =
        |i| idempotency::ingestion_id(t.tenant, t.dataset, request.key, &request.fingerprint, i);
    for (i, event) in events.iter_mut().enumerate() {
        event.ingestion_id = Some(id(i));
    }
    // The events a previous attempt did not write, with their request positions.
    let open: Vec<usize> = (0..count).filter(|i| stored[*i].is_none()).collect();
    let to_write: Vec<_> = events
        .into_iter()
        .enumerate()
        .filter(|(i, _)| stored[*i].is_none())
        .map(|(_, e)| e)
        .collect();
    let malformed = request.single && to_write.first().is_some_and(|e| e.value.is_err());
    let (outcomes, late) = ingest_all_late(&gw.ingestor, t, to_write).await;
    gw.ingestor.count(t, &outcomes);
    let index = |i: usize| (!request.single).then_some(i);
    let mut shown: Vec<serde_json::Value> = Vec::with_capacity(count);
    let mut fresh = open.iter().zip(&outcomes).peekable();
    for (i, slot) in stored.iter_mut().enumerate() {
        match fresh.next_if(|(at, _)| **at == i) {
            Some((_, outcome)) => {
                let mut report = outcome.report(index(i));
                // A single body that is not JSON answers 400, as without a key.
                if malformed && !matches!(outcome, Outcome::Failed { .. }) {
                    report.status = StatusCode::BAD_REQUEST.as_u16();
                }
                let value = serde_json::to_value(&report).unwrap_or_default();
                if !matches!(outcome, Outcome::Failed { .. }) {
                    *slot = Some(value.clone());
                }
                shown.push(value);
            }
            None => shown.push(slot.clone().unwrap_or_default()),
        }
    }
    let answer = stored_answer(gw, request.single, shown);
    let all_known = late.is_empty();
    let settle = {
        let gw = Arc::clone(gw);
        let (tenant, dataset) = (t.tenant.clone(), t.dataset.clone());
        let (key, fingerprint, single) = (
            request.key.to_owned(),
            request.fingerprint.clone(),
            request.single,
        );
        async move {
            // The events not acknowledged in time: what their delivery reports say.
            for (j, delivered) in late.settle().await {
                let i = open[j];
                if let Ok(receipt) = delivered {
                    let outcome = Outcome::Accepted {
                        ingestion_id: idempotency::ingestion_id(
                            &tenant,
                            &dataset,
                            &key,
                            &fingerprint,
                            i,
                        ),
                        receipt,
                    };
                    let report = outcome.report((!single).then_some(i));
                    stored[i] = Some(serde_json::to_value(&report).unwrap_or_default());
                }
            }
            let events = stored;
            if let Err(e) = gw
                .idempotency
                .settle(
                    &tenant,
                    &dataset,
                    &key,
                    &fingerprint,
                    claim,
                    Stored { single, events },
                )
                .await
            {
                tracing::warn!(%tenant, %dataset, idempotency_key = %key, error = %e, "the answer of a keyed request was not stored: a retry writes its events again, with the same ingestion ids, once the claim's lease ran out");
            }
        }
    };
    // Stored before it is given, so a retry that follows the answer finds it; when delivery
    // reports are still due, stored once they came (a retry meanwhile is told to wait).
    if all_known {
        settle.await;
    } else {
        gw.idempotency.settle_later(settle);
    }
    Ok(answer)
}

/// The answer of a keyed request from its events' reports (written now or stored).
fn stored_answer(
    gw: &Gateway,
    single: bool,
    reports: impl IntoIterator<Item = serde_json::Value>,
) -> Response {
    let status_of = |r: &serde_json::Value| {
        r.get("status")
            .and_then(serde_json::Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let failed_status =
        |s: StatusCode| s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::SERVICE_UNAVAILABLE;
    let reports: Vec<serde_json::Value> = reports.into_iter().collect();
    let statuses: Vec<StatusCode> = reports.iter().map(status_of).collect();
    let retry = statuses
        .iter()
        .any(|s| failed_status(*s))
        .then_some(gw.settings.retry_after_secs);
    if single {
        let report = reports.into_iter().next().unwrap_or_default();
        return answer(statuses[0], report, retry);
    }
    let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let failed = statuses.iter().filter(|s| failed_status(**s)).count();
    let body = serde_json::json!({
        "accepted": accepted,
        "rejected": statuses.len() - accepted - failed,
        "failed": failed,
        "results": reports,
    });
    answer(batch_status(&statuses, accepted, failed), body, retry)
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

fn retry_after(gw: &Gateway, outcomes: &[Outcome]) -> Option<u64> {
    outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Failed { .. }))
        .then_some(gw.settings.retry_after_secs)
}

/// A batch's answer: counts and each event's report, in request order.
#[derive(Serialize, ToSchema)]
#[schema(as = BatchResult)]
struct BatchReport<'a> {
    /// Events acknowledged by the broker.
    accepted: usize,
    /// Events that failed validation (dead-lettered).
    rejected: usize,
    /// Events the broker did not acknowledge.
    failed: usize,
    /// Each event's outcome, in request order.
    results: Vec<EventReport<'a>>,
}

/// A batch's status: 200 when every event was accepted, the failure's own status when every
/// event failed the same way, 207 otherwise.
fn batch_status(statuses: &[StatusCode], accepted: usize, failed: usize) -> StatusCode {
    let first = statuses.first().copied().unwrap_or(StatusCode::OK);
    if accepted == statuses.len() {
        StatusCode::OK
    } else if failed == statuses.len() && statuses.iter().all(|s| *s == first) {
        first
    } else {
        StatusCode::MULTI_STATUS
    }
}

fn batch_answer(gw: &Gateway, outcomes: &[Outcome]) -> Response {
    let count = |label: &str| outcomes.iter().filter(|o| o.label() == label).count();
    let (accepted, rejected, failed) = (count("accepted"), count("rejected"), count("failed"));
    let statuses: Vec<StatusCode> = outcomes.iter().map(Answer::status).collect();
    let status = batch_status(&statuses, accepted, failed);
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

/// `?key=` of the partition preview.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PreviewQuery {
    /// The key itself, instead of an event to take it from.
    key: Option<String>,
}

/// Preview the key and partition of an event, without writing anything.
///
/// The body is one JSON event (its key is taken as ingestion would take it; the event is not
/// validated otherwise), or give `?key=` and no body. The partition is computed as the producer
/// places keyed records, over the raw topic's current partition count.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/datasets/{dataset}/partition",
    security(("bearer" = [])),
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("dataset" = String, Path, description = "Dataset name"),
        PreviewQuery,
    ),
    request_body(description = "One event (optional with ?key=)", content(("application/json"))),
    responses(
        (status = 200, body = PartitionPreview, description = "The key and its partition"),
        (status = 400, description = "The body is not one JSON event"),
        (status = 401, description = "No bearer key, or an unknown key."),
        (status = 403, description = "The key belongs to another tenant."),
        (status = 404, description = "Unknown tenant or dataset."),
        (status = 422, description = "The event has no key field."),
        (status = 501, description = "The configured partitioner does not place by key."),
        (status = 503, description = "The raw topic's partitions cannot be read."),
    ))]
async fn partition(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, dataset)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PartitionPreview>, RequestError> {
    let authed = crate::auth::authenticate(&gw, &headers)?;
    if authed.as_str() != tenant {
        return Err(RequestError::WrongTenant {
            authed: authed.to_string(),
            tenant,
        });
    }
    let dataset_id = dataset_of(&gw, authed, &dataset)?;
    let target = gw
        .ingestor
        .target(authed, dataset_id, &gw.settings.producer_service, &[])
        .map_err(|_| unknown_dataset(&gw, authed, &dataset))?;
    let key = match q.key {
        Some(key) => key,
        None => {
            let bytes = read_body(
                &headers,
                body,
                gw.settings.max_body_bytes,
                Duration::from_secs(gw.settings.body_timeout_secs),
            )
            .await?
            .ok_or(RequestError::UnreadableBody(format!(
                "the body is over gateway.max_body_bytes ({} bytes)",
                gw.settings.max_body_bytes
            )))?;
            let event = match parse(&bytes, Framing::Json) {
                Parsed::Single(event) => event,
                Parsed::Batch(_) => {
                    return Err(RequestError::UnreadableBody(
                        "send one JSON event, not an array".to_owned(),
                    ))
                }
            };
            let value = event
                .value
                .map_err(|v| RequestError::UnreadableBody(v.reason))?;
            target
                .schema
                .key_of(&value)
                .map_err(|v| RequestError::NoKey {
                    reason: v.reason,
                    path: v.path,
                })?
        }
    };
    let preview = gw.ingestor.preview(&gw.admin, &target, key).await?;
    Ok(Json(preview))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Every stage runs and the broker answers.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready", body = String, content_type = "text/plain"),
    (status = 503, description = "A stage stalled or the broker is unreachable; see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
))]
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

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "The text exposition format", body = String, content_type = "text/plain; version=0.0.4"),
))]
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    gw.metrics
        .queue_depth
        .set(i64::from(gw.ingestor.in_flight()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gw.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses(
    (status = 200, description = "OpenAPI 3.1", content_type = "application/json"),
))]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;

    use super::*;

    #[test]
    fn a_dropped_request_leaves_the_in_flight_gauge_as_it_found_it() {
        let gauge = prometheus::IntGauge::new("g", "g").unwrap();
        let request = async {
            let _in_flight = InFlight::enter(&gauge);
            std::future::pending::<()>().await;
        };
        let mut request = Box::pin(request);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(request.as_mut().poll(&mut cx).is_pending());
        assert_eq!(gauge.get(), 1);
        // The client went away: the server drops the request's future.
        drop(request);
        assert_eq!(gauge.get(), 0);
    }
}
