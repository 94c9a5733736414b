//! Idempotent retries: a request sent with `Idempotency-Key` is written at most once per
//! tenant, dataset and key; a retry gets the first answer back.
//!
//! The keys live in Kafka, in each tenant's idempotency log (`naming.idempotency`, a compacted
//! topic of one partition keyed by `{dataset}/{key}`), which every gateway follows from its
//! beginning ([`Tail`]) into a small table in memory. The log, not any one process, decides who
//! writes a request: a gateway appends a *claim* and waits until its follower has applied it;
//! the first claim of a key in the log wins, on every gateway alike, because each applies the
//! same records in the same order by the same rules ([`Table::apply`]). The winner writes the
//! events and appends the *settled* answer; the others answer 409 while the claim is held and
//! the stored answer once it is settled.
//!
//! A claim is held for a lease: the produce deadline, then librdkafka's `message.timeout.ms`
//! for the delivery reports still to come (an answer "503, may have been written" is settled
//! from those reports, so its retry gets what really happened), and a margin. The events of a
//! keyed request get ingestion ids derived from the tenant, dataset, key, body and position, so
//! the rare second write (a winner that died before settling, whose lease ran out) carries the
//! same ids, which the sinks deduplicate on.
//!
//! Memory: one entry per key seen within the window (the key, a fingerprint, offsets and
//! times); stored answers stay in the log and are read back when a retry needs one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use streamlake_core::{DatasetId, TenantId};
use streamlake_kafka::{read_ranges, Headers, KafkaSettings, Producer, Record, Tail};

/// Longest `Idempotency-Key` accepted, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 255;

/// The least a write to the log waits for its acknowledgement.
const LOG_TIMEOUT_MIN: Duration = Duration::from_secs(5);

/// How long a claim may take to come back through the follower before the request gives up.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds since the epoch, the clock records of the log carry.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why an `Idempotency-Key` header is refused.
pub(crate) fn check_key(value: &[u8]) -> Result<&str, String> {
    if value.is_empty() || value.len() > MAX_KEY_BYTES {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
            value.len()
        ));
    }
    match std::str::from_utf8(value) {
        Ok(key) if key.bytes().all(|b| b.is_ascii_graphic()) => Ok(key),
        _ => Err("Idempotency-Key must be printable ASCII without spaces (e.g. a UUID)".to_owned()),
    }
}

/// What identifies a request's content: its framing and its body.
pub(crate) fn fingerprint(framing: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(framing.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The ingestion id of the `index`th event of a keyed request: the same for every attempt of
/// the same request, different for any other.
pub(crate) fn ingestion_id(
    tenant: &TenantId,
    dataset: &DatasetId,
    key: &str,
    fingerprint: &str,
    index: usize,
) -> String {
    let name = format!("{tenant}/{dataset}/{key}/{fingerprint}/{index}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// A record of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
enum Entry {
    /// A gateway asks to write the request.
    Claimed {
        fingerprint: String,
        /// When it was claimed (the writer's clock, ms since the epoch).
        at: i64,
        /// Until when the claim holds without being settled.
        lease_until: i64,
        /// When the key is forgotten.
        expires: i64,
    },
    /// The request's answer; `claim` is the offset of the claim it settles.
    Settled {
        fingerprint: String,
        claim: i64,
        at: i64,
        expires: i64,
        answer: Stored,
    },
}

/// A request's answer as stored: one report per event; `None` for an event that was not
/// written (a retry writes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The request was one event, not a batch.
    pub(crate) single: bool,
    /// Each event's report, in request order.
    pub(crate) events: Vec<Option<serde_json::Value>>,
}

impl Stored {
    fn complete(&self) -> bool {
        self.events.iter().all(Option::is_some)
    }
}

/// A key's state, as the log's records so far make it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    /// Claimed by the claim at offset `claim`; `prior` is the settled answer it continues.
    Claimed {
        fingerprint: String,
        claim: i64,
        lease_until: i64,
        expires: i64,
        prior: Option<i64>,
    },
    /// Settled by the record at `offset`; `complete` when every event was written.
    Settled {
        fingerprint: String,
        offset: i64,
        expires: i64,
        complete: bool,
    },
}

impl State {
    fn fingerprint(&self) -> &str {
        match self {
            State::Claimed { fingerprint, .. } | State::Settled { fingerprint, .. } => fingerprint,
        }
    }

    fn expires(&self) -> i64 {
        match self {
            State::Claimed { expires, .. } | State::Settled { expires, .. } => *expires,
        }
    }
}

/// The log applied: each key's state. Every gateway applies the same records in the same
/// order by these rules, so all agree on who holds a key.
#[derive(Debug, Default)]
pub(crate) struct Table {
    keys: HashMap<String, State>,
    applied: u64,
}

impl Table {
    /// Applies the record at `offset` with key `key`, dated `at` (its writer's clock).
    fn apply(&mut self, key: String, offset: i64, entry: Entry) {
        self.applied += 1;
        match entry {
            Entry::Claimed {
                fingerprint,
                at,
                lease_until,
                expires,
            } => {
                let prior = match self.keys.get(&key) {
                    None => None,
                    Some(s) if s.expires() <= at => None,
                    Some(s) if s.fingerprint() != fingerprint => return,
                    // Held by a live claim: this one loses.
                    Some(State::Claimed {
                        lease_until: held, ..
                    }) if *held > at => return,
                    // A claim whose holder never settled: taken over, with what it continued.
                    Some(State::Claimed { prior, .. }) => *prior,
                    Some(State::Settled { complete: true, .. }) => return,
                    Some(State::Settled { offset, .. }) => Some(*offset),
                };
                self.keys.insert(
                    key,
                    State::Claimed {
                        fingerprint,
                        claim: offset,
                        lease_until,
                        expires,
                        prior,
                    },
                );
            }
            Entry::Settled {
                fingerprint,
                claim,
                at,
                expires,
                answer,
            } => {
                let holds = matches!(
                    self.keys.get(&key),
                    Some(State::Claimed { claim: c, .. }) if *c == claim
                );
                if holds {
                    self.keys.insert(
                        key,
                        State::Settled {
                            fingerprint,
                            offset,
                            expires,
                            complete: answer.complete(),
                        },
                    );
                }
                // Keys past their window go, now and then, by the log's clock.
                if self.applied.is_multiple_of(1024) {
                    self.keys.retain(|_, s| s.expires() > at);
                }
            }
        }
    }

    /// The state of `key` at `now`; `None` once it expired.
    pub(crate) fn get(&self, key: &str, now: i64) -> Option<&State> {
        self.keys.get(key).filter(|s| s.expires() > now)
    }
}

/// What a keyed request may do, as the table says before it claims.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Write the request (the events not written yet when `prior` holds an answer).
    Write { claim: i64, prior: Option<Stored> },
    /// Another attempt of it holds the key now.
    InProgress { retry_after: u64 },
    /// Answered before: the stored answer.
    Answered(Stored),
    /// The key was used for another request.
    Reused,
}

/// Why a keyed request could not be decided.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    #[error("the idempotency log {topic} cannot be read: {reason}; provisioning creates it")]
    Unreadable { topic: String, reason: String },
    #[error("the idempotency log {topic} did not take the request's claim: {reason}")]
    Unwritable { topic: String, reason: String },
    #[error("the idempotency log {topic} was not read back within {} s", REACH_TIMEOUT.as_secs())]
    Behind { topic: String },
}

/// One tenant's idempotency log, followed.
pub(crate) struct Log {
    topic: String,
    table: Arc<Mutex<Table>>,
    tail: Tail,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("topic", &self.topic).finish()
    }
}

impl Log {
    async fn start(settings: &KafkaSettings, topic: String) -> Result<Self, LogError> {
        let table = Arc::new(Mutex::new(Table::default()));
        let apply_to = Arc::clone(&table);
        let topic_name = topic.clone();
        let tail = Tail::start(settings, vec![topic.clone()], move |r: Record| {
            let Some(key) = r.key_str().map(str::to_owned) else {
                return;
            };
            match r.json::<Entry>() {
                Ok(entry) => lock(&apply_to).apply(key, r.offset, entry),
                Err(e) => tracing::warn!(topic = %topic_name, offset = r.offset, error = %e, "idempotency log: record skipped"),
            }
        })
        .await
        .map_err(|e| LogError::Unreadable {
            topic: topic.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { topic, table, tail })
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // Every change to the table is one insert or retain: a panic cannot leave it half-done.
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gateway's idempotency logs, each followed from the first keyed request of its tenant.
pub(crate) struct Idempotency {
    settings: KafkaSettings,
    topics: BTreeMap<TenantId, String>,
    logs: BTreeMap<TenantId, tokio::sync::OnceCell<Arc<Log>>>,
    producer: tokio::sync::OnceCell<Producer>,
    window: Duration,
    lease: Duration,
    /// How long a write to the log waits for its acknowledgement.
    log_timeout: Duration,
    retry_after_secs: u64,
    /// Answers being stored once their delivery reports came; awaited at shutdown.
    pending: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("topics", &self.topics)
            .field("window", &self.window)
            .finish()
    }
}

impl Idempotency {
    pub(crate) fn new(config: &streamlake_config::Config, settings: &KafkaSettings) -> Self {
        let message_timeout = settings
            .producer_config()
            .get("message.timeout.ms")
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(300), Duration::from_millis);
        let produce_timeout = Duration::from_millis(config.gateway.produce_timeout_ms);
        Self {
            settings: settings.clone(),
            topics: config
                .tenants
                .values()
                .map(|t| (t.id.clone(), t.idempotency_topic.clone()))
                .collect(),
            logs: config
                .tenants
                .keys()
                .map(|t| (t.clone(), tokio::sync::OnceCell::new()))
                .collect(),
            producer: tokio::sync::OnceCell::new(),
            window: Duration::from_secs(config.gateway.idempotency_window_secs),
            lease: produce_timeout + message_timeout + Duration::from_secs(10),
            // The request waits for its claim as for its events, but a very short produce
            // deadline does not make the log unusable.
            log_timeout: produce_timeout.max(LOG_TIMEOUT_MIN),
            retry_after_secs: config.gateway.retry_after_secs,
            pending: tokio_util::task::TaskTracker::new(),
        }
    }

    async fn log(&self, tenant: &TenantId) -> Result<Arc<Log>, LogError> {
        let (Some(cell), Some(topic)) = (self.logs.get(tenant), self.topics.get(tenant)) else {
            return Err(LogError::Unreadable {
                topic: format!("of tenant {tenant}"),
                reason: "the tenant is not configured".to_owned(),
            });
        };
        cell.get_or_try_init(|| async {
            Log::start(&self.settings, topic.clone())
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    async fn producer(&self, topic: &str) -> Result<&Producer, LogError> {
        self.producer
            .get_or_try_init(|| async {
                // A request waits for its claim: the log's records leave at once.
                let mut config = self.settings.producer_config_over(&[("linger.ms", "0")]);
                // Room for a batch's answer, with the record's own overhead.
                config.set(
                    "message.max.bytes",
                    (streamlake_config::IDEMPOTENCY_RECORD_BYTES + 4096).to_string(),
                );
                Producer::from_config(config).map(|p| p.with_deadline(self.log_timeout))
            })
            .await
            .map_err(|e| LogError::Unwritable {
                topic: topic.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Decides what a request with `key` and `fingerprint` may do, claiming the key when the
    /// table says it is free.
    pub(crate) async fn decide(
        &self,
        tenant: &TenantId,
        dataset: &DatasetId,
        key: &str,
        fingerprint: &str,
    ) -> Result<Verdict, LogError> {
        let log = self.log(tenant).await?;
        let log_key = format!("{dataset}/{key}");
        match self.known(&log, &log_key, fingerprint).await? {
            // Held, as far as this process has read: another process may have settled it since.
            Some(Verdict::InProgress { .. }) => {
                if !log.tail.catch_up(&log.topic, 0, REACH_TIMEOUT).await {
                    return Err(LogError::Behind {
                        topic: log.topic.clone(),
                    });
                }
                if let Some(verdict) = self.known(&log, &log_key, fingerprint).await? {
                    return Ok(verdict);
                }
            }
            Some(verdict) => return Ok(verdict),
            None => {}
        }
        let now = now_ms();
        let claim = Entry::Claimed {
            fingerprint: fingerprint.to_owned(),
            at: now,
            lease_until: now + millis(self.lease),
            expires: now + millis(self.window),
        };
        let receipt = self.append(&log, &log_key, &claim).await?;
        if !log
            .tail
            .reach(&log.topic, receipt.partition, receipt.offset, REACH_TIMEOUT)
            .await
        {
            return Err(LogError::Behind {
                topic: log.topic.clone(),
            });
        }
        let state = lock(&log.table).get(&log_key, now_ms()).cloned();
        match state {
            Some(State::Claimed { claim, prior, .. }) if claim == receipt.offset => {
                let prior = match prior {
                    Some(offset) => Some(self.read(&log, offset).await?),
                    None => None,
                };
                Ok(Verdict::Write { claim, prior })
            }
            _ => {
                Ok(self
                    .known(&log, &log_key, fingerprint)
                    .await?
                    .unwrap_or(Verdict::InProgress {
                        retry_after: self.retry_after_secs,
                    }))
            }
        }
    }

    /// The verdict the table gives without a claim: `None` when the key is free to claim.
    async fn known(
        &self,
        log: &Log,
        log_key: &str,
        fingerprint: &str,
    ) -> Result<Option<Verdict>, LogError> {
        let now = now_ms();
        let state = lock(&log.table).get(log_key, now).cloned();
        Ok(match state {
            None => None,
            Some(s) if s.fingerprint() != fingerprint => Some(Verdict::Reused),
            Some(State::Claimed { lease_until, .. }) if lease_until > now => {
                Some(Verdict::InProgress {
                    retry_after: self.retry_after_secs,
                })
            }
            Some(State::Claimed { .. }) => None,
            Some(State::Settled {
                offset,
                complete: true,
                ..
            }) => Some(Verdict::Answered(self.read(log, offset).await?)),
            Some(State::Settled { .. }) => None,
        })
    }

    /// Runs `settle` (storing an answer once its delivery reports came) in the background; the
    /// gateway's shutdown waits for it ([`Idempotency::finish`]).
    pub(crate) fn settle_later(
        &self,
        settle: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.pending.spawn(settle);
    }

    /// Waits, at most `timeout`, for the answers still being stored; returns how many were
    /// left (their claims hold until their lease runs out).
    pub(crate) async fn finish(&self, timeout: Duration) -> usize {
        self.pending.close();
        let _ = tokio::time::timeout(timeout, self.pending.wait()).await;
        self.pending.len()
    }

    /// Settles the claim at `claim` with `answer`.
    pub(crate) async fn settle(
        &self,
        tenant: &TenantId,
        dataset: &DatasetId,
        key: &str,
        fingerprint: &str,
        claim: i64,
        answer: Stored,
    ) -> Result<(), LogError> {
        let log = self.log(tenant).await?;
        let now = now_ms();
        let entry = Entry::Settled {
            fingerprint: fingerprint.to_owned(),
            claim,
            at: now,
            expires: now + millis(self.window),
            answer,
        };
        self.append(&log, &format!("{dataset}/{key}"), &entry)
            .await
            .map(|_| ())
    }

    async fn append(
        &self,
        log: &Log,
        log_key: &str,
        entry: &Entry,
    ) -> Result<streamlake_kafka::DeliveryReceipt, LogError> {
        let producer = self.producer(&log.topic).await?;
        producer
            .send_json(&log.topic, Some(log_key.as_bytes()), entry, &Headers::new())
            .await
            .map_err(|e| LogError::Unwritable {
                topic: log.topic.clone(),
                reason: e.to_string(),
            })
    }

    /// The answer settled at `offset`.
    async fn read(&self, log: &Log, offset: i64) -> Result<Stored, LogError> {
        let unreadable = |reason: String| LogError::Unreadable {
            topic: log.topic.clone(),
            reason,
        };
        let records = read_ranges(
            &self.settings,
            &log.topic,
            BTreeMap::from([(0, (offset, offset + 1))]),
            REACH_TIMEOUT,
        )
        .await
        .map_err(|e| unreadable(e.to_string()))?;
        let record = records
            .into_iter()
            .find(|r| r.offset == offset)
            .ok_or_else(|| unreadable(format!("the answer at offset {offset} is gone")))?;
        match record.json::<Entry>() {
            Ok(Entry::Settled { answer, .. }) => Ok(answer),
            Ok(Entry::Claimed { .. }) => Err(unreadable(format!(
                "offset {offset} holds a claim, not an answer"
            ))),
            Err(e) => Err(unreadable(format!("the answer at offset {offset}: {e}"))),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(fp: &str, at: i64) -> Entry {
        Entry::Claimed {
            fingerprint: fp.to_owned(),
            at,
            lease_until: at + 50,
            expires: at + 1000,
        }
    }

    fn settled(fp: &str, claim: i64, at: i64, events: Vec<Option<serde_json::Value>>) -> Entry {
        Entry::Settled {
            fingerprint: fp.to_owned(),
            claim,
            at,
            expires: at + 1000,
            answer: Stored {
                single: events.len() == 1,
                events,
            },
        }
    }

    fn claim_of(t: &Table, key: &str, now: i64) -> Option<i64> {
        match t.get(key, now) {
            Some(State::Claimed { claim, .. }) => Some(*claim),
            _ => None,
        }
    }

    #[test]
    fn the_first_claim_in_the_log_wins_and_a_later_one_loses_while_it_holds() {
        let mut t = Table::default();
        t.apply("d/k".into(), 5, claimed("f", 100));
        t.apply("d/k".into(), 6, claimed("f", 101));
        assert_eq!(claim_of(&t, "d/k", 102), Some(5));
    }

    #[test]
    fn only_the_holder_settles_and_a_complete_answer_is_final() {
        let mut t = Table::default();
        t.apply("d/k".into(), 5, claimed("f", 100));
        t.apply("d/k".into(), 6, settled("f", 4, 101, vec![Some(1.into())]));
        assert_eq!(claim_of(&t, "d/k", 102), Some(5), "a stranger's settle");
        t.apply("d/k".into(), 7, settled("f", 5, 102, vec![Some(1.into())]));
        t.apply("d/k".into(), 8, claimed("f", 500));
        assert!(matches!(
            t.get("d/k", 501),
            Some(State::Settled {
                offset: 7,
                complete: true,
                ..
            })
        ));
    }

    #[test]
    fn an_answer_with_unwritten_events_is_claimed_again_with_it_as_prior() {
        let mut t = Table::default();
        t.apply("d/k".into(), 5, claimed("f", 100));
        t.apply(
            "d/k".into(),
            6,
            settled("f", 5, 101, vec![Some(1.into()), None]),
        );
        t.apply("d/k".into(), 7, claimed("f", 200));
        assert!(matches!(
            t.get("d/k", 201),
            Some(State::Claimed {
                claim: 7,
                prior: Some(6),
                ..
            })
        ));
    }

    #[test]
    fn a_lease_that_ran_out_is_taken_over_and_its_late_settle_ignored() {
        let mut t = Table::default();
        t.apply("d/k".into(), 5, claimed("f", 100));
        t.apply("d/k".into(), 6, claimed("f", 151));
        assert_eq!(claim_of(&t, "d/k", 152), Some(6));
        t.apply("d/k".into(), 7, settled("f", 5, 160, vec![Some(1.into())]));
        assert_eq!(claim_of(&t, "d/k", 161), Some(6));
    }

    #[test]
    fn another_body_under_the_key_never_claims_it_until_it_expires() {
        let mut t = Table::default();
        t.apply("d/k".into(), 5, claimed("f", 100));
        t.apply("d/k".into(), 6, claimed("g", 200));
        assert_eq!(claim_of(&t, "d/k", 201), Some(5));
        t.apply("d/k".into(), 7, claimed("g", 1100));
        assert_eq!(claim_of(&t, "d/k", 1101), Some(7));
        assert_eq!(t.get("d/k", 2100), None, "expired");
    }

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(check_key(b"3f1c-retry_1").is_ok());
        assert!(check_key(b"").is_err());
        assert!(check_key(b"has space").is_err());
        assert!(check_key(&[b'a'; 256]).is_err());
        assert!(check_key("é".as_bytes()).is_err());
    }

    #[test]
    fn ingestion_ids_are_stable_per_request_and_differ_across_bodies_and_positions() {
        let t = TenantId::new("t").unwrap();
        let d = DatasetId::new("d").unwrap();
        let a = ingestion_id(&t, &d, "k", "f", 0);
        assert_eq!(a, ingestion_id(&t, &d, "k", "f", 0));
        assert_ne!(a, ingestion_id(&t, &d, "k", "f", 1));
        assert_ne!(a, ingestion_id(&t, &d, "k", "g", 0));
    }
}
