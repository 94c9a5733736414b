//! Following topics from their beginning for as long as the process runs, without a group:
//! the way a process keeps a compacted topic's content in memory (a table in a log) and
//! learns of what other instances append to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::AdminError;
use crate::record::Record;
use crate::settings::KafkaSettings;

/// Per topic and partition, the next offset the tail will deliver.
type Positions = HashMap<(String, i32), i64>;

/// A thread that reads `topics` from their first record on and hands every record to a
/// callback, in each partition's order. Stops when dropped.
pub struct Tail {
    consumer: Arc<BaseConsumer>,
    positions: Arc<Mutex<Positions>>,
    moved: tokio::sync::watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("positions", &self.positions)
            .finish()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Tail {
    /// Assigns every partition of `topics` (which must exist) from its beginning and starts
    /// delivering their records to `apply`, on a thread of its own.
    pub async fn start(
        settings: &KafkaSettings,
        topics: Vec<String>,
        apply: impl FnMut(Record) + Send + 'static,
    ) -> Result<Self, AdminError> {
        let settings = settings.clone();
        let consumer = tokio::task::spawn_blocking(move || assign(&settings, &topics))
            .await
            .map_err(|e| AdminError::Invalid(format!("following topics: {e}")))??;
        let positions = Arc::new(Mutex::new(Positions::new()));
        let (moved_tx, moved) = tokio::sync::watch::channel(0u64);
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = Arc::new(consumer);
        let follow = Follow {
            consumer: Arc::clone(&consumer),
            positions: Arc::clone(&positions),
            moved: moved_tx,
            stop: Arc::clone(&stop),
        };
        std::thread::Builder::new()
            .name("streamlake-tail".to_owned())
            .spawn(move || follow.run(apply))
            .map_err(|e| AdminError::Invalid(format!("starting the tail thread: {e}")))?;
        Ok(Self {
            consumer,
            positions,
            moved,
            stop,
        })
    }

    /// Whether the record at `offset` of `topic`'s `partition` (or a later one) was handed to
    /// the callback.
    pub fn passed(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic.to_owned(), partition))
            .is_some_and(|next| *next > offset)
    }

    /// Waits until the record at `offset` was handed to the callback (its `apply` returned),
    /// for at most `timeout`; returns whether it was.
    pub async fn reach(&self, topic: &str, partition: i32, offset: i64, timeout: Duration) -> bool {
        let mut moved = self.moved.clone();
        let wait = async {
            loop {
                if self.passed(topic, partition, offset) {
                    return true;
                }
                if moved.changed().await.is_err() {
                    return self.passed(topic, partition, offset);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Waits until every record appended to `topic`'s `partition` before this call was handed
    /// to the callback, for at most `timeout`; returns whether they were. What another process
    /// wrote and was acknowledged for is then known here.
    pub async fn catch_up(&self, topic: &str, partition: i32, timeout: Duration) -> bool {
        let consumer = Arc::clone(&self.consumer);
        let owned = topic.to_owned();
        let high = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&owned, partition, timeout)
        })
        .await;
        match high {
            Ok(Ok((_, 0))) => true,
            Ok(Ok((_, high))) => self.reach(topic, partition, high - 1, timeout).await,
            _ => false,
        }
    }
}

fn assign(settings: &KafkaSettings, topics: &[String]) -> Result<BaseConsumer, AdminError> {
    let fail = |context: String| move |source| AdminError::Kafka { context, source };
    let mut cfg = settings.consumer_config();
    cfg.set("group.id", "streamlake-tail")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer = cfg.create().map_err(fail("following".to_owned()))?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(fail(format!("reading the metadata of {topic}")))?;
        let partitions = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            return Err(AdminError::Invalid(format!(
                "topic {topic} does not exist; provisioning creates it"
            )));
        }
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(fail(format!("assigning {topic}")))?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(fail("assigning the followed topics".to_owned()))?;
    Ok(consumer)
}

struct Follow {
    consumer: Arc<BaseConsumer>,
    positions: Arc<Mutex<Positions>>,
    moved: tokio::sync::watch::Sender<u64>,
    stop: Arc<AtomicBool>,
}

impl Follow {
    fn run(self, mut apply: impl FnMut(Record)) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "following topics: read failed; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Some(Ok(m)) => {
                    let record = Record::from_message(&m);
                    let at = (record.topic.clone(), record.partition);
                    let next = record.offset + 1;
                    apply(record);
                    self.positions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(at, next);
                    self.moved.send_modify(|n| *n += 1);
                }
            }
        }
    }
}
