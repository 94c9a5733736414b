//! `streamlake-bench latency`: end-to-end latency at a steady rate. HTTP requests of tenant-A
//! air-quality events go to the gateway at a fixed rate; the processor of the air-quality
//! example turns them into clean records; a reader of the clean topic notes when each
//! `ingestion_id` arrives. Everything runs in this process on a one-node Kafka it starts, so one
//! clock times both ends. Reported: from the HTTP acknowledgement to the record in the clean
//! topic, split at the processor's `processed_at` stamp; to the row in PostgreSQL (the
//! example's sink, by its `landed_at` column) unless skipped; from the request's send to the
//! record in the clean topic; the request itself; the processor's transaction commits; and the
//! CPU this process and the broker spent while measured (what shorter waits cost).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers as _;
use rdkafka::Message;
use streamlake_pipeline::{run_pipeline, ProcessorStats};
use tokio_util::sync::CancellationToken;

use crate::common::{cpu_seconds, events, first_dataset, millis_at, publish, start_broker};
use crate::pipeline::example_config;
use crate::BenchLatencyArgs;

/// One request's events: when it was sent and acknowledged, and their ingestion ids.
struct Request {
    sent: Duration,
    acked: Duration,
    ids: Vec<String>,
}

/// The longest warm-up: the measurement starts then even if the processor is still behind.
const MAX_WARMUP: Duration = Duration::from_secs(120);

/// A clean record's arrival at the reader, and the processor's `processed_at` stamp on it.
struct Arrival {
    at: Duration,
    processed_ms: Option<i64>,
}

pub(crate) async fn run(args: &BenchLatencyArgs) -> anyhow::Result<ExitCode> {
    if args.rate == 0 || args.batch_size == 0 || args.duration_secs == 0 {
        bail!("--rate, --batch-size and --duration-secs must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let config = example_config(dir.path())?;
    let (broker, settings) = start_broker(dir.path()).await?;
    let broker_pid = broker
        .pid(1)
        .context("the managed broker's pid")?
        .to_string();
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
        pipeline.batch_max_wait = Duration::from_millis(ms);
    }
    if let Some(ms) = args.commit_interval_ms {
        pipeline.commit_interval = Duration::from_millis(ms);
    }
    pipeline.exactly_once = !args.at_least_once;
    let stats = Arc::new(ProcessorStats::default());
    let processor = {
        let (config, settings, shutdown) = (config.clone(), settings.clone(), shutdown.clone());
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            run_pipeline(
                &config,
                &pipeline,
                &settings,
                Default::default(),
                stats,
                shutdown,
            )
            .await
        })
    };

    // The example's PostgreSQL sink, tenant-a only, into a schema of this run's own.
    let postgres = if args.postgres.skip_postgres {
        None
    } else {
        let schema = format!("streamlake_bench_latency_{}", uuid::Uuid::new_v4().simple());
        let mut sink = config.sinks["bronze"].clone();
        sink.datasets.retain(|d| d.tenant == tenant.id);
        if let Some(ms) = args.sink_batch_max_wait_ms {
            sink.batch_max_wait = Duration::from_millis(ms);
        }
        let table = &mut sink.store.table;
        table["schema"] = schema.clone().into();
        table["url"] = args.postgres.postgres_url.clone().into();
        if let Some(t) = table.as_object_mut() {
            t.remove("url_env");
        }
        let (config, settings, shutdown) = (config.clone(), settings.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            streamlake_sinks::run_sink(
                &config,
                &sink,
                &settings,
                &config.data_dir,
                Default::default(),
                Arc::new(streamlake_sinks::SinkStats::default()),
                shutdown,
            )
            .await
        });
        Some((schema, task))
    };

    // The clean topic's reader: arrival time of each ingestion id, and when the processor
    // stamped it (`processed_at`, epoch milliseconds), to split the latency in two.
    let start = Instant::now();
    let start_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as i64;
    let arrivals: Arc<Mutex<HashMap<String, Arrival>>> = Arc::default();
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
                        let header = |name: &str| {
                            m.headers().and_then(|h| {
                                h.iter()
                                    .find(|h| h.key == name)
                                    .and_then(|h| h.value)
                                    .map(|v| String::from_utf8_lossy(v).into_owned())
                            })
                        };
                        let processed_ms = header(streamlake_core::headers::PROCESSED_AT)
                            .and_then(|t| streamlake_core::latency::epoch_ms(&t));
                        if let Some(id) = header(streamlake_core::headers::INGESTION_ID) {
                            arrivals
                                .lock()
                                .expect("arrivals lock")
                                .insert(id, Arrival { at, processed_ms });
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
    let measure_for = Duration::from_secs(args.duration_secs);
    eprintln!(
        "{:.0} requests/s of {per_request} events ({} events/s) for {} s after at least {} s of warm-up",
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
    // The warm-up lasts `warmup` and until the processor keeps up (at most 200 ms of events
    // behind the gateway's acknowledgements; a broker's JIT compiler can take a minute to
    // settle on two busy cores), at most `MAX_WARMUP`. The measurement starts then.
    let acked_events = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut measure_from: Option<Duration> = None;
    let mut caught_up = false;
    // The processor's commits counted from the end of the warm-up.
    let mut commits_before = (0, 0);
    // CPU seconds of this process and of the broker at the end of the warm-up.
    let mut cpu_before = (0.0, 0.0);
    while measure_from.is_none_or(|from| start.elapsed() - load_start < from + measure_for) {
        ticker.tick().await;
        let elapsed = start.elapsed() - load_start;
        if measure_from.is_none() && elapsed >= warmup {
            let behind = acked_events
                .load(Ordering::Relaxed)
                .saturating_sub(stats.records_in.load(Ordering::Relaxed));
            caught_up = behind <= args.rate / 5;
            if caught_up || elapsed >= MAX_WARMUP {
                measure_from = Some(elapsed);
                stats.commit_max_micros.store(0, Ordering::Relaxed);
                commits_before = (
                    stats.commits.load(Ordering::Relaxed),
                    stats.commit_micros.load(Ordering::Relaxed),
                );
                cpu_before = (cpu_seconds("self")?, cpu_seconds(&broker_pid)?);
                eprintln!(
                    "measuring after {:.0} s of warm-up{}",
                    elapsed.as_secs_f64(),
                    if caught_up {
                        ""
                    } else {
                        " (the processor is still behind)"
                    }
                );
            }
        }
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
        let measured = measure_from.is_some();
        let acked_events = Arc::clone(&acked_events);
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
                .collect::<Vec<_>>();
            acked_events.fetch_add(ids.len() as u64, Ordering::Relaxed);
            measured.then_some(Request { sent, acked, ids })
        }));
    }
    let mut requests = Vec::new();
    for t in tasks {
        if let Some(r) = t.await? {
            requests.push(r);
        }
    }
    let warmed = measure_from.unwrap_or_default();
    let load_secs = (start.elapsed() - load_start - warmed).as_secs_f64();
    let cpu = (
        cpu_seconds("self")? - cpu_before.0,
        cpu_seconds(&broker_pid)? - cpu_before.1,
    );
    let (commits0, micros0) = commits_before;
    let commits = stats.commits.load(Ordering::Relaxed) - commits0;
    let commit_mean_ms = (stats.commit_micros.load(Ordering::Relaxed) - micros0) as f64
        / commits.max(1) as f64
        / 1000.0;
    let commit_max_ms = stats.commit_max_micros.load(Ordering::Relaxed) as f64 / 1000.0;
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
    // The rows in PostgreSQL: when each was inserted (`landed_at`, the inserting statement's
    // start), until every measured id is there or nothing new came for 5 s.
    let landed = match &postgres {
        Some((schema, _)) => {
            let ids: Vec<&str> = requests
                .iter()
                .flat_map(|r| r.ids.iter().map(String::as_str))
                .collect();
            Some(landed_rows(&args.postgres.postgres_url, schema, &ids).await?)
        }
        None => None,
    };
    shutdown.cancel();
    if let Some((schema, task)) = postgres {
        task.await?.map_err(|e| anyhow!("{e}"))?;
        drop_schema(&args.postgres.postgres_url, &schema).await?;
    }
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
    // The processor's stamp splits ack → clean at millisecond precision: the wait to be read
    // and decided, then the output's produce, transaction commit and fetch.
    let (mut ack_to_processed, mut processed_to_clean) = (Vec::new(), Vec::new());
    let wall_ms = |d: Duration| (start_us + d.as_micros() as i64) / 1000;
    let mut before_ack = 0u64;
    let mut missing = 0u64;
    for r in &requests {
        request.push((r.acked - r.sent).as_micros() as u64);
        for id in &r.ids {
            match arrivals.get(id) {
                Some(a) => {
                    send_to_clean.push(a.at.saturating_sub(r.sent).as_micros() as u64);
                    if a.at < r.acked {
                        before_ack += 1;
                    }
                    ack_to_clean.push(a.at.saturating_sub(r.acked).as_micros() as u64);
                    if let Some(p) = a.processed_ms {
                        let micros = |ms: i64| ms.max(0) as u64 * 1000;
                        ack_to_processed.push(micros(p - wall_ms(r.acked)));
                        processed_to_clean.push(micros(wall_ms(a.at) - p));
                    }
                }
                None => missing += 1,
            }
        }
    }
    // HTTP acknowledgement → row inserted in PostgreSQL.
    let mut ack_to_row = Vec::new();
    let mut rows_missing = 0u64;
    if let Some(landed) = &landed {
        for r in &requests {
            let acked_us = start_us + r.acked.as_micros() as i64;
            for id in &r.ids {
                match landed.get(id) {
                    Some(at) => ack_to_row.push((at - acked_us).max(0) as u64),
                    None => rows_missing += 1,
                }
            }
        }
    }
    for v in [
        &mut ack_to_row,
        &mut ack_to_clean,
        &mut send_to_clean,
        &mut request,
        &mut ack_to_processed,
        &mut processed_to_clean,
    ] {
        v.sort_unstable();
    }
    let achieved = expected as f64 / load_secs;
    let postgres_row = match &landed {
        Some(_) => format!(
            "| HTTP acknowledgement → row in PostgreSQL (the example's sink, `landed_at`; {rows_missing} rows missing) | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            millis_at(&ack_to_row, 0.5),
            millis_at(&ack_to_row, 0.99),
            millis_at(&ack_to_row, 1.0),
        ),
        None => String::new(),
    };
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
    if let Some(ms) = args.sink_batch_max_wait_ms {
        command.push_str(&format!(" --sink-batch-max-wait-ms {ms}"));
    }
    if args.postgres.skip_postgres {
        command.push_str(" --skip-postgres");
    }
    if args.at_least_once {
        command.push_str(" --at-least-once");
    }
    let (after_processed, commit_line) = if args.at_least_once {
        (
            "produce, read",
            "The processor ran at-least-once: no transactions, its outputs visible once acknowledged.".to_owned(),
        )
    } else {
        (
            "produce, transaction commit, read",
            format!(
                "The processor committed {commits} transactions while measured ({:.1} per second), each taking {commit_mean_ms:.1} ms on average and {commit_max_ms:.1} ms at most.",
                commits as f64 / load_secs
            ),
        )
    };
    let report = format!(
        "### End-to-end latency ({})\n\n\
         `{command}` — Apache Kafka {} (one node) on loopback, 2 cores shared by broker, gateway, processor, reader and load generator; tenant-a air-quality events (about 250 bytes) through the air-quality pipeline.\n\n\
         | | p50 | p99 | max |\n|---|---|---|---|\n\
         | HTTP acknowledgement → record in the clean topic | {:.1} ms | {:.1} ms | {:.1} ms |\n\
         | of which: HTTP acknowledgement → processed (`processed_at`; the processor's read and batch wait) | {:.0} ms | {:.0} ms | {:.0} ms |\n\
         | of which: processed → record in the clean topic ({after_processed}) | {:.0} ms | {:.0} ms | {:.0} ms |\n\
         {}\
         | request sent → record in the clean topic | {:.1} ms | {:.1} ms | {:.1} ms |\n\
         | HTTP request ({} events) | {:.1} ms | {:.1} ms | {:.1} ms |\n\n\
         {commit_line}\n\n\
         CPU while measured: this process (gateway, processor, sink, reader and load generator) {:.2} s per second ({:.0} µs per event), the broker {:.2} s per second ({:.0} µs per event).\n\n\
         Warm-up: {:.0} s{}. Rate: {achieved:.0} acknowledged events/s measured over {load_secs:.0} s (target {}); {} events; {before_ack} reached the clean topic before their HTTP answer reached the client (counted as 0 ms); {missing} acknowledged events not in the clean topic (dead-lettered by the processor's rules or not arrived); {skipped} requests not sent because 512 were in flight.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        streamlake_broker::KAFKA_VERSION,
        millis_at(&ack_to_clean, 0.5),
        millis_at(&ack_to_clean, 0.99),
        millis_at(&ack_to_clean, 1.0),
        millis_at(&ack_to_processed, 0.5),
        millis_at(&ack_to_processed, 0.99),
        millis_at(&ack_to_processed, 1.0),
        millis_at(&processed_to_clean, 0.5),
        millis_at(&processed_to_clean, 0.99),
        millis_at(&processed_to_clean, 1.0),
        postgres_row,
        millis_at(&send_to_clean, 0.5),
        millis_at(&send_to_clean, 0.99),
        millis_at(&send_to_clean, 1.0),
        per_request,
        millis_at(&request, 0.5),
        millis_at(&request, 0.99),
        millis_at(&request, 1.0),
        cpu.0 / load_secs,
        cpu.0 * 1e6 / expected.max(1) as f64,
        cpu.1 / load_secs,
        cpu.1 * 1e6 / expected.max(1) as f64,
        warmed.as_secs_f64(),
        if caught_up {
            ", until the processor kept up"
        } else {
            ", and the processor had not caught up then"
        },
        args.rate,
        expected,
    );
    publish(&report, args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// When each of `ids` was inserted into the example's PostgreSQL table in `schema` (epoch
/// microseconds of `landed_at`), waiting until all are there or nothing new came for 5 s.
async fn landed_rows(
    url: &str,
    schema: &str,
    ids: &[&str],
) -> anyhow::Result<HashMap<String, i64>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    tokio::spawn(connection);
    let wanted: std::collections::HashSet<&str> = ids.iter().copied().collect();
    let query = format!(
        "SELECT ingestion_id, (extract(epoch FROM landed_at) * 1000000)::bigint FROM \"{schema}\".tenant_a_air_quality"
    );
    let mut landed = HashMap::new();
    let (mut last, mut quiet_since) = (0, Instant::now());
    loop {
        landed.clear();
        // The table appears with the sink's first batch.
        if let Ok(rows) = client.query(&query, &[]).await {
            for row in rows {
                let id: String = row.get(0);
                if wanted.contains(id.as_str()) {
                    landed.insert(id, row.get::<_, i64>(1));
                }
            }
        }
        if landed.len() >= wanted.len() || quiet_since.elapsed() > Duration::from_secs(5) {
            return Ok(landed);
        }
        if landed.len() != last {
            (last, quiet_since) = (landed.len(), Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Drops the run's own schema and its tables.
async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    Ok(())
}
