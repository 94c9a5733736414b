//! `lab partitioning`: N keyed messages, then where each key landed (read back from the topic),
//! the count per partition, and whether every key stayed in one partition; the same N messages
//! without a key, for comparison.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use streamlake_kafka::{read_ranges, Headers, Producer};

use crate::{Lab, LabError};

/// What to run.
#[derive(Debug, Clone)]
pub struct PartitioningOptions {
    /// Messages of each kind (keyed, keyless).
    pub messages: usize,
    /// The keys, used in turn.
    pub keys: Vec<String>,
    /// Partitions of the lab's topics.
    pub partitions: i32,
}

impl Default for PartitioningOptions {
    fn default() -> Self {
        Self {
            messages: 30,
            keys: (100..110).map(|i| format!("order-{i}")).collect(),
            partitions: 3,
        }
    }
}

/// Parses `order-100..order-109` (a numeric range with a shared prefix) or `a,b,c`.
pub fn parse_keys(spec: &str) -> Result<Vec<String>, String> {
    if let Some((from, to)) = spec.split_once("..") {
        let split = |s: &str| {
            let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let (prefix, number) = s.split_at(s.len() - digits);
            number
                .parse::<u64>()
                .map(|n| (prefix.to_owned(), n, digits))
                .map_err(|_| format!("\"{s}\" does not end in a number"))
        };
        let (p1, a, width) = split(from)?;
        let (p2, b, _) = split(to)?;
        if p1 != p2 {
            return Err(format!("\"{from}\" and \"{to}\" have different prefixes"));
        }
        if b < a || b - a >= 10_000 {
            return Err(format!(
                "{spec}: give a range of 1 to 10000 keys, low to high"
            ));
        }
        return Ok((a..=b).map(|n| format!("{p1}{n:0width$}")).collect());
    }
    let keys: Vec<String> = spec
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err("no keys given".to_owned());
    }
    Ok(keys)
}

/// Where one key's messages landed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyPlacement {
    /// The key.
    pub key: String,
    /// Partitions its messages were read from (one, when keying works).
    pub partitions: Vec<i32>,
    /// Offsets of its messages, in order.
    pub offsets: Vec<i64>,
}

/// Messages per partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionCount {
    /// Partition.
    pub partition: i32,
    /// Keyed messages in it.
    pub keyed: usize,
    /// Keyless messages in it (the keyless topic's same partition).
    pub keyless: usize,
}

/// The lab's result.
#[derive(Debug, Clone, Serialize)]
pub struct PartitioningReport {
    /// Topic of the keyed messages.
    pub topic: String,
    /// Topic of the keyless messages.
    pub keyless_topic: String,
    /// Partitions of each.
    pub partitions: i32,
    /// Keyed messages produced.
    pub produced: usize,
    /// Keyed messages read back.
    pub read_back: usize,
    /// Per key.
    pub keys: Vec<KeyPlacement>,
    /// Per partition.
    pub per_partition: Vec<PartitionCount>,
    /// Whether every key's messages are in exactly one partition.
    pub same_key_same_partition: bool,
    /// Whether the receipts agree with what was read back.
    pub receipts_match: bool,
    /// What was done with the topics.
    pub clean_up: String,
}

/// Runs the lab.
pub async fn run(
    lab: &mut Lab,
    opts: &PartitioningOptions,
) -> Result<PartitioningReport, LabError> {
    if opts.keys.is_empty() || opts.messages == 0 || opts.partitions < 1 {
        return Err(LabError::Other(
            "give at least one key, one message and one partition".to_owned(),
        ));
    }
    let topic = lab.topic("keyed", opts.partitions).await?;
    let keyless_topic = lab.topic("keyless", opts.partitions).await?;
    let producer = Producer::new(&lab.settings)?.with_deadline(Duration::from_secs(30));
    let headers = Headers::new().with("lab", "partitioning");

    let sends = (0..opts.messages).map(|i| {
        let key = opts.keys[i % opts.keys.len()].clone();
        let (producer, topic, headers) = (&producer, &topic, &headers);
        async move {
            let payload = format!(r#"{{"n":{i},"key":"{key}"}}"#);
            producer
                .send(topic, Some(key.as_bytes()), payload.as_bytes(), headers)
                .await
                .map(|r| (key, r))
        }
    });
    let receipts = futures::future::try_join_all(sends).await?;
    let keyless = (0..opts.messages).map(|i| {
        let (producer, topic, headers) = (&producer, &keyless_topic, &headers);
        async move {
            let payload = format!(r#"{{"n":{i}}}"#);
            producer
                .send(topic, None, payload.as_bytes(), headers)
                .await
        }
    });
    let keyless_receipts = futures::future::try_join_all(keyless).await?;

    let info = lab.admin.describe_topic(&topic).await?;
    let ranges = info.ranges();
    let mut records = read_ranges(&lab.settings, &topic, ranges, Duration::from_secs(10)).await?;
    records.sort_by_key(|r| (r.partition, r.offset));

    let mut by_key: BTreeMap<String, KeyPlacement> = BTreeMap::new();
    let mut keyed_counts: BTreeMap<i32, usize> = BTreeMap::new();
    for r in &records {
        let key = r.key_str().unwrap_or("").to_owned();
        let e = by_key.entry(key.clone()).or_insert(KeyPlacement {
            key,
            partitions: Vec::new(),
            offsets: Vec::new(),
        });
        if !e.partitions.contains(&r.partition) {
            e.partitions.push(r.partition);
        }
        e.offsets.push(r.offset);
        *keyed_counts.entry(r.partition).or_default() += 1;
    }
    let receipts_match = receipts.iter().all(|(key, receipt)| {
        records.iter().any(|r| {
            r.partition == receipt.partition
                && r.offset == receipt.offset
                && r.key_str() == Some(key.as_str())
        })
    });
    let mut keyless_counts: BTreeMap<i32, usize> = BTreeMap::new();
    for r in &keyless_receipts {
        *keyless_counts.entry(r.partition).or_default() += 1;
    }
    let mut keys: Vec<KeyPlacement> = by_key.into_values().collect();
    // Keys in the order given.
    keys.sort_by_key(|k| opts.keys.iter().position(|o| o == &k.key));
    Ok(PartitioningReport {
        same_key_same_partition: keys.iter().all(|k| k.partitions.len() == 1),
        read_back: records.len(),
        produced: receipts.len(),
        per_partition: (0..opts.partitions)
            .map(|p| PartitionCount {
                partition: p,
                keyed: keyed_counts.get(&p).copied().unwrap_or(0),
                keyless: keyless_counts.get(&p).copied().unwrap_or(0),
            })
            .collect(),
        keys,
        receipts_match,
        partitions: opts.partitions,
        clean_up: lab.clean_up().await,
        topic,
        keyless_topic,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_keys;

    #[test]
    fn key_ranges_and_lists_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_keys("order-100..order-102").unwrap(),
            ["order-100", "order-101", "order-102"]
        );
        assert_eq!(parse_keys("k007..k009").unwrap(), ["k007", "k008", "k009"]);
        assert_eq!(parse_keys("a, b,c").unwrap(), ["a", "b", "c"]);
        assert!(parse_keys("a-1..b-2")
            .unwrap_err()
            .contains("different prefixes"));
        assert!(parse_keys("x..y")
            .unwrap_err()
            .contains("does not end in a number"));
        assert!(parse_keys("k9..k1").unwrap_err().contains("low to high"));
        assert!(parse_keys(" , ").is_err());
    }
}
