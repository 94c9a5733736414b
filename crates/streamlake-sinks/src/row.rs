//! Rows: a clean record converted to the typed columns a sink writes, with the metadata that
//! traces it to its record (reliability rule 6 in docs/ARCHITECTURE.md).

use chrono::{DateTime, Utc};
use serde_json::Value;
use streamlake_config::{ColumnConfig, ColumnType};
use streamlake_core::headers;
use streamlake_kafka::Record;
use streamlake_pipeline::json::{get_pointer, number, parse_any_timestamp};

/// One typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Missing or null.
    Null,
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// UTC timestamp.
    Timestamp(DateTime<Utc>),
    /// JSON text.
    Json(String),
}

impl Cell {
    /// The cell as text (CSV): empty for null, RFC 3339 for timestamps.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Str(s) | Cell::Json(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Timestamp(t) => streamlake_pipeline::json::rfc3339(*t),
        }
    }
}

/// Where a row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The record's `ingestion_id` header, or `TOPIC/PARTITION/OFFSET` for a record that has
    /// none (written by a plain Kafka producer): stable across replays either way.
    pub ingestion_id: String,
    /// Tenant.
    pub tenant: String,
    /// Dataset.
    pub dataset: String,
    /// `ingested_at` header, or the record's timestamp.
    pub ingested_at: Option<DateTime<Utc>>,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The `schema_version` header: the schema version the event was validated against.
    pub schema_version: Option<String>,
}

/// A row for one dataset's table or file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metadata columns.
    pub meta: Meta,
    /// Declared columns, in declaration order.
    pub cells: Vec<Cell>,
    /// The whole record.
    pub payload: Value,
}

/// Why a record cannot become a row: dead-lettered with stage `sink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// What was wrong.
    pub reason: String,
    /// JSON pointer.
    pub path: String,
    /// `json` or `column.TYPE`.
    pub rule: String,
}

fn header_str<'r>(record: &'r Record, name: &str) -> Option<&'r str> {
    record
        .header(name)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Converts `record` of `tenant`/`dataset` to a row with `columns`.
pub fn to_row(
    record: &Record,
    tenant: &str,
    dataset: &str,
    columns: &[ColumnConfig],
) -> Result<Row, RowError> {
    let payload: Value =
        serde_json::from_slice(record.payload.as_deref().unwrap_or(b"")).map_err(|e| RowError {
            reason: format!("the record is not JSON: {e}"),
            path: String::new(),
            rule: "json".to_owned(),
        })?;
    let mut cells = Vec::with_capacity(columns.len());
    for c in columns {
        let pointer = c.pointer();
        let value = get_pointer(&payload, &pointer).unwrap_or(&Value::Null);
        cells.push(cell(value, c.kind).map_err(|why| RowError {
            reason: format!("column {} ({pointer}): {why}", c.name),
            path: pointer.to_string(),
            rule: format!("column.{}", type_name(c.kind)),
        })?);
    }
    let ingested_at = header_str(record, headers::INGESTED_AT)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            record
                .timestamp_ms
                .and_then(DateTime::from_timestamp_millis)
        });
    Ok(Row {
        meta: Meta {
            ingestion_id: header_str(record, headers::INGESTION_ID).map_or_else(
                || format!("{}/{}/{}", record.topic, record.partition, record.offset),
                str::to_owned,
            ),
            tenant: tenant.to_owned(),
            dataset: dataset.to_owned(),
            ingested_at,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            schema_version: header_str(record, headers::SCHEMA_VERSION).map(str::to_owned),
        },
        cells,
        payload,
    })
}

/// The name of a column type as configured.
pub fn type_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String => "string",
        ColumnType::Integer => "integer",
        ColumnType::Float => "float",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Json => "json",
    }
}

fn cell(value: &Value, kind: ColumnType) -> Result<Cell, String> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match kind {
        ColumnType::String => match value {
            Value::String(s) => Cell::Str(s.clone()),
            Value::Number(_) | Value::Bool(_) => Cell::Str(value.to_string()),
            _ => return Err(format!("{value} is not a scalar")),
        },
        ColumnType::Integer => {
            let f = number(value).ok_or_else(|| format!("{value} is not a number"))?;
            if f.fract() != 0.0 {
                return Err(format!("{value} is not an integer"));
            }
            match value.as_i64() {
                Some(i) => Cell::Int(i),
                None => Cell::Int(f as i64),
            }
        }
        ColumnType::Float => {
            Cell::Float(number(value).ok_or_else(|| format!("{value} is not a number"))?)
        }
        ColumnType::Boolean => Cell::Bool(
            value
                .as_bool()
                .ok_or_else(|| format!("{value} is not a boolean"))?,
        ),
        ColumnType::Timestamp => Cell::Timestamp(parse_any_timestamp(value)?),
        ColumnType::Json => Cell::Json(value.to_string()),
    })
}
