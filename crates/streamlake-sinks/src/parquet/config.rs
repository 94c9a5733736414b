//! `[sinks.NAME.parquet]` and the Parquet kind.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use streamlake_config::Problem;

use super::ParquetSink;
use crate::kind::{OpenContext, SinkKind};
use crate::sink::SinkError;

/// `[sinks.NAME.parquet]`: a lake table per tenant and dataset at
/// `PATH/{tenant}/{dataset}/date=YYYY-MM-DD/part-*.parquet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetConfig {
    /// Lake root, relative to `data_dir` unless absolute.
    pub path: PathBuf,
    /// Close a file once it holds this many rows.
    pub roll_rows: usize,
    /// Close a file this many seconds after its first row, however small.
    pub roll_secs: u64,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("lake"),
            roll_rows: 100_000,
            roll_secs: 60,
        }
    }
}

/// Parquet lake tables.
#[derive(Debug, Clone, Copy)]
pub struct Parquet;

impl SinkKind for Parquet {
    const NAME: &'static str = "parquet";
    type Config = ParquetConfig;
    type Store = ParquetSink;

    fn check(config: &ParquetConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        if config.roll_rows == 0 {
            problems.push(Problem::new("roll_rows", "must be at least 1"));
        }
        problems
    }

    async fn open(config: &ParquetConfig, cx: OpenContext<'_>) -> Result<ParquetSink, SinkError> {
        Ok(ParquetSink::open(config.clone(), cx.data_dir))
    }
}
