//! `[sinks.NAME.jsonl]` and the JSON Lines kind.

use serde::{Deserialize, Serialize};
use streamlake_config::Problem;

use super::JsonLinesSink;
use crate::kind::{OpenContext, SinkKind};
use crate::sink::SinkError;

/// `[sinks.NAME.jsonl]`: one JSON Lines file per path (placeholders `{tenant}`, `{dataset}`,
/// `{data_type}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLinesConfig {
    /// File path template, relative to `data_dir` unless absolute.
    pub path: String,
}

impl Default for JsonLinesConfig {
    fn default() -> Self {
        Self {
            path: "sinks/jsonl/{tenant}_{dataset}.jsonl".to_owned(),
        }
    }
}

/// JSON Lines files.
#[derive(Debug, Clone, Copy)]
pub struct JsonLines;

impl SinkKind for JsonLines {
    const NAME: &'static str = "jsonl";
    type Config = JsonLinesConfig;
    type Store = JsonLinesSink;

    fn check(config: &JsonLinesConfig) -> Vec<Problem> {
        if config.path.trim().is_empty() {
            vec![Problem::new("path", "must name a file")]
        } else {
            Vec::new()
        }
    }

    async fn open(
        config: &JsonLinesConfig,
        cx: OpenContext<'_>,
    ) -> Result<JsonLinesSink, SinkError> {
        Ok(JsonLinesSink::open(config.clone(), cx.data_dir))
    }
}
