//! The admin REST API under `/api` (SPEC O1). Every endpoint but the OpenAPI document needs
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

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::dlq::{DeadLetterQuery, ReplayRequest, ReplayStatus};
use crate::ops::{CreateTopic, ErrorKind, MessageQuery, Ops, OpsError, Principal};

const OPENAPI: &str = include_str!("openapi.json");

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            Json(json!({"error": {"code": self.kind.code(), "message": self.message}})),
        )
            .into_response()
    }
}

fn unauthenticated(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": {"code": "unauthenticated", "message": message}})),
    )
        .into_response()
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Why a request was not authenticated.
enum Unauthenticated {
    Missing,
    Unknown,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        unauthenticated(match self {
            Unauthenticated::Missing => {
                "send the admin token or a tenant's API key as `Authorization: Bearer <token>`"
            }
            Unauthenticated::Unknown => {
                "the token is neither the admin token nor a tenant's API key"
            }
        })
    }
}

fn principal(ops: &Ops, headers: &HeaderMap) -> Result<Principal, Unauthenticated> {
    let token = bearer(headers).ok_or(Unauthenticated::Missing)?;
    ops.principal(token).ok_or(Unauthenticated::Unknown)
}

fn bad_query(e: QueryRejection) -> Response {
    OpsError::new(
        ErrorKind::BadRequest,
        format!("bad query: {}", e.body_text()),
    )
    .into_response()
}

fn bad_body(e: JsonRejection) -> Response {
    OpsError::new(
        ErrorKind::BadRequest,
        format!("bad body: {}", e.body_text()),
    )
    .into_response()
}

/// Runs an authenticated call and answers with its JSON or its error.
macro_rules! answer {
    ($ops:expr, $headers:expr, |$who:ident| $call:expr) => {{
        match principal(&$ops, &$headers) {
            Err(r) => r.into_response(),
            Ok($who) => match $call.await {
                Ok(v) => Json(v).into_response(),
                Err(e) => e.into_response(),
            },
        }
    }};
}

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

async fn topics(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    answer!(ops, headers, |who| ops.topics(&who))
}

async fn create_topic(
    State(ops): State<Arc<Ops>>,
    headers: HeaderMap,
    body: Result<Json<CreateTopic>, JsonRejection>,
) -> Response {
    let who = match principal(&ops, &headers) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    match ops.create_topic(&who, &req).await {
        Ok(m) => (StatusCode::CREATED, Json(m)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metadata(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer!(ops, headers, |who| ops.topic_metadata(&who, &name))
}

async fn configs(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer!(ops, headers, |who| ops.topic_configs(&who, &name))
}

async fn messages(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<MessageQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    answer!(ops, headers, |who| ops.messages(&who, &name, &q))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistributionQuery {
    sample: Option<u64>,
}

async fn distribution(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<DistributionQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    answer!(ops, headers, |who| ops.distribution(
        &who,
        &name,
        q.sample.unwrap_or(10_000)
    ))
}

async fn provision(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    answer!(ops, headers, |who| async {
        ops.provision(&who)
            .await
            .map(|results| json!({"results": results}))
    })
}

async fn groups(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    answer!(ops, headers, |who| ops.groups(&who))
}

async fn group(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer!(ops, headers, |who| ops.group(&who, &id))
}

async fn labs(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    answer!(ops, headers, |_who| async {
        let labs: Vec<_> = crate::labs::LABS
            .iter()
            .map(|(name, shows)| json!({"name": name, "shows": shows}))
            .collect();
        Ok::<_, OpsError>(json!({"labs": labs}))
    })
}

async fn run_lab(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer!(ops, headers, |who| ops.run_lab(&who, &name))
}

async fn tenants(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    answer!(ops, headers, |who| async {
        let tenants = ops.tenants(&who);
        Ok::<_, OpsError>(json!({"count": tenants.len(), "tenants": tenants}))
    })
}

async fn overview(
    State(ops): State<Arc<Ops>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer!(ops, headers, |who| ops.tenant_overview(&who, &tenant))
}

async fn dlq(
    State(ops): State<Arc<Ops>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    answer!(ops, headers, |who| ops.dead_letters(&who, &tenant, &q))
}

async fn replay(
    State(ops): State<Arc<Ops>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Response {
    let who = match principal(&ops, &headers) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    match ops.replay(&who, &tenant, &req).await {
        Ok(report) => {
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
            (status, Json(report)).into_response()
        }
        Err(e) => e.into_response(),
    }
}
