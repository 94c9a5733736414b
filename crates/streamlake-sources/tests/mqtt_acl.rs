//! The example's MQTT access rules (`examples/air-quality/mosquitto/`), run as shipped on a
//! Mosquitto of their own: a tenant's client publishes into its own tenant, not into another's,
//! and anonymous clients are refused. StreamLake's client reads with its own credentials.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use streamlake_gateway::Gateway;
use streamlake_sources::mqtt::run_mqtt;
use streamlake_sources::SourceStats;
use streamlake_testkit::{eventually, example, free_local_addr, unique, Reader, Stack};
use tokio_util::sync::CancellationToken;

/// Connects as `user` (`None`: anonymous) and publishes `payload` to `topic` with QoS 1: the
/// broker's CONNACK code, and whether the publish was acknowledged.
async fn publish_as(
    port: u16,
    user: Option<&str>,
    topic: &str,
    payload: Vec<u8>,
) -> (ConnectReturnCode, bool) {
    let mut options = MqttOptions::new(unique("dev"), "127.0.0.1", port);
    if let Some(user) = user {
        options.set_credentials(user, format!("dev-mqtt-{user}"));
    }
    let (client, mut events) = AsyncClient::new(options, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let mut code = None;
    let mut acked = false;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    code = Some(c.code);
                    if c.code != ConnectReturnCode::Success {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked = true;
                    return;
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(c)) => {
                    code = Some(c);
                    return;
                }
                Err(_) => return,
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
    (code.expect("a CONNACK"), acked)
}

#[tokio::test]
async fn a_tenants_client_cannot_publish_into_another_tenant() {
    // The shipped Mosquitto configuration, on a port of its own.
    let port = free_local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let mut mosquitto = tokio::process::Command::new(example("air-quality/mosquitto/run.sh"))
        .arg(port.to_string())
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run examples/air-quality/mosquitto/run.sh (Mosquitto is installed by scripts/setup.sh)");
    let listening = eventually(Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(listening.is_some(), "Mosquitto did not start on {port}");

    // StreamLake reads as user `streamlake`; its password comes from the environment.
    let password_env = format!("STREAMLAKE_TEST_MQTT_PASSWORD_{}", std::process::id());
    std::env::set_var(&password_env, "dev-mqtt-streamlake");
    let (raw_a, raw_b) = (unique("raw-a"), unique("raw-b"));
    let toml = format!(
        r#"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
client_id = "{client}"
topic_prefix = "streamlake"
username = "streamlake"
password_env = "{password_env}"

[tenants.tenant-a]
dlq_topic = "{dlq_a}"
[tenants.tenant-a.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw_a}"
clean_topic = "{clean_a}"

[tenants.tenant-b]
dlq_topic = "{dlq_b}"
[tenants.tenant-b.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw_b}"
clean_topic = "{clean_b}"
"#,
        client = unique("streamlake"),
        dlq_a = unique("dlq-a"),
        dlq_b = unique("dlq-b"),
        clean_a = unique("clean-a"),
        clean_b = unique("clean-b"),
    );
    let stack = Stack::new(&toml).await;
    let ingestor = Arc::clone(
        Gateway::new(&stack.config, &stack.settings)
            .unwrap()
            .ingestor(),
    );
    let stats = Arc::new(SourceStats::default());
    let shutdown = CancellationToken::new();
    let task = {
        let (mqtt, stats, shutdown) = (
            stack.config.mqtt.clone(),
            Arc::clone(&stats),
            shutdown.clone(),
        );
        tokio::spawn(async move { run_mqtt(&mqtt, ingestor, stats, shutdown).await })
    };
    // Subscribed once a probe of tenant-a's own comes through.
    let subscribed = eventually(Duration::from_secs(30), || async {
        let _ = publish_as(
            port,
            Some("tenant-a"),
            "streamlake/tenant-a/probe",
            b"{}".to_vec(),
        )
        .await;
        // A probe published on an earlier try may be the one counted.
        (stats.unroutable.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert!(
        subscribed.is_some(),
        "StreamLake did not subscribe with its credentials"
    );

    // Anonymous clients are refused outright.
    let (code, _) = publish_as(port, None, "streamlake/tenant-b/sensor", b"{}".to_vec()).await;
    assert_ne!(code, ConnectReturnCode::Success);
    // tenant-a writing as tenant-b: the broker acknowledges and drops it (MQTT 3.1.1 cannot
    // refuse a publish); then tenant-a's own event.
    let forged = json!({"sensor_id": "forged", "v": 1});
    let (code, _) = publish_as(
        port,
        Some("tenant-a"),
        "streamlake/tenant-b/sensor",
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    assert_eq!(code, ConnectReturnCode::Success);
    let own = json!({"sensor_id": "own", "v": 2});
    let (_, acked) = publish_as(
        port,
        Some("tenant-a"),
        "streamlake/tenant-a/sensor",
        serde_json::to_vec(&own).unwrap(),
    )
    .await;
    assert!(acked);

    let written = Reader::new(&stack.settings, &raw_a)
        .await
        .read(1, Duration::from_secs(30))
        .await;
    assert_eq!(written[0].json::<Value>().unwrap(), own);
    // The forged event was published first; had it got through, it would be in by now.
    let admin = streamlake_kafka::Admin::new(&stack.settings).unwrap();
    let held = admin.describe_topic(&raw_b).await.unwrap().message_count();
    assert_eq!(held, 0, "an event published by tenant-a reached tenant-b");

    shutdown.cancel();
    task.await.unwrap();
    let _ = mosquitto.kill().await;
}
