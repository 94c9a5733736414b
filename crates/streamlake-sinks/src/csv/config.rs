//! `[sinks.NAME.csv]` and the CSV kind.

use serde::{Deserialize, Serialize};
use streamlake_config::Problem;

use super::CsvSink;
use crate::kind::{OpenContext, SinkKind};
use crate::sink::SinkError;

/// `[sinks.NAME.csv]`: one CSV file per path (placeholders `{tenant}`, `{dataset}`,
/// `{data_type}`), header row once, RFC 4180 quoting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvConfig {
    /// File path template, relative to `data_dir` unless absolute.
    pub path: String,
    /// Start a new file once the current one reaches this many bytes.
    pub rotate_bytes: Option<u64>,
    /// Start a new file when the UTC day changes.
    pub rotate_daily: bool,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self {
            path: "sinks/csv/{tenant}_{dataset}.csv".to_owned(),
            rotate_bytes: None,
            rotate_daily: false,
        }
    }
}

/// CSV files.
#[derive(Debug, Clone, Copy)]
pub struct Csv;

impl SinkKind for Csv {
    const NAME: &'static str = "csv";
    type Config = CsvConfig;
    type Store = CsvSink;

    fn check(config: &CsvConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        if config.path.trim().is_empty() {
            problems.push(Problem::new("path", "must name a file"));
        }
        if config.rotate_bytes == Some(0) {
            problems.push(Problem::new("rotate_bytes", "must be at least 1"));
        }
        problems
    }

    async fn open(config: &CsvConfig, cx: OpenContext<'_>) -> Result<CsvSink, SinkError> {
        Ok(CsvSink::open(config.clone(), cx.data_dir))
    }
}
