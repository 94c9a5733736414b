//! Where a running `streamlake up` says what it runs: `{data_dir}/running.json` with its pid,
//! configuration file, cluster and HTTP address, written at start and removed at exit. The CLI
//! in another terminal of the same directory finds it under the default data directory and
//! talks to that instance without `--config`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "running.json";

/// What a running `up` leaves for the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Running {
    pub(crate) pid: u32,
    /// The configuration file, absolute; `None` for the built-in defaults.
    pub(crate) config: Option<PathBuf>,
    pub(crate) bootstrap_servers: String,
    pub(crate) http: String,
}

/// Removes the file when `up` ends.
#[derive(Debug)]
pub(crate) struct Announced(PathBuf);

impl Drop for Announced {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `{data_dir}/running.json` for this process; a failure only costs the CLI's lookup.
pub(crate) fn announce(
    config: Option<&Path>,
    data_dir: &Path,
    bootstrap_servers: &str,
    http: std::net::SocketAddr,
) -> Option<Announced> {
    let running = Running {
        pid: std::process::id(),
        config: config.and_then(|c| std::path::absolute(c).ok()),
        bootstrap_servers: bootstrap_servers.to_owned(),
        http: http.to_string(),
    };
    let path = data_dir.join(FILE);
    let written = serde_json::to_vec_pretty(&running)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, bytes)
        });
    match written {
        Ok(()) => Some(Announced(path)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write where this instance runs; the CLI will need --config");
            None
        }
    }
}

/// The `up` running from this directory with the default data directory, if its process lives.
pub(crate) fn find() -> Option<Running> {
    let path = Path::new(streamlake_config::DEFAULT_DATA_DIR).join(FILE);
    let running: Running = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(running.pid).ok()?);
    nix::sys::signal::kill(pid, None).ok()?;
    Some(running)
}
