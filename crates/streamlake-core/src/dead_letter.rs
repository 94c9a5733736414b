//! A dead letter: the original record plus why a stage refused it. Nothing is dropped
//! silently; what a stage cannot accept travels to `{tenant}.dlq` with these fields as headers.

use serde::{Deserialize, Serialize};

use crate::headers;

/// The stage that refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Ingestion (HTTP, MQTT, sources).
    Gateway,
    /// A processor between raw and clean topics.
    Processor,
    /// A sink.
    Sink,
}

impl Stage {
    /// The value written to the `error.stage` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Gateway => "gateway",
            Stage::Processor => "processor",
            Stage::Sink => "sink",
        }
    }
}

/// Why a stage refused a record: the failing field and the rule, in words. Becomes a
/// [`DeadLetter`] once the stage is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Human-readable reason.
    pub reason: String,
    /// JSON pointer of the failing field (`""` for the whole record).
    pub path: String,
    /// The rule: a JSON Schema keyword (`type`, `required`, ...), a processing rule (`min`,
    /// `allowed`, `normalize.CONVERSION`, ...), `key`, `json`.
    pub rule: String,
}

impl Violation {
    /// The field at `path` broke `rule`, for `reason`.
    pub fn new(path: &str, rule: &str, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            path: path.to_owned(),
            rule: rule.to_owned(),
        }
    }

    /// The dead letter `stage` writes for this violation.
    pub fn dead_letter(self, stage: Stage) -> DeadLetter {
        DeadLetter {
            reason: self.reason,
            path: self.path,
            rule: self.rule,
            stage,
        }
    }
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Human-readable reason.
    pub reason: String,
    /// JSON pointer of the failing field (empty for the whole record).
    pub path: String,
    /// The rule that failed, e.g. a JSON Schema keyword.
    pub rule: String,
    /// The stage that refused the record.
    pub stage: Stage,
}

impl DeadLetter {
    /// The `error.*` headers this dead letter adds to the original record's headers.
    pub fn headers(&self) -> [(&'static str, &str); 4] {
        [
            (headers::ERROR_REASON, self.reason.as_str()),
            (headers::ERROR_PATH, self.path.as_str()),
            (headers::ERROR_RULE, self.rule.as_str()),
            (headers::ERROR_STAGE, self.stage.as_str()),
        ]
    }
}
