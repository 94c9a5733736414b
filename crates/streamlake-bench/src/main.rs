//! `streamlake-bench`: StreamLake's benchmarks, each against a baseline measured in the same
//! run on the same broker, with the ratio as the result (docs/BENCHMARKS.md). Kept out of the
//! `streamlake` binary users run; the gateway bench starts that binary as its gateway process.
//!
//! - `gateway`: the HTTP gateway against a bare librdkafka producer writing the same records.
//! - `pipeline`: the processor against a bare consume → produce loop; sinks against a bare
//!   consume.
//! - `latency`: HTTP acknowledgement to the record in the clean topic at a steady rate.
//! - `overload`: the gateway's memory when offered more than it can take, against the same
//!   process idle.

mod common;
mod gateway;
mod latency;
mod overload;
mod pipeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

// As in the `streamlake` binary, so the gateway and the baseline allocate alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// StreamLake's benchmarks, each against a baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "streamlake-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The HTTP gateway (schema validation on) against a bare librdkafka producer writing the
    /// same events to the same broker. Starts its own one-node Kafka and gateway process.
    Gateway(BenchGatewayArgs),
    /// The processor against a bare consume -> produce loop over the same records, and each
    /// sink against a bare consume of the clean topic. Starts its own one-node Kafka.
    Pipeline(BenchPipelineArgs),
    /// End-to-end latency at a steady rate: HTTP acknowledgement to the record in the clean
    /// topic, through the gateway and the air-quality processor. Starts its own one-node Kafka.
    Latency(BenchLatencyArgs),
    /// The gateway's memory under overload (many connections, large batches) against the same
    /// process idle, for each `gateway.max_in_flight_bytes` and producer queue size given. Starts its own one-node Kafka.
    Overload(BenchOverloadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchOverloadArgs {
    /// Concurrent connections, each sending its next request as soon as the last was answered.
    #[arg(long, default_value_t = 200)]
    pub(crate) connections: usize,
    /// Events per request (a JSON array of about 250-byte events).
    #[arg(long, default_value_t = 1000)]
    pub(crate) batch_size: usize,
    /// Seconds of overload per setting.
    #[arg(long, default_value_t = 30)]
    pub(crate) duration_secs: u64,
    /// `gateway.max_in_flight_bytes` in MiB, one run per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64,16")]
    pub(crate) in_flight_mib: Vec<usize>,
    /// The gateway producer's `queue.buffering.max.messages`, one run per value and
    /// `--in-flight-mib` value (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,20000")]
    pub(crate) queue_messages: Vec<usize>,
    /// Append the report (markdown) to this file, e.g. docs/BENCHMARKS.md.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// The `streamlake` binary to run the gateway with. Default: the one beside this bench.
    #[arg(long)]
    pub(crate) streamlake: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchLatencyArgs {
    /// Events per second offered to the gateway.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) rate: u64,
    /// Events per request (a JSON array).
    #[arg(long, default_value_t = 10)]
    pub(crate) batch_size: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 30)]
    pub(crate) duration_secs: u64,
    /// Least seconds of load before the measurement (the processor joins its group meanwhile);
    /// the warm-up goes on until the processor keeps up, at most two minutes.
    #[arg(long, default_value_t = 5)]
    pub(crate) warmup_secs: u64,
    /// The pipeline's `batch_max_wait_ms` (the example's, 100, when absent).
    #[arg(long)]
    pub(crate) batch_max_wait_ms: Option<u64>,
    /// The pipeline's `commit_interval_ms` (the example's, 100, when absent).
    #[arg(long)]
    pub(crate) commit_interval_ms: Option<u64>,
    /// The PostgreSQL sink's `batch_max_wait_ms` (200, the default, when absent).
    #[arg(long)]
    pub(crate) sink_batch_max_wait_ms: Option<u64>,
    /// Run the processor at-least-once (`exactly_once = false`): its outputs are visible once
    /// acknowledged, without waiting for a transaction's commit.
    #[arg(long)]
    pub(crate) at_least_once: bool,
    /// The example's PostgreSQL sink, whose rows are timed too (tables go to a schema of the
    /// run's own, dropped at the end).
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    /// Append the report (markdown) to this file, e.g. docs/BENCHMARKS.md.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
}

/// Where the PostgreSQL sink writes, or that it is left out.
#[derive(Debug, Args)]
pub(crate) struct PostgresArgs {
    /// PostgreSQL for the PostgreSQL sink.
    #[arg(
        long,
        default_value = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    pub(crate) postgres_url: String,
    /// Leave the PostgreSQL sink out.
    #[arg(long)]
    pub(crate) skip_postgres: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchPipelineArgs {
    /// Records pushed through each stage.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) records: u64,
    /// The PostgreSQL sink (tables go to schema `streamlake_bench`).
    #[command(flatten)]
    pub(crate) postgres: PostgresArgs,
    /// Also run the exactly-once processor with these `commit_interval_ms` (and a
    /// `batch_max_wait_ms` of half as much), e.g. 20: what shorter commits cost.
    #[arg(long, value_delimiter = ',')]
    pub(crate) commit_interval_ms: Vec<u64>,
    /// Append the report (markdown) to this file, e.g. docs/BENCHMARKS.md.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchGatewayArgs {
    /// Seconds each side is measured in all.
    #[arg(long, default_value_t = 40)]
    pub(crate) duration_secs: u64,
    /// Seconds of load before the rounds, half on each side, not measured (the broker's JVM
    /// warms up meanwhile).
    #[arg(long, default_value_t = 10)]
    pub(crate) warmup_secs: u64,
    /// The sides take turns this many times, each for its share of the duration.
    #[arg(long, default_value_t = 4)]
    pub(crate) rounds: u32,
    /// Concurrent keep-alive HTTP clients.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Events per request (a JSON array).
    #[arg(long, default_value_t = 100)]
    pub(crate) batch_size: usize,
    /// Records the baseline may have awaiting acknowledgement at once. Default: concurrency x
    /// batch size, as many as the gateway's clients can have in flight (with one-event
    /// requests, the same round trip as theirs).
    #[arg(long)]
    pub(crate) baseline_window: Option<usize>,
    /// A librdkafka producer property for both the baseline and the gateway, e.g.
    /// `linger.ms=1` (repeatable).
    #[arg(long = "producer-property", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub(crate) producer_properties: Vec<(String, String)>,
    /// Every request carries an `Idempotency-Key` of its own, as a client that retries
    /// safely sends them.
    #[arg(long)]
    pub(crate) idempotency_keys: bool,
    /// The gateway process's `--worker-threads` (default: its own, one per CPU core but one).
    #[arg(long)]
    pub(crate) gateway_worker_threads: Option<u16>,
    /// Append the report (markdown) to this file, e.g. docs/BENCHMARKS.md.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// The `streamlake` binary to run the gateway with. Default: the one beside this bench.
    #[arg(long)]
    pub(crate) streamlake: Option<PathBuf>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, e.g. linger.ms=1, got {s:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        BenchCommand::Gateway(args) => gateway::run(args).await,
        BenchCommand::Pipeline(args) => pipeline::run(args).await,
        BenchCommand::Latency(args) => latency::run(args).await,
        BenchCommand::Overload(args) => overload::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
