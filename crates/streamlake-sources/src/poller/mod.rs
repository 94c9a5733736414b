//! The Sensor.Community poller: fetches the `static/v2/data.json` list (or replays a
//! file), maps each record into every configured tenant's message structure, and hands the
//! mapped events to the source driver. Records that cannot be mapped are dead-lettered with the
//! mapping rule; records seen in the last polls (same id) are not emitted again; a failed fetch
//! is retried with back-off and then logged, and the next poll comes as usual. A poll's ids
//! count as seen only once Kafka acknowledged all its events.

pub mod mapping;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use serde_json::Value;
use streamlake_config::Poller;
use streamlake_core::{RetryPolicy, Violation};
use streamlake_ingest::Ingestor;
use tokio_util::sync::CancellationToken;

use crate::source::{drive, Body, Emitted, Source, SourceError, SourceStats};
use mapping::map_record;

/// Polls whose ids are remembered for duplicate suppression.
const REMEMBERED_POLLS: usize = 3;

/// Counters of a poller: its polls, and its events as a source.
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
    /// The mapped events.
    pub events: SourceStats,
}

/// Conditional-request state of the URL.
#[derive(Debug, Default)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// A poller as a [`Source`]: a batch is one poll's new records, mapped for every output.
#[derive(Debug)]
struct PollerSource<'p> {
    poller: &'p Poller,
    client: reqwest::Client,
    validators: Validators,
    stats: Arc<PollerStats>,
    /// Ids of the last polls whose events Kafka acknowledged.
    seen: VecDeque<HashSet<String>>,
    /// Ids of the poll handed out and not yet acknowledged.
    polled: HashSet<String>,
    /// When the next poll is due (at once for the first).
    next: tokio::time::Instant,
}

impl Source for PollerSource<'_> {
    type Ack = ();

    fn name(&self) -> &str {
        "poller"
    }

    async fn poll(&mut self) -> Result<Option<Vec<Emitted<()>>>, SourceError> {
        loop {
            tokio::time::sleep_until(self.next).await;
            self.next =
                tokio::time::Instant::now() + Duration::from_secs(self.poller.config.interval_secs);
            match fetch(self.poller, &self.client, &mut self.validators).await {
                Ok(Some(records)) => {
                    self.stats.polls.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(self.batch(&records)));
                }
                Ok(None) => {
                    self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.failed_polls.fetch_add(1, Ordering::Relaxed);
                    let cfg = &self.poller.config;
                    tracing::error!(poller = %self.poller.name, error = %e, retries = cfg.retries, next_poll_in_secs = cfg.interval_secs, "poll failed");
                }
            }
        }
    }

    async fn acknowledge(&mut self, _: Vec<()>) {
        self.seen.push_back(std::mem::take(&mut self.polled));
        while self.seen.len() > REMEMBERED_POLLS {
            self.seen.pop_front();
        }
    }
}

impl PollerSource<'_> {
    /// One poll's records not seen before, mapped for every output; remembers every id of the
    /// poll for when it is acknowledged.
    fn batch(&mut self, records: &[Value]) -> Vec<Emitted<()>> {
        let poller = self.poller;
        let id_of = |r: &Value| {
            r.pointer(&poller.config.id_pointer).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        self.polled.clear();
        let mut batch = Vec::new();
        let mut fresh = 0;
        for r in records {
            if let Some(id) = id_of(r) {
                let repeated = self.seen.iter().any(|s| s.contains(&id));
                self.polled.insert(id);
                if repeated {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            fresh += 1;
            for (target, fields) in &poller.outputs {
                let (tenant, dataset) = (target.tenant.clone(), target.dataset.clone());
                let body = match map_record(r, fields) {
                    Ok(event) => Body::Event {
                        tenant,
                        dataset,
                        bytes: serde_json::to_vec(&event).expect("JSON encodes"),
                    },
                    Err(e) => {
                        tracing::warn!(poller = %poller.name, dataset = %target, error = %e, "record cannot be mapped; dead-lettered");
                        Body::Refused {
                            tenant,
                            dataset,
                            bytes: serde_json::to_vec(r).expect("JSON encodes"),
                            violation: Violation::new(
                                &e.field,
                                &format!("mapping.{}", e.rule),
                                e.to_string(),
                            ),
                        }
                    }
                };
                batch.push(Emitted { body, ack: () });
            }
        }
        tracing::info!(poller = %poller.name, records = records.len(), new = fresh, "poll mapped");
        batch
    }
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
    tracing::info!(poller = %poller.name, source = %cfg.file.as_ref().map_or(cfg.url.clone(), |f| f.display().to_string()), outputs = poller.outputs.len(), "poller starting");
    let mut source = PollerSource {
        poller,
        client,
        validators: Validators::default(),
        stats: stats.clone(),
        seen: VecDeque::new(),
        polled: HashSet::new(),
        next: tokio::time::Instant::now(),
    };
    if let Err(e) = drive(&mut source, &ingestor, &stats.events, &shutdown).await {
        tracing::error!(poller = %poller.name, error = %e, "poller failed");
    }
    tracing::info!(poller = %poller.name, "poller stopped");
}

/// The records of one poll, `None` when the server says nothing changed.
async fn fetch(
    poller: &Poller,
    client: &reqwest::Client,
    validators: &mut Validators,
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
            tokio::time::sleep(pause).await;
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
