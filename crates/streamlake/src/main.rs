//! `streamlake`: the one binary. Arguments are parsed in [`args`], each subcommand lives in
//! [`commands`], and `main` only wires logging and dispatch.

mod args;
mod commands;
mod output;

use std::time::Duration;

use clap::Parser;

// The gateway allocates per event (parsed JSON, headers, responses), and librdkafka per message
// and header; mimalloc keeps both cheap under concurrency. The workspace builds mimalloc with
// `override`, so C's malloc/free (librdkafka's) are mimalloc's too (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the process waits at exit for work still on blocking threads. Every stage has
/// given up on its blocking calls at its own deadline by then (a commit or a flush to a broker
/// that is gone); what is left is abandoned, not waited for.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Worker threads unless `--worker-threads` says otherwise: one per core but one, at least one.
/// librdkafka runs its threads beside the pool (one per broker connection: the produce
/// requests, their compression, the broker's responses; a quarter of the gateway's CPU on
/// batches); a pool of one per core would share every core with them, and pay for waking
/// threads that find nothing to do. Measured on two cores (docs/GATEWAY.md, "Threads").
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_sub(1)
        .max(1)
}

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.verbose);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(
        cli.worker_threads
            .map_or_else(default_worker_threads, usize::from),
    );
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::debug!(
        worker_threads = runtime.metrics().num_workers(),
        "async runtime started"
    );
    let code = runtime.block_on(async {
        match commands::run(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {}", report(&e));
                std::process::ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}

/// The error and its causes on one line, each said once: many error types already put their
/// cause in their own message, and `{:#}` would then print it twice.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info,rdkafka=warn",
        1 => "debug,rdkafka=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct ReadError {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(ReadError {
            path: "a.toml",
            source: io,
        })
        .context("loading the configuration");
        assert_eq!(
            report(&e),
            "loading the configuration: cannot read a.toml: no such file"
        );
        let plain = anyhow::anyhow!("no such file").context("reading a.toml");
        assert_eq!(report(&plain), "reading a.toml: no such file");
    }
}
