//! A platform on a free port: the gateway, the admin API and the console over the real test
//! broker, with two tenants of unique names and a unique admin token.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};

use reqwest::StatusCode;
use serde_json::Value;
use streamlake_gateway::Gateway;
use streamlake_ops::Ops;
use streamlake_testkit::{unique, Stack};
use tokio_util::sync::CancellationToken;

pub const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["sensor_id", "value"],
  "properties": {
    "sensor_id": {"type": "integer"},
    "value": {"type": "number", "minimum": -50}
  }
}"#;

pub struct Platform {
    pub base: String,
    pub tenant: String,
    pub other: String,
    pub key: String,
    pub other_key: String,
    pub admin: String,
    pub group: String,
    pub stack: Stack,
    pub ops: Arc<Ops>,
    shutdown: CancellationToken,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Platform {
    pub async fn start() -> Self {
        let tenant = unique("ta");
        let other = unique("tb");
        let key = unique("key");
        let other_key = unique("key");
        let admin = unique("admin");
        let group = unique("proc");
        let toml = format!(
            r#"
[admin]
dev_token = "{admin}"
max_messages = 50
sample_interval_secs = 1

[topic_defaults]
partitions = 3

[tenants.{tenant}]
dev_api_key = "{key}"
[tenants.{tenant}.datasets.readings]
schema = "readings.json"
key = "/sensor_id"

[tenants.{other}]
dev_api_key = "{other_key}"
[tenants.{other}.datasets.readings]
schema = "readings.json"
key = "/sensor_id"

[pipelines.main]
datasets = ["{tenant}/readings"]
group = "{group}"
enabled = false
"#
        );
        // The stack's config loader resolves schemas next to the file; write ours first.
        let stack = Stack::new_with_files(&toml, &[("readings.json", SCHEMA)]).await;
        let gateway = Arc::new(Gateway::new(&stack.config, &stack.settings).unwrap());
        let ops = Arc::new(
            Ops::new(
                stack.config.clone(),
                stack.settings.clone(),
                Arc::clone(gateway.ingestor()),
            )
            .unwrap(),
        );
        let shutdown = CancellationToken::new();
        // Lag and throughput samples every second (`sample_interval_secs = 1`).
        let (sampler, stop) = (Arc::clone(&ops), shutdown.clone());
        tokio::spawn(async move { sampler.run_sampler(stop).await });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(streamlake_gateway::serve_with(
            listener,
            gateway,
            streamlake_console::router(Arc::clone(&ops)),
            shutdown.clone(),
        ));
        Self {
            base,
            tenant,
            other,
            key,
            other_key,
            admin,
            group,
            stack,
            ops,
            shutdown,
        }
    }

    pub fn raw_topic(&self) -> String {
        format!("{}.readings.raw", self.tenant)
    }

    pub fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.tenant)
    }

    /// Posts events to the tenant's dataset through the gateway.
    pub async fn ingest(&self, body: &str) -> (StatusCode, Value) {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/v1/tenants/{}/datasets/readings/events",
                self.base, self.tenant
            ))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        send(
            reqwest::Client::new().get(format!("{}{path}", self.base)),
            token,
        )
        .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body);
        send(req, token).await
    }

    /// Waits until the console's sampler has recorded at least two lag samples of the group,
    /// the newest of them `lag`.
    pub async fn await_lag_samples(&self, lag: f64) {
        let sampled = streamlake_testkit::eventually(Duration::from_secs(60), || async {
            let (_, group) = self
                .get(
                    &format!("/api/kafka/groups/{}", self.group),
                    Some(&self.admin),
                )
                .await;
            let history = group["lagHistory"].as_array()?;
            (history.len() >= 2 && history.last()?["value"] == lag).then_some(())
        })
        .await;
        assert!(sampled.is_some(), "the sampler recorded a lag of {lag}");
    }

    /// Consumes `n` records of the raw topic as the configured group and commits them.
    pub async fn commit(&self, n: usize) {
        let mut cfg = self.stack.settings.consumer_config();
        cfg.set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer = cfg.create().unwrap();
        consumer.subscribe(&[&self.raw_topic()]).unwrap();
        for _ in 0..n {
            let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .expect("a record within 30 s")
                .unwrap();
            consumer.store_offset_from_message(&m).unwrap();
        }
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    }
}

impl Platform {
    /// Sends DELETE `path` with the bearer `token`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        send(
            reqwest::Client::new().delete(format!("{}{path}", self.base)),
            token,
        )
        .await
    }

    /// Signs in to the console with `token` (the form's POST) and returns the session cookie
    /// (`name=value`) to send with later requests.
    pub async fn console_cookie(&self, token: &str) -> String {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/console/login", self.base))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "signing in");
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    /// A consumer in the group, subscribed to the raw topic, holding a partition assignment
    /// (it has read a record) until dropped.
    pub async fn member(&self) -> StreamConsumer {
        let mut cfg = self.stack.settings.consumer_config();
        cfg.set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer = cfg.create().unwrap();
        consumer.subscribe(&[&self.raw_topic()]).unwrap();
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a record within 30 s")
            .unwrap();
        consumer
    }
}

/// Sends `req` with the bearer `token`; the answer's status and body (JSON, else the text).
async fn send(mut req: reqwest::RequestBuilder, token: Option<&str>) -> (StatusCode, Value) {
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
