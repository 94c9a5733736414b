//! `lab failover`: what replication promises, shown by breaking it. The lab starts a managed
//! Kafka of its own (three nodes by default; one to see a lone broker die), a gateway in front
//! of it, and steady HTTP load of single events with `acks=all` and idempotence. Partway through
//! it SIGKILLs the node that leads the most of the topic's partitions; the supervisor restarts
//! it. Afterwards every event answered 2xx is looked up at the partition and offset its answer
//! gave: it must be there with identical bytes, once. Clients must see only 2xx, or 503 with
//! `may_have_been_written`, never an answer later than the produce deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use streamlake_broker::ManagedKafka;
use streamlake_core::Health;
use streamlake_kafka::{provision, read_ranges, Admin, KafkaSettings};
use tokio_util::sync::CancellationToken;

use crate::LabError;

/// How the failover lab runs.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Broker nodes: 3 (replicated) or 1.
    pub nodes: u16,
    /// Partitions of the lab's topic.
    pub partitions: i32,
    /// Concurrent HTTP clients, each sending one event per request.
    pub clients: usize,
    /// Load before the kill.
    pub before_kill: Duration,
    /// Load after the kill.
    pub after_kill: Duration,
    /// The gateway's produce deadline (`gateway.produce_timeout_ms`).
    pub produce_timeout: Duration,
}

impl Default for FailoverOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            partitions: 6,
            clients: 8,
            before_kill: Duration::from_secs(5),
            after_kill: Duration::from_secs(20),
            produce_timeout: Duration::from_secs(5),
        }
    }
}

/// What the lab saw.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    /// Broker nodes.
    pub nodes: u16,
    /// The node killed, and how many of the topic's partitions it led.
    pub killed_node: i32,
    /// Partitions the killed node led.
    pub killed_led: usize,
    /// Requests sent.
    pub requests: u64,
    /// Answered 2xx.
    pub acknowledged: u64,
    /// Answered 503 saying the event may have been written.
    pub maybe_written: u64,
    /// Answered 503 saying it was not written.
    pub not_written: u64,
    /// Any other answer, or no answer (connection error): must be 0.
    pub unexpected: u64,
    /// The slowest answer, in milliseconds.
    pub slowest_ms: u64,
    /// The produce deadline the gateway answers 503 at, in milliseconds.
    pub produce_timeout_ms: u64,
    /// Answers slower than the produce deadline plus one second: must be 0.
    pub over_deadline: u64,
    /// Longest time after the kill without a 2xx answer, in milliseconds.
    pub unavailable_ms: u64,
    /// From the kill to the node answering again after its restart, in milliseconds.
    pub node_back_ms: Option<u64>,
    /// Acknowledged events not found at their partition and offset with identical bytes.
    pub lost: Vec<String>,
    /// Events written more than once (by their client-side id).
    pub duplicated: Vec<String>,
    /// Of the 503 `may_have_been_written` answers, how many events are in the topic.
    pub maybe_written_found: u64,
    /// Of the 503 answers saying the event was not written, how many are in the topic: must be 0.
    pub not_written_found: u64,
    /// Start-up time of the cluster, in milliseconds.
    pub startup_ms: u64,
}

/// One request's fate.
struct Sent {
    id: String,
    body: Vec<u8>,
    at: Duration,
    took: Duration,
    answer: Answer,
}

enum Answer {
    Ok { partition: i32, offset: i64 },
    MaybeWritten,
    NotWritten,
    Unexpected,
}

const SCHEMA: &str = r#"{"type": "object", "required": ["id", "key"]}"#;

/// Runs the lab; `data_dir` holds the cluster's storage (removed by the caller).
pub async fn run(
    opts: &FailoverOptions,
    data_dir: &std::path::Path,
) -> Result<FailoverReport, LabError> {
    let other = |e: &dyn std::fmt::Display| LabError::Other(e.to_string());
    if opts.nodes != 1 && opts.nodes != 3 {
        return Err(LabError::Other(format!(
            "the lab runs 1 or 3 broker nodes, not {}",
            opts.nodes
        )));
    }
    let health = Health::new();
    let broker_cfg = streamlake_config::BrokerConfig {
        listen: streamlake_broker::layout::free_port_block(2 * opts.nodes)
            .ok_or_else(|| LabError::Other("no free ports on loopback".into()))?,
        nodes: opts.nodes,
        heap_mb: 384,
        ..Default::default()
    };
    let kafka = ManagedKafka::start(&broker_cfg, &data_dir.join("cluster"), health.clone())
        .await
        .map_err(|e| other(&e))?;
    let result = drive(opts, &kafka, &health, data_dir).await;
    kafka.stop().await;
    result
}

async fn drive(
    opts: &FailoverOptions,
    kafka: &ManagedKafka,
    health: &Health,
    data_dir: &std::path::Path,
) -> Result<FailoverReport, LabError> {
    let other = |e: &dyn std::fmt::Display| LabError::Other(e.to_string());
    let settings = KafkaSettings::new(kafka.bootstrap_servers());
    std::fs::write(data_dir.join("schema.json"), SCHEMA).map_err(|e| other(&e))?;
    let config_path = data_dir.join("failover.toml");
    std::fs::write(
        &config_path,
        format!(
            "[gateway]\nproduce_timeout_ms = {}\n[topic_defaults]\npartitions = {}\n[tenants.lab]\ndev_api_key = \"lab-key\"\n[tenants.lab.datasets.events]\nschema = \"schema.json\"\nkey = \"/key\"\n",
            opts.produce_timeout.as_millis(),
            opts.partitions
        ),
    )
    .map_err(|e| other(&e))?;
    let config = streamlake_config::load(&config_path, &[]).map_err(|e| other(&e))?;
    let admin = Admin::new(&settings)?;
    provision(&admin, &config.declared_topics()).await;
    let topic = "lab.events.raw";

    let gateway = Arc::new(
        streamlake_gateway::Gateway::new(&config, &settings)
            .map_err(|e| other(&e))?
            .with_health(health.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| other(&e))?;
    let url = format!(
        "http://{}/v1/tenants/lab/datasets/events/events",
        listener.local_addr().map_err(|e| other(&e))?
    );
    let stop_server = CancellationToken::new();
    let server = tokio::spawn(streamlake_gateway::serve(
        listener,
        Arc::clone(&gateway),
        stop_server.clone(),
    ));

    let start = Instant::now();
    let stop_load = CancellationToken::new();
    let mut clients = Vec::new();
    for c in 0..opts.clients {
        let (url, stop) = (url.clone(), stop_load.clone());
        let timeout = opts.produce_timeout * 3;
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client");
            let mut sent = Vec::new();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let id = format!("c{c}-{n}");
                let body = format!(r#"{{"id":"{id}","key":"k{}","v":{n}}}"#, n % 64).into_bytes();
                let at = start.elapsed();
                let t = Instant::now();
                let answer = post(&http, &url, body.clone()).await;
                sent.push(Sent {
                    id,
                    body,
                    at,
                    took: t.elapsed(),
                    answer,
                });
                if matches!(
                    sent.last().map(|s| &s.answer),
                    Some(Answer::MaybeWritten | Answer::NotWritten | Answer::Unexpected)
                ) {
                    // As a client honouring Retry-After would, do not spin on an outage.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            sent
        }));
    }

    tokio::time::sleep(opts.before_kill).await;
    let info = admin.describe_topic(topic).await?;
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for p in &info.partitions {
        *led.entry(p.leader).or_default() += 1;
    }
    let (victim, victim_led) = led
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(id, n)| (*id, *n))
        .ok_or_else(|| LabError::Other("the topic has no partition leaders".into()))?;
    let pid = u16::try_from(victim)
        .ok()
        .and_then(|id| kafka.pid(id))
        .ok_or_else(|| LabError::Other(format!("node {victim} has no process")))?;
    let killed_at = start.elapsed();
    tracing::info!(node = victim, pid, "failover lab: killing the node");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| other(&e))?;
    // When the node answers again after its restart.
    let node_back = {
        let health = health.clone();
        tokio::spawn(async move {
            let mut seen_down = false;
            loop {
                let up = health.problems().is_empty();
                if !up {
                    seen_down = true;
                } else if seen_down {
                    return Some(start.elapsed());
                }
                if start.elapsed() > killed_at + Duration::from_secs(180) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(opts.after_kill).await;
    stop_load.cancel();
    let mut sent = Vec::new();
    for c in clients {
        sent.extend(c.await.map_err(|e| other(&e))?);
    }
    let node_back = node_back.await.map_err(|e| other(&e))?;
    // Every node back before reading, so every partition can be read.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !health.problems().is_empty() {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_server.cancel();
    let _ = server.await;
    let flushed = tokio::task::spawn_blocking(move || gateway.flush()).await;
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "failover lab: flushing the gateway failed");
    }

    let written = read_ranges(
        &settings,
        topic,
        admin.describe_topic(topic).await?.ranges(),
        Duration::from_secs(10),
    )
    .await?;
    Ok(judge(
        opts, kafka, victim, victim_led, killed_at, node_back, &sent, &written,
    ))
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Answer {
    let response = http
        .post(url)
        .bearer_auth("lab-key")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let Ok(response) = response else {
        return Answer::Unexpected;
    };
    let status = response.status().as_u16();
    let Ok(v) = response.json::<serde_json::Value>().await else {
        return Answer::Unexpected;
    };
    match status {
        200 => match (v["partition"].as_i64(), v["offset"].as_i64()) {
            (Some(p), Some(o)) => Answer::Ok {
                partition: p as i32,
                offset: o,
            },
            _ => Answer::Unexpected,
        },
        503 => match v["may_have_been_written"].as_bool() {
            Some(true) => Answer::MaybeWritten,
            Some(false) => Answer::NotWritten,
            None => Answer::Unexpected,
        },
        _ => Answer::Unexpected,
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    opts: &FailoverOptions,
    kafka: &ManagedKafka,
    victim: i32,
    victim_led: usize,
    killed_at: Duration,
    node_back: Option<Duration>,
    sent: &[Sent],
    written: &[streamlake_kafka::Record],
) -> FailoverReport {
    let mut by_position: BTreeMap<(i32, i64), &streamlake_kafka::Record> = BTreeMap::new();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for r in written {
        by_position.insert((r.partition, r.offset), r);
        if let Some(id) = r
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|v| v["id"].as_str().map(str::to_owned))
        {
            *copies.entry(id).or_default() += 1;
        }
    }
    let deadline = opts.produce_timeout + Duration::from_secs(1);
    let mut report = FailoverReport {
        nodes: opts.nodes,
        killed_node: victim,
        killed_led: victim_led,
        requests: sent.len() as u64,
        acknowledged: 0,
        maybe_written: 0,
        not_written: 0,
        unexpected: 0,
        slowest_ms: 0,
        produce_timeout_ms: opts.produce_timeout.as_millis() as u64,
        over_deadline: 0,
        unavailable_ms: 0,
        node_back_ms: node_back.map(|t| t.saturating_sub(killed_at).as_millis() as u64),
        lost: Vec::new(),
        duplicated: copies
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id.clone())
            .collect(),
        maybe_written_found: 0,
        not_written_found: 0,
        startup_ms: kafka.startup_time().as_millis() as u64,
    };
    let mut acknowledged_at: BTreeSet<Duration> = BTreeSet::new();
    for s in sent {
        report.slowest_ms = report.slowest_ms.max(s.took.as_millis() as u64);
        if s.took > deadline {
            report.over_deadline += 1;
        }
        match &s.answer {
            Answer::Ok { partition, offset } => {
                report.acknowledged += 1;
                acknowledged_at.insert(s.at + s.took);
                let found = by_position.get(&(*partition, *offset));
                if found.and_then(|r| r.payload.as_deref()) != Some(&s.body[..]) {
                    report.lost.push(s.id.clone());
                }
            }
            Answer::MaybeWritten => {
                report.maybe_written += 1;
                if copies.contains_key(&s.id) {
                    report.maybe_written_found += 1;
                }
            }
            Answer::NotWritten => {
                report.not_written += 1;
                if copies.contains_key(&s.id) {
                    report.not_written_found += 1;
                }
            }
            Answer::Unexpected => report.unexpected += 1,
        }
    }
    // The longest stretch after the kill without an acknowledgement, to the end of the load.
    let end = sent
        .iter()
        .map(|s| s.at + s.took)
        .max()
        .unwrap_or(killed_at);
    let mut last = killed_at;
    for t in acknowledged_at
        .range(killed_at..)
        .chain(std::iter::once(&end))
    {
        report.unavailable_ms = report
            .unavailable_ms
            .max(t.saturating_sub(last).as_millis() as u64);
        last = last.max(*t);
    }
    report
}
