//! A configured pipeline as one member of its consumer group.

use std::sync::Arc;
use std::time::Duration;

use streamlake_config::{Config, Pipeline};
use streamlake_kafka::{
    ConsumerOptions, HandlerError, KafkaSettings, Membership, Producer, RunStats,
    PROCESSOR_PRODUCER_DEFAULTS,
};
use tokio_util::sync::CancellationToken;

use crate::processing::ConfigProcessor;
use crate::runtime::{supervise, ProcessorHandler};
use crate::ProcessorStats;

/// How long a produce may wait for its acknowledgement before the batch is failed and read
/// again.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(30);

/// How long a transaction of a processor that died may stay open before the broker aborts it
/// (readers of the clean topic wait for it meanwhile). A member restarted with the same
/// instance id aborts it at once.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `pipeline` until `shutdown`, restarting after failures. Several processes running the
/// same pipeline share its partitions (one consumer group); `membership` names this member
/// across restarts (static membership) or leaves it dynamic. With `exactly_once`, each run
/// writes through a transactional producer of its own, whose id is the group and the instance
/// (a random one for a dynamic member), so a restarted member fences its previous incarnation.
pub async fn run_pipeline(
    config: &Config,
    pipeline: &Pipeline,
    settings: &KafkaSettings,
    membership: Membership,
    stats: Arc<ProcessorStats>,
    shutdown: CancellationToken,
) -> Result<RunStats, HandlerError> {
    let processor = ConfigProcessor::new(config, pipeline)?;
    // At-least-once: one producer for every run. Exactly once: each run makes its own
    // transactional producer, since a failed transaction leaves its producer unusable.
    let producing = if pipeline.exactly_once {
        let instance = membership
            .instance_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        Producing::Transactional(format!("{}-{instance}", pipeline.group))
    } else {
        let config = settings.producer_config_over(PROCESSOR_PRODUCER_DEFAULTS);
        Producing::Shared(Producer::from_config(config)?.with_deadline(PRODUCE_DEADLINE))
    };
    let mut options = ConsumerOptions::new(pipeline.group.clone(), processor.topics());
    options.batch_max_size = pipeline.batch_max_size;
    options.batch_max_wait = pipeline.batch_max_wait;
    options.membership = membership;
    tracing::info!(pipeline = %pipeline.name, group = %pipeline.group, topics = ?options.topics,
        exactly_once = pipeline.exactly_once, "processor starting");
    let total = supervise(
        &pipeline.name,
        settings,
        options,
        || {
            let (processor, stats, producing) = (processor.clone(), stats.clone(), &producing);
            async move {
                Ok::<_, HandlerError>(match producing {
                    Producing::Shared(producer) => {
                        ProcessorHandler::new(processor, producer.clone(), stats)
                            .with_commit_interval(pipeline.commit_interval)
                    }
                    Producing::Transactional(id) => {
                        let config = settings.producer_config_over(PROCESSOR_PRODUCER_DEFAULTS);
                        let producer = Producer::transactional(config, id, TRANSACTION_TIMEOUT)
                            .await?
                            .with_deadline(PRODUCE_DEADLINE);
                        ProcessorHandler::transactional(processor, producer, stats)
                            .with_commit_interval(pipeline.commit_interval)
                    }
                })
            }
        },
        shutdown,
    )
    .await;
    // Each run's last checkpoint waited for its acknowledgements (or committed its
    // transaction), so this is a formality; never drop queued records silently.
    // librdkafka's flush blocks its thread: not one of the runtime's workers.
    if let Producing::Shared(producer) = producing {
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
    }
    Ok(total)
}

/// How a pipeline's runs produce.
enum Producing {
    /// One producer shared by every run (at-least-once).
    Shared(Producer),
    /// A transactional producer per run, with this `transactional.id` (exactly once).
    Transactional(String),
}
