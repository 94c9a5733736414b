//! `streamlake generate`: sensor readings or user activity into a dataset, through the same
//! validation, key, headers and acknowledged produce as HTTP, with a progress bar and a summary.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use streamlake_core::{DatasetId, TenantId};
use streamlake_gateway::Gateway;
use streamlake_sources::{drive, Generator, GeneratorConfig, Kind, SourceStats};
use tokio_util::sync::CancellationToken;

use super::Connection;
use crate::args::{GenerateArgs, GenerateKind};

pub(crate) async fn run(conn: &Connection, args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let (kind, default_dataset) = match args.kind {
        GenerateKind::Sensor => (Kind::Sensor, "demo/sensor-data"),
        GenerateKind::Activity => (Kind::Activity, "demo/user-activity"),
    };
    let target = args.dataset.as_deref().unwrap_or(default_dataset);
    let (tenant, dataset) = target
        .split_once('/')
        .ok_or_else(|| anyhow!("--dataset must be TENANT/DATASET, not {target:?}"))?;
    let tenant = TenantId::new(tenant.to_owned()).map_err(|e| anyhow!("tenant {tenant:?} {e}"))?;
    let dataset =
        DatasetId::new(dataset.to_owned()).map_err(|e| anyhow!("dataset {dataset:?} {e}"))?;
    if conn
        .config
        .tenants
        .get(&tenant)
        .and_then(|t| t.datasets.get(&dataset))
        .is_none()
    {
        bail!("the configuration has no dataset {tenant}/{dataset}; choose one with --dataset TENANT/DATASET");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of events per second");
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let gateway = Gateway::new(&conn.config, &conn.settings)?;
    let config = GeneratorConfig {
        kind,
        rate: if args.heavy {
            None
        } else {
            Some(args.rate.unwrap_or(10.0))
        },
        count: args.count,
        duration: args.duration_secs.map(Duration::from_secs),
        keys: args.keys,
        batch: 1000,
        seed: None,
    };
    let mut generator = Generator::new(config, tenant.clone(), dataset.clone());
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());

    let stats = Arc::new(SourceStats::default());
    let bar = match args.count {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .expect("progress template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} events ({per_sec}) {msg}")
                .expect("progress template"),
        ),
    };
    let ticker = {
        let (bar, stats, shutdown) = (bar.clone(), stats.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(stats.done());
                let dead = stats.dead_lettered.load(Ordering::Relaxed);
                if dead > 0 {
                    bar.set_message(format!("{dead} dead-lettered"));
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        })
    };
    let started = Instant::now();
    let result = drive(&mut generator, gateway.ingestor(), &stats, &shutdown).await;
    let seconds = started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = ticker.await;
    bar.set_position(stats.done());
    bar.finish_and_clear();
    gateway.flush();
    let accepted = stats.accepted.load(Ordering::Relaxed);
    let dead = stats.dead_lettered.load(Ordering::Relaxed);
    eprintln!(
        "generated {} {} events into {tenant}/{dataset} in {seconds:.1} s ({:.0}/s): {accepted} accepted, {dead} dead-lettered, {} retried",
        generator.emitted(),
        match kind { Kind::Sensor => "sensor", Kind::Activity => "activity" },
        stats.done() as f64 / seconds.max(1e-9),
        stats.retries.load(Ordering::Relaxed),
    );
    result.map_err(|e| anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
