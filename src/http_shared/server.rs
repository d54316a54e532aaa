//! The HTTP server loop of the store's API and HQ's: the router on hyper's HTTP/1.1
//! connections, with the limits `axum::serve` lacks, and optionally TLS (rustls).
//!
//! - A connection must send each request's headers within `header_read_timeout` (this also
//!   ends idle keep-alive connections), so slow half-open connections are dropped.
//! - At most `max_connections` are served at once; further ones wait in the listen backlog
//!   rather than each taking memory and a task.
//! - On shutdown every connection is told to finish (keep-alive off, idle ones closed, live
//!   event streams end via the shutdown token) and any still open after [`SHUTDOWN_GRACE`]
//!   are dropped, so a till holding `/v1/events` cannot hold a restart up.
//!
//! - With TLS, the handshake must finish within `header_read_timeout` too.
//!
//! Request bodies are bounded in time by the router's request timeout (the handler reads the
//! body inside it) and in size by `max_body_bytes`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// What a server allows its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection must send a request's headers within this (also bounds idle keep-alive
    /// and the TLS handshake).
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

/// How long connections may take to finish after shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` until `shutdown` fires, then lets connections finish (bounded).
/// With `tls`, every connection is TLS (rustls), the same router behind it.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(accepted(
            stream,
            tls.clone(),
            router.clone(),
            limits.header_read_timeout,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "connections still open after the shutdown grace; dropping them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// One accepted connection: its TLS handshake (bounded), then HTTP.
async fn accepted(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return connection(stream, router, header_read_timeout, shutdown, permit).await;
    };
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        done = tokio::time::timeout(header_read_timeout, acceptor.accept(stream)) => done,
    };
    match handshake {
        Ok(Ok(stream)) => connection(stream, router, header_read_timeout, shutdown, permit).await,
        // A client that does not speak TLS, or trusts another CA: its problem, not HQ's.
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let service = TowerToHyperService::new(router);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts and clients going away are normal on a shop floor: debug, not warn.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
