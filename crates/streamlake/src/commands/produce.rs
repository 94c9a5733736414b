//! `streamlake produce TOPIC [VALUE...]`: values from arguments or stdin lines, with an optional
//! key (fixed, or split from each line) and headers. Prints where each record landed.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures::stream::{FuturesOrdered, StreamExt};
use streamlake_kafka::{Admin, Headers, Producer};

use super::Connection;
use crate::args::ProduceArgs;

pub(crate) async fn run(conn: &Connection, args: &ProduceArgs) -> anyhow::Result<ExitCode> {
    let mut headers = Headers::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once('=') else {
            bail!("--header \"{h}\" must be NAME=VALUE");
        };
        headers.push(name, value);
    }
    // librdkafka would wait out message.timeout.ms on a missing topic; say so at once instead.
    Admin::new(&conn.settings)?
        .describe_topic(&args.topic)
        .await?;
    let producer = Producer::new(&conn.settings).context("creating the producer")?;
    let lines: Vec<String> = if args.values.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .context("reading standard input")?
    } else {
        args.values.clone()
    };
    let mut failed = 0usize;
    let mut sent = 0usize;
    // Up to WINDOW records in flight at once; answers are printed in input order, and
    // librdkafka's idempotent producer keeps each partition's order.
    const WINDOW: usize = 1000;
    let mut in_flight = FuturesOrdered::new();
    let report = |n: usize,
                  key: Option<&str>,
                  result: Result<
        streamlake_kafka::DeliveryReceipt,
        streamlake_kafka::ProduceError,
    >,
                  sent: &mut usize,
                  failed: &mut usize| match result {
        Ok(r) => {
            *sent += 1;
            if args.output.json {
                println!(
                    "{}",
                    serde_json::json!({"topic": r.topic, "partition": r.partition, "offset": r.offset, "key": key})
                );
            } else {
                println!(
                    "{} partition={} offset={} key={}",
                    r.topic,
                    r.partition,
                    r.offset,
                    key.unwrap_or("-")
                );
            }
        }
        Err(e) => {
            *failed += 1;
            eprintln!("record {}: {e}", n + 1);
        }
    };
    for (n, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k), v),
                None => {
                    eprintln!("line {}: no key separator {sep:?}; skipped", n + 1);
                    failed += 1;
                    continue;
                }
            },
            None => (args.key.as_deref(), line.as_str()),
        };
        let (producer, headers, topic) = (&producer, &headers, &args.topic);
        in_flight.push_back(async move {
            let result = producer
                .send(topic, key.map(str::as_bytes), value.as_bytes(), headers)
                .await;
            (n, key, result)
        });
        if in_flight.len() >= WINDOW {
            if let Some((n, key, result)) = in_flight.next().await {
                report(n, key, result, &mut sent, &mut failed);
            }
        }
    }
    while let Some((n, key, result)) = in_flight.next().await {
        report(n, key, result, &mut sent, &mut failed);
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the producer")?;
    eprintln!("{sent} records produced, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
