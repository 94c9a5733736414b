//! Crash safety of `streamlake process` and `streamlake sink` as separate processes: each is
//! killed with SIGKILL in the middle of a run and started again; nothing is lost, the clean
//! topic holds every record once (transactions), and the PostgreSQL table holds every
//! `ingestion_id` exactly once.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use streamlake_testkit::{bootstrap, postgres, postgres_url, unique, Reader, Stack};

fn start(stack: &Stack, args: &[&str], log: &str) -> Child {
    let log = std::fs::File::create(stack.dir.path().join(log)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .arg("--config")
        .arg(stack.config_path())
        .args(args)
        .env_remove("STREAMLAKE_CONFIG")
        .current_dir(stack.dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn log_of(stack: &Stack, name: &str) -> String {
    std::fs::read_to_string(stack.dir.path().join(name)).unwrap_or_default()
}

fn stop(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "stopped with {status}");
}

const SESSION_TIMEOUT_MS: u64 = 6000;

fn readings(n: usize, offset: usize) -> Vec<Value> {
    (offset..offset + n)
        .map(|i| json!({"sensor_id": format!("s{}", i % 50), "seq": i, "temperature": 20.0}))
        .collect()
}

fn config(raw: &str, clean: &str, dlq: &str, sink: &str) -> String {
    format!(
        r#"
# A killed member holds its partitions until its session times out: keep that short.
[kafka.consumer]
"session.timeout.ms" = "{SESSION_TIMEOUT_MS}"
"heartbeat.interval.ms" = "1000"

[tenants.t]
dlq_topic = "{dlq}"

[tenants.t.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw}"
clean_topic = "{clean}"
partitions = 3
processing = {{ rules = [{{ field = "/temperature", min = -40.0, max = 85.0 }}] }}
columns = [{{ name = "seq", type = "integer" }}]

[pipelines.p]
datasets = ["t/sensor"]
group = "{group}"
batch_max_size = 1
# Frequent commits, so a member killed while busy has committed part of its input.
commit_interval_ms = 20

[sinks.s]
datasets = ["t/sensor"]
group = "{sink_group}"
batch_max_size = 20
{sink}
"#,
        group = unique("process"),
        sink_group = unique("sink"),
    )
}

fn ids_of(records: &[streamlake_kafka::Record]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.header("ingestion_id").unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_killed_processor_restarts_from_its_offsets_and_writes_each_record_once() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(&raw, &clean, &dlq, "[sinks.s.csv]")).await;
    let bootstrap = bootstrap().await;
    let mut ids: BTreeSet<String> = stack
        .produce(&raw, "t", "sensor", &readings(20_000, 0))
        .await
        .into_iter()
        .collect();

    let args = ["-b", &bootstrap, "process", "--pipeline", "p"];
    let mut first = start(&stack, &args, "process-1.log");
    let mut clean_reader = Reader::new(&stack.settings, &clean).await;
    // Killed as soon as its first output shows: one record per batch, it is far from done.
    let mut out = clean_reader.read(1, Duration::from_secs(60)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    out.extend(clean_reader.drain(Duration::from_secs(1)).await);
    let at_kill = ids_of(&out).len();
    eprintln!("killed after {at_kill} of {} records", ids.len());
    assert!(
        at_kill < ids.len(),
        "killed in the middle: {at_kill} of {}",
        ids.len()
    );

    // More input while it is down, then a restart at once: the group hands the killed
    // member's partitions over when its session expires.
    ids.extend(
        stack
            .produce(&raw, "t", "sensor", &readings(200, 20_000))
            .await,
    );
    let second = start(&stack, &args, "process-2.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !ids_of(&out).is_superset(&ids) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} records reached the clean topic; log of the restarted processor:\n{}",
            ids_of(&out).intersection(&ids).count(),
            ids.len(),
            log_of(&stack, "process-2.log")
        );
        out.extend(clean_reader.drain(Duration::from_millis(500)).await);
    }
    stop(second);
    // Each batch and its offsets were one transaction: what the killed run had not committed
    // is invisible, and read again; nothing it committed is read again.
    out.extend(clean_reader.drain(Duration::from_secs(2)).await);
    let duplicates = out.len() - ids_of(&out).len();
    assert_eq!(
        duplicates, 0,
        "killed after {at_kill} records; {duplicates} records written twice after the restart"
    );
}

/// A second processor joins a running one: the group rebalances while batches are in flight
/// and transactions open, and still every record reaches the clean topic once.
#[tokio::test]
async fn a_processor_joining_mid_run_rebalances_without_writing_a_record_twice() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(&raw, &clean, &dlq, "[sinks.s.csv]")).await;
    let bootstrap = bootstrap().await;
    let mut ids: BTreeSet<String> = stack
        .produce(&raw, "t", "sensor", &readings(20_000, 0))
        .await
        .into_iter()
        .collect();
    let args = ["-b", &bootstrap, "process", "--pipeline", "p"];
    let first = start(&stack, &args, "process-1.log");
    let mut clean_reader = Reader::new(&stack.settings, &clean).await;
    let mut out = clean_reader.read(1, Duration::from_secs(60)).await;
    let second = start(&stack, &args, "process-2.log");
    ids.extend(
        stack
            .produce(&raw, "t", "sensor", &readings(500, 20_000))
            .await,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !ids_of(&out).is_superset(&ids) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} records reached the clean topic; logs:\n{}\n{}",
            ids_of(&out).intersection(&ids).count(),
            ids.len(),
            log_of(&stack, "process-1.log"),
            log_of(&stack, "process-2.log")
        );
        out.extend(clean_reader.drain(Duration::from_millis(500)).await);
    }
    stop(second);
    stop(first);
    out.extend(clean_reader.drain(Duration::from_secs(2)).await);
    assert!(
        log_of(&stack, "process-1.log").contains("partitions revoked"),
        "the first processor gave partitions up when the second joined"
    );
    assert_eq!(out.len(), ids_of(&out).len(), "records written twice");
}

/// With a name (`--instance-id`, static membership) a killed processor restarted at once takes
/// its partitions back without waiting for the group to expire its previous run: everything
/// arrives well within the session timeout, which is set long here so that the difference shows.
#[tokio::test]
async fn a_killed_processor_with_an_instance_id_takes_its_partitions_back_at_once() {
    const LONG_SESSION_MS: u64 = 60_000;
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let toml = config(&raw, &clean, &dlq, "[sinks.s.csv]").replace(
        &format!("\"session.timeout.ms\" = \"{SESSION_TIMEOUT_MS}\""),
        &format!("\"session.timeout.ms\" = \"{LONG_SESSION_MS}\""),
    );
    let stack = Stack::new(&toml).await;
    let bootstrap = bootstrap().await;
    let mut ids: BTreeSet<String> = stack
        .produce(&raw, "t", "sensor", &readings(300, 0))
        .await
        .into_iter()
        .collect();
    let args = [
        "-b",
        &bootstrap,
        "process",
        "--pipeline",
        "p",
        "--instance-id",
        "processor-1",
    ];
    let mut first = start(&stack, &args, "process-1.log");
    let mut clean_reader = Reader::new(&stack.settings, &clean).await;
    let mut out = clean_reader.read(1, Duration::from_secs(60)).await;
    first.kill().unwrap();
    first.wait().unwrap();

    ids.extend(
        stack
            .produce(&raw, "t", "sensor", &readings(100, 300))
            .await,
    );
    let second = start(&stack, &args, "process-2.log");
    let restarted = tokio::time::Instant::now();
    let within = Duration::from_millis(LONG_SESSION_MS / 2);
    while !ids_of(&out).is_superset(&ids) {
        assert!(
            restarted.elapsed() < within,
            "{} of {} records in the clean topic {} s after the restart: the partitions were not taken back at once; log:\n{}",
            ids_of(&out).intersection(&ids).count(),
            ids.len(),
            within.as_secs(),
            log_of(&stack, "process-2.log")
        );
        out.extend(clean_reader.drain(Duration::from_millis(500)).await);
    }
    stop(second);
}

#[tokio::test]
async fn a_killed_postgres_sink_restarts_and_every_ingestion_id_lands_exactly_once() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let schema = unique("crash").replace('-', "_");
    let sink = format!(
        "[sinks.s.postgres]\nurl = \"{}\"\nschema = \"{schema}\"",
        postgres_url()
    );
    let stack = Stack::new(&config(&raw, &clean, &dlq, &sink)).await;
    let bootstrap = bootstrap().await;
    let mut ids: BTreeSet<String> = stack
        .produce(&clean, "t", "sensor", &readings(20_000, 0))
        .await
        .into_iter()
        .collect();

    let client = postgres().await;
    let count = |sql: String| {
        let client = &client;
        async move {
            match client.query_one(&sql, &[]).await {
                Ok(row) => row.get::<_, i64>(0),
                Err(_) => 0, // the table does not exist yet
            }
        }
    };
    let rows_sql = format!("SELECT count(*) FROM \"{schema}\".t_sensor");

    let args = ["-b", &bootstrap, "sink", "--pipeline", "s"];
    let mut first = start(&stack, &args, "sink-1.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(rows_sql.clone()).await < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sink wrote nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = count(rows_sql.clone()).await;
    assert!(at_kill < 1500, "killed in the middle: {at_kill} rows");

    ids.extend(
        stack
            .produce(&clean, "t", "sensor", &readings(500, 20_000))
            .await,
    );
    let second = start(&stack, &args, "sink-2.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while count(rows_sql.clone()).await < ids.len() as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} rows; log of the restarted sink:\n{}",
            count(rows_sql.clone()).await,
            ids.len(),
            log_of(&stack, "sink-2.log")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(second);

    let rows = client
        .query(&format!("SELECT ingestion_id, count(*) OVER (PARTITION BY ingestion_id) FROM \"{schema}\".t_sensor"), &[])
        .await
        .unwrap();
    let landed: BTreeSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(landed, ids, "every record landed");
    assert!(
        rows.iter().all(|r| r.get::<_, i64>(1) == 1),
        "each ingestion_id once"
    );
    assert_eq!(rows.len(), ids.len());
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn generate_writes_the_requested_count_over_the_requested_keys_through_the_gateway_path() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(&raw, &clean, &dlq, "[sinks.s.csv]")).await;
    let bootstrap = bootstrap().await;
    let out = Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .arg("--config")
        .arg(stack.config_path())
        .args([
            "-b",
            &bootstrap,
            "generate",
            "sensor",
            "--dataset",
            "t/sensor",
        ])
        .args(["--count", "300", "--keys", "7", "--rate", "1000"])
        .env_remove("STREAMLAKE_CONFIG")
        .current_dir(stack.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("generated 300 sensor events into t/sensor")
            && stderr.contains("300 accepted, 0 dead-lettered"),
        "{stderr}"
    );
    let records = Reader::new(&stack.settings, &raw)
        .await
        .read(300, Duration::from_secs(30))
        .await;
    let keys: BTreeSet<&str> = records.iter().map(|r| r.key_str().unwrap()).collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    for r in &records {
        let v: Value = r.json().unwrap();
        assert_eq!(v["sensor_id"].as_str(), r.key_str(), "keyed by /sensor_id");
        assert_eq!(
            r.header("producer_service"),
            Some(&b"streamlake-generator-sensor"[..])
        );
        assert!(r.header("ingestion_id").is_some());
        assert_eq!(r.header("tenant"), Some(&b"t"[..]));
    }
}
