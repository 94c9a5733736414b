//! `streamlake-bench latency`: end-to-end latency at a steady rate. HTTP requests of tenant-A
//! air-quality events go to the gateway at a fixed rate; the processor of the air-quality
//! example turns them into clean records; a reader of the clean topic notes when each
//! `ingestion_id` arrives. Everything runs in this process on a one-node Kafka it starts, so one
//! clock times both ends. Reported: from the HTTP acknowledgement to the record in the clean
//! topic, from the request's send to the record in the clean topic, and the request itself.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers as _;
use rdkafka::Message;
use streamlake_pipeline::{run_pipeline, ProcessorStats};
use tokio_util::sync::CancellationToken;

use crate::common::{events, first_dataset, publish, start_broker};
use crate::pipeline::example_config;
use crate::BenchLatencyArgs;

/// One request's events: when it was sent and acknowledged, and their ingestion ids.
struct Request {
    sent: Duration,
    acked: Duration,
    ids: Vec<String>,
}

/// Milliseconds at percentile `p` (0..1) of sorted `values` (microseconds).
fn pct(values: &[u64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() as f64 * p) as usize).min(values.len() - 1);
    values[i] as f64 / 1000.0
}

pub(crate) async fn run(args: &BenchLatencyArgs) -> anyhow::Result<ExitCode> {
    if args.rate == 0 || args.batch_size == 0 || args.duration_secs == 0 {
        bail!("--rate, --batch-size and --duration-secs must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let config = example_config(dir.path())?;
    let (broker, settings) = start_broker(dir.path()).await?;
    let admin = streamlake_kafka::Admin::new(&settings)?;
    streamlake_kafka::provision(&admin, &config.declared_topics()).await;
    let (tenant, ds) = first_dataset(&config)?;
    let clean = ds.clean_topic.clone();
    let url_path = format!("/v1/tenants/{}/datasets/{}/events", tenant.id, ds.id);
    let key = tenant
        .api_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .context("the example's tenant has a development key")?;

    let shutdown = CancellationToken::new();
    let gateway = Arc::new(streamlake_gateway::Gateway::new(&config, &settings)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{url_path}", listener.local_addr()?);
    let server = tokio::spawn(streamlake_gateway::serve(
        listener,
        Arc::clone(&gateway),
        shutdown.clone(),
    ));
    let mut pipeline = config.pipelines["air-quality"].clone();
    if let Some(ms) = args.batch_max_wait_ms {
        pipeline.batch_max_wait = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = args.commit_interval_ms {
        pipeline.commit_interval = Duration::from_millis(ms.max(1));
    }
    let processor = {
        let (config, settings, shutdown) = (config.clone(), settings.clone(), shutdown.clone());
        tokio::spawn(async move {
            run_pipeline(
                &config,
                &pipeline,
                &settings,
                Default::default(),
                Arc::new(ProcessorStats::default()),
                shutdown,
            )
            .await
        })
    };

    // The clean topic's reader: arrival time of each ingestion id.
    let start = Instant::now();
    let arrivals: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let reader = {
        let info = admin.describe_topic(&clean).await?;
        let mut cfg = settings.consumer_config();
        cfg.set(
            "group.id",
            format!("bench-latency-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
        let consumer: StreamConsumer = cfg.create()?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in &info.partitions {
            tpl.add_partition_offset(&clean, p.id, rdkafka::Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let (arrivals, stop) = (arrivals.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    m = consumer.recv() => {
                        let Ok(m) = m else { continue };
                        let at = start.elapsed();
                        let id = m.headers().and_then(|h| {
                            h.iter()
                                .find(|h| h.key == streamlake_core::headers::INGESTION_ID)
                                .and_then(|h| h.value)
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                        });
                        if let Some(id) = id {
                            arrivals.lock().expect("arrivals lock").insert(id, at);
                        }
                    }
                }
            }
        })
    };

    // Steady load: one request of `batch_size` events every `interval`.
    let evs = events(10_000);
    let per_request = args.batch_size;
    let requests_per_sec = (args.rate as f64 / per_request as f64).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / requests_per_sec);
    let warmup = Duration::from_secs(args.warmup_secs);
    let total = warmup + Duration::from_secs(args.duration_secs);
    eprintln!(
        "{:.0} requests/s of {per_request} events ({} events/s) for {} s after {} s of warm-up",
        requests_per_sec, args.rate, args.duration_secs, args.warmup_secs
    );
    let http = reqwest::Client::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    let mut tasks = Vec::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    let load_start = start.elapsed();
    let mut skipped = 0u64;
    while start.elapsed() - load_start < total {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let mut body = b"[".to_vec();
        for i in 0..per_request {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&evs[(n + i) % evs.len()].1);
        }
        body.push(b']');
        n += per_request;
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let measured = start.elapsed() - load_start >= warmup;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let sent = start.elapsed();
            let r = http
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            let acked = start.elapsed();
            let ids = v["results"]
                .as_array()?
                .iter()
                .filter(|e| e["status"] == 200)
                .filter_map(|e| e["ingestion_id"].as_str().map(str::to_owned))
                .collect();
            measured.then_some(Request { sent, acked, ids })
        }));
    }
    let mut requests = Vec::new();
    for t in tasks {
        if let Some(r) = t.await? {
            requests.push(r);
        }
    }
    let load_secs = (start.elapsed() - load_start - warmup).as_secs_f64();
    let expected: usize = requests.iter().map(|r| r.ids.len()).sum();
    // Wait for the stragglers: until every measured id arrived or nothing new came for 5 s.
    let mut last_count = 0;
    let mut quiet_since = Instant::now();
    loop {
        let have = {
            let a = arrivals.lock().expect("arrivals lock");
            requests
                .iter()
                .flat_map(|r| &r.ids)
                .filter(|id| a.contains_key(*id))
                .count()
        };
        if have >= expected || quiet_since.elapsed() > Duration::from_secs(5) {
            break;
        }
        if have != last_count {
            last_count = have;
            quiet_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    let _ = server.await;
    let _ = reader.await;
    processor.await?.map_err(|e| anyhow!("{e}"))?;
    let flushed = tokio::task::spawn_blocking(move || gateway.flush()).await;
    if let Err(e) = flushed {
        eprintln!("flushing the gateway failed: {e}");
    }
    broker.stop().await;

    let arrivals = arrivals.lock().expect("arrivals lock");
    let (mut ack_to_clean, mut send_to_clean, mut request) = (Vec::new(), Vec::new(), Vec::new());
    let mut before_ack = 0u64;
    let mut missing = 0u64;
    for r in &requests {
        request.push((r.acked - r.sent).as_micros() as u64);
        for id in &r.ids {
            match arrivals.get(id) {
                Some(at) => {
                    send_to_clean.push(at.saturating_sub(r.sent).as_micros() as u64);
                    if *at < r.acked {
                        before_ack += 1;
                    }
                    ack_to_clean.push(at.saturating_sub(r.acked).as_micros() as u64);
                }
                None => missing += 1,
            }
        }
    }
    for v in [&mut ack_to_clean, &mut send_to_clean, &mut request] {
        v.sort_unstable();
    }
    let achieved = expected as f64 / load_secs;
    let mut command = format!(
        "streamlake-bench latency --rate {} --batch-size {} --duration-secs {} --warmup-secs {}",
        args.rate, args.batch_size, args.duration_secs, args.warmup_secs
    );
    if let Some(ms) = args.batch_max_wait_ms {
        command.push_str(&format!(" --batch-max-wait-ms {ms}"));
    }
    if let Some(ms) = args.commit_interval_ms {
        command.push_str(&format!(" --commit-interval-ms {ms}"));
    }
    let report = format!(
        "### End-to-end latency ({})\n\n\
         `{command}` — Apache Kafka {} (one node) on loopback, 2 cores shared by broker, gateway, processor, reader and load generator; tenant-a air-quality events (about 250 bytes) through the air-quality pipeline.\n\n\
         | | p50 | p99 | max |\n|---|---|---|---|\n\
         | HTTP acknowledgement → record in the clean topic | {:.1} ms | {:.1} ms | {:.1} ms |\n\
         | request sent → record in the clean topic | {:.1} ms | {:.1} ms | {:.1} ms |\n\
         | HTTP request ({} events) | {:.1} ms | {:.1} ms | {:.1} ms |\n\n\
         Rate: {achieved:.0} acknowledged events/s measured over {load_secs:.0} s (target {}); {} events; {before_ack} reached the clean topic before their HTTP answer reached the client (counted as 0 ms); {missing} acknowledged events not in the clean topic (dead-lettered by the processor's rules or not arrived); {skipped} requests not sent because 512 were in flight.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        streamlake_broker::KAFKA_VERSION,
        pct(&ack_to_clean, 0.5),
        pct(&ack_to_clean, 0.99),
        pct(&ack_to_clean, 1.0),
        pct(&send_to_clean, 0.5),
        pct(&send_to_clean, 0.99),
        pct(&send_to_clean, 1.0),
        per_request,
        pct(&request, 0.5),
        pct(&request, 0.99),
        pct(&request, 1.0),
        args.rate,
        expected,
    );
    publish(&report, args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
