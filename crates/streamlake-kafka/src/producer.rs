//! Acknowledged produce. Every send resolves to the broker's acknowledgement or to an
//! error the caller must handle: a full local queue is [`ProduceError::QueueFull`], never a
//! silent wait or drop. Dropping a librdkafka producer purges its queue, so owners call
//! [`Producer::flush`] before letting go of it.
//!
//! An idempotent librdkafka producer that raised a fatal error (e.g. the broker reported a
//! sequence gap) refuses every later send; librdkafka's remedy is a new instance. The producer
//! then replaces its librdkafka instance, once per instance, so later sends succeed again; the
//! sends that failed were reported to their callers.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt as _};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer as _};
use serde::Serialize;

use crate::polling::RawProducer;
use crate::record::Headers;
use crate::reports::{Report, Reports, Ticket};
use crate::settings::KafkaSettings;

/// Where the broker stored a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryReceipt {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// One record for [`Producer::send_all`].
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The partition key.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub payload: &'a [u8],
    /// The headers, in librdkafka's form.
    pub headers: Option<OwnedHeaders>,
}

/// What became of one record of [`Producer::send_all`].
#[derive(Debug)]
pub struct Sent {
    /// The acknowledgement, or why there is none.
    pub result: Result<DeliveryReceipt, ProduceError>,
    /// From the start of the batch to this record's acknowledgement (or failure).
    pub latency: Duration,
}

/// The records of a [`Producer::send_all_late`] batch that were still unacknowledged at the
/// deadline (none when every record was answered in time).
#[derive(Debug)]
pub struct Late {
    topic: String,
    reports: Arc<Reports>,
    /// The batch indices of the records unacknowledged at the deadline.
    pending: Vec<usize>,
}

impl Late {
    /// Whether no record is left to settle.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Waits for the delivery report of every record left, each with its index in the batch:
    /// acknowledged after all, or failed for good (a record librdkafka gave up on at
    /// `message.timeout.ms` stays [`ProduceError::TimedOut`]: written or not, nobody knows).
    pub async fn settle(self) -> Vec<(usize, Result<DeliveryReceipt, ProduceError>)> {
        self.reports.all_in().await;
        self.pending
            .into_iter()
            .map(|index| (index, reported(&self.reports, index, &self.topic)))
            .collect()
    }
}

/// A delivery report as an acknowledgement or an error.
fn delivery(topic: &str, report: &Report) -> Result<DeliveryReceipt, ProduceError> {
    match report {
        Report::Stored { partition, offset } => Ok(DeliveryReceipt {
            topic: topic.to_owned(),
            partition: *partition,
            offset: *offset,
        }),
        Report::Refused(e, queued) => Err(ProduceError::from_kafka(e.clone(), *queued)),
        // A record is refused for a full queue when it is sent, never in its report.
        Report::Failed(e) => Err(ProduceError::from_kafka(e.clone(), 0)),
        Report::Closed => Err(ProduceError::Closed),
    }
}

/// Record `index`'s report once every report of its batch is in.
fn reported(reports: &Reports, index: usize, topic: &str) -> Result<DeliveryReceipt, ProduceError> {
    reports
        .get(index)
        .map_or(Err(ProduceError::Closed), |slot| {
            delivery(topic, &slot.report)
        })
}

/// A record in librdkafka's form, its delivery report going to `ticket`.
fn base_record<'a>(
    topic: &'a str,
    record: Outgoing<'a>,
    ticket: Box<Ticket>,
) -> BaseRecord<'a, [u8], [u8], Box<Ticket>> {
    let mut r = BaseRecord::with_opaque_to(topic, ticket).payload(record.payload);
    if let Some(key) = record.key {
        r = r.key(key);
    }
    if let Some(headers) = record.headers {
        r = r.headers(headers);
    }
    r
}

/// Records queued by [`Producer::queue`] whose delivery reports are still to come: the owner
/// goes on working and collects the reports later, all at once ([`Deliveries::all_delivered`])
/// or those already in ([`Deliveries::collect_ready`]).
#[derive(Default)]
pub struct Deliveries {
    waiting: FuturesUnordered<Pending>,
}

/// One queued record's delivery report, to come.
type Pending = futures::future::BoxFuture<'static, Result<DeliveryReceipt, ProduceError>>;

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl Deliveries {
    /// Records whose report has not been collected yet.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether every report has been collected.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Collects the reports that are in, without waiting: the first failure among them, if
    /// any.
    pub fn collect_ready(&mut self) -> Result<(), ProduceError> {
        use futures::FutureExt as _;
        let mut first = Ok(());
        while let Some(Some(report)) = self.waiting.next().now_or_never() {
            if let (Err(e), Ok(())) = (report, &first) {
                first = Err(e);
            }
        }
        first
    }

    /// Waits until at most `left` reports are outstanding: the first failure among those
    /// collected, if any.
    pub async fn wait_until(&mut self, left: usize) -> Result<(), ProduceError> {
        let mut first = Ok(());
        while self.waiting.len() > left {
            match self.waiting.next().await {
                Some(Err(e)) if first.is_ok() => first = Err(e),
                Some(_) => {}
                None => break,
            }
        }
        first
    }

    /// Waits for every report: the first failure, if any (the others are awaited all the
    /// same, so nothing is left in flight unobserved).
    pub async fn all_delivered(&mut self) -> Result<(), ProduceError> {
        self.wait_until(0).await
    }
}

/// Why a record was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The local queue (`queue.buffering.max.messages`) is full: back off and retry.
    #[error("the producer queue is full ({queued} records waiting); retry later")]
    QueueFull {
        /// Records queued or in flight when it was refused.
        queued: i32,
    },
    /// No acknowledgement within `message.timeout.ms`. The record may still have been written.
    #[error(
        "no acknowledgement from the broker in time; the record may or may not have been written"
    )]
    TimedOut,
    /// The value could not be encoded as JSON.
    #[error("cannot encode the value as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The broker or client refused the record.
    #[error("produce failed: {0}")]
    Kafka(KafkaError),
    /// The producer was shut down before the record was acknowledged.
    #[error("the producer was closed before the record was acknowledged")]
    Closed,
}

impl ProduceError {
    /// Whether the record may have been persisted despite the error (reliability rule 4 in docs/ARCHITECTURE.md).
    pub fn possibly_persisted(&self) -> bool {
        matches!(self, ProduceError::TimedOut | ProduceError::Closed)
    }

    fn from_kafka(e: KafkaError, queued: i32) -> Self {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull { queued },
            Some(RDKafkaErrorCode::MessageTimedOut) => ProduceError::TimedOut,
            _ => ProduceError::Kafka(e),
        }
    }
}

/// A producer with StreamLake's defaults (acks=all, idempotence, lz4, linger 5 ms). Cheap to
/// clone; clones share one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    current: Arc<RwLock<Instance>>,
    config: Arc<rdkafka::ClientConfig>,
    deadline: Option<Duration>,
    /// Records the local queue holds at most (`queue.buffering.max.messages`).
    capacity: i32,
}

/// librdkafka's `queue.buffering.max.messages` when the configuration does not set it.
const DEFAULT_QUEUE_CAPACITY: i32 = 100_000;

/// One librdkafka producer and its generation (bumped on each replacement).
#[derive(Clone)]
struct Instance {
    producer: Arc<RawProducer>,
    generation: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Producer {
    /// Creates a producer; fails when a property is unknown or invalid.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Self::from_config(settings.producer_config())
    }

    /// Creates a producer from a complete librdkafka config (see
    /// [`KafkaSettings::producer_config_over`]).
    pub fn from_config(config: rdkafka::ClientConfig) -> Result<Self, KafkaError> {
        let producer = RawProducer::create(&config)?;
        let capacity = config
            .get("queue.buffering.max.messages")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_QUEUE_CAPACITY);
        Ok(Self {
            current: Arc::new(RwLock::new(Instance {
                producer,
                generation: 0,
            })),
            config: Arc::new(config),
            deadline: None,
            capacity,
        })
    }

    /// Stops waiting for an acknowledgement after `deadline` and reports
    /// [`ProduceError::TimedOut`]; the record stays queued and may still be written.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn instance(&self) -> Instance {
        match self.current.read() {
            Ok(i) => i.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces instance `generation` after an unrecoverable error; later callers that saw the
    /// same failure find it replaced already.
    fn replace(&self, generation: u64, why: &str) {
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if current.generation != generation {
            return;
        }
        match RawProducer::create(&self.config) {
            Ok(producer) => {
                tracing::warn!(
                    generation = generation + 1,
                    reason = why,
                    "producer replaced after an unrecoverable error"
                );
                let old = std::mem::replace(
                    &mut *current,
                    Instance {
                        producer,
                        generation: generation + 1,
                    },
                );
                // Let the old instance deliver or fail what it still holds, off this thread.
                std::thread::spawn(move || {
                    let _ = old.producer.flush(Duration::from_secs(5));
                });
            }
            Err(e) => tracing::error!(error = %e, "cannot replace the producer"),
        }
    }

    /// Why the instance can no longer produce, if it raised a fatal error.
    fn unrecoverable(instance: &Instance) -> Option<String> {
        instance
            .producer
            .client()
            .fatal_error()
            .map(|(code, msg)| format!("fatal error {code}: {msg}"))
    }

    /// Sends raw bytes and waits for the acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &Headers,
    ) -> Result<DeliveryReceipt, ProduceError> {
        let owned = (!headers.0.is_empty()).then(|| headers.to_owned_headers());
        self.send_owned(topic, key, payload, owned).await
    }

    /// [`Producer::send`] with headers already in librdkafka's form, for hot paths that build
    /// them directly instead of through [`Headers`].
    pub async fn send_owned(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<DeliveryReceipt, ProduceError> {
        let record = Outgoing {
            key,
            payload,
            headers,
        };
        match self.send_all(topic, [record]).await.pop() {
            Some(sent) => sent.result,
            None => Err(ProduceError::Closed),
        }
    }

    /// A transactional producer (`transactional.id` set on `config`, a producer configuration
    /// such as [`KafkaSettings::producer_config_over`] makes), its transactions initialised: a
    /// previous incarnation's open transaction is aborted, and that incarnation fenced.
    /// `transaction_timeout` bounds how long a transaction of a process that died may stay open
    /// (and hold back readers of its topics).
    pub async fn transactional(
        mut config: rdkafka::ClientConfig,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let timeout_ms = transaction_timeout.as_millis().to_string();
        // A record may not outlive the transaction it belongs to (librdkafka refuses the
        // configuration otherwise).
        let message_timeout_ms = config
            .get("message.timeout.ms")
            .and_then(|v| v.parse::<u128>().ok())
            .map_or(transaction_timeout.as_millis(), |ms| {
                ms.min(transaction_timeout.as_millis())
            });
        config
            .set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", &timeout_ms)
            .set("message.timeout.ms", message_timeout_ms.to_string());
        let producer = Self::from_config(config)?;
        let instance = producer.instance();
        tokio::task::spawn_blocking(move || {
            instance.producer.init_transactions(Duration::from_secs(30))
        })
        .await
        .map_err(|_| KafkaError::Canceled)??;
        Ok(producer)
    }

    fn is_transactional(&self) -> bool {
        self.config.get("transactional.id").is_some()
    }

    /// Starts a transaction: what is sent until [`Producer::commit_transaction`] becomes
    /// visible to `read_committed` readers all at once, or not at all.
    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.instance().producer.begin_transaction()
    }

    /// Commits the transaction with the consumer offsets `offsets` of the group `group`
    /// (read-process-write: the input is consumed exactly when the output is written). On
    /// failure the transaction is aborted when it can be, and the error returned.
    pub async fn commit_transaction(
        &self,
        offsets: rdkafka::TopicPartitionList,
        group: rdkafka::consumer::ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        let instance = self.instance();
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(10);
            let p = &instance.producer;
            let done = p
                .send_offsets_to_transaction(&offsets, &group, timeout)
                .and_then(|()| p.commit_transaction(timeout));
            if let Err(KafkaError::Transaction(e)) = &done {
                if e.txn_requires_abort() {
                    let _ = p.abort_transaction(timeout);
                }
            }
            done
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// Aborts the open transaction: nothing sent in it becomes visible.
    pub async fn abort_transaction(&self) -> Result<(), KafkaError> {
        let instance = self.instance();
        tokio::task::spawn_blocking(move || {
            instance.producer.abort_transaction(Duration::from_secs(10))
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// How this producer places keyed records (its `partitioner` property), when that is a
    /// function of the key.
    pub fn partitioner(&self) -> Option<crate::Partitioner> {
        crate::Partitioner::from_property(&self.partitioner_name())
    }

    /// The `partitioner` property, as configured or defaulted.
    pub fn partitioner_name(&self) -> String {
        self.config
            .get("partitioner")
            .unwrap_or(crate::DEFAULT_PARTITIONER)
            .to_owned()
    }

    /// Whether the local queue has room for `records` more now.
    pub fn has_room(&self, records: usize) -> bool {
        let free = i64::from(self.capacity) - i64::from(self.in_flight());
        free >= records as i64
    }

    /// Sends `records` to `topic` and waits for every acknowledgement; the results are in the
    /// records' order. All records are queued, in order, before the first wait, so records
    /// with the same key keep their order in the partition; the deadline
    /// ([`Producer::with_deadline`]) runs once for the whole batch.
    ///
    /// A batch the local queue has no room for as a whole is refused as a whole
    /// ([`ProduceError::QueueFull`] for every record) instead of queued in part: under overload
    /// a queue that refuses whole batches keeps serving some of them, where one filled with
    /// parts of many serves none in time. (Concurrent batches can still meet librdkafka's own
    /// limit part-way; those records are refused the same way.)
    pub async fn send_all<'a>(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> Vec<Sent> {
        self.send_all_late(topic, records).await.0
    }

    /// [`Producer::send_all`], and what became of the records still unacknowledged at the
    /// deadline: [`Late::settle`] waits for their delivery reports (librdkafka gives up on a
    /// record after `message.timeout.ms`), so a caller that answered "may have been written"
    /// can learn later whether it was.
    pub async fn send_all_late<'a>(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> (Vec<Sent>, Late) {
        let started = Instant::now();
        let instance = self.instance();
        let records: Vec<Outgoing<'a>> = records.into_iter().collect();
        let queued = instance.producer.in_flight_count();
        if records.len() as i64 > i64::from(self.capacity) - i64::from(queued)
            && records.len() as i64 <= i64::from(self.capacity)
        {
            let refused = records
                .iter()
                .map(|_| Sent {
                    result: Err(ProduceError::QueueFull { queued }),
                    latency: started.elapsed(),
                })
                .collect();
            let late = Late {
                topic: topic.to_owned(),
                reports: Reports::new(0),
                pending: Vec::new(),
            };
            return (refused, late);
        }
        let count = records.len();
        let reports = Reports::new(count);
        for (index, record) in records.into_iter().enumerate() {
            let r = base_record(topic, record, reports.ticket(index));
            if let Err((e, _record)) = instance.producer.send(r) {
                let queued = instance.producer.in_flight_count();
                reports.complete(index, Report::Refused(e, queued));
            }
        }
        match self.deadline {
            Some(d) => {
                let _ = tokio::time::timeout(d, reports.all_in()).await;
            }
            None => reports.all_in().await,
        }
        let ended = started.elapsed();
        let mut failed = false;
        let mut pending = Vec::new();
        let sent = (0..count)
            .map(|index| match reports.get(index) {
                Some(slot) => {
                    let result = delivery(topic, &slot.report);
                    // A report's failure, not a refusal at send, may mean the instance is done.
                    failed |= matches!(slot.report, Report::Failed(_))
                        && matches!(result, Err(ProduceError::Kafka(_)));
                    Sent {
                        result,
                        latency: slot.at.saturating_duration_since(started),
                    }
                }
                None => {
                    pending.push(index);
                    Sent {
                        result: Err(ProduceError::TimedOut),
                        latency: ended,
                    }
                }
            })
            .collect();
        // A transactional producer is not replaced: its owner aborts, and builds a new one.
        if failed && !self.is_transactional() {
            if let Some(why) = Self::unrecoverable(&instance) {
                self.replace(instance.generation, &why);
            }
        }
        let late = Late {
            topic: topic.to_owned(),
            reports,
            pending,
        };
        (sent, late)
    }

    /// Queues one record for `topic` and returns at once; its delivery report joins
    /// `deliveries`. For an owner whose records become durable together later (a transaction:
    /// its commit waits for them all), so it need not wait for each batch's acknowledgements
    /// before reading the next. Records queued in order keep their order in a partition. A full
    /// local queue refuses the record now ([`ProduceError::QueueFull`]).
    pub fn queue(
        &self,
        topic: &str,
        record: Outgoing<'_>,
        deliveries: &mut Deliveries,
    ) -> Result<(), ProduceError> {
        let instance = self.instance();
        let reports = Reports::new(1);
        match instance
            .producer
            .send(base_record(topic, record, reports.ticket(0)))
        {
            Ok(()) => {
                let topic = topic.to_owned();
                deliveries.waiting.push(Box::pin(async move {
                    reports.all_in().await;
                    reported(&reports, 0, &topic)
                }));
                Ok(())
            }
            Err((e, _record)) => Err(ProduceError::from_kafka(
                e,
                instance.producer.in_flight_count(),
            )),
        }
    }

    /// Encodes `value` as JSON and sends it.
    pub async fn send_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &T,
        headers: &Headers,
    ) -> Result<DeliveryReceipt, ProduceError> {
        let payload = serde_json::to_vec(value)?;
        self.send(topic, key, &payload, headers).await
    }

    /// Records queued or awaiting acknowledgement.
    pub fn in_flight(&self) -> i32 {
        self.instance().producer.in_flight_count()
    }

    /// Waits until every queued record is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.instance().producer.flush(timeout)
    }
}
