//! A configured sink as one member of its consumer group.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streamlake_config::{Config, Sink as SinkConfig};
use streamlake_kafka::{
    ConsumerOptions, HandlerError, KafkaSettings, Membership, Producer, RunStats,
};
use tokio_util::sync::CancellationToken;

use crate::kind::{kind_of, Run};
use crate::sink::{topics_of, SinkStats};

/// How long a dead letter may wait for its acknowledgement before the batch is failed.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `sink` until `shutdown`, restarting (and reopening the store) after failures. Files
/// are written under `data_dir` unless configured with absolute paths; `membership` names this
/// member across restarts (static membership) or leaves it dynamic.
pub async fn run_sink(
    config: &Config,
    sink: &SinkConfig,
    settings: &KafkaSettings,
    data_dir: &Path,
    membership: Membership,
    stats: Arc<SinkStats>,
    shutdown: CancellationToken,
) -> Result<RunStats, HandlerError> {
    let kind = kind_of(&sink.store)?;
    let producer = Producer::new(settings)?.with_deadline(PRODUCE_DEADLINE);
    let mut options = ConsumerOptions::new(sink.group.clone(), topics_of(config, sink));
    options.batch_max_size = sink.batch_max_size;
    options.batch_max_wait = sink.batch_max_wait;
    options.membership = membership;
    tracing::info!(sink = %sink.name, kind = kind.name(), group = %sink.group, topics = ?options.topics, "sink starting");
    let total = kind
        .run(Run {
            config,
            sink,
            settings,
            options,
            producer: &producer,
            stats: &stats,
            data_dir,
            shutdown,
        })
        .await?;
    let flushed =
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(sink = %sink.name, error = %e, "producer flush at shutdown failed");
    }
    Ok(total)
}
