//! The Sensor.Community poller: fetches the `static/v2/data.json` list (or replays a
//! file), maps each record into every configured tenant's message structure, and ingests each
//! mapped event through the ingestion core's path. Records that cannot be mapped are dead-lettered
//! with the mapping rule; records seen in the last polls (same id) are not emitted again; a
//! failed fetch is retried with back-off and then logged, and the next poll comes as usual.
//! A record counts as seen only once Kafka acknowledged all its events.

pub mod mapping;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use serde_json::Value;
use streamlake_config::Poller;
use streamlake_ingest::{Ingested, Ingestor};
use tokio_util::sync::CancellationToken;

use mapping::map_record;
use streamlake_core::RetryPolicy;

/// The `producer_service` header of polled events.
pub const PRODUCER_SERVICE: &str = "streamlake-poller";

/// Polls whose ids are remembered for duplicate suppression.
const REMEMBERED_POLLS: usize = 3;

/// Counters of a poller.
#[derive(Debug, Default)]
pub struct PollerStats {
    /// Polls that returned data.
    pub polls: AtomicU64,
    /// Polls given up after every retry.
    pub failed_polls: AtomicU64,
    /// Polls answered 304 Not Modified.
    pub not_modified: AtomicU64,
    /// Records skipped because an earlier poll emitted them.
    pub duplicates: AtomicU64,
    /// Events written to raw topics.
    pub accepted: AtomicU64,
    /// Events dead-lettered (mapping or schema).
    pub dead_lettered: AtomicU64,
    /// Ingest attempts Kafka did not acknowledge (retried).
    pub retries: AtomicU64,
}

/// Conditional-request state of the URL.
#[derive(Debug, Default)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Runs `poller` until `shutdown`: a poll at once, then every `interval_secs`.
pub async fn run_poller(
    poller: &Poller,
    ingestor: Arc<Ingestor>,
    stats: Arc<PollerStats>,
    shutdown: CancellationToken,
) {
    let cfg = &poller.config;
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.timeout_secs))
        .user_agent(concat!("streamlake/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(poller = %poller.name, error = %e, "cannot create the HTTP client");
            return;
        }
    };
    let mut validators = Validators::default();
    let mut seen: VecDeque<HashSet<String>> = VecDeque::new();
    tracing::info!(poller = %poller.name, source = %cfg.file.as_ref().map_or(cfg.url.clone(), |f| f.display().to_string()), outputs = poller.outputs.len(), "poller starting");
    while !shutdown.is_cancelled() {
        match fetch(poller, &client, &mut validators, &shutdown).await {
            Ok(Some(records)) => {
                stats.polls.fetch_add(1, Ordering::Relaxed);
                let ids = ingest_poll(poller, &ingestor, &stats, &records, &seen, &shutdown).await;
                seen.push_back(ids);
                while seen.len() > REMEMBERED_POLLS {
                    seen.pop_front();
                }
            }
            Ok(None) => {
                stats.not_modified.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed_polls.fetch_add(1, Ordering::Relaxed);
                tracing::error!(poller = %poller.name, error = %e, retries = cfg.retries, next_poll_in_secs = cfg.interval_secs, "poll failed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(cfg.interval_secs)) => {}
        }
    }
    tracing::info!(poller = %poller.name, "poller stopped");
}

/// The records of one poll, `None` when the server says nothing changed.
async fn fetch(
    poller: &Poller,
    client: &reqwest::Client,
    validators: &mut Validators,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<Value>>, String> {
    let cfg = &poller.config;
    if let Some(file) = &cfg.file {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        return parse(&bytes).map(Some);
    }
    let mut backoff = RetryPolicy::RECONNECT.backoff();
    let mut last_error = String::new();
    for attempt in 1..=cfg.retries {
        let mut request = client.get(&cfg.url);
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        match request.send().await {
            Ok(r) if r.status() == StatusCode::NOT_MODIFIED => return Ok(None),
            Ok(r) if r.status().is_success() => {
                let header = |name| {
                    r.headers()
                        .get(name)
                        .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
                match r.bytes().await {
                    Ok(bytes) => {
                        let records = parse(&bytes)?;
                        validators.etag = etag;
                        validators.last_modified = last_modified;
                        return Ok(Some(records));
                    }
                    Err(e) => last_error = format!("reading the body of {}: {e}", cfg.url),
                }
            }
            Ok(r) => last_error = format!("{} answered {}", cfg.url, r.status()),
            Err(e) => last_error = format!("GET {}: {e}", cfg.url),
        }
        if attempt < cfg.retries {
            let pause = backoff.next_delay();
            tracing::warn!(poller = %poller.name, attempt, error = %last_error, retry_in = ?pause, "fetch failed; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
    Err(last_error)
}

fn parse(bytes: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(records)) => Ok(records),
        Ok(_) => Err("the data list is not a JSON array".to_owned()),
        Err(e) => Err(format!("the data list is not JSON: {e}")),
    }
}

/// Ingests one poll's new records; returns the ids of every record in the poll.
async fn ingest_poll(
    poller: &Poller,
    ingestor: &Ingestor,
    stats: &PollerStats,
    records: &[Value],
    seen: &VecDeque<HashSet<String>>,
    shutdown: &CancellationToken,
) -> HashSet<String> {
    let id_of = |r: &Value| {
        r.pointer(&poller.config.id_pointer).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut ids = HashSet::new();
    let mut fresh = Vec::new();
    for r in records {
        match id_of(r) {
            Some(id) if seen.iter().any(|s| s.contains(&id)) => {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                ids.insert(id);
            }
            Some(id) => {
                ids.insert(id);
                fresh.push(r);
            }
            None => fresh.push(r),
        }
    }
    for chunk in fresh.chunks(256) {
        join_all(
            chunk
                .iter()
                .map(|r| ingest_record(poller, ingestor, stats, r, shutdown)),
        )
        .await;
    }
    tracing::info!(poller = %poller.name, records = records.len(), new = fresh.len(), "poll ingested");
    ids
}

/// Maps and ingests one record for every output, retrying what Kafka did not acknowledge.
async fn ingest_record(
    poller: &Poller,
    ingestor: &Ingestor,
    stats: &PollerStats,
    record: &Value,
    shutdown: &CancellationToken,
) {
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    for (target, fields) in &poller.outputs {
        let mut backoff = RetryPolicy::REDELIVER.backoff();
        let ingestion_id = Ingestor::new_ingestion_id();
        loop {
            let result = match map_record(record, fields) {
                Ok(event) => {
                    ingestor
                        .ingest(
                            &target.tenant,
                            &target.dataset,
                            serde_json::to_vec(&event).unwrap_or_default(),
                            PRODUCER_SERVICE,
                            ingestion_id.clone(),
                        )
                        .await
                }
                Err(e) => {
                    tracing::warn!(poller = %poller.name, dataset = %target, error = %e, "record cannot be mapped; dead-lettered");
                    ingestor
                        .dead_letter(
                            &target.tenant,
                            &target.dataset,
                            &bytes,
                            e.to_string(),
                            e.field.clone(),
                            format!("mapping.{}", e.rule),
                            PRODUCER_SERVICE,
                        )
                        .await
                }
            };
            match result {
                Ok(Ingested::Accepted { .. }) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Ingested::DeadLettered { .. }) => {
                    stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Ingested::Failed { error, .. }) => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(poller = %poller.name, dataset = %target, %error, "Kafka did not acknowledge; retrying");
                    if shutdown.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(unknown) => {
                    tracing::error!(poller = %poller.name, error = %unknown, "poller output names an unknown dataset");
                    break;
                }
            }
        }
    }
}
