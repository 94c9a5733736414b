//! Freshness: how old each dataset's data is at every stage, against the objective its
//! configuration declares (`[tenants.T.datasets.D.freshness]`).
//!
//! For each stage that reads the dataset (the processors of its raw topic, the sinks of its raw
//! or clean topic) the answer gives the records left to read, how long the oldest of them has
//! waited, and the trend of the stage's lag over the last samples. From the headers of the
//! clean topic's latest records it gives the time from ingestion to the clean topic
//! (`processed_at` minus `ingested_at`, both stamped by the hosts' clocks), p50 and p99. The
//! objective turns these into a state: *breached* when a stage's oldest unread record is older
//! than `max_age_secs` or the p99 is over `p99_end_to_end_ms`; *at risk* from half the age, 80 %
//! of the latency, or while a stage stalls or falls behind; *ok* otherwise.
//!
//! The console's sampler evaluates every dataset with an objective at each sample and
//! remembers when each state began; a change is logged and, with `admin.freshness_webhook`
//! set, posted there as JSON (retried with back-off).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use streamlake_config::{Dataset, FreshnessObjective, ReadTopic};
use streamlake_core::latency::now_ms;
use streamlake_core::{headers as h, DatasetId, LatencyWindows, Quantiles, TenantId};
use streamlake_kafka::TopicInfo;

use crate::error::OpsResult;
use crate::history::{Point, Trend};
use crate::service::{Ops, Principal};

/// Records read from the end of each clean partition for the latency figures.
const LATENCY_RECORDS: i64 = 100;

/// Only records processed this recently count towards the latency figures.
const LATENCY_WINDOW: Duration = Duration::from_secs(300);

/// A dataset's declared objective.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// The oldest record a stage may leave unread, in seconds.
    pub max_age_secs: Option<u64>,
    /// The 99th percentile from ingestion to the clean topic, in milliseconds.
    pub p99_end_to_end_ms: Option<u64>,
}

impl From<&FreshnessObjective> for Objective {
    fn from(o: &FreshnessObjective) -> Self {
        Self {
            max_age_secs: o.max_age_secs,
            p99_end_to_end_ms: o.p99_end_to_end_ms,
        }
    }
}

/// Where a dataset stands against its objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FreshnessState {
    /// Every stage within the objective.
    Ok,
    /// Within the objective, but half-way to the age, near the latency, or a stage stalls or
    /// falls behind.
    AtRisk,
    /// A stage's oldest unread record is older than the objective allows, or the latency over it.
    Breached,
    /// The dataset declares no objective.
    NoObjective,
}

impl FreshnessState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FreshnessState::Ok => "ok",
            FreshnessState::AtRisk => "at_risk",
            FreshnessState::Breached => "breached",
            FreshnessState::NoObjective => "no_objective",
        }
    }
}

/// One stage that reads the dataset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageFreshness {
    /// `process` or `sink`.
    pub stage: String,
    /// The pipeline's or sink's name.
    pub name: String,
    /// Its consumer group.
    pub group: String,
    /// The topic it reads.
    pub topic: String,
    /// Records of the dataset it has yet to read.
    pub lag: i64,
    /// How long the oldest of them has waited, in milliseconds; `null` with nothing to read.
    pub oldest_unread_age_ms: Option<i64>,
    /// Which way its lag goes over the last samples.
    pub trend: Trend,
    /// Its group's total lag over time (the console's samples).
    pub lag_history: Vec<Point>,
    /// A sink's time from the clean topic (`processed_at`) to its row being durable (flushed
    /// or committed), over the last 5 minutes; `null` for a processor, a sink that landed
    /// nothing lately, or one running in another process (see its metrics there).
    pub durable_latency: Option<Latency>,
}

/// How late events arrive: `ingested_at` less the event's own time (`event_time` of the
/// dataset), over the clean topic's latest records.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTimeSkew {
    /// Median lateness, in milliseconds (negative: the event's time is ahead of ingestion).
    pub p50_ms: i64,
    /// 99th percentile of lateness, in milliseconds.
    pub p99_ms: i64,
    /// Events whose own time is more than a second after their ingestion (a clock ahead).
    pub future: usize,
    /// Records measured.
    pub samples: usize,
}

/// A latency over recent records.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// Median, in milliseconds.
    pub p50_ms: i64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: i64,
    /// Records measured (the last of each partition, processed within the last 5 minutes).
    pub samples: usize,
}

/// One dataset's freshness.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetFreshness {
    /// Tenant.
    pub tenant: String,
    /// Dataset.
    pub dataset: String,
    /// The declared objective; `null` without one.
    pub objective: Option<Objective>,
    /// Where the dataset stands.
    pub state: FreshnessState,
    /// Why, in words.
    pub reason: String,
    /// When the continuous evaluation last saw the state change (ms since the epoch); `null`
    /// when it has not evaluated the dataset (no sampler runs, as in one-shot CLI calls).
    pub since: Option<i64>,
    /// Each stage that reads the dataset.
    pub stages: Vec<StageFreshness>,
    /// From ingestion to the raw topic's acknowledgement, over the events the gateway of this
    /// process wrote in the last 5 minutes; `null` without any (or in a process that ingests
    /// nothing, as a one-shot CLI call).
    pub ingest_to_raw: Option<Latency>,
    /// From ingestion to the clean topic; `null` without recent clean records.
    pub ingest_to_clean: Option<Latency>,
    /// How late events arrive against their own time; `null` without `event_time` declared
    /// or recent clean records carrying it.
    pub event_time_skew: Option<EventTimeSkew>,
}

/// `GET /api/freshness`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreshnessReport {
    /// One row per dataset the principal may see.
    pub datasets: Vec<DatasetFreshness>,
    /// Datasets breached.
    pub breached: usize,
    /// Datasets at risk.
    pub at_risk: usize,
    /// When this was evaluated (ms since the epoch).
    pub evaluated_at: i64,
}

/// A state the continuous evaluation saw, and since when.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    state: FreshnessState,
    since: i64,
    /// The oldest unread record over the dataset's stages at the last evaluation.
    oldest_unread_ms: Option<i64>,
}

/// A dataset as the continuous evaluation last saw it (for metrics).
#[derive(Debug, Clone)]
pub struct Watched {
    /// Tenant.
    pub tenant: TenantId,
    /// Dataset.
    pub dataset: DatasetId,
    /// Its state.
    pub state: FreshnessState,
    /// The oldest unread record over its stages, in milliseconds; `None` with nothing to read.
    pub oldest_unread_ms: Option<i64>,
}

/// What a notice on a state change says (the webhook's body).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Notice {
    tenant: String,
    dataset: String,
    state: FreshnessState,
    previous: Option<FreshnessState>,
    reason: String,
    /// RFC 3339.
    at: String,
}

/// The state of a dataset with `objective`, its stages and its latency, with the reason.
pub(crate) fn evaluate(
    objective: Option<&FreshnessObjective>,
    stages: &[StageFreshness],
    latency: Option<&Latency>,
) -> (FreshnessState, String) {
    let Some(objective) = objective else {
        return (
            FreshnessState::NoObjective,
            "no objective declared (freshness in the dataset's table)".to_owned(),
        );
    };
    let (mut breached, mut at_risk) = (Vec::new(), Vec::new());
    if let Some(max) = objective.max_age_secs {
        let max_ms = i64::try_from(max.saturating_mul(1000)).unwrap_or(i64::MAX);
        for s in stages {
            let Some(age) = s.oldest_unread_age_ms else {
                continue;
            };
            let waited = format!(
                "{} {}: the oldest unread record has waited {:.1} s",
                s.stage,
                s.name,
                age as f64 / 1000.0
            );
            if age > max_ms {
                breached.push(format!("{waited}, over max_age_secs = {max}"));
            } else if age.saturating_mul(2) > max_ms {
                at_risk.push(format!("{waited}, over half of max_age_secs = {max}"));
            }
        }
    }
    for s in stages.iter().filter(|s| s.lag > 0) {
        match s.trend {
            Trend::Stalled => at_risk.push(format!(
                "{} {}: stalled with {} records unread",
                s.stage, s.name, s.lag
            )),
            Trend::FallingBehind => at_risk.push(format!(
                "{} {}: falling behind ({} records unread)",
                s.stage, s.name, s.lag
            )),
            _ => {}
        }
    }
    if let (Some(target), Some(l)) = (objective.p99_end_to_end_ms, latency) {
        let target = i64::try_from(target).unwrap_or(i64::MAX);
        let p99 = format!("p99 from ingestion to the clean topic is {} ms", l.p99_ms);
        if l.p99_ms > target {
            breached.push(format!("{p99}, over p99_end_to_end_ms = {target}"));
        } else if l.p99_ms.saturating_mul(10) > target.saturating_mul(8) {
            at_risk.push(format!("{p99}, over 80 % of p99_end_to_end_ms = {target}"));
        }
    }
    if !breached.is_empty() {
        (FreshnessState::Breached, breached.join("; "))
    } else if !at_risk.is_empty() {
        (FreshnessState::AtRisk, at_risk.join("; "))
    } else {
        (
            FreshnessState::Ok,
            "every stage within the objective".to_owned(),
        )
    }
}

/// The `p`th percentile of sorted `values`.
/// p50 and p99 of `samples` (sorted here); `None` when there are none.
fn latency_of(samples: &mut [i64]) -> Option<Latency> {
    Quantiles::of(samples).map(Latency::from)
}

impl From<Quantiles> for Latency {
    fn from(q: Quantiles) -> Self {
        Self {
            p50_ms: q.p50,
            p99_ms: q.p99,
            samples: q.samples,
        }
    }
}

/// An event's own time: an RFC 3339 text, or a number of seconds (below 10^11) or
/// milliseconds since the epoch.
fn event_millis(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => streamlake_core::latency::epoch_ms(s),
        serde_json::Value::Number(n) => {
            let x = n.as_f64()?;
            Some(if x.abs() < 1e11 {
                (x * 1000.0) as i64
            } else {
                x as i64
            })
        }
        _ => None,
    }
}

impl Ops {
    /// Every dataset the principal may see, with its stages' lag, age and trend, its latency
    /// to the clean topic, and its state against its objective.
    pub async fn freshness(&self, who: &Principal) -> OpsResult<FreshnessReport> {
        let topics = self.admin.list_topics().await?;
        let seen = self.freshness_seen.lock().expect("freshness lock").clone();
        let mut datasets = Vec::new();
        for tenant in self.config.tenants.values() {
            if !who.may_see(&tenant.id) {
                continue;
            }
            for ds in tenant.datasets.values() {
                let mut row = self.dataset_freshness(&tenant.id, ds, &topics).await;
                row.since = seen
                    .get(&(tenant.id.clone(), ds.id.clone()))
                    .filter(|s| s.state == row.state)
                    .map(|s| s.since);
                datasets.push(row);
            }
        }
        let count = |state| datasets.iter().filter(|d| d.state == state).count();
        Ok(FreshnessReport {
            breached: count(FreshnessState::Breached),
            at_risk: count(FreshnessState::AtRisk),
            datasets,
            evaluated_at: now_ms(),
        })
    }

    async fn dataset_freshness(
        &self,
        tenant: &TenantId,
        ds: &Dataset,
        topics: &[TopicInfo],
    ) -> DatasetFreshness {
        let mut readers: Vec<(&str, &str, &str, &str)> = Vec::new();
        for p in self.config.pipelines.values() {
            if p.datasets
                .iter()
                .any(|d| &d.tenant == tenant && d.dataset == ds.id)
            {
                readers.push(("process", &p.name, &p.group, &ds.raw_topic));
            }
        }
        for s in self.config.sinks.values() {
            if s.datasets
                .iter()
                .any(|d| &d.tenant == tenant && d.dataset == ds.id)
            {
                let topic = match s.read {
                    ReadTopic::Raw => &ds.raw_topic,
                    ReadTopic::Clean => &ds.clean_topic,
                };
                readers.push(("sink", &s.name, &s.group, topic));
            }
        }
        let mut stages = Vec::new();
        for (stage, name, group, topic) in readers {
            let infos: Vec<TopicInfo> =
                topics.iter().filter(|t| t.name == topic).cloned().collect();
            let (lag, age) = match self.admin.group_lag_on(group, &infos, false).await {
                Ok(lag) => {
                    // Best effort, as on the group page: a failed read leaves the age out.
                    let ages = streamlake_kafka::oldest_unread(&self.settings, &lag)
                        .await
                        .unwrap_or_default();
                    (lag.total_lag, ages.values().copied().max())
                }
                Err(e) => {
                    tracing::debug!(%group, error = %e, "freshness: lag not read");
                    (0, None)
                }
            };
            let durable_latency = if stage == "sink" {
                self.durable_latency(name, tenant, ds)
            } else {
                None
            };
            stages.push(StageFreshness {
                stage: stage.to_owned(),
                name: name.to_owned(),
                group: group.to_owned(),
                topic: topic.to_owned(),
                lag,
                oldest_unread_age_ms: age,
                trend: self.history.trend(group),
                lag_history: self.history.lag(group),
                durable_latency,
            });
        }
        let (latency, skew) = self.clean_latency(ds).await;
        let (state, reason) = evaluate(ds.freshness.as_ref(), &stages, latency.as_ref());
        DatasetFreshness {
            tenant: tenant.to_string(),
            dataset: ds.id.to_string(),
            objective: ds.freshness.as_ref().map(Objective::from),
            state,
            reason,
            since: None,
            stages,
            ingest_to_raw: {
                let since = now_ms() - i64::try_from(LATENCY_WINDOW.as_millis()).unwrap_or(0);
                self.ingestor
                    .acknowledged()
                    .quantiles(tenant.as_str(), ds.id.as_str(), since)
                    .map(Latency::from)
            },
            ingest_to_clean: latency,
            event_time_skew: skew,
        }
    }

    /// Follows the clean → durable latencies `sink` (running in this process) measures.
    pub fn watch_sink_latency(&self, sink: &str, windows: Arc<LatencyWindows>) {
        self.sink_latency
            .lock()
            .expect("sink latency lock")
            .insert(sink.to_owned(), windows);
    }

    /// p50 and p99 of the clean → durable latencies sink `name` measured for `ds` lately.
    fn durable_latency(&self, name: &str, tenant: &TenantId, ds: &Dataset) -> Option<Latency> {
        let windows = self
            .sink_latency
            .lock()
            .expect("sink latency lock")
            .get(name)
            .cloned()?;
        let since = now_ms() - i64::try_from(LATENCY_WINDOW.as_millis()).unwrap_or(0);
        windows
            .quantiles(tenant.as_str(), ds.id.as_str(), since)
            .map(Latency::from)
    }

    /// p50 and p99 of `processed_at - ingested_at` over the clean topic's latest records, and
    /// of `ingested_at` less the event's own time when the dataset declares `event_time`. Its
    /// watermarks are read now, after the stages' lag: a processor's outputs commit with its
    /// offsets, so a stage with nothing left to read has its records counted here.
    async fn clean_latency(&self, ds: &Dataset) -> (Option<Latency>, Option<EventTimeSkew>) {
        let Ok(info) = self.admin.describe_topic(&ds.clean_topic).await else {
            return (None, None);
        };
        let ranges: BTreeMap<i32, (i64, i64)> = info
            .partitions
            .iter()
            .filter(|p| p.high > p.low)
            .map(|p| (p.id, ((p.high - LATENCY_RECORDS).max(p.low), p.high)))
            .collect();
        let Ok(records) = streamlake_kafka::read_ranges(
            &self.settings,
            &ds.clean_topic,
            ranges,
            Duration::from_secs(2),
        )
        .await
        else {
            return (None, None);
        };
        let recent = now_ms() - i64::try_from(LATENCY_WINDOW.as_millis()).unwrap_or(0);
        let mut latencies = Vec::new();
        let mut skews = Vec::new();
        for r in records.iter().filter(|r| {
            r.header_text(h::DATASET).as_deref() == Some(ds.id.as_str())
                || r.header(h::DATASET).is_none()
        }) {
            let Some(ingested) = r
                .header_text(h::INGESTED_AT)
                .and_then(|t| streamlake_core::latency::epoch_ms(&t))
            else {
                continue;
            };
            let Some(processed) = r
                .header_text(h::PROCESSED_AT)
                .and_then(|t| streamlake_core::latency::epoch_ms(&t))
            else {
                continue;
            };
            if processed < recent {
                continue;
            }
            latencies.push((processed - ingested).max(0));
            if let Some(pointer) = &ds.event_time {
                if let Some(event) = r
                    .payload
                    .as_deref()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                    .and_then(|v| v.pointer(pointer).and_then(event_millis))
                {
                    skews.push(ingested - event);
                }
            }
        }
        let future = skews.iter().filter(|s| **s < -1000).count();
        let skew = Quantiles::of(&mut skews).map(|q| EventTimeSkew {
            p50_ms: q.p50,
            p99_ms: q.p99,
            future,
            samples: q.samples,
        });
        (latency_of(&mut latencies), skew)
    }

    /// The datasets with an objective as the continuous evaluation last saw them.
    pub fn watched(&self) -> Vec<Watched> {
        self.freshness_seen
            .lock()
            .expect("freshness lock")
            .iter()
            .map(|((tenant, dataset), seen)| Watched {
                tenant: tenant.clone(),
                dataset: dataset.clone(),
                state: seen.state,
                oldest_unread_ms: seen.oldest_unread_ms,
            })
            .collect()
    }

    /// Evaluates the datasets with an objective and remembers each state's start; a change is
    /// logged and posted to `admin.freshness_webhook`. Run after each sample.
    pub(crate) async fn watch_freshness(&self) {
        let watched = self
            .config
            .tenants
            .values()
            .any(|t| t.datasets.values().any(|d| d.freshness.is_some()));
        if !watched {
            return;
        }
        let report = match self.freshness(&Principal::Admin).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "freshness not evaluated");
                return;
            }
        };
        let now = now_ms();
        for row in report
            .datasets
            .into_iter()
            .filter(|d| d.state != FreshnessState::NoObjective)
        {
            let (Ok(tenant), Ok(dataset)) = (
                TenantId::new(row.tenant.clone()),
                DatasetId::new(row.dataset.clone()),
            ) else {
                continue;
            };
            let oldest_unread_ms = row
                .stages
                .iter()
                .filter_map(|s| s.oldest_unread_age_ms)
                .max();
            let previous = {
                let mut seen = self.freshness_seen.lock().expect("freshness lock");
                let key = (tenant, dataset);
                let previous = seen.get(&key).map(|s| (s.state, s.since));
                let since = match previous {
                    Some((state, since)) if state == row.state => since,
                    _ => now,
                };
                seen.insert(
                    key,
                    Seen {
                        state: row.state,
                        since,
                        oldest_unread_ms,
                    },
                );
                match previous {
                    Some((state, _)) if state == row.state => continue,
                    _ => previous.map(|(state, _)| state),
                }
            };
            match row.state {
                FreshnessState::Breached => {
                    tracing::warn!(tenant = %row.tenant, dataset = %row.dataset, reason = %row.reason, "freshness objective breached")
                }
                FreshnessState::AtRisk => {
                    tracing::warn!(tenant = %row.tenant, dataset = %row.dataset, reason = %row.reason, "freshness objective at risk")
                }
                _ => {
                    tracing::info!(tenant = %row.tenant, dataset = %row.dataset, state = row.state.as_str(), reason = %row.reason, "freshness")
                }
            }
            if let Some(url) = &self.config.admin.freshness_webhook {
                let notice = Notice {
                    tenant: row.tenant,
                    dataset: row.dataset,
                    state: row.state,
                    previous,
                    reason: row.reason,
                    at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                };
                // One sender per process, in order: a notice being retried holds back later
                // ones, so the receiver sees the changes as they happened.
                let sender = self.notices.get_or_init(|| {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Notice>();
                    let url = url.clone();
                    tokio::spawn(async move {
                        while let Some(notice) = rx.recv().await {
                            notify(&url, notice).await;
                        }
                    });
                    tx
                });
                let _ = sender.send(notice);
            }
        }
    }
}

/// Attempts at posting one notice, and the wait before the first retry (doubled each time).
const NOTIFY_ATTEMPTS: u32 = 5;
const NOTIFY_BACKOFF: Duration = Duration::from_millis(500);

/// Posts `notice` to `url`, retrying with back-off until a 2xx answer or the last attempt.
async fn notify(url: &str, notice: Notice) {
    let client = reqwest::Client::new();
    let mut wait = NOTIFY_BACKOFF;
    for attempt in 1..=NOTIFY_ATTEMPTS {
        let sent = client
            .post(url)
            .timeout(Duration::from_secs(10))
            .json(&notice)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::debug!(%url, attempt, status = %r.status(), "freshness webhook refused the notice")
            }
            Err(e) => tracing::debug!(%url, attempt, error = %e, "freshness webhook not reached"),
        }
        if attempt < NOTIFY_ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::warn!(%url, tenant = %notice.tenant, dataset = %notice.dataset, state = notice.state.as_str(), attempts = NOTIFY_ATTEMPTS, "freshness notice not delivered");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(age_ms: Option<i64>, lag: i64, trend: Trend) -> StageFreshness {
        StageFreshness {
            stage: "process".into(),
            name: "main".into(),
            group: "g".into(),
            topic: "t".into(),
            lag,
            oldest_unread_age_ms: age_ms,
            trend,
            lag_history: Vec::new(),
            durable_latency: None,
        }
    }

    #[test]
    fn event_times_are_read_as_text_seconds_or_milliseconds() {
        use serde_json::json;
        let at = 1_795_000_000_000;
        assert_eq!(event_millis(&json!("2026-11-18T11:06:40Z")), Some(at));
        assert_eq!(event_millis(&json!(1_795_000_000)), Some(at));
        assert_eq!(event_millis(&json!(1_795_000_000_000i64)), Some(at));
        assert_eq!(event_millis(&json!(null)), None);
        assert_eq!(event_millis(&json!("yesterday")), None);
    }

    const OBJECTIVE: FreshnessObjective = FreshnessObjective {
        max_age_secs: Some(60),
        p99_end_to_end_ms: Some(2000),
    };

    #[test]
    fn ages_against_max_age_give_ok_at_risk_and_breached() {
        let ok = evaluate(
            Some(&OBJECTIVE),
            &[stage(Some(10_000), 5, Trend::Steady)],
            None,
        );
        assert_eq!(ok.0, FreshnessState::Ok, "{}", ok.1);
        let risk = evaluate(
            Some(&OBJECTIVE),
            &[stage(Some(31_000), 5, Trend::Steady)],
            None,
        );
        assert_eq!(risk.0, FreshnessState::AtRisk, "{}", risk.1);
        let breached = evaluate(
            Some(&OBJECTIVE),
            &[stage(Some(61_000), 5, Trend::Steady)],
            None,
        );
        assert_eq!(breached.0, FreshnessState::Breached);
        assert!(breached.1.contains("max_age_secs = 60"), "{}", breached.1);
    }

    #[test]
    fn a_stalled_stage_is_at_risk_and_latency_counts_against_its_target() {
        let stalled = evaluate(
            Some(&OBJECTIVE),
            &[stage(Some(1000), 40, Trend::Stalled)],
            None,
        );
        assert_eq!(stalled.0, FreshnessState::AtRisk);
        assert!(stalled.1.contains("stalled with 40"), "{}", stalled.1);
        let slow = Latency {
            p50_ms: 300,
            p99_ms: 2500,
            samples: 100,
        };
        assert_eq!(
            evaluate(Some(&OBJECTIVE), &[], Some(&slow)).0,
            FreshnessState::Breached
        );
        assert_eq!(
            evaluate(None, &[stage(Some(1_000_000), 1, Trend::Stalled)], None).0,
            FreshnessState::NoObjective
        );
    }
}
