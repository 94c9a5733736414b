//! The Sensor.Community poller against a local HTTP server serving a real-format fixture:
//! both tenants receive their mapped messages with their keys, unmappable records are
//! dead-lettered, a second poll emits only new records, and a server that goes away gives
//! retries and a logged error, not a crash.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use streamlake_gateway::Gateway;
use streamlake_sources::poller::{run_poller, PollerStats};
use streamlake_testkit::{eventually, example, unique, Reader, Stack};
use tokio_util::sync::CancellationToken;

/// What the server answers: the records and their version (its ETag).
#[derive(Clone)]
struct Data(Arc<Mutex<(Vec<Value>, u32)>>);

async fn data_json(State(data): State<Data>, headers: HeaderMap) -> axum::response::Response {
    let (records, version) = data.0.lock().unwrap().clone();
    let etag = format!("\"v{version}\"");
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([("etag", etag)], axum::Json(Value::Array(records))).into_response()
}

async fn serve(data: Data, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/static/v2/data.json", axum::routing::get(data_json))
        .with_state(data);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

fn config(url: &str, topics: &[String; 6]) -> String {
    let [raw_a, dlq_a, raw_b, dlq_b, clean_a, clean_b] = topics;
    format!(
        r#"
[tenants.a]
dlq_topic = "{dlq_a}"
[tenants.a.datasets.aq]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw_a}"
clean_topic = "{clean_a}"

[tenants.b]
dlq_topic = "{dlq_b}"
[tenants.b.datasets.aq]
schema = "schema.json"
key = "/geo/location_id"
raw_topic = "{raw_b}"
clean_topic = "{clean_b}"

[pollers.sc]
url = "{url}"
interval_secs = 1
timeout_secs = 2
retries = 2

[pollers.sc.outputs."a/aq"]
tenant_id = {{ const = "tenantA" }}
timestamp = {{ from = "/timestamp" }}
sensor_id = {{ from = "/sensor/id", convert = "integer" }}
pm10_P1 = {{ value = "P1", convert = "number", optional = true }}

[pollers.sc.outputs."b/aq"]
"/meta/event_id" = {{ from = "/id", convert = "integer" }}
"/meta/ts_epoch" = {{ from = "/timestamp", convert = "epoch_seconds" }}
"/geo/location_id" = {{ from = "/location/id", convert = "integer" }}
"/device/sensor_id" = {{ from = "/sensor/id", convert = "integer" }}
measurements = {{ all_values = true }}
"#
    )
}

fn h(r: &streamlake_kafka::Record, name: &str) -> String {
    String::from_utf8(r.header(name).unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test]
async fn both_tenants_get_their_structures_bad_records_are_dead_lettered_and_nothing_twice() {
    let fixture: Vec<Value> = serde_json::from_slice(
        &std::fs::read(example("air-quality/data/sensor-community-sample.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fixture.len(), 7);
    let data = Data(Arc::new(Mutex::new((fixture.clone(), 1))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(data.clone(), listener).await;

    let topics: [String; 6] = std::array::from_fn(|i| unique(&format!("poll{i}")));
    let stack = Stack::new(&config(
        &format!("http://{addr}/static/v2/data.json"),
        &topics,
    ))
    .await;
    let poller = stack.config.pollers["sc"].clone();
    let ingestor = Arc::clone(
        Gateway::new(&stack.config, &stack.settings)
            .unwrap()
            .ingestor(),
    );
    let stats = Arc::new(PollerStats::default());
    let shutdown = CancellationToken::new();
    let task = {
        let (stats, shutdown) = (stats.clone(), shutdown.clone());
        tokio::spawn(async move { run_poller(&poller, ingestor, stats, shutdown).await })
    };

    // Tenant A: the record without a sensor id and the one whose P1 is "unknown" cannot be
    // mapped; tenant B maps everything but the record without a sensor id.
    let mut a = Reader::new(&stack.settings, &topics[0]).await;
    let a_events = a.read(5, Duration::from_secs(30)).await;
    for r in &a_events {
        let v: Value = r.json().unwrap();
        assert_eq!(v["tenant_id"], "tenantA");
        assert_eq!(
            r.key_str().unwrap(),
            v["sensor_id"].to_string(),
            "keyed by sensor_id"
        );
        assert_eq!(h(r, "producer_service"), "streamlake-poller");
    }
    let first: Value = a_events
        .iter()
        .map(|r| r.json::<Value>().unwrap())
        .find(|v| v["sensor_id"] == 107)
        .unwrap();
    assert_eq!(
        first,
        json!({"tenant_id": "tenantA", "timestamp": "2026-02-26 22:05:03", "sensor_id": 107, "pm10_P1": 84.76})
    );
    let a_dead = Reader::new(&stack.settings, &topics[1])
        .await
        .read(2, Duration::from_secs(30))
        .await;
    let reasons: BTreeSet<String> = a_dead.iter().map(|r| h(r, "error.reason")).collect();
    assert!(
        reasons.contains(
            "mapping of sensor_id (from /sensor/id): missing or null in the source record"
        ),
        "{reasons:?}"
    );
    assert!(
        reasons
            .contains("mapping of pm10_P1 (value P1, convert number): \"unknown\" is not a number"),
        "{reasons:?}"
    );
    assert!(a_dead
        .iter()
        .all(|r| h(r, "error.rule").starts_with("mapping.")));

    let mut b = Reader::new(&stack.settings, &topics[2]).await;
    let b_events = b.read(6, Duration::from_secs(30)).await;
    let envelope: Value = b_events
        .iter()
        .map(|r| r.json::<Value>().unwrap())
        .find(|v| v["meta"]["event_id"] == 28386647166_i64)
        .unwrap();
    assert_eq!(
        envelope,
        json!({"meta": {"event_id": 28386647166_i64, "ts_epoch": 1772143503},
               "geo": {"location_id": 49}, "device": {"sensor_id": 107},
               "measurements": {"P1": "84.76", "P2": "14.30", "ratioP1": "0.16"}})
    );
    for r in &b_events {
        let location = r.json::<Value>().unwrap()["geo"]["location_id"].clone();
        assert_eq!(
            r.key_str(),
            Some(location.to_string().as_str()),
            "keyed by location_id"
        );
    }
    Reader::new(&stack.settings, &topics[3])
        .await
        .read(1, Duration::from_secs(30))
        .await;

    // The next version of the list repeats every record and adds one: only that one is new.
    let mut next = fixture.clone();
    let mut extra = fixture[1].clone();
    extra["id"] = json!(28386647999_i64);
    next.push(extra);
    *data.0.lock().unwrap() = (next, 2);
    let more = a.read(1, Duration::from_secs(30)).await;
    assert_eq!(more[0].json::<Value>().unwrap()["sensor_id"], 6178);
    b.read(1, Duration::from_secs(30)).await;
    assert!(
        a.drain(Duration::from_secs(3)).await.is_empty(),
        "no record emitted twice"
    );
    assert!(stats.duplicates.load(Ordering::Relaxed) >= 7, "{stats:?}");

    // The server goes away: polls fail after their retries, the poller keeps going.
    server.abort();
    let _ = server.await;
    let failed = eventually(Duration::from_secs(30), || async {
        (stats.failed_polls.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert!(failed.is_some(), "{stats:?}");
    assert!(!task.is_finished(), "the poller survives a failed poll");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_configured_generator_writes_its_count_through_the_gateway_path() {
    let topics: [String; 6] = std::array::from_fn(|i| unique(&format!("gen{i}")));
    let mut toml = config("http://127.0.0.1:9/none", &topics);
    toml.push_str(
        "\n[generators.g]\nkind = \"sensor\"\ndataset = \"a/aq\"\nrate = 200.0\nkeys = 5\ncount = 30\n",
    );
    // The generator's events are keyed by /sensor_id, which tenant a's dataset uses.
    let stack = Stack::new(&toml).await;
    let (cfg, target) = stack.config.generators["g"].clone();
    let gateway = Gateway::new(&stack.config, &stack.settings).unwrap();
    let ingestor = gateway.ingestor();
    let stats = streamlake_sources::SourceStats::default();
    streamlake_sources::run_generator(
        "g",
        &cfg,
        &target,
        ingestor,
        &stats,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(stats.accepted.load(Ordering::Relaxed), 30);
    let written = Reader::new(&stack.settings, &topics[0])
        .await
        .read(30, Duration::from_secs(30))
        .await;
    let keys: BTreeSet<&str> = written.iter().map(|r| r.key_str().unwrap()).collect();
    assert!(keys.len() <= 5, "{keys:?}");
    assert!(written
        .iter()
        .all(|r| h(r, "producer_service") == "streamlake-generator-sensor"));
}
