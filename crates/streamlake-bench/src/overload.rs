//! `streamlake-bench overload`: the gateway's memory when offered more than it can take. Many
//! connections send large batches as fast as they are answered; the gateway's RSS is sampled
//! each second. The baseline is the same process idle, measured in the same run, and the run is
//! repeated for each `gateway.max_in_flight_bytes` given, so the report shows how memory under
//! overload follows the settings that bound it, and what the answers were (accepted, 429, 503).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;

use streamlake_kafka::{provision, Admin};

use crate::common::{events, publish, start_broker, status_kb, streamlake_binary, GatewayProcess};
use crate::BenchOverloadArgs;

const SCHEMA: &str =
    include_str!("../../../examples/air-quality/schemas/tenant-a-air-quality.json");
const KEY: &str = "bench-key";

/// What one setting measured.
struct Run {
    in_flight_mib: usize,
    queue_messages: usize,
    idle_kb: u64,
    peak_kb: u64,
    after_kb: u64,
    /// Answers by status code.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error).
    unanswered: u64,
    accepted_events: u64,
    seconds: f64,
}

pub(crate) async fn run(args: &BenchOverloadArgs) -> anyhow::Result<ExitCode> {
    let streamlake = streamlake_binary(args.streamlake.as_deref())?;
    if args.connections == 0
        || args.batch_size == 0
        || args.in_flight_mib.is_empty()
        || args.queue_messages.is_empty()
    {
        bail!(
            "--connections, --batch-size, --in-flight-mib and --queue-messages must be at least 1"
        );
    }
    let dir = tempfile::tempdir()?;
    let (broker, settings) = start_broker(dir.path()).await?;
    std::fs::write(dir.path().join("schema.json"), SCHEMA)?;
    let body = batch_body(args.batch_size);
    let mut runs = Vec::new();
    let settings_tried = args
        .queue_messages
        .iter()
        .flat_map(|&q| args.in_flight_mib.iter().map(move |&mib| (mib, q)));
    for (mib, queue) in settings_tried {
        let http = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = dir.path().join(format!("overload-{mib}-{queue}.toml"));
        let max_body = (mib << 20).min(1 << 20);
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbootstrap_servers = \"{}\"\n[kafka.producer]\n\"queue.buffering.max.messages\" = \"{queue}\"\n[http]\nlisten = \"{http}\"\nmax_connections = {}\n[gateway]\nmax_in_flight_per_tenant = {}\nmax_in_flight_bytes = {}\nmax_body_bytes = {max_body}\n[topic_defaults]\npartitions = 6\n[tenants.bench]\ndev_api_key = \"{KEY}\"\n[tenants.bench.datasets.air-quality]\nschema = \"schema.json\"\nkey = \"/sensor_id\"\n",
                broker.bootstrap_servers(),
                args.connections * 2,
                args.connections,
                mib << 20,
            ),
        )?;
        let loaded = streamlake_config::load(
            &config,
            &[&streamlake_sinks::SINKS, &streamlake_pipeline::STEPS],
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        provision(&Admin::new(&settings)?, &loaded.declared_topics()).await;
        let mut gateway =
            GatewayProcess::start(&streamlake, dir.path(), &config, http, None).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_kb = status_kb(gateway.pid, "VmRSS:");
        eprintln!(
            "gateway.max_in_flight_bytes = {mib} MiB, queue.buffering.max.messages = {queue}: {} connections x {} events ({} KiB) for {} s",
            args.connections,
            args.batch_size,
            body.len() / 1024,
            args.duration_secs
        );
        let url = format!("http://{http}/v1/tenants/bench/datasets/air-quality/events");
        let mut run = offer(
            &url,
            &body,
            args,
            gateway.pid,
            Duration::from_secs(args.duration_secs),
        )
        .await;
        run.in_flight_mib = mib;
        run.queue_messages = queue;
        run.idle_kb = idle_kb;
        tokio::time::sleep(Duration::from_secs(10)).await;
        run.after_kb = status_kb(gateway.pid, "VmRSS:");
        run.peak_kb = run.peak_kb.max(status_kb(gateway.pid, "VmHWM:"));
        eprintln!(
            "  idle {} MiB, peak {} MiB, 10 s after {} MiB; answers {:?}, unanswered {}",
            run.idle_kb / 1024,
            run.peak_kb / 1024,
            run.after_kb / 1024,
            run.statuses,
            run.unanswered
        );
        gateway.stop().await;
        runs.push(run);
    }
    broker.stop().await;
    publish(&report(args, body.len(), &runs), args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// One request's body: a JSON array of `n` air-quality events.
fn batch_body(n: usize) -> Bytes {
    let mut b = b"[".to_vec();
    for (i, (_, e)) in events(n).iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(e);
    }
    b.push(b']');
    Bytes::from(b)
}

/// Sends `body` over `args.connections` connections, each as soon as the last was answered,
/// for `duration`, sampling the gateway's RSS each second.
async fn offer(
    url: &str,
    body: &Bytes,
    args: &BenchOverloadArgs,
    pid: u32,
    duration: Duration,
) -> Run {
    let start = Instant::now();
    let url: Arc<str> = Arc::from(url);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let client = reqwest::Client::new();
        let url = Arc::clone(&url);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut unanswered = 0;
            while start.elapsed() < duration {
                let r = client
                    .post(&*url)
                    .bearer_auth(KEY)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        let _ = resp.bytes().await;
                        *statuses.entry(status).or_default() += 1;
                        // A client that honours Retry-After would wait; an overloading one
                        // does not, but does not spin either.
                        if retry.is_some() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Err(_) => {
                        unanswered += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            (statuses, unanswered)
        }));
    }
    let mut peak_kb = 0;
    while start.elapsed() < duration {
        peak_kb = peak_kb.max(status_kb(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut run = Run {
        in_flight_mib: 0,
        queue_messages: 0,
        idle_kb: 0,
        peak_kb,
        after_kb: 0,
        statuses: BTreeMap::new(),
        unanswered: 0,
        accepted_events: 0,
        seconds: 0.0,
    };
    for t in tasks {
        if let Ok((statuses, unanswered)) = t.await {
            for (s, n) in statuses {
                *run.statuses.entry(s).or_default() += n;
            }
            run.unanswered += unanswered;
        }
    }
    run.seconds = start.elapsed().as_secs_f64();
    run.accepted_events = run.statuses.get(&200).copied().unwrap_or(0) * args.batch_size as u64;
    run
}

fn report(args: &BenchOverloadArgs, body_bytes: usize, runs: &[Run]) -> String {
    let mut rows = String::new();
    for r in runs {
        let others: Vec<String> = r
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(s, n)| format!("{n} × {s}"))
            .collect();
        rows.push_str(&format!(
            "| {} MiB | {} | {} MiB | {} MiB | **{:.1}** | {} MiB | {:.0} | {} | {} |\n",
            r.in_flight_mib,
            r.queue_messages,
            r.idle_kb / 1024,
            r.peak_kb / 1024,
            r.peak_kb as f64 / r.idle_kb.max(1) as f64,
            r.after_kb / 1024,
            r.accepted_events as f64 / r.seconds,
            r.statuses.get(&200).copied().unwrap_or(0),
            if others.is_empty() && r.unanswered == 0 {
                "none".to_owned()
            } else {
                format!("{}; {} unanswered", others.join(", "), r.unanswered)
            },
        ));
    }
    format!(
        "### Gateway memory under overload ({})\n\n\
         `streamlake-bench overload --connections {} --batch-size {} --duration-secs {} --in-flight-mib {} --queue-messages {}` — Apache Kafka {} (one node) on loopback, 2 cores shared by broker, gateway and load generator; each request a JSON array of {} events ({} KiB), sent again as soon as the last was answered (after 100 ms when it was refused with Retry-After). The baseline is the same gateway process idle, 2 s after start; the ratio is peak RSS over it. The producer queue is bounded by `queue.buffering.max.messages` (per row) and `queue.buffering.max.kbytes` (the gateway's 128 MiB).\n\n\
         | gateway.max_in_flight_bytes | queue.buffering.max.messages | idle RSS (baseline) | peak RSS under overload | peak / idle | RSS 10 s after | events/s accepted | requests 200 | other answers |\n|---|---|---|---|---|---|---|---|---|\n{rows}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        args.connections,
        args.batch_size,
        args.duration_secs,
        args.in_flight_mib
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.queue_messages
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        streamlake_broker::KAFKA_VERSION,
        args.batch_size,
        body_bytes / 1024,
    )
}
