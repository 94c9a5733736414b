//! Reading a bounded range of records without joining a group or committing anything: the
//! message browser, the dead-letter inspector and the labs read through here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::AdminError;
use crate::record::Record;
use crate::settings::KafkaSettings;

/// Receives the records of a [`visit_ranges`] read one at a time, keeping what it needs: a read
/// through a visitor holds no more in memory than the visitor does.
pub trait RecordVisitor: Send + 'static {
    /// One record, in the order the consumer received them (each partition in offset order).
    fn visit(&mut self, record: Record);

    /// Whether the visitor wants no more records: the read stops after the record that made it
    /// so, and its coverage says, per partition, the offset to continue from.
    fn satisfied(&self) -> bool {
        false
    }
}

impl RecordVisitor for Vec<Record> {
    fn visit(&mut self, record: Record) {
        self.push(record);
    }
}

/// How much of the asked ranges a read covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Per partition not read to its end: the offsets `next..end` not reached.
    pub unread: BTreeMap<i32, (i64, i64)>,
}

impl Coverage {
    /// Whether every asked record was reached (or was missing from the log).
    pub fn complete(&self) -> bool {
        self.unread.is_empty()
    }

    /// Records asked for and not reached.
    pub fn unread_records(&self) -> i64 {
        self.unread.values().map(|(next, end)| end - next).sum()
    }
}

/// Reads, for each partition in `ranges`, the records at offsets `start..end` (end exclusive;
/// normally a high watermark), by direct assignment. Returns them in the order the consumer
/// received them: each partition's records in offset order, partitions interleaved as fetches
/// arrived. Offsets missing from the log (compacted, deleted) are skipped; the read gives up
/// when nothing arrives for `idle` and returns what it has.
pub async fn read_ranges(
    settings: &KafkaSettings,
    topic: &str,
    ranges: BTreeMap<i32, (i64, i64)>,
    idle: Duration,
) -> Result<Vec<Record>, AdminError> {
    visit_ranges(settings, topic, ranges, idle, Vec::new())
        .await
        .map(|(records, _)| records)
}

/// [`read_ranges`] through `visitor`, which sees each record once and keeps what it needs;
/// returns it with what the read covered. When nothing arrives for `idle` the read stops, and
/// the coverage says which offsets it did not reach: a caller can tell a complete answer from
/// a partial one. A visitor that is [`RecordVisitor::satisfied`] stops the read early; the
/// coverage is then where to continue.
pub async fn visit_ranges<V: RecordVisitor>(
    settings: &KafkaSettings,
    topic: &str,
    ranges: BTreeMap<i32, (i64, i64)>,
    idle: Duration,
    visitor: V,
) -> Result<(V, Coverage), AdminError> {
    let ranges: BTreeMap<i32, (i64, i64)> =
        ranges.into_iter().filter(|(_, (s, e))| e > s).collect();
    if ranges.is_empty() {
        return Ok((visitor, Coverage::default()));
    }
    let settings = settings.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&settings, &topic, &ranges, idle, visitor))
        .await
        .map_err(|e| AdminError::Invalid(format!("reading records: {e}")))?
}

fn read_blocking<V: RecordVisitor>(
    settings: &KafkaSettings,
    topic: &str,
    ranges: &BTreeMap<i32, (i64, i64)>,
    idle: Duration,
    mut visitor: V,
) -> Result<(V, Coverage), AdminError> {
    let fail = |context: &str| {
        let context = format!("{context} {topic}");
        move |source| AdminError::Kafka { context, source }
    };
    let mut cfg = settings.consumer_config();
    cfg.set("group.id", "streamlake-browse")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer = cfg.create().map_err(fail("reading"))?;
    let mut tpl = TopicPartitionList::new();
    for (p, (start, _)) in ranges {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*start))
            .map_err(fail("assigning"))?;
    }
    consumer
        .incremental_assign(&tpl)
        .map_err(fail("assigning"))?;
    // Per partition still open: the next offset wanted and the end.
    let mut open: BTreeMap<i32, (i64, i64)> = ranges.clone();
    let mut last = Instant::now();
    while !open.is_empty() && last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => return Err(fail("reading")(e)),
            Some(Ok(m)) => {
                last = Instant::now();
                let record = Record::from_message(&m);
                let Some((_, end)) = open.get(&record.partition).copied() else {
                    continue;
                };
                if record.offset + 1 >= end {
                    open.remove(&record.partition);
                    let mut done = TopicPartitionList::new();
                    done.add_partition(topic, record.partition);
                    // Stop fetching what is no longer wanted; failure only costs bandwidth.
                    let _ = consumer.incremental_unassign(&done);
                } else if let Some(range) = open.get_mut(&record.partition) {
                    range.0 = record.offset + 1;
                }
                if record.offset < end {
                    visitor.visit(record);
                    if visitor.satisfied() {
                        break;
                    }
                }
            }
        }
    }
    Ok((visitor, Coverage { unread: open }))
}

/// How long a consumer group's oldest unread record of each partition has waited, in
/// milliseconds: for every partition of `lag` with records left to read, now minus the
/// timestamp of the record at the group's committed offset (or at the log start, without a
/// commit or when retention removed it). Offset lag says how many records are waiting; this
/// says since when. One record per partition is read; a partition whose record does not arrive
/// within a few seconds is left out.
pub async fn oldest_unread(
    settings: &KafkaSettings,
    lag: &crate::admin::GroupLag,
) -> Result<BTreeMap<(String, i32), i64>, AdminError> {
    let mut by_topic: BTreeMap<&str, BTreeMap<i32, (i64, i64)>> = BTreeMap::new();
    for p in lag.partitions.iter().filter(|p| p.lag > 0) {
        let at = p.committed.unwrap_or(p.low).max(p.low);
        by_topic
            .entry(p.topic.as_str())
            .or_default()
            .insert(p.partition, (at, at + 1));
    }
    let mut oldest = BTreeMap::new();
    for (topic, ranges) in by_topic {
        let (records, _) =
            visit_ranges(settings, topic, ranges, Duration::from_secs(5), Vec::new()).await?;
        for r in records {
            if let Some(ts) = r.timestamp_ms {
                oldest.insert((r.topic.clone(), r.partition), ts);
            }
        }
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(oldest
        .into_iter()
        .map(|(at, ts)| (at, (now_ms - ts).max(0)))
        .collect())
}
