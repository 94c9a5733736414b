//! `lab crash`: `streamlake up` killed with SIGKILL again and again under HTTP load, each time
//! started again at once on the same data directory, then audited stage by stage by event id.
//!
//! The lab runs a one-node Kafka of its own and `up` (the same binary) in front of it with one
//! dataset, a processor, a Parquet lake sink and, when given a PostgreSQL URL, a PostgreSQL sink.
//! Clients send single events, one in ten invalid, and keep sending through every crash. After
//! the last round the load stops, the lab waits until every stage has caught up, stops `up`
//! gracefully and reads every stage back:
//!
//! - raw topic: every event answered 200 is there, once;
//! - dead-letter topic: every event answered 422 is there, once;
//! - clean topic: every event in the raw topic, once (the processor writes each batch and its
//!   offsets in one transaction);
//! - the lake and PostgreSQL: every event of the clean topic, once.
//!
//! Recovery after each kill: from the restart until the gateway acknowledges again, until the
//! processor writes again, and until the lake lands a file again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use streamlake_core::Health;
use streamlake_kafka::{read_ranges, Admin, KafkaSettings, Record};
use tokio_util::sync::CancellationToken;

use crate::LabError;

/// How the crash lab runs.
#[derive(Debug, Clone)]
pub struct CrashOptions {
    /// The `streamlake` binary to run as `up`.
    pub exe: PathBuf,
    /// Kills of `up`.
    pub rounds: u32,
    /// Concurrent HTTP clients, one event per request.
    pub clients: usize,
    /// Load before each kill (and after the last one).
    pub load: Duration,
    /// A PostgreSQL server for the PostgreSQL sink; without it only the lake is a sink.
    pub postgres_url: Option<String>,
    /// Longest wait for every stage to catch up after the load stopped.
    pub drain_timeout: Duration,
}

impl CrashOptions {
    /// Defaults for running `exe`.
    pub fn new(exe: PathBuf) -> Self {
        Self {
            exe,
            rounds: 3,
            clients: 4,
            load: Duration::from_secs(5),
            postgres_url: None,
            drain_timeout: Duration::from_secs(120),
        }
    }
}

/// What one kill cost.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// Round, from 1.
    pub round: u32,
    /// From the restart until the gateway answered 200 again, in milliseconds.
    pub gateway_ms: Option<u64>,
    /// From the restart until the processor wrote to the clean topic again.
    pub processor_ms: Option<u64>,
    /// From the restart until the lake landed a new file.
    pub lake_ms: Option<u64>,
    /// From the restart until `up` said it was up.
    pub startup_ms: u64,
}

/// One stage's audit.
#[derive(Debug, Clone, Serialize)]
pub struct StageAudit {
    /// raw, dlq, clean, lake, postgres.
    pub stage: String,
    /// What the stage promises (every stage here: `exactly once`).
    pub promise: &'static str,
    /// Events that must be there.
    pub expected: usize,
    /// Of those, found.
    pub found: usize,
    /// Expected and not found.
    pub lost: usize,
    /// Events found more than once (extra copies).
    pub duplicated: usize,
}

impl StageAudit {
    /// Whether the stage kept its promise.
    pub fn holds(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

const EXACTLY_ONCE: &str = "exactly once";

/// What the lab saw.
#[derive(Debug, Clone, Serialize)]
pub struct CrashReport {
    /// Each kill and the recovery after it.
    pub rounds: Vec<Recovery>,
    /// Requests sent.
    pub requests: u64,
    /// Answered 200 (written to the raw topic).
    pub accepted: u64,
    /// Answered 422 (dead-lettered).
    pub dead_lettered: u64,
    /// Answered 503 saying the event may have been written.
    pub maybe_written: u64,
    /// Answered 503 or 429 saying it was not written.
    pub not_written: u64,
    /// No answer: the connection failed (`up` was down), so nothing was acknowledged.
    pub unanswered: u64,
    /// Invalid events found in the raw topic: must be 0.
    pub invalid_in_raw: usize,
    /// Whether every stage caught up before the audit.
    pub drained: bool,
    /// Every stage's audit.
    pub stages: Vec<StageAudit>,
}

impl CrashReport {
    /// Whether every stage kept its promise.
    pub fn holds(&self) -> bool {
        self.drained && self.invalid_in_raw == 0 && self.stages.iter().all(StageAudit::holds)
    }
}

const SCHEMA: &str = r#"{"type": "object", "required": ["id", "key", "v"], "properties": {"v": {"type": "number"}}}"#;
const TENANT: &str = "lab";
const KEY: &str = "lab-key";

enum Answer {
    Accepted,
    DeadLettered,
    MaybeWritten,
    NotWritten,
    Unanswered,
}

struct Sent {
    id: String,
    valid: bool,
    /// When the answer came, from the start of the load.
    answered: Duration,
    answer: Answer,
}

/// Runs the lab in `dir` (its cluster, `up`'s data directory, logs; removed by the caller).
pub async fn run(opts: &CrashOptions, dir: &Path) -> Result<CrashReport, LabError> {
    let other = |e: &dyn std::fmt::Display| LabError::Other(e.to_string());
    let health = Health::new();
    let broker_cfg = streamlake_config::BrokerConfig {
        listen: streamlake_broker::layout::free_port_block(2)
            .ok_or_else(|| LabError::Other("no free ports on loopback".into()))?,
        nodes: 1,
        heap_mb: 384,
        ..Default::default()
    };
    let kafka = streamlake_broker::ManagedKafka::start(&broker_cfg, &dir.join("cluster"), health)
        .await
        .map_err(|e| other(&e))?;
    let result = drive(opts, &kafka.bootstrap_servers(), dir).await;
    kafka.stop().await;
    result
}

/// `up` as a child process, with its log in the lab's directory.
struct Up {
    child: Child,
    log: PathBuf,
}

impl Up {
    fn start(opts: &CrashOptions, dir: &Path, bootstrap: &str, n: u32) -> Result<Self, LabError> {
        let log = dir.join(format!("up-{n}.log"));
        let file = std::fs::File::create(&log)
            .map_err(|e| LabError::Other(format!("{}: {e}", log.display())))?;
        let child = Command::new(&opts.exe)
            .arg("--config")
            .arg(dir.join("crash.toml"))
            .args(["--bootstrap-servers", bootstrap, "up"])
            .env_remove("STREAMLAKE_CONFIG")
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| LabError::Other(format!("cannot start {}: {e}", opts.exe.display())))?;
        Ok(Self { child, log })
    }

    /// Waits until `up` says it is up.
    async fn ready(&mut self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains("StreamLake is up") {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let tail: Vec<&str> = text.lines().rev().take(10).collect();
                return Err(LabError::Other(format!(
                    "streamlake up did not start ({}); the end of {}:\n{}",
                    exited.map_or("timed out".to_owned(), |s| s.to_string()),
                    self.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> Result<(), LabError> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .map_err(|e| LabError::Other(format!("cannot signal streamlake up: {e}")))
    }

    /// SIGKILL, and the process reaped.
    fn kill(mut self) -> Result<(), LabError> {
        self.signal(nix::sys::signal::Signal::SIGKILL)?;
        let _ = self.child.wait();
        Ok(())
    }

    /// SIGTERM, and wait for the exit.
    async fn stop(mut self) -> Result<(), LabError> {
        self.signal(nix::sys::signal::Signal::SIGTERM)?;
        tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .map_err(|e| LabError::Other(e.to_string()))?
            .map_err(|e| LabError::Other(e.to_string()))?;
        Ok(())
    }
}

fn config(dir: &Path, http: &str, postgres: Option<(&str, &str)>) -> String {
    let mut toml = format!(
        r#"data_dir = "{data}"

[http]
listen = "{http}"

[topic_defaults]
partitions = 3

[tenants.{TENANT}]
dev_api_key = "{KEY}"

[tenants.{TENANT}.datasets.events]
schema = "schema.json"
key = "/key"
columns = [{{ name = "id", type = "string" }}, {{ name = "v", type = "float" }}]

[pipelines.crash]
datasets = ["{TENANT}/events"]
batch_max_size = 50

[sinks.lake]
datasets = ["{TENANT}/events"]
batch_max_size = 200

[sinks.lake.parquet]
path = "lake"
roll_rows = 500
roll_secs = 1
"#,
        data = dir.join("data").display(),
    );
    if let Some((url, schema)) = postgres {
        toml.push_str(&format!(
            r#"
[sinks.pg]
datasets = ["{TENANT}/events"]
batch_max_size = 200

[sinks.pg.postgres]
url = "{url}"
schema = "{schema}"
table = "{{tenant}}_{{dataset}}"
"#
        ));
    }
    toml
}

async fn drive(opts: &CrashOptions, bootstrap: &str, dir: &Path) -> Result<CrashReport, LabError> {
    let other = |e: &dyn std::fmt::Display| LabError::Other(e.to_string());
    let settings = KafkaSettings::new(bootstrap);
    let admin = Admin::new(&settings)?;
    let http = streamlake_broker::layout::free_port_block(1)
        .ok_or_else(|| LabError::Other("no free port on loopback".into()))?;
    let pg_schema = format!(
        "lab_crash_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    std::fs::write(dir.join("schema.json"), SCHEMA).map_err(|e| other(&e))?;
    std::fs::write(
        dir.join("crash.toml"),
        config(
            dir,
            &http.to_string(),
            opts.postgres_url
                .as_deref()
                .map(|u| (u, pg_schema.as_str())),
        ),
    )
    .map_err(|e| other(&e))?;
    let lake = dir.join("data/lake");

    let mut up = Up::start(opts, dir, bootstrap, 0)?;
    up.ready(Duration::from_secs(60)).await?;

    let url = format!("http://{http}/v1/tenants/{TENANT}/datasets/events/events");
    let start = Instant::now();
    let stop_load = CancellationToken::new();
    let mut clients = Vec::new();
    for c in 0..opts.clients {
        let (url, stop) = (url.clone(), stop_load.clone());
        clients.push(tokio::spawn(
            async move { load(c, &url, start, stop).await },
        ));
    }

    let mut rounds = Vec::new();
    for round in 1..=opts.rounds {
        tokio::time::sleep(opts.load).await;
        let clean_before = clean_records(&admin).await;
        let files_before = parquet_files(&lake).len();
        tracing::info!(round, "crash lab: SIGKILL of streamlake up");
        up.kill()?;
        let restarted = Instant::now();
        let restarted_at = start.elapsed();
        up = Up::start(opts, dir, bootstrap, round)?;
        up.ready(Duration::from_secs(60)).await?;
        let startup_ms = restarted.elapsed().as_millis() as u64;
        // The processor and the lake, moving again (polled; the gateway from the answers).
        let (mut processor_ms, mut lake_ms) = (None, None);
        let deadline = restarted + opts.load.max(Duration::from_secs(60));
        while (processor_ms.is_none() || lake_ms.is_none()) && Instant::now() < deadline {
            if processor_ms.is_none() && clean_records(&admin).await > clean_before {
                processor_ms = Some(restarted.elapsed().as_millis() as u64);
            }
            if lake_ms.is_none() && parquet_files(&lake).len() > files_before {
                lake_ms = Some(restarted.elapsed().as_millis() as u64);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rounds.push((
            restarted_at,
            Recovery {
                round,
                gateway_ms: None,
                processor_ms,
                lake_ms,
                startup_ms,
            },
        ));
    }
    tokio::time::sleep(opts.load).await;
    stop_load.cancel();
    let mut sent = Vec::new();
    for c in clients {
        sent.extend(c.await.map_err(|e| other(&e))?);
    }

    // Every stage caught up: the clean topic holds every raw event, each sink every clean one.
    let pg = match &opts.postgres_url {
        Some(url) => Some(postgres(url).await?),
        None => None,
    };
    let table = format!("{pg_schema}.{TENANT}_events");
    let deadline = Instant::now() + opts.drain_timeout;
    let drained = loop {
        let raw = ids(&read_all(&settings, &admin, &format!("{TENANT}.events.raw")).await?);
        let clean = ids(&read_all(&settings, &admin, &format!("{TENANT}.events.clean")).await?);
        let lake_ids = lake_ids(&lake)?;
        let pg_ids = match &pg {
            Some(client) => postgres_ids(client, &table).await?,
            None => Vec::new(),
        };
        let covers = |have: &[String], want: &BTreeMap<String, usize>| {
            let have: BTreeSet<&str> = have.iter().map(String::as_str).collect();
            want.keys().all(|id| have.contains(id.as_str()))
        };
        let clean_ids: Vec<String> = clean.keys().cloned().collect();
        let caught_up = covers(&clean_ids, &raw)
            && covers(&lake_ids, &clean)
            && (pg.is_none() || covers(&pg_ids, &clean));
        if caught_up {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    up.stop().await?;

    let raw = ids(&read_all(&settings, &admin, &format!("{TENANT}.events.raw")).await?);
    let dlq = ids(&read_all(&settings, &admin, &format!("{TENANT}.dlq")).await?);
    let clean = ids(&read_all(&settings, &admin, &format!("{TENANT}.events.clean")).await?);
    let accepted: Vec<&str> = sent
        .iter()
        .filter(|s| matches!(s.answer, Answer::Accepted))
        .map(|s| s.id.as_str())
        .collect();
    let dead_lettered: Vec<&str> = sent
        .iter()
        .filter(|s| matches!(s.answer, Answer::DeadLettered))
        .map(|s| s.id.as_str())
        .collect();
    // What reached the raw topic is what must flow on (events answered 503 "may have been
    // written" included when they were).
    let in_raw: Vec<&str> = raw.keys().map(String::as_str).collect();
    let mut stages = vec![
        audit("raw", EXACTLY_ONCE, &accepted, &raw),
        audit("dlq", EXACTLY_ONCE, &dead_lettered, &dlq),
        audit("clean", EXACTLY_ONCE, &in_raw, &clean),
        audit("lake", EXACTLY_ONCE, &in_raw, &counts(lake_ids(&lake)?)),
    ];
    if let Some(client) = &pg {
        stages.push(audit(
            "postgres",
            EXACTLY_ONCE,
            &in_raw,
            &counts(postgres_ids(client, &table).await?),
        ));
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {pg_schema} CASCADE"))
            .await;
    }
    let invalid_in_raw = sent
        .iter()
        .filter(|s| !s.valid && raw.contains_key(&s.id))
        .count();

    let count = |f: fn(&Answer) -> bool| sent.iter().filter(|s| f(&s.answer)).count() as u64;
    let rounds = rounds
        .into_iter()
        .map(|(at, mut r)| {
            r.gateway_ms = sent
                .iter()
                .filter(|s| matches!(s.answer, Answer::Accepted) && s.answered > at)
                .map(|s| (s.answered - at).as_millis() as u64)
                .min();
            r
        })
        .collect();
    Ok(CrashReport {
        rounds,
        requests: sent.len() as u64,
        accepted: count(|a| matches!(a, Answer::Accepted)),
        dead_lettered: count(|a| matches!(a, Answer::DeadLettered)),
        maybe_written: count(|a| matches!(a, Answer::MaybeWritten)),
        not_written: count(|a| matches!(a, Answer::NotWritten)),
        unanswered: count(|a| matches!(a, Answer::Unanswered)),
        invalid_in_raw,
        drained,
        stages,
    })
}

/// One client: single events until `stop`, one in ten invalid; through every crash.
async fn load(c: usize, url: &str, start: Instant, stop: CancellationToken) -> Vec<Sent> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("an HTTP client");
    let mut sent = Vec::new();
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let id = format!("c{c}-{n}");
        let valid = !n.is_multiple_of(10);
        let body = if valid {
            format!(r#"{{"id":"{id}","key":"k{}","v":{n}}}"#, n % 32)
        } else {
            format!(r#"{{"id":"{id}","key":"k{}","v":"not a number"}}"#, n % 32)
        };
        let answer = post(&http, url, body).await;
        let pause = !matches!(answer, Answer::Accepted | Answer::DeadLettered);
        sent.push(Sent {
            id,
            valid,
            answered: start.elapsed(),
            answer,
        });
        if pause {
            // `up` is down or busy: try again shortly, as a client honouring Retry-After would.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    sent
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Answer {
    let Ok(response) = http
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    else {
        return Answer::Unanswered;
    };
    let status = response.status().as_u16();
    let v: serde_json::Value = response.json().await.unwrap_or_default();
    match status {
        200 => Answer::Accepted,
        422 => Answer::DeadLettered,
        503 if v["may_have_been_written"] == true => Answer::MaybeWritten,
        429 | 503 => Answer::NotWritten,
        _ => Answer::Unanswered,
    }
}

async fn clean_records(admin: &Admin) -> i64 {
    match admin
        .describe_topic(&format!("{TENANT}.events.clean"))
        .await
    {
        Ok(info) => info.partitions.iter().map(|p| p.high).sum(),
        Err(_) => 0,
    }
}

async fn read_all(
    settings: &KafkaSettings,
    admin: &Admin,
    topic: &str,
) -> Result<Vec<Record>, LabError> {
    let ranges = admin.describe_topic(topic).await?.ranges();
    Ok(read_ranges(settings, topic, ranges, Duration::from_secs(10)).await?)
}

/// Copies of each event id (the payload's `id`) among `records`.
fn ids(records: &[Record]) -> BTreeMap<String, usize> {
    counts(
        records
            .iter()
            .filter_map(|r| {
                let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref()?).ok()?;
                v["id"].as_str().map(str::to_owned)
            })
            .collect(),
    )
}

fn counts(ids: Vec<String>) -> BTreeMap<String, usize> {
    let mut copies = BTreeMap::new();
    for id in ids {
        *copies.entry(id).or_insert(0) += 1;
    }
    copies
}

fn audit(
    stage: &str,
    promise: &'static str,
    expected: &[&str],
    found: &BTreeMap<String, usize>,
) -> StageAudit {
    let present = expected
        .iter()
        .filter(|id| found.contains_key(**id))
        .count();
    StageAudit {
        stage: stage.to_owned(),
        promise,
        expected: expected.len(),
        found: present,
        lost: expected.len() - present,
        duplicated: found.values().map(|n| n - 1).sum(),
    }
}

/// The lake's Parquet files (not the hidden ones being written).
fn parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet")
                && !e.file_name().to_string_lossy().starts_with('.')
            {
                files.push(path);
            }
        }
    }
    files
}

/// The `id` column of every row in the lake.
fn lake_ids(root: &Path) -> Result<Vec<String>, LabError> {
    use arrow_array::{Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut ids = Vec::new();
    for f in parquet_files(root) {
        let bad = |e: &dyn std::fmt::Display| LabError::Other(format!("{}: {e}", f.display()));
        let file = std::fs::File::open(&f).map_err(|e| bad(&e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| bad(&e))?
            .build()
            .map_err(|e| bad(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| bad(&e))?;
            let column = batch
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| bad(&"no string column \"id\""))?;
            ids.extend(
                (0..column.len())
                    .filter(|i| column.is_valid(*i))
                    .map(|i| column.value(i).to_owned()),
            );
        }
    }
    Ok(ids)
}

async fn postgres(url: &str) -> Result<tokio_postgres::Client, LabError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| LabError::Other(format!("PostgreSQL at {url}: {e}")))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn postgres_ids(
    client: &tokio_postgres::Client,
    table: &str,
) -> Result<Vec<String>, LabError> {
    match client.query(&format!("SELECT id FROM {table}"), &[]).await {
        Ok(rows) => Ok(rows
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .collect()),
        // Not created yet: the sink creates its table with its first rows.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(Vec::new())
        }
        Err(e) => Err(LabError::Other(format!("reading {table}: {e}"))),
    }
}
