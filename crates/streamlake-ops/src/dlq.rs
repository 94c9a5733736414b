//! The dead-letter inspector and replay. A replayed dead letter goes back through
//! the ingestion core's validation, keeps its `ingestion_id` (so a sink that already holds it drops the
//! copy) and carries `replay.of`; a marker record in the dead-letter topic (header
//! `replay.marker`) records that it was replayed and where it went, so the same dead letter is
//! not replayed twice by accident, even after a restart.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use streamlake_core::{headers as h, DatasetId, TenantId};
use streamlake_ingest::Ingested;
use streamlake_kafka::{read_ranges, visit_ranges, Headers, Record, RecordVisitor};

use crate::messages::{HeaderView, MessageView};
use crate::{ErrorKind, Ops, OpsError, OpsResult, Principal};

/// Where a dead letter was replayed to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayMark {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// `{topic}/{partition}/{offset}` of the replayed record (the raw topic, or the dead-letter
    /// topic when it failed validation again).
    pub to: String,
}

/// One dead letter.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset there.
    pub offset: i64,
    /// Timestamp, milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// The event's `ingestion_id`.
    pub ingestion_id: Option<String>,
    /// Dataset it was sent to.
    pub dataset: Option<String>,
    /// `error.reason`.
    pub reason: Option<String>,
    /// `error.path` (JSON pointer of the failing field).
    pub path: Option<String>,
    /// `error.rule` (schema keyword or processor rule).
    pub rule: Option<String>,
    /// `error.stage` (gateway, processor, sink).
    pub stage: Option<String>,
    /// The original payload: text when UTF-8, else base64 (`payloadEncoding`).
    pub payload: Option<String>,
    /// `text` or `base64`.
    pub payload_encoding: &'static str,
    /// Every header, in order.
    pub headers: Vec<HeaderView>,
    /// Set when this dead letter was itself a replay: the dead letter it came from.
    pub replay_of: Option<String>,
    /// Set once it has been replayed.
    pub replayed: Option<ReplayMark>,
}

impl DeadLetterView {
    fn from_record(r: &Record) -> Self {
        let text = |name: &str| r.header_text(name);
        let view = MessageView::from(r);
        Self {
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp_ms,
            ingestion_id: text(h::INGESTION_ID),
            dataset: text(h::DATASET),
            reason: text(h::ERROR_REASON),
            path: text(h::ERROR_PATH),
            rule: text(h::ERROR_RULE),
            stage: text(h::ERROR_STAGE),
            payload: view.value,
            payload_encoding: view.value_encoding,
            headers: view.headers,
            replay_of: text(h::REPLAY_OF),
            replayed: None,
        }
    }
}

/// `GET /api/tenants/{tenant}/dlq`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    /// Tenant.
    pub tenant: String,
    /// Its dead-letter topic.
    pub topic: String,
    /// Dead letters in the topic (replay markers are not counted).
    pub total: usize,
    /// Of those, already replayed.
    pub replayed: usize,
    /// Dead letters per stage.
    pub by_stage: BTreeMap<String, usize>,
    /// The newest `limit` dead letters, newest first.
    pub dead_letters: Vec<DeadLetterView>,
    /// Whether the whole topic was read. When the broker stops delivering before the end,
    /// the counts and the list cover what was read, and `unread` says how much was not.
    pub complete: bool,
    /// Records of the topic the read did not reach.
    pub unread: i64,
}

/// How long a dead-letter read waits for the next record before it answers with what it has
/// (and says that it is partial).
const READ_IDLE: Duration = Duration::from_secs(15);

/// The replay markers of a dead-letter topic, by the dead letter they mark.
#[derive(Debug, Default)]
struct Markers(BTreeMap<(i32, i64), ReplayMark>);

impl Markers {
    /// `r`'s mark when it is a replay marker.
    fn of(r: &Record) -> Option<((i32, i64), ReplayMark)> {
        let marked = r.header_text(h::REPLAY_MARKER)?;
        let pos = parse_position(&marked)?;
        let text = |name| r.header_text(name).unwrap_or_default();
        Some((
            pos,
            ReplayMark {
                at: text(h::REPLAY_AT),
                to: text(h::REPLAY_TO),
            },
        ))
    }
}

impl RecordVisitor for Markers {
    fn visit(&mut self, r: Record) {
        if let Some((pos, mark)) = Self::of(&r) {
            self.0.insert(pos, mark);
        }
    }
}

/// What a listing keeps while the topic streams past: counts, markers, and the newest `limit`
/// dead letters (left out: those already replayed, when `skip` holds the markers).
#[derive(Debug)]
struct Listing {
    limit: usize,
    skip: Option<Markers>,
    newest: BTreeMap<(Option<i64>, i32, i64), DeadLetterView>,
    by_stage: BTreeMap<String, usize>,
    markers: Markers,
}

impl RecordVisitor for Listing {
    fn visit(&mut self, r: Record) {
        if r.header_text(h::REPLAY_MARKER).is_some() {
            self.markers.visit(r);
            return;
        }
        let view = DeadLetterView::from_record(&r);
        *self
            .by_stage
            .entry(view.stage.clone().unwrap_or_else(|| "unknown".to_owned()))
            .or_insert(0) += 1;
        let pos = (r.partition, r.offset);
        if self.skip.as_ref().is_some_and(|m| m.0.contains_key(&pos)) {
            return;
        }
        self.newest.insert((view.timestamp, pos.0, pos.1), view);
        if self.newest.len() > self.limit {
            self.newest.pop_first();
        }
    }
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Most dead letters returned (default 20, at most `admin.max_messages`).
    pub limit: Option<usize>,
    /// Only those not replayed yet.
    #[serde(default)]
    pub pending: bool,
}

/// One dead letter to replay.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplaySelection {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset there.
    pub offset: i64,
    /// A corrected payload (any JSON value) to send instead of the original bytes.
    pub payload: Option<serde_json::Value>,
}

/// `POST /api/tenants/{tenant}/dlq/replay`: either `records` or `all`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// The dead letters to replay.
    #[serde(default)]
    pub records: Vec<ReplaySelection>,
    /// Replay every dead letter not replayed yet.
    #[serde(default)]
    pub all: bool,
}

/// What became of one replayed dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Valid now: written to the dataset's raw topic.
    Replayed,
    /// Still invalid: written to the dead-letter topic again, with the new reason.
    DeadLettered,
    /// Refused: replayed before (see `message`).
    AlreadyReplayed,
    /// Refused: a replay marker is not a dead letter.
    NotADeadLetter,
    /// No record at that partition and offset.
    NotFound,
    /// The dead letter names no dataset of the tenant, so it cannot go back through validation.
    Unroutable,
    /// The broker did not acknowledge; nothing was marked, so it can be replayed again.
    Failed,
}

impl ReplayStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayStatus::Replayed => "replayed",
            ReplayStatus::DeadLettered => "dead_lettered",
            ReplayStatus::AlreadyReplayed => "already_replayed",
            ReplayStatus::NotADeadLetter => "not_a_dead_letter",
            ReplayStatus::NotFound => "not_found",
            ReplayStatus::Unroutable => "unroutable",
            ReplayStatus::Failed => "failed",
        }
    }
}

/// One replay's outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    /// Partition of the dead letter.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Outcome.
    pub status: ReplayStatus,
    /// The event's `ingestion_id`.
    pub ingestion_id: Option<String>,
    /// `{topic}/{partition}/{offset}` of the written record or new dead letter.
    pub written_to: Option<String>,
    /// Why, in words.
    pub message: Option<String>,
}

/// `POST /api/tenants/{tenant}/dlq/replay` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Tenant.
    pub tenant: String,
    /// Written to the raw topic.
    pub replayed: usize,
    /// Invalid again and dead-lettered.
    pub dead_lettered: usize,
    /// Refused (already replayed, not found, not a dead letter, unroutable).
    pub refused: usize,
    /// Not acknowledged by the broker.
    pub failed: usize,
    /// Each dead letter's outcome, in request order.
    pub results: Vec<ReplayResult>,
}

/// Everything in a dead-letter topic: the dead letters, and replay markers by the dead letter
/// they mark.
struct Scan {
    letters: BTreeMap<(i32, i64), (Record, DeadLetterView)>,
    markers: BTreeMap<(i32, i64), ReplayMark>,
    marker_offsets: Vec<(i32, i64)>,
}

fn parse_position(s: &str) -> Option<(i32, i64)> {
    let (p, o) = s.split_once('/')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Ops {
    async fn scan(&self, topic: &str) -> OpsResult<Scan> {
        let info = self.admin.describe_topic(topic).await?;
        let ranges = info.ranges();
        let records = read_ranges(&self.settings, topic, ranges, READ_IDLE).await?;
        let mut scan = Scan {
            letters: BTreeMap::new(),
            markers: BTreeMap::new(),
            marker_offsets: Vec::new(),
        };
        for r in records {
            if r.header_text(h::REPLAY_MARKER).is_some() {
                scan.marker_offsets.push((r.partition, r.offset));
                if let Some((pos, mark)) = Markers::of(&r) {
                    scan.markers.insert(pos, mark);
                }
                continue;
            }
            let view = DeadLetterView::from_record(&r);
            scan.letters.insert((r.partition, r.offset), (r, view));
        }
        for (pos, mark) in &scan.markers {
            if let Some((_, view)) = scan.letters.get_mut(pos) {
                view.replayed = Some(mark.clone());
            }
        }
        Ok(scan)
    }

    /// The tenant's dead letters, newest first, with reason, path, rule, stage and whether each
    /// was replayed. The topic streams past once (twice for `pending`, the first time for the
    /// replay markers only); what is kept is the counts and the `limit` newest.
    pub async fn dead_letters(
        &self,
        who: &Principal,
        tenant: &str,
        q: &DeadLetterQuery,
    ) -> OpsResult<DeadLetterList> {
        let id = self.check_tenant(who, tenant)?;
        let limit = self.limit(q.limit)?;
        let topic = self.config.tenants[&id].dlq_topic.clone();
        let ranges = self.admin.describe_topic(&topic).await?.ranges();
        let skip = if q.pending {
            let (markers, _) = visit_ranges(
                &self.settings,
                &topic,
                ranges.clone(),
                READ_IDLE,
                Markers::default(),
            )
            .await?;
            Some(markers)
        } else {
            None
        };
        let listing = Listing {
            limit,
            skip,
            newest: BTreeMap::new(),
            by_stage: BTreeMap::new(),
            markers: Markers::default(),
        };
        let (listing, coverage) =
            visit_ranges(&self.settings, &topic, ranges, READ_IDLE, listing).await?;
        if !coverage.complete() {
            tracing::warn!(%topic, unread = coverage.unread_records(), "dead-letter listing is partial: the broker stopped delivering before the end");
        }
        let Listing {
            newest,
            by_stage,
            markers,
            ..
        } = listing;
        let mut letters: Vec<DeadLetterView> = newest.into_values().rev().collect();
        for v in &mut letters {
            v.replayed = markers.0.get(&(v.partition, v.offset)).cloned();
        }
        Ok(DeadLetterList {
            tenant: id.to_string(),
            topic,
            total: by_stage.values().sum(),
            replayed: markers.0.len(),
            by_stage,
            dead_letters: letters,
            complete: coverage.complete(),
            unread: coverage.unread_records(),
        })
    }

    /// Replays dead letters back through validation. One replay of a tenant runs at a time
    /// per process; a dead letter with a replay marker, or named twice in the request, is
    /// replayed once and refused after.
    pub async fn replay(
        &self,
        who: &Principal,
        tenant: &str,
        req: &ReplayRequest,
    ) -> OpsResult<ReplayReport> {
        let id = self.check_tenant(who, tenant)?;
        if req.all != req.records.is_empty() {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                "give either \"records\" (partition and offset of each dead letter, optionally a corrected \"payload\") or \"all\": true",
            ));
        }
        // One replay of a tenant at a time in this process, so a dead letter is not replayed
        // twice by two requests at once; other tenants' replays do not wait.
        let _one_at_a_time = self.replay_locks[&id].lock().await;
        let topic = self.config.tenants[&id].dlq_topic.clone();
        let scan = self.scan(&topic).await?;
        let selections: Vec<ReplaySelection> = if req.all {
            scan.letters
                .iter()
                .filter(|(_, (_, v))| v.replayed.is_none())
                .map(|((partition, offset), _)| ReplaySelection {
                    partition: *partition,
                    offset: *offset,
                    payload: None,
                })
                .collect()
        } else {
            req.records.clone()
        };
        let mut report = ReplayReport {
            tenant: id.to_string(),
            replayed: 0,
            dead_lettered: 0,
            refused: 0,
            failed: 0,
            results: Vec::with_capacity(selections.len()),
        };
        let mut named = std::collections::BTreeSet::new();
        for sel in &selections {
            let result = if named.insert((sel.partition, sel.offset)) {
                self.replay_one(&id, &topic, &scan, sel).await
            } else {
                ReplayResult {
                    partition: sel.partition,
                    offset: sel.offset,
                    status: ReplayStatus::AlreadyReplayed,
                    ingestion_id: None,
                    written_to: None,
                    message: Some("named more than once in this request; replayed once".to_owned()),
                }
            };
            match result.status {
                ReplayStatus::Replayed => report.replayed += 1,
                ReplayStatus::DeadLettered => report.dead_lettered += 1,
                ReplayStatus::Failed => report.failed += 1,
                _ => report.refused += 1,
            }
            report.results.push(result);
        }
        Ok(report)
    }

    async fn replay_one(
        &self,
        tenant: &TenantId,
        topic: &str,
        scan: &Scan,
        sel: &ReplaySelection,
    ) -> ReplayResult {
        let pos = (sel.partition, sel.offset);
        let mut result = ReplayResult {
            partition: sel.partition,
            offset: sel.offset,
            status: ReplayStatus::NotFound,
            ingestion_id: None,
            written_to: None,
            message: None,
        };
        if scan.marker_offsets.contains(&pos) {
            result.status = ReplayStatus::NotADeadLetter;
            result.message = Some("this record is a replay marker, not a dead letter".to_owned());
            return result;
        }
        let Some((record, view)) = scan.letters.get(&pos) else {
            result.message = Some(format!(
                "{topic} has no record at partition {} offset {}",
                sel.partition, sel.offset
            ));
            return result;
        };
        result.ingestion_id = view.ingestion_id.clone();
        if let Some(mark) = &view.replayed {
            result.status = ReplayStatus::AlreadyReplayed;
            result.written_to = Some(mark.to.clone());
            result.message = Some(format!(
                "already replayed at {} to {}; replay the new record instead if it needs another try",
                mark.at, mark.to
            ));
            return result;
        }
        let dataset = view
            .dataset
            .as_deref()
            .and_then(|d| DatasetId::new(d).ok())
            .filter(|d| self.config.tenants[tenant].datasets.contains_key(d));
        let Some(dataset) = dataset else {
            result.status = ReplayStatus::Unroutable;
            result.message = Some(format!(
                "the dead letter names no dataset of tenant {tenant} (dataset header: {})",
                view.dataset.as_deref().unwrap_or("absent")
            ));
            return result;
        };
        let bytes = match &sel.payload {
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
            None => record.payload.clone().unwrap_or_default(),
        };
        let ingestion_id = view
            .ingestion_id
            .clone()
            .unwrap_or_else(streamlake_ingest::Ingestor::new_ingestion_id);
        result.ingestion_id = Some(ingestion_id.clone());
        let at = now();
        let provenance = vec![
            (
                h::REPLAY_OF.to_owned(),
                format!("{topic}/{}/{}", sel.partition, sel.offset),
            ),
            (h::REPLAY_AT.to_owned(), at.clone()),
        ];
        let outcome = self
            .ingestor
            .ingest_with_headers(
                tenant,
                &dataset,
                bytes,
                "streamlake-replay",
                ingestion_id,
                &provenance,
            )
            .await;
        let receipt = match outcome {
            Ok(Ingested::Accepted { receipt, .. }) => {
                result.status = ReplayStatus::Replayed;
                receipt
            }
            Ok(Ingested::DeadLettered {
                reason,
                path,
                rule,
                dead_letter,
                ..
            }) => {
                result.status = ReplayStatus::DeadLettered;
                result.message = Some(format!(
                    "still invalid: {reason} (path \"{path}\", rule {rule})"
                ));
                dead_letter
            }
            Ok(Ingested::Failed { error, .. }) => {
                result.status = ReplayStatus::Failed;
                result.message = Some(format!(
                    "not acknowledged by the broker: {error}; {}",
                    if error.possibly_persisted() {
                        "it may have been written, with its ingestion_id, so a sink drops a second copy"
                    } else {
                        "nothing was written"
                    }
                ));
                return result;
            }
            Err(e) => {
                result.status = ReplayStatus::Unroutable;
                result.message = Some(e.to_string());
                return result;
            }
        };
        let to = format!("{}/{}/{}", receipt.topic, receipt.partition, receipt.offset);
        result.written_to = Some(to.clone());
        let marker = Headers::new()
            .with(h::TENANT, tenant.as_str())
            .with(
                h::REPLAY_MARKER,
                format!("{}/{}", sel.partition, sel.offset),
            )
            .with(h::REPLAY_AT, &at)
            .with(h::REPLAY_TO, &to);
        let key = format!("replay:{}/{}", sel.partition, sel.offset);
        let body = serde_json::json!({"replayed": format!("{topic}/{}/{}", sel.partition, sel.offset), "to": to, "at": at});
        if let Err(e) = self
            .producer
            .send(
                topic,
                Some(key.as_bytes()),
                body.to_string().as_bytes(),
                &marker,
            )
            .await
        {
            tracing::error!(%tenant, partition = sel.partition, offset = sel.offset, error = %e, "replay marker not written: this dead letter may be replayed again");
            result.message = Some(format!(
                "replayed, but its replay marker was not acknowledged ({e}); it may be offered for replay again"
            ));
        } else {
            tracing::info!(%tenant, partition = sel.partition, offset = sel.offset, %to, status = ?result.status, "dead letter replayed");
        }
        result
    }
}
