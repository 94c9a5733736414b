//! PostgreSQL tables: one table per tenant and dataset (`SCHEMA.TABLE`, created
//! when missing), rows inserted a batch at a time with one statement that unpacks a JSON array
//! (`jsonb_to_recordset`), and `ON CONFLICT (ingestion_id) DO NOTHING`: a batch replayed after
//! a crash inserts nothing twice, so at-least-once delivery gives exactly-once rows.
//!
//! Every table has the metadata columns, the dataset's declared columns, the whole record as
//! `payload jsonb`, and `landed_at`. Each insert commits on its own, so `flush` has nothing
//! left to do.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use streamlake_config::{ColumnConfig, ColumnType};
use tokio_postgres::{Client, NoTls, Statement};

use crate::row::{Cell, Row};
use crate::sink::{Rejected, Sink, SinkError, Target};

mod config;
pub use config::{Postgres, PostgresConfig};

/// Writes rows into PostgreSQL.
#[derive(Debug)]
pub struct PostgresSink {
    config: PostgresConfig,
    client: Client,
    /// Per table: its prepared insert.
    ready: BTreeMap<String, Statement>,
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
pub fn connection_url(config: &PostgresConfig) -> Result<String, SinkError> {
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
    pub async fn open(config: PostgresConfig) -> Result<Self, SinkError> {
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
            ready: BTreeMap::new(),
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

    /// Creates the table of `target` when missing and prepares its insert.
    async fn ensure_table(&mut self, target: &Target) -> Result<(String, Statement), SinkError> {
        let table = self.table_of(target);
        if let Some(insert) = self.ready.get(&table) {
            return Ok((table, insert.clone()));
        }
        let mut cols = vec![
            "ingestion_id text PRIMARY KEY".to_owned(),
            "tenant text NOT NULL".to_owned(),
            "dataset text NOT NULL".to_owned(),
            "ingested_at timestamptz".to_owned(),
            "kafka_topic text NOT NULL".to_owned(),
            "kafka_partition integer NOT NULL".to_owned(),
            "kafka_offset bigint NOT NULL".to_owned(),
            "schema_version text".to_owned(),
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
        // A table made before a column was declared (a new schema version's field) or before
        // `schema_version` was a metadata column gains it, empty in the rows already there.
        let added: Vec<String> = std::iter::once("schema_version text".to_owned())
            .chain(
                target
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", quote(&c.name), sql_type(c.kind))),
            )
            .map(|col| format!("ADD COLUMN IF NOT EXISTS {col}"))
            .collect();
        self.client
            .batch_execute(&format!("ALTER TABLE {table} {}", added.join(", ")))
            .await
            .map_err(|e| format!("cannot add the declared columns to table {table}: {e}"))?;
        let mut defs = vec![
            ("ingestion_id".to_owned(), "text"),
            ("tenant".to_owned(), "text"),
            ("dataset".to_owned(), "text"),
            ("ingested_at".to_owned(), "timestamptz"),
            ("kafka_topic".to_owned(), "text"),
            ("kafka_partition".to_owned(), "integer"),
            ("kafka_offset".to_owned(), "bigint"),
            ("schema_version".to_owned(), "text"),
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
        let insert = self
            .client
            .prepare(&sql)
            .await
            .map_err(|e| format!("cannot prepare the insert into {table}: {e}"))?;
        tracing::info!(%table, "PostgreSQL table ready");
        self.ready.insert(table.clone(), insert.clone());
        Ok((table, insert))
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
    o.insert(
        "schema_version".into(),
        m.schema_version.clone().map_or(Value::Null, Value::String),
    );
    for (c, cell) in columns.iter().zip(&row.cells) {
        o.insert(c.name.clone(), cell_json(cell));
    }
    o.insert("payload".into(), row.payload.clone());
    Value::Object(o)
}

/// Whether PostgreSQL refused the data itself (SQLSTATE class 22 data exception, 23 integrity
/// violation), as opposed to the connection or the server failing.
fn refused_data(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

impl Sink for PostgresSink {
    async fn write(&mut self, target: &Target, rows: Vec<Row>) -> Result<Vec<Rejected>, SinkError> {
        let (table, insert) = self.ensure_table(target).await?;
        let json: Vec<Value> = rows.iter().map(|r| row_json(&target.columns, r)).collect();
        let batch = Value::Array(json.clone()).to_string();
        match self.client.execute(&insert, &[&batch]).await {
            Ok(_) => Ok(Vec::new()),
            Err(e) if refused_data(&e) => {
                // One bad row must not hold back the rest: insert row by row and reject only
                // the rows PostgreSQL refuses.
                tracing::warn!(%table, error = %e, rows = rows.len(), "batch refused; inserting row by row");
                let mut rejected = Vec::new();
                for (index, row) in json.into_iter().enumerate() {
                    let one = Value::Array(vec![row]).to_string();
                    match self.client.execute(&insert, &[&one]).await {
                        Ok(_) => {}
                        Err(e) if refused_data(&e) => rejected.push(Rejected {
                            index,
                            reason: format!(
                                "PostgreSQL refused the row for {table}: {}",
                                db_message(&e)
                            ),
                        }),
                        Err(e) => return Err(format!("insert into {table} failed: {e}").into()),
                    }
                }
                Ok(rejected)
            }
            Err(e) => Err(format!("insert into {table} failed: {e}").into()),
        }
    }

    fn wants_flush(&self) -> bool {
        true
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}
