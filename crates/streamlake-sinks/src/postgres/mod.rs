//! PostgreSQL tables (SPEC K-PG): one table per tenant and dataset (`SCHEMA.TABLE`, created
//! when missing), rows inserted a batch at a time with one statement that unpacks a JSON array
//! (`jsonb_to_recordset`), and `ON CONFLICT (ingestion_id) DO NOTHING`: a batch replayed after
//! a crash inserts nothing twice, so at-least-once delivery gives exactly-once rows.
//!
//! Every table has the metadata columns, the dataset's declared columns, the whole record as
//! `payload jsonb`, and `landed_at`. Each insert commits on its own, so `flush` has nothing
//! left to do.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use streamlake_config::{ColumnConfig, ColumnType, PostgresSinkConfig};
use tokio_postgres::{Client, NoTls};

use crate::row::{Cell, Row};
use crate::sink::{Sink, SinkError, Target};

/// Writes rows into PostgreSQL.
#[derive(Debug)]
pub struct PostgresSink {
    config: PostgresSinkConfig,
    client: Client,
    ready: BTreeSet<String>,
}

/// Double-quotes an identifier.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn sql_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String => "text",
        ColumnType::Integer => "bigint",
        ColumnType::Float => "double precision",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamptz",
        ColumnType::Json => "jsonb",
    }
}

/// The connection URL from `url_env` (when set) or `url`.
pub fn connection_url(config: &PostgresSinkConfig) -> Result<String, SinkError> {
    if let Some(var) = &config.url_env {
        if let Ok(url) = std::env::var(var) {
            if !url.is_empty() {
                return Ok(url);
            }
        }
    }
    config.url.clone().ok_or_else(|| {
        format!(
            "no PostgreSQL URL: set the environment variable {} or `url`",
            config.url_env.as_deref().unwrap_or("named by url_env")
        )
        .into()
    })
}

impl PostgresSink {
    /// Connects. The connection runs in a background task; its failure fails the next write.
    pub async fn open(config: PostgresSinkConfig) -> Result<Self, SinkError> {
        let url = connection_url(&config)?;
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(Self {
            config,
            client,
            ready: BTreeSet::new(),
        })
    }

    /// `"schema"."table"` of `target`.
    pub fn table_of(&self, target: &Target) -> String {
        format!(
            "{}.{}",
            quote(&self.config.schema),
            quote(&target.fill(&self.config.table).replace('-', "_"))
        )
    }

    async fn ensure_table(&mut self, target: &Target) -> Result<String, SinkError> {
        let table = self.table_of(target);
        if self.ready.contains(&table) {
            return Ok(table);
        }
        let mut cols = vec![
            "ingestion_id text PRIMARY KEY".to_owned(),
            "tenant text NOT NULL".to_owned(),
            "dataset text NOT NULL".to_owned(),
            "ingested_at timestamptz".to_owned(),
            "kafka_topic text NOT NULL".to_owned(),
            "kafka_partition integer NOT NULL".to_owned(),
            "kafka_offset bigint NOT NULL".to_owned(),
        ];
        cols.extend(
            target
                .columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), sql_type(c.kind))),
        );
        cols.push("payload jsonb NOT NULL".to_owned());
        cols.push("landed_at timestamptz NOT NULL DEFAULT now()".to_owned());
        let ddl = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {table} ({cols})",
            schema = quote(&self.config.schema),
            cols = cols.join(", ")
        );
        self.client
            .batch_execute(&ddl)
            .await
            .map_err(|e| format!("cannot create table {table}: {e}"))?;
        tracing::info!(%table, "PostgreSQL table ready");
        self.ready.insert(table.clone());
        Ok(table)
    }
}

fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Str(s) => Value::String(s.clone()),
        Cell::Int(i) => Value::from(*i),
        Cell::Float(f) => Value::from(*f),
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Timestamp(t) => Value::String(streamlake_pipeline::json::rfc3339(*t)),
        Cell::Json(s) => serde_json::from_str(s).unwrap_or(Value::Null),
    }
}

fn row_json(columns: &[ColumnConfig], row: &Row) -> Value {
    let m = &row.meta;
    let mut o = Map::new();
    o.insert("ingestion_id".into(), m.ingestion_id.clone().into());
    o.insert("tenant".into(), m.tenant.clone().into());
    o.insert("dataset".into(), m.dataset.clone().into());
    o.insert(
        "ingested_at".into(),
        m.ingested_at
            .map(|t| Value::String(streamlake_pipeline::json::rfc3339(t)))
            .unwrap_or(Value::Null),
    );
    o.insert("kafka_topic".into(), m.topic.clone().into());
    o.insert("kafka_partition".into(), m.partition.into());
    o.insert("kafka_offset".into(), m.offset.into());
    for (c, cell) in columns.iter().zip(&row.cells) {
        o.insert(c.name.clone(), cell_json(cell));
    }
    o.insert("payload".into(), row.payload.clone());
    Value::Object(o)
}

impl Sink for PostgresSink {
    async fn write(&mut self, target: &Target, rows: Vec<Row>) -> Result<(), SinkError> {
        let table = self.ensure_table(target).await?;
        let mut defs = vec![
            ("ingestion_id".to_owned(), "text"),
            ("tenant".to_owned(), "text"),
            ("dataset".to_owned(), "text"),
            ("ingested_at".to_owned(), "timestamptz"),
            ("kafka_topic".to_owned(), "text"),
            ("kafka_partition".to_owned(), "integer"),
            ("kafka_offset".to_owned(), "bigint"),
        ];
        defs.extend(
            target
                .columns
                .iter()
                .map(|c| (c.name.clone(), sql_type(c.kind))),
        );
        defs.push(("payload".to_owned(), "jsonb"));
        let names: Vec<String> = defs.iter().map(|(n, _)| quote(n)).collect();
        let typed: Vec<String> = defs
            .iter()
            .map(|(n, t)| format!("{} {t}", quote(n)))
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_to_recordset($1::text::jsonb) AS x({typed}) \
             ON CONFLICT (ingestion_id) DO NOTHING",
            names = names.join(", "),
            typed = typed.join(", ")
        );
        let batch =
            Value::Array(rows.iter().map(|r| row_json(&target.columns, r)).collect()).to_string();
        self.client
            .execute(&sql, &[&batch])
            .await
            .map_err(|e| format!("insert into {table} failed: {e}"))?;
        Ok(())
    }

    fn wants_flush(&self) -> bool {
        true
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
