//! The one error type of the operations: what kind of failure (the presentations map it to an
//! HTTP status or an exit code) and what an operator can act on.

use streamlake_kafka::AdminError;

/// What kind of failure an [`OpsError`] is; the API maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or out of range (400).
    BadRequest,
    /// The principal may not see or do this (403).
    Forbidden,
    /// No such topic, partition, group, tenant or record (404).
    NotFound,
    /// It exists already, or was done already (409).
    Conflict,
    /// The broker does not support it (501).
    Unsupported,
    /// The broker did not answer or failed (503).
    Unavailable,
}

impl ErrorKind {
    /// Machine-readable code in error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// Why an operation failed, in words an operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OpsError {
    /// Kind of failure.
    pub kind: ErrorKind,
    /// What was wrong.
    pub message: String,
}

impl OpsError {
    /// A failure of `kind`, saying what was wrong.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<AdminError> for OpsError {
    fn from(e: AdminError) -> Self {
        let kind = match &e {
            AdminError::UnknownTopic(_) => ErrorKind::NotFound,
            AdminError::TopicExists(_) => ErrorKind::Conflict,
            AdminError::Invalid(_) => ErrorKind::BadRequest,
            AdminError::Unsupported(_) => ErrorKind::Unsupported,
            AdminError::GroupActive(_) => ErrorKind::Conflict,
            AdminError::Kafka { .. } => ErrorKind::Unavailable,
        };
        OpsError::new(kind, e.to_string())
    }
}

/// Result of an operation.
pub type OpsResult<T> = Result<T, OpsError>;
