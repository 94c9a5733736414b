//! JSON Lines files: one file per path template (e.g. `{tenant}_{dataset}.jsonl`), one JSON
//! object per row: the metadata columns, then the declared columns with their JSON types
//! (timestamps as RFC 3339 UTC), or the whole record as `payload` when the dataset declares
//! none. The format other tools (`jq`, DuckDB's `read_json`, Spark) read without a schema.
//!
//! Each `write` appends its rows with one system call; `flush` syncs the files before offsets
//! are stored: a crash may repeat rows (each carries its `ingestion_id`) but never loses one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::row::{Cell, Row};
use crate::sink::{Rejected, Sink, SinkError, Target};

mod config;
pub use config::{JsonLines, JsonLinesConfig};

/// Appends rows to JSON Lines files.
#[derive(Debug)]
pub struct JsonLinesSink {
    config: JsonLinesConfig,
    base: PathBuf,
    files: BTreeMap<PathBuf, File>,
}

impl JsonLinesSink {
    /// A sink writing under `base` (the data directory) unless the path is absolute.
    pub fn open(config: JsonLinesConfig, base: &Path) -> Self {
        Self {
            config,
            base: base.to_path_buf(),
            files: BTreeMap::new(),
        }
    }

    /// The file of `target`.
    pub fn path_of(&self, target: &Target) -> PathBuf {
        self.base.join(target.fill(&self.config.path))
    }
}

fn cell_value(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Str(s) => Value::String(s.clone()),
        Cell::Int(i) => Value::from(*i),
        Cell::Float(f) => Value::from(*f),
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Timestamp(t) => Value::String(streamlake_pipeline::json::rfc3339(*t)),
        Cell::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| text.clone().into()),
    }
}

/// `row` as one JSON object, its fields in column order.
fn object(target: &Target, row: &Row) -> Map<String, Value> {
    let m = &row.meta;
    let mut o = Map::new();
    o.insert("ingestion_id".into(), m.ingestion_id.clone().into());
    o.insert("tenant".into(), m.tenant.clone().into());
    o.insert("dataset".into(), m.dataset.clone().into());
    o.insert(
        "ingested_at".into(),
        m.ingested_at.map_or(Value::Null, |t| {
            streamlake_pipeline::json::rfc3339(t).into()
        }),
    );
    o.insert("kafka_topic".into(), m.topic.clone().into());
    o.insert("kafka_partition".into(), m.partition.into());
    o.insert("kafka_offset".into(), m.offset.into());
    o.insert(
        "schema_version".into(),
        m.schema_version.clone().map_or(Value::Null, Value::String),
    );
    if target.columns.is_empty() {
        o.insert("payload".into(), row.payload.clone());
    } else {
        for (column, cell) in target.columns.iter().zip(&row.cells) {
            o.insert(column.name.clone(), cell_value(cell));
        }
    }
    o
}

impl Sink for JsonLinesSink {
    async fn write(&mut self, target: &Target, rows: Vec<Row>) -> Result<Vec<Rejected>, SinkError> {
        let path = self.path_of(target);
        let mut bytes = Vec::new();
        for row in &rows {
            serde_json::to_writer(&mut bytes, &object(target, row))?;
            bytes.push(b'\n');
        }
        if !self.files.contains_key(&path) {
            let file = crate::files::open_append(&path)?;
            self.files.insert(path.clone(), file);
        }
        let file = self.files.get_mut(&path).expect("opened above");
        file.write_all(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Vec::new())
    }

    fn wants_flush(&self) -> bool {
        true
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        crate::files::sync_all(&self.files).await
    }
}
