//! The embedded broker (SPEC D1): a single-node Kafka-compatible broker (tansu 0.6.0) that
//! `streamlake up` runs as a managed child process when no Kafka cluster is configured, so a
//! fresh machine needs nothing else. docs/BROKER.md records why it is a child process rather
//! than linked in, how long it takes to start, and what it does not support.
//!
//! Storage is SQLite under `{data_dir}/broker/`, so topics and offsets survive restarts. A
//! watchdog process stops the broker if StreamLake itself dies without shutting it down.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use streamlake_config::{BrokerConfig, BrokerStorage};
use tokio::process::{Child, Command};

/// Name of the index StreamLake adds to the broker's `header` table (docs/BROKER.md).
pub const HEADER_INDEX: &str = "streamlake_header_record";

/// tansu 0.6.0's SQLite schema has no index on `header (topition, offset_id)`, and it looks up
/// the headers of every fetched record by those columns: each fetched record scans every header
/// row of the broker, so consuming slows down with the square of the data (measured: a topic of
/// 20,000 records with 7 headers each was read at well under 100 records/s). Adding the index
/// makes the lookup a seek. The broker has created its tables once it answers, and nothing else
/// talks to it yet. A failure is logged, not fatal: the broker works, only slower.
async fn index_headers(db: PathBuf) {
    let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<bool> {
        let conn = rusqlite::Connection::open(&db)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let tables: i64 = conn.query_row(
            "select count(*) from sqlite_master where type = 'table' and name = 'header'",
            [],
            |row| row.get(0),
        )?;
        if tables == 0 {
            return Ok(false);
        }
        conn.execute_batch(&format!(
            "create index if not exists {HEADER_INDEX} on header (topition, offset_id)"
        ))?;
        Ok(true)
    })
    .await;
    match result {
        Ok(Ok(true)) => tracing::debug!(index = HEADER_INDEX, "broker header table indexed"),
        Ok(Ok(false)) => tracing::warn!(
            "the broker's storage has no header table; fetches with headers will be slow"
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot index the broker's header table; fetches with headers will be slow")
        }
        Err(e) => tracing::warn!(error = %e, "indexing the broker's header table failed"),
    }
}

/// The tansu version StreamLake is built and tested against.
pub const TANSU_VERSION: &str = "0.6.0";

/// Why the embedded broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No tansu executable was found.
    #[error("the embedded broker (tansu {TANSU_VERSION}) is not installed: looked at {looked}. Run scripts/setup.sh to install it, set broker.binary, or set kafka.bootstrap_servers to use a Kafka cluster")]
    NotInstalled {
        /// Places searched.
        looked: String,
    },
    /// Something else already listens on the broker's address.
    #[error("cannot start the embedded broker: {0} is already in use. Stop whatever listens there, set broker.listen to another address, or point kafka.bootstrap_servers at that broker")]
    AddressInUse(SocketAddr),
    /// The data directory could not be prepared.
    #[error("cannot prepare the broker directory {path}: {source}")]
    DataDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// Executable.
        binary: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The broker exited or did not answer in time; the log says why.
    #[error("the embedded broker did not become ready: {reason}. Its log is {log}")]
    NotReady {
        /// What happened.
        reason: String,
        /// The broker's log file.
        log: PathBuf,
    },
}

/// A running embedded broker. Stop it with [`EmbeddedBroker::stop`]; dropping it kills it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    child: Child,
    watchdog: Option<Child>,
    bootstrap: String,
    dir: PathBuf,
    startup: Duration,
}

impl EmbeddedBroker {
    /// Finds the tansu executable: `broker.binary`, then `$PATH`, then where `scripts/setup.sh`
    /// installs it.
    pub fn locate(cfg: &BrokerConfig) -> Result<PathBuf, BrokerError> {
        locate_in(
            cfg,
            std::env::var_os("PATH").as_deref(),
            &default_install_path(),
        )
    }

    /// Starts the broker with its storage under `data_dir` and waits until it answers a metadata
    /// request.
    pub async fn start(cfg: &BrokerConfig, data_dir: &Path) -> Result<Self, BrokerError> {
        let binary = Self::locate(cfg)?;
        let dir = data_dir.join("broker");
        std::fs::create_dir_all(&dir).map_err(|source| BrokerError::DataDir {
            path: dir.clone(),
            source,
        })?;
        stop_stale(&dir).await;
        if TcpStream::connect_timeout(&cfg.listen, Duration::from_millis(300)).is_ok() {
            return Err(BrokerError::AddressInUse(cfg.listen));
        }
        let log_path = dir.join("broker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| BrokerError::DataDir {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| BrokerError::DataDir {
            path: log_path.clone(),
            source,
        })?;
        let url = format!("tcp://{}", cfg.listen);
        let storage = match cfg.storage {
            // Relative to the working directory, which is the broker directory.
            BrokerStorage::Sqlite => "sqlite://broker.db".to_owned(),
            BrokerStorage::Memory => "memory://streamlake/".to_owned(),
        };
        let started = Instant::now();
        let mut cmd = Command::new(&binary);
        cmd.arg("broker")
            .args(["--cluster-id", "streamlake"])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &storage])
            .current_dir(&dir)
            // tansu reads these from the environment too; ours must not be overridden.
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("DATA_LAKE")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| BrokerError::Spawn {
            binary: binary.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        if let Err(e) = std::fs::write(dir.join("broker.pid"), pid.to_string()) {
            tracing::warn!(error = %e, "cannot write the broker's pid file");
        }
        let watchdog = spawn_watchdog(pid);
        let bootstrap = cfg.listen.to_string();
        let deadline = started + Duration::from_secs(cfg.startup_timeout_secs);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BrokerError::NotReady {
                    reason: format!("it exited with {status}"),
                    log: log_path,
                });
            }
            if answers_metadata(&bootstrap).await {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(BrokerError::NotReady {
                    reason: format!("no answer within {} s", cfg.startup_timeout_secs),
                    log: log_path,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let startup = started.elapsed();
        if cfg.storage == BrokerStorage::Sqlite {
            index_headers(dir.join("broker.db")).await;
        }
        tracing::info!(
            bootstrap = %bootstrap,
            storage = %storage,
            dir = %dir.display(),
            startup_ms = startup.as_millis() as u64,
            "embedded broker ready"
        );
        Ok(Self {
            child,
            watchdog,
            bootstrap,
            dir,
            startup,
        })
    }

    /// `host:port` clients connect to.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Time from spawn to the first answered metadata request.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The broker's process id (for tests that crash it on purpose).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the broker with SIGTERM, waiting up to `patience` before SIGKILL.
    pub async fn stop(mut self, patience: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            match tokio::time::timeout(patience, self.child.wait()).await {
                Ok(_) => tracing::info!("embedded broker stopped"),
                Err(_) => {
                    tracing::warn!(
                        patience_ms = patience.as_millis() as u64,
                        "embedded broker did not stop in time; killing it"
                    );
                    let _ = self.child.kill().await;
                }
            }
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill().await;
        }
        let _ = std::fs::remove_file(self.dir.join("broker.pid"));
    }
}

/// [`EmbeddedBroker::locate`] over an explicit search path and install location.
fn locate_in(
    cfg: &BrokerConfig,
    path: Option<&std::ffi::OsStr>,
    installed: &Path,
) -> Result<PathBuf, BrokerError> {
    let mut looked = Vec::new();
    if let Some(b) = &cfg.binary {
        if b.is_file() {
            return Ok(b.clone());
        }
        looked.push(b.display().to_string());
    }
    if let Some(path) = path {
        if let Some(found) = std::env::split_paths(path)
            .map(|dir| dir.join("tansu"))
            .find(|c| c.is_file())
        {
            return Ok(found);
        }
        looked.push("$PATH".to_owned());
    }
    if installed.is_file() {
        return Ok(installed.to_path_buf());
    }
    looked.push(installed.display().to_string());
    Err(BrokerError::NotInstalled {
        looked: looked.join(", "),
    })
}

/// Where `scripts/setup.sh` installs tansu:
/// `${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}/tansu-0.6.0/bin/tansu`.
pub fn default_install_path() -> PathBuf {
    let base = std::env::var_os("STREAMLAKE_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/streamlake")))
        .unwrap_or_else(|| PathBuf::from(".streamlake-tools"));
    base.join(format!("tansu-{TANSU_VERSION}"))
        .join("bin/tansu")
}

/// A broker left running by a StreamLake that was killed holds the port and the SQLite file:
/// stop it when the pid file points at a live tansu process.
async fn stop_stale(dir: &Path) {
    let pid_file = dir.join("broker.pid");
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if pid > 0 && String::from_utf8_lossy(&cmdline).contains("tansu") {
        tracing::warn!(
            pid,
            "stopping an embedded broker left running by an earlier run"
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        for _ in 0..50 {
            if kill(Pid::from_raw(pid), None).is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file);
}

/// A small shell loop that SIGTERMs the broker once this process is gone, so a killed
/// StreamLake never leaves an orphan broker holding the port.
fn spawn_watchdog(broker_pid: u32) -> Option<Child> {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {broker_pid} 2>/dev/null; do sleep 1; done; kill -TERM {broker_pid} 2>/dev/null"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| tracing::warn!(error = %e, "cannot start the broker watchdog"))
        .ok()
}

async fn answers_metadata(bootstrap: &str) -> bool {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("log_level", "0")
            .create();
        consumer
            .and_then(|c| c.fetch_metadata(None, Duration::from_millis(500)))
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_broker_says_where_it_looked_and_how_to_install_it() {
        let cfg = BrokerConfig {
            binary: Some("/nonexistent/tansu".into()),
            ..BrokerConfig::default()
        };
        let empty = tempfile::tempdir().unwrap();
        let err = locate_in(
            &cfg,
            Some(empty.path().as_os_str()),
            Path::new("/nonexistent/install/tansu"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/tansu") && msg.contains("$PATH"),
            "{msg}"
        );
        assert!(msg.contains("/nonexistent/install/tansu"), "{msg}");
        assert!(
            msg.contains("scripts/setup.sh") && msg.contains("kafka.bootstrap_servers"),
            "{msg}"
        );
    }

    #[test]
    fn the_configured_binary_wins_then_path_then_the_install_location() {
        let dir = tempfile::tempdir().unwrap();
        let on_path = dir.path().join("bin");
        std::fs::create_dir(&on_path).unwrap();
        std::fs::write(on_path.join("tansu"), "").unwrap();
        let configured = dir.path().join("my-tansu");
        std::fs::write(&configured, "").unwrap();
        let installed = dir.path().join("installed-tansu");
        std::fs::write(&installed, "").unwrap();
        let path = on_path.as_os_str();

        let cfg = BrokerConfig {
            binary: Some(configured.clone()),
            ..BrokerConfig::default()
        };
        assert_eq!(locate_in(&cfg, Some(path), &installed).unwrap(), configured);
        let cfg = BrokerConfig::default();
        assert_eq!(
            locate_in(&cfg, Some(path), &installed).unwrap(),
            on_path.join("tansu")
        );
        assert_eq!(locate_in(&cfg, None, &installed).unwrap(), installed);
    }
}
