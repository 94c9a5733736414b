//! What the benches share: the events they write, a one-node Kafka of their own, topics, CPU
//! time from /proc, and where reports go.

use std::io::Write as _;

use anyhow::Context as _;
use streamlake_broker::ManagedKafka;
use streamlake_config::BrokerConfig;
use streamlake_kafka::{provision, Admin, KafkaSettings};

/// Realistic tenant-A air-quality events of about 250 bytes, 1,000 sensors.
pub(crate) fn events(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let sensor = 10_000 + (i % 1000);
            let body = format!(
                r#"{{"tenant_id":"tenantA","timestamp":"2026-02-26 22:{:02}:{:02}","location_id":{},"lat":{:.4},"lon":{:.4},"sensor_id":{sensor},"pm10_P1":{:.2},"pm2_5_P2":{:.2},"source":"sensor.community/v2","indoor":false,"altitude":{}}}"#,
                i % 60,
                (i / 60) % 60,
                sensor * 3,
                48.0 + (i % 97) as f64 / 100.0,
                9.0 + (i % 89) as f64 / 100.0,
                (i % 500) as f64 / 3.0,
                (i % 300) as f64 / 7.0,
                200 + i % 300,
            );
            (sensor.to_string(), body.into_bytes())
        })
        .collect()
}

/// Starts a one-node managed Kafka for a bench, its storage under `dir`, on two free ports.
pub(crate) async fn start_broker(
    dir: &std::path::Path,
) -> anyhow::Result<(ManagedKafka, KafkaSettings)> {
    let broker_cfg = BrokerConfig {
        listen: streamlake_broker::layout::free_port_block(2)
            .context("no two consecutive free ports on loopback")?,
        ..BrokerConfig::default()
    };
    eprintln!("starting a one-node Apache Kafka on {}", broker_cfg.listen);
    let broker = ManagedKafka::start(&broker_cfg, dir, streamlake_core::Health::new()).await?;
    eprintln!(
        "Kafka ready in {:.1} s",
        broker.startup_time().as_secs_f64()
    );
    let settings = KafkaSettings::new(broker.bootstrap_servers());
    Ok((broker, settings))
}

/// Creates `config`'s topics and the bench's own 6-partition `extra` topic.
pub(crate) async fn provision_with(
    settings: &KafkaSettings,
    config: &streamlake_config::Config,
    extra: &str,
) -> anyhow::Result<Admin> {
    let admin = Admin::new(settings)?;
    provision(&admin, &config.declared_topics()).await;
    admin
        .create_topic(&streamlake_core::TopicSpec {
            name: extra.to_owned(),
            partitions: 6,
            replication_factor: None,
            configs: Default::default(),
        })
        .await?;
    Ok(admin)
}

/// Prints a bench's report and appends it to `file` (e.g. docs/BENCHMARKS.md) when given.
pub(crate) fn publish(report: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    println!("{report}");
    if let Some(path) = file {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "\n{report}")?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

/// The first tenant of `config` and its first dataset: the one a bench writes to.
pub(crate) fn first_dataset(
    config: &streamlake_config::Config,
) -> anyhow::Result<(&streamlake_config::Tenant, &streamlake_config::Dataset)> {
    let tenant = config
        .tenants
        .values()
        .next()
        .context("the configuration has no tenant")?;
    let dataset = tenant
        .datasets
        .values()
        .next()
        .context("the tenant has no dataset")?;
    Ok((tenant, dataset))
}

/// User and system CPU seconds of a process, from /proc.
pub(crate) fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).unwrap_or(&"0").parse::<f64>()?
        + fields.get(12).unwrap_or(&"0").parse::<f64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(ticks / hz)
}
