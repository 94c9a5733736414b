//! The dead-letter inspector and replay. A replayed dead letter goes back through
//! the ingestion core's validation, keeps its `ingestion_id` (so a sink that already holds it drops the
//! copy) and carries `replay.of`; an entry in the tenant's replay log (see `replays`) records
//! that it was replayed and where it went, so the same dead letter is not replayed twice by
//! accident, even after a restart. Reads stream the dead-letter topic: a listing keeps the
//! counts and the newest few, a replay the dead letters it names (or a chunk at a time).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use streamlake_core::{headers as h, DatasetId, TenantId};
use streamlake_ingest::Ingested;
use streamlake_kafka::{visit_ranges, Headers, Record, RecordVisitor};

use crate::messages::{HeaderView, MessageView};
use crate::replays::{key_of, Position, Refusal, ReplayLog};
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

/// Most dead letters one request may name.
pub const MAX_REPLAY_SELECTION: usize = 1000;

/// Dead letters a replay of "all" holds in memory at a time.
const REPLAY_CHUNK: usize = 256;

/// A record of the dead-letter topic that is not a dead letter: a replay marker older versions
/// wrote into the dead-letter topic itself (replay marks now live in the replay log).
fn is_legacy_marker(r: &Record) -> bool {
    r.header(h::REPLAY_MARKER).is_some()
}

/// What a listing keeps while the topic streams past: counts and the newest `limit` dead
/// letters (left out, when `pending`: those the replay log marks as replayed).
#[derive(Debug)]
struct Listing {
    limit: usize,
    pending: bool,
    log: Arc<ReplayLog>,
    newest: BTreeMap<(Option<i64>, i32, i64), DeadLetterView>,
    by_stage: BTreeMap<String, usize>,
}

impl RecordVisitor for Listing {
    fn visit(&mut self, r: Record) {
        if is_legacy_marker(&r) {
            return;
        }
        let view = DeadLetterView::from_record(&r);
        *self
            .by_stage
            .entry(view.stage.clone().unwrap_or_else(|| "unknown".to_owned()))
            .or_insert(0) += 1;
        let pos = (r.partition, r.offset);
        if self.pending && self.log.is_replayed(pos) {
            return;
        }
        self.newest.insert((view.timestamp, pos.0, pos.1), view);
        if self.newest.len() > self.limit {
            self.newest.pop_first();
        }
    }
}

/// The next dead letters not replayed yet, up to `take`.
struct Pending {
    log: Arc<ReplayLog>,
    take: usize,
    found: Vec<Record>,
}

impl RecordVisitor for Pending {
    fn visit(&mut self, r: Record) {
        if !is_legacy_marker(&r) && !self.log.is_replayed((r.partition, r.offset)) {
            self.found.push(r);
        }
    }

    fn satisfied(&self) -> bool {
        self.found.len() >= self.take
    }
}

/// The records at the positions a replay names, and nothing else.
struct Named {
    wanted: BTreeSet<Position>,
    found: BTreeMap<Position, Record>,
}

impl RecordVisitor for Named {
    fn visit(&mut self, r: Record) {
        let pos = (r.partition, r.offset);
        if self.wanted.contains(&pos) {
            self.found.insert(pos, r);
        }
    }

    fn satisfied(&self) -> bool {
        self.found.len() == self.wanted.len()
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
    /// For `all`: whether every dead letter present when the request came was reached. When
    /// the broker stops delivering first, `unread` says how many were not; ask again.
    pub complete: bool,
    /// For `all`: records of the dead-letter topic the replay did not reach.
    pub unread: i64,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Ops {
    /// The tenant's dead letters, newest first, with reason, path, rule, stage and whether each
    /// was replayed. The topic streams past once; what is kept is the counts and the `limit`
    /// newest.
    pub async fn dead_letters(
        &self,
        who: &Principal,
        tenant: &str,
        q: &DeadLetterQuery,
    ) -> OpsResult<DeadLetterList> {
        let id = self.check_tenant(who, tenant)?;
        let limit = self.limit(q.limit)?;
        let topic = self.config.tenants[&id].dlq_topic.clone();
        let log = self.replay_log(&id);
        log.catch_up(&self.settings, &self.admin).await?;
        let ranges = self.admin.describe_topic(&topic).await?.ranges();
        let listing = Listing {
            limit,
            pending: q.pending,
            log: Arc::clone(&log),
            newest: BTreeMap::new(),
            by_stage: BTreeMap::new(),
        };
        let (listing, coverage) =
            visit_ranges(&self.settings, &topic, ranges, READ_IDLE, listing).await?;
        if !coverage.complete() {
            tracing::warn!(%topic, unread = coverage.unread_records(), "dead-letter listing is partial: the broker stopped delivering before the end");
        }
        let Listing {
            newest, by_stage, ..
        } = listing;
        let mut letters: Vec<DeadLetterView> = newest.into_values().rev().collect();
        for v in &mut letters {
            v.replayed = log.mark((v.partition, v.offset));
        }
        Ok(DeadLetterList {
            tenant: id.to_string(),
            topic,
            total: by_stage.values().sum(),
            replayed: log.replayed(),
            by_stage,
            dead_letters: letters,
            complete: coverage.complete(),
            unread: coverage.unread_records(),
        })
    }

    /// Replays dead letters back through validation. A dead letter the replay log marks, one
    /// another request is replaying at the moment, or one named twice in the request is refused;
    /// requests for different dead letters run side by side.
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
        if req.records.len() > MAX_REPLAY_SELECTION {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!(
                    "{} dead letters named; at most {MAX_REPLAY_SELECTION} per request (or \"all\": true)",
                    req.records.len()
                ),
            ));
        }
        let log = self.replay_log(&id);
        log.catch_up(&self.settings, &self.admin).await?;
        let topic = self.config.tenants[&id].dlq_topic.clone();
        let ranges = self.admin.describe_topic(&topic).await?.ranges();
        let mut report = ReplayReport {
            tenant: id.to_string(),
            replayed: 0,
            dead_lettered: 0,
            refused: 0,
            failed: 0,
            results: Vec::new(),
            complete: true,
            unread: 0,
        };
        if req.all {
            // Dead letters present when the request came, a chunk at a time; those the replay
            // writes back to the dead-letter topic lie past the end and are not replayed again.
            let mut ranges = ranges;
            loop {
                let pending = Pending {
                    log: Arc::clone(&log),
                    take: REPLAY_CHUNK,
                    found: Vec::new(),
                };
                let (chunk, coverage) =
                    visit_ranges(&self.settings, &topic, ranges, READ_IDLE, pending).await?;
                let stopped_early = chunk.satisfied();
                for record in &chunk.found {
                    let result = self.replay_one(&id, &topic, &log, record, None).await;
                    report.add(result);
                }
                if coverage.complete() {
                    break;
                }
                if !stopped_early {
                    tracing::warn!(%topic, unread = coverage.unread_records(), "replay of all dead letters is partial: the broker stopped delivering before the end");
                    report.complete = false;
                    report.unread = coverage.unread_records();
                    break;
                }
                ranges = coverage.unread;
            }
            return Ok(report);
        }
        let named = self.read_named(&topic, ranges, &req.records).await?;
        let mut seen = BTreeSet::new();
        for sel in &req.records {
            let pos = (sel.partition, sel.offset);
            let refused = |message: String| ReplayResult {
                partition: sel.partition,
                offset: sel.offset,
                status: ReplayStatus::NotFound,
                ingestion_id: None,
                written_to: None,
                message: Some(message),
            };
            let result = if !seen.insert(pos) {
                ReplayResult {
                    status: ReplayStatus::AlreadyReplayed,
                    ..refused("named more than once in this request; replayed once".to_owned())
                }
            } else {
                match named.get(&pos) {
                    Some(Some(record)) => {
                        self.replay_one(&id, &topic, &log, record, sel.payload.as_ref())
                            .await
                    }
                    Some(None) => ReplayResult {
                        status: ReplayStatus::Failed,
                        ..refused(format!(
                            "{topic} stopped delivering before partition {} offset {} was read; nothing was replayed, try again",
                            sel.partition, sel.offset
                        ))
                    },
                    None => refused(format!(
                        "{topic} has no record at partition {} offset {}",
                        sel.partition, sel.offset
                    )),
                }
            };
            report.add(result);
        }
        Ok(report)
    }

    /// Reads the dead letters `selections` name, by position: `Some(Some(record))` when read,
    /// `Some(None)` when the read gave up before reaching it, absent when the topic has no
    /// record there.
    async fn read_named(
        &self,
        topic: &str,
        ranges: BTreeMap<i32, (i64, i64)>,
        selections: &[ReplaySelection],
    ) -> OpsResult<BTreeMap<Position, Option<Record>>> {
        let wanted: BTreeSet<Position> = selections
            .iter()
            .map(|s| (s.partition, s.offset))
            .filter(|(p, o)| {
                ranges
                    .get(p)
                    .is_some_and(|(low, high)| low <= o && o < high)
            })
            .collect();
        let mut spans: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for &(p, o) in &wanted {
            let span = spans.entry(p).or_insert((o, o + 1));
            span.0 = span.0.min(o);
            span.1 = span.1.max(o + 1);
        }
        let named = Named {
            wanted: wanted.clone(),
            found: BTreeMap::new(),
        };
        let (named, coverage) =
            visit_ranges(&self.settings, topic, spans, READ_IDLE, named).await?;
        let mut found = named.found;
        let mut answer = BTreeMap::new();
        for pos in wanted {
            let unread = coverage
                .unread
                .get(&pos.0)
                .is_some_and(|(next, _)| *next <= pos.1);
            match found.remove(&pos) {
                Some(r) => {
                    answer.insert(pos, Some(r));
                }
                // Offsets compaction or retention removed are simply absent.
                None if unread => {
                    answer.insert(pos, None);
                }
                None => {}
            }
        }
        Ok(answer)
    }

    async fn replay_one(
        &self,
        tenant: &TenantId,
        topic: &str,
        log: &Arc<ReplayLog>,
        record: &Record,
        payload: Option<&serde_json::Value>,
    ) -> ReplayResult {
        let pos = (record.partition, record.offset);
        let view = DeadLetterView::from_record(record);
        let mut result = ReplayResult {
            partition: pos.0,
            offset: pos.1,
            status: ReplayStatus::NotADeadLetter,
            ingestion_id: view.ingestion_id.clone(),
            written_to: None,
            message: None,
        };
        if is_legacy_marker(record) {
            result.message = Some("this record is a replay marker, not a dead letter".to_owned());
            return result;
        }
        let claim = match log.claim(pos) {
            Ok(claim) => claim,
            Err(Refusal::Replayed(mark)) => {
                result.status = ReplayStatus::AlreadyReplayed;
                result.message = Some(format!(
                    "already replayed at {} to {}; replay the new record instead if it needs another try",
                    mark.at, mark.to
                ));
                result.written_to = Some(mark.to);
                return result;
            }
            Err(Refusal::InProgress) => {
                result.status = ReplayStatus::AlreadyReplayed;
                result.message =
                    Some("another request is replaying this dead letter right now".to_owned());
                return result;
            }
        };
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
        let bytes = match payload {
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
                format!("{topic}/{}/{}", pos.0, pos.1),
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
        let headers = Headers::new()
            .with(h::TENANT, tenant.as_str())
            .with(h::REPLAY_MARKER, key_of(pos))
            .with(h::REPLAY_AT, &at)
            .with(h::REPLAY_TO, &to);
        let body = serde_json::json!({
            "deadLetter": format!("{topic}/{}/{}", pos.0, pos.1),
            "ingestionId": result.ingestion_id,
            "to": to,
            "at": at,
        });
        match self
            .producer
            .send(
                log.topic(),
                Some(key_of(pos).as_bytes()),
                body.to_string().as_bytes(),
                &headers,
            )
            .await
        {
            Ok(_) => {
                claim.mark(ReplayMark { at, to: to.clone() });
                tracing::info!(%tenant, partition = pos.0, offset = pos.1, %to, status = ?result.status, "dead letter replayed");
            }
            Err(e) => {
                tracing::error!(%tenant, partition = pos.0, offset = pos.1, error = %e, "replay not recorded in the replay log: this dead letter may be replayed again");
                result.message = Some(format!(
                    "replayed, but the replay log did not acknowledge it ({e}); it may be offered for replay again"
                ));
            }
        }
        result
    }
}

impl ReplayReport {
    fn add(&mut self, result: ReplayResult) {
        match result.status {
            ReplayStatus::Replayed => self.replayed += 1,
            ReplayStatus::DeadLettered => self.dead_lettered += 1,
            ReplayStatus::Failed => self.failed += 1,
            _ => self.refused += 1,
        }
        self.results.push(result);
    }
}
