//! A configured pipeline as one member of its consumer group.

use std::sync::Arc;
use std::time::Duration;

use streamlake_config::{Config, Pipeline};
use streamlake_kafka::{
    ConsumerOptions, HandlerError, KafkaSettings, Membership, Producer, RunStats,
};
use tokio_util::sync::CancellationToken;

use crate::processing::ConfigProcessor;
use crate::runtime::{supervise, ProcessorHandler};
use crate::ProcessorStats;

/// How long a produce may wait for its acknowledgement before the batch is failed and read
/// again.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `pipeline` until `shutdown`, restarting after failures. Several processes running the
/// same pipeline share its partitions (one consumer group); `membership` names this member
/// across restarts (static membership) or leaves it dynamic.
pub async fn run_pipeline(
    config: &Config,
    pipeline: &Pipeline,
    settings: &KafkaSettings,
    membership: Membership,
    stats: Arc<ProcessorStats>,
    shutdown: CancellationToken,
) -> Result<RunStats, HandlerError> {
    let processor = ConfigProcessor::new(config, pipeline)?;
    let producer = Producer::new(settings)?.with_deadline(PRODUCE_DEADLINE);
    let mut options = ConsumerOptions::new(pipeline.group.clone(), processor.topics());
    options.batch_max_size = pipeline.batch_max_size;
    options.membership = membership;
    tracing::info!(pipeline = %pipeline.name, group = %pipeline.group, topics = ?options.topics, "processor starting");
    let total = supervise(
        &pipeline.name,
        settings,
        options,
        || {
            let handler = ProcessorHandler::new(processor.clone(), producer.clone(), stats.clone());
            async move { Ok::<_, HandlerError>(handler) }
        },
        shutdown,
    )
    .await;
    // Every batch waited for its acknowledgements, so this is a formality; never drop queued
    // records silently.
    // librdkafka's flush blocks its thread: not one of the runtime's workers.
    let flushed =
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(pipeline = %pipeline.name, error = %e, "producer flush at shutdown failed")
        }
        Err(e) => {
            tracing::warn!(pipeline = %pipeline.name, error = %e, "producer flush at shutdown failed")
        }
    }
    Ok(total)
}
