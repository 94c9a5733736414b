//! The HTTP server under every route (ingestion, admin API, console, metrics). Each connection
//! is served by hyper with a header read timeout, which also closes a kept-alive connection
//! that sits idle; open connections are capped, and one over the cap gets a short 503 with
//! `Retry-After` instead of waiting in the accept queue or exhausting file descriptors. At
//! shutdown the listener closes, requests in flight finish (up to the shutdown timeout), and
//! idle connections are closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How the server protects itself from slow and numerous clients.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest wait for a request's headers, and for the next request on a kept-alive
    /// connection.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Seconds a refused client is told to wait (`Retry-After`).
    pub retry_after_secs: u64,
    /// Longest wait at shutdown for requests in flight.
    pub shutdown_timeout: Duration,
}

/// The most a connection's read buffer holds. A body is read in chunks of at most this much
/// whatever its size; hyper's default (about 400 KiB) let each connection uploading a large
/// body hold that much.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown`, within `limits`.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = limits.shutdown_timeout.as_secs(),
            "requests still in flight at the shutdown timeout were cut off"
        );
    }
    Ok(())
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream, limits: ServerLimits) {
    let body = format!(
        r#"{{"error":{{"code":"overloaded","message":"the server has {} connections open, its limit (http.max_connections); retry in {} s"}}}}"#,
        limits.max_connections, limits.retry_after_secs
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        limits.retry_after_secs,
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
