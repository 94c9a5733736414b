//! The consumer runner (reliability rule 3 in docs/ARCHITECTURE.md): subscribe, gather a batch (up to
//! `batch_max_size` records or `batch_max_wait`), hand it to a [`BatchHandler`], and store the
//! batch's offsets only after the handler returned `Ok` and its [`BatchHandler::checkpoint`]
//! said that everything handled so far is durable. Stored offsets are committed in the
//! background and once more, synchronously, at shutdown. A handler error stops the runner
//! without storing the failed batch, so a restart reads it again: at-least-once.
//!
//! A handler that buffers (a sink filling a file) answers `checkpoint` with `false` until its
//! buffer is durable; the runner keeps those offsets pending and asks again after every batch,
//! when idle for `batch_max_wait` (or as long as [`BatchHandler::checkpoint_in`] says), and
//! once more with `closing = true` at shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
    StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::Record;
use crate::settings::KafkaSettings;

/// A handler's failure; the batch is not acknowledged.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Processes batches of records.
pub trait BatchHandler: Send {
    /// Handles one batch, in partition order per partition.
    fn handle(&mut self, batch: &[Record])
        -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether every record handled so far is durable, so its offset may be stored. Called
    /// after each batch, when idle, and at shutdown with `closing = true` (where a buffering
    /// handler makes its buffer durable). Default: durable as soon as `handle` returned.
    fn checkpoint(
        &mut self,
        closing: bool,
    ) -> impl Future<Output = Result<bool, HandlerError>> + Send {
        let _ = closing;
        async { Ok(true) }
    }

    /// While no record arrives and offsets wait for a checkpoint that answered `false`: how
    /// long until asking again is worth it (a transaction due for its commit, acknowledgements
    /// expected). Default: `batch_max_wait`. The runner waits at least a millisecond.
    fn checkpoint_in(&self) -> Option<Duration> {
        None
    }

    /// Called before the first batch after the group gave this member an assignment (at start
    /// and after every rebalance). A handler that remembers what its store holds per partition
    /// forgets it here: another member may have written those partitions meanwhile.
    fn assigned(&mut self) {}

    /// Whether the handler commits the batches' offsets itself, in transactions with its
    /// output ([`BatchHandler::handle_in_group`]); the runner then stores none, and the
    /// handler's [`BatchHandler::checkpoint`] says when what it handled is committed.
    fn commits_offsets(&self) -> bool {
        false
    }

    /// [`BatchHandler::handle`] for a handler that commits offsets itself: `group` is the
    /// member's current group metadata, for the transaction's offset commit (the broker refuses
    /// a commit from a member the group has moved on from). Default: `handle`.
    fn handle_in_group(
        &mut self,
        batch: &[Record],
        group: Option<ConsumerGroupMetadata>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = group;
        self.handle(batch)
    }
}

/// The shortest wait between two checkpoints asked for while idle: a handler whose checkpoint
/// is due at once (a batch wait of 0) is not asked in a busy loop.
const MIN_IDLE_CHECKPOINT: Duration = Duration::from_millis(1);

/// What to consume and how to batch.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Consumer group id.
    pub group_id: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Largest batch handed to the handler.
    pub batch_max_size: usize,
    /// Longest wait for a batch to fill once its first record arrived. Zero: no wait, a batch
    /// is the first record and those already fetched behind it (under load, what arrived while
    /// the previous batch was handled).
    pub batch_max_wait: Duration,
    /// Where a group without committed offsets starts: earliest when true, latest otherwise.
    pub from_beginning: bool,
    /// Longest wait at the end for the final commit and for leaving the group; past it the
    /// runner returns anyway (the next member resumes from the last commit that succeeded).
    pub close_timeout: Duration,
    /// Who this member is across restarts, and what it holds now.
    pub membership: Membership,
}

impl ConsumerOptions {
    /// Options for `group_id` on `topics`, batches of up to 500 records or 100 ms, from the
    /// beginning.
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group_id: group_id.into(),
            topics,
            batch_max_size: 500,
            batch_max_wait: Duration::from_millis(100),
            from_beginning: true,
            close_timeout: Duration::from_secs(10),
            membership: Membership::default(),
        }
    }
}

/// A member's identity in its group and the partitions it holds. Clones share the count, so a
/// watcher sees the member of each restart of a stage.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    /// `group.instance.id` (static membership): a member that restarts with the same id takes
    /// its partitions back at once, without a rebalance, instead of waiting for the group to
    /// expire its previous incarnation (the session timeout). Unique within the group: a second
    /// live member with the same id fences the first. `None`: dynamic membership.
    pub instance_id: Option<String>,
    assigned: Arc<AtomicUsize>,
}

impl Membership {
    /// Static membership as `instance_id`.
    pub fn fixed(instance_id: impl Into<String>) -> Self {
        Self {
            instance_id: Some(instance_id.into()),
            assigned: Arc::default(),
        }
    }

    /// Partitions assigned to the member right now.
    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::Relaxed)
    }
}

/// Why the runner stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The consumer could not be created or subscribed.
    #[error("cannot start consumer for group {group}: {source}")]
    Setup {
        /// Group id.
        group: String,
        /// Cause.
        source: KafkaError,
    },
    /// The handler failed; the batch's offsets were not stored.
    #[error("handler failed on a batch of {batch_len} records starting at {topic}/{partition}@{offset}: {source}")]
    Handler {
        /// Batch size.
        batch_len: usize,
        /// First record's topic.
        topic: String,
        /// First record's partition.
        partition: i32,
        /// First record's offset.
        offset: i64,
        /// Cause.
        source: HandlerError,
    },
    /// The handler could not make its buffered records durable.
    #[error("checkpoint failed: {0}")]
    Checkpoint(HandlerError),
    /// Offsets could not be stored or committed.
    #[error("cannot store or commit offsets: {0}")]
    Offsets(KafkaError),
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Batches acknowledged.
    pub batches: u64,
    /// Records acknowledged.
    pub records: u64,
}

/// Per partition, the offset after the last handled record whose offset is not stored yet.
#[derive(Debug, Default)]
struct Pending(BTreeMap<String, BTreeMap<i32, i64>>);

impl Pending {
    fn add(&mut self, batch: &[Record]) {
        for r in batch {
            // Looked up by &str: the topic name is copied once per topic, not per record.
            let partitions = match self.0.get_mut(r.topic.as_str()) {
                Some(p) => p,
                None => self.0.entry(r.topic.clone()).or_default(),
            };
            let next = partitions.entry(r.partition).or_insert(0);
            *next = (*next).max(r.offset + 1);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Logs rebalances and commit failures.
#[derive(Debug)]
pub struct RunnerContext {
    group: String,
    assigned: Arc<AtomicUsize>,
    /// Assignments received so far; the runner tells its handler when this moves.
    assignments: Arc<AtomicU64>,
}

impl ClientContext for RunnerContext {}

impl ConsumerContext for RunnerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let n = tpl.count();
                let _ = self
                    .assigned
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
                        Some(a.saturating_sub(n))
                    });
                tracing::info!(group = %self.group, partitions = %describe(tpl), "rebalance: partitions revoked")
            }
            Rebalance::Assign(tpl) => {
                self.assigned.fetch_add(tpl.count(), Ordering::Relaxed);
                self.assignments.fetch_add(1, Ordering::Release);
                tracing::info!(group = %self.group, partitions = %describe(tpl), "rebalance: partitions assigned")
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance error")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                tracing::debug!(group = %self.group, offsets = %describe(offsets), "offsets committed")
            }
            // Nothing stored since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(group = %self.group, error = %e, "offset commit failed"),
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}/{}@{}", e.topic(), e.partition(), o),
            _ => format!("{}/{}", e.topic(), e.partition()),
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(",")
    }
}

/// Runs a [`BatchHandler`] over a consumer group subscription.
pub struct ConsumerRunner {
    consumer: StreamConsumer<RunnerContext>,
    options: ConsumerOptions,
    assignments: Arc<AtomicU64>,
}

impl std::fmt::Debug for ConsumerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRunner")
            .field("options", &self.options)
            .finish()
    }
}

impl ConsumerRunner {
    /// Creates the consumer and subscribes. Offsets are stored by the runner only
    /// (`enable.auto.offset.store=false`) and committed in the background.
    pub fn new(settings: &KafkaSettings, options: ConsumerOptions) -> Result<Self, ConsumerError> {
        let setup = |source| ConsumerError::Setup {
            group: options.group_id.clone(),
            source,
        };
        let mut cfg = settings.consumer_config();
        if let Some(id) = &options.membership.instance_id {
            cfg.set("group.instance.id", id);
        }
        options.membership.assigned.store(0, Ordering::Relaxed);
        cfg.set("group.id", &options.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if options.from_beginning {
                    "earliest"
                } else {
                    "latest"
                },
            );
        let assignments = Arc::new(AtomicU64::new(0));
        let consumer: StreamConsumer<RunnerContext> = cfg
            .create_with_context(RunnerContext {
                group: options.group_id.clone(),
                assigned: Arc::clone(&options.membership.assigned),
                assignments: Arc::clone(&assignments),
            })
            .map_err(setup)?;
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(setup)?;
        Ok(Self {
            consumer,
            options,
            assignments,
        })
    }

    /// Consumes until `shutdown` is cancelled or the handler fails, then commits what was stored.
    pub async fn run<H: BatchHandler>(
        self,
        handler: &mut H,
        shutdown: CancellationToken,
    ) -> Result<RunStats, ConsumerError> {
        let mut stats = RunStats::default();
        let mut pending = Pending::default();
        let mut result = self
            .run_loop(handler, &shutdown, &mut stats, &mut pending)
            .await;
        // The final checkpoint, the commit and leaving the group share one deadline: with the
        // broker gone none of them can finish, and shutdown must not wait for them. What was
        // not made durable or committed in time is read again at the next start.
        let deadline = Instant::now() + self.options.close_timeout;
        if result.is_ok() {
            let last = self.checkpoint(handler, &mut pending, true);
            result = tokio::time::timeout_at(deadline, last)
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(group = %self.options.group_id,
                        "the final checkpoint did not finish in time; its records are read again at the next start");
                    Ok(())
                });
        }
        let Self {
            consumer, options, ..
        } = self;
        let group = options.group_id.clone();
        // The synchronous commit and the close (leaving the group) block their thread for as
        // long as the broker takes: not one of the runtime's workers, and not past the deadline.
        let closing = tokio::task::spawn_blocking(move || {
            let committed = commit_stored(&consumer);
            drop(consumer);
            committed
        });
        let committed = match tokio::time::timeout_at(deadline, closing).await {
            Ok(Ok(committed)) => committed,
            Ok(Err(e)) => {
                tracing::error!(%group, error = %e, "the final commit did not run");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(%group, timeout_ms = options.close_timeout.as_millis() as u64,
                    "the final commit and leaving the group did not finish in time; the next member resumes from the last commit");
                Ok(())
            }
        };
        tracing::info!(%group, batches = stats.batches, records = stats.records, "consumer stopped");
        result?;
        committed?;
        Ok(stats)
    }

    async fn run_loop<H: BatchHandler>(
        &self,
        handler: &mut H,
        shutdown: &CancellationToken,
        stats: &mut RunStats,
        pending: &mut Pending,
    ) -> Result<(), ConsumerError> {
        let max = self.options.batch_max_size.max(1);
        let mut batch: Vec<Record> = Vec::with_capacity(max);
        let mut assignments_seen = 0;
        while !shutdown.is_cancelled() {
            batch.clear();
            let idle = handler
                .checkpoint_in()
                .unwrap_or(self.options.batch_max_wait)
                .max(MIN_IDLE_CHECKPOINT);
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(idle), if !pending.is_empty() => {
                    self.checkpoint(handler, pending, false).await?;
                    continue;
                }
                m = self.consumer.recv() => m,
            };
            let mut gathered_in = self.assignments.load(Ordering::Acquire);
            match first {
                Ok(m) => batch.push(Record::from_message(&m)),
                Err(e) => {
                    self.transient(e).await;
                    continue;
                }
            }
            let deadline = Instant::now() + self.options.batch_max_wait;
            let waits = !self.options.batch_max_wait.is_zero();
            while batch.len() < max {
                let next = if waits {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => None,
                        // Shutdown finishes the batch already read instead of dropping it.
                        _ = shutdown.cancelled() => None,
                        m = self.consumer.recv() => Some(m),
                    }
                } else {
                    // No wait: only records already fetched; a recv that would wait ends the
                    // batch.
                    futures::FutureExt::now_or_never(self.consumer.recv())
                };
                match next {
                    None => break,
                    Some(Ok(m)) => {
                        // A rebalance ran inside this recv: what was gathered before it belongs
                        // to the previous assignment, whose partitions restart from their
                        // committed offsets, so those records come again. Handling them now
                        // would handle them twice.
                        let now = self.assignments.load(Ordering::Acquire);
                        if now != gathered_in {
                            gathered_in = now;
                            batch.clear();
                        }
                        batch.push(Record::from_message(&m));
                    }
                    Some(Err(e)) => {
                        self.transient(e).await;
                        break;
                    }
                }
            }
            // The assignment callback runs before records of the new assignment are fetched, so
            // a batch holding them sees the count moved.
            let assignments = self.assignments.load(Ordering::Acquire);
            if assignments != assignments_seen {
                assignments_seen = assignments;
                handler.assigned();
            }
            let commits_offsets = handler.commits_offsets();
            let handled = if commits_offsets {
                let group = self.consumer.group_metadata();
                handler.handle_in_group(&batch, group).await
            } else {
                handler.handle(&batch).await
            };
            if let Err(source) = handled {
                let first = &batch[0];
                return Err(ConsumerError::Handler {
                    batch_len: batch.len(),
                    topic: first.topic.clone(),
                    partition: first.partition,
                    offset: first.offset,
                    source,
                });
            }
            pending.add(&batch);
            stats.batches += 1;
            stats.records += batch.len() as u64;
            self.checkpoint(handler, pending, false).await?;
        }
        Ok(())
    }

    /// Asks the handler whether its records are durable and, if so, stores their offsets.
    async fn checkpoint<H: BatchHandler>(
        &self,
        handler: &mut H,
        pending: &mut Pending,
        closing: bool,
    ) -> Result<(), ConsumerError> {
        if pending.is_empty() {
            return Ok(());
        }
        if handler
            .checkpoint(closing)
            .await
            .map_err(ConsumerError::Checkpoint)?
        {
            let durable = std::mem::take(pending);
            // A handler that commits offsets in its transactions has committed these.
            if !handler.commits_offsets() {
                self.store(durable);
            }
        }
        Ok(())
    }

    async fn transient(&self, e: KafkaError) {
        tracing::warn!(group = %self.options.group_id, error = %e, "consumer error; continuing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Stores, per partition, the offset after the last durable record. A partition revoked in
    /// a rebalance cannot be stored; its new owner reads those records again (at-least-once),
    /// so that is logged, not fatal.
    fn store(&self, pending: Pending) {
        let offsets = pending
            .0
            .into_iter()
            .flat_map(|(topic, ps)| ps.into_iter().map(move |(p, o)| (topic.clone(), p, o)));
        for (topic, partition, offset) in offsets {
            let mut tpl = TopicPartitionList::with_capacity(1);
            let stored = tpl
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .and_then(|()| self.consumer.store_offsets(&tpl));
            if let Err(e) = stored {
                tracing::warn!(group = %self.options.group_id, %topic, partition, offset, error = %e,
                    "offset not stored (partition no longer assigned?); its records will be read again");
            }
        }
    }
}

/// Commits the stored offsets, waiting for the broker: call it off the async workers.
fn commit_stored(consumer: &StreamConsumer<RunnerContext>) -> Result<(), ConsumerError> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => Err(ConsumerError::Offsets(e)),
    }
}
