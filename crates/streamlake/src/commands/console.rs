//! `streamlake console`: the admin API and the web console as their own process; also the
//! pieces `up` uses to serve them beside the gateway.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use streamlake_config::{ApiKeySource, Config};
use streamlake_gateway::Gateway;
use streamlake_kafka::KafkaSettings;
use streamlake_ops::Ops;
use tokio_util::sync::CancellationToken;

use super::Connection;
use crate::args::ConsoleArgs;

/// The operations service over `gateway`, with its lag and throughput sampler running until
/// `shutdown`.
pub(crate) fn ops(
    config: &Config,
    settings: &KafkaSettings,
    gateway: Arc<Gateway>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<Ops>> {
    let mut ops = Ops::new(
        config.clone(),
        settings.clone(),
        Arc::clone(gateway.ingestor()),
    )?;
    match super::lab::worker_command(config, settings) {
        Ok(cmd) => ops = ops.with_lab_worker(cmd),
        Err(e) => tracing::warn!(error = %e, "the semantics lab cannot run from the console"),
    }
    let ops = Arc::new(ops);
    let (sampler, shutdown) = (Arc::clone(&ops), shutdown.clone());
    tokio::spawn(async move { sampler.run_sampler(shutdown).await });
    Ok(ops)
}

/// Logs where the console is and how to sign in; a development admin token is shown (as tenant
/// development keys are), one from the environment never. With a development token, a one-time
/// sign-in link (valid 15 minutes) opens the console without typing it.
pub(crate) fn announce(config: &Config, ops: &Ops, addr: SocketAddr) {
    let console = format!("http://{addr}/console");
    match &config.admin_token {
        Some(t) if t.source == ApiKeySource::Development => tracing::warn!(
            console = %console,
            sign_in = %ops
                .sign_in_code(t.expose_secret())
                .map(|code| format!("http://{addr}/console/login?code={code}"))
                .unwrap_or_default(),
            dev_admin_token = t.expose_secret(),
            env = %config.admin.token_env,
            "console and admin API use the development admin token; set the environment variable to replace it"
        ),
        Some(_) => {
            tracing::info!(console = %console, env = %config.admin.token_env, "console and admin API: sign in with the admin token")
        }
        None => tracing::warn!(
            console = %console,
            env = %config.admin.token_env,
            "no admin token: the admin API and console accept tenant keys only (each sees its own tenant); set the environment variable for full access"
        ),
    }
}

pub(crate) async fn run(conn: &Connection, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    streamlake_kafka::shutdown::cancel_on_signals(shutdown.clone());
    let gateway = Arc::new(Gateway::new(&conn.config, &conn.settings)?);
    gateway.announce(&conn.config);
    let ops = ops(&conn.config, &conn.settings, gateway, &shutdown)?;
    let addr = args.listen.unwrap_or(conn.config.http.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--listen, else http.listen)"))?;
    announce(&conn.config, &ops, listener.local_addr()?);
    axum::serve(listener, streamlake_console::router(ops))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("console server")?;
    Ok(ExitCode::SUCCESS)
}
