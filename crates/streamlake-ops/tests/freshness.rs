//! Freshness notices: the sampler's evaluation posts each state change of a dataset to
//! `admin.freshness_webhook`, retried with back-off until the receiver takes it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use streamlake_ingest::Ingestor;
use streamlake_ops::Ops;
use streamlake_testkit::{eventually, unique, Stack};

/// What the receiver got, and how many requests it refuses before it takes one.
#[derive(Default)]
struct Receiver {
    notices: Vec<Value>,
    refusals_left: usize,
    requests: usize,
}

async fn receive(State(r): State<Arc<Mutex<Receiver>>>, Json(notice): Json<Value>) -> StatusCode {
    let mut r = r.lock().unwrap();
    r.requests += 1;
    if r.refusals_left > 0 {
        r.refusals_left -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.notices.push(notice);
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn a_breach_is_posted_to_the_webhook_and_retried_until_the_receiver_takes_it() {
    let receiver = Arc::new(Mutex::new(Receiver {
        refusals_left: 2,
        ..Receiver::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&receiver));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let raw = unique("raw");
    let stack = Stack::new(&format!(
        r#"
[admin]
freshness_webhook = "{hook}"

[tenants.t.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw}"
partitions = 1
freshness = {{ max_age_secs = 2 }}

[pipelines.p]
datasets = ["t/sensor"]
group = "{group}"
"#,
        group = unique("process")
    ))
    .await;
    let ingestor =
        Ingestor::new(&stack.config, &stack.settings, &prometheus::Registry::new()).unwrap();
    let ops = Ops::new(
        stack.config.clone(),
        stack.settings.clone(),
        Arc::new(ingestor),
    )
    .unwrap();

    // Nothing to read: the first evaluation sees ok, and says so.
    ops.sample().await;
    // Records no processor reads: breached once the oldest has waited 2 s.
    stack
        .produce(&raw, "t", "sensor", &[json!({"sensor_id": "a"})])
        .await;
    let breached = eventually(Duration::from_secs(30), || {
        let (ops, receiver) = (&ops, &receiver);
        async move {
            ops.sample().await;
            let r = receiver.lock().unwrap();
            r.notices.iter().find(|n| n["state"] == "breached").cloned()
        }
    })
    .await
    .expect("a breached notice reached the webhook");
    assert_eq!(breached["tenant"], "t");
    assert_eq!(breached["dataset"], "sensor");
    assert!(
        breached["reason"]
            .as_str()
            .unwrap()
            .contains("over max_age_secs = 2"),
        "{breached}"
    );
    assert!(breached["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let r = receiver.lock().unwrap();
    assert_eq!(
        r.notices[0]["state"], "ok",
        "the first state seen is announced too"
    );
    assert!(r.notices[0]["previous"].is_null());
    assert_eq!(
        r.requests,
        r.notices.len() + 2,
        "two refusals, each retried: {:?}",
        r.notices
    );
    // Each change once: repeated evaluations of an unchanged state post nothing.
    let changes: Vec<&str> = r
        .notices
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert!(changes.windows(2).all(|w| w[0] != w[1]), "{changes:?}");
}
