//! `streamlake up`: everything on one machine. Order of start: the managed Kafka (when no
//! cluster is configured), topic provisioning, the HTTP gateway, the enabled pipelines and
//! sinks; then wait for SIGINT/SIGTERM and stop in reverse order, the broker last.
//! `streamlake broker` is the first step alone.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use streamlake_broker::ManagedKafka;
use streamlake_config::Config;
use streamlake_core::Health;
use streamlake_kafka::{provision, Admin, KafkaSettings, ProvisionOutcome};
use tokio_util::sync::CancellationToken;

use super::metrics::StageMetrics;
use crate::args::{BrokerArgs, Cli, UpArgs};

pub(crate) async fn run(cli: &Cli, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let config = configure(cli, args)?;
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let health = Health::new();

    let broker = match (&cli.bootstrap_servers, config.uses_embedded_broker()) {
        (None, true) => Some(start_broker(&config, &health).await?),
        _ => None,
    };
    let bootstrap = cli
        .bootstrap_servers
        .clone()
        .or_else(|| config.kafka.bootstrap_servers.clone())
        .or_else(|| broker.as_ref().map(ManagedKafka::bootstrap_servers))
        .unwrap_or_else(|| config.broker.listen.to_string());
    let settings = KafkaSettings::from_config(&config, bootstrap.clone());
    // For the CLI in another terminal: where this instance's configuration and endpoints are.
    let _announced = super::running::announce(
        super::config_path(cli).as_deref(),
        &config.data_dir,
        &bootstrap,
        config.http.listen,
    );

    let reload = super::config_path(cli);
    let result = serve(&config, reload, &settings, &health, &shutdown, started).await;
    // The stages have stopped and committed: only now may the broker go.
    if let Some(broker) = broker {
        broker.stop().await;
    }
    result?;
    tracing::info!("StreamLake stopped");
    Ok(ExitCode::SUCCESS)
}

/// `streamlake broker`: the managed Kafka alone, until a signal.
pub(crate) async fn broker(cli: &Cli, args: &BrokerArgs) -> anyhow::Result<ExitCode> {
    let mut config = configure(cli, &args.up)?;
    if let Some(listen) = args.listen {
        config.broker.listen = listen;
    }
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let broker = start_broker(&config, &Health::new()).await?;
    println!("{}", broker.bootstrap_servers());
    tracing::info!(bootstrap = %broker.bootstrap_servers(), "Kafka is up; press Ctrl-C to stop");
    shutdown.cancelled().await;
    broker.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// The configuration with the command line's overrides.
fn configure(cli: &Cli, args: &UpArgs) -> anyhow::Result<Config> {
    let mut config = super::load_config(cli)?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(n) = args.brokers {
        anyhow::ensure!(
            n == 1 || n == 3,
            "--brokers is {n}; the managed broker runs 1 node, or 3 for a replicated cluster"
        );
        config.broker.nodes = n;
    }
    Ok(config)
}

async fn start_broker(config: &Config, health: &Health) -> anyhow::Result<ManagedKafka> {
    tracing::info!(
        data_dir = %config.data_dir.display(),
        listen = %config.broker.listen,
        nodes = config.broker.nodes,
        "starting the managed Kafka broker"
    );
    ManagedKafka::start(&config.broker, &config.data_dir, health.clone())
        .await
        .context("starting the managed Kafka broker")
}

async fn serve(
    config: &Config,
    reload: Option<std::path::PathBuf>,
    settings: &KafkaSettings,
    health: &Health,
    shutdown: &CancellationToken,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let admin = Admin::new(settings)?;
    let reports = provision(&admin, &config.declared_topics()).await;
    let count = |f: fn(&ProvisionOutcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let created = count(|o| matches!(o, ProvisionOutcome::Created));
    let existing = count(|o| matches!(o, ProvisionOutcome::Existing));
    let drift = count(|o| matches!(o, ProvisionOutcome::Drift { .. }));
    let failed = count(|o| matches!(o, ProvisionOutcome::Failed { .. }));
    tracing::info!(created, existing, drift, failed, "topics provisioned");
    for (id, tenant) in &config.tenants {
        for ds in tenant.datasets.values() {
            tracing::info!(tenant = %id, dataset = %ds.id, raw = %ds.raw_topic, clean = %ds.clean_topic, dlq = %tenant.dlq_topic, "dataset ready");
        }
    }
    // Reading samples of the raw topics takes a moment; it must not hold up the start.
    let raw_topics: Vec<String> = config
        .tenants
        .values()
        .flat_map(|t| t.datasets.values().map(|d| d.raw_topic.clone()))
        .collect();
    let key_settings = settings.clone();
    tokio::spawn(async move {
        for topic in raw_topics {
            key_guard(&key_settings, &topic).await;
        }
    });
    // One gateway (schemas compiled once, one producer) for HTTP, the console's replays and
    // the sources.
    let ingest =
        Arc::new(streamlake_gateway::Gateway::new(config, settings)?.with_health(health.clone()));
    ingest.announce(config);
    let ops = super::console::ops(config, settings, Arc::clone(&ingest), shutdown)?;
    let gateway = super::gateway::start(
        config,
        Arc::clone(&ingest),
        streamlake_console::router(Arc::clone(&ops)),
        shutdown.clone(),
    )
    .await?;
    super::console::announce(config, &ops, config.http.listen);
    tokio::spawn(reload_keys_on_sighup(
        reload,
        Arc::clone(&ingest),
        Arc::clone(&ops),
        shutdown.clone(),
    ));
    // Processors, sinks, sources and their groups' lag, on the gateway's /metrics.
    let metrics = StageMetrics::new();
    metrics.freshness(Arc::clone(&ops));
    {
        let metrics = Arc::clone(&metrics);
        ingest.serve_metrics(metrics.registry(), move || metrics.refresh());
    }
    tokio::spawn(Arc::clone(&metrics).sample_lag(
        settings.clone(),
        stage_groups(config),
        shutdown.clone(),
    ));
    let instance = instance_id(&config.data_dir)?;
    let stages = super::stages::start_all(
        &Arc::new(config.clone()),
        settings,
        &instance,
        health,
        &metrics,
        shutdown,
    );
    let sources = start_sources(config, &ingest, &metrics, shutdown);
    tracing::info!(
        pipelines = config.pipelines.values().filter(|p| p.enabled).count(),
        sinks = config.sinks.values().filter(|s| s.enabled).count(),
        "processors and sinks started"
    );
    tracing::info!(
        bootstrap = %settings.bootstrap_servers,
        http = %config.http.listen,
        startup_ms = started.elapsed().as_millis() as u64,
        "StreamLake is up; press Ctrl-C to stop"
    );
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    // The gateway stops accepting, finishes in-flight requests and flushes before the broker stops.
    gateway.await??;
    for source in sources {
        if let Err(e) = source.await {
            tracing::error!(error = %e, "a source task failed");
        }
    }
    // Processors and sinks finish their batch, flush and commit.
    for stage in stages {
        if let Err(e) = stage.await {
            tracing::error!(error = %e, "a pipeline or sink task failed");
        }
    }
    Ok(())
}

/// On SIGHUP, reads the configuration file again and replaces the tenants' API keys with its
/// own (a key removed is refused at once); anything else that changed waits for a restart. A
/// file that does not load keeps the keys in effect and says why.
async fn reload_keys_on_sighup(
    path: Option<std::path::PathBuf>,
    gateway: Arc<streamlake_gateway::Gateway>,
    ops: Arc<streamlake_ops::Ops>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: API keys reload only with a restart");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        let loaded = match &path {
            Some(p) => streamlake_config::load(p, super::COMPONENTS),
            None => streamlake_config::load_defaults(super::COMPONENTS),
        };
        match loaded {
            Ok(config) => {
                let counts = gateway.reload_keys(&config);
                ops.reload_keys(&config);
                for (tenant, keys) in counts {
                    tracing::info!(%tenant, keys, "API keys reloaded");
                }
                tracing::info!("SIGHUP: API keys reloaded (tenants' console sessions ended); other configuration changes take a restart");
            }
            Err(errors) => {
                tracing::error!(%errors, "SIGHUP: the configuration does not load; the API keys in effect stay")
            }
        }
    }
}

/// This `up`'s name in its stages' consumer groups: read from `{data_dir}/instance-id`, created
/// on the first start. The same data directory restarts as the same members.
fn instance_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("instance-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))?;
            let id = format!("up-{}", uuid::Uuid::now_v7().simple());
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            Ok(id)
        }
    }
}

/// The consumer group and topics of every enabled pipeline and sink, for the lag metrics.
fn stage_groups(config: &Config) -> Vec<(String, Vec<String>)> {
    let pipelines = config.pipelines.values().filter(|p| p.enabled).map(|p| {
        let topics = p
            .datasets
            .iter()
            .filter_map(|d| config.dataset(d).map(|(_, ds)| ds.raw_topic.clone()))
            .collect();
        (p.group.clone(), topics)
    });
    let sinks = config.sinks.values().filter(|s| s.enabled).map(|s| {
        (
            s.group.clone(),
            streamlake_sinks::sink::topics_of(config, s),
        )
    });
    pipelines.chain(sinks).collect()
}

/// Starts the enabled generators, pollers and MQTT ingestion, sharing one gateway (schemas
/// compiled once, one producer).
fn start_sources(
    config: &Config,
    gateway: &Arc<streamlake_gateway::Gateway>,
    metrics: &StageMetrics,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let generators: Vec<_> = config
        .generators
        .iter()
        .filter(|(_, (g, _))| g.enabled)
        .collect();
    let pollers: Vec<_> = config
        .pollers
        .values()
        .filter(|p| p.config.enabled)
        .collect();
    if generators.is_empty() && pollers.is_empty() && !config.mqtt.enabled {
        return Vec::new();
    }
    let ingestor = Arc::clone(gateway.ingestor());
    let mut tasks = Vec::new();
    for (name, (cfg, target)) in generators {
        let (ingestor, name, cfg, target, shutdown) = (
            ingestor.clone(),
            name.clone(),
            cfg.clone(),
            target.clone(),
            shutdown.clone(),
        );
        let stats = Arc::new(streamlake_sources::SourceStats::default());
        metrics.source(&format!("generator {name}"), &stats);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = streamlake_sources::run_generator(
                &name, &cfg, &target, &ingestor, &stats, &shutdown,
            )
            .await
            {
                tracing::error!(generator = %name, error = %e, "generator stopped with an error");
            }
        }));
    }
    for poller in pollers {
        let (ingestor, poller, shutdown) = (ingestor.clone(), poller.clone(), shutdown.clone());
        let stats = Arc::new(streamlake_sources::poller::PollerStats::default());
        metrics.poller(&format!("poller {}", poller.name), &stats);
        tasks.push(tokio::spawn(async move {
            streamlake_sources::poller::run_poller(&poller, ingestor, stats, shutdown).await;
        }));
    }
    if config.mqtt.enabled {
        let (ingestor, mqtt, shutdown) = (ingestor.clone(), config.mqtt.clone(), shutdown.clone());
        let stats = Arc::new(streamlake_sources::SourceStats::default());
        metrics.source("mqtt", &stats);
        tasks.push(tokio::spawn(async move {
            streamlake_sources::mqtt::run_mqtt(&mqtt, ingestor, stats, shutdown).await;
        }));
    }
    // Every source waited for its acknowledgements; the flush only makes sure of it.
    let (shutdown, gateway) = (shutdown.clone(), Arc::clone(gateway));
    tasks.push(tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = tokio::task::spawn_blocking(move || gateway.flush()).await;
    }));
    tasks
}

/// At start-up: how the records already in a raw topic spread over its partitions and
/// keys (a sample of 2,000), with a warning for a constant key or too few keys.
async fn key_guard(settings: &KafkaSettings, topic: &str) {
    match streamlake_kafka::distribution(settings, topic, 2_000, 3).await {
        Ok(d) if d.sampled > 0 => {
            let per_partition: Vec<i64> = d.partitions.iter().map(|p| p.records).collect();
            tracing::info!(%topic, ?per_partition, skew = format!("{:.2}", d.skew), distinct_keys = d.distinct_keys, sampled = d.sampled, "key distribution");
            for w in &d.warnings {
                tracing::warn!(%topic, "key distribution: {w}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(%topic, error = %e, "key distribution not available"),
    }
}
