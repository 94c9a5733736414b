//! Consumer groups: the list with lag, a group's members and partitions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use streamlake_kafka::{AdminError, PartitionLag, TopicInfo};

use crate::error::{ErrorKind, OpsError, OpsResult};
use crate::service::{Ops, Principal};

/// One consumer group in the group list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// How long the oldest of them has waited, in milliseconds (now minus the timestamp of
    /// the record at the committed offset); `null` with nothing to read.
    pub oldest_unread_age_ms: Option<i64>,
}

impl From<&PartitionLag> for GroupPartition {
    fn from(p: &PartitionLag) -> Self {
        Self {
            topic: p.topic.clone(),
            partition: p.partition,
            committed_offset: p.committed,
            high_watermark: p.high,
            lag: p.lag,
            oldest_unread_age_ms: None,
        }
    }
}

/// A group member, where the broker describes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// Member id.
    pub id: String,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// Partitions assigned to it, by topic.
    pub assignment: Vec<TopicPartitions>,
}

/// Some partitions of a topic.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicPartitions {
    /// Topic.
    pub topic: String,
    /// Partition ids.
    pub partitions: Vec<i32>,
}

/// `GET /api/kafka/groups/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// How long the group's oldest unread record has waited, in milliseconds, over all its
    /// partitions: the data it delivers is at most this old behind; `null` with nothing to read.
    pub oldest_unread_age_ms: Option<i64>,
    /// What the broker could not tell.
    pub note: Option<String>,
    /// Total lag over time, from the console's samples (empty in one-shot CLI calls).
    pub lag_history: Vec<crate::history::Point>,
}

impl Ops {
    /// What the platform runs in `group`, from the configuration.
    pub(crate) fn runs(&self, group: &str) -> Option<String> {
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
        // Time lag: best effort; a read that fails leaves the ages out, not the answer.
        let waited = streamlake_kafka::oldest_unread(&self.settings, &lag)
            .await
            .unwrap_or_default();
        let partitions: Vec<GroupPartition> = lag
            .partitions
            .iter()
            .map(|p| GroupPartition {
                oldest_unread_age_ms: waited.get(&(p.topic.clone(), p.partition)).copied(),
                ..GroupPartition::from(p)
            })
            .collect();
        Ok(GroupDetail {
            group: group.to_owned(),
            state: None,
            members: None,
            runs: self.runs(group),
            oldest_unread_age_ms: partitions
                .iter()
                .filter_map(|p| p.oldest_unread_age_ms)
                .max(),
            partitions,
            total_lag: lag.total_lag,
            note: None,
            lag_history: Vec::new(),
        })
    }

    /// One group: state and members where the broker tells, committed offset, high watermark
    /// and lag per partition, total lag. A group without commits is 404.
    pub async fn group(&self, who: &Principal, group: &str) -> OpsResult<GroupDetail> {
        crate::service::plain_name("group", group)?;
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
        // A group's lag history is a total over all its topics: a tenant sees it only when
        // every topic the group reads is its own.
        let shared = matches!(who, Principal::Tenant(_))
            && self
                .group_topics(group)
                .iter()
                .any(|t| self.check_topic(who, t).is_err());
        detail.lag_history = if shared {
            Vec::new()
        } else {
            self.history.lag(group)
        };
        {
            match self.admin.describe_group(group).await {
                Ok((summary, members)) => {
                    detail.state = Some(summary.state);
                    detail.members = Some(
                        members
                            .into_iter()
                            .map(|m| GroupMember {
                                id: m.id,
                                client_id: m.client_id,
                                host: m.host,
                                assignment: m
                                    .assignment
                                    .into_iter()
                                    .map(|(topic, partitions)| TopicPartitions {
                                        topic,
                                        partitions,
                                    })
                                    .collect(),
                            })
                            .collect(),
                    );
                }
                Err(e) => detail.note = Some(e.to_string()),
            }
        }
        Ok(detail)
    }
}
