//! Topics: the list, a topic's partitions and configs, creation and provisioning, and the
//! admin's changes: configs, partitions, purging records, deletion.

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

/// `PUT /api/kafka/topics/{name}/configs`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlterConfigs {
    /// Configs to change by Kafka name: a value sets it on the topic, `null` removes the
    /// topic's own value (the broker's default applies again). Others are kept.
    pub configs: BTreeMap<String, Option<String>>,
}

/// `POST /api/kafka/topics/{name}/partitions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPartitions {
    /// The new partition count; larger than the current one (Kafka cannot remove partitions).
    pub count: usize,
}

/// What adding partitions did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionsAdded {
    /// The topic now.
    pub metadata: TopicMetadata,
    /// What it means for keyed records.
    pub warning: String,
}

/// `POST /api/kafka/topics/{name}/purge`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Purge {
    /// Delete the records before this offset.
    pub before_offset: i64,
    /// In this partition only; absent: in every partition (each up to its own high watermark).
    pub partition: Option<i32>,
}

/// What a purge did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Purged {
    /// Topic.
    pub topic: String,
    /// Per partition (keyed by its number as a string), the first offset still held.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub low_watermarks: BTreeMap<i32, i64>,
    /// Records deleted.
    pub deleted: i64,
}

/// What deleting a topic did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TopicDeleted {
    /// The topic deleted.
    pub topic: String,
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

    /// Changes a topic's configs (admin only) and answers them as they are then.
    pub async fn alter_topic_configs(
        &self,
        who: &Principal,
        name: &str,
        req: &AlterConfigs,
    ) -> OpsResult<TopicConfigs> {
        self.check_admin(who, "changing a topic's configs")?;
        self.check_topic(who, name)?;
        if req.configs.is_empty() {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                "configs is empty: name at least one config to set or remove",
            ));
        }
        // Kafka's config names are lower-case words joined by dots (retention.ms).
        let kafka_name = |k: &str| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if let Some(k) = req.configs.keys().find(|k| !kafka_name(k)) {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("{k:?} is not a Kafka config name (lower-case letters, digits and dots, e.g. retention.ms)"),
            ));
        }
        if let Some((k, _)) = req.configs.iter().find(|(_, v)| {
            v.as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
        }) {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("the value of {k} holds a control character"),
            ));
        }
        self.admin.alter_topic_configs(name, &req.configs).await?;
        self.topic_configs(who, name).await
    }

    /// Raises a topic's partition count (admin only).
    pub async fn add_partitions(
        &self,
        who: &Principal,
        name: &str,
        req: &AddPartitions,
    ) -> OpsResult<PartitionsAdded> {
        self.check_admin(who, "adding partitions")?;
        self.check_topic(who, name)?;
        if req.count > 10_000 {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("count {} is out of range: at most 10000", req.count),
            ));
        }
        if let Some((tenant, role @ (TopicRole::Replays | TopicRole::Idempotency))) =
            self.owner(name)
        {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!(
                    "\"{name}\" is tenant {tenant}'s {} log: the platform reads it as one partition, so it keeps one",
                    role.as_str()
                ),
            ));
        }
        self.admin.add_partitions(name, req.count).await?;
        // The new partitions reach the metadata, with their leaders, a moment later.
        self.admin
            .await_topic(name, req.count, Duration::from_secs(10))
            .await?;
        let mut metadata = self.topic_metadata(who, name).await;
        for _ in 0..20 {
            if metadata
                .as_ref()
                .is_ok_and(|m| m.partition_count >= req.count)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            metadata = self.topic_metadata(who, name).await;
        }
        let metadata = metadata?;
        Ok(PartitionsAdded {
            metadata,
            warning: format!(
                "records are placed by the hash of their key over {} partitions from now on: a key's new records may go to another partition than its earlier ones, so per-key order holds only among records written from now on",
                req.count
            ),
        })
    }

    /// Deletes a topic's records before an offset (admin only).
    pub async fn purge(&self, who: &Principal, name: &str, req: &Purge) -> OpsResult<Purged> {
        self.check_admin(who, "purging records")?;
        self.check_topic(who, name)?;
        if req.before_offset < 0 {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                "beforeOffset must be 0 or more",
            ));
        }
        let info = self.admin.describe_topic(name).await?;
        let mut before = BTreeMap::new();
        for p in &info.partitions {
            if req.partition.is_some_and(|want| want != p.id) {
                continue;
            }
            if req.partition.is_some() && req.before_offset > p.high {
                return Err(OpsError::new(
                    ErrorKind::BadRequest,
                    format!(
                        "partition {} of \"{name}\" ends at offset {}: beforeOffset {} is past it",
                        p.id, p.high, req.before_offset
                    ),
                ));
            }
            before.insert(p.id, req.before_offset.min(p.high));
        }
        if let Some(want) = req.partition.filter(|_| before.is_empty()) {
            return Err(OpsError::new(
                ErrorKind::NotFound,
                format!(
                    "topic \"{name}\" has no partition {want}; it has partitions 0 to {}",
                    info.partitions.len().saturating_sub(1)
                ),
            ));
        }
        let lows = self.admin.delete_records(name, &before).await?;
        let deleted = info
            .partitions
            .iter()
            .filter_map(|p| Some(lows.get(&p.id)? - p.low))
            .map(|d| d.max(0))
            .sum();
        tracing::info!(topic = %name, before = req.before_offset, partition = ?req.partition, deleted, "records purged");
        Ok(Purged {
            topic: name.to_owned(),
            low_watermarks: lows,
            deleted,
        })
    }

    /// Deletes a topic (admin only). A tenant's topic the configuration declares (raw, clean,
    /// dead-letter, replay or idempotency log) is refused unless `force`: the platform would
    /// recreate it empty at the next provisioning, and its stages would lose their place.
    pub async fn delete_topic(
        &self,
        who: &Principal,
        name: &str,
        force: bool,
    ) -> OpsResult<TopicDeleted> {
        self.check_admin(who, "deleting a topic")?;
        self.check_topic(who, name)?;
        if name.starts_with("__") {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("\"{name}\" is one of Kafka's internal topics; it is not deleted"),
            ));
        }
        if let Some((tenant, role)) = self.owner(name) {
            if !force {
                return Err(OpsError::new(
                    ErrorKind::Conflict,
                    format!(
                        "\"{name}\" is tenant {tenant}'s {} topic, in use by the platform; delete it with force=true if you mean to",
                        role.as_str()
                    ),
                ));
            }
        }
        self.admin.delete_topic(name).await?;
        tracing::warn!(topic = %name, force, "topic deleted");
        Ok(TopicDeleted {
            topic: name.to_owned(),
        })
    }

    /// The partition a record keyed `key` would land on in `topic`, a dataset's raw topic, as
    /// the gateway's producer places it (the key as ingestion writes it: a number in canonical
    /// form, several key fields joined by `|`).
    pub async fn partition_preview(
        &self,
        who: &Principal,
        topic: &str,
        key: &str,
    ) -> OpsResult<streamlake_ingest::PartitionPreview> {
        self.check_topic(who, topic)?;
        let (tenant, dataset) = self
            .config
            .tenants
            .values()
            .find_map(|t| {
                let d = t.datasets.values().find(|d| d.raw_topic == topic)?;
                Some((t.id.clone(), d.id.clone()))
            })
            .ok_or_else(|| {
                OpsError::new(
                    ErrorKind::BadRequest,
                    format!("\"{topic}\" is no dataset's raw topic: the preview is where ingestion writes"),
                )
            })?;
        let target = self
            .ingestor
            .target(&tenant, &dataset, "streamlake-console", &[])
            .map_err(|e| OpsError::new(ErrorKind::NotFound, e.to_string()))?;
        self.ingestor
            .preview(&self.admin, &target, key.to_owned())
            .await
            .map_err(|e| match e {
                streamlake_ingest::PreviewError::NotByKey(_) => {
                    OpsError::new(ErrorKind::Unsupported, e.to_string())
                }
                streamlake_ingest::PreviewError::Topic { .. } => {
                    OpsError::new(ErrorKind::Unavailable, e.to_string())
                }
            })
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
