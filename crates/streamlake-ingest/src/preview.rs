//! Where an event's key lands, without writing it: the partition the producer would choose
//! among the raw topic's partitions now. The HTTP preview endpoint and `streamlake partition`
//! both answer with [`PartitionPreview`].

use serde::Serialize;
use streamlake_kafka::Admin;

use crate::ingest::Target;
use crate::ingestor::Ingestor;

/// Where a key lands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartitionPreview {
    /// The dataset's raw topic.
    pub topic: String,
    /// The record key, as it would be written (numbers in canonical form, several key fields
    /// joined by `|`).
    pub key: String,
    /// The partition it lands on.
    pub partition: i32,
    /// The topic's partition count now.
    pub partitions: i32,
    /// The producer's `partitioner` (`murmur2_random` unless configured: the Java client's
    /// placement).
    pub partitioner: String,
}

/// Why there is no preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The configured partitioner does not place records by their key.
    #[error("the producer's partitioner ({0}) does not place records by their key: there is no partition to preview")]
    NotByKey(String),
    /// The topic's partitions could not be read.
    #[error("cannot read the partitions of {topic}: {cause}")]
    Topic {
        /// The raw topic.
        topic: String,
        /// The broker's answer.
        cause: String,
    },
}

impl Ingestor {
    /// The partition of `target`'s raw topic that a record keyed `key` would be written to now.
    pub async fn preview(
        &self,
        admin: &Admin,
        target: &Target<'_>,
        key: String,
    ) -> Result<PartitionPreview, PreviewError> {
        let name = self.producer.partitioner_name();
        let partitioner = self
            .producer
            .partitioner()
            .ok_or_else(|| PreviewError::NotByKey(name.clone()))?;
        let partitions = admin
            .describe_topic(target.raw_topic)
            .await
            .map_err(|e| PreviewError::Topic {
                topic: target.raw_topic.to_owned(),
                cause: e.to_string(),
            })?
            .partitions
            .len() as i32;
        Ok(PartitionPreview {
            topic: target.raw_topic.to_owned(),
            partition: partitioner.partition(key.as_bytes(), partitions),
            key,
            partitions,
            partitioner: name,
        })
    }
}
