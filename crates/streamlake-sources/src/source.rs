//! The `Source` trait and its driver: a source hands out batches of events, the driver
//! ingests them through the ingestion core's path (validate, key, headers, acknowledged produce or
//! dead letter), and only then acknowledges the batch, so a source's position never runs ahead
//! of Kafka.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::join_all;
use streamlake_core::{DatasetId, RetryPolicy, TenantId};
use streamlake_ingest::{Ingested, Ingestor};
use tokio_util::sync::CancellationToken;

/// A source's failure.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// One event: its bytes as the source produced them.
pub type Event = Vec<u8>;

/// Produces events in batches.
pub trait Source: Send {
    /// Name used in the `producer_service` header and logs.
    fn name(&self) -> &str;

    /// The next batch, or `None` when the source is exhausted.
    fn poll(&mut self) -> impl Future<Output = Result<Option<Vec<Event>>, SourceError>> + Send;

    /// Every event of the last batch was acknowledged by Kafka (written or dead-lettered):
    /// the source may advance past it.
    fn acknowledge(&mut self) {}
}

/// Counters of a running source.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Events written to the raw topic.
    pub accepted: AtomicU64,
    /// Events refused by validation and dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Ingest attempts the broker did not acknowledge (each retried).
    pub retries: AtomicU64,
}

impl SourceStats {
    /// Events acknowledged so far (accepted and dead-lettered).
    pub fn done(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed) + self.dead_lettered.load(Ordering::Relaxed)
    }
}

/// Ingests everything `source` yields into `tenant`/`dataset` until it is exhausted or
/// `shutdown`. An event the broker did not acknowledge is retried (0.2 s, doubling to 5 s)
/// before the batch is acknowledged to the source.
pub async fn drive<S: Source>(
    source: &mut S,
    ingestor: &Ingestor,
    tenant: &TenantId,
    dataset: &DatasetId,
    stats: &SourceStats,
    shutdown: &CancellationToken,
) -> Result<(), SourceError> {
    let service = format!("streamlake-{}", source.name());
    while !shutdown.is_cancelled() {
        let Some(batch) = source.poll().await? else {
            break;
        };
        // Each event keeps its ingestion_id across retries, so an attempt that timed out but
        // was written is a duplicate sinks can recognise.
        let mut pending: Vec<(Event, String)> = batch
            .into_iter()
            .map(|e| (e, Ingestor::new_ingestion_id()))
            .collect();
        let mut backoff = RetryPolicy::REDELIVER.backoff();
        while !pending.is_empty() {
            let results =
                join_all(pending.iter().map(|(e, id)| {
                    ingestor.ingest(tenant, dataset, e.clone(), &service, id.clone())
                }))
                .await;
            let mut failed = Vec::new();
            for (event, result) in pending.into_iter().zip(results) {
                match result? {
                    Ingested::Accepted { .. } => {
                        stats.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ingested::DeadLettered { .. } => {
                        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ingested::Failed { error, .. } => {
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(source = source.name(), %tenant, %dataset, %error, "event not acknowledged; retrying");
                        failed.push(event);
                    }
                }
            }
            pending = failed;
            if !pending.is_empty() {
                if shutdown.is_cancelled() {
                    return Err(format!(
                        "stopped with {} events not acknowledged by the broker",
                        pending.len()
                    )
                    .into());
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        source.acknowledge();
    }
    Ok(())
}
