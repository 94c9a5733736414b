//! MQTT ingestion against a real Mosquitto on loopback and the real broker: valid messages land
//! in the raw topic, invalid ones in the dead-letter topic, and a QoS 1 message published while
//! Kafka is down is written once Kafka is back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use streamlake_gateway::Gateway;
use streamlake_kafka::KafkaSettings;
use streamlake_sources::mqtt::run_mqtt;
use streamlake_sources::SourceStats;
use streamlake_testkit::{
    eventually, mqtt_addr, mqtt_publish, unique, PrivateBroker, Reader, Stack,
};
use tokio_util::sync::CancellationToken;

fn config(raw: &str, dlq: &str, prefix: &str, extra: &str) -> String {
    let (host, port) = mqtt_addr();
    format!(
        r#"
{extra}
[mqtt]
enabled = true
host = "{host}"
port = {port}
client_id = "{client}"
topic_prefix = "{prefix}"

[tenants.t]
dlq_topic = "{dlq}"

[tenants.t.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw}"
clean_topic = "{clean}"
"#,
        client = unique("streamlake"),
        clean = unique("clean"),
    )
}

fn start(
    config: &streamlake_config::Config,
    settings: &KafkaSettings,
) -> (
    Arc<SourceStats>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let ingestor = Arc::clone(Gateway::new(config, settings).unwrap().ingestor());
    let stats = Arc::new(SourceStats::default());
    let shutdown = CancellationToken::new();
    let task = {
        let (mqtt, stats, shutdown) = (config.mqtt.clone(), stats.clone(), shutdown.clone());
        tokio::spawn(async move { run_mqtt(&mqtt, ingestor, stats, shutdown).await })
    };
    (stats, shutdown, task)
}

async fn subscribed(stats: &SourceStats, prefix: &str) {
    // The subscription is in place once a probe message comes through.
    let probe = format!("{prefix}/t/unknown-dataset");
    let ok = eventually(Duration::from_secs(20), || async {
        mqtt_publish(&probe, b"{}".to_vec()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        (stats.unroutable.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert!(ok.is_some(), "MQTT ingestion did not subscribe");
}

#[tokio::test]
async fn valid_messages_reach_the_raw_topic_and_invalid_ones_the_dead_letter_topic() {
    let (raw, dlq, prefix) = (unique("raw"), unique("dlq"), unique("sl"));
    let stack = Stack::new(&config(&raw, &dlq, &prefix, "")).await;
    let (stats, shutdown, task) = start(&stack.config, &stack.settings);
    subscribed(&stats, &prefix).await;

    let event = json!({"sensor_id": "s1", "temperature": 21.5});
    mqtt_publish(
        &format!("{prefix}/t/sensor"),
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    mqtt_publish(&format!("{prefix}/t/sensor"), b"{not json".to_vec()).await;

    let written = Reader::new(&stack.settings, &raw)
        .await
        .read(1, Duration::from_secs(30))
        .await;
    assert_eq!(written[0].json::<Value>().unwrap(), event);
    assert_eq!(written[0].key_str(), Some("s1"));
    assert_eq!(
        written[0].header("producer_service"),
        Some(&b"streamlake-mqtt"[..])
    );
    let dead = Reader::new(&stack.settings, &dlq)
        .await
        .read(1, Duration::from_secs(30))
        .await;
    assert_eq!(dead[0].payload.as_deref(), Some(&b"{not json"[..]));
    assert_eq!(dead[0].header("error.rule"), Some(&b"json"[..]));
    assert_eq!(dead[0].header("error.stage"), Some(&b"gateway"[..]));
    let acked = eventually(Duration::from_secs(10), || async {
        (stats.acknowledged.load(Ordering::Relaxed) >= 3).then_some(())
    })
    .await;
    assert!(acked.is_some(), "{stats:?}");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_qos1_message_published_while_kafka_is_down_is_written_when_it_returns() {
    let (raw, dlq, prefix) = (unique("raw"), unique("dlq"), unique("sl"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    let path = dir.path().join("streamlake.toml");
    std::fs::write(
        &path,
        config(
            &raw,
            &dlq,
            &prefix,
            "[gateway]\nproduce_timeout_ms = 1000\n",
        ),
    )
    .unwrap();
    let config = streamlake_config::load(&path, &[]).unwrap();
    let mut broker = PrivateBroker::start(1).await;
    let settings = broker.settings();
    let admin = streamlake_kafka::Admin::new(&settings).unwrap();
    streamlake_kafka::provision(&admin, &config.declared_topics()).await;

    let (stats, shutdown, task) = start(&config, &settings);
    subscribed(&stats, &prefix).await;
    broker.stop().await;

    let event = json!({"sensor_id": "while-down", "n": 1});
    mqtt_publish(
        &format!("{prefix}/t/sensor"),
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    let retried = eventually(Duration::from_secs(30), || async {
        (stats.retries.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert!(
        retried.is_some(),
        "Kafka was down, so the first attempt fails: {stats:?}"
    );
    assert_eq!(
        stats.acknowledged.load(Ordering::Relaxed),
        1,
        "only the probe is acknowledged while Kafka is down"
    );

    broker.start_again().await;
    let mut reader = Reader::new(&settings, &raw).await;
    let mut written = reader.read(1, Duration::from_secs(60)).await;
    assert_eq!(written[0].json::<Value>().unwrap(), event);
    // An attempt that timed out while Kafka was down may have been written too; every copy
    // carries the same ingestion_id, so sinks keep one.
    written.extend(reader.drain(Duration::from_secs(3)).await);
    let ids: std::collections::BTreeSet<_> = written
        .iter()
        .map(|r| r.header("ingestion_id").unwrap().to_vec())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{} copies with {} ids",
        written.len(),
        ids.len()
    );
    let acked = eventually(Duration::from_secs(30), || async {
        (stats.acknowledged.load(Ordering::Relaxed) >= 2).then_some(())
    })
    .await;
    assert!(
        acked.is_some(),
        "acknowledged to MQTT once Kafka took it: {stats:?}"
    );
    shutdown.cancel();
    task.await.unwrap();
    broker.stop().await;
}
