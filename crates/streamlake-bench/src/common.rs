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
    extra: &[&str],
) -> anyhow::Result<Admin> {
    let admin = Admin::new(settings)?;
    provision(&admin, &config.declared_topics()).await;
    for name in extra {
        admin
            .create_topic(&streamlake_core::TopicSpec {
                name: (*name).to_owned(),
                partitions: 6,
                replication_factor: None,
                configs: Default::default(),
            })
            .await?;
    }
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

/// A memory figure (kB) from /proc/PID/status, e.g. VmRSS or VmHWM.
pub(crate) fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The `streamlake` binary a gateway runs as: `given`, else the one beside this bench
/// (`cargo build --release -p streamlake -p streamlake-bench` puts them together).
pub(crate) fn streamlake_binary(
    given: Option<&std::path::Path>,
) -> anyhow::Result<std::path::PathBuf> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()?.with_file_name("streamlake"),
    };
    if !path.is_file() {
        anyhow::bail!(
            "the gateway runs as the streamlake binary, and there is none at {}: build it with `cargo build --release -p streamlake`, or give --streamlake PATH",
            path.display()
        );
    }
    Ok(path)
}

/// `streamlake gateway` as a process of its own, so its CPU time and memory are its own.
pub(crate) struct GatewayProcess {
    child: tokio::process::Child,
    /// Its process id.
    pub(crate) pid: u32,
}

impl GatewayProcess {
    /// Starts `streamlake --config CONFIG [--worker-threads N] gateway` (its log in
    /// `dir/gateway.log`) and waits until `http` answers.
    pub(crate) async fn start(
        streamlake: &std::path::Path,
        dir: &std::path::Path,
        config: &std::path::Path,
        http: std::net::SocketAddr,
        worker_threads: Option<u16>,
    ) -> anyhow::Result<Self> {
        let log_path = dir.join("gateway.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = tokio::process::Command::new(streamlake);
        command.arg("--config").arg(config);
        if let Some(n) = worker_threads {
            command.arg("--worker-threads").arg(n.to_string());
        }
        let child = command
            .arg("gateway")
            .env_remove("STREAMLAKE_WORKER_THREADS")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the gateway process")?;
        let pid = child.id().context("gateway pid")?;
        let probe = reqwest::Client::new();
        let ready = format!("http://{http}/healthz");
        for _ in 0..100 {
            if probe.get(&ready).send().await.is_ok() {
                return Ok(Self { child, pid });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("the gateway did not start; its log: {}", log_path.display())
    }

    /// Stops it with SIGTERM and waits up to 30 s for it to exit.
    pub(crate) async fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait()).await;
    }
}

/// Milliseconds at the nearest-rank quantile `p` (0 to 1) of `sorted` microseconds.
pub(crate) fn millis_at(sorted: &[u64], p: f64) -> f64 {
    streamlake_core::latency::percentile(sorted, p) as f64 / 1000.0
}
