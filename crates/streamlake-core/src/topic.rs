//! A declared topic as provisioning needs it: name, partition count, replication and the Kafka
//! topic configs (`retention.ms`, `cleanup.policy`, ...).

use std::collections::BTreeMap;

use serde::Serialize;

/// A topic the platform expects to exist, with its desired settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Declared partition count.
    pub partitions: i32,
    /// Declared replication factor; `None` leaves the broker's `default.replication.factor`.
    pub replication_factor: Option<i32>,
    /// Kafka topic configs, by their Kafka names.
    pub configs: BTreeMap<String, String>,
}
