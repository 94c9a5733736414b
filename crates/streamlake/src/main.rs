//! `streamlake`: the one binary. Arguments are parsed in [`args`], each subcommand lives in
//! [`commands`], and `main` only wires logging and dispatch.

mod args;
mod commands;
mod output;

use clap::Parser;

// The gateway allocates per event (parsed JSON, headers, responses); mimalloc keeps that cheap
// under concurrency (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
