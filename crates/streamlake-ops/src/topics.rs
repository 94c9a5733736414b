//! Topics: the list, a topic's partitions and configs, creation and provisioning.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamlake_core::{TopicRole, TopicSpec};
use streamlake_kafka::ProvisionReport;

use crate::error::{ErrorKind, OpsError, OpsResult};
use crate::service::{Ops, Principal};

/// A topic's role as the API and console name it: a tenant's raw, clean or dead-letter topic, or
/// `other` (declared in `[[topics]]`, or not declared at all).
pub fn role_name(role: Option<TopicRole>) -> &'static str {
    role.map_or("other", TopicRole::as_str)
}

fn serialize_role<S: serde::Serializer>(role: &Option<TopicRole>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role_name(*role))
}

/// One topic in the topic list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// Owning tenant, when the topic is one of a tenant's.
    pub tenant: Option<String>,
    /// Raw, clean, dead-letter, or none of them (`other`).
    #[serde(serialize_with = "serialize_role")]
    #[schema(value_type = String, example = "raw")]
    pub role: Option<TopicRole>,
    /// Partition count.
    pub partitions: usize,
    /// Records held (sum over partitions of high minus low watermark).
    pub messages: i64,
}

/// `GET /api/kafka/topics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    /// Topic names, sorted.
    pub topics: Vec<String>,
    /// How many.
    pub count: usize,
    /// Each topic with its owner, role, partitions and size.
    pub details: Vec<TopicSummary>,
}

/// One partition's metadata.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionMetadata {
    /// Partition id.
    pub partition_id: i32,
    /// Leader broker id.
    pub leader: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub in_sync_replicas: Vec<i32>,
    /// First offset still held.
    pub low_watermark: i64,
    /// Offset of the next record.
    pub high_watermark: i64,
    /// Records held.
    pub messages: i64,
}

/// `GET /api/kafka/topics/{name}/metadata`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicMetadata {
    /// Topic name.
    pub topic: String,
    /// Owning tenant, if any.
    pub tenant: Option<String>,
    /// Raw, clean, dead-letter, or none of them (`other`).
    #[serde(serialize_with = "serialize_role")]
    #[schema(value_type = String, example = "raw")]
    pub role: Option<TopicRole>,
    /// Partition count.
    pub partition_count: usize,
    /// Records held.
    pub messages: i64,
    /// Partitions by id.
    pub partitions: Vec<PartitionMetadata>,
}

/// `POST /api/kafka/topics`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Partition count (default 3).
    #[serde(default = "default_partitions")]
    pub num_partitions: i32,
    /// Replication factor (default: the broker's `default.replication.factor`).
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// Topic configs by Kafka name.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

fn default_partitions() -> i32 {
    3
}

/// `GET /api/kafka/topics/{name}/configs`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigs {
    /// Topic name.
    pub topic: String,
    /// Configs by Kafka name, as the broker describes them.
    pub configs: BTreeMap<String, String>,
}

impl Ops {
    /// Topics the principal may see.
    pub async fn topics(&self, who: &Principal) -> OpsResult<TopicList> {
        let infos = self.admin.list_topics().await?;
        let details: Vec<TopicSummary> = infos
            .iter()
            .filter(|t| self.check_topic(who, &t.name).is_ok())
            .map(|t| {
                let owner = self.owner(&t.name);
                TopicSummary {
                    name: t.name.clone(),
                    tenant: owner.map(|(t, _)| t.to_string()),
                    role: owner.map(|(_, r)| *r),
                    partitions: t.partitions.len(),
                    messages: t.message_count(),
                }
            })
            .collect();
        Ok(TopicList {
            topics: details.iter().map(|t| t.name.clone()).collect(),
            count: details.len(),
            details,
        })
    }

    /// One topic's partitions and watermarks.
    pub async fn topic_metadata(&self, who: &Principal, name: &str) -> OpsResult<TopicMetadata> {
        self.check_topic(who, name)?;
        let info = self.admin.describe_topic(name).await?;
        let owner = self.owner(name);
        Ok(TopicMetadata {
            topic: info.name.clone(),
            tenant: owner.map(|(t, _)| t.to_string()),
            role: owner.map(|(_, r)| *r),
            partition_count: info.partitions.len(),
            messages: info.message_count(),
            partitions: info
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition_id: p.id,
                    leader: p.leader,
                    replicas: p.replicas.clone(),
                    in_sync_replicas: p.isr.clone(),
                    low_watermark: p.low,
                    high_watermark: p.high,
                    messages: p.high - p.low,
                })
                .collect(),
        })
    }

    /// Creates a topic (admin only).
    pub async fn create_topic(
        &self,
        who: &Principal,
        req: &CreateTopic,
    ) -> OpsResult<TopicMetadata> {
        self.check_admin(who, "creating a topic")?;
        streamlake_core::validate_topic_name(&req.name).map_err(|e| {
            OpsError::new(
                ErrorKind::BadRequest,
                format!("topic name {:?} {e}", req.name),
            )
        })?;
        if req.name.starts_with("__") {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!(
                    "topic name {:?} starts with \"__\", which Kafka keeps for its internal topics (__consumer_offsets, __transaction_state)",
                    req.name
                ),
            ));
        }
        if req.num_partitions < 1 || req.num_partitions > 10_000 {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!(
                    "numPartitions {} is out of range: give 1 to 10000",
                    req.num_partitions
                ),
            ));
        }
        self.admin
            .create_topic(&TopicSpec {
                name: req.name.clone(),
                partitions: req.num_partitions,
                replication_factor: req.replication_factor,
                configs: req.configs.clone(),
            })
            .await?;
        // Metadata of a new topic can lag its creation by a moment.
        let mut last = None;
        for _ in 0..20 {
            match self.topic_metadata(who, &req.name).await {
                Ok(m) if m.partition_count == req.num_partitions as usize => return Ok(m),
                Ok(m) => last = Some(Ok(m)),
                Err(e) => last = Some(Err(e)),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last.unwrap_or_else(|| Err(OpsError::new(ErrorKind::Unavailable, "no metadata")))
    }

    /// Creates the declared topics that are missing; reports existing ones and drift (admin
    /// only).
    pub async fn provision(&self, who: &Principal) -> OpsResult<Vec<ProvisionReport>> {
        self.check_admin(who, "provisioning")?;
        Ok(streamlake_kafka::provision(&self.admin, &self.config.declared_topics()).await)
    }

    /// A topic's configs.
    pub async fn topic_configs(&self, who: &Principal, name: &str) -> OpsResult<TopicConfigs> {
        self.check_topic(who, name)?;
        let configs = self.admin.topic_configs(name).await?;
        if configs.is_empty() {
            // Some brokers describe an unknown topic as one without configs: make it a 404.
            self.admin.describe_topic(name).await?;
        }
        Ok(TopicConfigs {
            topic: name.to_owned(),
            configs,
        })
    }
}
