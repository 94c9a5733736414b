//! `streamlake-bench gateway`: the gateway's throughput against its ceiling, measured in one run
//! on one broker (the method in docs/BENCHMARKS.md). The baseline is a bare librdkafka producer with
//! the same producer settings writing the same records (payload, key and the gateway's seven
//! metadata headers); a headerless run is reported beside it for reference. The
//! gateway runs as its own process so its CPU time and memory are its own; the two sides take
//! turns over several rounds so the machine's slow and fast stretches fall on both. The HTTP
//! load comes from this process, on the same machine: the ratio is what matters, not the
//! absolute figures.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamlake_kafka::GATEWAY_PRODUCER_DEFAULTS;

use crate::common::{
    cpu_seconds, events, millis_at, provision_with, publish, start_broker, status_kb,
    streamlake_binary, GatewayProcess,
};
use crate::BenchGatewayArgs;

const SCHEMA: &str =
    include_str!("../../../examples/air-quality/schemas/tenant-a-air-quality.json");
const KEY: &str = "bench-key";

#[derive(Debug, Default, Clone, Copy)]
struct Side {
    events: u64,
    seconds: f64,
    /// CPU seconds of the side's own process (the producer, or the gateway).
    cpu: f64,
    /// CPU seconds of the broker meanwhile.
    broker_cpu: f64,
}

impl Side {
    fn add(&mut self, other: Side) {
        self.events += other.events;
        self.seconds += other.seconds;
        self.cpu += other.cpu;
        self.broker_cpu += other.broker_cpu;
    }
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
    fn cpu_per_million(&self) -> f64 {
        self.per_million(self.cpu)
    }
    fn per_million(&self, cpu: f64) -> f64 {
        cpu / (self.events as f64 / 1e6)
    }
}

/// The seven metadata headers the gateway attaches to each record, with a fresh
/// `ingestion_id`, so the baseline writes the same records the gateway writes.
fn gateway_headers() -> OwnedHeaders {
    let id = uuid::Uuid::now_v7().to_string();
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    use streamlake_core::headers;
    [
        (headers::TENANT, "bench"),
        (headers::DATASET, "air-quality"),
        (headers::SCHEMA_VERSION, "1"),
        (headers::INGESTION_ID, id.as_str()),
        (headers::PRODUCER_SERVICE, "streamlake-gateway"),
        (headers::INGESTED_AT, now.as_str()),
        (headers::CONTENT_TYPE, "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new_with_capacity(7), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// The bare producer writing `events` for `duration`, at most `window` records awaiting their
/// acknowledgement at once (as many as the gateway's clients can have in flight); each
/// record's produce-to-acknowledgement time in microseconds goes to `latencies`.
#[allow(clippy::too_many_arguments)]
async fn baseline(
    producer: &FutureProducer,
    broker_pid: &str,
    topic: &str,
    events: &[(String, Vec<u8>)],
    duration: Duration,
    with_headers: bool,
    window: usize,
    latencies: &mut Vec<u64>,
) -> anyhow::Result<Side> {
    let cpu0 = cpu_seconds("self")?;
    let broker0 = cpu_seconds(broker_pid)?;
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut acked = 0u64;
    let mut i = 0usize;
    while start.elapsed() < duration {
        while in_flight.len() < window.max(1) {
            let (key, body) = &events[i % events.len()];
            i += 1;
            let mut record = FutureRecord::to(topic)
                .key(key.as_bytes())
                .payload(body.as_slice());
            if with_headers {
                record = record.headers(gateway_headers());
            }
            let sent = Instant::now();
            match producer.send_result(record) {
                Ok(f) => in_flight.push(async move { (f.await, sent.elapsed()) }),
                Err(_) => break,
            }
        }
        if let Some((r, took)) = in_flight.next().await {
            if matches!(r, Ok(Ok(_))) {
                acked += 1;
                latencies.push(took.as_micros() as u64);
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let counted = acked;
    let cpu = cpu_seconds("self")? - cpu0;
    let broker_cpu = cpu_seconds(broker_pid)? - broker0;
    // Drain so the broker is idle before the gateway is measured.
    while in_flight.next().await.is_some() {}
    Ok(Side {
        events: counted,
        seconds,
        cpu,
        broker_cpu,
    })
}

/// The HTTP load on the gateway: keep-alive clients posting batches of events.
struct Load {
    url: String,
    bodies: Vec<bytes::Bytes>,
    clients: Vec<reqwest::Client>,
    batch: u64,
    /// Each request with an `Idempotency-Key` of its own.
    keyed: bool,
    gateway_pid: u32,
    broker_pid: u32,
}

/// What the gateway's rounds measured besides throughput and CPU.
#[derive(Default)]
struct Measured {
    /// Request latencies in microseconds.
    latencies: Vec<u64>,
    errors: u64,
    /// The gateway's RSS each second, in kB.
    rss_samples: Vec<u64>,
    /// This process's CPU seconds while it generated the load.
    load_cpu: f64,
}

impl Load {
    /// Drives the gateway for `duration`; the events it acknowledged, with the CPU time the
    /// gateway and the broker spent.
    async fn run(&self, duration: Duration, m: &mut Measured) -> anyhow::Result<Side> {
        let gateway_pid = self.gateway_pid.to_string();
        let broker_pid = self.broker_pid.to_string();
        let cpu0 = cpu_seconds(&gateway_pid)?;
        let broker0 = cpu_seconds(&broker_pid)?;
        let load0 = cpu_seconds("self")?;
        let start = Instant::now();
        let stop = tokio_util::sync::CancellationToken::new();
        let mut tasks = Vec::new();
        for (c, client) in self.clients.iter().enumerate() {
            let client = client.clone();
            let url = self.url.clone();
            let bodies = self.bodies.clone();
            let batch = self.batch;
            let keyed = self.keyed;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut accepted = 0u64;
                let mut errors = 0u64;
                let mut latencies = Vec::new();
                let mut i = c;
                while start.elapsed() < duration && !stop.is_cancelled() {
                    let body = bodies[i % bodies.len()].clone();
                    i += 1;
                    let t = Instant::now();
                    let mut request = client
                        .post(&url)
                        .bearer_auth(KEY)
                        .header("content-type", "application/json");
                    if keyed {
                        request =
                            request.header("idempotency-key", uuid::Uuid::now_v7().to_string());
                    }
                    let r = request.body(body).send().await;
                    match r {
                        Ok(resp) if resp.status() == 200 => {
                            let _ = resp.bytes().await;
                            latencies.push(t.elapsed().as_micros() as u64);
                            accepted += batch;
                        }
                        _ => errors += 1,
                    }
                }
                (accepted, errors, latencies)
            }));
        }
        while start.elapsed() < duration {
            m.rss_samples.push(status_kb(self.gateway_pid, "VmRSS:"));
            tokio::time::sleep(
                Duration::from_secs(1).min(duration.saturating_sub(start.elapsed())),
            )
            .await;
        }
        let mut accepted = 0;
        for t in tasks {
            let (a, e, l) = t.await?;
            accepted += a;
            m.errors += e;
            m.latencies.extend(l);
        }
        let seconds = start.elapsed().as_secs_f64();
        m.load_cpu += cpu_seconds("self")? - load0;
        Ok(Side {
            events: accepted,
            seconds,
            cpu: cpu_seconds(&gateway_pid)? - cpu0,
            broker_cpu: cpu_seconds(&broker_pid)? - broker0,
        })
    }
}

pub(crate) async fn run(args: &BenchGatewayArgs) -> anyhow::Result<ExitCode> {
    let streamlake = streamlake_binary(args.streamlake.as_deref())?;
    if args.concurrency == 0 || args.batch_size == 0 {
        bail!("--concurrency and --batch-size must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let free = || -> anyhow::Result<std::net::SocketAddr> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
    };
    let (broker, mut settings) = start_broker(dir.path()).await?;
    settings
        .producer
        .extend(args.producer_properties.iter().cloned());
    let producer_section: String = args
        .producer_properties
        .iter()
        .map(|(name, value)| format!("{name:?} = {value:?}\n"))
        .collect();
    let http = free()?;
    std::fs::write(dir.path().join("schema.json"), SCHEMA)?;
    let config_path = dir.path().join("bench.toml");
    std::fs::write(
        &config_path,
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n[kafka.producer]\n{producer_section}[http]\nlisten = \"{http}\"\n[gateway]\nmax_in_flight_per_tenant = {}\n[topic_defaults]\npartitions = 6\n[tenants.bench]\ndev_api_key = \"{KEY}\"\n[tenants.bench.datasets.air-quality]\nschema = \"schema.json\"\nkey = \"/sensor_id\"\n",
            broker.bootstrap_servers(),
            args.concurrency.max(64),
        ),
    )?;
    let config = streamlake_config::load(
        &config_path,
        &[&streamlake_sinks::SINKS, &streamlake_pipeline::STEPS],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let baseline_topic = "bench.baseline";
    provision_with(&settings, &config, &[baseline_topic]).await?;

    let events = events(10_000);
    let avg = events.iter().map(|(_, b)| b.len()).sum::<usize>() / events.len();
    let duration = Duration::from_secs(args.duration_secs);
    let rounds = args.rounds.max(1);
    let broker_pid = broker
        .pid(1)
        .context("the managed broker's pid")?
        .to_string();

    let mut gateway = GatewayProcess::start(
        &streamlake,
        dir.path(),
        &config_path,
        http,
        args.gateway_worker_threads,
    )
    .await?;
    let pid = gateway.pid;
    let load = Load {
        url: format!("http://{http}/v1/tenants/bench/datasets/air-quality/events"),
        bodies: events
            .chunks(args.batch_size)
            .map(|chunk| {
                let mut b = b"[".to_vec();
                for (i, (_, e)) in chunk.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    b.extend_from_slice(e);
                }
                b.push(b']');
                bytes::Bytes::from(b)
            })
            .filter(|b| b.len() > 2)
            .collect(),
        clients: (0..args.concurrency)
            .map(|_| reqwest::Client::new())
            .collect(),
        batch: args.batch_size as u64,
        keyed: args.idempotency_keys,
        gateway_pid: pid,
        broker_pid: broker.pid(1).unwrap_or_default(),
    };

    // The sides take turns, round after round, and swap which goes first, so a slower or
    // faster stretch of the machine falls on both alike.
    let (mut base, mut gw) = (Side::default(), Side::default());
    let mut measured = Measured::default();
    let mut per_round = Vec::new();
    let rss_start = status_kb(pid, "VmRSS:");
    // One producer for the whole run, as the gateway has, with the gateway's own producer
    // settings, so both sides write with the same configuration.
    let producer: FutureProducer = settings
        .producer_config_over(GATEWAY_PRODUCER_DEFAULTS)
        .create()?;
    let base_slice = duration / rounds;
    // The baseline may have as many records awaiting acknowledgement as the gateway's clients
    // can: one request of `batch_size` events each. With one-event requests that is the same
    // round trip as theirs: produce, wait for the acknowledgement, produce the next.
    let window = args
        .baseline_window
        .unwrap_or(args.concurrency * args.batch_size);
    let mut base_latencies: Vec<u64> = Vec::new();
    // The broker's JVM compiles its hot paths during the first seconds of load; unmeasured,
    // both sides warm it up, or whichever side runs second in the first round gains.
    if args.warmup_secs > 0 {
        let warmup = Duration::from_secs(args.warmup_secs) / 2;
        eprintln!(
            "warm-up: baseline and gateway, {:.1} s each, not measured",
            warmup.as_secs_f64()
        );
        baseline(
            &producer,
            &broker_pid,
            baseline_topic,
            &events,
            warmup,
            true,
            window,
            &mut Vec::new(),
        )
        .await?;
        load.run(warmup, &mut Measured::default()).await?;
    }
    for round in 1..=rounds {
        eprintln!(
            "round {round}/{rounds}: baseline (bare producer with the gateway's headers) {:.1} s, gateway ({} clients x {} events) {:.1} s",
            base_slice.as_secs_f64(),
            args.concurrency,
            args.batch_size,
            (duration / rounds).as_secs_f64(),
        );
        // Odd rounds: the baseline first; even rounds: the gateway first.
        let gateway_first = match round % 2 {
            0 => Some(load.run(duration / rounds, &mut measured).await?),
            _ => None,
        };
        let b = baseline(
            &producer,
            &broker_pid,
            baseline_topic,
            &events,
            base_slice,
            true,
            window,
            &mut base_latencies,
        )
        .await?;
        let g = match gateway_first {
            Some(g) => g,
            None => load.run(duration / rounds, &mut measured).await?,
        };
        eprintln!(
            "  baseline {:.0}/s, gateway {:.0}/s: ratio {:.2} (broker CPU s per 1M: baseline {:.1}, gateway {:.1})",
            b.rate(),
            g.rate(),
            g.rate() / b.rate(),
            b.per_million(b.broker_cpu),
            g.per_million(g.broker_cpu),
        );
        per_round.push(g.rate() / b.rate());
        base.add(b);
        gw.add(g);
    }
    // Last, so the many records it writes do not weigh on the comparison.
    eprintln!(
        "reference: bare producer without headers, {:.1} s",
        base_slice.as_secs_f64()
    );
    let bare = baseline(
        &producer,
        &broker_pid,
        baseline_topic,
        &events,
        base_slice,
        false,
        window,
        &mut Vec::new(),
    )
    .await?;
    // Everything it sent is acknowledged (the baseline drains); gone before the broker stops.
    drop(producer);
    let Measured {
        mut latencies,
        errors,
        rss_samples,
        load_cpu,
    } = measured;
    let peak_kb = status_kb(pid, "VmHWM:");
    let rss_end = status_kb(pid, "VmRSS:");
    gateway.stop().await;
    broker.stop().await;

    latencies.sort_unstable();
    base_latencies.sort_unstable();
    let pct = |p: f64| millis_at(&latencies, p);
    let base_pct = |p: f64| millis_at(&base_latencies, p);
    let properties: String = args
        .producer_properties
        .iter()
        .map(|(name, value)| format!(" --producer-property {name}={value}"))
        .collect();
    let window_arg = args
        .baseline_window
        .map(|w| format!(" --baseline-window {w}"))
        .unwrap_or_default();
    let keyed = if args.idempotency_keys {
        " --idempotency-keys"
    } else {
        ""
    };
    let threads_arg = args
        .gateway_worker_threads
        .map(|n| format!(" --gateway-worker-threads {n}"))
        .unwrap_or_default();
    let command = format!(
        "streamlake-bench gateway --duration-secs {} --warmup-secs {} --rounds {} --concurrency {} --batch-size {}{window_arg}{properties}{keyed}{threads_arg}",
        args.duration_secs, args.warmup_secs, rounds, args.concurrency, args.batch_size
    );
    let gateway_label = if args.idempotency_keys {
        ", each with its own Idempotency-Key"
    } else {
        ""
    };
    let report = format!(
        "### Gateway vs bare producer ({})\n\n\
         `{command}` — Apache Kafka {} (one node) on loopback, 2 cores shared by broker, gateway and load generator; events of {avg} bytes, 1,000 keys; schema validation on.\n\n\
         | | events/s | CPU s per 1M events | broker CPU s per 1M | p50 request | p99 request | peak RSS |\n|---|---|---|---|---|---|---|\n\
         | bare librdkafka producer, the gateway's 7 headers per record, up to {window} awaiting acknowledgement (baseline, {:.0} s) | {:.0} | {:.1} | {:.1} | {:.1} ms | {:.1} ms | |\n\
         | bare librdkafka producer, key and payload only (reference, {:.0} s) | {:.0} | {:.1} | {:.1} | | | |\n\
         | gateway, {} clients x {} events/request{gateway_label} ({:.0} s) | {:.0} | {:.1} | {:.1} | {:.1} ms | {:.1} ms | {} MiB |\n\n\
         Latencies: the gateway's per request, the baseline's per record (produce to acknowledgement). The HTTP load generator (this process) used {:.1} CPU s per 1M events on the same cores.\n\n\
         Ratio gateway / baseline: **{:.2}** (per round: {}; against the headerless reference, measured once after the rounds: {:.2}). The gateway and the baseline took turns over {} round(s), alternating which went first. Gateway RSS: {} MiB at start of load, {} MiB at the end, {} MiB peak during load (sampled each second over {:.0} s of load; VmHWM {} MiB). Failed requests: {errors}.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        streamlake_broker::KAFKA_VERSION,
        base.seconds,
        base.rate(),
        base.cpu_per_million(),
        base.per_million(base.broker_cpu),
        base_pct(0.50),
        base_pct(0.99),
        bare.seconds,
        bare.rate(),
        bare.cpu_per_million(),
        bare.per_million(bare.broker_cpu),
        args.concurrency,
        args.batch_size,
        gw.seconds,
        gw.rate(),
        gw.cpu_per_million(),
        gw.per_million(gw.broker_cpu),
        pct(0.50),
        pct(0.99),
        peak_kb / 1024,
        gw.per_million(load_cpu),
        gw.rate() / base.rate(),
        per_round
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        gw.rate() / bare.rate(),
        per_round.len(),
        rss_start / 1024,
        rss_end / 1024,
        rss_samples.iter().max().copied().unwrap_or(0) / 1024,
        gw.seconds,
        peak_kb / 1024,
    );
    publish(&report, args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
