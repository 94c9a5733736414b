//! Cluster administration: topics, partition metadata, configs, consumer groups,
//! committed offsets, watermarks and lag. Where the broker lacks an API, the call returns
//! [`AdminError::Unsupported`] with the broker's answer instead of guessing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use streamlake_core::TopicSpec;

use crate::settings::KafkaSettings;

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The topic does not exist.
    #[error("topic \"{0}\" does not exist")]
    UnknownTopic(String),
    /// The topic exists already.
    #[error("topic \"{0}\" already exists")]
    TopicExists(String),
    /// The request is invalid (bad name, partition count, ...); the text says why.
    #[error("{0}")]
    Invalid(String),
    /// The broker does not implement what was asked; the text says what and why.
    #[error("{0}")]
    Unsupported(String),
    /// The consumer group has members: its offsets cannot be changed nor the group deleted.
    #[error("group \"{0}\" has active members: stop its consumers first")]
    GroupActive(String),
    /// Any other client or broker error.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// Cause.
        source: KafkaError,
    },
}

impl AdminError {
    /// A partition has no leader yet (or its leader does not know it yet): what a topic shows
    /// for a moment after it is created, and what waiting a little resolves.
    pub fn is_leader_pending(&self) -> bool {
        matches!(
            self,
            Self::Kafka {
                source: KafkaError::MetadataFetch(
                    RDKafkaErrorCode::NotLeaderForPartition
                        | RDKafkaErrorCode::LeaderNotAvailable
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                ),
                ..
            }
        )
    }
}

fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> AdminError {
    let context = context.into();
    move |source| AdminError::Kafka { context, source }
}

/// Refuses a topic the broker would refuse, with the rule it breaks, before asking the broker.
pub(crate) fn check_spec(spec: &TopicSpec) -> Result<(), AdminError> {
    if spec.partitions < 1 {
        return Err(AdminError::Invalid(format!(
            "partition count {} for topic \"{}\" must be at least 1",
            spec.partitions, spec.name
        )));
    }
    if let Some(rf) = spec.replication_factor.filter(|rf| *rf < 1) {
        return Err(AdminError::Invalid(format!(
            "replication factor {rf} for topic \"{}\" must be at least 1",
            spec.name
        )));
    }
    streamlake_core::validate_topic_name(&spec.name)
        .map_err(|e| AdminError::Invalid(format!("topic name \"{}\" {e}", spec.name)))?;
    Ok(())
}

/// One partition of a topic. Serialized with the names the admin API uses for partitions
/// everywhere (`partitionId`, `inSyncReplicas`, `lowWatermark`, `highWatermark`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PartitionInfo {
    /// Partition id.
    #[serde(rename = "partitionId")]
    pub id: i32,
    /// Leader broker id.
    pub leader: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    #[serde(rename = "inSyncReplicas")]
    pub isr: Vec<i32>,
    /// Low watermark (first offset still present).
    #[serde(rename = "lowWatermark")]
    pub low: i64,
    /// High watermark (offset of the next record).
    #[serde(rename = "highWatermark")]
    pub high: i64,
}

/// A topic with its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Partitions, by id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Records currently held (sum of high minus low watermarks).
    pub fn message_count(&self) -> i64 {
        self.partitions.iter().map(|p| p.high - p.low).sum()
    }

    /// Every partition's records held now, as `partition -> (low, high)`, for
    /// [`crate::read_ranges`].
    pub fn ranges(&self) -> BTreeMap<i32, (i64, i64)> {
        self.partitions
            .iter()
            .map(|p| (p.id, (p.low, p.high)))
            .collect()
    }
}

/// A consumer group as listed by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// Group id.
    pub name: String,
    /// State as the broker reports it (may be empty where the broker does not say).
    pub state: String,
    /// Protocol type ("consumer" for Kafka consumers).
    pub protocol_type: String,
    /// Members, where the broker describes them.
    pub members: usize,
}

/// Committed offset, high watermark and lag of one partition for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset (next offset the group will read); `None` when the group has not
    /// committed on this partition.
    pub committed: Option<i64>,
    /// Low watermark.
    pub low: i64,
    /// High watermark.
    pub high: i64,
    /// Records the group has yet to read: `high - committed`, or `high - low` without a commit.
    pub lag: i64,
}

/// A group's committed offsets and lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLag {
    /// Group id.
    pub group: String,
    /// Partitions with a committed offset.
    pub partitions: Vec<PartitionLag>,
    /// Sum of the partitions' lag.
    pub total_lag: i64,
}

/// Admin operations against one cluster.
pub struct Admin {
    settings: KafkaSettings,
    admin: AdminClient<DefaultClientContext>,
    meta: Arc<BaseConsumer>,
    timeout: Duration,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .finish()
    }
}

impl Admin {
    /// Creates the admin and metadata clients.
    pub fn new(settings: &KafkaSettings) -> Result<Self, AdminError> {
        let admin = settings
            .client_config()
            .create()
            .map_err(kafka("cannot create admin client"))?;
        let meta = settings
            .client_config()
            .create()
            .map_err(kafka("cannot create metadata client"))?;
        Ok(Self {
            settings: settings.clone(),
            admin,
            meta: Arc::new(meta),
            timeout: Duration::from_secs(10),
        })
    }

    /// Whether the cluster answers a metadata request within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), AdminError> {
        let meta = Arc::clone(&self.meta);
        blocking(move || {
            meta.fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(kafka("the broker did not answer"))
        })
        .await
    }

    /// All topics with partitions and watermarks; internal topics (`__*`) are left out.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, AdminError> {
        self.topics(None).await
    }

    /// One topic with partitions and watermarks.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo, AdminError> {
        let mut topics = self.topics(Some(name)).await?;
        topics
            .pop()
            .ok_or_else(|| AdminError::UnknownTopic(name.to_owned()))
    }

    async fn topics(&self, only: Option<&str>) -> Result<Vec<TopicInfo>, AdminError> {
        let meta = Arc::clone(&self.meta);
        let only = only.map(str::to_owned);
        let timeout = self.timeout;
        blocking(move || {
            let md = meta
                .fetch_metadata(only.as_deref(), timeout)
                .map_err(kafka("cannot fetch metadata"))?;
            let mut topics = Vec::new();
            // Listing every topic, one that is being deleted (or has no leader for a moment)
            // is left out rather than failing the whole list; asked for by name, it is an error.
            let listing = only.is_none();
            'topics: for t in md.topics() {
                if let Some(err) = t.error() {
                    let code = RDKafkaErrorCode::from(err);
                    if listing {
                        tracing::debug!(topic = t.name(), error = %code, "topic left out of the listing");
                        continue;
                    }
                    if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                        return Err(AdminError::UnknownTopic(t.name().to_owned()));
                    }
                    return Err(AdminError::Kafka {
                        context: format!("metadata of topic \"{}\"", t.name()),
                        source: KafkaError::MetadataFetch(code),
                    });
                }
                if listing && t.name().starts_with("__") {
                    continue;
                }
                let mut partitions = Vec::new();
                for p in t.partitions() {
                    let watermarks = meta.fetch_watermarks(t.name(), p.id(), timeout);
                    let (low, high) = match watermarks {
                        Ok(w) => w,
                        Err(e) if listing => {
                            tracing::debug!(topic = t.name(), partition = p.id(), error = %e, "topic left out of the listing");
                            continue 'topics;
                        }
                        Err(e) => {
                            return Err(kafka(format!("watermarks of {}/{}", t.name(), p.id()))(e))
                        }
                    };
                    partitions.push(PartitionInfo {
                        id: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                        low,
                        high,
                    });
                }
                partitions.sort_by_key(|p| p.id);
                topics.push(TopicInfo {
                    name: t.name().to_owned(),
                    partitions,
                });
            }
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(topics)
        })
        .await
    }

    /// Creates a topic with its partition count, replication factor and configs.
    pub async fn create_topic(&self, spec: &TopicSpec) -> Result<(), AdminError> {
        check_spec(spec)?;
        let mut new = NewTopic::new(
            &spec.name,
            spec.partitions,
            // -1 asks the broker for its `default.replication.factor` (KIP-464).
            TopicReplication::Fixed(spec.replication_factor.unwrap_or(-1)),
        );
        for (k, v) in &spec.configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(kafka(format!("cannot create topic \"{}\"", spec.name)))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(AdminError::TopicExists(name))
                }
                // The broker refused the request itself: the caller's mistake, said in the
                // broker's words.
                Err((
                    name,
                    code @ (RDKafkaErrorCode::InvalidReplicationFactor
                    | RDKafkaErrorCode::InvalidConfig
                    | RDKafkaErrorCode::InvalidPartitions
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidReplicaAssignment
                    | RDKafkaErrorCode::PolicyViolation
                    | RDKafkaErrorCode::InvalidRequest),
                )) => {
                    let given = if code == RDKafkaErrorCode::InvalidConfig {
                        let configs: Vec<String> = spec
                            .configs
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        format!(" (configs given: {})", configs.join(", "))
                    } else {
                        String::new()
                    };
                    return Err(AdminError::Invalid(format!(
                        "cannot create topic \"{name}\": the broker refused it: {code}{given}"
                    )));
                }
                Err((name, code)) => {
                    return Err(AdminError::Kafka {
                        context: format!("cannot create topic \"{name}\""),
                        source: KafkaError::AdminOp(code),
                    })
                }
            }
        }
        Ok(())
    }

    /// Changes topic-level configs of `name`: each entry sets its value (`Some`) or removes the
    /// topic's own value (`None`, the broker's default applies again); the topic's other own
    /// values are kept. Kafka's AlterConfigs replaces a topic's whole set, so the set is read
    /// first: a change another client makes to the same topic at the same moment may be lost.
    /// A value the broker refuses is [`AdminError::Invalid`] with the broker's reason.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<(), AdminError> {
        let opts = AdminOptions::new().request_timeout(Some(self.timeout));
        let described = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(name)], &opts)
            .await
            .map_err(kafka(format!(
                "cannot read the configs of topic \"{name}\""
            )))?;
        let mut own: BTreeMap<String, String> = BTreeMap::new();
        for r in described {
            let resource = r.map_err(|code| match code {
                RDKafkaErrorCode::UnknownTopicOrPartition => {
                    AdminError::UnknownTopic(name.to_owned())
                }
                code => AdminError::Kafka {
                    context: format!("cannot read the configs of topic \"{name}\""),
                    source: KafkaError::AdminOp(code),
                },
            })?;
            for entry in resource.entries {
                if let (rdkafka::admin::ConfigSource::DynamicTopic, Some(v)) =
                    (entry.source, entry.value)
                {
                    own.insert(entry.name, v);
                }
            }
        }
        for (key, value) in changes {
            match value {
                Some(v) => own.insert(key.clone(), v.clone()),
                None => own.remove(key),
            };
        }
        let mut alter = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic(name));
        for (k, v) in &own {
            alter = alter.set(k, v);
        }
        let results = self
            .admin
            .alter_configs([&alter], &opts)
            .await
            .map_err(kafka(format!(
                "cannot change the configs of topic \"{name}\""
            )))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Err(AdminError::UnknownTopic(name.to_owned()))
                }
                // The broker refused the change itself (a name, a value, a policy): the
                // request's fault, not the broker's.
                Err((_, _)) => {
                    return Err(AdminError::Invalid(format!(
                        "the broker refused the configs {} for topic \"{name}\" (an unknown name or a value out of range)",
                        changes
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("(default)")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
        // The broker may answer a value it did not take without an error: read the configs
        // back (changes reach the metadata a moment later) and say which did not hold.
        let mut refused = Vec::new();
        for _ in 0..20 {
            let now = self.topic_configs(name).await?;
            refused = changes
                .iter()
                .filter_map(|(k, v)| {
                    let v = v.as_ref()?;
                    (now.get(k) != Some(v)).then(|| format!("{k}={v}"))
                })
                .collect();
            if refused.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(AdminError::Invalid(format!(
            "the broker did not take {} for topic \"{name}\": an unknown config name or a value it refuses (a number where one is expected, in range)",
            refused.join(", ")
        )))
    }

    /// Deletes the records of `name` before each given offset (per partition): the partition's
    /// log start moves there. Returns each partition's new low watermark.
    pub async fn delete_records(
        &self,
        name: &str,
        before: &BTreeMap<i32, i64>,
    ) -> Result<BTreeMap<i32, i64>, AdminError> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in before {
            tpl.add_partition_offset(name, *p, Offset::Offset(*o))
                .map_err(kafka("cannot list the partitions to purge"))?;
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let done = self
            .admin
            .delete_records(&tpl, &opts)
            .await
            .map_err(kafka(format!("cannot delete records of topic \"{name}\"")))?;
        let mut lows = BTreeMap::new();
        for el in done.elements() {
            if let Err(source) = el.error() {
                return Err(AdminError::Kafka {
                    context: format!(
                        "cannot delete records of topic \"{name}\" partition {}",
                        el.partition()
                    ),
                    source,
                });
            }
            if let Offset::Offset(o) = el.offset() {
                lows.insert(el.partition(), o);
            }
        }
        Ok(lows)
    }

    /// Raises a topic's partition count to `total`. Kafka cannot remove partitions, and keys
    /// hash to new partitions afterwards, so per-key order holds only from then on.
    pub async fn add_partitions(&self, name: &str, total: usize) -> Result<(), AdminError> {
        let current = self.describe_topic(name).await?.partitions.len();
        if total <= current {
            return Err(AdminError::Invalid(format!(
                "topic \"{name}\" has {current} partitions; the new count ({total}) must be larger (Kafka cannot remove partitions)"
            )));
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self
            .admin
            .create_partitions([&NewPartitions::new(name, total)], &opts)
            .await
            .map_err(kafka(format!("cannot add partitions to topic \"{name}\"")))?;
        for r in results {
            if let Err((n, code)) = r {
                return Err(AdminError::Kafka {
                    context: format!("cannot add partitions to topic \"{n}\""),
                    source: KafkaError::AdminOp(code),
                });
            }
        }
        Ok(())
    }

    /// Waits until the metadata shows `name` with at least `partitions` partitions, each with a
    /// leader: a topic just created is announced to the brokers asynchronously.
    pub async fn await_topic(
        &self,
        name: &str,
        partitions: usize,
        timeout: Duration,
    ) -> Result<TopicInfo, AdminError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let info = self.describe_topic(name).await;
            let led = |t: &TopicInfo| t.partitions.iter().filter(|p| p.leader >= 0).count();
            match info {
                Ok(t) if t.partitions.len() >= partitions && led(&t) == t.partitions.len() => {
                    return Ok(t)
                }
                Ok(t) if tokio::time::Instant::now() >= deadline => {
                    return Err(AdminError::Invalid(format!(
                        "topic \"{name}\" shows {} of {partitions} partitions with a leader after {timeout:?}",
                        led(&t)
                    )))
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self
            .admin
            .delete_topics(&[name], &opts)
            .await
            .map_err(kafka(format!("cannot delete topic \"{name}\"")))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((n, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Err(AdminError::UnknownTopic(n))
                }
                Err((n, code)) => {
                    return Err(AdminError::Kafka {
                        context: format!("cannot delete topic \"{n}\""),
                        source: KafkaError::AdminOp(code),
                    })
                }
            }
        }
        Ok(())
    }

    /// A topic's configs, by Kafka name. Entries without a value are left out.
    pub async fn topic_configs(&self, name: &str) -> Result<BTreeMap<String, String>, AdminError> {
        let opts = AdminOptions::new().request_timeout(Some(self.timeout));
        let results = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(name)], &opts)
            .await
            .map_err(|e| {
                AdminError::Unsupported(format!(
                    "the broker did not describe the configs of topic \"{name}\": {e}"
                ))
            })?;
        let mut configs = BTreeMap::new();
        for r in results {
            match r {
                Ok(resource) => {
                    for entry in resource.entries {
                        if let Some(v) = entry.value {
                            configs.insert(entry.name, v);
                        }
                    }
                }
                Err(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                    return Err(AdminError::UnknownTopic(name.to_owned()))
                }
                Err(code) => {
                    return Err(AdminError::Unsupported(format!(
                        "the broker did not describe the configs of topic \"{name}\": {code}"
                    )))
                }
            }
        }
        Ok(configs)
    }

    /// Consumer groups known to the broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>, AdminError> {
        let meta = Arc::clone(&self.meta);
        let timeout = self.timeout;
        blocking(move || {
            let list = meta
                .fetch_group_list(None, timeout)
                .map_err(kafka("the broker did not list consumer groups"))?;
            let mut groups: Vec<GroupSummary> = list
                .groups()
                .iter()
                .map(|g| GroupSummary {
                    name: g.name().to_owned(),
                    state: g.state().to_owned(),
                    protocol_type: g.protocol_type().to_owned(),
                    members: g.members().len(),
                })
                .collect();
            groups.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(groups)
        })
        .await
    }

    /// One group's summary and members, as the broker describes them.
    pub async fn describe_group(
        &self,
        group: &str,
    ) -> Result<(GroupSummary, Vec<GroupMemberInfo>), AdminError> {
        let meta = Arc::clone(&self.meta);
        let timeout = self.timeout;
        let name = group.to_owned();
        blocking(move || {
            let list = meta.fetch_group_list(Some(&name), timeout).map_err(|e| {
                AdminError::Unsupported(format!(
                    "the broker did not describe group \"{name}\": {e}"
                ))
            })?;
            let g = list
                .groups()
                .iter()
                .find(|g| g.name() == name)
                .ok_or_else(|| {
                    AdminError::Invalid(format!("the broker does not know group \"{name}\""))
                })?;
            let members = g
                .members()
                .iter()
                .map(|m| GroupMemberInfo {
                    id: m.id().to_owned(),
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().to_owned(),
                    assignment: m
                        .assignment()
                        .and_then(decode_assignment)
                        .unwrap_or_default(),
                })
                .collect();
            Ok((
                GroupSummary {
                    name: g.name().to_owned(),
                    state: g.state().to_owned(),
                    protocol_type: g.protocol_type().to_owned(),
                    members: g.members().len(),
                },
                members,
            ))
        })
        .await
    }

    /// Commits `offsets` (topic, partition, offset) for `group` from outside the group, as
    /// `kafka-consumer-groups --reset-offsets` does: the broker accepts it only while the group
    /// has no members ([`AdminError::GroupActive`] otherwise).
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), AdminError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(kafka("cannot list the offsets to commit"))?;
        }
        let mut cfg = self.settings.consumer_config();
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false");
        let client: BaseConsumer = cfg
            .create()
            .map_err(kafka("cannot create offsets client"))?;
        let name = group.to_owned();
        blocking(move || match client.commit(&tpl, CommitMode::Sync) {
            Ok(()) => Ok(()),
            Err(e) => match e.rdkafka_error_code() {
                Some(
                    RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::RebalanceInProgress,
                ) => Err(AdminError::GroupActive(name)),
                _ => Err(AdminError::Kafka {
                    context: format!("cannot commit offsets of group \"{name}\""),
                    source: e,
                }),
            },
        })
        .await
    }

    /// For each (topic, partition), the offset of its first record with a timestamp at or after
    /// `timestamp_ms`, or `None` when it has none (the reset then goes to the end).
    pub async fn offsets_for_time(
        &self,
        partitions: &[(String, i32)],
        timestamp_ms: i64,
    ) -> Result<BTreeMap<(String, i32), Option<i64>>, AdminError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(timestamp_ms))
                .map_err(kafka("cannot list the partitions to look up"))?;
        }
        let meta = Arc::clone(&self.meta);
        let timeout = self.timeout;
        let found = blocking(move || {
            meta.offsets_for_times(tpl, timeout)
                .map_err(kafka("the broker did not look up offsets by time"))
        })
        .await?;
        Ok(found
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                ((e.topic().to_owned(), e.partition()), offset)
            })
            .collect())
    }

    /// Deletes `group`: its committed offsets go. The broker refuses while the group has
    /// members ([`AdminError::GroupActive`]).
    pub async fn delete_group(&self, group: &str) -> Result<(), AdminError> {
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self
            .admin
            .delete_groups(&[group], &opts)
            .await
            .map_err(kafka(format!("cannot delete group \"{group}\"")))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((g, RDKafkaErrorCode::NonEmptyGroup)) => {
                    return Err(AdminError::GroupActive(g))
                }
                Err((g, RDKafkaErrorCode::GroupIdNotFound)) => {
                    return Err(AdminError::Invalid(format!(
                        "the broker does not know group \"{g}\""
                    )))
                }
                Err((g, code)) => {
                    return Err(AdminError::Kafka {
                        context: format!("cannot delete group \"{g}\""),
                        source: KafkaError::AdminOp(code),
                    })
                }
            }
        }
        Ok(())
    }

    /// Committed offsets, watermarks and lag of `group` on `topics`; when `topics` is empty, on
    /// every topic where the group committed at least one offset. Every partition of those topics
    /// is listed, so records on partitions the group never committed count as lag.
    pub async fn group_lag(&self, group: &str, topics: &[String]) -> Result<GroupLag, AdminError> {
        let infos = if topics.is_empty() {
            self.list_topics().await?
        } else {
            let mut v = Vec::new();
            for t in topics {
                v.push(self.describe_topic(t).await?);
            }
            v
        };
        self.group_lag_on(group, &infos, topics.is_empty()).await
    }

    /// [`Admin::group_lag`] over topics already described, so that many groups share one
    /// metadata and watermark round; with `only_committed`, topics where the group committed
    /// nothing are left out.
    pub async fn group_lag_on(
        &self,
        group: &str,
        infos: &[TopicInfo],
        only_committed: bool,
    ) -> Result<GroupLag, AdminError> {
        let mut tpl = TopicPartitionList::new();
        for t in infos {
            for p in &t.partitions {
                tpl.add_partition(&t.name, p.id);
            }
        }
        let mut cfg = self.settings.consumer_config();
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false");
        let offsets_client: BaseConsumer = cfg
            .create()
            .map_err(kafka("cannot create offsets client"))?;
        let timeout = self.timeout;
        let committed = blocking(move || {
            // A group's coordinator may be moving or still loading (a group asked about for
            // the first time, a broker restarted): that answer is retried, not passed on.
            let deadline = std::time::Instant::now() + timeout;
            loop {
                match offsets_client.committed_offsets(tpl.clone(), timeout) {
                    Err(e) if coordinator_moving(&e) && std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    r => break r.map_err(kafka("cannot fetch committed offsets")),
                }
            }
        })
        .await?;
        let mut commits: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                commits.insert((e.topic().to_owned(), e.partition()), o);
            }
        }
        let mut partitions = Vec::new();
        for t in infos {
            let has_commit = commits.keys().any(|(topic, _)| topic == &t.name);
            if only_committed && !has_commit {
                continue;
            }
            for p in &t.partitions {
                let committed = commits.get(&(t.name.clone(), p.id)).copied();
                partitions.push(PartitionLag {
                    topic: t.name.clone(),
                    partition: p.id,
                    committed,
                    low: p.low,
                    high: p.high,
                    lag: (p.high - committed.unwrap_or(p.low)).max(0),
                });
            }
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(GroupLag {
            group: group.to_owned(),
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
        })
    }
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    /// Member id (the group instance id of a static member leads it).
    pub id: String,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's host, as the broker saw it.
    pub host: String,
    /// Partitions assigned to it, by topic (empty while a rebalance is under way, or for a
    /// protocol other than the consumer protocol).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// The partitions of a consumer protocol assignment (Kafka's `ConsumerProtocolAssignment`:
/// version, then an array of topic name and partition ids; user data after is ignored).
/// `None` when the bytes are not one.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }
    fn i16_(bytes: &mut &[u8]) -> Option<i16> {
        Some(i16::from_be_bytes(take(bytes, 2)?.try_into().ok()?))
    }
    fn i32_(bytes: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(bytes, 4)?.try_into().ok()?))
    }
    let mut b = bytes;
    if b.is_empty() {
        return Some(Vec::new());
    }
    let _version = i16_(&mut b)?;
    let topics = i32_(&mut b)?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(i16_(&mut b)?).ok()?;
        let name = String::from_utf8(take(&mut b, len)?.to_vec()).ok()?;
        let count = i32_(&mut b)?;
        let mut partitions = Vec::new();
        for _ in 0..count.max(0) {
            partitions.push(i32_(&mut b)?);
        }
        out.push((name, partitions));
    }
    Some(out)
}

/// librdkafka's metadata calls block; keep them off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(AdminError::Invalid(format!("admin task failed: {e}"))))
}

/// Whether `e` says the group coordinator is moving or loading: worth a retry.
fn coordinator_moving(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::NotCoordinator | C::CoordinatorLoadInProgress | C::CoordinatorNotAvailable)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_protocol_assignment_is_decoded() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        for (topic, partitions) in [("a.raw", vec![0, 2]), ("b", vec![5])] {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend(i32::to_be_bytes(p));
            }
        }
        bytes.extend(0_i32.to_be_bytes());
        assert_eq!(
            decode_assignment(&bytes),
            Some(vec![
                ("a.raw".to_owned(), vec![0, 2]),
                ("b".to_owned(), vec![5])
            ])
        );
        assert_eq!(decode_assignment(&[0, 1, 0]), None);
        assert_eq!(decode_assignment(&[]), Some(Vec::new()));
    }
}
