//! Appending to local files, shared by the file sinks (CSV, JSON Lines).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::sink::SinkError;

/// `path` opened for appending, its directory created when missing.
pub(crate) fn open_append(path: &Path) -> Result<File, SinkError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    Ok(OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?)
}

/// Makes every file's written data durable. fsync blocks its thread for as long as the disk
/// takes: it runs on a blocking thread, not one of the runtime's workers.
pub(crate) async fn sync_all<'f>(
    files: impl IntoIterator<Item = (&'f PathBuf, &'f File)>,
) -> Result<(), SinkError> {
    let mut handles = Vec::new();
    for (path, file) in files {
        let file = file
            .try_clone()
            .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        handles.push((path.clone(), file));
    }
    tokio::task::spawn_blocking(move || {
        for (path, file) in handles {
            file.sync_data()
                .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        }
        Ok::<_, String>(())
    })
    .await
    .map_err(|e| format!("syncing files failed: {e}"))??;
    Ok(())
}
