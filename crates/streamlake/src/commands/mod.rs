//! Subcommands. Each maps its arguments onto library calls and formats the answer; none holds
//! platform logic of its own.

mod config;
mod console;
mod consume;
mod dlq;
mod freshness;
mod gateway;
mod generate;
mod groups;
mod lab;
mod metrics;
mod partition;
mod produce;
mod running;
mod schema;
mod stages;
mod topics;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use streamlake_config::{ComponentKinds, Config, ConfigErrors};
use streamlake_kafka::KafkaSettings;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Up(args) => up::run(&cli, args).await,
        Command::Broker(args) => up::broker(&cli, args).await,
        Command::Gateway => gateway::run(&connect(&cli).await?).await,
        Command::Config(cmd) => Ok(config::run(cmd)),
        Command::Schema(cmd) => schema::run(cmd),
        Command::Keys(cmd) => keys(cmd),
        Command::Topics(cmd) => topics::run(&connect(&cli).await?, cmd).await,
        Command::Groups(cmd) => groups::run(&connect(&cli).await?, cmd).await,
        Command::Freshness(out) => freshness::run(&connect(&cli).await?, out).await,
        Command::Produce(args) => produce::run(&connect(&cli).await?, args).await,
        Command::Consume(args) => consume::run(&connect(&cli).await?, args).await,
        Command::Partition(args) => partition::run(&connect(&cli).await?, args).await,
        // Failover kills brokers: it runs a cluster of its own, not the configured one.
        Command::Lab(cmd @ crate::args::LabCommand::Failover { .. }) => lab::failover(cmd).await,
        // So does the crash lab, which kills `up` itself.
        Command::Lab(cmd @ crate::args::LabCommand::Crash { .. }) => lab::crash(cmd).await,
        Command::Lab(cmd) => lab::run(&connect(&cli).await?, cmd).await,
        Command::Console(args) => console::run(&connect(&cli).await?, args).await,
        Command::Tenants(args) => dlq::tenants(&connect(&cli).await?, args).await,
        Command::Dlq(cmd) => dlq::run(&connect(&cli).await?, cmd).await,
        Command::Generate(args) => generate::run(&connect(&cli).await?, args).await,
        Command::Process(args) => stages::process(&connect(&cli).await?, args).await,
        Command::Sink(args) => stages::sink(&connect(&cli).await?, args).await,
    }
}

/// `streamlake keys new|hash`.
fn keys(cmd: &crate::args::KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        crate::args::KeysCommand::New { name } => {
            let key = format!(
                "sl_{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            println!("key (give it to the tenant; it is not stored anywhere): {key}");
            println!("entry for [tenants.NAME] api_keys:");
            println!(
                "  {{ name = {name:?}, sha256 = \"{}\" }}",
                streamlake_ingest::hash_key(&key)
            );
        }
        crate::args::KeysCommand::Hash => {
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .context("reading the key from standard input")?;
            let key = key.trim();
            anyhow::ensure!(!key.is_empty(), "no key on standard input");
            println!("{}", streamlake_ingest::hash_key(key));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration file in effect: `--config`, else `./streamlake.toml` if present.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config.clone().or_else(|| {
        let default = Path::new("streamlake.toml");
        default.is_file().then(|| default.to_path_buf())
    })
}

/// The registries of components that own their tables: the loader checks those tables with them.
pub(crate) const COMPONENTS: &[&dyn ComponentKinds] =
    &[&streamlake_sinks::SINKS, &streamlake_pipeline::STEPS];

/// Loads the configuration, or the built-in defaults when no file is in effect.
pub(crate) fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let loaded: Result<Config, ConfigErrors> = match config_path(cli) {
        Some(path) => streamlake_config::load(&path, COMPONENTS),
        None => streamlake_config::load_defaults(COMPONENTS),
    };
    loaded.map_err(|errors| anyhow::anyhow!("{errors}"))
}

/// A configuration with the cluster to talk to.
pub(crate) struct Connection {
    pub(crate) config: Config,
    pub(crate) settings: KafkaSettings,
}

/// Resolves the cluster for commands that talk to a running platform: `--bootstrap-servers`,
/// else `kafka.bootstrap_servers`, else the managed broker of a running `streamlake up` or `streamlake broker`.
async fn connect(cli: &Cli) -> anyhow::Result<Connection> {
    // Without a configuration file in effect, the `up` running from this directory.
    let running = config_path(cli).is_none().then(running::find).flatten();
    let config = match &running {
        Some(r) => {
            eprintln!(
                "talking to the running streamlake up (pid {}, {}, HTTP {}); pass --config to choose another",
                r.pid,
                r.config
                    .as_ref()
                    .map_or_else(|| "built-in configuration".to_owned(), |c| c.display().to_string()),
                r.http
            );
            match &r.config {
                Some(path) => streamlake_config::load(path, COMPONENTS),
                None => streamlake_config::load_defaults(COMPONENTS),
            }
            .map_err(|errors| anyhow::anyhow!("{errors}"))?
        }
        None => load_config(cli)?,
    };
    let bootstrap = cli
        .bootstrap_servers
        .clone()
        .or_else(|| config.kafka.bootstrap_servers.clone())
        .or_else(|| running.as_ref().map(|r| r.bootstrap_servers.clone()))
        .unwrap_or_else(|| {
            streamlake_broker::ClusterLayout::new(&config.broker, &config.data_dir)
                .bootstrap_servers()
        });
    if cli.bootstrap_servers.is_none() && running.is_none() && config.uses_embedded_broker() {
        let addr = config.broker.listen;
        let reachable = tokio::task::spawn_blocking(move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        })
        .await
        .context("checking the managed broker")?;
        if !reachable {
            bail!(
                "no broker answers at {addr}: start the platform with `streamlake up` (or the broker alone with `streamlake broker`), or pass --bootstrap-servers / set kafka.bootstrap_servers"
            );
        }
    }
    let settings = KafkaSettings::from_config(&config, bootstrap);
    Ok(Connection { config, settings })
}
