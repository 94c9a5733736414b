//! Messages: bounded reads of a topic's records, and the key distribution of a topic.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use streamlake_kafka::Record;

use crate::error::{ErrorKind, OpsError, OpsResult};
use crate::service::{Ops, Principal};

/// A header of a browsed record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// One partition; absent: every partition.
    pub partition: Option<i32>,
    /// First offset; absent: the newest records.
    pub offset: Option<i64>,
    /// Start, in each partition, at the first record at or after this time (milliseconds since
    /// the epoch), instead of an offset.
    pub timestamp: Option<i64>,
    /// Most records returned (default 20, at most `admin.max_messages`).
    pub limit: Option<usize>,
    /// Only records with this key (the key as text, exactly).
    pub key: Option<String>,
    /// Only records with this header: `name` (present) or `name=value` (that value exactly).
    pub header: Option<String>,
    /// Only records whose value contains this text.
    pub contains: Option<String>,
    /// With `equals`: only records whose JSON value holds `equals` at this JSON pointer
    /// (e.g. `/sensor_id`).
    pub pointer: Option<String>,
    /// What the value must hold at `pointer`: JSON (`107`, `"a"`, `true`), or else the text.
    pub equals: Option<String>,
    /// With a filter: records read at most to find matches (default 10,000, at most 100,000).
    pub scan: Option<u64>,
}

/// `GET /api/kafka/topics/{name}/messages`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// Low and high watermark per partition (keyed by the partition number as a string), to
    /// seek further.
    #[schema(value_type = BTreeMap<String, Vec<i64>>)]
    pub watermarks: BTreeMap<i32, (i64, i64)>,
    /// Records read to answer (with a filter, those that did not match too).
    pub scanned: u64,
    /// Whether a filter was applied.
    pub filtered: bool,
    /// With a filter: whether the whole range to search was read (false: stopped at `limit`
    /// matches or at `scan` records; `next` says where to go on).
    pub complete: bool,
    /// Per partition (keyed by the partition number as a string), the offset after the last
    /// record read: where the next page starts.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub next: BTreeMap<i32, i64>,
}

impl MessagePage {
    /// The records as NDJSON: one [`MessageView`] per line, as the browser shows each.
    pub fn ndjson(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for m in &self.messages {
            // A view of strings and numbers always serializes.
            if serde_json::to_writer(&mut out, m).is_ok() {
                out.push(b'\n');
            }
        }
        out
    }
}

/// Most records a distribution reads for its key statistics.
pub const MAX_DISTRIBUTION_SAMPLE: u64 = 100_000;

/// Records a filtered browse reads by default, and at most.
pub const DEFAULT_SCAN: u64 = 10_000;
/// See [`DEFAULT_SCAN`].
pub const MAX_SCAN: u64 = 100_000;

/// Records an export returns by default.
pub const DEFAULT_EXPORT: usize = 1_000;

/// `POST /api/kafka/topics/{name}/messages`: one record to write.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProduceRequest {
    /// The value as JSON (written as its JSON text). Give `value` or `text`.
    pub value: Option<serde_json::Value>,
    /// The value as text, written as it is.
    pub text: Option<String>,
    /// The key (admin only: a tenant's event is keyed as its dataset says).
    pub key: Option<String>,
    /// Headers (admin only: a tenant's event gets the metadata headers ingestion adds).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// What became of a produced record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Produced {
    /// `written`, or `dead_lettered` (a tenant's event that failed validation).
    pub status: &'static str,
    /// Where it was written: the topic, or the dead-letter topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Its `ingestion_id` (a tenant's event).
    pub ingestion_id: Option<String>,
    /// Why it was dead-lettered.
    pub reason: Option<String>,
}

/// A browse's filters, checked.
#[derive(Debug, Clone, Default)]
struct Filter {
    key: Option<String>,
    header: Option<(String, Option<Vec<u8>>)>,
    contains: Option<String>,
    pointer: Option<(String, serde_json::Value)>,
}

impl Filter {
    fn of(q: &MessageQuery) -> OpsResult<Self> {
        let bad = |m: String| OpsError::new(ErrorKind::BadRequest, m);
        let header = match q.header.as_deref() {
            None => None,
            Some(h) => {
                let (name, value) = match h.split_once('=') {
                    Some((n, v)) => (n, Some(v.as_bytes().to_vec())),
                    None => (h, None),
                };
                if name.is_empty() {
                    return Err(bad(format!(
                        "header {h:?} names no header; write name or name=value"
                    )));
                }
                Some((name.to_owned(), value))
            }
        };
        let pointer = match (&q.pointer, &q.equals) {
            (None, None) => None,
            (Some(p), Some(e)) => {
                if !p.starts_with('/') {
                    return Err(bad(format!(
                        "pointer {p:?} is not a JSON pointer; write it as \"/{}\"",
                        p.trim_start_matches('/')
                    )));
                }
                let expected = serde_json::from_str(e)
                    .unwrap_or_else(|_| serde_json::Value::String(e.clone()));
                Some((p.clone(), expected))
            }
            (Some(p), None) => {
                return Err(bad(format!(
                    "pointer {p:?} needs equals=: the value the record must hold there"
                )))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "equals needs pointer=: the JSON pointer of the field to compare".to_owned(),
                ))
            }
        };
        Ok(Self {
            key: q.key.clone(),
            header,
            contains: q.contains.clone().filter(|c| !c.is_empty()),
            pointer,
        })
    }

    fn is_empty(&self) -> bool {
        self.key.is_none()
            && self.header.is_none()
            && self.contains.is_none()
            && self.pointer.is_none()
    }

    fn matches(&self, r: &Record) -> bool {
        if let Some(key) = &self.key {
            if r.key.as_deref() != Some(key.as_bytes()) {
                return false;
            }
        }
        if let Some((name, value)) = &self.header {
            let found = r.headers.iter().any(|(n, v)| {
                n == name && value.as_ref().is_none_or(|want| v.as_deref() == Some(want))
            });
            if !found {
                return false;
            }
        }
        let text = r
            .payload
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok());
        if let Some(needle) = &self.contains {
            if !text.is_some_and(|t| t.contains(needle.as_str())) {
                return false;
            }
        }
        if let Some((pointer, expected)) = &self.pointer {
            let held = text
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                .is_some_and(|v| v.pointer(pointer) == Some(expected));
            if !held {
                return false;
            }
        }
        true
    }
}

/// Keeps the records a browse returns, counting what it read.
struct Browse {
    filter: Filter,
    matched: Vec<Record>,
    scanned: u64,
    /// Stop once this many matched (reading forward from a start); `None`: read the range.
    stop_at: Option<usize>,
    next: BTreeMap<i32, i64>,
}

impl streamlake_kafka::RecordVisitor for Browse {
    fn visit(&mut self, record: Record) {
        self.scanned += 1;
        self.next.insert(record.partition, record.offset + 1);
        if self.filter.matches(&record) {
            self.matched.push(record);
        }
    }

    fn satisfied(&self) -> bool {
        self.stop_at.is_some_and(|n| self.matched.len() >= n)
    }
}

impl Ops {
    /// Records of a topic: one partition or all, from an offset, from a time, or the newest;
    /// optionally only those matching a key, a header, a text in the value or a JSON field,
    /// searched over at most `scan` records.
    pub async fn messages(
        &self,
        who: &Principal,
        topic: &str,
        q: &MessageQuery,
    ) -> OpsResult<MessagePage> {
        self.check_topic(who, topic)?;
        let limit = self.limit(q.limit)?;
        self.browse(topic, q, limit).await
    }

    /// [`Ops::messages`] for a download: up to [`MAX_SCAN`] records (default 1,000) instead
    /// of `admin.max_messages`.
    pub async fn export(
        &self,
        who: &Principal,
        topic: &str,
        q: &MessageQuery,
    ) -> OpsResult<MessagePage> {
        self.check_topic(who, topic)?;
        let limit = match q.limit {
            None => DEFAULT_EXPORT,
            Some(n) if (1..=MAX_SCAN as usize).contains(&n) => n,
            Some(n) => {
                return Err(OpsError::new(
                    ErrorKind::BadRequest,
                    format!("limit {n} is out of range for an export: 1 to {MAX_SCAN} records"),
                ))
            }
        };
        self.browse(topic, q, limit).await
    }

    async fn browse(&self, topic: &str, q: &MessageQuery, limit: usize) -> OpsResult<MessagePage> {
        let filter = Filter::of(q)?;
        let bad = |m: String| OpsError::new(ErrorKind::BadRequest, m);
        let scan = match q.scan {
            None => DEFAULT_SCAN,
            Some(n) if (1..=MAX_SCAN).contains(&n) => n,
            Some(n) => {
                return Err(bad(format!(
                    "scan {n} is out of range: 1 to {MAX_SCAN} records"
                )))
            }
        };
        if q.offset.is_some() && q.timestamp.is_some() {
            return Err(bad(
                "give offset or timestamp, not both: each says where to start".to_owned(),
            ));
        }
        if q.offset.is_some_and(|o| o < 0) {
            return Err(bad("offset must be 0 or more".to_owned()));
        }
        if q.timestamp.is_some_and(|t| t < 0) {
            return Err(bad(
                "timestamp must be milliseconds since the epoch, 0 or more".to_owned(),
            ));
        }
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
        let chosen: Vec<i32> = watermarks
            .keys()
            .copied()
            .filter(|p| q.partition.is_none_or(|want| want == *p))
            .collect();
        let by_time = match q.timestamp {
            None => BTreeMap::new(),
            Some(t) => {
                let asked: Vec<(String, i32)> =
                    chosen.iter().map(|p| (topic.to_owned(), *p)).collect();
                self.admin.offsets_for_time(&asked, t).await?
            }
        };
        // Records read per partition: as many as returned, or with a filter the scan's share.
        let share = if filter.is_empty() {
            limit as i64
        } else {
            i64::try_from(scan.div_ceil(chosen.len().max(1) as u64)).unwrap_or(i64::MAX)
        };
        let forward = q.offset.is_some() || q.timestamp.is_some();
        let ranges: BTreeMap<i32, (i64, i64)> = chosen
            .iter()
            .map(|p| {
                let (low, high) = watermarks[p];
                let start = match (q.offset, q.timestamp) {
                    (Some(o), _) => o.max(low),
                    // No record at or after the time: nothing to read in that partition.
                    (_, Some(_)) => by_time
                        .get(&(topic.to_owned(), *p))
                        .copied()
                        .flatten()
                        .unwrap_or(high)
                        .max(low),
                    _ => (high - share).max(low),
                };
                (*p, (start, start.saturating_add(share).min(high)))
            })
            .collect();
        let browse = Browse {
            stop_at: (forward && !filter.is_empty()).then_some(limit),
            filter,
            matched: Vec::new(),
            scanned: 0,
            next: ranges.iter().map(|(p, (start, _))| (*p, *start)).collect(),
        };
        let (browse, coverage) = streamlake_kafka::visit_ranges(
            &self.settings,
            topic,
            ranges,
            Duration::from_secs(5),
            browse,
        )
        .await?;
        let filtered = !browse.filter.is_empty();
        let mut records = browse.matched;
        records.sort_by_key(|r| (r.partition, r.offset));
        if records.len() > limit {
            if forward {
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
            scanned: browse.scanned,
            filtered,
            complete: coverage.complete(),
            next: browse.next,
        })
    }

    /// Writes one record. The admin writes any bytes with any key and headers to any topic; a
    /// tenant writes an event to one of its datasets' raw topics, through the same validation,
    /// keying and metadata headers as the gateway (an invalid event is dead-lettered).
    pub async fn produce(
        &self,
        who: &Principal,
        topic: &str,
        req: &ProduceRequest,
    ) -> OpsResult<Produced> {
        self.check_topic(who, topic)?;
        let bad = |m: &str| OpsError::new(ErrorKind::BadRequest, m.to_owned());
        let bytes = match (&req.value, &req.text) {
            (Some(v), None) => serde_json::to_vec(v).map_err(|e| bad(&e.to_string()))?,
            (None, Some(t)) => t.clone().into_bytes(),
            _ => {
                return Err(bad(
                    "give the record's value as `value` (JSON) or `text`, one of them",
                ))
            }
        };
        let tenant = match who {
            Principal::Admin => {
                // Known before writing: librdkafka would wait for a missing topic until its
                // message timeout.
                self.admin.describe_topic(topic).await?;
                let mut headers = streamlake_kafka::Headers::new();
                for (name, value) in &req.headers {
                    headers.push(name.clone(), value.as_bytes());
                }
                let receipt = self
                    .producer
                    .send(
                        topic,
                        req.key.as_deref().map(str::as_bytes),
                        &bytes,
                        &headers,
                    )
                    .await
                    .map_err(|e| {
                        let kind = if matches!(e, streamlake_kafka::ProduceError::Kafka(_)) {
                            ErrorKind::BadRequest
                        } else {
                            ErrorKind::Unavailable
                        };
                        OpsError::new(kind, format!("the record was not written to {topic}: {e}"))
                    })?;
                return Ok(Produced {
                    status: "written",
                    topic: receipt.topic,
                    partition: receipt.partition,
                    offset: receipt.offset,
                    ingestion_id: None,
                    reason: None,
                });
            }
            Principal::Tenant(t) => t,
        };
        if req.key.is_some() || !req.headers.is_empty() {
            return Err(bad("a tenant's event is keyed and given its headers as ingestion does: leave out key and headers"));
        }
        let dataset = self.config.tenants[tenant]
            .datasets
            .values()
            .find(|d| d.raw_topic == topic)
            .map(|d| d.id.clone())
            .ok_or_else(|| {
                OpsError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "a tenant writes only to its datasets' raw topics; \"{topic}\" is not one"
                    ),
                )
            })?;
        let ingested = self
            .ingestor
            .ingest_with_headers(
                tenant,
                &dataset,
                bytes,
                "streamlake-console",
                streamlake_ingest::Ingestor::new_ingestion_id(),
                &[],
            )
            .await
            .map_err(|e| OpsError::new(ErrorKind::NotFound, e.to_string()))?;
        match ingested {
            streamlake_ingest::Ingested::Accepted {
                ingestion_id,
                receipt,
            } => Ok(Produced {
                status: "written",
                topic: receipt.topic,
                partition: receipt.partition,
                offset: receipt.offset,
                ingestion_id: Some(ingestion_id),
                reason: None,
            }),
            streamlake_ingest::Ingested::DeadLettered {
                ingestion_id,
                reason,
                path,
                rule,
                dead_letter,
            } => Ok(Produced {
                status: "dead_lettered",
                topic: dead_letter.topic,
                partition: dead_letter.partition,
                offset: dead_letter.offset,
                ingestion_id: Some(ingestion_id),
                reason: Some(format!("{reason} (path \"{path}\", rule {rule})")),
            }),
            streamlake_ingest::Ingested::Failed { error, .. } => Err(OpsError::new(
                ErrorKind::Unavailable,
                format!("the broker did not acknowledge the event: {error}"),
            )),
        }
    }

    /// How a topic's records spread over partitions and keys (`sample` records read).
    pub async fn distribution(
        &self,
        who: &Principal,
        topic: &str,
        sample: u64,
    ) -> OpsResult<streamlake_kafka::Distribution> {
        self.check_topic(who, topic)?;
        if !(1..=MAX_DISTRIBUTION_SAMPLE).contains(&sample) {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("sample {sample} is out of range: 1 to {MAX_DISTRIBUTION_SAMPLE} records"),
            ));
        }
        Ok(streamlake_kafka::distribution(&self.settings, topic, sample, 10).await?)
    }
}
