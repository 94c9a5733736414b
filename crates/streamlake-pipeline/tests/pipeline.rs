//! The processing stage against the real broker: raw → clean with dead letters, headers kept
//! and extended, and consumer-group scale-out and fan-out.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use streamlake_pipeline::{run_pipeline, ProcessorStats};
use streamlake_testkit::{eventually, unique, Reader, Stack};
use tokio_util::sync::CancellationToken;

/// A tenant `t` with a sensor dataset on unique topics, processed by pipeline `p`.
fn config(raw: &str, clean: &str, dlq: &str, partitions: i32) -> String {
    format!(
        r#"
[tenants.t]
dlq_topic = "{dlq}"

[tenants.t.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw}"
clean_topic = "{clean}"
partitions = {partitions}

[tenants.t.datasets.sensor.processing]
data_type = "sensor"
normalize = [{{ field = "/temp_f", convert = "fahrenheit_to_celsius", target = "/temperature", optional = true }}]
rules = [
  {{ field = "/temperature", min = -40.0, max = 85.0 }},
  {{ field = "/timestamp", timestamp = "rfc3339", max_future_secs = 300 }},
]
derive = [{{ target = "/status", from = "/temperature", bands = [{{ below = 30.0, value = "normal" }}], otherwise = "critical" }}]

[pipelines.p]
datasets = ["t/sensor"]
group = "{group}"
batch_max_size = 20
"#,
        group = unique("process")
    )
}

/// Runs `pipeline` of `stack` until `shutdown`, in a task: its counters and the task.
fn start(
    stack: &Stack,
    pipeline: streamlake_config::Pipeline,
    shutdown: &CancellationToken,
) -> (
    Arc<ProcessorStats>,
    tokio::task::JoinHandle<Result<streamlake_kafka::RunStats, streamlake_kafka::HandlerError>>,
) {
    let stats = Arc::new(ProcessorStats::default());
    let (config, settings, s, shutdown) = (
        stack.config.clone(),
        stack.settings.clone(),
        stats.clone(),
        shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        run_pipeline(
            &config,
            &pipeline,
            &settings,
            Default::default(),
            s,
            shutdown,
        )
        .await
    });
    (stats, task)
}

fn header(r: &streamlake_kafka::Record, name: &str) -> String {
    String::from_utf8(r.header(name).unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test]
async fn raw_to_clean_transforms_valid_records_and_dead_letters_invalid_ones() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(&raw, &clean, &dlq, 3)).await;
    let records = vec![
        json!({"sensor_id": "s1", "timestamp": "2026-11-23T10:00:00Z", "temperature": 21.5}),
        json!({"sensor_id": "s2", "timestamp": "2026-11-23T10:00:00Z", "temp_f": 104.0}),
        json!({"sensor_id": "s3", "timestamp": "2026-11-23T10:00:00Z", "temperature": 99.0}),
        json!({"sensor_id": "s4", "timestamp": "2999-01-01T00:00:00Z", "temperature": 20.0}),
        json!({"sensor_id": "s5", "timestamp": "yesterday", "temperature": 20.0}),
    ];
    let ids = stack.produce(&raw, "t", "sensor", &records).await;

    let shutdown = CancellationToken::new();
    let (stats, task) = start(&stack, stack.config.pipelines["p"].clone(), &shutdown);

    let mut out = Reader::new(&stack.settings, &clean)
        .await
        .read(2, Duration::from_secs(30))
        .await;
    out.sort_by_key(|r| header(r, "ingestion_id"));
    let values: Vec<Value> = out.iter().map(|r| r.json().unwrap()).collect();
    assert_eq!(values[0]["sensor_id"], "s1");
    assert_eq!(values[0]["status"], "normal");
    assert_eq!(values[0]["data_type"], "sensor");
    assert!(values[0]["processed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(values[1]["sensor_id"], "s2");
    assert_eq!(values[1]["temperature"], 40.0, "104 °F normalized to °C");
    assert_eq!(values[1]["status"], "critical");
    for (r, id) in out.iter().zip(&ids[..2]) {
        assert_eq!(&header(r, "ingestion_id"), id, "ingestion_id kept");
        assert_eq!(header(r, "tenant"), "t");
        assert_eq!(
            header(r, "producer_service"),
            "testkit",
            "original headers kept"
        );
        assert_eq!(header(r, "processor"), "p");
        assert!(header(r, "processed_at").ends_with('Z'));
        assert!(r.key_str().unwrap().starts_with("key-"), "key kept");
    }

    let mut dead = Reader::new(&stack.settings, &dlq)
        .await
        .read(3, Duration::from_secs(30))
        .await;
    dead.sort_by_key(|r| header(r, "ingestion_id"));
    let expect = [
        (
            &ids[2],
            &records[2],
            "/temperature",
            "max",
            "above the maximum 85",
        ),
        (
            &ids[3],
            &records[3],
            "/timestamp",
            "timestamp",
            "in the future",
        ),
        (
            &ids[4],
            &records[4],
            "/timestamp",
            "timestamp",
            "is not RFC 3339",
        ),
    ];
    for (r, (id, original, path, rule, reason)) in dead.iter().zip(expect) {
        assert_eq!(&header(r, "ingestion_id"), id);
        assert_eq!(r.json::<Value>().unwrap(), *original, "payload unchanged");
        assert_eq!(header(r, "error.stage"), "processor");
        assert_eq!(header(r, "error.path"), path);
        assert_eq!(header(r, "error.rule"), rule);
        assert!(
            header(r, "error.reason").contains(reason),
            "{}",
            header(r, "error.reason")
        );
    }

    shutdown.cancel();
    task.await.unwrap().unwrap();
    let (records_in, emitted, dead_lettered, _) = stats.snapshot();
    assert_eq!((records_in, emitted, dead_lettered), (5, 2, 3));
}

#[tokio::test]
async fn instances_of_one_group_share_partitions_and_another_group_gets_everything() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(&raw, &clean, &dlq, 4)).await;
    let pipeline = stack.config.pipelines["p"].clone();
    let mut other_group = pipeline.clone();
    other_group.group = unique("fan-out");

    let shutdown = CancellationToken::new();
    let (a, task_a) = start(&stack, pipeline.clone(), &shutdown);
    let (b, task_b) = start(&stack, pipeline, &shutdown);
    let (fan, task_fan) = start(&stack, other_group, &shutdown);

    // Waves of records until both members of the group have received some: the group needs a
    // rebalance after the second member joins.
    let mut ids = BTreeSet::new();
    let seen = |s: &ProcessorStats| s.records_in.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !(seen(&a) > 0 && seen(&b) > 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both members should get partitions: a={} b={}",
            seen(&a),
            seen(&b)
        );
        let wave: Vec<Value> = (0..40)
            .map(|i| json!({"sensor_id": format!("s{i}"), "timestamp": "2026-11-23T10:00:00Z", "temperature": 20.0}))
            .collect();
        ids.extend(stack.produce(&raw, "t", "sensor", &wave).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let n = ids.len() as u64;
    let done = eventually(Duration::from_secs(60), || async {
        (seen(&a) + seen(&b) >= n && seen(&fan) >= n).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "a={} b={} fan-out={} of {n}",
        seen(&a),
        seen(&b),
        seen(&fan)
    );
    shutdown.cancel();
    for t in [task_a, task_b, task_fan] {
        t.await.unwrap().unwrap();
    }
    // Every record reached the clean topic (from the group; the fan-out group wrote copies).
    let out = Reader::new(&stack.settings, &clean)
        .await
        .drain(Duration::from_secs(3))
        .await;
    let written: BTreeSet<String> = out.iter().map(|r| header(r, "ingestion_id")).collect();
    assert_eq!(written, ids);
    assert_eq!(seen(&fan), n, "the second group read every record once");
}

#[tokio::test]
async fn at_least_once_writes_every_record_and_stores_offsets_once_all_are_acknowledged() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let raw_config = config(&raw, &clean, &dlq, 3)
        + "exactly_once = false\ncommit_interval_ms = 50\nbatch_max_wait_ms = 0\n";
    let stack = Stack::new(&raw_config).await;
    let records: Vec<Value> = (0..300)
        .map(|i| json!({"sensor_id": format!("s{}", i % 7), "timestamp": "2026-11-23T10:00:00Z", "temperature": 20.0}))
        .collect();
    let ids: BTreeSet<String> = stack
        .produce(&raw, "t", "sensor", &records)
        .await
        .into_iter()
        .collect();

    let pipeline = stack.config.pipelines["p"].clone();
    assert!(!pipeline.exactly_once);
    let group = pipeline.group.clone();
    let shutdown = CancellationToken::new();
    let (stats, task) = start(&stack, pipeline, &shutdown);
    // Counted once acknowledged: every record, exactly once.
    let counted = eventually(Duration::from_secs(60), || async {
        (stats.emitted.load(Ordering::Relaxed) >= 300).then_some(())
    })
    .await;
    assert!(counted.is_some(), "emitted {:?}", stats.snapshot());
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(stats.snapshot(), (300, 300, 0, 0));

    let out = Reader::new(&stack.settings, &clean)
        .await
        .read(300, Duration::from_secs(30))
        .await;
    let written: Vec<String> = out.iter().map(|r| header(r, "ingestion_id")).collect();
    assert_eq!(written.len(), 300, "no record written twice");
    assert_eq!(written.into_iter().collect::<BTreeSet<_>>(), ids);
    // The offsets were stored behind the acknowledgements and committed at shutdown: a
    // restart would read nothing again.
    let lag = streamlake_kafka::Admin::new(&stack.settings)
        .unwrap()
        .group_lag(&group, std::slice::from_ref(&raw))
        .await
        .unwrap();
    assert_eq!(lag.total_lag, 0, "{lag:?}");
    assert_eq!(lag.partitions.len(), 3, "{lag:?}");
}

#[tokio::test]
async fn a_record_the_broker_refuses_aborts_its_whole_transaction() {
    let (raw, clean, dlq) = (unique("raw"), unique("clean"), unique("dlq"));
    let raw_config = config(&raw, &clean, &dlq, 1) + "commit_interval_ms = 200\n";
    let stack = Stack::new(&raw_config).await;
    // The clean topic takes no record above 2 KiB; the raw topic takes it.
    let admin = streamlake_kafka::Admin::new(&stack.settings).unwrap();
    admin
        .alter_topic_configs(
            &clean,
            &std::collections::BTreeMap::from([(
                "max.message.bytes".to_owned(),
                Some("2048".to_owned()),
            )]),
        )
        .await
        .unwrap();
    let reading = |i: usize| json!({"sensor_id": format!("s{i}"), "timestamp": "2026-11-23T10:00:00Z", "temperature": 20.0});
    let shutdown = CancellationToken::new();
    let (stats, task) = start(&stack, stack.config.pipelines["p"].clone(), &shutdown);
    let mut reader = Reader::new(&stack.settings, &clean).await;

    // First five records that fit: committed and visible.
    let first: Vec<Value> = (0..5).map(reading).collect();
    let first_ids = stack.produce(&raw, "t", "sensor", &first).await;
    let seen = reader.read(5, Duration::from_secs(30)).await;
    assert_eq!(seen.len(), 5);
    let committed = eventually(Duration::from_secs(10), || async {
        (stats.emitted.load(Ordering::Relaxed) == 5).then_some(())
    })
    .await;
    assert!(committed.is_some(), "{:?}", stats.snapshot());
    let commits = stats.commits.load(Ordering::Relaxed);

    // Then five more and one the clean topic refuses (hex of random ids stays large after
    // compression), read together into one transaction: the broker refuses the big one, the
    // commit fails, the transaction is aborted, and the run starts over from the committed
    // offsets, again and again (the record never fits).
    let big: String = (0..200).map(|_| unique("x")).collect();
    let mut second: Vec<Value> = (5..10).map(reading).collect();
    second.push(json!({"sensor_id": "big", "timestamp": "2026-11-23T10:00:00Z", "temperature": 20.0, "note": big}));
    stack.produce(&raw, "t", "sensor", &second).await;
    // Several commit intervals and restarts (0.5 s, then 1 s apart).
    let later = reader.drain(Duration::from_secs(5)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // read_committed: not one of the five records that fitted is visible, nothing more was
    // committed or counted, and the group's offsets still point at the second six.
    assert!(
        later.is_empty(),
        "{} records of the aborted transaction visible",
        later.len()
    );
    assert_eq!(
        stats.commits.load(Ordering::Relaxed),
        commits,
        "no commit since"
    );
    assert_eq!(stats.snapshot(), (5, 5, 0, 0));
    let written: BTreeSet<String> = seen.iter().map(|r| header(r, "ingestion_id")).collect();
    assert_eq!(written, first_ids.into_iter().collect());
    let lag = admin
        .group_lag(
            &stack.config.pipelines["p"].group,
            std::slice::from_ref(&raw),
        )
        .await
        .unwrap();
    assert_eq!(
        lag.total_lag, 6,
        "the second six are to be read again: {lag:?}"
    );
}
