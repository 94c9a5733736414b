//! `lab semantics`: the same workload under at-most-once (commit, then process), at-least-once
//! (process, then commit) and effectively-once (at-least-once into a sink that drops ids it
//! already holds). A worker process consumes the input in batches and appends each record's id
//! to a sink file; it is killed (SIGKILL, no clean-up) at a chosen point of a chosen batch, then
//! a fresh worker finishes the input from the group's committed offsets. The sink is then
//! compared with what was produced: lost and duplicated ids, counted from the actual run.
//!
//! Exactly-once with Kafka transactions consumes, produces each id to an output topic and
//! commits the offsets in one transaction per batch; the output is read `read_committed`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use streamlake_kafka::{Headers, KafkaSettings, Producer};

use crate::{Lab, LabError};

/// Delivery semantics of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Commit the batch's offsets, then process it.
    AtMostOnce,
    /// Process the batch, then commit.
    AtLeastOnce,
    /// At-least-once into a sink that skips ids it already holds.
    EffectivelyOnce,
    /// Consume, produce to an output topic and commit the offsets in one Kafka transaction;
    /// the output is read with `read_committed`.
    ExactlyOnceTransactions,
}

impl Mode {
    /// The mode's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AtMostOnce => "at-most-once",
            Mode::AtLeastOnce => "at-least-once",
            Mode::EffectivelyOnce => "effectively-once",
            Mode::ExactlyOnceTransactions => "exactly-once-transactions",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Mode::AtMostOnce,
            Mode::AtLeastOnce,
            Mode::EffectivelyOnce,
            Mode::ExactlyOnceTransactions,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Where the worker is killed, within the crash batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// The batch was polled; nothing else happened.
    AfterPoll,
    /// Half of the batch was written to the sink.
    DuringProduce,
    /// The whole batch was written to the sink.
    AfterProcessing,
    /// Just before the batch's offsets are committed.
    BeforeCommit,
}

impl CrashPoint {
    /// The point's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::AfterPoll => "after-poll",
            CrashPoint::DuringProduce => "during-produce",
            CrashPoint::AfterProcessing => "after-processing",
            CrashPoint::BeforeCommit => "before-commit",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            CrashPoint::AfterPoll,
            CrashPoint::DuringProduce,
            CrashPoint::AfterProcessing,
            CrashPoint::BeforeCommit,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// What one worker process does.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// Input topic.
    pub topic: String,
    /// Group whose committed offsets it starts from and commits to.
    pub group: String,
    /// Semantics.
    pub mode: Mode,
    /// Sink file: one id per line (transactional mode: the output topic's name).
    pub sink: PathBuf,
    /// Records per batch.
    pub batch: usize,
    /// Kill itself at this point of batch `crash_batch` (1-based); `None`: run to the end.
    pub crash: Option<(CrashPoint, u64)>,
}

fn kill_self() -> ! {
    let _ = std::io::stdout().flush();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught; this is never reached.
    std::process::abort()
}

/// A worker's input: where each partition ended when the worker started, how far the worker
/// got, and its batches.
struct Input {
    topic: String,
    ends: BTreeMap<i32, i64>,
    next: BTreeMap<i32, i64>,
    batches: u64,
    idle_polls: u32,
}

impl Input {
    fn open(consumer: &BaseConsumer, topic: &str) -> Result<Self, LabError> {
        let timeout = Duration::from_secs(10);
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let mut ends = BTreeMap::new();
        for t in md.topics() {
            for p in t.partitions() {
                let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                ends.insert(p.id(), high);
            }
        }
        Ok(Self {
            topic: topic.to_owned(),
            ends,
            next: BTreeMap::new(),
            batches: 0,
            idle_polls: 0,
        })
    }

    /// Every partition read to where it ended.
    fn read_to_end(&self) -> bool {
        self.ends
            .iter()
            .all(|(p, high)| *high == 0 || self.next.get(p).is_some_and(|n| n >= high))
    }

    /// Up to `size` records as (partition, offset, ingestion_id); empty when nothing came
    /// within half a second, an error when nothing came for 30 s.
    fn next_batch(
        &mut self,
        consumer: &BaseConsumer,
        size: usize,
    ) -> Result<Vec<(i32, i64, String)>, LabError> {
        let mut batch = Vec::new();
        while batch.len() < size {
            let wait = Duration::from_millis(if batch.is_empty() { 500 } else { 50 });
            match consumer.poll(wait) {
                Some(Ok(m)) => batch.push((m.partition(), m.offset(), ingestion_id(&m))),
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        if batch.is_empty() {
            self.idle_polls += 1;
            if self.idle_polls > 60 {
                return Err(LabError::Other(
                    "the worker read nothing for 30 s before reaching the end of its input".into(),
                ));
            }
        } else {
            self.idle_polls = 0;
            self.batches += 1;
            for (p, o, _) in &batch {
                self.next.insert(*p, o + 1);
            }
        }
        Ok(batch)
    }

    /// The offsets to commit after the batches read so far.
    fn offsets(&self) -> Result<TopicPartitionList, LabError> {
        let mut tpl = TopicPartitionList::new();
        for (p, n) in &self.next {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*n))?;
        }
        Ok(tpl)
    }

    /// Whether `args` asks to be killed at `point` of the current batch.
    fn crash_at(&self, args: &WorkerArgs, point: CrashPoint) -> bool {
        args.crash
            .is_some_and(|(at, n)| at == point && n == self.batches)
    }
}

/// The worker: consumes `topic` from the group's committed offsets (partitions assigned
/// directly, so a restarted worker resumes at once instead of waiting for the killed one's
/// session to expire), appends ids to the sink, commits per the mode, and exits when it reached
/// the high watermarks it saw at start. Blocking; meant to run as its own process.
pub fn worker(settings: &KafkaSettings, args: &WorkerArgs) -> Result<u64, LabError> {
    if args.mode == Mode::ExactlyOnceTransactions {
        return transactional_worker(settings, args);
    }
    let mut cfg = settings.consumer_config();
    cfg.set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = cfg.create()?;
    let mut input = Input::open(&consumer, &args.topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in input.ends.keys() {
        tpl.add_partition_offset(&args.topic, *p, Offset::Stored)?;
    }
    consumer.assign(&tpl)?;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    if args.mode == Mode::EffectivelyOnce {
        if let Ok(text) = std::fs::read_to_string(&args.sink) {
            seen.extend(text.lines().map(str::to_owned));
        }
    }
    let sink_error =
        |e: std::io::Error| LabError::Other(format!("sink {}: {e}", args.sink.display()));
    let mut sink = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.sink)
        .map_err(sink_error)?;
    let mut written = 0u64;
    while !input.read_to_end() {
        let batch = input.next_batch(&consumer, args.batch)?;
        if batch.is_empty() {
            continue;
        }
        if input.crash_at(args, CrashPoint::AfterPoll) {
            kill_self();
        }
        let offsets = input.offsets()?;
        let commit = || -> Result<(), LabError> {
            if input.crash_at(args, CrashPoint::BeforeCommit) {
                kill_self();
            }
            consumer.commit(&offsets, CommitMode::Sync)?;
            Ok(())
        };
        if args.mode == Mode::AtMostOnce {
            commit()?;
        }
        let half = batch.len() / 2;
        for (i, (_, _, id)) in batch.iter().enumerate() {
            if i == half && input.crash_at(args, CrashPoint::DuringProduce) {
                kill_self();
            }
            if args.mode == Mode::EffectivelyOnce && !seen.insert(id.clone()) {
                continue;
            }
            writeln!(sink, "{id}").map_err(sink_error)?;
            written += 1;
        }
        sink.flush().map_err(sink_error)?;
        if input.crash_at(args, CrashPoint::AfterProcessing) {
            kill_self();
        }
        if args.mode != Mode::AtMostOnce {
            commit()?;
        }
    }
    Ok(written)
}

/// Reads a record's `ingestion_id` header.
fn ingestion_id(m: &rdkafka::message::BorrowedMessage<'_>) -> String {
    use rdkafka::message::Headers as _;
    m.headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key == streamlake_core::headers::INGESTION_ID)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_default()
}

/// The transactional worker: per batch, one transaction that produces each id to the output
/// topic (`args.sink`) and commits the batch's offsets with it. A killed worker's open
/// transaction is aborted when the next worker with the same `transactional.id` starts.
fn transactional_worker(settings: &KafkaSettings, args: &WorkerArgs) -> Result<u64, LabError> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let output = args.sink.display().to_string();
    let timeout = Duration::from_secs(10);
    let mut pcfg = settings.producer_config();
    pcfg.set("transactional.id", format!("{}-txn", args.group))
        .set("message.timeout.ms", "10000")
        .set("transaction.timeout.ms", "10000");
    let producer: BaseProducer = pcfg.create()?;
    producer.init_transactions(timeout)?;
    let mut cfg = settings.consumer_config();
    cfg.set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    let consumer: BaseConsumer = cfg.create()?;
    let mut input = Input::open(&consumer, &args.topic)?;
    // A group member, so the transaction commits the offsets with the group's generation.
    consumer.subscribe(&[&args.topic])?;
    let ends = input.ends.clone();
    let committed_to_end = |consumer: &BaseConsumer| -> bool {
        let mut tpl = TopicPartitionList::new();
        for p in ends.keys() {
            tpl.add_partition(&args.topic, *p);
        }
        consumer.committed_offsets(tpl, timeout).is_ok_and(|c| {
            c.elements().iter().all(|e| {
                let high = ends.get(&e.partition()).copied().unwrap_or(0);
                match e.offset() {
                    Offset::Offset(o) => o >= high,
                    _ => high == 0,
                }
            })
        })
    };
    let mut written = 0u64;
    while !input.read_to_end() {
        let batch = input.next_batch(&consumer, args.batch)?;
        if batch.is_empty() {
            // A restarted worker may find everything committed already.
            if input.idle_polls % 4 == 0 && committed_to_end(&consumer) {
                break;
            }
            continue;
        }
        if input.crash_at(args, CrashPoint::AfterPoll) {
            kill_self();
        }
        producer.begin_transaction()?;
        let half = batch.len() / 2;
        for (i, (_, _, id)) in batch.iter().enumerate() {
            if i == half && input.crash_at(args, CrashPoint::DuringProduce) {
                // What was sent so far reaches the broker inside the open transaction.
                let _ = producer.flush(timeout);
                kill_self();
            }
            producer
                .send(
                    BaseRecord::to(&output)
                        .key(id.as_str())
                        .payload(id.as_str()),
                )
                .map_err(|(e, _)| LabError::Kafka(e))?;
            written += 1;
        }
        let _ = producer.flush(timeout);
        if input.crash_at(args, CrashPoint::AfterProcessing) {
            kill_self();
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| LabError::Other("the consumer has no group metadata".to_owned()))?;
        producer.send_offsets_to_transaction(&input.offsets()?, &group, timeout)?;
        if input.crash_at(args, CrashPoint::BeforeCommit) {
            kill_self();
        }
        producer.commit_transaction(timeout)?;
    }
    Ok(written)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SemanticsOptions {
    /// Records produced per mode.
    pub records: usize,
    /// Records per batch.
    pub batch: usize,
    /// Where the worker is killed.
    pub crash_at: CrashPoint,
    /// In which batch (1-based).
    pub crash_batch: u64,
    /// Modes to run.
    pub modes: Vec<Mode>,
    /// Program and arguments that start `streamlake` against the lab's cluster (the lab adds
    /// `lab worker ...`).
    pub worker_command: Vec<String>,
}

impl SemanticsOptions {
    /// Defaults, with the given worker command.
    pub fn new(worker_command: Vec<String>) -> Self {
        Self {
            records: 200,
            batch: 10,
            crash_at: CrashPoint::DuringProduce,
            crash_batch: 5,
            modes: vec![
                Mode::AtMostOnce,
                Mode::AtLeastOnce,
                Mode::EffectivelyOnce,
                Mode::ExactlyOnceTransactions,
            ],
            worker_command,
        }
    }
}

/// One mode's run.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// Semantics.
    pub mode: Mode,
    /// Input topic.
    pub topic: String,
    /// Records produced.
    pub produced: usize,
    /// Whether the first worker was killed as planned (false: it finished before the crash
    /// point, e.g. fewer batches than `crash_batch`).
    pub crashed: bool,
    /// Distinct ids in the sink.
    pub processed: usize,
    /// Lines in the sink.
    pub sink_rows: usize,
    /// Produced ids missing from the sink.
    pub lost: Vec<String>,
    /// Ids in the sink more than once.
    pub duplicated: Vec<String>,
}

/// The lab's result.
#[derive(Debug, Clone, Serialize)]
pub struct SemanticsReport {
    /// Where the worker was killed.
    pub crash_at: CrashPoint,
    /// In which batch.
    pub crash_batch: u64,
    /// Records per batch.
    pub batch: usize,
    /// One entry per mode.
    pub modes: Vec<ModeReport>,
    /// Exactly-once with Kafka transactions: whether it ran, and why not.
    pub transactions: String,
    /// What was done with the topics.
    pub clean_up: String,
}

async fn run_worker(
    opts: &SemanticsOptions,
    args: &WorkerArgs,
) -> Result<std::process::ExitStatus, LabError> {
    let (program, rest) = opts
        .worker_command
        .split_first()
        .ok_or_else(|| LabError::Other("no worker command".to_owned()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest).args([
        "lab",
        "worker",
        "--topic",
        &args.topic,
        "--group",
        &args.group,
        "--mode",
        args.mode.as_str(),
        "--sink",
        &args.sink.display().to_string(),
        "--batch",
        &args.batch.to_string(),
    ]);
    if let Some((at, n)) = args.crash {
        cmd.args(["--crash-at", at.as_str(), "--crash-batch", &n.to_string()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::Other(format!("cannot start the worker {program}: {e}")))?;
    match tokio::time::timeout(Duration::from_secs(90), child.wait()).await {
        Ok(status) => status.map_err(|e| LabError::Other(format!("worker: {e}"))),
        Err(_) => Err(LabError::Other(
            "the worker did not finish within 90 s".to_owned(),
        )),
    }
}

fn was_killed(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32)
}

async fn run_mode(
    lab: &mut Lab,
    opts: &SemanticsOptions,
    mode: Mode,
    dir: &Path,
) -> Result<ModeReport, LabError> {
    let transactional = mode == Mode::ExactlyOnceTransactions;
    let input = lab.topic(mode.as_str(), 3).await?;
    let output = format!("{input}-out");
    if transactional {
        lab.topic(&format!("{}-out", mode.as_str()), 3).await?;
    }
    let settings = lab.settings.clone();
    let producer = Producer::new(&settings)?.with_deadline(Duration::from_secs(30));
    let ids: Vec<String> = (0..opts.records).map(|i| format!("rec-{i:05}")).collect();
    let sends = ids.iter().map(|id| {
        let (producer, topic) = (&producer, &input);
        async move {
            let headers = Headers::new().with(streamlake_core::headers::INGESTION_ID, id);
            let payload = format!(r#"{{"id":"{id}"}}"#);
            producer
                .send(topic, Some(id.as_bytes()), payload.as_bytes(), &headers)
                .await
        }
    });
    futures::future::try_join_all(sends).await?;

    let mut args = WorkerArgs {
        topic: input.clone(),
        group: lab.group(mode.as_str()),
        mode,
        sink: if transactional {
            PathBuf::from(&output)
        } else {
            dir.join(format!("{}.sink", mode.as_str()))
        },
        batch: opts.batch,
        crash: Some((opts.crash_at, opts.crash_batch)),
    };
    let first = run_worker(opts, &args).await?;
    let crashed = was_killed(&first);
    if !crashed && !first.success() {
        return Err(LabError::Other(format!("the worker failed: {first}")));
    }
    args.crash = None;
    let second = run_worker(opts, &args).await?;
    if !second.success() {
        return Err(LabError::Other(format!(
            "the restarted worker failed: {second}"
        )));
    }
    let sink: Vec<String> = if transactional {
        // read_committed (librdkafka's default): records of aborted transactions are skipped.
        let info = streamlake_kafka::Admin::new(&settings)?
            .describe_topic(&output)
            .await?;
        let ranges = info.ranges();
        streamlake_kafka::read_ranges(&settings, &output, ranges, Duration::from_secs(3))
            .await?
            .iter()
            .filter_map(|r| {
                r.payload
                    .as_deref()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
            })
            .collect()
    } else {
        std::fs::read_to_string(&args.sink)
            .map_err(|e| LabError::Other(format!("sink {}: {e}", args.sink.display())))?
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &sink {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    Ok(ModeReport {
        mode,
        topic: input,
        produced: ids.len(),
        crashed,
        processed: counts.len(),
        sink_rows: sink.len(),
        lost: ids
            .iter()
            .filter(|id| !counts.contains_key(id.as_str()))
            .cloned()
            .collect(),
        duplicated: counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| (*id).to_owned())
            .collect(),
    })
}

/// Runs the lab.
pub async fn run(lab: &mut Lab, opts: &SemanticsOptions) -> Result<SemanticsReport, LabError> {
    if opts.records == 0 || opts.batch < 2 || opts.crash_batch == 0 {
        return Err(LabError::Other(
            "give at least one record, batches of at least 2 and a crash batch from 1".to_owned(),
        ));
    }
    let dir = std::env::temp_dir().join(&lab.prefix);
    std::fs::create_dir_all(&dir)
        .map_err(|e| LabError::Other(format!("{}: {e}", dir.display())))?;
    let mut modes = Vec::new();
    for mode in &opts.modes {
        modes.push(run_mode(lab, opts, *mode, &dir).await?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let transactions = if opts.modes.contains(&Mode::ExactlyOnceTransactions) {
        "ran (exactly-once-transactions above)".to_owned()
    } else {
        "not run (not among the selected modes)".to_owned()
    };
    Ok(SemanticsReport {
        crash_at: opts.crash_at,
        crash_batch: opts.crash_batch,
        batch: opts.batch,
        modes,
        transactions,
        clean_up: lab.clean_up().await,
    })
}
