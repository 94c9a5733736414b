//! Reading a bounded range of records without joining a group or committing anything: the
//! message browser, the dead-letter inspector and the labs read through here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::AdminError;
use crate::record::Record;
use crate::settings::KafkaSettings;

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
    let ranges: BTreeMap<i32, (i64, i64)> =
        ranges.into_iter().filter(|(_, (s, e))| e > s).collect();
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let settings = settings.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&settings, &topic, &ranges, idle))
        .await
        .map_err(|e| AdminError::Invalid(format!("reading records: {e}")))?
}

fn read_blocking(
    settings: &KafkaSettings,
    topic: &str,
    ranges: &BTreeMap<i32, (i64, i64)>,
    idle: Duration,
) -> Result<Vec<Record>, AdminError> {
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
    let mut open: BTreeMap<i32, i64> = ranges.iter().map(|(p, (_, end))| (*p, *end)).collect();
    let mut records = Vec::new();
    let mut last = Instant::now();
    while !open.is_empty() && last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => return Err(fail("reading")(e)),
            Some(Ok(m)) => {
                last = Instant::now();
                let record = Record::from_message(&m);
                let Some(end) = open.get(&record.partition).copied() else {
                    continue;
                };
                if record.offset + 1 >= end {
                    open.remove(&record.partition);
                    let mut done = TopicPartitionList::new();
                    done.add_partition(topic, record.partition);
                    // Stop fetching what is no longer wanted; failure only costs bandwidth.
                    let _ = consumer.incremental_unassign(&done);
                }
                if record.offset < end {
                    records.push(record);
                }
            }
        }
    }
    Ok(records)
}
