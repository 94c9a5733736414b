//! `streamlake consume TOPIC`: prints each record's partition, offset, key, headers and value.
//! Without `--group` it reads every partition directly and commits nothing; with `--group` it
//! joins the group and commits exactly what it printed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use streamlake_kafka::{Admin, Record};
use tokio_util::sync::CancellationToken;

use super::Connection;
use crate::args::ConsumeArgs;

#[derive(Serialize)]
struct Printed<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<String>,
    headers: BTreeMap<&'a str, String>,
    value: Option<String>,
}

fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

pub(crate) async fn run(conn: &Connection, args: &ConsumeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = conn.settings.consumer_config();
    cfg.set(
        "auto.offset.reset",
        if args.from_beginning {
            "earliest"
        } else {
            "latest"
        },
    );
    match &args.group {
        Some(group) => {
            cfg.set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false");
        }
        None => {
            cfg.set("group.id", "streamlake-cli")
                .set("enable.auto.commit", "false");
        }
    }
    let info = Admin::new(&conn.settings)?
        .describe_topic(&args.topic)
        .await?;
    let consumer: StreamConsumer = cfg.create().context("creating the consumer")?;
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic]).context("subscribing")?;
    } else {
        // Direct assignment: no group membership, nothing committed.
        let start = if args.from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        let mut tpl = TopicPartitionList::new();
        for p in &info.partitions {
            tpl.add_partition_offset(&args.topic, p.id, start)?;
        }
        consumer.assign(&tpl).context("assigning partitions")?;
    }

    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let idle = args.idle_timeout.map(Duration::from_secs);
    let mut printed = 0u64;
    while args.max_messages.is_none_or(|max| printed < max) {
        let next = async {
            match idle {
                Some(d) => tokio::time::timeout(d, consumer.recv()).await.ok(),
                None => Some(consumer.recv().await),
            }
        };
        let m = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = next => m,
        };
        let Some(m) = m else {
            eprintln!(
                "no record for {} s; stopping",
                idle.unwrap_or_default().as_secs()
            );
            break;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("consumer error: {e}");
                continue;
            }
        };
        let r = Record::from_message(&m);
        print_record(&r, args.output.json)?;
        printed += 1;
        if args.group.is_some() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.offset + 1))?;
            consumer.store_offsets(&tpl).context("storing the offset")?;
        }
    }
    if args.group.is_some() && printed > 0 {
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .context("committing offsets")?;
    }
    eprintln!("{printed} records consumed");
    Ok(ExitCode::SUCCESS)
}

fn print_record(r: &Record, as_json: bool) -> anyhow::Result<()> {
    let headers: BTreeMap<&str, String> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), text(v.as_deref()).unwrap_or_default()))
        .collect();
    if as_json {
        let p = Printed {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: text(r.key.as_deref()),
            headers,
            value: text(r.payload.as_deref()),
        };
        println!("{}", serde_json::to_string(&p)?);
    } else {
        let hs: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "partition={} offset={} key={} headers=[{}] value={}",
            r.partition,
            r.offset,
            text(r.key.as_deref()).unwrap_or_else(|| "-".to_owned()),
            hs.join(","),
            text(r.payload.as_deref()).unwrap_or_default()
        );
    }
    Ok(())
}
