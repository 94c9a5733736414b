//! The sinks against the real broker: CSV files, Parquet read back with the `parquet` crate's
//! own reader, PostgreSQL on a real server; dead letters for rows that cannot be converted.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use streamlake_sinks::{run_sink, SinkStats};
use streamlake_testkit::{eventually, postgres, postgres_url, unique, Reader, Stack};
use tokio_util::sync::CancellationToken;

/// Tenant `t` with datasets `sensor` and `activity` sharing one clean topic, and `extra` (the
/// sink's own section, e.g. `[sinks.s.csv]`).
fn config(clean: &str, dlq: &str, extra: &str) -> String {
    format!(
        r#"
[tenants.t]
dlq_topic = "{dlq}"

[tenants.t.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw1}"
clean_topic = "{clean}"
processing = {{ data_type = "sensor" }}
columns = [
  {{ name = "sensor_id", type = "string" }},
  {{ name = "temperature", type = "float" }},
  {{ name = "note", type = "string" }},
  {{ name = "at", pointer = "/timestamp", type = "timestamp" }},
]

[tenants.t.datasets.activity]
schema = "schema.json"
key = "/user_id"
raw_topic = "{raw2}"
clean_topic = "{clean}"
processing = {{ data_type = "activity" }}
columns = [
  {{ name = "user_id", type = "string" }},
  {{ name = "count", type = "integer" }},
]

[sinks.s]
datasets = ["t/sensor", "t/activity"]
group = "{group}"
{extra}
"#,
        raw1 = unique("raw"),
        raw2 = unique("raw"),
        group = unique("sink"),
    )
}

fn sensor(i: usize, note: &str) -> Value {
    json!({"sensor_id": format!("s{i}"), "temperature": 20.5 + i as f64, "note": note,
           "timestamp": "2026-11-23T10:00:00Z"})
}

/// Runs sink `s` of `stack` until `done` says so (or 60 s), then stops it.
async fn run_until(stack: &Stack, stats: Arc<SinkStats>, done: impl Fn(&SinkStats) -> bool) {
    let shutdown = CancellationToken::new();
    let task = {
        let (config, settings, stats, shutdown) = (
            stack.config.clone(),
            stack.settings.clone(),
            stats.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let sink = &config.sinks["s"];
            run_sink(
                &config,
                sink,
                &settings,
                &config.data_dir,
                Default::default(),
                stats,
                shutdown,
            )
            .await
        })
    };
    let finished = eventually(Duration::from_secs(60), || async {
        done(&stats).then_some(())
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(finished.is_some(), "sink did not finish: {stats:?}");
}

#[tokio::test]
async fn csv_writes_one_file_per_type_with_one_header_and_rfc4180_quoting() {
    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(
        &clean,
        &dlq,
        "[sinks.s.csv]\npath = \"out/processed_data_{data_type}.csv\"",
    ))
    .await;
    let tricky = "comma, \"quote\"\nnew line";
    let ids = stack
        .produce(
            &clean,
            "t",
            "sensor",
            &[sensor(0, tricky), sensor(1, "plain")],
        )
        .await;
    stack
        .produce(
            &clean,
            "t",
            "activity",
            &[json!({"user_id": "u1", "count": 3})],
        )
        .await;
    let stats = Arc::new(SinkStats::default());
    run_until(&stack, stats.clone(), |s| {
        s.rows.load(Ordering::Relaxed) >= 3
    })
    .await;

    // A second run (restart) appends without a second header.
    stack
        .produce(&clean, "t", "sensor", &[sensor(2, "after restart")])
        .await;
    run_until(&stack, Arc::new(SinkStats::default()), |s| {
        s.rows.load(Ordering::Relaxed) >= 1
    })
    .await;

    let dir = stack.dir.path().join("out");
    let sensor_file = dir.join("processed_data_sensor.csv");
    let activity_file = dir.join("processed_data_activity.csv");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["processed_data_activity.csv", "processed_data_sensor.csv"]
    );

    let text = std::fs::read_to_string(&sensor_file).unwrap();
    assert_eq!(
        text.matches("ingestion_id,").count(),
        1,
        "header once:\n{text}"
    );
    assert!(
        text.contains("\"comma, \"\"quote\"\"\nnew line\""),
        "RFC 4180 quoting:\n{text}"
    );
    let mut reader = csv::Reader::from_path(&sensor_file).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "ingestion_id",
            "tenant",
            "dataset",
            "ingested_at",
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
            "schema_version",
            "sensor_id",
            "temperature",
            "note",
            "at"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let by_id: std::collections::BTreeMap<&str, &csv::StringRecord> =
        rows.iter().map(|r| (&r[0], r)).collect();
    let first = by_id[ids[0].as_str()];
    assert_eq!(
        &first[7], "1",
        "the schema version from the record's header"
    );
    assert_eq!(&first[10], tricky, "the note survives the round trip");
    assert_eq!(&first[8], "s0");
    assert_eq!(&first[9], "20.5");
    assert_eq!(&first[11], "2026-11-23T10:00:00.000Z");

    let activity = std::fs::read_to_string(&activity_file).unwrap();
    let lines: Vec<&str> = activity.lines().collect();
    assert_eq!(lines.len(), 2, "{activity}");
    assert!(lines[0].ends_with("user_id,count"));
    assert!(lines[1].ends_with(",u1,3"), "{activity}");
}

#[tokio::test]
async fn jsonl_writes_one_typed_object_per_row_with_its_metadata() {
    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(
        &clean,
        &dlq,
        "[sinks.s.jsonl]\npath = \"out/{dataset}.jsonl\"",
    ))
    .await;
    let ids = stack
        .produce(
            &clean,
            "t",
            "sensor",
            &[sensor(0, "a\nb"), sensor(1, "plain")],
        )
        .await;
    let stats = Arc::new(SinkStats::default());
    run_until(&stack, stats.clone(), |s| {
        s.flushes.load(Ordering::Relaxed) >= 1 && s.rows.load(Ordering::Relaxed) >= 2
    })
    .await;

    let text = std::fs::read_to_string(stack.dir.path().join("out/sensor.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let first = rows
        .iter()
        .find(|r| r["ingestion_id"] == ids[0].as_str())
        .expect("the first event's row");
    assert_eq!(first["tenant"], "t");
    assert_eq!(first["dataset"], "sensor");
    assert_eq!(first["kafka_topic"], clean.as_str());
    assert!(first["kafka_offset"].is_i64(), "{first}");
    assert_eq!(first["schema_version"], "1", "from the record's header");
    assert_eq!(first["sensor_id"], "s0");
    assert_eq!(first["temperature"], 20.5, "numbers stay numbers");
    assert_eq!(first["note"], "a\nb");
    assert_eq!(first["at"], "2026-11-23T10:00:00.000Z");
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_dead_lettered_by_the_sink() {
    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(
        &clean,
        &dlq,
        "[sinks.s.csv]\npath = \"out/{dataset}.csv\"",
    ))
    .await;
    let bad = json!({"sensor_id": "s9", "temperature": "warm"});
    let ids = stack
        .produce(&clean, "t", "sensor", &[bad.clone(), sensor(1, "ok")])
        .await;
    let stats = Arc::new(SinkStats::default());
    run_until(&stack, stats.clone(), |s| {
        s.rows.load(Ordering::Relaxed) >= 1 && s.dead_lettered.load(Ordering::Relaxed) >= 1
    })
    .await;
    let dead = Reader::new(&stack.settings, &dlq)
        .await
        .read(1, Duration::from_secs(20))
        .await;
    let h = |n: &str| String::from_utf8(dead[0].header(n).unwrap().to_vec()).unwrap();
    assert_eq!(h("ingestion_id"), ids[0]);
    assert_eq!(h("error.stage"), "sink");
    assert_eq!(h("error.path"), "/temperature");
    assert_eq!(h("error.rule"), "column.float");
    assert!(
        h("error.reason").contains("\"warm\" is not a number"),
        "{}",
        h("error.reason")
    );
    assert_eq!(dead[0].json::<Value>().unwrap(), bad);
    let text = std::fs::read_to_string(stack.dir.path().join("out/sensor.csv")).unwrap();
    assert_eq!(text.lines().count(), 2, "header and the good row:\n{text}");
}

#[tokio::test]
async fn parquet_tables_are_readable_with_the_declared_schema_and_every_row() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let stack = Stack::new(&config(
        &clean,
        &dlq,
        "[sinks.s.parquet]\npath = \"lake\"\nroll_rows = 25\nroll_secs = 2",
    ))
    .await;
    let records: Vec<Value> = (0..60).map(|i| sensor(i, "n")).collect();
    let ids: BTreeSet<String> = stack
        .produce(&clean, "t", "sensor", &records)
        .await
        .into_iter()
        .collect();
    let stats = Arc::new(SinkStats::default());
    run_until(&stack, stats.clone(), |s| {
        s.rows.load(Ordering::Relaxed) >= 60 && s.flushes.load(Ordering::Relaxed) >= 1
    })
    .await;

    // Hive-style partition by the ingested_at date; no temporary files left behind.
    let part = stack.dir.path().join("lake/t/sensor/date=2026-11-23");
    let files: Vec<_> = std::fs::read_dir(&part)
        .unwrap_or_else(|e| panic!("{}: {e}", part.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files.iter().all(|f| f.extension().unwrap() == "parquet"),
        "{files:?}"
    );
    let mut seen = BTreeSet::new();
    for f in &files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let schema = batch.schema();
            let fields: Vec<(String, String)> = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect();
            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "ingestion_id",
                    "tenant",
                    "dataset",
                    "ingested_at",
                    "kafka_topic",
                    "kafka_partition",
                    "kafka_offset",
                    "schema_version",
                    "sensor_id",
                    "temperature",
                    "note",
                    "at"
                ]
            );
            assert_eq!(fields[9].1, "Float64");
            assert!(
                fields[11].1.starts_with("Timestamp(µs")
                    || fields[11].1.starts_with("Timestamp(Microsecond"),
                "{}",
                fields[11].1
            );
            let id = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            let temp = batch
                .column(9)
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap();
            let sensor_id = batch
                .column(8)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            for i in 0..batch.num_rows() {
                let n: f64 = sensor_id.value(i)[1..].parse().unwrap();
                assert_eq!(temp.value(i), 20.5 + n);
                seen.insert(id.value(i).to_owned());
            }
        }
    }
    assert_eq!(seen, ids, "every row, once");
}

/// Every `ingestion_id` in the Parquet files under `dir`, as often as it occurs.
fn lake_ids(dir: &std::path::Path) -> Vec<String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut ids = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .unwrap();
                ids.extend((0..batch.num_rows()).map(|i| column.value(i).to_owned()));
            }
        }
    }
    ids
}

/// Records read again (a crash between a file's rename and the offset commit, or here a group
/// that starts over from the beginning) are found in the lake by the files' names and skipped:
/// every record is in the lake once.
#[tokio::test]
async fn parquet_rows_read_again_are_not_written_twice() {
    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let mut stack = Stack::new(&config(
        &clean,
        &dlq,
        "[sinks.s.parquet]\npath = \"lake\"\nroll_rows = 10\nroll_secs = 1",
    ))
    .await;
    let records: Vec<Value> = (0..60).map(|i| sensor(i, "n")).collect();
    let ids: BTreeSet<String> = stack
        .produce(&clean, "t", "sensor", &records)
        .await
        .into_iter()
        .collect();
    run_until(&stack, Arc::new(SinkStats::default()), |s| {
        s.rows.load(Ordering::Relaxed) >= 60 && s.flushes.load(Ordering::Relaxed) >= 1
    })
    .await;
    let lake = stack.dir.path().join("lake");
    assert_eq!(lake_ids(&lake).len(), 60);

    // A new group reads every record again, and more arrive.
    stack.config.sinks.get_mut("s").unwrap().group = unique("sink-again");
    let more: Vec<Value> = (60..80).map(|i| sensor(i, "n")).collect();
    let ids: BTreeSet<String> = ids
        .into_iter()
        .chain(stack.produce(&clean, "t", "sensor", &more).await)
        .collect();
    run_until(&stack, Arc::new(SinkStats::default()), |s| {
        s.records_in.load(Ordering::Relaxed) >= 80 && s.flushes.load(Ordering::Relaxed) >= 1
    })
    .await;
    let landed = lake_ids(&lake);
    let unique_ids: BTreeSet<String> = landed.iter().cloned().collect();
    assert_eq!(unique_ids, ids, "every record is in the lake");
    assert_eq!(landed.len(), ids.len(), "and none twice");
}

/// A stack whose sink `s` writes to PostgreSQL in a schema of its own: its clean topic, the
/// schema's name, the stack.
async fn postgres_stack() -> (String, String, Stack) {
    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let schema = unique("sl").replace('-', "_");
    let toml = config(
        &clean,
        &dlq,
        &format!(
            "[sinks.s.postgres]\nurl = \"{}\"\nschema = \"{schema}\"",
            postgres_url()
        ),
    );
    let stack = Stack::new(&toml).await;
    (clean, schema, stack)
}

#[tokio::test]
async fn postgres_rows_are_idempotent_on_ingestion_id() {
    let (clean, schema, stack) = postgres_stack().await;
    let records: Vec<Value> = (0..30).map(|i| sensor(i, "n")).collect();
    let ids: BTreeSet<String> = stack
        .produce(&clean, "t", "sensor", &records)
        .await
        .into_iter()
        .collect();
    stack
        .produce(
            &clean,
            "t",
            "activity",
            &[json!({"user_id": "u1", "count": 7})],
        )
        .await;
    run_until(&stack, Arc::new(SinkStats::default()), |s| {
        s.rows.load(Ordering::Relaxed) >= 31
    })
    .await;

    // Replay everything with a fresh group: at-least-once delivery, exactly-once rows.
    let mut again = stack.config.clone();
    again.sinks.get_mut("s").unwrap().group = unique("replay");
    let replay = Stack {
        dir: tempfile::tempdir().unwrap(),
        config: again,
        settings: stack.settings.clone(),
    };
    run_until(&replay, Arc::new(SinkStats::default()), |s| {
        s.rows.load(Ordering::Relaxed) >= 31
    })
    .await;

    let client = postgres().await;
    let rows = client
        .query(&format!("SELECT ingestion_id, temperature, to_char(\"at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), payload->>'note' FROM \"{schema}\".t_sensor"), &[])
        .await
        .unwrap();
    let got: BTreeSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(rows.len(), 30, "each ingestion_id exactly once");
    assert_eq!(got, ids);
    for r in &rows {
        assert!(r.get::<_, f64>(1) >= 20.5);
        assert!(
            r.get::<_, String>(2).eq("2026-11-23 10:00:00"),
            "{}",
            r.get::<_, String>(2)
        );
        assert_eq!(
            r.get::<_, String>(3),
            "n",
            "the whole record is kept as payload"
        );
    }
    let activity = client
        .query_one(
            &format!("SELECT user_id, count FROM \"{schema}\".t_activity"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(activity.get::<_, String>(0), "u1");
    assert_eq!(activity.get::<_, i64>(1), 7);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_row_postgres_refuses_is_dead_lettered_and_the_rest_land() {
    let (clean, dlq) = (unique("clean"), unique("dlq"));
    let schema = unique("sl").replace('-', "_");
    let stack = Stack::new(&config(
        &clean,
        &dlq,
        &format!(
            "[sinks.s.postgres]\nurl = \"{}\"\nschema = \"{schema}\"",
            postgres_url()
        ),
    ))
    .await;
    // PostgreSQL text and jsonb cannot hold U+0000.
    let refused = sensor(1, "nul \u{0} inside");
    let records = vec![sensor(0, "fine"), refused.clone(), sensor(2, "fine")];
    let ids = stack.produce(&clean, "t", "sensor", &records).await;
    let stats = Arc::new(SinkStats::default());
    run_until(&stack, stats.clone(), |s| {
        s.rows.load(Ordering::Relaxed) >= 2 && s.dead_lettered.load(Ordering::Relaxed) >= 1
    })
    .await;
    let dead = Reader::new(&stack.settings, &dlq)
        .await
        .read(1, Duration::from_secs(20))
        .await;
    let h = |n: &str| String::from_utf8(dead[0].header(n).unwrap().to_vec()).unwrap();
    assert_eq!(h("ingestion_id"), ids[1]);
    assert_eq!(h("error.rule"), "store");
    assert_eq!(h("error.stage"), "sink");
    assert!(
        h("error.reason").contains("PostgreSQL refused the row"),
        "{}",
        h("error.reason")
    );
    assert_eq!(dead[0].json::<Value>().unwrap(), refused);

    let client = postgres().await;
    let rows = client
        .query(
            &format!("SELECT ingestion_id FROM \"{schema}\".t_sensor ORDER BY ingestion_id"),
            &[],
        )
        .await
        .unwrap();
    let landed: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(landed, [ids[0].clone(), ids[2].clone()]);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_postgres_table_gains_the_columns_declared_after_it_was_made() {
    let (clean, schema, stack) = postgres_stack().await;
    let old: BTreeSet<String> = stack
        .produce(&clean, "t", "sensor", &[sensor(0, "a"), sensor(1, "b")])
        .await
        .into_iter()
        .collect();
    run_until(&stack, Arc::new(SinkStats::default()), |s| {
        s.rows.load(Ordering::Relaxed) >= 2
    })
    .await;
    let client = postgres().await;
    let table = format!("\"{schema}\".t_sensor");
    // A table from before `schema_version` was a metadata column.
    client
        .batch_execute(&format!("ALTER TABLE {table} DROP COLUMN schema_version"))
        .await
        .unwrap();

    // A new schema version's field, declared as a column; the sink started again.
    let mut record = sensor(2, "c");
    record["unit"] = json!("K");
    let new_id = stack.produce(&clean, "t", "sensor", &[record]).await;
    let mut wider = stack.config.clone();
    for dataset in wider
        .tenants
        .values_mut()
        .flat_map(|t| t.datasets.values_mut())
        .filter(|d| d.id.as_str() == "sensor")
    {
        dataset.columns.push(streamlake_config::ColumnConfig {
            name: "unit".into(),
            pointer: None,
            kind: streamlake_config::ColumnType::String,
        });
    }
    let restarted = Stack {
        dir: tempfile::tempdir().unwrap(),
        config: wider,
        settings: stack.settings.clone(),
    };
    run_until(&restarted, Arc::new(SinkStats::default()), |s| {
        s.records_in.load(Ordering::Relaxed) >= 1 && s.rows.load(Ordering::Relaxed) >= 1
    })
    .await;

    let rows = client
        .query(
            &format!("SELECT ingestion_id, unit, schema_version FROM {table}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let id: String = r.get(0);
        let (unit, version): (Option<String>, Option<String>) = (r.get(1), r.get(2));
        if id == new_id[0] {
            assert_eq!(unit.as_deref(), Some("K"));
            assert_eq!(version.as_deref(), Some("1"));
        } else {
            assert!(old.contains(&id), "{id}");
            assert_eq!(unit, None, "rows from before the column are empty in it");
        }
    }
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}
