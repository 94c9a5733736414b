//! Parquet lake tables: one table per tenant and dataset at
//! `ROOT/{tenant}/{dataset}/date=YYYY-MM-DD/part-UUID.parquet`, Hive-style date partitions by
//! the record's `ingested_at` (UTC), columns from the dataset's `columns` plus the metadata
//! columns, Snappy-compressed.
//!
//! Rows are buffered per table and date until a file holds `roll_rows` rows or its first row is
//! `roll_secs` old (small-file control); then every buffer is written as a file: first to a
//! hidden `.part-UUID.parquet.tmp`, synced, then renamed, so readers never see a partial file.
//! Offsets are stored only after that, so a crash replays the buffered rows.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{NaiveDate, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use streamlake_config::{ColumnConfig, ColumnType};

use crate::row::{Cell, Row};
use crate::sink::{Rejected, Sink, SinkError, Target};

mod config;
pub use config::{Parquet, ParquetConfig};

/// The Arrow schema of a table with `columns` (all nullable except the metadata identity).
pub fn schema(columns: &[ColumnConfig]) -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("ingestion_id", DataType::Utf8, false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("ingested_at", ts.clone(), true),
        Field::new("kafka_topic", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
    ];
    if columns.is_empty() {
        fields.push(Field::new("payload", DataType::Utf8, false));
    }
    for c in columns {
        let t = match c.kind {
            ColumnType::String | ColumnType::Json => DataType::Utf8,
            ColumnType::Integer => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => ts.clone(),
        };
        fields.push(Field::new(&c.name, t, true));
    }
    Schema::new(fields)
}

fn text_column(rows: &[Row], f: impl Fn(&Row) -> Option<String>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for r in rows {
        b.append_option(f(r));
    }
    Arc::new(b.finish())
}

/// The rows as one Arrow record batch of `schema(columns)`.
pub fn to_batch(columns: &[ColumnConfig], rows: &[Row]) -> Result<RecordBatch, SinkError> {
    let mut arrays: Vec<ArrayRef> = vec![
        text_column(rows, |r| Some(r.meta.ingestion_id.clone())),
        text_column(rows, |r| Some(r.meta.tenant.clone())),
        text_column(rows, |r| Some(r.meta.dataset.clone())),
    ];
    let mut ingested = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    for r in rows {
        ingested.append_option(r.meta.ingested_at.map(|t| t.timestamp_micros()));
        partition.append_value(r.meta.partition);
        offset.append_value(r.meta.offset);
    }
    arrays.push(Arc::new(ingested.finish()));
    arrays.push(text_column(rows, |r| Some(r.meta.topic.clone())));
    arrays.push(Arc::new(partition.finish()));
    arrays.push(Arc::new(offset.finish()));
    if columns.is_empty() {
        arrays.push(text_column(rows, |r| Some(r.payload.to_string())));
    }
    for (i, c) in columns.iter().enumerate() {
        let cells = rows.iter().map(|r| &r.cells[i]);
        let array: ArrayRef = match c.kind {
            ColumnType::String | ColumnType::Json => {
                let mut b = StringBuilder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Cell::Null => None,
                        other => Some(other.to_text()),
                    });
                }
                Arc::new(b.finish())
            }
            ColumnType::Integer => {
                let mut b = Int64Builder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Cell::Int(v) => Some(*v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            ColumnType::Float => {
                let mut b = Float64Builder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Cell::Float(v) => Some(*v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            ColumnType::Boolean => {
                let mut b = BooleanBuilder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Cell::Bool(v) => Some(*v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            ColumnType::Timestamp => {
                let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                for cell in cells {
                    b.append_option(match cell {
                        Cell::Timestamp(t) => Some(t.timestamp_micros()),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(schema(columns)), arrays)?)
}

#[derive(Debug)]
struct Buffer {
    columns: Vec<ColumnConfig>,
    rows: Vec<Row>,
    since: Instant,
}

/// Buffers rows and writes them as Parquet files.
#[derive(Debug)]
pub struct ParquetSink {
    config: ParquetConfig,
    root: PathBuf,
    buffers: BTreeMap<(PathBuf, NaiveDate), Buffer>,
}

impl ParquetSink {
    /// A sink writing the lake under `base` (the data directory) unless the path is absolute.
    pub fn open(config: ParquetConfig, base: &Path) -> Self {
        let root = base.join(&config.path);
        Self {
            config,
            root,
            buffers: BTreeMap::new(),
        }
    }

    /// The table directory of `target`.
    pub fn table_dir(&self, target: &Target) -> PathBuf {
        self.root.join(&target.tenant).join(&target.dataset)
    }
}

fn write_file(dir: &Path, columns: &[ColumnConfig], rows: &[Row]) -> Result<PathBuf, SinkError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    let name = format!("part-{}.parquet", uuid::Uuid::now_v7());
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(&name);
    let batch = to_batch(columns, rows)?;
    let file = File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    let file = writer.into_inner()?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &dest)
        .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), dest.display()))?;
    Ok(dest)
}

impl Sink for ParquetSink {
    async fn write(&mut self, target: &Target, rows: Vec<Row>) -> Result<Vec<Rejected>, SinkError> {
        let dir = self.table_dir(target);
        for row in rows {
            let day = row.meta.ingested_at.unwrap_or_else(Utc::now).date_naive();
            self.buffers
                .entry((dir.clone(), day))
                .or_insert_with(|| Buffer {
                    columns: target.columns.clone(),
                    rows: Vec::new(),
                    since: Instant::now(),
                })
                .rows
                .push(row);
        }
        Ok(Vec::new())
    }

    fn wants_flush(&self) -> bool {
        let max_age = Duration::from_secs(self.config.roll_secs);
        self.buffers
            .values()
            .any(|b| b.rows.len() >= self.config.roll_rows || b.since.elapsed() >= max_age)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let buffers = std::mem::take(&mut self.buffers);
        let written = tokio::task::spawn_blocking(move || {
            let mut written = Vec::new();
            for ((dir, day), b) in buffers {
                let part = dir.join(format!("date={day}"));
                for chunk in b.rows.chunks(1_000_000) {
                    written.push((write_file(&part, &b.columns, chunk)?, chunk.len()));
                }
            }
            Ok::<_, SinkError>(written)
        })
        .await??;
        for (path, rows) in written {
            tracing::info!(file = %path.display(), rows, "Parquet file committed");
        }
        Ok(())
    }
}
