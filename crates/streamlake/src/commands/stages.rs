//! `streamlake process` and `streamlake sink`: one processor pipeline or one sink as its own
//! process (several processes with the same pipeline share its partitions), and the start of
//! every enabled pipeline and sink inside `streamlake up`.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use streamlake_config::Config;
use streamlake_core::Health;
use streamlake_kafka::{KafkaSettings, Membership};
use streamlake_pipeline::{run_pipeline, watch_stage, ConfigProcessor, ProcessorStats, StageWatch};
use streamlake_sinks::{run_sink, SinkStats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::StageMetrics;
use super::Connection;
use crate::args::StageArgs;

/// How often a running stage logs its counters.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How long a stage of `up` may hold no partitions while its topics wait before `/readyz`
/// reports it stalled.
const STALL_WINDOW: Duration = Duration::from_secs(30);

/// Static membership when the process was given a name, dynamic otherwise.
fn membership(instance_id: Option<&str>) -> Membership {
    instance_id.map_or_else(Membership::default, Membership::fixed)
}

fn pick<'c, T>(
    what: &str,
    section: &str,
    items: &'c std::collections::BTreeMap<String, T>,
    name: Option<&str>,
) -> anyhow::Result<&'c T> {
    let names: Vec<&str> = items.keys().map(String::as_str).collect();
    match name {
        Some(n) => items.get(n).ok_or_else(|| {
            anyhow!(
                "no {what} \"{n}\" in the configuration; configured: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        }),
        None if items.len() == 1 => Ok(items.values().next().expect("one")),
        None if items.is_empty() => {
            bail!("the configuration declares no {what} ([{section}.NAME])")
        }
        None => bail!(
            "several {what}s are configured ({}); choose one with --pipeline",
            names.join(", ")
        ),
    }
}

/// Logs counters every [`PROGRESS_EVERY`] until `shutdown`.
fn progress(shutdown: CancellationToken, report: impl Fn() + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => report(),
            }
        }
    })
}

fn processor_progress(
    name: String,
    stats: Arc<ProcessorStats>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    progress(shutdown, move || {
        let (records_in, emitted, dead_lettered, skipped) = stats.snapshot();
        tracing::info!(pipeline = %name, records_in, emitted, dead_lettered, skipped, "processor progress");
    })
}

fn sink_progress(
    name: String,
    stats: Arc<SinkStats>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    progress(shutdown, move || {
        tracing::info!(sink = %name,
            records_in = stats.records_in.load(Ordering::Relaxed),
            rows = stats.rows.load(Ordering::Relaxed),
            dead_lettered = stats.dead_lettered.load(Ordering::Relaxed),
            flushes = stats.flushes.load(Ordering::Relaxed),
            "sink progress");
    })
}

/// `streamlake process --pipeline NAME`.
pub(crate) async fn process(conn: &Connection, args: &StageArgs) -> anyhow::Result<ExitCode> {
    let pipeline = pick(
        "pipeline",
        "pipelines",
        &conn.config.pipelines,
        args.pipeline.as_deref(),
    )?;
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let stats = Arc::new(ProcessorStats::default());
    let reporter = processor_progress(pipeline.name.clone(), stats.clone(), shutdown.clone());
    let total = run_pipeline(
        &conn.config,
        pipeline,
        &conn.settings,
        membership(args.instance_id.as_deref()),
        stats.clone(),
        shutdown,
    )
    .await
    .map_err(|e| anyhow!("pipeline {}: {e}", pipeline.name))?;
    reporter.abort();
    let (records_in, emitted, dead, skipped) = stats.snapshot();
    eprintln!(
        "pipeline {}: {} records in {} batches; {records_in} processed, {emitted} emitted, {dead} dead-lettered, {skipped} skipped",
        pipeline.name, total.records, total.batches
    );
    Ok(ExitCode::SUCCESS)
}

/// `streamlake sink --pipeline NAME`.
pub(crate) async fn sink(conn: &Connection, args: &StageArgs) -> anyhow::Result<ExitCode> {
    let sink = pick(
        "sink",
        "sinks",
        &conn.config.sinks,
        args.pipeline.as_deref(),
    )?;
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let stats = Arc::new(SinkStats::default());
    let reporter = sink_progress(sink.name.clone(), stats.clone(), shutdown.clone());
    let total = run_sink(
        &conn.config,
        sink,
        &conn.settings,
        &conn.config.data_dir,
        membership(args.instance_id.as_deref()),
        stats.clone(),
        shutdown,
    )
    .await
    .map_err(|e| anyhow!("sink {}: {e}", sink.name))?;
    reporter.abort();
    eprintln!(
        "sink {}: {} records in {} batches; {} rows written, {} dead-lettered",
        sink.name,
        total.records,
        total.batches,
        stats.rows.load(Ordering::Relaxed),
        stats.dead_lettered.load(Ordering::Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}

/// Starts every enabled pipeline and sink of `config` as tasks that run until `shutdown`, each
/// a static member of its group named `{instance}-{group}` (so a restarted `up` takes its
/// partitions back at once), each watched for holding no partitions while its topics wait.
pub(crate) fn start_all(
    config: &Arc<Config>,
    settings: &KafkaSettings,
    instance: &str,
    health: &Health,
    metrics: &StageMetrics,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let watch = |component: String, group: &str, topics: Vec<String>| {
        let stage = StageWatch {
            component,
            group: group.to_owned(),
            topics,
            membership: Membership::fixed(format!("{instance}-{group}")),
            window: STALL_WINDOW,
        };
        let membership = stage.membership.clone();
        tokio::spawn(watch_stage(
            stage,
            settings.clone(),
            health.clone(),
            shutdown.clone(),
        ));
        membership
    };
    for pipeline in config.pipelines.values().filter(|p| p.enabled) {
        let topics = ConfigProcessor::new(config, pipeline)
            .map(|p| p.topics())
            .unwrap_or_default();
        let membership = watch(
            format!("pipeline {}", pipeline.name),
            &pipeline.group,
            topics,
        );
        let (config, settings, shutdown) = (config.clone(), settings.clone(), shutdown.clone());
        let name = pipeline.name.clone();
        let stats = Arc::new(ProcessorStats::default());
        metrics.processor(&name, &stats);
        tasks.push(tokio::spawn(async move {
            let pipeline = &config.pipelines[&name];
            let reporter = processor_progress(name.clone(), stats.clone(), shutdown.clone());
            if let Err(e) =
                run_pipeline(&config, pipeline, &settings, membership, stats, shutdown).await
            {
                tracing::error!(pipeline = %name, error = %e, "pipeline could not start");
            }
            reporter.abort();
        }));
    }
    for sink in config.sinks.values().filter(|s| s.enabled) {
        let topics = streamlake_sinks::sink::topics_of(config, sink);
        let membership = watch(format!("sink {}", sink.name), &sink.group, topics);
        let (config, settings, shutdown) = (config.clone(), settings.clone(), shutdown.clone());
        let name = sink.name.clone();
        let stats = Arc::new(SinkStats::default());
        metrics.sink(&name, &stats);
        tasks.push(tokio::spawn(async move {
            let sink = &config.sinks[&name];
            let reporter = sink_progress(name.clone(), stats.clone(), shutdown.clone());
            let run = run_sink(
                &config,
                sink,
                &settings,
                &config.data_dir,
                membership,
                stats,
                shutdown,
            );
            if let Err(e) = run.await {
                tracing::error!(sink = %name, error = %e, "sink could not start");
            }
            reporter.abort();
        }));
    }
    tasks
}
