//! CSV files: one file per path template (e.g. `processed_data_{data_type}.csv`),
//! a header row once per file, RFC 4180 quoting by the `csv` crate, rotation by size or UTC day.
//!
//! The active file always has the configured name; rotation renames it to
//! `NAME.YYYYMMDDTHHMMSSZ.csv` and starts a new one. Rows are appended as they arrive and
//! `flush` syncs the files to disk before offsets are stored: a crash may repeat rows (each
//! carries its `ingestion_id`) but never loses one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use streamlake_config::METADATA_COLUMNS;

use crate::row::Row;
use crate::sink::{Rejected, Sink, SinkError, Target};

mod config;
pub use config::{Csv, CsvConfig};

#[derive(Debug)]
struct OpenFile {
    file: File,
    bytes: u64,
    day: NaiveDate,
}

/// Appends rows to CSV files.
#[derive(Debug)]
pub struct CsvSink {
    config: CsvConfig,
    base: PathBuf,
    files: BTreeMap<PathBuf, OpenFile>,
}

impl CsvSink {
    /// A sink writing under `base` (the data directory) unless the path is absolute.
    pub fn open(config: CsvConfig, base: &Path) -> Self {
        Self {
            config,
            base: base.to_path_buf(),
            files: BTreeMap::new(),
        }
    }

    /// The active file of `target`.
    pub fn path_of(&self, target: &Target) -> PathBuf {
        self.base.join(target.fill(&self.config.path))
    }
}

/// The header row of `target`.
pub fn header(target: &Target) -> Vec<String> {
    let mut h: Vec<String> = METADATA_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
    if target.columns.is_empty() {
        h.push("payload".to_owned());
    } else {
        h.extend(target.columns.iter().map(|c| c.name.clone()));
    }
    h
}

fn fields(row: &Row) -> Vec<String> {
    let m = &row.meta;
    let mut f = vec![
        m.ingestion_id.clone(),
        m.tenant.clone(),
        m.dataset.clone(),
        m.ingested_at
            .map(streamlake_pipeline::json::rfc3339)
            .unwrap_or_default(),
        m.topic.clone(),
        m.partition.to_string(),
        m.offset.to_string(),
        m.schema_version.clone().unwrap_or_default(),
    ];
    if row.cells.is_empty() {
        f.push(row.payload.to_string());
    } else {
        f.extend(row.cells.iter().map(|c| c.to_text()));
    }
    f
}

fn encode(records: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>, SinkError> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for r in records {
        w.write_record(&r)?;
    }
    Ok(w.into_inner().map_err(|e| e.into_error())?)
}

/// Opens `path` for appending rows under `header`. A file begun under another header (columns
/// declared or removed since, `schema_version` added) is rotated first, so no file mixes rows of
/// two layouts.
fn open_file(path: &Path, header: &[String]) -> Result<OpenFile, SinkError> {
    let encoded = encode([header.to_vec()])?;
    if let Some(first) = first_line(path)? {
        if first != encoded {
            let to = rotated_name(path);
            std::fs::rename(path, &to).map_err(|e| {
                format!("cannot rotate {} to {}: {e}", path.display(), to.display())
            })?;
            tracing::info!(file = %to.display(), "CSV columns changed; the file under the old header was rotated");
        }
    }
    let mut file = crate::files::open_append(path)?;
    let meta = file.metadata()?;
    let mut bytes = meta.len();
    let day = if bytes == 0 {
        Utc::now().date_naive()
    } else {
        DateTime::<Utc>::from(meta.modified()?).date_naive()
    };
    if bytes == 0 {
        file.write_all(&encoded)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        bytes = encoded.len() as u64;
    }
    Ok(OpenFile { file, bytes, day })
}

/// The first line of an existing, non-empty file, with its line ending.
fn first_line(path: &Path) -> Result<Option<Vec<u8>>, SinkError> {
    use std::io::BufRead as _;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    let mut line = Vec::new();
    std::io::BufReader::new(file)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok((!line.is_empty()).then_some(line))
}

/// The name an active file is renamed to when it rotates.
fn rotated_name(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut n = 0;
    loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = path.with_file_name(format!("{stem}.{stamp}{suffix}{ext}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

impl CsvSink {
    fn rotate_due(&self, f: &OpenFile, header_len: u64) -> bool {
        let by_size = self
            .config
            .rotate_bytes
            .is_some_and(|max| f.bytes >= max && f.bytes > header_len);
        let by_day = self.config.rotate_daily && f.day != Utc::now().date_naive();
        by_size || by_day
    }
}

impl Sink for CsvSink {
    async fn write(&mut self, target: &Target, rows: Vec<Row>) -> Result<Vec<Rejected>, SinkError> {
        let path = self.path_of(target);
        let header = header(target);
        let header_len = encode([header.clone()])?.len() as u64;
        for row in rows {
            if !self.files.contains_key(&path) {
                let f = open_file(&path, &header)?;
                self.files.insert(path.clone(), f);
            }
            if self.rotate_due(&self.files[&path], header_len) {
                let old = self.files.remove(&path).expect("checked above");
                old.file.sync_all()?;
                drop(old);
                let to = rotated_name(&path);
                std::fs::rename(&path, &to).map_err(|e| {
                    format!("cannot rotate {} to {}: {e}", path.display(), to.display())
                })?;
                tracing::info!(file = %to.display(), "CSV file rotated");
                self.files.insert(path.clone(), open_file(&path, &header)?);
            }
            let bytes = encode([fields(&row)])?;
            let f = self.files.get_mut(&path).expect("opened above");
            f.file
                .write_all(&bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            f.bytes += bytes.len() as u64;
        }
        Ok(Vec::new())
    }

    fn wants_flush(&self) -> bool {
        true
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        crate::files::sync_all(self.files.iter().map(|(path, f)| (path, &f.file))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{Cell, Meta};
    use streamlake_config::{ColumnConfig, ColumnType};

    fn target() -> Target {
        Target {
            tenant: "t".into(),
            dataset: "d".into(),
            data_type: Some("sensor".into()),
            columns: vec![ColumnConfig {
                name: "v".into(),
                pointer: None,
                kind: ColumnType::String,
            }],
        }
    }

    fn row(i: i64) -> Row {
        Row {
            meta: Meta {
                ingestion_id: format!("id-{i}"),
                tenant: "t".into(),
                dataset: "d".into(),
                ingested_at: None,
                topic: "x".into(),
                partition: 0,
                offset: i,
                schema_version: Some("1".into()),
            },
            cells: vec![Cell::Str(format!("value {i}"))],
            payload: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn rotation_by_size_starts_new_files_each_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let config = CsvConfig {
            path: "out/{data_type}.csv".into(),
            rotate_bytes: Some(200),
            rotate_daily: false,
        };
        let mut sink = CsvSink::open(config, dir.path());
        sink.write(&target(), (0..20).map(row).collect())
            .await
            .unwrap();
        sink.flush().await.unwrap();
        let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() > 2, "{files:?}");
        assert!(files.iter().any(|f| f.ends_with("sensor.csv")), "{files:?}");
        let mut rows = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.starts_with("ingestion_id,"), "{}: {text}", f.display());
            assert_eq!(text.matches("ingestion_id,").count(), 1);
            rows += text.lines().count() - 1;
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name == "sensor.csv"
                    || (name.starts_with("sensor.") && name.ends_with("Z.csv")
                        || name.contains("Z-")),
                "{name}"
            );
        }
        assert_eq!(rows, 20, "every row in exactly one file");
    }

    #[tokio::test]
    async fn a_file_begun_under_other_columns_is_rotated_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let config = CsvConfig {
            path: "{data_type}.csv".into(),
            rotate_bytes: None,
            rotate_daily: false,
        };
        let mut sink = CsvSink::open(config.clone(), dir.path());
        sink.write(&target(), vec![row(0)]).await.unwrap();
        sink.flush().await.unwrap();
        drop(sink);
        // A new schema version's field declared as a column; the sink restarted.
        let mut wider = target();
        wider.columns.push(ColumnConfig {
            name: "unit".into(),
            pointer: None,
            kind: ColumnType::String,
        });
        let mut sink = CsvSink::open(config, dir.path());
        let mut r = row(1);
        r.cells.push(Cell::Str("K".into()));
        sink.write(&wider, vec![r]).await.unwrap();
        sink.flush().await.unwrap();
        let active = std::fs::read_to_string(dir.path().join("sensor.csv")).unwrap();
        let mut lines = active.lines();
        assert!(
            lines.next().unwrap().ends_with(",schema_version,v,unit"),
            "{active}"
        );
        assert!(lines.next().unwrap().ends_with(",1,value 1,K"), "{active}");
        assert_eq!(lines.next(), None);
        let rotated: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "sensor.csv")
            .collect();
        assert_eq!(rotated.len(), 1, "{rotated:?}");
        let old = std::fs::read_to_string(dir.path().join(&rotated[0])).unwrap();
        assert!(
            old.lines().next().unwrap().ends_with(",schema_version,v"),
            "{old}"
        );
        assert_eq!(old.lines().count(), 2, "{old}");
    }
}
