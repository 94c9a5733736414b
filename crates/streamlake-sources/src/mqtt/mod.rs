//! MQTT ingestion: subscribe to `{prefix}/+/+` with QoS 1 on a persistent session and run
//! every message through the source driver for the tenant and dataset its topic names. A
//! message is acknowledged to the MQTT broker only after Kafka acknowledged its event or dead
//! letter; at shutdown what Kafka has not taken stays unacknowledged, and the MQTT broker
//! delivers it again to the next session. Acknowledgements go out in the order the messages
//! arrived (MQTT 3.1.1 requires it), a batch at a time.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use streamlake_config::MqttConfig;
use streamlake_core::{DatasetId, RetryPolicy, TenantId};
use streamlake_ingest::Ingestor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::source::{drive, Body, Emitted, Source, SourceError, SourceStats};

/// Tenant and dataset of `topic` under `prefix`, e.g. `streamlake/tenant-a/air-quality`.
pub fn route(prefix: &str, topic: &str) -> Option<(TenantId, DatasetId)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let (tenant, dataset) = rest.split_once('/')?;
    Some((
        TenantId::new(tenant.to_owned()).ok()?,
        DatasetId::new(dataset.to_owned()).ok()?,
    ))
}

/// Messages as a [`Source`]: a batch is what arrived, up to `max_in_flight`.
#[derive(Debug)]
struct MqttSource {
    prefix: String,
    window: usize,
    client: AsyncClient,
    messages: mpsc::Receiver<Publish>,
}

impl Source for MqttSource {
    type Ack = Publish;

    fn name(&self) -> &str {
        "mqtt"
    }

    async fn poll(&mut self) -> Result<Option<Vec<Emitted<Publish>>>, SourceError> {
        // `recv` is cancel-safe: a message is either returned or stays in the channel.
        let Some(first) = self.messages.recv().await else {
            return Ok(None);
        };
        let mut batch = vec![self.emitted(first)];
        while batch.len() < self.window {
            match self.messages.try_recv() {
                Ok(p) => batch.push(self.emitted(p)),
                Err(_) => break,
            }
        }
        Ok(Some(batch))
    }

    async fn acknowledge(&mut self, acks: Vec<Publish>) {
        for p in acks {
            if let Err(e) = self.client.ack(&p).await {
                tracing::warn!(error = %e, topic = %p.topic, "MQTT acknowledgement failed; the message will be delivered again");
            }
        }
    }
}

impl MqttSource {
    fn emitted(&self, p: Publish) -> Emitted<Publish> {
        let body = match route(&self.prefix, &p.topic) {
            Some((tenant, dataset)) => Body::Event {
                tenant,
                dataset,
                bytes: p.payload.to_vec(),
            },
            None => Body::Unroutable {
                reason: format!(
                    "MQTT topic {} is not {}/TENANT/DATASET",
                    p.topic, self.prefix
                ),
            },
        };
        Emitted { body, ack: p }
    }
}

/// Runs MQTT ingestion until `shutdown`. Connection failures are logged and retried with
/// back-off (`RetryPolicy::RECONNECT`); they never end the run.
pub async fn run_mqtt(
    config: &MqttConfig,
    ingestor: Arc<Ingestor>,
    stats: Arc<SourceStats>,
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
    let window = config.max_in_flight.max(1);
    let (client, eventloop) = AsyncClient::new(options, window * 2);
    let (tx, rx) = mpsc::channel::<Publish>(window);
    let filter = format!("{}/+/+", config.topic_prefix);
    tracing::info!(host = %config.host, port = config.port, %filter, "MQTT ingestion starting");
    let connection = tokio::spawn(poll_connection(
        eventloop,
        client.clone(),
        filter,
        tx,
        shutdown.clone(),
    ));
    let mut source = MqttSource {
        prefix: config.topic_prefix.clone(),
        window,
        client: client.clone(),
        messages: rx,
    };
    if let Err(e) = drive(&mut source, &ingestor, &stats, &shutdown).await {
        tracing::error!(error = %e, "MQTT ingestion failed");
    }
    let _ = connection.await;
    let _ = client.disconnect().await;
    tracing::info!("MQTT ingestion stopped");
}

/// Drives the connection: (re)subscribes on every connection and hands publishes to the source.
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
            () = shutdown.cancelled() => break,
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
                // Waits when the source is busy: the MQTT broker holds what is not read.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    sent = tx.send(p) => if sent.is_err() { break },
                }
            }
            Ok(_) => {}
            Err(e) => {
                let pause = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?pause, "MQTT connection failed; reconnecting");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
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
