//! `[sinks.NAME.postgres]` and the PostgreSQL kind.

use serde::{Deserialize, Serialize};
use streamlake_config::{is_identifier, Problem};

use super::PostgresSink;
use crate::kind::{OpenContext, SinkKind};
use crate::sink::SinkError;

/// `[sinks.NAME.postgres]`: a table per tenant and dataset, created when missing, rows
/// idempotent on `ingestion_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL, e.g. `postgresql://postgres@127.0.0.1:5432/postgres`. Prefer `url_env`
    /// when it holds a password.
    pub url: Option<String>,
    /// Environment variable holding the connection URL; wins over `url` when set.
    pub url_env: Option<String>,
    /// Database schema of the tables, created when missing.
    pub schema: String,
    /// Table name template (placeholders `{tenant}`, `{dataset}`); `-` becomes `_`.
    pub table: String,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_env: None,
            schema: "bronze".to_owned(),
            table: "{tenant}_{dataset}".to_owned(),
        }
    }
}

/// PostgreSQL tables.
#[derive(Debug, Clone, Copy)]
pub struct Postgres;

impl SinkKind for Postgres {
    const NAME: &'static str = "postgres";
    type Config = PostgresConfig;
    type Store = PostgresSink;

    fn check(config: &PostgresConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        if config.url.is_none() && config.url_env.is_none() {
            problems.push(Problem::new(
                "",
                "needs `url` or `url_env` (the variable holding the connection URL)",
            ));
        }
        if !is_identifier(&config.schema) {
            problems.push(Problem::new(
                "schema",
                format!(
                    "\"{}\" is not a schema name (letters, digits and _)",
                    config.schema
                ),
            ));
        }
        problems
    }

    async fn open(config: &PostgresConfig, _: OpenContext<'_>) -> Result<PostgresSink, SinkError> {
        PostgresSink::open(config.clone()).await
    }
}
