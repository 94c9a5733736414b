//! Moving a consumer group's committed offsets (the basic replay tool) and deleting a group.
//! Both change what the group reads next, so both are refused while the group has members; a
//! reset can be tried first as a dry run that shows each partition's old and new offset and lag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streamlake_kafka::{GroupLag, TopicInfo};

use crate::error::{ErrorKind, OpsError, OpsResult};
use crate::service::{plain_name, Ops, Principal};

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetTo {
    /// The first record still held (the low watermark).
    Earliest,
    /// After the last record (the high watermark): skip everything held.
    Latest,
    /// The first record at or after `value` (milliseconds since the epoch); the end where there
    /// is none.
    Timestamp,
    /// Offset `value`, within the partition's records.
    Offset,
    /// `value` records from the committed offset (negative: back), within the partition's
    /// records.
    Shift,
}

/// `POST /api/kafka/groups/{id}/reset`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    /// Where to move the offsets.
    pub to: ResetTo,
    /// The timestamp, offset or shift that `to` needs.
    #[serde(default)]
    pub value: Option<i64>,
    /// Only this topic. Default: every topic the group has committed offsets on.
    #[serde(default)]
    pub topic: Option<String>,
    /// Only these partitions (of `topic`).
    #[serde(default)]
    pub partitions: Option<Vec<i32>>,
    /// Compute and show the change without making it.
    #[serde(default)]
    pub dry_run: bool,
}

/// One partition's change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffsetChange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset before (none: never committed).
    pub old_offset: Option<i64>,
    /// The committed offset after.
    pub new_offset: i64,
    /// Records left to read before.
    pub lag_before: i64,
    /// Records left to read after.
    pub lag_after: i64,
}

/// What a reset did, or would do.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    /// The group.
    pub group: String,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// Each partition's change.
    pub partitions: Vec<OffsetChange>,
    /// Total lag before.
    pub total_lag_before: i64,
    /// Total lag after.
    pub total_lag_after: i64,
}

/// `DELETE /api/kafka/groups/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupDeleted {
    /// The group deleted.
    pub group: String,
}

impl Ops {
    /// The group's committed offsets, on the topics it has committed on, after checking the
    /// principal may change them: the admin always, a tenant when every one of those topics is
    /// its own.
    async fn owned_offsets(
        &self,
        who: &Principal,
        group: &str,
        topics: &[TopicInfo],
    ) -> OpsResult<GroupLag> {
        plain_name("group", group)?;
        let lag = self.admin.group_lag_on(group, topics, true).await?;
        if lag.partitions.is_empty() && self.runs(group).is_none() {
            return Err(OpsError::new(
                ErrorKind::NotFound,
                format!("group \"{group}\" has no committed offsets"),
            ));
        }
        if let Principal::Tenant(t) = who {
            if let Some(other) = lag
                .partitions
                .iter()
                .find(|p| self.check_topic(who, &p.topic).is_err())
            {
                return Err(OpsError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "group \"{group}\" also reads {}, which is not tenant {t}'s",
                        other.topic
                    ),
                ));
            }
        }
        Ok(lag)
    }

    /// Refuses while `group` has members.
    async fn check_inactive(&self, group: &str) -> OpsResult<()> {
        if let Ok((summary, _)) = self.admin.describe_group(group).await {
            if summary.members > 0 {
                return Err(OpsError::new(
                    ErrorKind::Conflict,
                    format!(
                        "group \"{group}\" has {} active member(s) (state {}): stop its consumers first",
                        summary.members, summary.state
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Moves `group`'s committed offsets as `req` says, or only shows how (`dry_run`). Refused
    /// with 409 (not as a dry run) while the group has members.
    pub async fn reset_offsets(
        &self,
        who: &Principal,
        group: &str,
        req: &ResetRequest,
    ) -> OpsResult<ResetReport> {
        let bad = |m: String| OpsError::new(ErrorKind::BadRequest, m);
        let value = match (req.to, req.value) {
            (ResetTo::Earliest | ResetTo::Latest, _) => 0,
            (_, Some(v)) => v,
            (to, None) => return Err(bad(format!("reset to {to:?} needs a value"))),
        };
        if req.partitions.is_some() && req.topic.is_none() {
            return Err(bad("partitions need a topic".to_owned()));
        }
        let all = self.admin.list_topics().await?;
        let mut lag = self.owned_offsets(who, group, &all).await?;
        if let Some(topic) = &req.topic {
            self.check_topic(who, topic)?;
            let info = all.iter().find(|t| &t.name == topic).ok_or_else(|| {
                OpsError::new(ErrorKind::NotFound, format!("no topic \"{topic}\""))
            })?;
            // Every partition of the topic, committed or not.
            lag = self
                .admin
                .group_lag_on(group, std::slice::from_ref(info), false)
                .await?;
            if let Some(wanted) = &req.partitions {
                if let Some(p) = wanted
                    .iter()
                    .find(|p| !lag.partitions.iter().any(|l| l.partition == **p))
                {
                    return Err(bad(format!("topic \"{topic}\" has no partition {p}")));
                }
                lag.partitions.retain(|l| wanted.contains(&l.partition));
            }
        }
        if !req.dry_run {
            self.check_inactive(group).await?;
        }
        let by_time = if req.to == ResetTo::Timestamp {
            let partitions: Vec<(String, i32)> = lag
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect();
            self.admin.offsets_for_time(&partitions, value).await?
        } else {
            BTreeMap::new()
        };
        let partitions: Vec<OffsetChange> = lag
            .partitions
            .iter()
            .map(|p| {
                let from = p.committed.unwrap_or(p.low);
                let target = match req.to {
                    ResetTo::Earliest => p.low,
                    ResetTo::Latest => p.high,
                    ResetTo::Offset => value,
                    ResetTo::Shift => from.saturating_add(value),
                    ResetTo::Timestamp => by_time
                        .get(&(p.topic.clone(), p.partition))
                        .copied()
                        .flatten()
                        .unwrap_or(p.high),
                };
                let new_offset = target.clamp(p.low, p.high);
                OffsetChange {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    old_offset: p.committed,
                    new_offset,
                    lag_before: p.lag,
                    lag_after: p.high - new_offset,
                }
            })
            .collect();
        if !req.dry_run {
            let offsets: Vec<(String, i32, i64)> = partitions
                .iter()
                .map(|c| (c.topic.clone(), c.partition, c.new_offset))
                .collect();
            self.admin.commit_group_offsets(group, &offsets).await?;
            tracing::info!(%group, partitions = offsets.len(), to = ?req.to, "group offsets reset");
        }
        Ok(ResetReport {
            group: group.to_owned(),
            dry_run: req.dry_run,
            total_lag_before: partitions.iter().map(|c| c.lag_before).sum(),
            total_lag_after: partitions.iter().map(|c| c.lag_after).sum(),
            partitions,
        })
    }

    /// Deletes `group` and its committed offsets. Refused with 409 while it has members.
    pub async fn delete_group(&self, who: &Principal, group: &str) -> OpsResult<GroupDeleted> {
        let all = self.admin.list_topics().await?;
        self.owned_offsets(who, group, &all).await?;
        self.check_inactive(group).await?;
        self.admin.delete_group(group).await?;
        self.seen_groups.lock().expect("groups lock").remove(group);
        tracing::info!(%group, "group deleted");
        Ok(GroupDeleted {
            group: group.to_owned(),
        })
    }
}
