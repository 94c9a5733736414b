//! HTTP ingestion, a thin layer over the ingestion core (`streamlake-ingest`): an event is
//! authenticated, validated
//! against its dataset's schema, keyed, given metadata headers and produced with its bytes
//! unchanged to the dataset's raw topic; the client is answered only after the broker
//! acknowledged. An invalid event goes to the tenant's dead-letter topic, acknowledged too,
//! before the answer. Once an event is in Kafka, ingestion is complete.
//!
//! # Layout
//! - [`gateway`]: [`Gateway`], everything a request needs, built once from the configuration.
//! - `auth`: bearer keys to tenants, compared in constant time.
//! - `answer`: an ingestion outcome as an HTTP status and response entry.
//! - `routes`: the axum router ([`app`]), response codes and bodies.
//! - `idempotency`: retries of a request sent with `Idempotency-Key` get its first answer;
//!   the keys live in each tenant's idempotency log, a compacted topic.
//! - `metrics`: Prometheus metrics.
//! - [`server`]: the HTTP server: header and idle timeouts, a connection cap, graceful
//!   shutdown; [`serve`] runs it with the gateway's routes.

mod answer;
mod auth;
pub mod gateway;
mod idempotency;
mod metrics;
pub mod openapi;
mod quota;
mod routes;
pub mod server;

pub use auth::bearer_token;
pub use gateway::{Gateway, GatewayError};
pub use routes::{app, openapi_document};

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `gateway` on `listener` until `shutdown` is cancelled; then stops accepting, lets
/// in-flight requests finish, and flushes the producer (reliability rule 5 in docs/ARCHITECTURE.md).
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, gateway, axum::Router::new(), shutdown).await
}

/// [`serve`] with `extra` routes (the admin API and console) on the same listener.
pub async fn serve_with(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    extra: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    let limits = gateway.server_limits;
    server::run(
        listener,
        app(Arc::clone(&gateway)).merge(extra),
        limits,
        shutdown,
    )
    .await?;
    // librdkafka's flush blocks its thread: not one of the runtime's workers.
    let flushing = Arc::clone(&gateway);
    if let Err(e) = tokio::task::spawn_blocking(move || flushing.flush()).await {
        tracing::error!(error = %e, "flushing the gateway's producer failed");
    }
    // Keyed requests whose answers wait for their delivery reports (now in) are stored.
    let left = gateway
        .idempotency
        .finish(std::time::Duration::from_secs(
            gateway.settings.shutdown_timeout_secs,
        ))
        .await;
    if left > 0 {
        tracing::warn!(left, "answers of keyed requests not stored at shutdown: their keys are held until their lease runs out");
    }
    tracing::info!("gateway stopped");
    Ok(())
}
