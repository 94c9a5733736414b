//! MQTT ingestion: subscribe to `{prefix}/+/+` with QoS 1 on a persistent session,
//! run every message through the ingestion core's path for the tenant and dataset its topic names,
//! and acknowledge it to the MQTT broker only after Kafka acknowledged the event or its dead
//! letter. A message Kafka did not take is retried until it is; at shutdown it stays
//! unacknowledged, and the MQTT broker delivers it again to the next session. Acknowledgements
//! go out in the order the messages arrived (MQTT 3.1.1 requires it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use streamlake_config::MqttConfig;
use streamlake_core::{DatasetId, RetryPolicy, TenantId};
use streamlake_ingest::{Ingested, Ingestor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The `producer_service` header of events that came over MQTT.
pub const PRODUCER_SERVICE: &str = "streamlake-mqtt";

/// Counters of MQTT ingestion.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Messages received.
    pub received: AtomicU64,
    /// Events written to a raw topic.
    pub accepted: AtomicU64,
    /// Events dead-lettered (invalid).
    pub dead_lettered: AtomicU64,
    /// Messages on a topic that names no configured dataset (acknowledged and logged).
    pub unroutable: AtomicU64,
    /// Ingest attempts Kafka did not acknowledge (retried).
    pub retries: AtomicU64,
    /// Messages acknowledged to the MQTT broker.
    pub acked: AtomicU64,
}

/// Tenant and dataset of `topic` under `prefix`, e.g. `streamlake/tenant-a/air-quality`.
pub fn route(prefix: &str, topic: &str) -> Option<(TenantId, DatasetId)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let (tenant, dataset) = rest.split_once('/')?;
    Some((
        TenantId::new(tenant.to_owned()).ok()?,
        DatasetId::new(dataset.to_owned()).ok()?,
    ))
}

/// Runs MQTT ingestion until `shutdown`. Connection failures are logged and retried with
/// back-off (`RetryPolicy::RECONNECT`); they never end the run.
pub async fn run_mqtt(
    config: &MqttConfig,
    ingestor: Arc<Ingestor>,
    stats: Arc<MqttStats>,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)))
        .set_clean_session(false)
        .set_manual_acks(true);
    if let Some(user) = &config.username {
        let password = config
            .password_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .unwrap_or_default();
        options.set_credentials(user, password);
    }
    let (client, eventloop) = AsyncClient::new(options, config.max_in_flight.max(1) * 2);
    let (tx, rx) = mpsc::channel::<Publish>(config.max_in_flight.max(1));
    let filter = format!("{}/+/+", config.topic_prefix);
    tracing::info!(host = %config.host, port = config.port, %filter, "MQTT ingestion starting");
    let worker = tokio::spawn(ingest_in_order(
        config.topic_prefix.clone(),
        config.max_in_flight.max(1),
        client.clone(),
        ingestor,
        stats,
        rx,
        shutdown.clone(),
    ));
    poll_connection(eventloop, client.clone(), filter, tx, shutdown.clone()).await;
    let _ = worker.await;
    let _ = client.disconnect().await;
    tracing::info!("MQTT ingestion stopped");
}

/// Drives the connection: (re)subscribes on every connection and hands publishes to the worker.
async fn poll_connection(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filter: String,
    tx: mpsc::Sender<Publish>,
    shutdown: CancellationToken,
) {
    let mut backoff = RetryPolicy::RECONNECT.backoff();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                tracing::info!(session_present = ack.session_present, "MQTT connected");
                if let Err(e) = client.subscribe(&filter, QoS::AtLeastOnce).await {
                    tracing::warn!(error = %e, "MQTT subscribe failed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Waits when the worker is busy: the MQTT broker holds what is not read.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    sent = tx.send(p) => if sent.is_err() { break },
                }
            }
            Ok(_) => {}
            Err(e) => {
                let pause = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?pause, "MQTT connection failed; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Ingests messages concurrently (up to `window`) and acknowledges them in arrival order.
async fn ingest_in_order(
    prefix: String,
    window: usize,
    client: AsyncClient,
    ingestor: Arc<Ingestor>,
    stats: Arc<MqttStats>,
    mut rx: mpsc::Receiver<Publish>,
    shutdown: CancellationToken,
) {
    let mut inflight = FuturesOrdered::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(p) = rx.recv(), if inflight.len() < window => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                let (ingestor, stats, prefix, shutdown) = (ingestor.clone(), stats.clone(), prefix.clone(), shutdown.clone());
                inflight.push_back(async move {
                    let done = ingest_one(&prefix, &ingestor, &stats, &p, &shutdown).await;
                    (p, done)
                });
            }
            Some((p, done)) = inflight.next(), if !inflight.is_empty() => {
                if !done {
                    // Shutdown before Kafka took it: leave it unacknowledged for redelivery.
                    continue;
                }
                match client.ack(&p).await {
                    Ok(()) => { stats.acked.fetch_add(1, Ordering::Relaxed); }
                    Err(e) => tracing::warn!(error = %e, topic = %p.topic, "MQTT acknowledgement failed; the message will be delivered again"),
                }
            }
        }
    }
}

/// Ingests one message until Kafka acknowledged it (true) or shutdown (false).
async fn ingest_one(
    prefix: &str,
    ingestor: &Ingestor,
    stats: &MqttStats,
    p: &Publish,
    shutdown: &CancellationToken,
) -> bool {
    let Some((tenant, dataset)) = route(prefix, &p.topic) else {
        stats.unroutable.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(topic = %p.topic, bytes = p.payload.len(), "MQTT message on a topic that is not {prefix}/TENANT/DATASET; dropped");
        return true;
    };
    let mut backoff = RetryPolicy::REDELIVER.backoff();
    let ingestion_id = Ingestor::new_ingestion_id();
    loop {
        match ingestor
            .ingest(
                &tenant,
                &dataset,
                p.payload.to_vec(),
                PRODUCER_SERVICE,
                ingestion_id.clone(),
            )
            .await
        {
            Err(unknown) => {
                stats.unroutable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %p.topic, error = %unknown, "MQTT message for an unknown dataset; dropped");
                return true;
            }
            Ok(Ingested::Accepted { .. }) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(Ingested::DeadLettered { .. }) => {
                stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(Ingested::Failed { error, .. }) => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let pause = backoff.next_delay();
                tracing::warn!(topic = %p.topic, %error, retry_in = ?pause, "Kafka did not acknowledge an MQTT message; retrying before acknowledging it");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn topics_route_to_tenant_and_dataset() {
        let (t, d) = route("streamlake", "streamlake/tenant-a/air-quality").unwrap();
        assert_eq!((t.as_str(), d.as_str()), ("tenant-a", "air-quality"));
        assert!(route("streamlake", "other/tenant-a/air-quality").is_none());
        assert!(route("streamlake", "streamlake/tenant-a").is_none());
        assert!(route("streamlake", "streamlake/Bad Tenant/x").is_none());
    }
}
