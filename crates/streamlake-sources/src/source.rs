//! The `Source` contract and its driver, shared by every source (generators, the poller,
//! MQTT). A source hands out batches of events, each addressed to a dataset; [`drive`] ingests
//! them through the ingestion core (validate, key, headers, acknowledged produce or dead letter),
//! retries what the broker did not acknowledge with one [`RetryPolicy`], and only then hands
//! the batch's acknowledgements back to the source, so a source's position never runs ahead of
//! Kafka.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::{self, StreamExt};
use streamlake_core::{DatasetId, RetryPolicy, TenantId, Violation};
use streamlake_ingest::{Ingested, Ingestor};
use tokio_util::sync::CancellationToken;

/// A source's failure.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Events of one batch ingested at once, at most.
const CONCURRENCY: usize = 256;

/// What a source hands the driver for one event.
#[derive(Debug)]
pub enum Body {
    /// An event's bytes, validated and keyed like an HTTP request's.
    Event {
        /// Tenant.
        tenant: TenantId,
        /// Dataset.
        dataset: DatasetId,
        /// The event.
        bytes: Vec<u8>,
    },
    /// Bytes the source itself refused (a mapping rule failed): dead-lettered with the reason.
    Refused {
        /// Tenant.
        tenant: TenantId,
        /// Dataset.
        dataset: DatasetId,
        /// What the source received.
        bytes: Vec<u8>,
        /// Why it was refused.
        violation: Violation,
    },
    /// Nothing configured receives it (an MQTT topic naming no dataset): logged, counted and
    /// acknowledged with its batch.
    Unroutable {
        /// Why.
        reason: String,
    },
}

/// One event of a batch, with what the source needs back to acknowledge it.
#[derive(Debug)]
pub struct Emitted<A> {
    /// The event.
    pub body: Body,
    /// Handed back to [`Source::acknowledge`] once the batch is acknowledged.
    pub ack: A,
}

impl Emitted<()> {
    /// An event with nothing to acknowledge but the batch.
    pub fn event(tenant: TenantId, dataset: DatasetId, bytes: Vec<u8>) -> Self {
        Self {
            body: Body::Event {
                tenant,
                dataset,
                bytes,
            },
            ack: (),
        }
    }
}

/// Produces events in batches.
pub trait Source: Send {
    /// What the source needs back per event to acknowledge it (an MQTT message), or `()`.
    type Ack: Send;

    /// Name, also the `producer_service` header as `streamlake-NAME`.
    fn name(&self) -> &str;

    /// The next batch (possibly empty), or `None` when the source is exhausted. Dropped when
    /// the run stops, so it must be cancel-safe: nothing may be lost by dropping it.
    fn poll(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<Emitted<Self::Ack>>>, SourceError>> + Send;

    /// Kafka acknowledged every event of the last batch (written or dead-lettered): the source
    /// may advance past it. `acks` are in the batch's order.
    fn acknowledge(&mut self, acks: Vec<Self::Ack>) -> impl Future<Output = ()> + Send;
}

/// Counters of a running source.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Events handed out by the source.
    pub received: AtomicU64,
    /// Events written to a raw topic.
    pub accepted: AtomicU64,
    /// Events refused (by validation or by the source) and dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Events nothing configured receives (acknowledged and logged).
    pub unroutable: AtomicU64,
    /// Ingest attempts the broker did not acknowledge (each retried).
    pub retries: AtomicU64,
    /// Events acknowledged back to the source.
    pub acknowledged: AtomicU64,
}

impl SourceStats {
    /// Events done with so far (accepted, dead-lettered or unroutable).
    pub fn done(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
            + self.unroutable.load(Ordering::Relaxed)
    }
}

/// Ingests everything `source` yields until it is exhausted or `shutdown`. An event the broker
/// did not acknowledge is retried (`RetryPolicy::REDELIVER`, same `ingestion_id`) before the
/// batch is acknowledged to the source; at shutdown a batch with unacknowledged events is left
/// unacknowledged (an MQTT broker delivers it again), and the driver returns.
pub async fn drive<S: Source>(
    source: &mut S,
    ingestor: &Ingestor,
    stats: &SourceStats,
    shutdown: &CancellationToken,
) -> Result<(), SourceError> {
    let service = format!("streamlake-{}", source.name());
    let name = source.name().to_owned();
    loop {
        let polled = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            polled = source.poll() => polled?,
        };
        let Some(batch) = polled else {
            return Ok(());
        };
        if batch.is_empty() {
            continue;
        }
        let n = batch.len() as u64;
        stats.received.fetch_add(n, Ordering::Relaxed);
        let (bodies, acks): (Vec<Body>, Vec<S::Ack>) =
            batch.into_iter().map(|e| (e.body, e.ack)).unzip();
        let done: Vec<bool> = stream::iter(bodies)
            .map(|body| ingest_until_acknowledged(&name, &service, ingestor, stats, body, shutdown))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let pending = done.iter().filter(|d| !**d).count();
        if pending > 0 {
            tracing::warn!(source = %name, pending, "stopped with events the broker did not acknowledge; the batch stays unacknowledged");
            return Ok(());
        }
        source.acknowledge(acks).await;
        stats.acknowledged.fetch_add(n, Ordering::Relaxed);
    }
}

/// Ingests one event until the broker acknowledged it or its dead letter (true) or shutdown
/// (false). The `ingestion_id` stays the same across attempts, so an attempt that timed out
/// but was written is a duplicate sinks recognise.
async fn ingest_until_acknowledged(
    name: &str,
    service: &str,
    ingestor: &Ingestor,
    stats: &SourceStats,
    body: Body,
    shutdown: &CancellationToken,
) -> bool {
    let ingestion_id = Ingestor::new_ingestion_id();
    let mut backoff = RetryPolicy::REDELIVER.backoff();
    loop {
        let result = match &body {
            Body::Unroutable { reason } => {
                stats.unroutable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %name, %reason, "event not routable; dropped");
                return true;
            }
            Body::Event {
                tenant,
                dataset,
                bytes,
            } => {
                ingestor
                    .ingest(
                        tenant,
                        dataset,
                        bytes.clone(),
                        service,
                        ingestion_id.clone(),
                    )
                    .await
            }
            Body::Refused {
                tenant,
                dataset,
                bytes,
                violation,
            } => {
                ingestor
                    .dead_letter(tenant, dataset, bytes, violation.clone(), service)
                    .await
            }
        };
        match result {
            Ok(Ingested::Accepted { .. }) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(Ingested::DeadLettered { .. }) => {
                stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(unknown) => {
                stats.unroutable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %name, error = %unknown, "event for an unknown dataset; dropped");
                return true;
            }
            Ok(Ingested::Failed { error, .. }) => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let pause = backoff.next_delay();
                tracing::warn!(source = %name, %error, retry_in = ?pause, "event not acknowledged by the broker; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}
