//! A configured sink as one member of its consumer group.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streamlake_config::{Config, Sink as SinkConfig, SinkKind};
use streamlake_kafka::{ConsumerOptions, HandlerError, KafkaSettings, Producer, RunStats};
use streamlake_pipeline::supervise;
use tokio_util::sync::CancellationToken;

use crate::sink::{topics_of, Sink, SinkHandler, SinkStats};

/// How long a dead letter may wait for its acknowledgement before the batch is failed.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `sink` until `shutdown`, restarting (and reopening the store) after failures. Files
/// are written under `data_dir` unless configured with absolute paths.
pub async fn run_sink(
    config: &Config,
    sink: &SinkConfig,
    settings: &KafkaSettings,
    data_dir: &Path,
    stats: Arc<SinkStats>,
    shutdown: CancellationToken,
) -> Result<RunStats, HandlerError> {
    let producer = Producer::new(settings)?.with_deadline(PRODUCE_DEADLINE);
    let mut options = ConsumerOptions::new(sink.group.clone(), topics_of(config, sink));
    options.batch_max_size = sink.batch_max_size;
    options.batch_max_wait = Duration::from_millis(200);
    tracing::info!(sink = %sink.name, kind = sink.kind.name(), group = %sink.group, topics = ?options.topics, "sink starting");
    let total = match &sink.kind {
        SinkKind::Csv(c) => {
            let open = || async { Ok(crate::csv::CsvSink::open(c.clone(), data_dir)) };
            run_with(
                config, sink, settings, options, &producer, &stats, open, shutdown,
            )
            .await
        }
        #[cfg(feature = "parquet")]
        SinkKind::Parquet(c) => {
            let open = || async { Ok(crate::parquet::ParquetSink::open(c.clone(), data_dir)) };
            run_with(
                config, sink, settings, options, &producer, &stats, open, shutdown,
            )
            .await
        }
        #[cfg(feature = "postgres")]
        SinkKind::Postgres(c) => {
            let open = || crate::postgres::PostgresSink::open(c.clone());
            run_with(
                config, sink, settings, options, &producer, &stats, open, shutdown,
            )
            .await
        }
        #[allow(unreachable_patterns)]
        other => {
            return Err(format!(
                "sink {}: this build has no {} sink (cargo feature `{}`)",
                sink.name,
                other.name(),
                other.name()
            )
            .into())
        }
    };
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        tracing::warn!(sink = %sink.name, error = %e, "producer flush at shutdown failed");
    }
    Ok(total)
}

#[allow(clippy::too_many_arguments)]
async fn run_with<S, F, Fut>(
    config: &Config,
    sink: &SinkConfig,
    settings: &KafkaSettings,
    options: ConsumerOptions,
    producer: &Producer,
    stats: &Arc<SinkStats>,
    mut open: F,
    shutdown: CancellationToken,
) -> RunStats
where
    S: Sink,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<S, HandlerError>>,
{
    supervise(
        &sink.name,
        settings,
        options,
        || {
            let opened = open();
            async move {
                let store = opened.await?;
                Ok::<_, HandlerError>(SinkHandler::new(
                    config,
                    sink,
                    store,
                    producer.clone(),
                    stats.clone(),
                ))
            }
        },
        shutdown,
    )
    .await
}
