//! Per-tenant overview: events in, rejected and dead-lettered, clean records, and the raw
//! topics' throughput over time.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dlq::DeadLetterQuery;
use crate::history::Point;
use crate::{Ops, OpsResult, Principal};

/// One dataset's record counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetCounts {
    /// Dataset id.
    pub dataset: String,
    /// Raw topic.
    pub raw_topic: String,
    /// Records in the raw topic (accepted events).
    pub raw_records: i64,
    /// Clean topic.
    pub clean_topic: String,
    /// Records in the clean topic (processed events).
    pub clean_records: i64,
    /// The dataset's own quota over HTTP ingestion (within the tenant's), when it has one.
    pub quota: Option<QuotaView>,
    /// Its schema versions, oldest first; the last is used for events that name none.
    pub schema_versions: Vec<String>,
    /// The compatibility each version keeps with the ones before it.
    pub compatibility: String,
}

/// A tenant in the tenant list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSummary {
    /// Tenant id.
    pub tenant: String,
    /// Display name.
    pub display_name: String,
    /// Dataset ids.
    pub datasets: Vec<String>,
    /// Dead-letter topic.
    pub dlq_topic: String,
}

/// `GET /api/tenants/{tenant}/overview`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantOverview {
    /// Tenant id.
    pub tenant: String,
    /// Display name.
    pub display_name: String,
    /// Events that reached the platform: accepted into raw topics plus rejected at ingestion.
    pub events_in: i64,
    /// Accepted into the raw topics.
    pub accepted: i64,
    /// Rejected at ingestion (dead letters of stage `gateway`).
    pub rejected: i64,
    /// Every dead letter, of every stage.
    pub dead_lettered: i64,
    /// Dead letters per stage.
    pub dead_letters_by_stage: BTreeMap<String, usize>,
    /// Dead letters already replayed.
    pub replayed: usize,
    /// Per dataset.
    pub datasets: Vec<DatasetCounts>,
    /// Records per second into the raw topics, from the console's samples (empty until two
    /// samples were taken; not available to one-shot CLI calls): the quota's use.
    pub throughput: Vec<Point>,
    /// The tenant's quota over HTTP ingestion, when it has one.
    pub quota: Option<QuotaView>,
}

/// A tenant's or dataset's quota (`quota` in its table).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaView {
    /// Events per second, sustained.
    pub events_per_sec: Option<u32>,
    /// Request body bytes per second, sustained.
    pub bytes_per_sec: Option<u32>,
    /// Seconds of the rate that may arrive at once.
    pub burst_secs: f64,
}

impl From<&streamlake_config::QuotaConfig> for QuotaView {
    fn from(q: &streamlake_config::QuotaConfig) -> Self {
        Self {
            events_per_sec: q.events_per_sec,
            bytes_per_sec: q.bytes_per_sec,
            burst_secs: q.burst_secs,
        }
    }
}

impl Ops {
    /// The tenants the principal may see.
    pub fn tenants(&self, who: &Principal) -> Vec<TenantSummary> {
        self.config
            .tenants
            .values()
            .filter(|t| who.may_see(&t.id))
            .map(|t| TenantSummary {
                tenant: t.id.to_string(),
                display_name: t.display_name.clone(),
                datasets: t.datasets.keys().map(ToString::to_string).collect(),
                dlq_topic: t.dlq_topic.clone(),
            })
            .collect()
    }

    /// One tenant's counts and throughput.
    pub async fn tenant_overview(
        &self,
        who: &Principal,
        tenant: &str,
    ) -> OpsResult<TenantOverview> {
        let id = self.check_tenant(who, tenant)?;
        let t = &self.config.tenants[&id];
        let topics = self.admin.list_topics().await?;
        let count = |name: &str| {
            topics
                .iter()
                .find(|t| t.name == name)
                .map_or(0, |t| t.message_count())
        };
        let datasets: Vec<DatasetCounts> = t
            .datasets
            .values()
            .map(|d| DatasetCounts {
                dataset: d.id.to_string(),
                raw_topic: d.raw_topic.clone(),
                raw_records: count(&d.raw_topic),
                clean_topic: d.clean_topic.clone(),
                clean_records: count(&d.clean_topic),
                quota: d.quota.as_ref().map(QuotaView::from),
                schema_versions: d.schemas.iter().map(|s| s.version.clone()).collect(),
                compatibility: d.compatibility.name().to_owned(),
            })
            .collect();
        let dlq = self
            .dead_letters(
                who,
                tenant,
                &DeadLetterQuery {
                    limit: Some(1),
                    pending: false,
                },
            )
            .await?;
        let accepted: i64 = datasets.iter().map(|d| d.raw_records).sum();
        let rejected = dlq.by_stage.get("gateway").copied().unwrap_or(0) as i64;
        let raw_topics: Vec<String> = datasets.iter().map(|d| d.raw_topic.clone()).collect();
        Ok(TenantOverview {
            tenant: id.to_string(),
            display_name: t.display_name.clone(),
            events_in: accepted + rejected,
            accepted,
            rejected,
            dead_lettered: dlq.total as i64,
            dead_letters_by_stage: dlq.by_stage,
            replayed: dlq.replayed,
            datasets,
            throughput: self.history.rate(&raw_topics),
            quota: t.quota.as_ref().map(QuotaView::from),
        })
    }
}
