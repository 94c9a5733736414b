//! Parquet lake tables: one table per tenant and dataset at
//! `ROOT/{tenant}/{dataset}/date=YYYY-MM-DD/part-TOPIC-PARTITION-FIRST-LAST.parquet`, Hive-style
//! date partitions by the record's `ingested_at` (UTC), columns from the dataset's `columns`
//! plus the metadata columns, Snappy-compressed.
//!
//! Rows are buffered per table, date and Kafka partition until a file holds `roll_rows` rows or
//! its first row is `roll_secs` old (small-file control); then every buffer is written as a
//! file: first to a hidden `.part-....parquet.tmp`, synced, then renamed, so readers never see a
//! partial file. Offsets are stored only after that.
//!
//! Exactly once per record: a file's name holds the Kafka topic, partition and the first and
//! last offset it contains. Records of one partition reach a table's date directory in offset
//! order, so the highest `LAST` there says which of that partition's records the directory holds
//! already. A sink that reads records again (after a crash between a file's rename and the
//! offset commit, or a group that starts over) looks the names up once per directory and skips
//! what is there, instead of writing it twice. What a directory holds is read again after every
//! assignment of the group: while another instance held a partition, it may have written files
//! this one does not know of.

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
use chrono::Utc;
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
        Field::new("schema_version", DataType::Utf8, true),
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
    arrays.push(text_column(rows, |r| r.meta.schema_version.clone()));
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

/// Where a buffer's file goes: a date directory of a table, and the Kafka partition its rows
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FileKey {
    dir: PathBuf,
    topic: String,
    partition: i32,
}

/// Buffers rows and writes them as Parquet files.
#[derive(Debug)]
pub struct ParquetSink {
    config: ParquetConfig,
    root: PathBuf,
    buffers: BTreeMap<FileKey, Buffer>,
    /// Per date directory: the last offset its files hold, per topic and partition (read from
    /// the file names the first time the directory is written to).
    landed: BTreeMap<PathBuf, BTreeMap<(String, i32), i64>>,
    /// Rows skipped because the lake held them already.
    skipped: u64,
}

impl ParquetSink {
    /// A sink writing the lake under `base` (the data directory) unless the path is absolute.
    pub fn open(config: ParquetConfig, base: &Path) -> Self {
        let root = base.join(&config.path);
        Self {
            config,
            root,
            buffers: BTreeMap::new(),
            landed: BTreeMap::new(),
            skipped: 0,
        }
    }

    /// The last offset per topic and partition that `dir`'s files hold. Leftover `.tmp` files
    /// of a crash are removed: their rows were never committed and will be written again.
    fn landed_in(&mut self, dir: &Path) -> &BTreeMap<(String, i32), i64> {
        self.landed.entry(dir.to_path_buf()).or_insert_with(|| {
            let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
            let Ok(entries) = std::fs::read_dir(dir) else {
                return last;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".part-") && name.ends_with(".tmp") {
                    if let Err(e) = std::fs::remove_file(entry.path()) {
                        tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove a partial Parquet file");
                    }
                    continue;
                }
                if let Some((topic, partition, _, end)) = parse_file_name(&name) {
                    let at = last.entry((topic, partition)).or_insert(end);
                    *at = (*at).max(end);
                }
            }
            last
        })
    }

    /// The table directory of `target`.
    pub fn table_dir(&self, target: &Target) -> PathBuf {
        self.root.join(&target.tenant).join(&target.dataset)
    }
}

/// `part-TOPIC-PARTITION-FIRST-LAST.parquet`; offsets zero-padded so names sort by offset.
fn file_name(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("part-{topic}-{partition}-{first:020}-{last:020}.parquet")
}

/// Topic, partition, first and last offset of a file named by [`file_name`].
fn parse_file_name(name: &str) -> Option<(String, i32, i64, i64)> {
    let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut parts = stem.rsplitn(4, '-');
    let last = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next()?;
    (!topic.is_empty()).then(|| (topic.to_owned(), partition, first, last))
}

fn write_file(dir: &Path, columns: &[ColumnConfig], rows: &[Row]) -> Result<PathBuf, SinkError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    let (first, last) = (&rows[0].meta, &rows[rows.len() - 1].meta);
    let name = file_name(&first.topic, first.partition, first.offset, last.offset);
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
        let table = self.table_dir(target);
        for row in rows {
            let day = row.meta.ingested_at.unwrap_or_else(Utc::now).date_naive();
            let dir = table.join(format!("date={day}"));
            let source = (row.meta.topic.clone(), row.meta.partition);
            if self
                .landed_in(&dir)
                .get(&source)
                .is_some_and(|last| row.meta.offset <= *last)
            {
                self.skipped += 1;
                continue;
            }
            let key = FileKey {
                dir,
                topic: source.0,
                partition: source.1,
            };
            self.buffers
                .entry(key)
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
        if self.skipped > 0 {
            tracing::info!(
                rows = self.skipped,
                "rows read again were in the lake already; skipped"
            );
            self.skipped = 0;
        }
        let buffers = std::mem::take(&mut self.buffers);
        let written = tokio::task::spawn_blocking(move || {
            let mut written = Vec::new();
            for (key, b) in buffers {
                for chunk in b.rows.chunks(1_000_000) {
                    let path = write_file(&key.dir, &b.columns, chunk)?;
                    let last = chunk[chunk.len() - 1].meta.offset;
                    written.push((key.clone(), path, chunk.len(), last));
                }
            }
            Ok::<_, SinkError>(written)
        })
        .await??;
        for (key, path, rows, last) in written {
            tracing::info!(file = %path.display(), rows, "Parquet file committed");
            let landed = self.landed.entry(key.dir).or_default();
            let at = landed.entry((key.topic, key.partition)).or_insert(last);
            *at = (*at).max(last);
        }
        Ok(())
    }

    fn reassigned(&mut self) {
        self.landed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Meta;

    fn rows(topic: &str, partition: i32, offsets: std::ops::Range<i64>) -> Vec<Row> {
        offsets
            .map(|offset| Row {
                meta: Meta {
                    ingestion_id: format!("id-{offset}"),
                    tenant: "t".to_owned(),
                    dataset: "d".to_owned(),
                    ingested_at: Some(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
                    topic: topic.to_owned(),
                    partition,
                    offset,
                    schema_version: Some("1".to_owned()),
                },
                cells: Vec::new(),
                payload: serde_json::json!({"offset": offset}),
            })
            .collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Two instances share a lake: while B held partition 0 it wrote offsets 10..20, and A,
    /// given the partition back, reads them again from an older commit. After the assignment
    /// A looks at the directory again and writes nothing twice.
    #[tokio::test]
    async fn a_sink_given_a_partition_back_skips_what_another_instance_wrote_meanwhile() {
        let lake = tempfile::tempdir().unwrap();
        let config = ParquetConfig {
            path: lake.path().to_path_buf(),
            roll_rows: 1_000,
            roll_secs: 60,
        };
        let target = Target {
            tenant: "t".to_owned(),
            dataset: "d".to_owned(),
            data_type: None,
            columns: Vec::new(),
        };
        let mut a = ParquetSink::open(config.clone(), lake.path());
        let mut b = ParquetSink::open(config, lake.path());
        a.write(&target, rows("t.d.clean", 0, 0..10)).await.unwrap();
        a.flush().await.unwrap();
        b.write(&target, rows("t.d.clean", 0, 10..20))
            .await
            .unwrap();
        b.flush().await.unwrap();
        let dir = a.table_dir(&target).join("date=2027-01-15");
        assert_eq!(files(&dir).len(), 2, "{:?}", files(&dir));

        a.reassigned();
        a.write(&target, rows("t.d.clean", 0, 10..25))
            .await
            .unwrap();
        a.flush().await.unwrap();
        assert_eq!(
            files(&dir),
            [
                file_name("t.d.clean", 0, 0, 9),
                file_name("t.d.clean", 0, 10, 19),
                file_name("t.d.clean", 0, 20, 24),
            ],
            "offsets 10..20 were written once"
        );
    }

    #[test]
    fn file_names_carry_their_source_range_and_sort_by_offset() {
        let a = file_name("t.sensor.clean", 2, 7, 130);
        let b = file_name("t.sensor.clean", 2, 131, 1_000);
        assert!(a < b, "{a} < {b}");
        assert_eq!(
            parse_file_name(&a),
            Some(("t.sensor.clean".to_owned(), 2, 7, 130))
        );
        assert_eq!(
            parse_file_name("part-my-topic-10-00000000000000000005-00000000000000000009.parquet"),
            Some(("my-topic".to_owned(), 10, 5, 9))
        );
        assert_eq!(parse_file_name("part-0190a8e2-uuid.parquet"), None);
        assert_eq!(parse_file_name(".part-t-1-1-2.parquet.tmp"), None);
    }
}
