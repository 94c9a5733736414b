//! `streamlake-bench pipeline`: the processor against its ceiling, a bare consume → produce
//! loop over the same records on the same broker in the same run; then each sink's rows/s
//! against a bare consume of the same clean topic. Everything runs in this process on an
//! one-node Kafka it starts; records are tenant A's air-quality events with the headers the
//! gateway attaches, processed as `examples/air-quality/streamlake.toml` configures.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures::future::try_join_all;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use streamlake_config::{ComponentSettings, Config};
use streamlake_kafka::{Deliveries, Headers, KafkaSettings, Outgoing, Producer};
use streamlake_pipeline::{run_pipeline, ProcessorStats};
use streamlake_sinks::{run_sink, SinkStats};
use tokio_util::sync::CancellationToken;

use crate::common::{cpu_seconds, events, first_dataset, provision_with, publish, start_broker};
use crate::BenchPipelineArgs;

const EXAMPLE: &str = include_str!("../../../examples/air-quality/streamlake.toml");
const SCHEMA_A: &str =
    include_str!("../../../examples/air-quality/schemas/tenant-a-air-quality.json");
const SCHEMA_B: &str =
    include_str!("../../../examples/air-quality/schemas/tenant-b-air-quality.json");
/// The example's poller replay file: the configuration refers to it (the bench does not poll).
const SAMPLE: &str =
    include_str!("../../../examples/air-quality/data/sensor-community-sample.json");

struct Measured {
    label: String,
    records: u64,
    seconds: f64,
    cpu: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// Records done so far, read by the progress display.
type Progress = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Times `work` from its first record to its end (joining the consumer group is not part of
/// the rate), with the CPU this process spent meanwhile, printing progress every 2 s.
async fn measure<F: std::future::Future<Output = anyhow::Result<u64>>>(
    label: &str,
    progress: Progress,
    work: F,
) -> anyhow::Result<Measured> {
    eprintln!("{label} ...");
    let cpu0 = cpu_seconds("self")?;
    let first = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let ticker = {
        let (first, progress) = (first.clone(), progress.clone());
        tokio::spawn(async move {
            let mut last_print = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let done = progress();
                if done > 0 {
                    first
                        .lock()
                        .expect("progress lock")
                        .get_or_insert_with(Instant::now);
                }
                if last_print.elapsed() >= Duration::from_secs(2) {
                    eprintln!("  {done} records");
                    last_print = Instant::now();
                }
            }
        })
    };
    let started = Instant::now();
    let result = work.await;
    ticker.abort();
    let records = result?;
    let from = first.lock().expect("progress lock").unwrap_or(started);
    let m = Measured {
        label: label.to_owned(),
        records,
        seconds: from.elapsed().as_secs_f64(),
        cpu: cpu_seconds("self")? - cpu0,
    };
    eprintln!("  {:.0} records/s", m.rate());
    Ok(m)
}

fn counter() -> (Arc<AtomicU64>, Progress) {
    let c = Arc::new(AtomicU64::new(0));
    let read = c.clone();
    (c, Arc::new(move || read.load(Ordering::Relaxed)))
}

/// How the bare loop waits for its acknowledgements.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Acks {
    /// Every batch's, before the next batch is read: what queueing saves.
    EachBatch,
    /// None until the end: every record is queued and the next batch read at once (at most
    /// [`MAX_UNACKNOWLEDGED`] outstanding). The ceiling of any consume → produce loop.
    AtTheEnd,
}

/// The most records the queueing bare loop leaves unacknowledged, as the processor does.
const MAX_UNACKNOWLEDGED: usize = 20_000;

/// The bare loop: consume a batch, produce every record unchanged, store the offsets once
/// acknowledged. What a processor does, minus the processing.
async fn bare_loop(
    settings: &KafkaSettings,
    from: &str,
    to: &str,
    n: u64,
    batch: usize,
    acks: Acks,
    done: Arc<AtomicU64>,
) -> anyhow::Result<u64> {
    let consumer = group_consumer(settings, from)?;
    let producer = Producer::new(settings)?.with_deadline(Duration::from_secs(30));
    let mut deliveries = Deliveries::default();
    let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut moved = 0u64;
    while moved < n {
        let mut records = Vec::with_capacity(batch);
        let first = consumer.recv().await?;
        records.push(streamlake_kafka::Record::from_message(&first));
        while records.len() < batch {
            match tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await {
                Ok(m) => records.push(streamlake_kafka::Record::from_message(&m?)),
                Err(_) => break,
            }
        }
        let headers: Vec<Headers> = records
            .iter()
            .map(streamlake_pipeline::runtime::original_headers)
            .collect();
        if acks == Acks::AtTheEnd {
            for (r, h) in records.iter().zip(&headers) {
                let record = Outgoing {
                    key: r.key.as_deref(),
                    payload: r.payload.as_deref().unwrap_or_default(),
                    headers: Some(h.to_owned_headers()),
                };
                producer.queue(to, record, &mut deliveries)?;
                last.insert((r.topic.clone(), r.partition), r.offset);
            }
            deliveries.collect_ready()?;
            if deliveries.len() > MAX_UNACKNOWLEDGED {
                deliveries.wait_until(MAX_UNACKNOWLEDGED / 2).await?;
            }
            moved += records.len() as u64;
            done.store(moved, Ordering::Relaxed);
            continue;
        }
        try_join_all(records.iter().zip(&headers).map(|(r, h)| {
            producer.send(
                to,
                r.key.as_deref(),
                r.payload.as_deref().unwrap_or_default(),
                h,
            )
        }))
        .await?;
        for r in &records {
            consumer.store_offset(&r.topic, r.partition, r.offset + 1)?;
        }
        moved += records.len() as u64;
        done.store(moved, Ordering::Relaxed);
    }
    deliveries.all_delivered().await?;
    for ((topic, partition), offset) in last {
        consumer.store_offset(&topic, partition, offset + 1)?;
    }
    Ok(moved)
}

/// Reads `n` records and drops them: the ceiling of any sink.
async fn bare_consume(
    settings: &KafkaSettings,
    topic: &str,
    n: u64,
    done: Arc<AtomicU64>,
) -> anyhow::Result<u64> {
    let consumer = group_consumer(settings, topic)?;
    let mut read = 0u64;
    while read < n {
        let m = consumer.recv().await?;
        std::hint::black_box(m.payload());
        read += 1;
        done.store(read, Ordering::Relaxed);
    }
    Ok(read)
}

fn group_consumer(settings: &KafkaSettings, topic: &str) -> anyhow::Result<StreamConsumer> {
    let mut cfg = settings.consumer_config();
    cfg.set(
        "group.id",
        format!("bench-{}", uuid::Uuid::new_v4().simple()),
    )
    .set("enable.auto.offset.store", "false")
    .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cfg.create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

async fn wait_for(what: &str, timeout: Duration, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("{what} did not finish within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `pipeline` run until it has read `n` records, then stopped (the stop is part of the time).
async fn processor(
    label: &str,
    config: &Config,
    pipeline: &streamlake_config::Pipeline,
    settings: &KafkaSettings,
    stats: &Arc<ProcessorStats>,
    n: u64,
) -> anyhow::Result<Measured> {
    let progress: Progress = {
        let stats = stats.clone();
        Arc::new(move || stats.records_in.load(Ordering::Relaxed))
    };
    measure(label, progress, async {
        let shutdown = CancellationToken::new();
        let task = {
            let (config, pipeline, settings, stats, shutdown) = (
                config.clone(),
                pipeline.clone(),
                settings.clone(),
                stats.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                run_pipeline(
                    &config,
                    &pipeline,
                    &settings,
                    Default::default(),
                    stats,
                    shutdown,
                )
                .await
            })
        };
        wait_for("the processor", Duration::from_secs(600), || {
            stats.records_in.load(Ordering::Relaxed) >= n
        })
        .await?;
        shutdown.cancel();
        task.await?.map_err(|e| anyhow!("{e}"))?;
        Ok(stats.records_in.load(Ordering::Relaxed))
    })
    .await
}

/// The air-quality example written under `dir` with its schemas, loaded, its data under
/// `dir/data`.
pub(crate) fn example_config(dir: &std::path::Path) -> anyhow::Result<Config> {
    std::fs::create_dir_all(dir.join("schemas"))?;
    std::fs::write(dir.join("schemas/tenant-a-air-quality.json"), SCHEMA_A)?;
    std::fs::write(dir.join("schemas/tenant-b-air-quality.json"), SCHEMA_B)?;
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("data/sensor-community-sample.json"), SAMPLE)?;
    let path = dir.join("streamlake.toml");
    std::fs::write(&path, EXAMPLE)?;
    let mut config: Config = streamlake_config::load(
        &path,
        &[&streamlake_sinks::SINKS, &streamlake_pipeline::STEPS],
    )
    .map_err(|e| anyhow!("{e}"))?;
    config.data_dir = dir.join("data");
    Ok(config)
}

pub(crate) async fn run(args: &BenchPipelineArgs) -> anyhow::Result<ExitCode> {
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let n = args.records;
    let dir = tempfile::tempdir()?;
    let config = example_config(dir.path())?;

    let (broker, settings) = start_broker(dir.path()).await?;
    let (bare_out, bare_out_queued) = ("bench.bare-out", "bench.bare-out-queued");
    let admin = provision_with(&settings, &config, &[bare_out, bare_out_queued]).await?;
    let (tenant, ds) = first_dataset(&config)?;
    let (raw, clean) = (ds.raw_topic.clone(), ds.clean_topic.clone());

    eprintln!("writing {n} tenant-a events to {raw}");
    let producer = Producer::new(&settings)?.with_deadline(Duration::from_secs(60));
    let evs = events(10_000);
    for chunk in (0..n as usize).collect::<Vec<_>>().chunks(5_000) {
        try_join_all(chunk.iter().map(|&i| {
            let (key, body) = &evs[i % evs.len()];
            let headers = Headers::new()
                .with(streamlake_core::headers::TENANT, tenant.id.as_str())
                .with(streamlake_core::headers::DATASET, ds.id.as_str())
                .with(streamlake_core::headers::SCHEMA_VERSION, "1")
                .with(
                    streamlake_core::headers::INGESTION_ID,
                    uuid::Uuid::now_v7().to_string(),
                )
                .with(streamlake_core::headers::PRODUCER_SERVICE, "bench")
                .with(
                    streamlake_core::headers::INGESTED_AT,
                    streamlake_pipeline::json::rfc3339(chrono::Utc::now()),
                )
                .with(streamlake_core::headers::CONTENT_TYPE, "application/json");
            let producer = producer.clone();
            let raw = raw.clone();
            async move {
                producer
                    .send(&raw, Some(key.as_bytes()), body, &headers)
                    .await
            }
        }))
        .await?;
    }

    let pipeline = config.pipelines["air-quality"].clone();
    let batch = pipeline.batch_max_size;
    let mut results = Vec::new();
    let (done, progress) = counter();
    results.push(
        measure(
            "bare consume -> produce loop, records queued (ceiling)",
            progress,
            bare_loop(
                &settings,
                &raw,
                bare_out_queued,
                n,
                batch,
                Acks::AtTheEnd,
                done,
            ),
        )
        .await?,
    );
    let (done, progress) = counter();
    results.push(
        measure(
            "bare consume -> produce loop, each batch's acknowledgements awaited",
            progress,
            bare_loop(&settings, &raw, bare_out, n, batch, Acks::EachBatch, done),
        )
        .await?,
    );
    let stats = Arc::new(ProcessorStats::default());
    results.push(
        processor(
            "processor, exactly once (air-quality pipeline)",
            &config,
            &pipeline,
            &settings,
            &stats,
            n,
        )
        .await?,
    );
    let emitted = stats.emitted.load(Ordering::Relaxed);
    let dead = stats.dead_lettered.load(Ordering::Relaxed);
    let (done, progress) = counter();
    results.push(
        measure(
            "bare consume of the clean topic (sink ceiling)",
            progress,
            bare_consume(&settings, &clean, emitted, done),
        )
        .await?,
    );

    // (sink, whether it measures clean -> durable latency): the CSV sink, the cheapest per
    // row, runs both ways to show what freshness's measurement costs.
    let mut sinks: Vec<(streamlake_config::Sink, bool)> = Vec::new();
    let mut csv = config.sinks["lake"].clone();
    csv.name = "csv".to_owned();
    csv.store = ComponentSettings::new("csv", "sinks.csv.csv", serde_json::json!({}));
    sinks.push((csv.clone(), true));
    sinks.push((csv, false));
    sinks.push((config.sinks["lake"].clone(), true));
    if !args.postgres.skip_postgres {
        let mut pg = config.sinks["bronze"].clone();
        let table = &mut pg.store.table;
        table["schema"] = "streamlake_bench".into();
        table["url"] = args.postgres.postgres_url.clone().into();
        if let Some(t) = table.as_object_mut() {
            t.remove("url_env");
        }
        sinks.push((pg, true));
    }
    for (mut sink, measured) in sinks {
        sink.datasets.retain(|d| d.tenant == tenant.id);
        sink.group = format!("bench-sink-{}", uuid::Uuid::new_v4().simple());
        let stats = Arc::new(SinkStats {
            skip_durable_latency: !measured,
            ..SinkStats::default()
        });
        let label = if measured {
            format!("{} sink", sink.store.kind)
        } else {
            format!("{} sink, durable latency not measured", sink.store.kind)
        };
        let progress: Progress = {
            let stats = stats.clone();
            Arc::new(move || stats.rows.load(Ordering::Relaxed))
        };
        results.push(
            measure(&label, progress, async {
                let shutdown = CancellationToken::new();
                let task = {
                    let (config, sink, settings, stats, shutdown) = (
                        config.clone(),
                        sink.clone(),
                        settings.clone(),
                        stats.clone(),
                        shutdown.clone(),
                    );
                    tokio::spawn(async move {
                        run_sink(
                            &config,
                            &sink,
                            &settings,
                            &config.data_dir,
                            Default::default(),
                            stats,
                            shutdown,
                        )
                        .await
                    })
                };
                wait_for(&label, Duration::from_secs(600), || {
                    stats.rows.load(Ordering::Relaxed) >= emitted
                })
                .await?;
                // Stopping flushes what a buffering sink still holds: part of the measurement.
                shutdown.cancel();
                task.await?.map_err(|e| anyhow!("{e}"))?;
                Ok(stats.rows.load(Ordering::Relaxed))
            })
            .await?,
        );
    }
    // The processor once more without transactions (a group of its own, from the start), to
    // show what exactly-once costs.
    let mut at_least_once = pipeline.clone();
    at_least_once.exactly_once = false;
    at_least_once.group = format!("bench-alo-{}", uuid::Uuid::new_v4().simple());
    results.push(
        processor(
            "processor, at-least-once (no transactions)",
            &config,
            &at_least_once,
            &settings,
            &Arc::new(ProcessorStats::default()),
            n,
        )
        .await?,
    );
    // Shorter commits (and batch waits), each in a group of its own from the start: what a
    // lower latency to the clean topic costs in throughput.
    for &ms in &args.commit_interval_ms {
        let mut shorter = pipeline.clone();
        shorter.commit_interval = Duration::from_millis(ms);
        shorter.batch_max_wait = Duration::from_millis(ms / 2);
        shorter.group = format!("bench-commit-{ms}-{}", uuid::Uuid::new_v4().simple());
        results.push(
            processor(
                &format!(
                    "processor, exactly once, commits every {ms} ms, batches wait {} ms",
                    (ms / 2).max(1)
                ),
                &config,
                &shorter,
                &settings,
                &Arc::new(ProcessorStats::default()),
                n,
            )
            .await?,
        );
    }
    // Clients first, so none of them reports the broker going away.
    drop(producer);
    drop(admin);
    broker.stop().await;

    let mut command = format!(
        "streamlake-bench pipeline --records {n}{}",
        if args.postgres.skip_postgres {
            " --skip-postgres"
        } else {
            ""
        }
    );
    if !args.commit_interval_ms.is_empty() {
        let list: Vec<String> = args.commit_interval_ms.iter().map(u64::to_string).collect();
        command.push_str(&format!(" --commit-interval-ms {}", list.join(",")));
    }
    let mut report = format!(
        "### Processor and sinks ({})\n\n`{command}` — Apache Kafka (one node) on loopback, 2 cores shared by broker and bench; tenant-a air-quality events (about 250 bytes) with gateway headers, processed as the air-quality example configures ({emitted} clean, {dead} dead-lettered).\n\n| | records | records/s | CPU s per 1M records | ratio |\n|---|---|---|---|---|\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
    );
    let loop_rate = results[0].rate();
    let consume_rate = results
        .iter()
        .find(|m| m.label.starts_with("bare consume of"))
        .map_or(f64::NAN, Measured::rate);
    for m in &results {
        let ratio = if m.label.starts_with("bare consume -> produce loop, each") {
            format!("{:.2} of the queueing loop", m.rate() / loop_rate)
        } else if m.label.starts_with("bare") {
            "baseline".to_owned()
        } else if m.label.starts_with("processor") {
            format!("**{:.2}** of the bare loop", m.rate() / loop_rate)
        } else {
            format!("{:.2} of the bare consume", m.rate() / consume_rate)
        };
        report.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {ratio} |\n",
            m.label,
            m.records,
            m.rate(),
            m.cpu / (m.records as f64 / 1e6)
        ));
    }
    publish(&report, args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
