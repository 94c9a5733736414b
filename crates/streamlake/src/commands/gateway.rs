//! `streamlake gateway`: HTTP ingestion as its own process (DESIGN: Kafka, not memory, connects
//! the stages, so the gateway can run anywhere the cluster is reachable).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use streamlake_config::Config;
use streamlake_gateway::Gateway;
use streamlake_kafka::KafkaSettings;
use tokio_util::sync::CancellationToken;

use super::Connection;

pub(crate) async fn run(conn: &Connection) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let task = start(&conn.config, &conn.settings, shutdown).await?;
    task.await.context("gateway task")??;
    Ok(ExitCode::SUCCESS)
}

/// Builds the gateway, binds `http.listen` and serves until `shutdown`; the task ends after the
/// producer was flushed.
pub(crate) async fn start(
    config: &Config,
    settings: &KafkaSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let gateway = Arc::new(Gateway::new(config, settings)?);
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    Ok(tokio::spawn(streamlake_gateway::serve(
        listener, gateway, shutdown,
    )))
}
