//! `lab ordering`: several keys' sequence numbers produced concurrently, consumed back, and
//! checked: within a key the order holds (one partition, offsets in order); across keys it does
//! not (partitions are read interleaved). The checker names every violation with its key and
//! offsets, and the lab can inject one to show that it does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamlake_kafka::{read_ranges, Headers, Producer, Record};

use crate::{Lab, LabError};

/// What to run.
#[derive(Debug, Clone)]
pub struct OrderingOptions {
    /// Distinct keys.
    pub keys: usize,
    /// Messages per key.
    pub per_key: u64,
    /// Partitions of the lab's topic.
    pub partitions: i32,
    /// Write one key's sequence numbers 1 and 2 in the wrong order, to show the checker finds it.
    pub inject_out_of_order: bool,
}

impl Default for OrderingOptions {
    fn default() -> Self {
        Self {
            keys: 6,
            per_key: 50,
            partitions: 3,
            inject_out_of_order: false,
        }
    }
}

/// A message of the lab: its key's sequence number and its place in the global produce order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sequenced {
    /// The key.
    pub key: String,
    /// Sequence number within the key, from 0.
    pub seq: u64,
    /// Order in which it was handed to the producer, over every key.
    pub global: u64,
}

/// One record out of order within its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// Sequence number expected next.
    pub expected: u64,
    /// Sequence number read.
    pub got: u64,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Offset of the key's previous record.
    pub previous_offset: i64,
}

/// What the checker found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderCheck {
    /// Records checked.
    pub records: usize,
    /// Per key: out-of-order records (empty when order holds per key).
    pub per_key_violations: Vec<Violation>,
    /// Records read before one that was produced earlier (any key): across keys, the read order
    /// is not the produce order.
    pub cross_key_inversions: usize,
    /// The first such pair, as `(earlier produced, read later)` global positions.
    pub first_inversion: Option<(u64, u64)>,
    /// Keys whose records came from more than one partition.
    pub split_keys: Vec<String>,
}

/// Checks records in the order a consumer received them.
pub fn check(records: &[(Sequenced, i32, i64)]) -> OrderCheck {
    let mut out = OrderCheck {
        records: records.len(),
        ..OrderCheck::default()
    };
    let mut last: BTreeMap<&str, (u64, i64, i32)> = BTreeMap::new();
    let mut max_global: Option<u64> = None;
    for (m, partition, offset) in records {
        match last.get(m.key.as_str()) {
            None if m.seq != 0 => out.per_key_violations.push(Violation {
                key: m.key.clone(),
                expected: 0,
                got: m.seq,
                partition: *partition,
                offset: *offset,
                previous_offset: -1,
            }),
            Some((seq, prev_offset, prev_partition)) => {
                if m.seq != seq + 1 {
                    out.per_key_violations.push(Violation {
                        key: m.key.clone(),
                        expected: seq + 1,
                        got: m.seq,
                        partition: *partition,
                        offset: *offset,
                        previous_offset: *prev_offset,
                    });
                }
                if prev_partition != partition && !out.split_keys.contains(&m.key) {
                    out.split_keys.push(m.key.clone());
                }
            }
            None => {}
        }
        // The highest sequence number so far is what the next one must follow, so one record
        // written out of place is reported where it arrived early and where it arrived late,
        // not at every record after it.
        if last
            .get(m.key.as_str())
            .is_none_or(|(seq, _, _)| m.seq > *seq)
        {
            last.insert(&m.key, (m.seq, *offset, *partition));
        }
        if let Some(max) = max_global {
            if m.global < max {
                out.cross_key_inversions += 1;
                out.first_inversion.get_or_insert((m.global, max));
            }
        }
        max_global = Some(max_global.map_or(m.global, |g| g.max(m.global)));
    }
    out
}

/// The lab's result.
#[derive(Debug, Clone, Serialize)]
pub struct OrderingReport {
    /// Topic.
    pub topic: String,
    /// Keys.
    pub keys: usize,
    /// Messages per key.
    pub per_key: u64,
    /// Partition of each key.
    pub key_partitions: BTreeMap<String, i32>,
    /// Whether an out-of-order pair was written on purpose.
    pub injected: bool,
    /// What the checker found.
    pub check: OrderCheck,
    /// What was done with the topics.
    pub clean_up: String,
}

fn key_name(k: usize) -> String {
    format!("key-{k}")
}

/// Runs the lab.
pub async fn run(lab: &mut Lab, opts: &OrderingOptions) -> Result<OrderingReport, LabError> {
    if opts.keys == 0 || opts.per_key < 3 {
        return Err(LabError::Other(
            "give at least one key and three messages per key".to_owned(),
        ));
    }
    let topic = lab.topic("ordered", opts.partitions).await?;
    let producer = Producer::new(&lab.settings)?.with_deadline(Duration::from_secs(30));
    let global = AtomicU64::new(0);
    let send = |key: String, seq: u64| {
        let (producer, topic, global) = (&producer, &topic, &global);
        async move {
            let m = Sequenced {
                key,
                seq,
                global: global.fetch_add(1, AtomicOrdering::SeqCst),
            };
            let payload = serde_json::to_vec(&m).map_err(|e| LabError::Other(e.to_string()))?;
            producer
                .send(topic, Some(m.key.as_bytes()), &payload, &Headers::new())
                .await
                .map_err(LabError::from)
        }
    };
    // Every key's sequence at once; each key's records are handed over in sequence order.
    let per_key = (0..opts.keys).map(|k| {
        let send = &send;
        async move {
            let key = key_name(k);
            if opts.inject_out_of_order && k == 0 {
                // Sequence 2 is acknowledged before 1 is sent: written out of order.
                send(key.clone(), 0).await?;
                send(key.clone(), 2).await?;
                send(key.clone(), 1).await?;
                let rest = (3..opts.per_key).map(|s| send(key.clone(), s));
                futures::future::try_join_all(rest).await?;
            } else {
                let all = (0..opts.per_key).map(|s| send(key.clone(), s));
                futures::future::try_join_all(all).await?;
            }
            Ok::<_, LabError>(())
        }
    });
    futures::future::try_join_all(per_key).await?;

    let info = lab.admin.describe_topic(&topic).await?;
    let ranges = info.ranges();
    let records: Vec<Record> =
        read_ranges(&lab.settings, &topic, ranges, Duration::from_secs(10)).await?;
    let mut read = Vec::with_capacity(records.len());
    let mut key_partitions = BTreeMap::new();
    for r in &records {
        let m: Sequenced = r
            .json()
            .map_err(|e| LabError::Other(format!("record {}/{}: {e}", r.partition, r.offset)))?;
        key_partitions.insert(m.key.clone(), r.partition);
        read.push((m, r.partition, r.offset));
    }
    Ok(OrderingReport {
        topic,
        keys: opts.keys,
        per_key: opts.per_key,
        key_partitions,
        injected: opts.inject_out_of_order,
        check: check(&read),
        clean_up: lab.clean_up().await,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, seq: u64, global: u64, partition: i32, offset: i64) -> (Sequenced, i32, i64) {
        (
            Sequenced {
                key: key.to_owned(),
                seq,
                global,
            },
            partition,
            offset,
        )
    }

    #[test]
    fn in_order_per_key_with_interleaved_partitions_has_no_violation_but_inversions() {
        let read = [
            m("a", 0, 0, 0, 0),
            m("a", 1, 2, 0, 1),
            m("b", 0, 1, 1, 0),
            m("b", 1, 3, 1, 1),
        ];
        let c = check(&read);
        assert!(c.per_key_violations.is_empty());
        assert_eq!(c.cross_key_inversions, 1);
        assert_eq!(c.first_inversion, Some((1, 2)));
    }

    #[test]
    fn a_swapped_pair_is_named_with_its_key_and_offsets() {
        let read = [
            m("a", 0, 0, 2, 10),
            m("a", 2, 1, 2, 11),
            m("a", 1, 2, 2, 12),
        ];
        let c = check(&read);
        assert_eq!(
            c.per_key_violations[0],
            Violation {
                key: "a".into(),
                expected: 1,
                got: 2,
                partition: 2,
                offset: 11,
                previous_offset: 10
            }
        );
        assert_eq!(c.per_key_violations.len(), 2);
    }
}
