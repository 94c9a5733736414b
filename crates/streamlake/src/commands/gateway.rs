//! `streamlake gateway`: HTTP ingestion as its own process (Kafka, not memory, connects the
//! stages, so the gateway can run anywhere the cluster is reachable).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use streamlake_config::Config;
use streamlake_gateway::Gateway;
use tokio_util::sync::CancellationToken;

use super::Connection;

pub(crate) async fn run(conn: &Connection) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let gateway = Arc::new(Gateway::new(&conn.config, &conn.settings)?);
    gateway.announce(&conn.config);
    let task = start(&conn.config, gateway, axum::Router::new(), shutdown).await?;
    task.await.context("gateway task")??;
    Ok(ExitCode::SUCCESS)
}

/// Binds `http.listen` and serves the gateway, with `extra` routes, until `shutdown`; the task
/// ends after the producer was flushed.
pub(crate) async fn start(
    config: &Config,
    gateway: Arc<Gateway>,
    extra: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    Ok(tokio::spawn(streamlake_gateway::serve_with(
        listener, gateway, extra, shutdown,
    )))
}
