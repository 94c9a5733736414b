//! CSV files (SPEC K-CSV): one file per path template (e.g. `processed_data_{data_type}.csv`),
//! a header row once per file, RFC 4180 quoting by the `csv` crate, rotation by size or UTC day.
//!
//! The active file always has the configured name; rotation renames it to
//! `NAME.YYYYMMDDTHHMMSSZ.csv` and starts a new one. Rows are appended as they arrive and
//! `flush` syncs the files to disk before offsets are stored: a crash may repeat rows (each
//! carries its `ingestion_id`) but never loses one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use streamlake_config::{CsvSinkConfig, METADATA_COLUMNS};

use crate::row::Row;
use crate::sink::{Rejected, Sink, SinkError, Target};

#[derive(Debug)]
struct OpenFile {
    file: File,
    bytes: u64,
    day: NaiveDate,
}

/// Appends rows to CSV files.
#[derive(Debug)]
pub struct CsvSink {
    config: CsvSinkConfig,
    base: PathBuf,
    files: BTreeMap<PathBuf, OpenFile>,
}

impl CsvSink {
    /// A sink writing under `base` (the data directory) unless the path is absolute.
    pub fn open(config: CsvSinkConfig, base: &Path) -> Self {
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

fn open_file(path: &Path, header: &[String]) -> Result<OpenFile, SinkError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file.metadata()?;
    let mut bytes = meta.len();
    let day = if bytes == 0 {
        Utc::now().date_naive()
    } else {
        DateTime::<Utc>::from(meta.modified()?).date_naive()
    };
    if bytes == 0 {
        let h = encode([header.to_vec()])?;
        file.write_all(&h)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        bytes = h.len() as u64;
    }
    Ok(OpenFile { file, bytes, day })
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
        for (path, f) in &self.files {
            f.file
                .sync_data()
                .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        }
        Ok(())
    }
}
