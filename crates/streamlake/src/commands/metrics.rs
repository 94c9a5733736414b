//! Prometheus metrics of what `up` runs beside the gateway: each processor, sink and source
//! (MQTT, pollers, generators), and the lag of each stage's consumer group. They are served on
//! the gateway's `/metrics` next to its own. The stages count in plain atomics; a scrape brings
//! the counters up to them, so counting costs the stages nothing more than it did.
//!
//! Label values are bounded: pipeline, sink, source and group names and topics come from the
//! configuration, outcomes from fixed sets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Counter, CounterVec, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use streamlake_core::LatencyWindows;
use streamlake_kafka::{Admin, KafkaSettings};
use streamlake_pipeline::ProcessorStats;
use streamlake_sinks::SinkStats;
use streamlake_sources::poller::PollerStats;
use streamlake_sources::SourceStats;
use tokio_util::sync::CancellationToken;

/// The window of the sinks' durable-latency quantiles.
const DURABLE_WINDOW_MS: i64 = 5 * 60 * 1000;

/// How often the stages' consumer lag is sampled.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// A counter and the atomic it follows.
type Tracked = (IntCounter, Box<dyn Fn() -> u64 + Send + Sync>);

/// A counter of seconds and the microseconds it follows.
type TrackedSeconds = (Counter, Box<dyn Fn() -> u64 + Send + Sync>);

/// An outcome label and the field of a stage's counters it shows.
type Outcome<S> = (&'static str, fn(&S) -> &AtomicU64);

/// The stages' metrics and their registry.
pub(crate) struct StageMetrics {
    registry: Registry,
    processor: IntCounterVec,
    commits: IntCounterVec,
    commit_seconds: CounterVec,
    sink: IntCounterVec,
    source: IntCounterVec,
    lag: IntGaugeVec,
    age: GaugeVec,
    freshness: IntGaugeVec,
    oldest: GaugeVec,
    durable: GaugeVec,
    tracked: Mutex<Vec<Tracked>>,
    tracked_seconds: Mutex<Vec<TrackedSeconds>>,
    /// Each sink's clean → durable latencies, by sink name.
    sink_latency: Mutex<Vec<(String, Arc<LatencyWindows>)>>,
    /// The console's service, whose sampler evaluates freshness.
    ops: Mutex<Option<Arc<streamlake_ops::Ops>>>,
}

impl std::fmt::Debug for StageMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageMetrics").finish_non_exhaustive()
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("constant metric definition")
}

impl StageMetrics {
    pub(crate) fn new() -> Arc<Self> {
        let registry = Registry::new_custom(Some("streamlake".to_owned()), None)
            .expect("constant registry prefix");
        let processor = counter(
            "processor_records_total",
            "Records a processor read (outcome=in) and what became of them: emitted to a clean topic, dead_lettered, skipped",
            &["pipeline", "outcome"],
        );
        let commits = counter(
            "processor_transactions_total",
            "Transactions a processor committed (exactly once): each makes its outputs visible and commits its inputs' offsets",
            &["pipeline"],
        );
        let commit_seconds = CounterVec::new(
            Opts::new(
                "processor_transaction_commit_seconds_total",
                "Time a processor spent committing its transactions; divided by processor_transactions_total, the mean commit time",
            ),
            &["pipeline"],
        )
        .expect("constant metric definition");
        let sink = counter(
            "sink_records_total",
            "Records a sink read (outcome=in), rows it wrote, records it dead-lettered, flushes that made rows durable",
            &["sink", "outcome"],
        );
        let source = counter(
            "source_events_total",
            "Events of MQTT, pollers and generators: received, accepted into a raw topic, dead_lettered, unroutable, retries",
            &["source", "outcome"],
        );
        let lag = IntGaugeVec::new(
            Opts::new(
                "consumer_lag_records",
                "Records of a topic the stage's consumer group has not committed yet, sampled every 10 s",
            ),
            &["group", "topic"],
        )
        .expect("constant metric definition");
        let age = GaugeVec::new(
            Opts::new(
                "consumer_lag_seconds",
                "How long the oldest record of a topic the stage's group has not committed has waited (0 with nothing to read), sampled every 10 s",
            ),
            &["group", "topic"],
        )
        .expect("constant metric definition");
        let freshness = IntGaugeVec::new(
            Opts::new(
                "dataset_freshness_state",
                "1 for a dataset's current freshness state (ok, at_risk, breached), 0 for the others; datasets with an objective",
            ),
            &["tenant", "dataset", "state"],
        )
        .expect("constant metric definition");
        let oldest = GaugeVec::new(
            Opts::new(
                "dataset_oldest_unread_seconds",
                "How long the oldest record any stage of the dataset has not read has waited (0 with nothing to read); datasets with an objective",
            ),
            &["tenant", "dataset"],
        )
        .expect("constant metric definition");
        let durable = GaugeVec::new(
            Opts::new(
                "sink_durable_latency_seconds",
                "From a clean record's processed_at to its row being durable in the sink (flushed or committed), p50 and p99 over the last 5 minutes",
            ),
            &["sink", "tenant", "dataset", "quantile"],
        )
        .expect("constant metric definition");
        for c in [
            Box::new(processor.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(commits.clone()),
            Box::new(commit_seconds.clone()),
            Box::new(durable.clone()),
            Box::new(sink.clone()),
            Box::new(source.clone()),
            Box::new(lag.clone()),
            Box::new(age.clone()),
            Box::new(freshness.clone()),
            Box::new(oldest.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "cannot register a stage metric");
            }
        }
        Arc::new(Self {
            registry,
            processor,
            commits,
            commit_seconds,
            sink,
            source,
            lag,
            age,
            freshness,
            oldest,
            durable,
            tracked: Mutex::new(Vec::new()),
            tracked_seconds: Mutex::new(Vec::new()),
            sink_latency: Mutex::new(Vec::new()),
            ops: Mutex::new(None),
        })
    }

    /// The registry, to serve with the gateway's.
    pub(crate) fn registry(&self) -> Registry {
        self.registry.clone()
    }

    fn track<S: Send + Sync + 'static>(
        &self,
        vec: &IntCounterVec,
        name: &str,
        stats: &Arc<S>,
        outcomes: &[Outcome<S>],
    ) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for (outcome, field) in outcomes {
            let (stats, field) = (Arc::clone(stats), *field);
            tracked.push((
                vec.with_label_values(&[name, outcome]),
                Box::new(move || field(&stats).load(Ordering::Relaxed)),
            ));
        }
    }

    /// Follows a processor's counters.
    pub(crate) fn processor(&self, pipeline: &str, stats: &Arc<ProcessorStats>) {
        self.track(
            &self.processor,
            pipeline,
            stats,
            &[
                ("in", |s| &s.records_in),
                ("emitted", |s| &s.emitted),
                ("dead_lettered", |s| &s.dead_lettered),
                ("skipped", |s| &s.skipped),
            ],
        );
        let commits = Arc::clone(stats);
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                self.commits.with_label_values(&[pipeline]),
                Box::new(move || commits.commits.load(Ordering::Relaxed)),
            ));
        let micros = Arc::clone(stats);
        self.tracked_seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                self.commit_seconds.with_label_values(&[pipeline]),
                Box::new(move || micros.commit_micros.load(Ordering::Relaxed)),
            ));
    }

    /// Follows a sink's counters and its clean → durable latencies (here and on the console's
    /// Freshness page).
    pub(crate) fn sink(&self, sink: &str, stats: &Arc<SinkStats>) {
        if let Some(ops) = self.ops.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            ops.watch_sink_latency(sink, Arc::clone(&stats.durable));
        }
        self.sink_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sink.to_owned(), Arc::clone(&stats.durable)));
        self.track(
            &self.sink,
            sink,
            stats,
            &[
                ("in", |s| &s.records_in),
                ("rows", |s| &s.rows),
                ("dead_lettered", |s| &s.dead_lettered),
                ("flushes", |s| &s.flushes),
            ],
        );
    }

    /// Follows a source's counters (`mqtt`, `poller NAME`, `generator NAME`).
    pub(crate) fn source(&self, source: &str, stats: &Arc<SourceStats>) {
        self.track(
            &self.source,
            source,
            stats,
            &[
                ("received", |s| &s.received),
                ("accepted", |s| &s.accepted),
                ("dead_lettered", |s| &s.dead_lettered),
                ("unroutable", |s| &s.unroutable),
                ("retries", |s| &s.retries),
            ],
        );
    }

    /// Follows a poller's event counters.
    pub(crate) fn poller(&self, source: &str, stats: &Arc<PollerStats>) {
        self.track(
            &self.source,
            source,
            stats,
            &[
                ("received", |s| &s.events.received),
                ("accepted", |s| &s.events.accepted),
                ("dead_lettered", |s| &s.events.dead_lettered),
                ("unroutable", |s| &s.events.unroutable),
                ("retries", |s| &s.events.retries),
            ],
        );
    }

    /// Shows the freshness `ops`' sampler evaluates.
    pub(crate) fn freshness(&self, ops: Arc<streamlake_ops::Ops>) {
        *self.ops.lock().unwrap_or_else(|e| e.into_inner()) = Some(ops);
    }

    /// Brings every counter up to the atomic it follows (before a scrape).
    pub(crate) fn refresh(&self) {
        use streamlake_ops::freshness::FreshnessState as S;
        if let Some(ops) = self.ops.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            for w in ops.watched() {
                let (t, d) = (w.tenant.as_str(), w.dataset.as_str());
                for state in [S::Ok, S::AtRisk, S::Breached] {
                    self.freshness
                        .with_label_values(&[t, d, state.as_str()])
                        .set(i64::from(w.state == state));
                }
                self.oldest
                    .with_label_values(&[t, d])
                    .set(w.oldest_unread_ms.unwrap_or(0) as f64 / 1000.0);
            }
        }
        let since = streamlake_core::latency::now_ms() - DURABLE_WINDOW_MS;
        for (sink, windows) in self
            .sink_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (tenant, dataset) in windows.datasets() {
                // Nothing landed lately: 0, as the lag gauges show an idle stage.
                let q = windows.quantiles(&tenant, &dataset, since);
                for (quantile, ms) in [
                    ("0.5", q.map_or(0, |q| q.p50)),
                    ("0.99", q.map_or(0, |q| q.p99)),
                ] {
                    self.durable
                        .with_label_values(&[sink.as_str(), &tenant, &dataset, quantile])
                        .set(ms as f64 / 1000.0);
                }
            }
        }
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for (counter, read) in tracked.iter() {
            let (now, shown) = (read(), counter.get());
            if now > shown {
                counter.inc_by(now - shown);
            }
        }
        let tracked = self
            .tracked_seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (counter, read) in tracked.iter() {
            let (now, shown) = (read() as f64 / 1e6, counter.get());
            if now > shown {
                counter.inc_by(now - shown);
            }
        }
    }

    /// Samples the lag of each `(group, topics)` every 10 s until `shutdown`.
    pub(crate) async fn sample_lag(
        self: Arc<Self>,
        settings: KafkaSettings,
        groups: Vec<(String, Vec<String>)>,
        shutdown: CancellationToken,
    ) {
        let admin = match Admin::new(&settings) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "no consumer lag metrics: cannot create an admin client");
                return;
            }
        };
        loop {
            for (group, topics) in &groups {
                let Ok(lag) = admin.group_lag(group, topics).await else {
                    continue;
                };
                let mut by_topic: std::collections::BTreeMap<&str, i64> = Default::default();
                for p in &lag.partitions {
                    *by_topic.entry(p.topic.as_str()).or_default() += p.lag;
                }
                let waited = streamlake_kafka::oldest_unread(&settings, &lag)
                    .await
                    .unwrap_or_default();
                for (topic, records) in by_topic {
                    self.lag.with_label_values(&[group, topic]).set(records);
                    let waited_ms = waited
                        .iter()
                        .filter(|((t, _), _)| t == topic)
                        .map(|(_, ms)| *ms)
                        .max()
                        .unwrap_or(0);
                    self.age
                        .with_label_values(&[group, topic])
                        .set(waited_ms as f64 / 1000.0);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(LAG_EVERY) => {}
            }
        }
    }
}
