//! The operations service: every answer the admin API, the console and the CLI give comes from
//! here, so the three agree. Each call takes the [`Principal`] asking: the admin sees
//! everything, a tenant only its own topics, groups and dead letters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use streamlake_config::Config;
use streamlake_core::{TenantId, TopicRole, TopicSpec};
use streamlake_gateway::Gateway;
use streamlake_kafka::{
    read_ranges, Admin, AdminError, KafkaSettings, PartitionLag, Producer, ProvisionReport, Record,
    TopicInfo,
};
use subtle::ConstantTimeEq;

use crate::history::History;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token: everything.
    Admin,
    /// A tenant's API key: that tenant's topics, groups and dead letters.
    Tenant(TenantId),
}

impl Principal {
    /// Whether this principal may see `tenant`'s data.
    pub fn may_see(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant(t) => t == tenant,
        }
    }
}

/// What kind of failure an [`OpsError`] is; the API maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or out of range (400).
    BadRequest,
    /// The principal may not see or do this (403).
    Forbidden,
    /// No such topic, partition, group, tenant or record (404).
    NotFound,
    /// It exists already, or was done already (409).
    Conflict,
    /// The broker does not support it (501).
    Unsupported,
    /// The broker did not answer or failed (503).
    Unavailable,
}

impl ErrorKind {
    /// Machine-readable code in error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// Why an operation failed, in words an operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OpsError {
    /// Kind of failure.
    pub kind: ErrorKind,
    /// What was wrong.
    pub message: String,
}

impl OpsError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<AdminError> for OpsError {
    fn from(e: AdminError) -> Self {
        let kind = match &e {
            AdminError::UnknownTopic(_) => ErrorKind::NotFound,
            AdminError::TopicExists(_) => ErrorKind::Conflict,
            AdminError::Invalid(_) => ErrorKind::BadRequest,
            AdminError::Unsupported(_) => ErrorKind::Unsupported,
            AdminError::Kafka { .. } => ErrorKind::Unavailable,
        };
        OpsError::new(kind, e.to_string())
    }
}

/// Result of an operation.
pub type OpsResult<T> = Result<T, OpsError>;

/// A topic's role as the API and console name it: a tenant's raw, clean or dead-letter topic, or
/// `other` (declared in `[[topics]]`, or not declared at all).
pub fn role_name(role: Option<TopicRole>) -> &'static str {
    role.map_or("other", TopicRole::as_str)
}

fn serialize_role<S: serde::Serializer>(role: &Option<TopicRole>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role_name(*role))
}

/// One topic in the topic list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// Owning tenant, when the topic is one of a tenant's.
    pub tenant: Option<String>,
    /// Raw, clean, dead-letter, or none of them (`other`).
    #[serde(serialize_with = "serialize_role")]
    pub role: Option<TopicRole>,
    /// Partition count.
    pub partitions: usize,
    /// Records held (sum over partitions of high minus low watermark).
    pub messages: i64,
}

/// `GET /api/kafka/topics`.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicMetadata {
    /// Topic name.
    pub topic: String,
    /// Owning tenant, if any.
    pub tenant: Option<String>,
    /// Raw, clean, dead-letter, or none of them (`other`).
    #[serde(serialize_with = "serialize_role")]
    pub role: Option<TopicRole>,
    /// Partition count.
    pub partition_count: usize,
    /// Records held.
    pub messages: i64,
    /// Partitions by id.
    pub partitions: Vec<PartitionMetadata>,
}

/// `POST /api/kafka/topics`.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigs {
    /// Topic name.
    pub topic: String,
    /// Configs by Kafka name, as the broker describes them.
    pub configs: BTreeMap<String, String>,
}

/// One consumer group in the group list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOverview {
    /// Group id.
    pub group: String,
    /// State as the broker reports it; `null` where the broker does not tell.
    pub state: Option<String>,
    /// Members, where the broker tells.
    pub members: Option<usize>,
    /// What the platform runs in this group (`pipeline NAME`, `sink NAME`), if anything.
    pub runs: Option<String>,
    /// Total lag over the group's committed partitions.
    pub total_lag: i64,
}

/// `GET /api/kafka/groups`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    /// Groups by id.
    pub groups: Vec<GroupOverview>,
    /// How many.
    pub count: usize,
    /// Where the list came from, when it is not the broker's own list.
    pub note: Option<String>,
}

/// One partition's committed offset and lag for a group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset, `null` without a commit.
    pub committed_offset: Option<i64>,
    /// High watermark.
    pub high_watermark: i64,
    /// Records the group has yet to read.
    pub lag: i64,
}

impl From<&PartitionLag> for GroupPartition {
    fn from(p: &PartitionLag) -> Self {
        Self {
            topic: p.topic.clone(),
            partition: p.partition,
            committed_offset: p.committed,
            high_watermark: p.high,
            lag: p.lag,
        }
    }
}

/// A group member, where the broker describes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// Member id.
    pub id: String,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
}

/// `GET /api/kafka/groups/{id}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDetail {
    /// Group id.
    pub group: String,
    /// State, where the broker tells.
    pub state: Option<String>,
    /// Members, where the broker tells; `null` when it does not.
    pub members: Option<Vec<GroupMember>>,
    /// What the platform runs in this group, if anything.
    pub runs: Option<String>,
    /// Committed offset, high watermark and lag per partition.
    pub partitions: Vec<GroupPartition>,
    /// Sum of the partitions' lag.
    pub total_lag: i64,
    /// What the broker could not tell.
    pub note: Option<String>,
    /// Total lag over time, from the console's samples (empty in one-shot CLI calls).
    pub lag_history: Vec<crate::history::Point>,
}

/// A header of a browsed record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderView {
    /// Header name.
    pub name: String,
    /// Value: the text when it is UTF-8, else base64.
    pub value: Option<String>,
    /// `text` or `base64`.
    pub encoding: &'static str,
}

/// A browsed record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp, milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Key: text when UTF-8, else base64 (`keyEncoding`).
    pub key: Option<String>,
    /// `text` or `base64`.
    pub key_encoding: &'static str,
    /// Headers, in order.
    pub headers: Vec<HeaderView>,
    /// Value: the text when it is UTF-8, else base64 (`valueEncoding`).
    pub value: Option<String>,
    /// `text` or `base64`.
    pub value_encoding: &'static str,
    /// Whether the value is UTF-8 JSON.
    pub is_json: bool,
}

fn encode(bytes: Option<&[u8]>) -> (Option<String>, &'static str) {
    match bytes {
        None => (None, "text"),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Some(s.to_owned()), "text"),
            Err(_) => (
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
                "base64",
            ),
        },
    }
}

impl From<&Record> for MessageView {
    fn from(r: &Record) -> Self {
        let (key, key_encoding) = encode(r.key.as_deref());
        let (value, value_encoding) = encode(r.payload.as_deref());
        let is_json = value_encoding == "text"
            && r.payload
                .as_deref()
                .is_some_and(|p| serde_json::from_slice::<serde::de::IgnoredAny>(p).is_ok());
        Self {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp_ms,
            key,
            key_encoding,
            headers: r
                .headers
                .iter()
                .map(|(name, v)| {
                    let (value, encoding) = encode(v.as_deref());
                    HeaderView {
                        name: name.clone(),
                        value,
                        encoding,
                    }
                })
                .collect(),
            value,
            value_encoding,
            is_json,
        }
    }
}

/// Which records to browse.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// One partition; absent: every partition.
    pub partition: Option<i32>,
    /// First offset; absent: the newest records.
    pub offset: Option<i64>,
    /// Most records returned (default 20, at most `admin.max_messages`).
    pub limit: Option<usize>,
}

/// `GET /api/kafka/topics/{name}/messages`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Topic.
    pub topic: String,
    /// The partition asked for, if one was.
    pub partition: Option<i32>,
    /// The records, by partition and offset.
    pub messages: Vec<MessageView>,
    /// How many.
    pub count: usize,
    /// Low and high watermark per partition, to seek further.
    pub watermarks: BTreeMap<i32, (i64, i64)>,
}

/// Default number of records a browse returns.
pub const DEFAULT_LIMIT: usize = 20;

/// The operations service.
pub struct Ops {
    pub(crate) config: Config,
    pub(crate) settings: KafkaSettings,
    pub(crate) admin: Admin,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) producer: Producer,
    pub(crate) history: History,
    /// One replay at a time in this process, so a record is not replayed twice concurrently.
    pub(crate) replay_lock: tokio::sync::Mutex<()>,
    /// Groups asked about that the configuration does not name, listed even after the broker
    /// forgot them (an empty group's offsets expire).
    seen_groups: Mutex<BTreeSet<String>>,
    owners: BTreeMap<String, (TenantId, TopicRole)>,
    /// How to start a worker process for the semantics lab.
    pub(crate) lab_worker: Option<Vec<String>>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// The service over `config`'s cluster; `gateway` authenticates tenant keys and replays
    /// dead letters through validation.
    pub fn new(
        config: Config,
        settings: KafkaSettings,
        gateway: Arc<Gateway>,
    ) -> Result<Self, OpsError> {
        let mut owners = BTreeMap::new();
        for t in config.tenants.values() {
            owners.insert(t.dlq_topic.clone(), (t.id.clone(), TopicRole::Dlq));
            for d in t.datasets.values() {
                owners.insert(d.raw_topic.clone(), (t.id.clone(), TopicRole::Raw));
                owners.insert(d.clean_topic.clone(), (t.id.clone(), TopicRole::Clean));
            }
        }
        let producer = Producer::new(&settings)
            .map_err(|e| OpsError::new(ErrorKind::Unavailable, e.to_string()))?
            .with_deadline(Duration::from_millis(config.gateway.produce_timeout_ms));
        Ok(Self {
            admin: Admin::new(&settings)?,
            history: History::new(),
            config,
            settings,
            gateway,
            producer,
            replay_lock: tokio::sync::Mutex::new(()),
            seen_groups: Mutex::new(BTreeSet::new()),
            owners,
            lab_worker: None,
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Who a bearer token belongs to: the admin token, or a tenant's API key.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        // Constant time, as the gateway compares tenant keys.
        let admin = self
            .config
            .admin_token
            .as_ref()
            .is_some_and(|a| bool::from(a.expose_secret().as_bytes().ct_eq(token.as_bytes())));
        if admin {
            return Some(Principal::Admin);
        }
        self.gateway
            .tenant_of_key(token)
            .map(|t| Principal::Tenant(t.clone()))
    }

    fn owner(&self, topic: &str) -> Option<&(TenantId, TopicRole)> {
        self.owners.get(topic)
    }

    fn check_topic(&self, who: &Principal, topic: &str) -> OpsResult<()> {
        match who {
            Principal::Admin => Ok(()),
            Principal::Tenant(t) => match self.owner(topic) {
                Some((owner, _)) if owner == t => Ok(()),
                _ => Err(OpsError::new(
                    ErrorKind::Forbidden,
                    format!("topic \"{topic}\" is not one of tenant {t}'s topics"),
                )),
            },
        }
    }

    pub(crate) fn check_admin(&self, who: &Principal, what: &str) -> OpsResult<()> {
        match who {
            Principal::Admin => Ok(()),
            Principal::Tenant(t) => Err(OpsError::new(
                ErrorKind::Forbidden,
                format!("{what} needs the admin token; tenant {t}'s key cannot do it"),
            )),
        }
    }

    pub(crate) fn check_tenant(&self, who: &Principal, tenant: &str) -> OpsResult<TenantId> {
        let id = self
            .config
            .tenants
            .keys()
            .find(|t| t.as_str() == tenant)
            .cloned()
            .ok_or_else(|| OpsError::new(ErrorKind::NotFound, format!("no tenant \"{tenant}\"")))?;
        if !who.may_see(&id) {
            return Err(OpsError::new(
                ErrorKind::Forbidden,
                format!("this key belongs to another tenant; it cannot see tenant {tenant}"),
            ));
        }
        Ok(id)
    }

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

    /// What the platform runs in `group`, from the configuration.
    fn runs(&self, group: &str) -> Option<String> {
        self.config
            .pipelines
            .values()
            .find(|p| p.group == group)
            .map(|p| format!("pipeline {}", p.name))
            .or_else(|| {
                self.config
                    .sinks
                    .values()
                    .find(|s| s.group == group)
                    .map(|s| format!("sink {}", s.name))
            })
    }

    /// Topics a configured group reads, with their owners.
    fn group_topics(&self, group: &str) -> Vec<String> {
        let mut topics = Vec::new();
        for p in self.config.pipelines.values().filter(|p| p.group == group) {
            for d in &p.datasets {
                if let Some((_, ds)) = self.config.dataset(d) {
                    topics.push(ds.raw_topic.clone());
                }
            }
        }
        for s in self.config.sinks.values().filter(|s| s.group == group) {
            for d in &s.datasets {
                if let Some((_, ds)) = self.config.dataset(d) {
                    topics.push(match s.read {
                        streamlake_config::ReadTopic::Raw => ds.raw_topic.clone(),
                        streamlake_config::ReadTopic::Clean => ds.clean_topic.clone(),
                    });
                }
            }
        }
        topics
    }

    /// Groups the configuration runs, plus those asked about before.
    pub(crate) fn known_groups(&self) -> BTreeSet<String> {
        let mut groups: BTreeSet<String> = self
            .config
            .pipelines
            .values()
            .map(|p| p.group.clone())
            .chain(self.config.sinks.values().map(|s| s.group.clone()))
            .collect();
        groups.extend(
            self.seen_groups
                .lock()
                .expect("groups lock")
                .iter()
                .cloned(),
        );
        groups
    }

    /// The tenant's topics among `topics` (every one for the admin).
    fn visible_topics(&self, who: &Principal, topics: Vec<String>) -> Vec<String> {
        topics
            .into_iter()
            .filter(|t| self.check_topic(who, t).is_ok())
            .collect()
    }

    /// Consumer groups with their total lag. On a broker that cannot list groups (the embedded
    /// one) the list is the groups the configuration runs and those looked up before, and
    /// `note` says so.
    pub async fn groups(&self, who: &Principal) -> OpsResult<GroupList> {
        // Group id -> (state, members) as the broker lists them.
        type Listed = BTreeMap<String, (Option<String>, Option<usize>)>;
        let (mut names, note): (Listed, _) = match self.admin.list_groups().await {
            Ok(list) => (
                list.into_iter()
                    .map(|g| (g.name, (Some(g.state), Some(g.members))))
                    .collect(),
                None,
            ),
            Err(AdminError::Unsupported(why)) => (
                BTreeMap::new(),
                Some(format!(
                    "the groups the configuration runs and groups looked up before; {why}"
                )),
            ),
            Err(e) => return Err(e.into()),
        };
        for g in self.known_groups() {
            names.entry(g).or_insert((None, None));
        }
        // One metadata and watermark round for every group.
        let topics = self.admin.list_topics().await?;
        let mut groups = Vec::new();
        for (group, (state, members)) in names {
            let detail = match self.group_lag(who, &group, &topics).await {
                Ok(d) => d,
                Err(e) if e.kind == ErrorKind::Forbidden => continue,
                Err(e) => return Err(e),
            };
            if matches!(who, Principal::Tenant(_)) && detail.partitions.is_empty() {
                continue;
            }
            groups.push(GroupOverview {
                runs: self.runs(&group),
                group,
                state,
                members,
                total_lag: detail.total_lag,
            });
        }
        Ok(GroupList {
            count: groups.len(),
            groups,
            note,
        })
    }

    /// Committed offsets and lag of `group` on the topics the principal may see, out of
    /// `topics` (every topic, as listed once by the caller).
    async fn group_lag(
        &self,
        who: &Principal,
        group: &str,
        topics: &[TopicInfo],
    ) -> OpsResult<GroupDetail> {
        let lag = match who {
            Principal::Admin => self.admin.group_lag_on(group, topics, true).await?,
            Principal::Tenant(t) => {
                let mine = self.visible_topics(who, self.group_topics(group));
                if mine.is_empty() {
                    return Err(OpsError::new(
                        ErrorKind::Forbidden,
                        format!("group \"{group}\" does not read any of tenant {t}'s topics"),
                    ));
                }
                let infos: Vec<TopicInfo> = topics
                    .iter()
                    .filter(|i| mine.contains(&i.name))
                    .cloned()
                    .collect();
                self.admin.group_lag_on(group, &infos, false).await?
            }
        };
        Ok(GroupDetail {
            group: group.to_owned(),
            state: None,
            members: None,
            runs: self.runs(group),
            partitions: lag.partitions.iter().map(GroupPartition::from).collect(),
            total_lag: lag.total_lag,
            note: None,
            lag_history: Vec::new(),
        })
    }

    /// One group: state and members where the broker tells, committed offset, high watermark
    /// and lag per partition, total lag. A group without commits is 404.
    pub async fn group(&self, who: &Principal, group: &str) -> OpsResult<GroupDetail> {
        let topics = self.admin.list_topics().await?;
        let mut detail = self.group_lag(who, group, &topics).await?;
        if detail.partitions.is_empty() && detail.runs.is_none() {
            return Err(OpsError::new(
                ErrorKind::NotFound,
                format!("group \"{group}\" has no committed offsets"),
            ));
        }
        self.seen_groups
            .lock()
            .expect("groups lock")
            .insert(group.to_owned());
        detail.lag_history = self.history.lag(group);
        {
            match self.admin.describe_group(group).await {
                Ok((summary, members)) => {
                    detail.state = Some(summary.state);
                    detail.members = Some(
                        members
                            .into_iter()
                            .map(|(id, client_id, host)| GroupMember {
                                id,
                                client_id,
                                host,
                            })
                            .collect(),
                    );
                }
                Err(e) => detail.note = Some(e.to_string()),
            }
        }
        Ok(detail)
    }

    /// Records of a topic: one partition from an offset, or the newest of every partition.
    pub async fn messages(
        &self,
        who: &Principal,
        topic: &str,
        q: &MessageQuery,
    ) -> OpsResult<MessagePage> {
        self.check_topic(who, topic)?;
        let limit = self.limit(q.limit)?;
        let info = self.admin.describe_topic(topic).await?;
        let watermarks: BTreeMap<i32, (i64, i64)> = info
            .partitions
            .iter()
            .map(|p| (p.id, (p.low, p.high)))
            .collect();
        if let Some(p) = q.partition {
            if !watermarks.contains_key(&p) {
                return Err(OpsError::new(
                    ErrorKind::NotFound,
                    format!(
                        "topic \"{topic}\" has no partition {p}; it has partitions 0 to {}",
                        watermarks.len().saturating_sub(1)
                    ),
                ));
            }
        }
        if q.offset.is_some_and(|o| o < 0) {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                "offset must be 0 or more",
            ));
        }
        let ranges: BTreeMap<i32, (i64, i64)> = watermarks
            .iter()
            .filter(|(p, _)| q.partition.is_none_or(|want| want == **p))
            .map(|(p, (low, high))| {
                let start = match q.offset {
                    Some(o) => o.max(*low),
                    None => (*high - limit as i64).max(*low),
                };
                (*p, (start, (start + limit as i64).min(*high)))
            })
            .collect();
        let mut records =
            read_ranges(&self.settings, topic, ranges, Duration::from_secs(5)).await?;
        records.sort_by_key(|r| (r.partition, r.offset));
        if records.len() > limit {
            if q.offset.is_some() {
                records.truncate(limit);
            } else {
                // The newest `limit` over all partitions.
                records.sort_by_key(|r| (r.timestamp_ms, r.partition, r.offset));
                records.drain(..records.len() - limit);
                records.sort_by_key(|r| (r.partition, r.offset));
            }
        }
        let messages: Vec<MessageView> = records.iter().map(MessageView::from).collect();
        Ok(MessagePage {
            topic: topic.to_owned(),
            partition: q.partition,
            count: messages.len(),
            messages,
            watermarks,
        })
    }

    /// How a topic's records spread over partitions and keys (`sample` records read).
    pub async fn distribution(
        &self,
        who: &Principal,
        topic: &str,
        sample: u64,
    ) -> OpsResult<streamlake_kafka::Distribution> {
        self.check_topic(who, topic)?;
        Ok(streamlake_kafka::distribution(&self.settings, topic, sample.min(100_000), 10).await?)
    }

    pub(crate) fn limit(&self, asked: Option<usize>) -> OpsResult<usize> {
        let max = self.config.admin.max_messages;
        match asked.unwrap_or(DEFAULT_LIMIT.min(max)) {
            0 => Err(OpsError::new(
                ErrorKind::BadRequest,
                "limit must be at least 1",
            )),
            n if n > max => Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("limit {n} is over the maximum of {max} (admin.max_messages)"),
            )),
            n => Ok(n),
        }
    }
}
