//! The gateway through real HTTP against the real broker: receipts that point at the written
//! record, dead letters with reasons, one test per kind of bad input, backpressure, broker
//! outages and shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use streamlake_config::Config;
use streamlake_gateway::Gateway;
use streamlake_kafka::{provision, Admin, KafkaSettings, Record};
use streamlake_testkit::{settings, unique, Reader};
use tokio_util::sync::CancellationToken;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["sensor_id", "value"],
  "properties": {
    "sensor_id": {"type": "integer"},
    "value": {"type": "number", "minimum": -50},
    "unit": {"enum": ["C", "F"]}
  }
}"#;

/// Version 2 of [`SCHEMA`]: backward compatible (it accepts every event version 1 accepted,
/// and `unit` may now also be kelvin), not forward: a version-1 reader refuses `"K"`.
const SCHEMA_V2: &str = r#"{
  "type": "object",
  "required": ["sensor_id", "value"],
  "properties": {
    "sensor_id": {"type": "integer"},
    "value": {"type": "number", "minimum": -50},
    "unit": {"enum": ["C", "F", "K"]}
  }
}"#;

/// A gateway on a free port with two tenants of unique names, their topics provisioned.
struct Harness {
    base: String,
    tenant: String,
    other: String,
    key: String,
    other_key: String,
    config: Config,
    kafka: KafkaSettings,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// What the platform's components report to the gateway's `/readyz`.
    health: streamlake_core::Health,
    /// The gateway being served.
    gateway: Option<Arc<Gateway>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(extra: &str) -> Self {
        Self::start_with(settings().await, extra).await
    }

    async fn start_with(kafka: KafkaSettings, extra: &str) -> Self {
        Self::start_full(kafka, extra, "").await
    }

    /// With `tenant_extra` appended to the first tenant's table (e.g. its quota).
    async fn start_full(kafka: KafkaSettings, extra: &str, tenant_extra: &str) -> Self {
        Self::start_tables(kafka, extra, tenant_extra, "").await
    }

    /// With `dataset_extra` appended to the first tenant's dataset's table too.
    async fn start_tables(
        kafka: KafkaSettings,
        extra: &str,
        tenant_extra: &str,
        dataset_extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.json"), SCHEMA).unwrap();
        std::fs::write(dir.path().join("schema-v2.json"), SCHEMA_V2).unwrap();
        // A dataset that lists `versions` names no `schema` of its own.
        let schema_line = if dataset_extra.contains("versions") {
            ""
        } else {
            r#"schema = "schema.json""#
        };
        let tenant = unique("t");
        let other = unique("o");
        let key = unique("key");
        let other_key = unique("key");
        let toml = format!(
            r#"
{extra}
[topic_defaults]
partitions = 3

[tenants.{tenant}]
dev_api_key = "{key}"
{tenant_extra}
[tenants.{tenant}.datasets.readings]
{schema_line}
key = "/sensor_id"
{dataset_extra}

[tenants.{other}]
dev_api_key = "{other_key}"
[tenants.{other}.datasets.readings]
schema = "schema.json"
key = "/sensor_id"
"#
        );
        let path = dir.path().join("streamlake.toml");
        std::fs::write(&path, toml).unwrap();
        let config =
            streamlake_config::load(Path::new(&path), &[]).unwrap_or_else(|e| panic!("{e}"));
        let mut kafka = kafka;
        kafka.producer.extend(config.kafka.producer.clone());
        let admin = Admin::new(&kafka).unwrap();
        for r in provision(&admin, &config.declared_topics()).await {
            assert!(
                matches!(r.outcome, streamlake_kafka::ProvisionOutcome::Created),
                "{r:?}"
            );
        }
        let mut h = Self {
            base: String::new(),
            tenant,
            other,
            key,
            other_key,
            config,
            kafka,
            shutdown: CancellationToken::new(),
            server: None,
            health: streamlake_core::Health::new(),
            gateway: None,
            _dir: dir,
        };
        h.serve().await;
        h
    }

    async fn serve(&mut self) {
        let gateway = Arc::new(
            Gateway::new(&self.config, &self.kafka)
                .unwrap()
                .with_health(self.health.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        self.gateway = Some(Arc::clone(&gateway));
        self.server = Some(tokio::spawn(streamlake_gateway::serve(
            listener,
            gateway,
            self.shutdown.clone(),
        )));
    }

    fn url(&self, tenant: &str, dataset: &str) -> String {
        format!(
            "{}/v1/tenants/{tenant}/datasets/{dataset}/events",
            self.base
        )
    }

    fn raw_topic(&self) -> String {
        format!("{}.readings.raw", self.tenant)
    }

    fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.tenant)
    }

    async fn post(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        post_to(
            &self.url(&self.tenant, "readings"),
            Some(&self.key),
            content_type,
            body,
        )
        .await
    }

    async fn read(&self, topic: &str, n: usize) -> Vec<Record> {
        Reader::new(&self.kafka, topic)
            .await
            .read(n, Duration::from_secs(20))
            .await
    }

    async fn still_serving(&self) {
        let (status, _, body) = self
            .post("application/json", r#"{"sensor_id": 1, "value": 2.5}"#)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn post_to(
    url: &str,
    key: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    post_with(url, key, content_type, body, None).await
}

/// [`post_to`] with an `Idempotency-Key`.
async fn post_with(
    url: &str,
    key: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    idempotency_key: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

/// `field` of every entry of a batch answer's `results`, in order.
fn field_of_results(resp: &Value, field: &str) -> Vec<i64> {
    resp["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {resp}"))
        .iter()
        .map(|r| r[field].as_i64().unwrap())
        .collect()
}

fn header<'r>(r: &'r Record, name: &str) -> &'r str {
    std::str::from_utf8(
        r.header(name)
            .unwrap_or_else(|| panic!("header {name} missing")),
    )
    .unwrap()
}

#[tokio::test]
async fn a_valid_event_lands_where_the_receipt_says_with_its_bytes_and_headers() {
    let h = Harness::start("").await;
    let body = r#"{"sensor_id": 107,   "value": 21.5, "unit": "C"}"#;
    let (status, _, receipt) = h.post("application/json", body).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["topic"], h.raw_topic());

    let records = h.read(&h.raw_topic(), 1).await;
    let r = &records[0];
    assert_eq!(
        (r.partition as i64, r.offset),
        (
            receipt["partition"].as_i64().unwrap(),
            receipt["offset"].as_i64().unwrap()
        )
    );
    assert_eq!(
        r.payload.as_deref(),
        Some(body.as_bytes()),
        "bytes unchanged"
    );
    assert_eq!(r.key_str(), Some("107"));
    assert_eq!(header(r, "tenant"), h.tenant);
    assert_eq!(header(r, "dataset"), "readings");
    assert_eq!(header(r, "schema_version"), "1");
    assert_eq!(
        header(r, "ingestion_id"),
        receipt["ingestion_id"].as_str().unwrap()
    );
    assert_eq!(
        uuid::Uuid::parse_str(header(r, "ingestion_id"))
            .unwrap()
            .get_version_num(),
        7
    );
    assert_eq!(header(r, "producer_service"), "streamlake-gateway");
    assert!(
        humantime::parse_rfc3339(header(r, "ingested_at")).is_ok(),
        "{}",
        header(r, "ingested_at")
    );
    assert_eq!(header(r, "content-type"), "application/json");

    // Same key, same partition, across requests.
    for _ in 0..3 {
        let (_, _, again) = h
            .post("application/json", r#"{"sensor_id": 107, "value": 1}"#)
            .await;
        assert_eq!(again["partition"], receipt["partition"]);
    }
}

#[tokio::test]
async fn a_mixed_batch_writes_valid_events_and_dead_letters_invalid_ones_in_order() {
    let h = Harness::start("").await;
    let body = r#"[{"sensor_id": 1, "value": 1.0},
                   {"sensor_id": "two", "value": 2.0},
                   {"sensor_id": 3, "value": 3.0},
                   {"value": 4.0}]"#;
    let (status, _, resp) = h.post("application/json", body).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{resp}");
    assert_eq!(
        (resp["accepted"].as_i64(), resp["rejected"].as_i64()),
        (Some(2), Some(2))
    );
    let statuses = field_of_results(&resp, "status");
    assert_eq!(statuses, [200, 422, 200, 422]);
    let indexes = field_of_results(&resp, "index");
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert_eq!(resp["results"][1]["error"]["path"], "/sensor_id");
    assert_eq!(resp["results"][1]["error"]["rule"], "type");
    assert_eq!(resp["results"][3]["error"]["path"], "/sensor_id");
    assert_eq!(resp["results"][3]["error"]["rule"], "required");

    let raw = h.read(&h.raw_topic(), 2).await;
    let mut raw_ids: Vec<&str> = raw.iter().map(|r| header(r, "ingestion_id")).collect();
    raw_ids.sort();
    let mut expected = vec![
        resp["results"][0]["ingestion_id"].as_str().unwrap(),
        resp["results"][2]["ingestion_id"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(raw_ids, expected);

    let dlq = h.read(&h.dlq_topic(), 2).await;
    for r in &dlq {
        let id = header(r, "ingestion_id");
        let result = resp["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["ingestion_id"] == id)
            .unwrap();
        assert_eq!(header(r, "error.path"), result["error"]["path"]);
        assert_eq!(header(r, "error.rule"), result["error"]["rule"]);
        assert_eq!(header(r, "error.reason"), result["error"]["reason"]);
        assert_eq!(header(r, "error.stage"), "gateway");
        assert_eq!(header(r, "tenant"), h.tenant);
        assert_eq!(header(r, "dataset"), "readings");
        assert_eq!(result["dead_letter"]["offset"].as_i64(), Some(r.offset));
    }
    let payloads: Vec<&[u8]> = dlq.iter().map(|r| r.payload.as_deref().unwrap()).collect();
    assert!(
        payloads.contains(&&br#"{"sensor_id": "two", "value": 2.0}"#[..]),
        "original bytes kept"
    );
    assert!(payloads.contains(&&br#"{"value": 4.0}"#[..]));
}

#[tokio::test]
async fn ndjson_lines_are_events_with_their_own_status() {
    let h = Harness::start("").await;
    let body = "{\"sensor_id\": 1, \"value\": 1}\n{not json\n{\"sensor_id\": 2, \"value\": 2}\n";
    let (status, _, resp) = h.post("application/x-ndjson", body).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{resp}");
    let statuses = field_of_results(&resp, "status");
    assert_eq!(statuses, [200, 422, 200]);
    assert_eq!(resp["results"][1]["error"]["rule"], "json");
    let dlq = h.read(&h.dlq_topic(), 1).await;
    assert_eq!(dlq[0].payload.as_deref(), Some(&b"{not json"[..]));

    let (status, _, resp) = h
        .post(
            "application/x-ndjson",
            "{\"sensor_id\": 5, \"value\": 1}\n{\"sensor_id\": 6, \"value\": 1}",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["accepted"], 2);
}

#[tokio::test]
async fn a_single_invalid_event_is_422_with_the_details_and_dead_lettered() {
    let h = Harness::start("").await;
    let body = r#"{"sensor_id": 9, "value": -100}"#;
    let (status, _, resp) = h.post("application/json", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    assert_eq!(resp["error"]["path"], "/value");
    assert_eq!(resp["error"]["rule"], "minimum");
    let dlq = h.read(&h.dlq_topic(), 1).await;
    assert_eq!(dlq[0].payload.as_deref(), Some(body.as_bytes()));
    assert_eq!(
        dlq[0].key_str(),
        Some("9"),
        "the event's key is kept when it could be extracted"
    );
    h.still_serving().await;
}

#[tokio::test]
async fn each_bad_input_gets_its_own_answer_and_the_gateway_keeps_serving() {
    let h = Harness::start("[gateway]\nmax_body_bytes = 2048\n").await;
    let url = h.url(&h.tenant, "readings");
    let j = "application/json";

    // Malformed JSON: 400, dead-lettered with its bytes.
    let (s, _, r) = h.post(j, "{\"sensor_id\": 1,").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["error"]["rule"], "json");
    assert!(
        r["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{r}"
    );
    assert!(r["dead_letter"]["topic"].is_string(), "{r}");

    // Invalid UTF-8: 400, dead-lettered.
    let (s, _, r) = h.post(j, vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["error"]["rule"], "utf8");
    assert!(
        r["error"]["reason"].as_str().unwrap().contains("UTF-8"),
        "{r}"
    );

    // Wrong Content-Type: 415.
    let (s, _, r) = h.post("text/plain", "{}").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{r}"
    );
    let (s, _, _) = h.post("", "{}").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Empty body: 400.
    let (s, _, r) = h.post(j, "  ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(r["error"]["code"], "empty_body");
    let (s, _, r) = h.post(j, "[]").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(r["error"]["code"], "empty_batch");

    // Over the size limit: 413, dead-lettered without the payload.
    let big = format!(
        "{{\"sensor_id\": 1, \"value\": 1, \"pad\": \"{}\"}}",
        "x".repeat(4096)
    );
    let (s, _, r) = h.post(j, big.clone()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert!(
        r["error"]["reason"].as_str().unwrap().contains("2048"),
        "{r}"
    );
    assert_eq!(r["error"]["rule"], "max_body_bytes");
    // The same without a declared length (chunked): found out while reading, same answer.
    let chunked = raw_chunked_post(&h, &h.url(&h.tenant, "readings"), big.as_bytes()).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");

    // Deeply nested JSON: a clear answer, no stack overflow. As one event: 400; as the element
    // of a batch: that element's 422.
    let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let (s, _, r) = h.post(j, deep).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
    assert!(
        r["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{r}"
    );
    let deep = format!("[{}{}]", "[".repeat(400), "]".repeat(400));
    let (s, _, r) = h.post(j, deep).await;
    assert_eq!(s, StatusCode::MULTI_STATUS, "{r}");
    assert_eq!(r["results"][0]["status"], 422);
    assert!(
        r["results"][0]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{r}"
    );

    // Wrong type and missing required field: 422 naming the field and the rule.
    let (s, _, r) = h.post(j, r#"{"sensor_id": 1, "value": "warm"}"#).await;
    assert_eq!(
        (s, r["error"]["path"].as_str(), r["error"]["rule"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/value"),
            Some("type")
        )
    );
    let (s, _, r) = h.post(j, r#"{"sensor_id": 1}"#).await;
    assert_eq!(
        (s, r["error"]["path"].as_str(), r["error"]["rule"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/value"),
            Some("required")
        )
    );

    // Unknown dataset: 404 listing the tenant's datasets.
    let (s, _, r) = post_to(&h.url(&h.tenant, "nope"), Some(&h.key), j, "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        r["error"]["message"].as_str().unwrap().contains("readings"),
        "{r}"
    );

    // No key, unknown key: 401. Another tenant's key, or a tenant that is not ours: 403.
    let (s, _, _) = post_to(&url, None, j, "{}").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = post_to(&url, Some("not-a-key"), j, "{}").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, r) = post_to(&url, Some(&h.other_key), j, "{}").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{r}");
    let (s, _, _) = post_to(&h.url("no-such-tenant", "readings"), Some(&h.key), j, "{}").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post_to(&h.url(&h.other, "readings"), Some(&h.key), j, "{}").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    h.still_serving().await;
}

#[tokio::test]
async fn a_missing_key_field_is_a_validation_error_even_when_the_schema_allows_it() {
    let h = Harness::start("").await;
    // Another dataset of the same tenant whose schema does not require the key field.
    let dir = h._dir.path();
    std::fs::write(dir.join("loose.json"), r#"{"type": "object"}"#).unwrap();
    let mut toml = std::fs::read_to_string(dir.join("streamlake.toml")).unwrap();
    toml.push_str(&format!(
        "\n[tenants.{}.datasets.loose]\nschema = \"loose.json\"\nkey = \"/device/id\"\n",
        h.tenant
    ));
    std::fs::write(dir.join("streamlake.toml"), toml).unwrap();
    let config = streamlake_config::load(&dir.join("streamlake.toml"), &[]).unwrap();
    let admin = Admin::new(&h.kafka).unwrap();
    provision(&admin, &config.declared_topics()).await;
    let gateway = Arc::new(Gateway::new(&config, &h.kafka).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(streamlake_gateway::serve(
        listener,
        gateway,
        h.shutdown.clone(),
    ));

    let url = format!("{base}/v1/tenants/{}/datasets/loose/events", h.tenant);
    let (s, _, r) = post_to(&url, Some(&h.key), "application/json", r#"{"device": {}}"#).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["rule"], "key");
    assert_eq!(r["error"]["path"], "/device/id");
    let (s, _, r) = post_to(
        &url,
        Some(&h.key),
        "application/json",
        r#"{"device": {"id": "d-1"}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_answer() {
    let h = Harness::start("").await;
    h.still_serving().await;
    let _ = h
        .post("application/json", r#"{"sensor_id": 1, "value": -999}"#)
        .await;
    let client = reqwest::Client::new();
    let get = |p: &str| client.get(format!("{}{p}", h.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let accepted = format!("streamlake_gateway_events_total{{dataset=\"readings\",outcome=\"accepted\",tenant=\"{}\"}} 1", h.tenant);
    let rejected = format!("streamlake_gateway_events_total{{dataset=\"readings\",outcome=\"rejected\",tenant=\"{}\"}} 1", h.tenant);
    assert!(metrics.contains(&accepted), "{metrics}");
    assert!(metrics.contains(&rejected), "{metrics}");
    // Requests by tenant and status; before authentication succeeds the tenant is `unknown`.
    let refused = format!(
        "streamlake_gateway_requests_total{{status=\"422\",tenant=\"{}\"}} 1",
        h.tenant
    );
    assert!(metrics.contains(&refused), "{metrics}");
    let unauthenticated = client
        .post(h.url(&h.tenant, "readings"))
        .header("content-type", "application/json")
        .body(r#"{"sensor_id": 1, "value": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("streamlake_gateway_requests_total{status=\"401\",tenant=\"unknown\"}"),
        "{metrics}"
    );
    // One produce latency per accepted event (the dead letter is not a produce to raw).
    let produced = format!(
        "streamlake_gateway_produce_latency_seconds_count{{tenant=\"{}\"}} 1\n",
        h.tenant
    );
    assert!(metrics.contains(&produced), "{metrics}");
    assert!(
        metrics.contains("streamlake_gateway_producer_queue_depth"),
        "{metrics}"
    );
    assert!(
        metrics.contains("streamlake_gateway_in_flight_requests"),
        "{metrics}"
    );
    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    let checked = streamlake_testkit::assert_served_as_documented(&h.base, &doc).await;
    assert_eq!(checked, 6, "operations in {doc}");
    let event = &doc["components"]["schemas"]["EventResult"]["properties"];
    assert!(event["may_have_been_written"].is_object(), "{event}");
}

#[tokio::test]
async fn a_full_producer_queue_answers_429_with_retry_after() {
    let h = Harness::start(
        "[kafka.producer]\n\"queue.buffering.max.messages\" = \"1\"\n\"linger.ms\" = \"1000\"\n",
    )
    .await;
    let body = json!([{"sensor_id": 1, "value": 1}, {"sensor_id": 2, "value": 2}, {"sensor_id": 3, "value": 3}]).to_string();
    let (s, headers, r) = h.post("application/json", body).await;
    assert_eq!(s, StatusCode::MULTI_STATUS, "{r}");
    let statuses = field_of_results(&r, "status");
    assert_eq!(statuses, [200, 429, 429], "{r}");
    assert_eq!(r["results"][1]["error"]["code"], "queue_full");
    assert_eq!(r["results"][1]["may_have_been_written"], false);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_request_finding_the_producer_queue_full_is_refused_before_its_body_is_parsed() {
    let h = Harness::start(
        "[kafka.producer]\n\"queue.buffering.max.messages\" = \"1\"\n\"linger.ms\" = \"2000\"\n",
    )
    .await;
    // The first event takes the queue's only place and lingers there.
    let first = h.post("application/json", r#"{"sensor_id": 1, "value": 1}"#);
    let second = async {
        let full = streamlake_testkit::await_metric(
            &h.base,
            "streamlake_gateway_producer_queue_depth 1",
            Duration::from_secs(30),
        )
        .await;
        assert!(full, "the first event is queued");
        // Not even JSON: a body that got parsed would be dead-lettered as a 400.
        h.post("application/json", "not json").await
    };
    let ((s1, _, r1), (s2, headers, r2)) = futures::join!(first, second);
    assert_eq!(s1, StatusCode::OK, "{r1}");
    assert_eq!(s2, StatusCode::TOO_MANY_REQUESTS, "{r2}");
    // The request's refusal, not an event's: no event was made of the body.
    assert_eq!(r2["error"]["code"], "queue_full", "{r2}");
    assert!(r2.get("ingestion_id").is_none(), "{r2}");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn too_many_requests_in_flight_for_a_tenant_answers_429() {
    let h = Harness::start(
        "[gateway]\nmax_in_flight_per_tenant = 1\n[kafka.producer]\n\"linger.ms\" = \"1500\"\n",
    )
    .await;
    let slow = h.post("application/json", r#"{"sensor_id": 1, "value": 1}"#);
    let fast = async {
        // Once the slow request holds the tenant's only slot (it lingers 1.5 s in the producer).
        let holding = streamlake_testkit::await_metric(
            &h.base,
            "streamlake_gateway_in_flight_requests 1",
            Duration::from_secs(30),
        )
        .await;
        assert!(holding, "the slow request is in flight");
        // A large body, refused before it is read: the client still gets the answer, not a
        // connection reset in the middle of its upload.
        let events: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"sensor_id": {i}, "value": 2}}"#))
            .collect();
        h.post("application/json", format!("[{}]", events.join(",")))
            .await
    };
    let ((s1, _, _), (s2, headers, r2)) = tokio::join!(slow, fast);
    assert_eq!(s1, StatusCode::OK);
    assert_eq!(s2, StatusCode::TOO_MANY_REQUESTS, "{r2}");
    assert!(
        r2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{r2}"
    );
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_stopped_broker_gives_503_never_2xx_and_the_gateway_recovers() {
    let mut broker = streamlake_testkit::PrivateBroker::start(1).await;
    let kafka = broker.settings();
    let h = Harness::start_with(kafka, "[gateway]\nproduce_timeout_ms = 2000\n").await;
    h.still_serving().await;

    broker.stop().await;
    let (s, headers, r) = h
        .post("application/json", r#"{"sensor_id": 1, "value": 1}"#)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{r}");
    assert_eq!(r["may_have_been_written"], true, "{r}");
    assert_eq!(r["error"]["code"], "broker_unavailable");
    assert!(headers.contains_key("retry-after"));
    let ready = reqwest::get(format!("{}/readyz", h.base)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    broker.start_again().await;
    let recovered = streamlake_testkit::eventually(Duration::from_secs(30), || async {
        let (s, _, _) = h
            .post("application/json", r#"{"sensor_id": 2, "value": 2}"#)
            .await;
        (s == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "the gateway did not recover after the broker returned"
    );
    // The event answered 503 stayed queued and was written once the broker was back.
    let written = Reader::new(&h.kafka, &h.raw_topic())
        .await
        .drain(Duration::from_secs(3))
        .await;
    let ids: Vec<&str> = written.iter().map(|r| header(r, "ingestion_id")).collect();
    assert!(
        ids.contains(&r["ingestion_id"].as_str().unwrap()),
        "{ids:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn every_request_answered_200_during_shutdown_is_in_kafka() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut h = Harness::start("").await;
    let url = h.url(&h.tenant, "readings");
    let answered = Arc::new(AtomicUsize::new(0));
    // Clients that keep sending until the server refuses them.
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (url, key, answered) = (url.clone(), h.key.clone(), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                let body = format!("{{\"sensor_id\": {c}{i}, \"value\": 1}}");
                let resp = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == StatusCode::OK => {
                        if let Ok(receipt) = r.json::<Value>().await {
                            acknowledged.push(receipt["ingestion_id"].as_str().unwrap().to_owned());
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    // Cancel while requests are arriving: once some were answered, however busy the machine.
    let some = streamlake_testkit::eventually(Duration::from_secs(60), || async {
        (answered.load(Ordering::Relaxed) >= 10).then_some(())
    })
    .await;
    assert!(some.is_some(), "requests are answered before shutdown");
    h.shutdown.cancel();
    let server = h.server.take().unwrap();
    server.await.unwrap().unwrap();
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    let mut reader = Reader::new(&h.kafka, &h.raw_topic()).await;
    let records = reader.drain(Duration::from_secs(3)).await;
    let written: Vec<&str> = records.iter().map(|r| header(r, "ingestion_id")).collect();
    for id in &acknowledged {
        assert!(
            written.contains(&id.as_str()),
            "acknowledged {id} is not in Kafka"
        );
    }
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_while_a_component_reports_itself_down() {
    use streamlake_core::Condition;
    let h = Harness::start("").await;
    let readyz = || async { reqwest::get(format!("{}/readyz", h.base)).await.unwrap() };
    assert_eq!(readyz().await.status(), StatusCode::OK);

    h.health.set(
        "broker",
        Condition::Down("node 1 (127.0.0.1:9092) exited with signal: 9".into()),
    );
    let r = readyz().await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "broker_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node 1 (127.0.0.1:9092) exited"),
        "{body}"
    );

    // One node of three down: degraded, still serving.
    h.health
        .set("broker", Condition::Degraded("1 of 3 nodes down".into()));
    assert_eq!(readyz().await.status(), StatusCode::OK);
    h.health.set("broker", Condition::Up);
    assert_eq!(readyz().await.status(), StatusCode::OK);
}

/// POSTs `body` as one chunk of a chunked request (no Content-Length) over a raw connection;
/// returns the whole answer as text.
async fn raw_chunked_post(h: &Harness, url: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        h.key,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn.write_all(b"\r\n0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Writes `head` (and no more) on a fresh connection to the harness and returns it.
async fn partial_request(h: &Harness, head: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = h.base.strip_prefix("http://").unwrap();
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn
}

/// What the server sends on `conn` until it closes it, or `None` if it is still open after
/// `within`.
async fn closed_with(mut conn: tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    tokio::time::timeout(within, conn.read_to_end(&mut answer))
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&answer).into_owned())
}

/// Slow and idle clients cannot hold the server: a half-sent header is cut off at the header
/// timeout, a body that stalls is answered 408 at the body timeout (freeing the tenant's
/// request slot), and connections over the cap are answered 503 at once; other clients are
/// served throughout.
#[tokio::test]
async fn slow_idle_and_numerous_connections_are_cut_off_and_others_are_served() {
    let h = Harness::start(
        "[http]\nheader_read_timeout_secs = 1\nmax_connections = 24\n[gateway]\nbody_timeout_secs = 1\nmax_in_flight_per_tenant = 2\n",
    )
    .await;
    let path = format!("/v1/tenants/{}/datasets/readings/events", h.tenant);
    let host = h.base.strip_prefix("http://").unwrap().to_owned();

    // Half-sent headers.
    let mut half = Vec::new();
    for _ in 0..8 {
        half.push(partial_request(&h, &format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n")).await);
    }
    // Bodies that stall after 5 of 175 bytes, taking both of the tenant's request slots.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(
            partial_request(
                &h,
                &format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 175\r\n\r\n{{\"sen",
                    h.key
                ),
            )
            .await,
        );
    }
    // The other tenant is served meanwhile.
    let (status, _, body) = post_to(
        &h.url(&h.other, "readings"),
        Some(&h.other_key),
        "application/json",
        r#"{"sensor_id": 1, "value": 1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for conn in half {
        let answer = closed_with(conn, Duration::from_secs(10)).await;
        assert!(
            answer.is_some(),
            "a half-sent header kept its connection open"
        );
    }
    for conn in stalled {
        let answer = closed_with(conn, Duration::from_secs(10))
            .await
            .expect("a stalled body is answered");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout_secs"), "{answer}");
    }
    // The slots are free again.
    h.still_serving().await;

    // Over the cap: an immediate 503 that says why.
    let mut open = Vec::new();
    for _ in 0..24 {
        open.push(partial_request(&h, "").await);
    }
    let over = partial_request(&h, "").await;
    let answer = closed_with(over, Duration::from_secs(5))
        .await
        .expect("a connection over the cap is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("http.max_connections"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after"), "{answer}");
    drop(open);
    let served = streamlake_testkit::eventually(Duration::from_secs(10), || async {
        let (status, _, _) = h
            .post("application/json", r#"{"sensor_id": 1, "value": 2.5}"#)
            .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(served.is_some(), "served again once the connections closed");
}

/// One size policy: an event within the body limit but larger than a record can be is a 413
/// dead letter (its payload cut, the reason naming the sizes), never a 503 to retry; and a
/// reason never quotes a large value whole.
#[tokio::test]
async fn an_event_larger_than_a_record_is_a_413_dead_letter_and_reasons_stay_short() {
    let h = Harness::start("").await;
    let note = "x".repeat(1_020_000);
    let big = format!(r#"{{"sensor_id": 1, "value": 1, "note": "{note}"}}"#);
    assert!(big.len() < h.config.gateway.max_body_bytes);
    let (status, _, body) = h.post("application/json", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("largest record") && reason.contains("message.max.bytes"),
        "{reason}"
    );
    assert_eq!(body["error"]["rule"], "max_record_bytes");
    let letter = &h.read(&h.dlq_topic(), 1).await[0];
    assert_eq!(
        letter.payload.as_ref().map(Vec::len),
        Some(streamlake_ingest::TRUNCATED_PAYLOAD_BYTES)
    );

    let value = "y".repeat(400_000);
    let wrong = format!(r#"{{"sensor_id": 2, "value": "{value}"}}"#);
    let (status, _, body) = h.post("application/json", wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.len() < 400,
        "{} bytes: {}",
        reason.len(),
        &reason[..100]
    );
    assert!(reason.contains("cut"), "{reason}");
    h.still_serving().await;
}

/// A batch over `gateway.max_events_per_request` is refused whole before anything is written;
/// a compressed body is refused with 415 and says to send it uncompressed; 107 and 107.0 are
/// one key on one partition.
#[tokio::test]
async fn batch_size_encoding_and_numeric_keys_have_one_answer_each() {
    let h = Harness::start("[gateway]\nmax_events_per_request = 100\n").await;
    let events: Vec<String> = (0..101)
        .map(|i| format!(r#"{{"sensor_id": {i}, "value": 1}}"#))
        .collect();
    let (status, _, body) = h
        .post("application/json", format!("[{}]", events.join(",")))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_many_events", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("101 events; at most 100"),
        "{body}"
    );

    let r = reqwest::Client::new()
        .post(h.url(&h.tenant, "readings"))
        .bearer_auth(&h.key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.text().await.unwrap().contains("uncompressed"));

    let (s1, _, a) = h
        .post("application/json", r#"{"sensor_id": 107, "value": 1}"#)
        .await;
    let (s2, _, b) = h
        .post("application/json", r#"{"sensor_id": 107.0, "value": 2}"#)
        .await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{a} {b}");
    assert_eq!(a["partition"], b["partition"], "{a} {b}");
    let written = h.read(&h.raw_topic(), 2).await;
    assert!(
        written
            .iter()
            .all(|r| r.key.as_deref() == Some(&b"107"[..])),
        "{:?}",
        written.iter().map(|r| r.key.clone()).collect::<Vec<_>>()
    );
}

/// Request bodies held at once are bounded over all tenants: while one client holds most of
/// `gateway.max_in_flight_bytes` with a stalled upload, another tenant's large request gets 429
/// with `Retry-After`; once the stalled body times out, it is taken.
#[tokio::test]
async fn request_bodies_held_at_once_are_bounded_over_all_tenants() {
    let h = Harness::start(
        "[gateway]\nmax_body_bytes = 600000\nmax_in_flight_bytes = 1000000\nbody_timeout_secs = 2\n",
    )
    .await;
    let path = format!("/v1/tenants/{}/datasets/readings/events", h.tenant);
    let host = h.base.strip_prefix("http://").unwrap().to_owned();
    let stalled = partial_request(
        &h,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 590000\r\n\r\n[",
            h.key
        ),
    )
    .await;
    let events: Vec<String> = (0..9_000)
        .map(|i| format!(r#"{{"sensor_id": {i}, "value": 1, "pad": "{:020}"}}"#, i))
        .collect();
    let large = format!("[{}]", events.join(","));
    assert!(
        large.len() > 410_000 && large.len() < 600_000,
        "{}",
        large.len()
    );
    let (status, headers, body) = post_to(
        &h.url(&h.other, "readings"),
        Some(&h.other_key),
        "application/json",
        large.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_bytes", "{body}");
    assert!(headers.contains_key("retry-after"));

    let answer = closed_with(stalled, Duration::from_secs(10))
        .await
        .expect("the stalled body is answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (status, _, body) = post_to(
        &h.url(&h.other, "readings"),
        Some(&h.other_key),
        "application/json",
        large,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        &body.to_string()[..200.min(body.to_string().len())]
    );
}

#[tokio::test]
async fn the_partition_preview_names_the_key_and_partition_ingestion_then_writes_to() {
    let h = Harness::start("").await;
    let preview_url = format!(
        "{}/v1/tenants/{}/datasets/readings/partition",
        h.base, h.tenant
    );
    for sensor in [1, 7, 107, 4242, 90001] {
        let event = json!({"sensor_id": sensor, "value": 1.5}).to_string();
        let (s, _, preview) = post_to(
            &preview_url,
            Some(&h.key),
            "application/json",
            event.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{preview}");
        assert_eq!(preview["key"], sensor.to_string(), "{preview}");
        assert_eq!(preview["topic"], h.raw_topic());
        assert_eq!(preview["partitions"], 3);
        assert_eq!(preview["partitioner"], "murmur2_random");
        // The same key given directly previews the same partition.
        let (_, _, by_key) =
            post_to(&format!("{preview_url}?key={sensor}"), Some(&h.key), "", "").await;
        assert_eq!(by_key["partition"], preview["partition"], "{by_key}");
        // And ingestion writes it there.
        let (s, _, receipt) = h.post("application/json", event).await;
        assert_eq!(s, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["partition"], preview["partition"], "{sensor}");
    }
    // Nothing was written by the previews: only the five ingested events are in the topic.
    let admin = Admin::new(&settings().await).unwrap();
    let held = admin
        .describe_topic(&h.raw_topic())
        .await
        .unwrap()
        .message_count();
    assert_eq!(held, 5);

    // An event without its key field, another tenant's dataset, no key at all.
    let (s, _, r) = post_to(
        &preview_url,
        Some(&h.key),
        "application/json",
        r#"{"value": 1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["code"], "no_key");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sensor_id"),
        "{r}"
    );
    let (s, _, _) = post_to(&preview_url, Some(&h.other_key), "application/json", "{}").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post_to(&preview_url, None, "application/json", "{}").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metadata_headers_cannot_be_forged_through_request_headers() {
    let h = Harness::start("").await;
    let forged = [
        ("tenant", "someone-else"),
        ("dataset", "other"),
        ("ingestion_id", "forged-id"),
        ("producer_service", "forged-service"),
        ("ingested_at", "1999-01-01T00:00:00Z"),
        ("schema_version", "99"),
    ];
    let mut req = reqwest::Client::new()
        .post(h.url(&h.tenant, "readings"))
        .bearer_auth(&h.key)
        .header("content-type", "application/json")
        .body(r#"{"sensor_id": 3, "value": 1}"#);
    for (name, value) in forged {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let receipt: Value = resp.json().await.unwrap();
    let records = h.read(&h.raw_topic(), 1).await;
    let r = &records[0];
    assert_eq!(header(r, "tenant"), h.tenant);
    assert_eq!(header(r, "dataset"), "readings");
    assert_eq!(
        header(r, "ingestion_id"),
        receipt["ingestion_id"].as_str().unwrap()
    );
    assert_eq!(header(r, "producer_service"), "streamlake-gateway");
    assert_eq!(header(r, "schema_version"), "1");
    assert_ne!(header(r, "ingested_at"), "1999-01-01T00:00:00Z");
    // Each metadata header once: none was added beside the gateway's own.
    for (name, _) in forged {
        let count = r.headers.iter().filter(|(n, _)| n == name).count();
        assert_eq!(count, 1, "{name}");
    }
}

/// A tenant far past its quota is told when to retry and nothing of a refused request is
/// written, while another tenant, sending at the same time, is answered 200 every time.
#[tokio::test]
async fn a_tenant_over_its_quota_is_refused_with_retry_after_and_another_is_not() {
    let h = Harness::start_full(
        settings().await,
        "",
        "quota = { events_per_sec = 20, burst_secs = 1.0 }",
    )
    .await;
    let started = std::time::Instant::now();
    // `n` single events to `tenant`'s dataset, all at once.
    let events = |tenant: &str, key: &str, n: usize| {
        let (url, key) = (h.url(tenant, "readings"), key.to_owned());
        futures::future::join_all((0..n).map(move |i| {
            let (url, key) = (url.clone(), key.clone());
            async move {
                let body = format!(r#"{{"sensor_id": {i}, "value": 1.5}}"#);
                post_to(&url, Some(&key), "application/json", body).await
            }
        }))
    };
    let (noisy, quiet) = tokio::join!(
        events(&h.tenant, &h.key, 120),
        events(&h.other, &h.other_key, 40)
    );
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = noisy
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .count();
    let refused: Vec<_> = noisy
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(accepted + refused.len(), 120, "only 200 or 429");
    // The bucket holds 20 and refills 20 per second.
    assert!(
        accepted as f64 <= 20.0 + 20.0 * elapsed + 1.0,
        "{accepted} accepted in {elapsed:.2} s"
    );
    assert!(!refused.is_empty());
    let (_, headers, body) = refused[0];
    assert_eq!(body["error"]["code"], "over_quota", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20 events per second"),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(
        quiet.iter().all(|(s, _, _)| *s == StatusCode::OK),
        "the other tenant is not limited"
    );
    // Nothing of a refused request was written.
    let written = Reader::new(&h.kafka, &h.raw_topic())
        .await
        .drain(Duration::from_secs(3))
        .await;
    assert_eq!(written.len(), accepted);

    // A batch larger than the bucket can ever hold: 413 whatever the bucket holds now.
    let batch = format!(
        "[{}]",
        vec![r#"{"sensor_id": 1, "value": 1}"#; 21].join(",")
    );
    let (status, _, body) = h.post("application/json", batch).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "over_quota_burst", "{body}");
    // Once the bucket refills, the tenant is served again.
    let served = streamlake_testkit::eventually(Duration::from_secs(10), || async {
        let (status, _, _) = h
            .post("application/json", r#"{"sensor_id": 1, "value": 2.5}"#)
            .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(served.is_some(), "served again within 10 s");
}

/// Posts `body` as JSON to the harness tenant's dataset with `Idempotency-Key: idem`.
async fn post_keyed(
    h: &Harness,
    idem: &str,
    body: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    post_with(
        &h.url(&h.tenant, "readings"),
        Some(&h.key),
        "application/json",
        body.to_owned(),
        Some(idem),
    )
    .await
}

/// A keyed request the gateway answered 503 before the broker's acknowledgement (its produce
/// deadline shorter than the producer's linger): its key, body and answer. Tries up to 20 keys
/// starting with `prefix`, in case a record is acknowledged in time all the same.
async fn answered_before_acknowledged(h: &Harness, prefix: &str) -> (String, String, Value) {
    for attempt in 0..20 {
        let key = format!("{prefix}-{attempt}");
        let body = format!(r#"{{"sensor_id": {attempt}, "value": 5}}"#);
        let (s, _, answer) = post_keyed(h, &key, &body).await;
        if s == StatusCode::SERVICE_UNAVAILABLE {
            return (key, body, answer);
        }
    }
    panic!("no answer before the acknowledgement in 20 requests")
}

/// The records of `topic` carrying `ingestion_id`.
async fn records_with_id(h: &Harness, topic: &str, id: &str) -> usize {
    Reader::new(&h.kafka, topic)
        .await
        .drain(Duration::from_secs(2))
        .await
        .iter()
        .filter(|r| header(r, "ingestion_id") == id)
        .count()
}

#[tokio::test]
async fn a_retry_with_the_idempotency_key_gets_the_first_answer_and_writes_nothing_again() {
    let mut h = Harness::start("").await;
    let one = r#"{"sensor_id": 7, "value": 1.5}"#;
    let (s, first_headers, first) = post_keyed(&h, "order-1", one).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert!(!first_headers.contains_key("idempotent-replayed"));
    let (s, headers, again) = post_keyed(&h, "order-1", one).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again, first, "the retry gets the first answer");
    assert_eq!(headers["idempotent-replayed"], "true");

    // A batch is one unit: its mixed answer comes back whole, its dead letter is not repeated.
    let batch = r#"[{"sensor_id": 1, "value": 1}, {"sensor_id": 2, "value": -99}, {"sensor_id": 3, "value": 3}]"#;
    let (s, _, first_batch) = post_keyed(&h, "batch-1", batch).await;
    assert_eq!(s, StatusCode::MULTI_STATUS, "{first_batch}");
    let (s, _, again_batch) = post_keyed(&h, "batch-1", batch).await;
    assert_eq!(s, StatusCode::MULTI_STATUS);
    assert_eq!(again_batch, first_batch);

    // The same key with another body is refused and writes nothing.
    let (s, _, reused) = post_keyed(&h, "order-1", r#"{"sensor_id": 8, "value": 1}"#).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
    // A key is the tenant's own: another tenant's same key is another request.
    let (s, _, other) = post_with(
        &h.url(&h.other, "readings"),
        Some(&h.other_key),
        "application/json",
        one,
        Some("order-1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{other}");
    assert_ne!(other["ingestion_id"], first["ingestion_id"]);
    let (s, _, bad) = post_keyed(&h, "two words", one).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_idempotency_key");

    // A new gateway (a restart, or another instance) knows the key from the log.
    h.shutdown.cancel();
    h.server.take().unwrap().await.unwrap().unwrap();
    h.shutdown = CancellationToken::new();
    h.serve().await;
    let (s, headers, after_restart) = post_keyed(&h, "order-1", one).await;
    assert_eq!(s, StatusCode::OK, "{after_restart}");
    assert_eq!(after_restart, first);
    assert_eq!(headers["idempotent-replayed"], "true");

    let raw = h.raw_topic();
    let id = first["ingestion_id"].as_str().unwrap();
    assert_eq!(records_with_id(&h, &raw, id).await, 1, "written once");
    let written = Reader::new(&h.kafka, &raw)
        .await
        .drain(Duration::from_secs(2))
        .await;
    assert_eq!(written.len(), 3, "one event and the batch's two valid ones");
    let dead = Reader::new(&h.kafka, &h.dlq_topic())
        .await
        .drain(Duration::from_secs(2))
        .await;
    assert_eq!(
        dead.len(),
        1,
        "the batch's invalid event, dead-lettered once"
    );
}

#[tokio::test]
async fn concurrent_attempts_over_two_gateways_write_a_keyed_request_once() {
    let mut h = Harness::start("").await;
    let first_base = h.base.clone();
    let first_server = h.server.take();
    h.serve().await;
    let bases = [first_base, h.base.clone()];
    let body = r#"{"sensor_id": 11, "value": 2}"#;
    let mut attempts = Vec::new();
    for i in 0..12 {
        let url = format!(
            "{}/v1/tenants/{}/datasets/readings/events",
            bases[i % 2],
            h.tenant
        );
        let key = h.key.clone();
        attempts.push(tokio::spawn(async move {
            post_with(&url, Some(&key), "application/json", body, Some("once")).await
        }));
    }
    let mut receipts = Vec::new();
    for a in attempts {
        let (s, headers, r) = a.await.unwrap();
        match s {
            StatusCode::OK => receipts.push(r),
            StatusCode::CONFLICT => {
                assert_eq!(r["error"]["code"], "idempotency_in_progress", "{r}");
                assert!(headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {r}"),
        }
    }
    assert!(!receipts.is_empty(), "one attempt wrote it");
    assert!(receipts.windows(2).all(|w| w[0] == w[1]), "{receipts:?}");
    // Once it is settled, every attempt on either gateway gets the one answer.
    for base in &bases {
        let url = format!("{base}/v1/tenants/{}/datasets/readings/events", h.tenant);
        let (s, _, r) = post_with(&url, Some(&h.key), "application/json", body, Some("once")).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r, receipts[0]);
    }
    let written = Reader::new(&h.kafka, &h.raw_topic())
        .await
        .drain(Duration::from_secs(2))
        .await;
    assert_eq!(written.len(), 1, "twelve attempts, one record");
    h.shutdown.cancel();
    first_server.unwrap().await.unwrap().unwrap();
}

#[tokio::test]
async fn a_retry_after_503_may_have_been_written_gets_what_became_of_the_first_attempt() {
    // A produce deadline shorter than the producer's linger: the gateway answers before the
    // broker's acknowledgement comes, which it then does.
    let h = Harness::start(
        "[gateway]\nproduce_timeout_ms = 1\n[kafka.producer]\n\"linger.ms\" = \"200\"\n",
    )
    .await;
    let (key, body, first) = answered_before_acknowledged(&h, "slow").await;
    assert_eq!(first["may_have_been_written"], true, "{first}");
    assert_eq!(first["error"]["code"], "broker_unavailable", "{first}");

    // The retry learns what became of the first attempt (it was written) instead of writing
    // the event again; while the delivery report is due it is told to wait (409).
    let settled = streamlake_testkit::eventually(Duration::from_secs(60), || async {
        let (s, headers, r) = post_keyed(&h, &key, &body).await;
        match s {
            StatusCode::OK => Some((headers, r)),
            StatusCode::CONFLICT => None,
            other => panic!("unexpected {other}: {r}"),
        }
    })
    .await
    .expect("the retry is answered with the first attempt's write");
    let (headers, settled) = settled;
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(settled["ingestion_id"], first["ingestion_id"]);
    let id = first["ingestion_id"].as_str().unwrap();
    let records = Reader::new(&h.kafka, &h.raw_topic())
        .await
        .drain(Duration::from_secs(2))
        .await;
    let mine: Vec<&Record> = records
        .iter()
        .filter(|r| header(r, "ingestion_id") == id)
        .collect();
    assert_eq!(mine.len(), 1, "written once");
    assert_eq!(settled["offset"], mine[0].offset);
    assert_eq!(settled["partition"], mine[0].partition);
}

#[tokio::test]
async fn a_tenant_holds_several_keys_and_a_key_removed_on_reload_is_refused_at_once() {
    let rotated = unique("rotated-key");
    let next = unique("next-key");
    let entry = |name: &str, key: &str| {
        format!(
            "{{ name = \"{name}\", sha256 = \"{}\" }}",
            streamlake_ingest::hash_key(key)
        )
    };
    let h = Harness::start_full(
        settings().await,
        "",
        &format!("api_keys = [{}]\n", entry("old", &rotated)),
    )
    .await;
    let url = h.url(&h.tenant, "readings");
    let event = r#"{"sensor_id": 1, "value": 2.5}"#;
    let post = |key: String| {
        let url = url.clone();
        async move { post_to(&url, Some(&key), "application/json", event).await.0 }
    };
    // The development key and the hashed one both hold.
    assert_eq!(post(h.key.clone()).await, StatusCode::OK);
    assert_eq!(post(rotated.clone()).await, StatusCode::OK);
    assert_eq!(post(next.clone()).await, StatusCode::UNAUTHORIZED);

    // The configuration now holds the next key instead: reloaded, the old one is refused.
    let path = h._dir.path().join("streamlake.toml");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&entry("old", &rotated), &entry("new", &next));
    let reloaded_path = h._dir.path().join("reloaded.toml");
    std::fs::write(&reloaded_path, toml).unwrap();
    let reloaded = streamlake_config::load(&reloaded_path, &[]).unwrap_or_else(|e| panic!("{e}"));
    let counts = h.gateway.as_ref().unwrap().reload_keys(&reloaded);
    assert!(
        counts
            .iter()
            .any(|(t, n)| t.as_str() == h.tenant && *n == 2),
        "{counts:?}"
    );
    assert_eq!(post(rotated).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(next).await, StatusCode::OK);
    assert_eq!(post(h.key.clone()).await, StatusCode::OK);
}

#[tokio::test]
async fn a_dataset_over_its_own_quota_is_refused_naming_it_and_the_tenants_others_are_not() {
    let h = Harness::start_tables(
        settings().await,
        "",
        "",
        "quota = { events_per_sec = 1, burst_secs = 3 }",
    )
    .await;
    let three = r#"[{"sensor_id": 1, "value": 1}, {"sensor_id": 2, "value": 2}, {"sensor_id": 3, "value": 3}]"#;
    let (s, _, body) = h.post("application/json", three).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Five more at once: the bucket refills one event a second, so most are refused.
    let url = h.url(&h.tenant, "readings");
    let attempts: Vec<_> = (0..5)
        .map(|i| {
            let (url, key) = (url.clone(), h.key.clone());
            tokio::spawn(async move {
                post_to(
                    &url,
                    Some(&key),
                    "application/json",
                    format!(r#"{{"sensor_id": {i}, "value": 4}}"#),
                )
                .await
            })
        })
        .collect();
    let mut accepted = 0;
    let mut refused = None;
    for a in attempts {
        let (s, headers, body) = a.await.unwrap();
        match s {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused = Some((headers, body)),
            other => panic!("{other}: {body}"),
        }
    }
    let (headers, refused) = refused.expect("a request over the dataset's quota");
    assert!(accepted <= 2, "{accepted} of 5 admitted at 1 event/s");
    assert_eq!(refused["error"]["code"], "over_quota");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("dataset {}/readings", h.tenant))
            && message.contains(&format!("[tenants.{}.datasets.readings.quota]", h.tenant)),
        "{message}"
    );
    assert!(headers.contains_key("retry-after"));
    let ten: Vec<Value> = (0..10)
        .map(|i| json!({"sensor_id": i, "value": i}))
        .collect();
    let (s, _, too_large) = h
        .post("application/json", Value::from(ten).to_string())
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{too_large}");
    assert_eq!(too_large["error"]["code"], "over_quota_burst");
    // Another tenant's dataset has no quota of its own.
    let (s, _, other) = post_to(
        &h.url(&h.other, "readings"),
        Some(&h.other_key),
        "application/json",
        r#"{"sensor_id": 5, "value": 5}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{other}");
    let written = Reader::new(&h.kafka, &h.raw_topic())
        .await
        .drain(Duration::from_secs(2))
        .await;
    assert_eq!(
        written.len(),
        3 + accepted,
        "nothing of a refused request is written"
    );
}

#[tokio::test]
async fn an_answer_still_due_at_shutdown_is_stored_before_the_gateway_stops() {
    let mut h = Harness::start(
        "[gateway]\nproduce_timeout_ms = 1\n[kafka.producer]\n\"linger.ms\" = \"200\"\n",
    )
    .await;
    let (key, body, first) = answered_before_acknowledged(&h, "stop").await;
    // Stopped at once: the delivery report comes with the flush, and the answer is stored.
    h.shutdown.cancel();
    h.server.take().unwrap().await.unwrap().unwrap();
    h.shutdown = CancellationToken::new();
    h.serve().await;
    let (s, headers, again) = post_keyed(&h, &key, &body).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["ingestion_id"], first["ingestion_id"]);
}

#[tokio::test]
async fn an_event_is_validated_against_the_schema_version_its_request_names() {
    let h = Harness::start_tables(
        settings().await,
        "",
        "",
        r#"versions = [
  { version = "1", schema = "schema.json" },
  { version = "2", schema = "schema-v2.json" },
]"#,
    )
    .await;
    let url = h.url(&h.tenant, "readings");
    let post = |version: Option<&'static str>, body: &'static str| {
        let url = url.clone();
        let key = h.key.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(&url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body);
            if let Some(v) = version {
                req = req.header("schema-version", v);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let kelvin = r#"{"sensor_id": 1, "value": 280, "unit": "K"}"#;
    // No Schema-Version: the newest, which knows kelvin.
    let (status, newest) = post(None, kelvin).await;
    assert_eq!(status, StatusCode::OK, "{newest}");
    // Version 1 does not: dead-lettered with the reason, as any invalid event.
    let (status, refused) = post(Some("1"), kelvin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["path"], "/unit", "{refused}");
    let (status, v1) = post(Some("1"), r#"{"sensor_id": 1, "value": 20, "unit": "C"}"#).await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    // A version the dataset does not have: refused before anything is written.
    let (status, unknown) = post(Some("7"), kelvin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    assert_eq!(unknown["error"]["code"], "unknown_schema_version");
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"7\"") && message.contains("1, 2"),
        "{message}"
    );

    // Each record says which version it was validated against.
    let records = h.read(&h.raw_topic(), 2).await;
    let version_of = |id: &Value| {
        let r = records
            .iter()
            .find(|r| header(r, "ingestion_id") == id.as_str().unwrap())
            .unwrap_or_else(|| panic!("{id} not in the raw topic"));
        header(r, "schema_version").to_owned()
    };
    assert_eq!(version_of(&newest["ingestion_id"]), "2");
    assert_eq!(version_of(&v1["ingestion_id"]), "1");
    let dead = h.read(&h.dlq_topic(), 1).await;
    assert_eq!(header(&dead[0], "schema_version"), "1");
    // Only those two reached the raw topic: the unknown version wrote nothing.
    let all = Reader::new(&h.kafka, &h.raw_topic())
        .await
        .drain(Duration::from_secs(2))
        .await;
    assert_eq!(all.len(), 2);
}
