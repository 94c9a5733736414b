//! The admin REST API under `/api`. Every endpoint but the OpenAPI document needs
//! `Authorization: Bearer <token>`: the admin token sees everything, a tenant's API key its own
//! tenant's topics, groups and dead letters. Bodies are JSON with camelCase names; errors are
//! `{"error": {"code", "message"}}`.
//!
//! | code | when |
//! |---|---|
//! | 400 | a malformed body or query, a bad topic name or partition count, `limit` over `admin.max_messages` |
//! | 401 | no bearer token, or a token that is neither the admin token nor a tenant key |
//! | 403 | a tenant key asking for another tenant's data, or for an admin-only operation |
//! | 404 | unknown topic, partition, tenant or group |
//! | 409 | the topic exists; every selected dead letter was replayed before; the group has active members |
//! | 501 | the broker does not support the operation |
//! | 503 | the broker did not answer |

use std::sync::{Arc, LazyLock};

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use streamlake_gateway::bearer_token;
use streamlake_gateway::openapi::ErrorBody;
use streamlake_ops::dlq::{
    DeadLetterList, DeadLetterQuery, ReplayReport, ReplayRequest, ReplayStatus,
};
use streamlake_ops::freshness::FreshnessReport;
use streamlake_ops::groups::{GroupDetail, GroupList};
use streamlake_ops::messages::{MessagePage, MessageQuery, ProduceRequest, Produced};
use streamlake_ops::offsets::{GroupDeleted, ResetReport, ResetRequest};
use streamlake_ops::overview::{TenantOverview, TenantSummary};
use streamlake_ops::topics::{
    AddPartitions, AlterConfigs, CreateTopic, PartitionsAdded, Purge, Purged, TopicConfigs,
    TopicDeleted, TopicList, TopicMetadata,
};
use streamlake_ops::{ErrorKind, Ops, OpsError, Principal};

/// The HTTP status of a failure of `kind`.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// An operation's failure as a JSON answer: the status its kind maps to, and
/// `{"error": {"code", "message"}}`.
struct ApiError(OpsError);

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ApiError(e) = self;
        let status = status_of(e.kind);
        (status, Json(ErrorBody::new(e.kind.code(), e.message))).into_response()
    }
}

/// Why a request was not authenticated.
pub(crate) enum Unauthenticated {
    Missing,
    Unknown,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let message = match self {
            Unauthenticated::Missing => {
                "send the admin token or a tenant's API key as `Authorization: Bearer <token>`"
            }
            Unauthenticated::Unknown => {
                "the token is neither the admin token nor a tenant's API key"
            }
        };
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(ErrorBody::new("unauthenticated", message)),
        )
            .into_response()
    }
}

/// The principal a request's bearer token names; 401 without one.
struct Authed(Principal);

impl FromRequestParts<Arc<Ops>> for Authed {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        ops: &Arc<Ops>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(Unauthenticated::Missing)?;
        ops.principal(token)
            .map(Authed)
            .ok_or(Unauthenticated::Unknown)
    }
}

/// A query string; a malformed one is a JSON 400 that says what was wrong.
struct ApiQuery<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                ApiError(OpsError::new(
                    ErrorKind::BadRequest,
                    format!("bad query: {}", e.body_text()),
                ))
            })
    }
}

/// A JSON body; a malformed one is a JSON 400 that says what was wrong.
struct ApiJson<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(b)| ApiJson(b))
            .map_err(|e| {
                ApiError(OpsError::new(
                    ErrorKind::BadRequest,
                    format!("bad body: {}", e.body_text()),
                ))
            })
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

/// The document's frame: title, description, security and the error body; the paths come from
/// the handlers' annotations as [`api`] registers them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamLake admin API",
        version = "1",
        description = "Topics, partitions, configs, consumer groups and lag, message browsing, \
            provisioning, per-tenant overview and dead-letter replay. Every endpoint but this \
            document needs `Authorization: Bearer <token>`: the admin token (admin.token_env / \
            admin.dev_token) sees everything; a tenant's API key sees only that tenant's topics, \
            groups and dead letters. Errors are {\"error\": {\"code\", \"message\"}}."
    ),
    components(schemas(ErrorBody)),
    security(("bearer" = [])),
    tags(
        (name = "topics", description = "Topics, partitions, configs, records"),
        (name = "groups", description = "Consumer groups and lag"),
        (name = "tenants", description = "Tenants, their overview and dead letters"),
        (name = "labs", description = "Kafka behaviour shown on the running cluster"),
        (name = "freshness", description = "How old each dataset's data is at every stage, against its objective"),
    )
)]
struct ApiDoc;

/// The `/api` routes with their OpenAPI description, both from the handlers' annotations.
fn api() -> OpenApiRouter<Arc<Ops>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi))
        .routes(routes!(topics, create_topic))
        .routes(routes!(metadata))
        .routes(routes!(configs, alter_configs))
        .routes(routes!(delete_topic))
        .routes(routes!(add_partitions))
        .routes(routes!(purge))
        .routes(routes!(messages, produce))
        .routes(routes!(export))
        .routes(routes!(distribution))
        .routes(routes!(provision))
        .routes(routes!(init_module_a_topics))
        .routes(routes!(groups))
        .routes(routes!(group, delete_group))
        .routes(routes!(reset_offsets))
        .routes(routes!(labs))
        .routes(routes!(run_lab))
        .routes(routes!(tenants))
        .routes(routes!(overview))
        .routes(routes!(dlq))
        .routes(routes!(replay))
        .routes(routes!(freshness))
}

/// The admin API's OpenAPI document, as `/api/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    streamlake_gateway::openapi::finish(&mut doc);
    doc
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    openapi_document()
        .to_pretty_json()
        .expect("an OpenAPI document serializes")
});

/// The `/api` router.
pub fn router(ops: Arc<Ops>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ops)
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// Topics the token may see.
#[utoipa::path(get, path = "/api/kafka/topics", tag = "topics", responses(
    (status = 200, body = TopicList, description = "Topic names, count and details"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 503, description = "The broker did not answer"),
))]
async fn topics(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<TopicList> {
    Ok(Json(ops.topics(&who).await?))
}

/// Create a topic (admin).
#[utoipa::path(post, path = "/api/kafka/topics", tag = "topics", request_body = CreateTopic,
    responses(
    (status = 201, body = TopicMetadata, description = "Created; its metadata"),
    (status = 400, description = "A bad name, partition count or config; the broker refused it"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 409, description = "The topic exists"),
    (status = 503, description = "The broker did not answer"),
))]
async fn create_topic(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    ApiJson(req): ApiJson<CreateTopic>,
) -> Result<(StatusCode, Json<TopicMetadata>), ApiError> {
    let created = ops.create_topic(&who, &req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Partitions: leader, replicas, in-sync replicas, watermarks.
#[utoipa::path(get, path = "/api/kafka/topics/{name}/metadata", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
    (status = 200, body = TopicMetadata, description = "Metadata"),
    (status = 400, description = "A name that is not a Kafka name (a control character, too long)"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Another tenant's topic"),
    (status = 404, description = "No such topic"),
    (status = 503, description = "The broker did not answer"),
))]
async fn metadata(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
) -> Answer<TopicMetadata> {
    Ok(Json(ops.topic_metadata(&who, &name).await?))
}

/// Topic configs as the broker describes them.
#[utoipa::path(get, path = "/api/kafka/topics/{name}/configs", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
    (status = 200, body = TopicConfigs, description = "Configs"),
    (status = 400, description = "A name that is not a Kafka name (a control character, too long)"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Another tenant's topic"),
    (status = 404, description = "No such topic"),
    (status = 501, description = "The broker cannot describe configs"),
    (status = 503, description = "The broker did not answer"),
))]
async fn configs(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
) -> Answer<TopicConfigs> {
    Ok(Json(ops.topic_configs(&who, &name).await?))
}

/// Change a topic's configs (admin): set values, or remove the topic's own (`null`).
#[utoipa::path(put, path = "/api/kafka/topics/{name}/configs", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    request_body = AlterConfigs,
    responses(
    (status = 200, body = TopicConfigs, description = "The configs as they are now"),
    (status = 400, description = "No config named, or the broker refused a name or value"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 404, description = "No such topic"),
    (status = 503, description = "The broker did not answer"),
))]
async fn alter_configs(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<AlterConfigs>,
) -> Answer<TopicConfigs> {
    Ok(Json(ops.alter_topic_configs(&who, &name, &req).await?))
}

/// `?force=` of a topic deletion.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Delete even a tenant's topic the platform uses (raw, clean, dead-letter, logs).
    force: Option<bool>,
}

/// Delete a topic (admin). A tenant's topic the platform uses is refused (409) without
/// `force=true`.
#[utoipa::path(delete, path = "/api/kafka/topics/{name}", tag = "topics",
    params(("name" = String, Path, description = "Topic name"), DeleteQuery),
    responses(
    (status = 200, body = TopicDeleted, description = "Deleted"),
    (status = 400, description = "A bad name, or one of Kafka's internal topics"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 404, description = "No such topic"),
    (status = 409, description = "A tenant's topic in use by the platform, without force=true"),
    (status = 503, description = "The broker did not answer"),
))]
async fn delete_topic(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Answer<TopicDeleted> {
    Ok(Json(
        ops.delete_topic(&who, &name, q.force.unwrap_or(false))
            .await?,
    ))
}

/// Raise a topic's partition count (admin). Keys hash over the new count from then on.
#[utoipa::path(post, path = "/api/kafka/topics/{name}/partitions", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    request_body = AddPartitions,
    responses(
    (status = 200, body = PartitionsAdded, description = "The topic now, with what it means for keys"),
    (status = 400, description = "Not larger than the current count, or over 10000"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 404, description = "No such topic"),
    (status = 503, description = "The broker did not answer"),
))]
async fn add_partitions(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<AddPartitions>,
) -> Answer<PartitionsAdded> {
    Ok(Json(ops.add_partitions(&who, &name, &req).await?))
}

/// Delete a topic's records before an offset, in one partition or all (admin).
#[utoipa::path(post, path = "/api/kafka/topics/{name}/purge", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    request_body = Purge,
    responses(
    (status = 200, body = Purged, description = "The new low watermarks and how many records went"),
    (status = 400, description = "A negative offset, or past the partition's end"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 404, description = "No such topic or partition"),
    (status = 503, description = "The broker did not answer"),
))]
async fn purge(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<Purge>,
) -> Answer<Purged> {
    Ok(Json(ops.purge(&who, &name, &req).await?))
}

/// Browse records: one partition or all, from an offset, from a time, or the newest;
/// optionally filtered by key, header, text in the value or a JSON field (over at most `scan`
/// records, which the answer counts).
#[utoipa::path(get, path = "/api/kafka/topics/{name}/messages", tag = "topics",
    params(("name" = String, Path, description = "Topic name"), MessageQuery),
    responses(
    (status = 200, body = MessagePage, description = "Records with key, headers and value"),
    (status = 400, description = "A bad query or filter, `limit` over admin.max_messages, `scan` out of range"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Another tenant's topic"),
    (status = 404, description = "No such topic or partition"),
    (status = 503, description = "The broker did not answer"),
))]
async fn messages(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Answer<MessagePage> {
    Ok(Json(ops.messages(&who, &name, &q).await?))
}

/// Write one record: the admin any value, key and headers to any topic; a tenant an event to
/// one of its datasets' raw topics, validated, keyed and given headers as the gateway does
/// (422 when it was dead-lettered instead).
#[utoipa::path(post, path = "/api/kafka/topics/{name}/messages", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    request_body = ProduceRequest,
    responses(
    (status = 200, body = Produced, description = "Written; where"),
    (status = 400, description = "No value, or a tenant giving a key or headers"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Another tenant's topic, or not one of the tenant's raw topics"),
    (status = 404, description = "No such topic"),
    (status = 422, body = Produced, description = "The tenant's event failed validation and was dead-lettered; where and why"),
    (status = 503, description = "The broker did not acknowledge"),
))]
async fn produce(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ProduceRequest>,
) -> Result<Response, ApiError> {
    let produced = ops.produce(&who, &name, &req).await?;
    let status = if produced.status == "dead_lettered" {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(produced)).into_response())
}

/// Download records as NDJSON, one record per line (as the browser shows them): the same
/// query as the browser, up to 100,000 records (default 1,000).
#[utoipa::path(get, path = "/api/kafka/topics/{name}/export", tag = "topics",
    params(("name" = String, Path, description = "Topic name"), MessageQuery),
    responses(
    (status = 200, description = "One record per line", content_type = "application/x-ndjson", body = String),
    (status = 400, description = "A bad query or filter"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Another tenant's topic"),
    (status = 404, description = "No such topic or partition"),
    (status = 503, description = "The broker did not answer"),
))]
async fn export(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Result<Response, ApiError> {
    let body = ops.export(&who, &name, &q).await?.ndjson();
    let file = format!("attachment; filename=\"{name}.ndjson\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DistributionQuery {
    /// Records read for the key statistics (default 10000).
    #[param(minimum = 1, maximum = 100000)]
    sample: Option<u64>,
}

/// Records per partition, skew, top keys and warnings.
#[utoipa::path(get, path = "/api/kafka/topics/{name}/distribution", tag = "topics",
    params(("name" = String, Path, description = "Topic name"), DistributionQuery),
    responses(
    (status = 200, body = streamlake_kafka::Distribution, description = "Distribution"),
    (status = 400, description = "A bad query"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Another tenant's topic"),
    (status = 404, description = "No such topic"),
    (status = 503, description = "The broker did not answer"),
))]
async fn distribution(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DistributionQuery>,
) -> Answer<streamlake_kafka::Distribution> {
    Ok(Json(
        ops.distribution(&who, &name, q.sample.unwrap_or(10_000))
            .await?,
    ))
}

/// `POST /api/kafka/provision`.
#[derive(Debug, Serialize, ToSchema)]
struct Provisioned {
    /// What was done, in words.
    message: String,
    /// One result per declared topic, in declaration order.
    results: Vec<streamlake_kafka::ProvisionReport>,
}

impl Provisioned {
    fn new(results: Vec<streamlake_kafka::ProvisionReport>) -> Self {
        use streamlake_kafka::ProvisionOutcome as O;
        let count = |wanted: fn(&O) -> bool| results.iter().filter(|r| wanted(&r.outcome)).count();
        Self {
            message: format!(
                "provisioning completed: {} created, {} existing, {} with drift, {} failed",
                count(|o| matches!(o, O::Created)),
                count(|o| matches!(o, O::Existing)),
                count(|o| matches!(o, O::Drift { .. })),
                count(|o| matches!(o, O::Failed { .. })),
            ),
            results,
        }
    }
}

/// Create the declared topics; report created / existing / drift per topic (admin).
#[utoipa::path(post, path = "/api/kafka/provision", tag = "topics", responses(
    (status = 200, body = Provisioned, description = "Per-topic results"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 503, description = "The broker did not answer"),
))]
async fn provision(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<Provisioned> {
    Ok(Json(Provisioned::new(ops.provision(&who).await?)))
}

/// Provisioning under the name a Kafka course walkthrough calls it by (the same answer).
#[utoipa::path(post, path = "/api/kafka/init-module-a-topics", tag = "topics", responses(
    (status = 200, body = Provisioned, description = "Per-topic results"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 503, description = "The broker did not answer"),
))]
async fn init_module_a_topics(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
) -> Answer<Provisioned> {
    Ok(Json(Provisioned::new(ops.provision(&who).await?)))
}

/// Consumer groups with state, members and total lag.
///
/// The broker's groups, plus the configured ones and groups looked up before.
#[utoipa::path(get, path = "/api/kafka/groups", tag = "groups", responses(
    (status = 200, body = GroupList, description = "Groups"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 503, description = "The broker did not answer"),
))]
async fn groups(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<GroupList> {
    Ok(Json(ops.groups(&who).await?))
}

/// A group: state and members, committed offset, high watermark and lag per partition.
#[utoipa::path(get, path = "/api/kafka/groups/{id}", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    responses(
    (status = 200, body = GroupDetail, description = "Group"),
    (status = 400, description = "A name that is not a Kafka name (a control character, too long)"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "A group that reads another tenant's topics"),
    (status = 404, description = "No such group"),
    (status = 503, description = "The broker did not answer"),
))]
async fn group(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Answer<GroupDetail> {
    Ok(Json(ops.group(&who, &id).await?))
}

/// Delete a group and its committed offsets.
///
/// Refused with 409 while the group has members. A tenant may delete a group whose committed
/// offsets are all on its own topics.
#[utoipa::path(delete, path = "/api/kafka/groups/{id}", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    responses(
    (status = 200, body = GroupDeleted, description = "Deleted"),
    (status = 400, description = "A name that is not a Kafka name (a control character, too long)"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "The group reads another tenant's topics"),
    (status = 404, description = "No such group"),
    (status = 409, description = "The group has active members"),
    (status = 503, description = "The broker did not answer"),
))]
async fn delete_group(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Answer<GroupDeleted> {
    Ok(Json(ops.delete_group(&who, &id).await?))
}

/// Move a group's committed offsets: to the earliest or latest record, a timestamp, an offset,
/// or by a shift; for all its topics or one topic's chosen partitions.
///
/// `dryRun` shows each partition's old and new offset and lag without changing anything. A
/// reset is refused with 409 while the group has members.
#[utoipa::path(post, path = "/api/kafka/groups/{id}/reset", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    request_body = ResetRequest,
    responses(
    (status = 200, body = ResetReport, description = "Old and new offsets per partition"),
    (status = 400, description = "A malformed body, a missing value, an unknown partition"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "The group or topic is another tenant's"),
    (status = 404, description = "No such group or topic"),
    (status = 409, description = "The group has active members"),
    (status = 503, description = "The broker did not answer"),
))]
async fn reset_offsets(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Answer<ResetReport> {
    Ok(Json(ops.reset_offsets(&who, &id, &req).await?))
}

/// One lab.
#[derive(Debug, Serialize, ToSchema)]
struct Lab {
    /// Its name, as `POST /api/labs/{name}` takes it.
    name: &'static str,
    /// What it shows.
    shows: &'static str,
}

/// `GET /api/labs`.
#[derive(Debug, Serialize, ToSchema)]
struct LabList {
    labs: Vec<Lab>,
}

/// The labs and what each shows.
#[utoipa::path(get, path = "/api/labs", tag = "labs", responses(
    (status = 200, body = LabList, description = "Labs"),
    (status = 401, description = "No token, or an unknown one"),
))]
async fn labs(Authed(_): Authed) -> Json<LabList> {
    let labs = streamlake_ops::labs::LABS
        .iter()
        .map(|&(name, shows)| Lab { name, shows })
        .collect();
    Json(LabList { labs })
}

/// Run a lab with its defaults and return its report (admin).
///
/// The rebalance lab takes about 50 s.
#[utoipa::path(post, path = "/api/labs/{name}", tag = "labs",
    params(("name" = String, Path, description = "partitioning, ordering, rebalance or semantics")),
    responses(
    (status = 200, body = Object, description = "The lab's report"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 403, description = "Not the admin token"),
    (status = 404, description = "No such lab"),
    (status = 501, description = "This process cannot run the lab"),
    (status = 503, description = "The broker did not answer, or the lab failed"),
))]
async fn run_lab(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
) -> Answer<streamlake_ops::labs::LabReport> {
    Ok(Json(ops.run_lab(&who, &name).await?))
}

/// `GET /api/tenants`.
#[derive(Debug, Serialize, ToSchema)]
struct TenantList {
    /// How many.
    count: usize,
    tenants: Vec<TenantSummary>,
}

/// Tenants the token may see.
#[utoipa::path(get, path = "/api/tenants", tag = "tenants", responses(
    (status = 200, body = TenantList, description = "Tenants"),
    (status = 401, description = "No token, or an unknown one"),
))]
async fn tenants(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Json<TenantList> {
    let tenants = ops.tenants(&who);
    Json(TenantList {
        count: tenants.len(),
        tenants,
    })
}

/// Events in, accepted, rejected, dead-lettered, per-dataset counts, throughput.
#[utoipa::path(get, path = "/api/tenants/{tenant}/overview", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
    (status = 200, body = TenantOverview, description = "Overview"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 404, description = "No such tenant (or another tenant's, in the same words)"),
    (status = 503, description = "The broker did not answer"),
))]
async fn overview(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(tenant): Path<String>,
) -> Answer<TenantOverview> {
    Ok(Json(ops.tenant_overview(&who, &tenant).await?))
}

/// Each dataset's freshness: per stage the records left to read, how long the oldest has
/// waited and the lag's trend; the time from ingestion to the clean topic; the state against
/// the dataset's objective (ok, at_risk, breached) and why.
#[utoipa::path(get, path = "/api/freshness", tag = "freshness", responses(
    (status = 200, body = FreshnessReport, description = "One row per dataset the token may see"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 503, description = "The broker did not answer"),
))]
async fn freshness(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<FreshnessReport> {
    Ok(Json(ops.freshness(&who).await?))
}

/// Dead letters, newest first, with reason, path, rule, stage and replay state.
#[utoipa::path(get, path = "/api/tenants/{tenant}/dlq", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id"), DeadLetterQuery),
    responses(
    (status = 200, body = DeadLetterList, description = "Dead letters"),
    (status = 400, description = "A bad query, or `limit` over admin.max_messages"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 404, description = "No such tenant (or another tenant's, in the same words)"),
    (status = 503, description = "The broker did not answer"),
))]
async fn dlq(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> Answer<DeadLetterList> {
    Ok(Json(ops.dead_letters(&who, &tenant, &q).await?))
}

/// Replay dead letters back through validation.
///
/// Selected ones (optionally with a corrected payload) or all. 409 when every selected dead
/// letter was refused as replayed before; else 200 with each one's outcome.
#[utoipa::path(post, path = "/api/tenants/{tenant}/dlq/replay", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = ReplayRequest,
    responses(
    (status = 200, body = ReplayReport, description = "Per-record outcomes"),
    (status = 400, description = "A malformed body"),
    (status = 401, description = "No token, or an unknown one"),
    (status = 404, description = "No such tenant (or another tenant's, in the same words)"),
    (status = 409, body = ReplayReport, description = "Every selected dead letter was replayed before"),
    (status = 503, description = "The broker did not answer"),
))]
async fn replay(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(tenant): Path<String>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayReport>), ApiError> {
    let report = ops.replay(&who, &tenant, &req).await?;
    let refused_all = !report.results.is_empty()
        && report.results.iter().all(|r| {
            matches!(
                r.status,
                ReplayStatus::AlreadyReplayed | ReplayStatus::NotADeadLetter
            )
        });
    let status = if refused_all {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}
