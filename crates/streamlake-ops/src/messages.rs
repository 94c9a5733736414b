//! Messages: bounded reads of a topic's records, and the key distribution of a topic.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use streamlake_kafka::{read_ranges, Record};

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
    /// Most records returned (default 20, at most `admin.max_messages`).
    pub limit: Option<usize>,
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
}

/// Most records a distribution reads for its key statistics.
pub const MAX_DISTRIBUTION_SAMPLE: u64 = 100_000;

impl Ops {
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
        if !(1..=MAX_DISTRIBUTION_SAMPLE).contains(&sample) {
            return Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("sample {sample} is out of range: 1 to {MAX_DISTRIBUTION_SAMPLE} records"),
            ));
        }
        Ok(streamlake_kafka::distribution(&self.settings, topic, sample, 10).await?)
    }
}
