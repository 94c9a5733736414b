//! The Apache Kafka that StreamLake runs on one machine when no Kafka cluster is configured:
//! KRaft nodes that are broker and controller at once, started as supervised child processes
//! of `streamlake up` (or `streamlake broker`). One node by default; three for replication and
//! failover. The jars come from Maven Central through `scripts/setup.sh`; the JVM is the
//! machine's. Against an external cluster none of this runs.
//!
//! # Layout
//! - [`install`]: finding Java 17+ and the Kafka jars, with errors that say what to install.
//! - [`layout`]: ports, directories and the generated `server.properties` of each node.
//! - `node`: one node's process: format, spawn in its own process group, stop, leftovers.
//! - [`cluster`]: [`ManagedKafka`], which starts the nodes, waits until they answer,
//!   restarts a node that dies (reporting it in [`streamlake_core::Health`]) and stops them.

pub mod cluster;
mod error;
pub mod install;
pub mod layout;
mod node;

pub use cluster::{ManagedKafka, HEALTH_COMPONENT};
pub use error::BrokerError;
pub use install::KafkaInstall;
pub use layout::{ClusterLayout, NodeLayout};

/// The Apache Kafka version StreamLake runs and is tested against.
pub const KAFKA_VERSION: &str = "4.4.0";
