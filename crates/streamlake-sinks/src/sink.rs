//! The `Sink` trait and its runtime (reliability rule 3 in docs/ARCHITECTURE.md): a
//! batch is converted to rows and written; offsets are stored only after `flush` returned, so
//! a crash replays what was not durable and loses nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streamlake_config::{ColumnConfig, Config, ReadTopic, Sink as SinkConfig};
use streamlake_core::{headers, LatencyWindows, Stage, Violation};
use streamlake_kafka::{BatchHandler, HandlerError, Producer, Record};
use streamlake_pipeline::runtime::original_headers;

use crate::row::{to_row, Row};

/// A sink's failure; the batch is not acknowledged and will be read again.
pub type SinkError = HandlerError;

/// One dataset a sink lands: its table or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Tenant id.
    pub tenant: String,
    /// Dataset id.
    pub dataset: String,
    /// The dataset's `processing.data_type`, for `{data_type}` in paths.
    pub data_type: Option<String>,
    /// Declared columns.
    pub columns: Vec<ColumnConfig>,
}

impl Target {
    /// `template` with `{tenant}`, `{dataset}` and `{data_type}` (the dataset id when unset)
    /// filled in.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{tenant}", &self.tenant)
            .replace("{dataset}", &self.dataset)
            .replace(
                "{data_type}",
                self.data_type.as_deref().unwrap_or(&self.dataset),
            )
    }
}

/// A row the store refused, by its index in the written rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the row in the `rows` given to [`Sink::write`].
    pub index: usize,
    /// The store's reason.
    pub reason: String,
}

/// A store rows are landed in. Opening is the implementation's constructor; closing is the last
/// `flush` (the runtime calls it at shutdown) followed by drop.
pub trait Sink: Send {
    /// Writes (or buffers) rows of one target, in order. Rows the store refuses on their own
    /// account (a value PostgreSQL cannot hold, say) come back as [`Rejected`] and are
    /// dead-lettered; an error fails the whole batch, which is read again.
    fn write(
        &mut self,
        target: &Target,
        rows: Vec<Row>,
    ) -> impl Future<Output = Result<Vec<Rejected>, SinkError>> + Send;

    /// Whether buffered rows should be made durable now (size or age reached). A write-through
    /// sink always says yes.
    fn wants_flush(&self) -> bool;

    /// Makes every written row durable.
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The group gave this sink an assignment (at start and after every rebalance): what it
    /// remembers about which records its store holds may be stale, since another instance may
    /// have written those partitions meanwhile.
    fn reassigned(&mut self) {}
}

/// Counters of a sink, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records read.
    pub records_in: AtomicU64,
    /// Rows handed to the sink.
    pub rows: AtomicU64,
    /// Records dead-lettered (not JSON, or a column of the wrong type).
    pub dead_lettered: AtomicU64,
    /// Flushes (each followed by an offset store).
    pub flushes: AtomicU64,
    /// Per dataset, from each clean record's `processed_at` to the flush that made its row
    /// durable (milliseconds): the clean → sink stage of freshness.
    pub durable: Arc<LatencyWindows>,
    /// Leaves `durable` empty (to measure what measuring costs).
    pub skip_durable_latency: bool,
}

#[derive(Debug, Clone)]
struct Route {
    dlq_topic: String,
    targets: Vec<Target>,
}

/// Rows of one target and the records they came from, index for index.
type Group<'r> = (Vec<Row>, Vec<&'r Record>);

/// Adapts a [`Sink`] to the consumer runner.
#[derive(Debug)]
pub struct SinkHandler<S> {
    name: String,
    sink: S,
    routes: BTreeMap<String, Route>,
    dead_letters: DeadLetters,
    stats: Arc<SinkStats>,
    /// `processed_at` (ms) of the rows written since the last flush, per (topic, target index).
    pending: BTreeMap<(String, usize), Vec<i64>>,
}

/// The topics a sink reads and, per topic, the targets found on it.
pub fn topics_of(config: &Config, sink: &SinkConfig) -> Vec<String> {
    routes_of(config, sink).into_keys().collect()
}

fn routes_of(config: &Config, sink: &SinkConfig) -> BTreeMap<String, Route> {
    let mut routes: BTreeMap<String, Route> = BTreeMap::new();
    for r in &sink.datasets {
        let (tenant, ds) = config
            .dataset(r)
            .expect("a loaded config resolves its datasets");
        let topic = match sink.read {
            ReadTopic::Clean => &ds.clean_topic,
            ReadTopic::Raw => &ds.raw_topic,
        };
        routes
            .entry(topic.clone())
            .or_insert_with(|| Route {
                dlq_topic: tenant.dlq_topic.clone(),
                targets: Vec::new(),
            })
            .targets
            .push(Target {
                tenant: tenant.id.to_string(),
                dataset: ds.id.to_string(),
                data_type: ds.processing.data_type.clone(),
                columns: ds.columns.clone(),
            });
    }
    routes
}

impl<S: Sink> SinkHandler<S> {
    /// A handler landing `sink_config`'s datasets in `sink`; dead letters go through `producer`.
    pub fn new(
        config: &Config,
        sink_config: &SinkConfig,
        sink: S,
        producer: Producer,
        stats: Arc<SinkStats>,
    ) -> Self {
        Self {
            name: sink_config.name.clone(),
            sink,
            routes: routes_of(config, sink_config),
            dead_letters: DeadLetters {
                sink: sink_config.name.clone(),
                producer,
                stats: stats.clone(),
            },
            stats,
            pending: BTreeMap::new(),
        }
    }
}

/// Writes refused records to dead-letter topics.
#[derive(Debug)]
struct DeadLetters {
    sink: String,
    producer: Producer,
    stats: Arc<SinkStats>,
}

impl DeadLetters {
    /// Writes `record` unchanged with the `error.*` headers (stage `sink`) to `dlq` and waits
    /// for the acknowledgement.
    async fn send(
        &self,
        record: &Record,
        dlq: &str,
        reason: String,
        path: String,
        rule: &str,
    ) -> Result<(), SinkError> {
        let letter = Violation::new(&path, rule, reason).dead_letter(Stage::Sink);
        tracing::warn!(sink = %self.sink, dlq, source_topic = %record.topic, partition = record.partition,
            offset = record.offset, reason = %letter.reason, path = %letter.path, rule = %letter.rule, "record dead-lettered");
        let mut headers = original_headers(record);
        for (k, v) in letter.headers() {
            headers.push(k, v);
        }
        self.producer
            .send(
                dlq,
                record.key.as_deref(),
                record.payload.as_deref().unwrap_or_default(),
                &headers,
            )
            .await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A record's `processed_at` header, in ms since the epoch.
fn processed_at_ms(record: &Record) -> Option<i64> {
    let text = std::str::from_utf8(record.header(headers::PROCESSED_AT)?).ok()?;
    streamlake_core::latency::epoch_ms(text)
}

impl<S: Sink> BatchHandler for SinkHandler<S> {
    async fn handle(&mut self, batch: &[Record]) -> Result<(), HandlerError> {
        // Rows (and their records) per (topic, target index), in batch order within each target.
        let mut grouped: BTreeMap<(String, usize), Group<'_>> = BTreeMap::new();
        for record in batch {
            let Some(route) = self.routes.get(&record.topic) else {
                tracing::error!(sink = %self.name, topic = %record.topic, "record from a topic this sink does not read");
                continue;
            };
            let named = record
                .header(headers::DATASET)
                .and_then(|d| std::str::from_utf8(d).ok());
            let index = match named {
                Some(d) => route.targets.iter().position(|t| t.dataset == d),
                None if route.targets.len() == 1 => Some(0),
                None => None,
            };
            let dlq = route.dlq_topic.clone();
            let Some(index) = index else {
                let reason = match named {
                    Some(d) => format!(
                        "dataset \"{d}\" (header) is not landed by this sink from this topic"
                    ),
                    None => "no dataset header and several datasets share this topic".to_owned(),
                };
                self.dead_letters
                    .send(record, &dlq, reason, String::new(), "dataset")
                    .await?;
                continue;
            };
            let target = &route.targets[index];
            match to_row(record, &target.tenant, &target.dataset, &target.columns) {
                Ok(row) => {
                    let group = grouped.entry((record.topic.clone(), index)).or_default();
                    group.0.push(row);
                    group.1.push(record);
                }
                Err(e) => {
                    self.dead_letters
                        .send(record, &dlq, e.reason, e.path, &e.rule)
                        .await?;
                }
            }
        }
        self.stats
            .records_in
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for ((topic, index), (rows, records)) in grouped {
            let route = &self.routes[&topic];
            let n = rows.len() as u64;
            let rejected = self.sink.write(&route.targets[index], rows).await?;
            if !self.stats.skip_durable_latency {
                self.pending
                    .entry((topic.clone(), index))
                    .or_default()
                    .extend(records.iter().filter_map(|r| processed_at_ms(r)));
            }
            self.stats
                .rows
                .fetch_add(n - rejected.len() as u64, Ordering::Relaxed);
            for r in rejected {
                self.dead_letters
                    .send(
                        records[r.index],
                        &route.dlq_topic,
                        r.reason,
                        String::new(),
                        "store",
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn checkpoint(&mut self, closing: bool) -> Result<bool, HandlerError> {
        if !(closing || self.sink.wants_flush()) {
            return Ok(false);
        }
        self.sink.flush().await?;
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        let now = streamlake_core::latency::now_ms();
        for ((topic, index), processed) in std::mem::take(&mut self.pending) {
            let target = &self.routes[&topic].targets[index];
            self.stats.durable.record(
                &target.tenant,
                &target.dataset,
                now,
                processed.into_iter().map(|at| now - at),
            );
        }
        Ok(true)
    }

    fn assigned(&mut self) {
        self.sink.reassigned();
    }
}
