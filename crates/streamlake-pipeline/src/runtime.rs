//! The consumer-group runtime of processors (reliability rules 2 and 3 in docs/ARCHITECTURE.md):
//! a batch is read and every record's outputs and dead letters are queued to the producer; the
//! next batch is read while they are on their way. A batch's offsets are stored (at-least-once)
//! or committed (exactly once) only after every acknowledgement up to it has come. A failed
//! produce fails the run: the runner stops without storing, and [`supervise`] starts it again
//! from the last stored offsets, so nothing is lost. Exactly once (the default): the outputs,
//! dead letters and offsets of the batches of a commit interval are one Kafka transaction, so
//! a batch read again after a crash left nothing visible the first time. At-least-once:
//! duplicates are possible, and sinks deduplicate on `ingestion_id`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlake_kafka::{
    BatchHandler, ConsumerGroupMetadata, ConsumerOptions, ConsumerRunner, Deliveries, HandlerError,
    Headers, KafkaSettings, Outgoing, ProduceError, Producer, Record, RunStats, TopicPartitionList,
};
use tokio_util::sync::CancellationToken;

use crate::processor::{Outcome, Processor};
use streamlake_core::RetryPolicy;

/// Counters of a processor, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Records read.
    pub records_in: AtomicU64,
    /// Records written to output topics.
    pub emitted: AtomicU64,
    /// Records written to dead-letter topics.
    pub dead_lettered: AtomicU64,
    /// Records skipped on purpose.
    pub skipped: AtomicU64,
    /// Transactions committed (exactly once).
    pub commits: AtomicU64,
    /// Time spent committing them, in microseconds: the offsets sent to the group and the
    /// commit itself, until the broker answered (their outputs are visible from then on).
    pub commit_micros: AtomicU64,
    /// The longest commit so far, in microseconds.
    pub commit_max_micros: AtomicU64,
}

impl ProcessorStats {
    /// (in, emitted, dead-lettered, skipped) now.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.records_in.load(Ordering::Relaxed),
            self.emitted.load(Ordering::Relaxed),
            self.dead_lettered.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }
}

/// Adapts a [`Processor`] to the consumer runner: queue everything a batch yields, and let the
/// runner store the offsets once every acknowledgement has come (at-least-once); or, with a
/// transactional producer, write the outputs and the batches' offsets in one transaction
/// (exactly once).
#[derive(Debug)]
pub struct ProcessorHandler<P> {
    processor: P,
    producer: Producer,
    transactional: bool,
    /// What was written since the last checkpoint (exactly once: the open transaction).
    open: Option<Unsettled>,
    /// The group reassigned partitions while a transaction was open: abort it before the next
    /// batch (its inputs are read again from the committed offsets).
    abort_open: bool,
    /// Exactly once: the longest a transaction stays open, gathering batches, before it is
    /// committed (sooner when commits are quick: [`COMMIT_SHARE`]). At-least-once: how long
    /// the handler reads on before it waits for the acknowledgements still to come.
    commit_interval: Duration,
    /// Exactly once: how long recent commits took (a moving average), once one was made.
    commit_cost: Option<Duration>,
    stats: Arc<ProcessorStats>,
}

/// The longest a transaction stays open, gathering batches, before it is committed unless
/// configured: the longest a processed record waits to become visible. Fewer commits per
/// second cost less (Kafka Streams' exactly-once default is the same 100 ms).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// A transaction commits once it has been open this many times as long as recent commits
/// took, if that comes before the commit interval: committing then takes at most about a
/// tenth of the processor's time. Where a commit takes 2 ms a transaction is due after 20 ms;
/// on a busy machine commits grow slower, and rarer, up to the interval.
pub const COMMIT_SHARE: u32 = 10;

/// Records the handler may have queued without their acknowledgements before the next batch
/// waits for some (well below the producer's local queue of 100,000).
const MAX_UNACKNOWLEDGED: usize = 20_000;

/// What the handler wrote since its last checkpoint (exactly once: the transaction in
/// progress), and what it awaits before the batches count as done.
struct Unsettled {
    since: Instant,
    /// Exactly once: the next offset to read per input partition, committed with the
    /// transaction (at-least-once: the runner keeps them).
    offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Exactly once: the member's group metadata for the offset commit.
    group: Option<ConsumerGroupMetadata>,
    records: usize,
    counts: Counts,
    /// The acknowledgements of the records queued, collected before the checkpoint.
    deliveries: Deliveries,
}

impl Unsettled {
    fn new(group: Option<ConsumerGroupMetadata>) -> Self {
        Self {
            since: Instant::now(),
            offsets: BTreeMap::new(),
            group,
            records: 0,
            counts: Counts::default(),
            deliveries: Deliveries::default(),
        }
    }
}

impl std::fmt::Debug for Unsettled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsettled")
            .field("records", &self.records)
            .field("topics", &self.offsets.len())
            .field("unacknowledged", &self.deliveries.len())
            .finish_non_exhaustive()
    }
}

impl<P: Processor> ProcessorHandler<P> {
    /// A handler producing with `producer`; offsets are stored after the acknowledgements.
    pub fn new(processor: P, producer: Producer, stats: Arc<ProcessorStats>) -> Self {
        Self {
            processor,
            producer,
            transactional: false,
            open: None,
            abort_open: false,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            commit_cost: None,
            stats,
        }
    }

    /// Commits each transaction once it has been open `interval` at the latest (at-least-once:
    /// waits for the acknowledgements still to come after `interval`), instead of
    /// [`DEFAULT_COMMIT_INTERVAL`].
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// A handler writing each batch in a transaction of `producer` (made with
    /// [`Producer::transactional`]), the batch's offsets committed in it.
    pub fn transactional(processor: P, producer: Producer, stats: Arc<ProcessorStats>) -> Self {
        Self {
            transactional: true,
            ..Self::new(processor, producer, stats)
        }
    }

    /// How long the open transaction gathers batches (at-least-once: how long the handler
    /// reads on): [`COMMIT_SHARE`] times what recent commits took, at most the interval.
    fn commit_after(&self) -> Duration {
        match self.commit_cost {
            Some(cost) if self.transactional => (cost * COMMIT_SHARE).min(self.commit_interval),
            _ => self.commit_interval,
        }
    }

    /// Notes how long a commit took.
    fn committed_in(&mut self, took: Duration) {
        // Weighted toward the past, so one slow commit does not double the next wait.
        self.commit_cost = Some(self.commit_cost.map_or(took, |cost| (cost * 3 + took) / 4));
    }

    /// What the processor decides for each record of `batch`, as records to send.
    fn decide(&mut self, batch: &[Record]) -> (Vec<Send>, Counts) {
        let mut sends = Vec::with_capacity(batch.len());
        let mut counts = Counts::default();
        for record in batch {
            match self.processor.process(record) {
                Outcome::Emit(outputs) => {
                    counts.emitted += outputs.len() as u64;
                    sends.extend(outputs.into_iter().map(|o| Send {
                        topic: o.topic,
                        key: o.key,
                        payload: o.payload,
                        headers: o.headers,
                    }));
                }
                Outcome::DeadLetter { topic, letter } => {
                    counts.dead += 1;
                    tracing::warn!(
                        processor = self.processor.name(), dlq = %topic,
                        source_topic = %record.topic, partition = record.partition, offset = record.offset,
                        reason = %letter.reason, path = %letter.path, rule = %letter.rule,
                        "record dead-lettered"
                    );
                    let mut headers = original_headers(record);
                    for (k, v) in letter.headers() {
                        headers.push(k, v);
                    }
                    sends.push(Send {
                        topic,
                        key: record.key.clone(),
                        payload: record.payload.clone().unwrap_or_default(),
                        headers,
                    });
                }
                Outcome::Skip => counts.skipped += 1,
            }
        }
        (sends, counts)
    }

    fn count(&self, records: usize, counts: Counts) {
        self.stats
            .records_in
            .fetch_add(records as u64, Ordering::Relaxed);
        self.stats
            .emitted
            .fetch_add(counts.emitted, Ordering::Relaxed);
        self.stats
            .dead_lettered
            .fetch_add(counts.dead, Ordering::Relaxed);
        self.stats
            .skipped
            .fetch_add(counts.skipped, Ordering::Relaxed);
    }
}

/// What a batch became.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    emitted: u64,
    dead: u64,
    skipped: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.emitted += other.emitted;
        self.dead += other.dead;
        self.skipped += other.skipped;
    }
}

/// One record to produce, owned so the sends can run concurrently.
struct Send {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Headers,
}

/// Queues every record without waiting; their reports join `deliveries`. Collects the reports
/// already in, so a failure surfaces at the next batch rather than at the checkpoint, and waits
/// for some when too many are outstanding.
async fn queue(
    producer: &Producer,
    sends: &[Send],
    deliveries: &mut Deliveries,
) -> Result<(), ProduceError> {
    for s in sends {
        let record = Outgoing {
            key: s.key.as_deref(),
            payload: &s.payload,
            headers: (!s.headers.0.is_empty()).then(|| s.headers.to_owned_headers()),
        };
        producer.queue(&s.topic, record, deliveries)?;
    }
    deliveries.collect_ready()?;
    if deliveries.len() > MAX_UNACKNOWLEDGED {
        deliveries.wait_until(MAX_UNACKNOWLEDGED / 2).await?;
    }
    Ok(())
}

/// `offsets` (the next offset to read per topic and partition) as a partition list.
fn partition_list(
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> Result<TopicPartitionList, HandlerError> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.values().map(BTreeMap::len).sum());
    for (topic, partitions) in offsets {
        for (partition, offset) in partitions {
            tpl.add_partition_offset(topic, *partition, streamlake_kafka::Offset::Offset(*offset))?;
        }
    }
    Ok(tpl)
}

impl<P: Processor> ProcessorHandler<P> {
    async fn abort(&mut self) {
        if self.open.take().is_some() && self.transactional {
            if let Err(e) = self.producer.abort_transaction().await {
                tracing::warn!(processor = self.processor.name(), error = %e, "aborting the transaction failed; the broker aborts it when it times out");
            }
        }
    }

    /// Queues what `batch` yields into the unsettled writes (exactly once: the open
    /// transaction, begun with `group` when none is open).
    async fn write(
        &mut self,
        batch: &[Record],
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<(), HandlerError> {
        let (sends, counts) = self.decide(batch);
        if self.open.is_none() && self.transactional {
            self.producer.begin_transaction()?;
        }
        let open = self.open.get_or_insert_with(|| Unsettled::new(group));
        if let Err(e) = queue(&self.producer, &sends, &mut open.deliveries).await {
            tracing::warn!(processor = self.processor.name(), error = %e, possibly_persisted = e.possibly_persisted(),
                "produce failed; what was written since the last checkpoint will be read again");
            self.abort().await;
            return Err(Box::new(e));
        }
        if self.transactional {
            for r in batch {
                // The topic's name is copied once per transaction, not once per record.
                if !open.offsets.contains_key(&r.topic) {
                    open.offsets.insert(r.topic.clone(), BTreeMap::new());
                }
                let partitions = open.offsets.get_mut(&r.topic).expect("inserted above");
                let next = partitions.entry(r.partition).or_insert(0);
                *next = (*next).max(r.offset + 1);
            }
        }
        open.records += batch.len();
        open.counts += counts;
        Ok(())
    }
}

impl<P: Processor> BatchHandler for ProcessorHandler<P> {
    async fn handle(&mut self, batch: &[Record]) -> Result<(), HandlerError> {
        self.write(batch, None).await
    }

    fn commits_offsets(&self) -> bool {
        self.transactional
    }

    fn assigned(&mut self) {
        if self.open.is_some() && self.transactional {
            self.abort_open = true;
        }
    }

    async fn handle_in_group(
        &mut self,
        batch: &[Record],
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<(), HandlerError> {
        if std::mem::take(&mut self.abort_open) {
            self.abort().await;
        }
        let group = group.ok_or("the consumer has no group membership yet")?;
        self.write(batch, Some(group)).await
    }

    async fn checkpoint(&mut self, closing: bool) -> Result<bool, HandlerError> {
        let after = self.commit_after();
        let Some(open) = &mut self.open else {
            return Ok(true);
        };
        if !closing && open.since.elapsed() < after {
            // At-least-once, the offsets may be stored as soon as everything is acknowledged;
            // a transaction gathers batches until it is due (`commit_after`).
            if self.transactional {
                return Ok(false);
            }
            if let Err(e) = open.deliveries.collect_ready() {
                tracing::warn!(processor = self.processor.name(), error = %e,
                    "produce failed; what was written since the last checkpoint will be read again");
                self.open = None;
                return Err(Box::new(e));
            }
            if !open.deliveries.is_empty() {
                return Ok(false);
            }
        }
        let mut open = self.open.take().expect("checked above");
        // Every acknowledgement is awaited here rather than left to the commit's own flush,
        // which took tens of milliseconds longer when measured.
        if let Err(e) = open.deliveries.all_delivered().await {
            tracing::warn!(processor = self.processor.name(), error = %e,
                "produce failed; what was written since the last checkpoint will be read again");
            self.open = Some(open);
            self.abort().await;
            return Err(Box::new(e));
        }
        if self.transactional {
            let group = open
                .group
                .ok_or("a transaction without the group's metadata")?;
            let offsets = partition_list(&open.offsets)?;
            let started = Instant::now();
            if let Err(e) = self.producer.commit_transaction(offsets, group).await {
                tracing::warn!(processor = self.processor.name(), error = %e,
                    "transaction not committed; its batches will be read again and nothing of them is visible");
                return Err(Box::new(e));
            }
            let took = started.elapsed();
            self.committed_in(took);
            let micros = took.as_micros() as u64;
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .commit_micros
                .fetch_add(micros, Ordering::Relaxed);
            self.stats
                .commit_max_micros
                .fetch_max(micros, Ordering::Relaxed);
        }
        self.count(open.records, open.counts);
        Ok(true)
    }

    fn checkpoint_in(&self) -> Option<Duration> {
        let open = self.open.as_ref()?;
        let due = self.commit_after().saturating_sub(open.since.elapsed());
        Some(if self.transactional {
            due
        } else {
            // Acknowledgements come within milliseconds: look again soon.
            due.min(Duration::from_millis(1))
        })
    }
}

/// The record's headers as outgoing headers (a header without value becomes empty).
pub fn original_headers(record: &Record) -> Headers {
    Headers(
        record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect(),
    )
}

/// A member that ran this long before it failed is restarted after the shortest wait again.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Runs a consumer group member until `shutdown`, restarting it after a failure with a
/// growing pause (0.5 s doubling to 30 s; back to 0.5 s when the failed run had lasted a
/// minute). `make_handler` builds a fresh handler for every start, so state of a failed run (a
/// half-filled buffer) is never reused. Returns the totals of all runs.
pub async fn supervise<H, F, Fut>(
    name: &str,
    settings: &KafkaSettings,
    options: ConsumerOptions,
    mut make_handler: F,
    shutdown: CancellationToken,
) -> RunStats
where
    H: BatchHandler,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<H, HandlerError>>,
{
    let mut total = RunStats::default();
    let mut backoff = RetryPolicy::RECONNECT.backoff();
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        let attempt = async {
            let mut handler = make_handler().await?;
            let runner = ConsumerRunner::new(settings, options.clone())?;
            runner
                .run(&mut handler, shutdown.clone())
                .await
                .map_err(|e| Box::new(e) as HandlerError)
        };
        match attempt.await {
            Ok(stats) => {
                total.batches += stats.batches;
                total.records += stats.records;
                break;
            }
            Err(e) => {
                // A member that ran a while before failing starts over from the shortest wait.
                if started.elapsed() >= STABLE_AFTER {
                    backoff.reset();
                }
                let pause = backoff.next_delay();
                tracing::error!(component = name, group = %options.group_id, error = %e,
                    retry_in = ?pause, "stopped after a failure; restarting from the last stored offsets");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pass;

    impl Processor for Pass {
        fn name(&self) -> &str {
            "pass"
        }

        fn process(&mut self, _record: &Record) -> Outcome {
            Outcome::Skip
        }
    }

    fn producer() -> Producer {
        // Made without connecting: nothing here sends.
        Producer::new(&KafkaSettings::new("127.0.0.1:9")).expect("a producer")
    }

    #[tokio::test]
    async fn a_transaction_commits_after_ten_times_recent_commits_and_never_later_than_the_interval(
    ) {
        let stats = Arc::new(ProcessorStats::default());
        let mut h = ProcessorHandler::transactional(Pass, producer(), stats)
            .with_commit_interval(Duration::from_millis(100));
        // No commit measured yet: the interval.
        assert_eq!(h.commit_after(), Duration::from_millis(100));
        h.committed_in(Duration::from_millis(2));
        assert_eq!(h.commit_after(), Duration::from_millis(20));
        // One slow commit moves the wait a quarter of the way.
        h.committed_in(Duration::from_millis(6));
        assert_eq!(h.commit_after(), Duration::from_millis(30));
        // Slow commits: never beyond the interval.
        for _ in 0..10 {
            h.committed_in(Duration::from_millis(40));
        }
        assert_eq!(h.commit_after(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn at_least_once_reads_on_for_the_whole_interval() {
        let stats = Arc::new(ProcessorStats::default());
        let mut h = ProcessorHandler::new(Pass, producer(), stats)
            .with_commit_interval(Duration::from_millis(100));
        h.committed_in(Duration::from_millis(2));
        assert_eq!(h.commit_after(), Duration::from_millis(100));
    }
}
