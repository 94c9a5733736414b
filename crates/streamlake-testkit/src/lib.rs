//! Test fixtures: one real Apache Kafka for the whole test run, unique names per test.
//!
//! [`bootstrap`] returns the broker to test against: `STREAMLAKE_TEST_BOOTSTRAP` when set
//! (`scripts/test.sh` starts one managed broker for the whole suite and exports it), otherwise
//! a managed broker this test process starts once, on free ports with its own temporary
//! storage. Each test creates its own topics and groups with [`unique`], so tests run in
//! parallel without seeing each other's data. Tests that stop or kill a broker start their own
//! with [`PrivateBroker`].

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use streamlake_broker::ManagedKafka;
use streamlake_config::BrokerConfig;
use streamlake_core::Health;
use streamlake_kafka::KafkaSettings;
use tokio::sync::OnceCell;

/// The bootstrap servers of the test run's broker.
static BOOTSTRAP: OnceCell<String> = OnceCell::const_new();

/// The broker's bootstrap servers, starting a managed broker on first use.
pub async fn bootstrap() -> String {
    BOOTSTRAP.get_or_init(start).await.clone()
}

/// Client settings for the test broker.
pub async fn settings() -> KafkaSettings {
    KafkaSettings::new(bootstrap().await)
}

async fn start() -> String {
    if let Ok(b) = std::env::var("STREAMLAKE_TEST_BOOTSTRAP") {
        if !b.is_empty() {
            wait_for_metadata(&b).await;
            return b;
        }
    }
    // Each test has a runtime of its own, and the broker's supervisors are tasks: they live on
    // a runtime of the broker's own that lasts as long as the test process (the broker's
    // watchdog stops it when the process exits).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("test-broker".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("the test broker's runtime");
            rt.block_on(async move {
                let broker = PrivateBroker::start(1).await;
                let _ = tx.send(broker.bootstrap_servers().to_owned());
                // Never returns, so the broker is never stopped by this process.
                std::future::pending::<()>().await;
                drop(broker);
            });
        })
        .expect("the test broker's thread");
    rx.await.expect("the test broker started")
}

/// The broker the test script started may still be starting: wait until it answers.
async fn wait_for_metadata(bootstrap: &str) {
    let admin = streamlake_kafka::Admin::new(&KafkaSettings::new(bootstrap)).expect("admin client");
    let answered = eventually(Duration::from_secs(90), || async {
        admin.ping(Duration::from_secs(2)).await.ok()
    })
    .await;
    assert!(
        answered.is_some(),
        "the test broker at {bootstrap} (STREAMLAKE_TEST_BOOTSTRAP) does not answer"
    );
}

/// A managed Kafka of a test's own, on free ports with temporary storage, for tests that stop,
/// kill or restart brokers.
#[derive(Debug)]
pub struct PrivateBroker {
    kafka: Option<ManagedKafka>,
    bootstrap: String,
    /// Its configuration (ports, node count), to start it again on the same storage.
    pub config: BrokerConfig,
    /// What the cluster reports about its nodes.
    pub health: Health,
    /// Holds the storage; the data directory is its path.
    pub dir: tempfile::TempDir,
}

impl PrivateBroker {
    /// Starts `nodes` nodes (1 or 3) and waits until they answer. Ports are chosen free but
    /// can be taken before Kafka binds them; then it tries again on other ports.
    pub async fn start(nodes: u16) -> Self {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = tempfile::tempdir().expect("temporary directory for the test broker");
            let config = BrokerConfig {
                listen: free_port_block(2 * nodes),
                nodes,
                heap_mb: 384,
                startup_timeout_secs: 120,
                shutdown_timeout_secs: 15,
                ..BrokerConfig::default()
            };
            let health = Health::new();
            match ManagedKafka::start(&config, dir.path(), health.clone()).await {
                Ok(kafka) => {
                    return Self {
                        bootstrap: kafka.bootstrap_servers(),
                        kafka: Some(kafka),
                        config,
                        health,
                        dir,
                    }
                }
                Err(e) if attempt < 3 => eprintln!("test broker attempt {attempt}: {e}"),
                Err(e) => panic!("test broker: {e}"),
            }
        }
    }

    /// The running cluster.
    pub fn kafka(&self) -> &ManagedKafka {
        self.kafka.as_ref().expect("the test broker is stopped")
    }

    /// `host:port,...` of its nodes (the same while it is stopped).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Client settings for this broker.
    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings::new(&self.bootstrap)
    }

    /// Stops every node (controlled shutdown).
    pub async fn stop(&mut self) {
        if let Some(k) = self.kafka.take() {
            k.stop().await;
        }
    }

    /// Starts the stopped cluster again on the same storage and ports.
    pub async fn start_again(&mut self) {
        assert!(self.kafka.is_none(), "the test broker is running");
        let kafka = ManagedKafka::start(&self.config, self.dir.path(), self.health.clone())
            .await
            .unwrap_or_else(|e| panic!("restarting the test broker: {e}"));
        self.kafka = Some(kafka);
    }
}

/// A free TCP address on loopback.
pub fn free_local_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

/// The first of `n` consecutive free ports on loopback (a managed broker's nodes take
/// consecutive client and controller ports).
pub fn free_port_block(n: u16) -> SocketAddr {
    streamlake_broker::layout::free_port_block(n)
        .unwrap_or_else(|| panic!("no block of {n} free ports on loopback"))
}

/// A name unique to this test run: `{prefix}-{uuid}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A topic of `partitions` partitions with the broker's replication factor and no configs.
pub fn topic_spec(name: &str, partitions: i32) -> streamlake_core::TopicSpec {
    streamlake_core::TopicSpec {
        name: name.to_owned(),
        partitions,
        replication_factor: None,
        configs: Default::default(),
    }
}

/// Produces `n` records to `topic`, record `i` keyed `k{i}` with the payload `{i}`, each
/// acknowledged before the next.
pub async fn produce_numbered(settings: &KafkaSettings, topic: &str, n: usize) {
    let p = streamlake_kafka::Producer::new(settings).expect("producer");
    for i in 0..n {
        p.send(
            topic,
            Some(format!("k{i}").as_bytes()),
            i.to_string().as_bytes(),
            &streamlake_kafka::Headers::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
    }
}

/// Checks an OpenAPI document against the server at `base` that serves it: every operation
/// it describes is requested without credentials (path parameters filled with `x`, a POST with
/// `{}`) and must answer a status the document lists for it, and 401 when the operation needs a
/// bearer token. Panics naming every operation that does not. Returns how many were checked.
/// (Without credentials nothing is changed, whatever the method.)
pub async fn assert_served_as_documented(base: &str, doc: &serde_json::Value) -> usize {
    let client = reqwest::Client::new();
    let global_security = doc["security"].as_array().cloned().unwrap_or_default();
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, item) in paths {
        let url = format!("{base}{}", fill_parameters(path));
        for (method, op) in item.as_object().expect("a path item") {
            let request = match method.as_str() {
                "get" => client.get(&url),
                "post" => client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{}"),
                "put" => client
                    .put(&url)
                    .header("content-type", "application/json")
                    .body("{}"),
                "delete" => client.delete(&url),
                other => panic!("{other} {path}: a method this check does not know"),
            };
            let status = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
                .status()
                .as_u16();
            checked += 1;
            let documented: Vec<&String> = op["responses"]
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            let security = op["security"].as_array().unwrap_or(&global_security);
            let needs_token = security
                .iter()
                .any(|req| req.as_object().is_some_and(|r| !r.is_empty()));
            if !documented.iter().any(|s| **s == status.to_string()) {
                wrong.push(format!(
                    "{method} {path} answered {status}, documented {documented:?}"
                ));
            } else if needs_token && status != 401 {
                wrong.push(format!(
                    "{method} {path} needs a token but answered {status} without one"
                ));
            }
        }
    }
    assert!(checked > 0, "the document describes no operation");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    checked
}

/// An OpenAPI path with each `{parameter}` replaced by `x`.
fn fill_parameters(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push('x');
            }
            '}' => in_parameter = false,
            c if !in_parameter => out.push(c),
            _ => {}
        }
    }
    out
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

/// Waits until the Prometheus text at `base`/metrics holds the line `line` exactly (e.g.
/// `streamlake_gateway_in_flight_requests 1`); whether it did within `timeout`.
pub async fn await_metric(base: &str, line: &str, timeout: Duration) -> bool {
    let url = format!("{base}/metrics");
    eventually(timeout, || async {
        let metrics = reqwest::get(&url).await.ok()?.text().await.ok()?;
        metrics.lines().any(|l| l == line).then_some(())
    })
    .await
    .is_some()
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
        let mut config = streamlake_config::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
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
                .with(streamlake_core::headers::TENANT, tenant)
                .with(streamlake_core::headers::DATASET, dataset)
                .with(streamlake_core::headers::SCHEMA_VERSION, "1")
                .with(streamlake_core::headers::INGESTION_ID, &id)
                .with(streamlake_core::headers::PRODUCER_SERVICE, "testkit")
                .with(
                    streamlake_core::headers::INGESTED_AT,
                    "2026-11-23T10:00:00.000Z",
                )
                .with(streamlake_core::headers::CONTENT_TYPE, "application/json");
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
