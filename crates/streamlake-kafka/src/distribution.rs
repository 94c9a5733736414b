//! How a topic's records spread over its partitions and keys: exact
//! counts per partition from the watermarks, and the keys of a sample read from the beginning,
//! with warnings for a constant key, too few distinct keys and a hot partition.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::admin::{Admin, AdminError};
use crate::settings::KafkaSettings;

/// One partition's share.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionShare {
    /// Partition id.
    pub partition: i32,
    /// Records in it (high - low watermark).
    pub records: i64,
}

/// A key seen in the sample.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCount {
    /// The key (lossy UTF-8).
    pub key: String,
    /// Records with it in the sample.
    pub records: u64,
    /// The partition it was seen in (the same for every record of a key with the default
    /// partitioner).
    pub partition: i32,
}

/// The distribution of a topic.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Topic.
    pub topic: String,
    /// Per partition.
    pub partitions: Vec<PartitionShare>,
    /// Largest partition over the mean (1.0 is perfectly even).
    pub skew: f64,
    /// Records read for the key statistics.
    pub sampled: u64,
    /// Records in the sample without a key.
    pub keyless: u64,
    /// Distinct keys in the sample.
    pub distinct_keys: u64,
    /// Most frequent keys, most first.
    pub top_keys: Vec<KeyCount>,
    /// What looks wrong, in words.
    pub warnings: Vec<String>,
}

/// Reads up to `sample` records of `topic` and computes its distribution.
pub async fn distribution(
    settings: &KafkaSettings,
    topic: &str,
    sample: u64,
    top: usize,
) -> Result<Distribution, AdminError> {
    let info = Admin::new(settings)?.describe_topic(topic).await?;
    let partitions: Vec<PartitionShare> = info
        .partitions
        .iter()
        .map(|p| PartitionShare {
            partition: p.id,
            records: (p.high - p.low).max(0),
        })
        .collect();
    let total: i64 = partitions.iter().map(|p| p.records).sum();
    let mean = total as f64 / partitions.len().max(1) as f64;
    let max = partitions.iter().map(|p| p.records).max().unwrap_or(0);
    let skew = if mean > 0.0 { max as f64 / mean } else { 1.0 };

    let ends: BTreeMap<i32, (i64, i64)> = info
        .partitions
        .iter()
        .filter(|p| p.high > p.low)
        .map(|p| (p.id, (p.low, p.high)))
        .collect();
    let settings = settings.clone();
    let name = topic.to_owned();
    let keys = tokio::task::spawn_blocking(move || sample_keys(&settings, &name, &ends, sample))
        .await
        .map_err(|e| AdminError::Invalid(format!("sampling {topic}: {e}")))??;
    let (sampled, keyless, counts) = keys;
    let mut top_keys: Vec<KeyCount> = counts
        .into_iter()
        .map(|(key, (records, partition))| KeyCount {
            key,
            records,
            partition,
        })
        .collect();
    top_keys.sort_by(|a, b| b.records.cmp(&a.records).then(a.key.cmp(&b.key)));
    let distinct_keys = top_keys.len() as u64;
    top_keys.truncate(top);

    let mut warnings = Vec::new();
    let keyed = sampled - keyless;
    if distinct_keys == 1 && keyed > 1 {
        warnings.push(format!(
            "constant key \"{}\": every keyed record goes to partition {}; the other partitions stay idle",
            top_keys[0].key, top_keys[0].partition
        ));
    } else if keyed > 0 && distinct_keys < partitions.len() as u64 {
        warnings.push(format!(
            "low key cardinality: {distinct_keys} distinct keys for {} partitions; some partitions get nothing",
            partitions.len()
        ));
    }
    if total > 0 && skew > 2.0 {
        let hot = partitions
            .iter()
            .max_by_key(|p| p.records)
            .map_or(0, |p| p.partition);
        warnings.push(format!(
            "hot partition {hot}: {skew:.1}x the mean; its consumer limits the group"
        ));
    }
    Ok(Distribution {
        topic: topic.to_owned(),
        partitions,
        skew,
        sampled,
        keyless,
        distinct_keys,
        top_keys,
        warnings,
    })
}

type Sample = (u64, u64, BTreeMap<String, (u64, i32)>);

fn sample_keys(
    settings: &KafkaSettings,
    topic: &str,
    ends: &BTreeMap<i32, (i64, i64)>,
    sample: u64,
) -> Result<Sample, AdminError> {
    let fail = |context: &str| {
        let context = format!("{context} {topic}");
        move |source| AdminError::Kafka { context, source }
    };
    let mut cfg = settings.consumer_config();
    cfg.set("group.id", "streamlake-distribution")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().map_err(fail("reading"))?;
    let mut tpl = TopicPartitionList::new();
    for (p, (low, _)) in ends {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*low))
            .map_err(fail("assigning"))?;
    }
    consumer.assign(&tpl).map_err(fail("assigning"))?;
    let mut remaining: BTreeMap<i32, i64> = ends.iter().map(|(p, (_, high))| (*p, *high)).collect();
    let (mut sampled, mut keyless) = (0u64, 0u64);
    let mut counts: BTreeMap<String, (u64, i32)> = BTreeMap::new();
    let mut idle = 0;
    while sampled < sample && !remaining.is_empty() && idle < 20 {
        match consumer.poll(Duration::from_millis(250)) {
            None => idle += 1,
            Some(Err(e)) => return Err(fail("reading")(e)),
            Some(Ok(m)) => {
                idle = 0;
                sampled += 1;
                match m.key() {
                    None => keyless += 1,
                    Some(k) => {
                        let e = counts
                            .entry(String::from_utf8_lossy(k).into_owned())
                            .or_insert((0, m.partition()));
                        e.0 += 1;
                    }
                }
                if remaining
                    .get(&m.partition())
                    .is_some_and(|high| m.offset() + 1 >= *high)
                {
                    remaining.remove(&m.partition());
                }
            }
        }
    }
    Ok((sampled, keyless, counts))
}
