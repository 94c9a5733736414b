//! Why the managed broker could not be started, each with what to do about it.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the managed Kafka could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No usable Java runtime.
    #[error("the managed Kafka broker needs Java {min} or later: {problem}. Install a Java runtime (Debian: `apt-get install openjdk-17-jre-headless`, or run scripts/setup.sh), set broker.java, or set kafka.bootstrap_servers to use a Kafka cluster", min = crate::install::MIN_JAVA)]
    Java {
        /// What was wrong with what was found.
        problem: String,
    },
    /// The Kafka jars are not where they were looked for.
    #[error("Apache Kafka {version} is not installed: no {jar} in {dir}. Run scripts/setup.sh (it fetches Kafka with Maven), set broker.kafka_libs, or set kafka.bootstrap_servers to use a Kafka cluster", version = crate::KAFKA_VERSION)]
    KafkaMissing {
        /// Directory searched.
        dir: PathBuf,
        /// The jar that identifies an installation.
        jar: String,
    },
    /// Something that is not this data directory's broker listens on one of the node's ports.
    #[error("cannot start the managed broker: {addr} ({what}) is already in use. Stop whatever listens there, set broker.listen to another port, or point kafka.bootstrap_servers at that broker")]
    AddressInUse {
        /// The taken address.
        addr: SocketAddr,
        /// Which of the node's listeners it is.
        what: String,
    },
    /// The storage directory was formatted for another cluster or another node count.
    #[error("the broker storage in {dir} {problem}; nothing was changed. Use another data_dir (or --data-dir), or move that directory away yourself")]
    ForeignStorage {
        /// The storage directory.
        dir: PathBuf,
        /// How it differs.
        problem: String,
    },
    /// A file or directory under the data directory could not be written or read.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Formatting a node's storage failed.
    #[error("formatting the storage of node {node} failed: {output}")]
    Format {
        /// Node id.
        node: u16,
        /// What the storage tool printed.
        output: String,
    },
    /// The process could not be started.
    #[error("cannot start {java}: {source}")]
    Spawn {
        /// The Java executable.
        java: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A node exited, or the cluster did not answer in time.
    #[error("the managed broker did not become ready: {reason}. See {log}")]
    NotReady {
        /// What happened.
        reason: String,
        /// The log of the node concerned.
        log: PathBuf,
    },
}

impl BrokerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
