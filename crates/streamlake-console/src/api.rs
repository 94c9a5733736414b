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
//! | 409 | the topic exists; every selected dead letter was replayed before |
//! | 501 | the broker does not support the operation |
//! | 503 | the broker did not answer |

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use streamlake_gateway::bearer_token;
use streamlake_ops::dlq::{
    DeadLetterList, DeadLetterQuery, ReplayReport, ReplayRequest, ReplayStatus,
};
use streamlake_ops::groups::{GroupDetail, GroupList};
use streamlake_ops::messages::{MessagePage, MessageQuery};
use streamlake_ops::overview::TenantOverview;
use streamlake_ops::topics::{CreateTopic, TopicConfigs, TopicList, TopicMetadata};
use streamlake_ops::{ErrorKind, Ops, OpsError, Principal};

const OPENAPI: &str = include_str!("openapi.json");

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
        (
            status,
            Json(json!({"error": {"code": e.kind.code(), "message": e.message}})),
        )
            .into_response()
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
            Json(json!({"error": {"code": "unauthenticated", "message": message}})),
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

/// The `/api` router.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/kafka/topics", get(topics).post(create_topic))
        .route("/api/kafka/topics/{name}/metadata", get(metadata))
        .route("/api/kafka/topics/{name}/configs", get(configs))
        .route("/api/kafka/topics/{name}/messages", get(messages))
        .route("/api/kafka/topics/{name}/distribution", get(distribution))
        .route("/api/kafka/provision", post(provision))
        .route("/api/kafka/groups", get(groups))
        .route("/api/kafka/groups/{id}", get(group))
        .route("/api/labs", get(labs))
        .route("/api/labs/{name}", post(run_lab))
        .route("/api/tenants", get(tenants))
        .route("/api/tenants/{tenant}/overview", get(overview))
        .route("/api/tenants/{tenant}/dlq", get(dlq))
        .route("/api/tenants/{tenant}/dlq/replay", post(replay))
        .with_state(ops)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn topics(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<TopicList> {
    Ok(Json(ops.topics(&who).await?))
}

async fn create_topic(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    ApiJson(req): ApiJson<CreateTopic>,
) -> Result<(StatusCode, Json<TopicMetadata>), ApiError> {
    let created = ops.create_topic(&who, &req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn metadata(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
) -> Answer<TopicMetadata> {
    Ok(Json(ops.topic_metadata(&who, &name).await?))
}

async fn configs(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
) -> Answer<TopicConfigs> {
    Ok(Json(ops.topic_configs(&who, &name).await?))
}

async fn messages(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Answer<MessagePage> {
    Ok(Json(ops.messages(&who, &name, &q).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistributionQuery {
    sample: Option<u64>,
}

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

async fn provision(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<Value> {
    let results = ops.provision(&who).await?;
    Ok(Json(json!({"results": results})))
}

async fn groups(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Answer<GroupList> {
    Ok(Json(ops.groups(&who).await?))
}

async fn group(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Answer<GroupDetail> {
    Ok(Json(ops.group(&who, &id).await?))
}

async fn labs(Authed(_): Authed) -> Json<Value> {
    let labs: Vec<Value> = streamlake_ops::labs::LABS
        .iter()
        .map(|(name, shows)| json!({"name": name, "shows": shows}))
        .collect();
    Json(json!({"labs": labs}))
}

async fn run_lab(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(name): Path<String>,
) -> Answer<streamlake_ops::labs::LabReport> {
    Ok(Json(ops.run_lab(&who, &name).await?))
}

async fn tenants(State(ops): State<Arc<Ops>>, Authed(who): Authed) -> Json<Value> {
    let tenants = ops.tenants(&who);
    Json(json!({"count": tenants.len(), "tenants": tenants}))
}

async fn overview(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(tenant): Path<String>,
) -> Answer<TenantOverview> {
    Ok(Json(ops.tenant_overview(&who, &tenant).await?))
}

async fn dlq(
    State(ops): State<Arc<Ops>>,
    Authed(who): Authed,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> Answer<DeadLetterList> {
    Ok(Json(ops.dead_letters(&who, &tenant, &q).await?))
}

/// 409 when every selected dead letter was refused as replayed before; else 200 with each
/// one's outcome.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        streamlake_testkit::assert_openapi_describes_routes(include_str!("api.rs"), OPENAPI);
    }
}
