//! What the gateway's and the admin API's OpenAPI documents share: the error body both answer
//! with, and the parts of a document its handlers' annotations (utoipa) cannot say in one place.

use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{OneOf, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::ToSchema;

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `unauthenticated`, `not_found`, `too_many_requests`.
    pub code: &'static str,
    /// What was wrong and where, in words.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

/// Completes a document once its paths are in: the `bearer` security scheme its operations
/// refer to, and the error body on every failure answer declared without one.
pub fn finish(doc: &mut OpenApi) {
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    error_bodies(doc, "Error");
}

/// Every operation of `doc`, mutably.
fn operations(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
    })
}

/// Gives every answer of 400 and over that declares no body the error body `schema` (the
/// component of that name), so each failure status is written once per operation with its
/// meaning and not again with its shape.
fn error_bodies(doc: &mut OpenApi, schema: &str) {
    for op in operations(doc) {
        for (status, response) in &mut op.responses.responses {
            let failure = status.parse::<u16>().is_ok_and(|s| s >= 400);
            if let (true, RefOr::T(response)) = (failure, response) {
                if response.content.is_empty() {
                    response.content.insert(
                        "application/json".to_owned(),
                        Content::new(Some(Ref::from_schema_name(schema))),
                    );
                }
            }
        }
    }
}

/// Declares that the answer `status` of `method path` is one of the components `schemas`
/// (OpenAPI's `oneOf`), replacing whatever body it declared.
pub(crate) fn one_of(doc: &mut OpenApi, path: &str, status: &str, schemas: &[&str]) {
    let Some(item) = doc.paths.paths.get_mut(path) else {
        panic!("{path} is not in the document");
    };
    let ops = [item.get.as_mut(), item.post.as_mut()];
    for op in ops.into_iter().flatten() {
        if let Some(RefOr::T(response)) = op.responses.responses.get_mut(status) {
            let mut any = OneOf::new();
            any.items = schemas
                .iter()
                .map(|s| RefOr::Ref(Ref::from_schema_name(*s)))
                .collect();
            response.content.insert(
                "application/json".to_owned(),
                Content::new(Some(Schema::OneOf(any))),
            );
        }
    }
}
