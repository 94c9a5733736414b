//! Test fixtures: one real broker per test process, unique names per test.
//!
//! [`bootstrap`] returns the broker to test against: `STREAMLAKE_TEST_BOOTSTRAP` when set (the
//! test script starts one broker for the whole suite), otherwise an embedded broker this process
//! starts once, on a free port with its own temporary storage. Each test creates its own topics
//! and groups with [`unique`], so tests run in parallel without seeing each other's data.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use streamlake_config::BrokerConfig;
use streamlake_kafka::{BrokerKind, EmbeddedBroker, KafkaSettings};
use tokio::sync::OnceCell;

struct Shared {
    bootstrap: String,
    // Kept alive for the whole test process.
    _dir: Option<tempfile::TempDir>,
    _broker: Option<EmbeddedBroker>,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

/// The broker's bootstrap servers, starting an embedded broker on first use.
pub async fn bootstrap() -> String {
    SHARED.get_or_init(start).await.bootstrap.clone()
}

/// Client settings for the test broker (an embedded broker, as the tests use tansu).
pub async fn settings() -> KafkaSettings {
    KafkaSettings::new(bootstrap().await, BrokerKind::Embedded)
}

async fn start() -> Shared {
    if let Ok(b) = std::env::var("STREAMLAKE_TEST_BOOTSTRAP") {
        if !b.is_empty() {
            return Shared {
                bootstrap: b,
                _dir: None,
                _broker: None,
            };
        }
    }
    let dir = tempfile::tempdir().expect("temporary directory for the test broker");
    let cfg = BrokerConfig {
        listen: free_local_addr(),
        startup_timeout_secs: 60,
        ..BrokerConfig::default()
    };
    let broker = EmbeddedBroker::start(&cfg, dir.path())
        .await
        .unwrap_or_else(|e| panic!("test broker: {e}"));
    // Kept in a static, so never dropped: the broker process outlives the runtime of the test
    // that started it, and its watchdog stops it when this test process exits.
    Shared {
        bootstrap: broker.bootstrap_servers().to_owned(),
        _dir: Some(dir),
        _broker: Some(broker),
    }
}

/// A free TCP address on loopback.
pub fn free_local_addr() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

/// A name unique to this test run: `{prefix}-{uuid}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Path of a file in the repository's `examples/` directory.
pub fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path)
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a topic from the beginning without a consumer group, for asserting what was written.
pub struct Reader {
    consumer: rdkafka::consumer::StreamConsumer,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// Assigns every partition of `topic` from its first offset.
    pub async fn new(settings: &KafkaSettings, topic: &str) -> Self {
        use rdkafka::consumer::Consumer;
        let admin = streamlake_kafka::Admin::new(settings).expect("admin client");
        let info = admin.describe_topic(topic).await.expect("topic to read");
        let mut cfg = settings.consumer_config();
        cfg.set("group.id", unique("reader"))
            .set("enable.auto.commit", "false");
        let consumer: rdkafka::consumer::StreamConsumer = cfg.create().expect("reader consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in &info.partitions {
            tpl.add_partition_offset(topic, p.id, rdkafka::Offset::Beginning)
                .expect("partition offset");
        }
        consumer.assign(&tpl).expect("assign");
        Self { consumer }
    }

    /// Reads `n` records, panicking when they do not arrive within `timeout`.
    pub async fn read(&mut self, n: usize, timeout: Duration) -> Vec<streamlake_kafka::Record> {
        let mut out = Vec::with_capacity(n);
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => out.push(streamlake_kafka::Record::from_message(&m)),
                Ok(Err(e)) => panic!("reading: {e}"),
                Err(_) => panic!(
                    "only {} of {n} records arrived within {timeout:?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// Reads whatever arrives until nothing came for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<streamlake_kafka::Record> {
        let mut out = Vec::new();
        while let Ok(Ok(m)) = tokio::time::timeout(quiet, self.consumer.recv()).await {
            out.push(streamlake_kafka::Record::from_message(&m));
        }
        out
    }
}

/// A configuration written to a temporary directory (with a permissive `schema.json` beside
/// it), loaded, and its declared topics created on the test broker.
#[derive(Debug)]
pub struct Stack {
    /// Holds the configuration file, the schema and anything sinks write (`data_dir`).
    pub dir: tempfile::TempDir,
    /// The loaded configuration; `data_dir` is `dir`.
    pub config: streamlake_config::Config,
    /// Client settings for the test broker.
    pub settings: KafkaSettings,
}

impl Stack {
    /// Loads `toml` (schemas may refer to `schema.json`) and provisions its topics.
    pub async fn new(toml: &str) -> Self {
        Self::new_with_files(toml, &[]).await
    }

    /// [`Stack::new`] with more `files` (name, contents) beside the configuration, e.g.
    /// stricter schemas.
    pub async fn new_with_files(toml: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("schema.json"), r#"{"type": "object"}"#)
            .expect("write schema");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        let path = dir.path().join("streamlake.toml");
        std::fs::write(&path, toml).expect("write config");
        let mut config = streamlake_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        config.data_dir = dir.path().to_path_buf();
        let settings = settings().await;
        let admin = streamlake_kafka::Admin::new(&settings).expect("admin client");
        for report in streamlake_kafka::provision(&admin, &config.declared_topics()).await {
            assert!(
                !matches!(
                    report.outcome,
                    streamlake_kafka::ProvisionOutcome::Failed { .. }
                ),
                "provisioning {}: {:?}",
                report.topic,
                report.outcome
            );
        }
        Self {
            dir,
            config,
            settings,
        }
    }

    /// Path of the configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("streamlake.toml")
    }

    /// Produces JSON `records` to `topic`, each keyed by its index and carrying the headers the
    /// gateway attaches (a fresh `ingestion_id` per record); returns the ingestion ids in order.
    pub async fn produce(
        &self,
        topic: &str,
        tenant: &str,
        dataset: &str,
        records: &[serde_json::Value],
    ) -> Vec<String> {
        let producer = streamlake_kafka::Producer::new(&self.settings)
            .expect("producer")
            .with_deadline(Duration::from_secs(30));
        let mut ids = Vec::with_capacity(records.len());
        let mut sends = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let id = uuid::Uuid::now_v7().to_string();
            let headers = streamlake_kafka::Headers::new()
                .with("tenant", tenant)
                .with("dataset", dataset)
                .with("schema_version", "1")
                .with("ingestion_id", &id)
                .with("producer_service", "testkit")
                .with("ingested_at", "2026-11-23T10:00:00.000Z")
                .with("content-type", "application/json");
            ids.push(id);
            let payload = serde_json::to_vec(r).expect("JSON");
            let key = format!("key-{i}");
            let producer = producer.clone();
            sends.push(async move {
                producer
                    .send(topic, Some(key.as_bytes()), &payload, &headers)
                    .await
            });
        }
        for r in futures::future::join_all(sends).await {
            r.expect("produce to the test broker");
        }
        ids
    }
}

/// The PostgreSQL server the tests use: `STREAMLAKE_TEST_POSTGRES_URL`, else the local server
/// `scripts/setup.sh` makes sure of.
pub fn postgres_url() -> String {
    std::env::var("STREAMLAKE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgresql://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The MQTT broker the tests use as (host, port): `STREAMLAKE_TEST_MQTT` (`host:port`), else
/// the local Mosquitto `scripts/setup.sh` makes sure of.
pub fn mqtt_addr() -> (String, u16) {
    let addr = std::env::var("STREAMLAKE_TEST_MQTT")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1:1883".to_owned());
    let (host, port) = addr
        .rsplit_once(':')
        .expect("STREAMLAKE_TEST_MQTT is host:port");
    (host.to_owned(), port.parse().expect("an MQTT port number"))
}

/// A client of the test PostgreSQL ([`postgres_url`]); its connection runs in a task.
pub async fn postgres() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", postgres_url()));
    tokio::spawn(connection);
    client
}

/// Publishes `payload` to `topic` on the test MQTT broker with QoS 1 and waits for its PUBACK.
pub async fn mqtt_publish(topic: &str, payload: Vec<u8>) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (host, port) = mqtt_addr();
    let (client, mut events) = AsyncClient::new(MqttOptions::new(unique("pub"), host, port), 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("queue the publish");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(events.poll().await, Ok(Event::Incoming(Packet::PubAck(_)))) {}
    })
    .await
    .expect("the MQTT broker acknowledges the publish");
    let _ = client.disconnect().await;
}
