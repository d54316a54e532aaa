//! HQ's HTTP start-up: the listening socket is bound first and answers the operator's
//! endpoints ([`super::ops`]) while HQ loads its documents; once loaded, the full API is
//! served on the same socket (connections waiting meanwhile stay in its backlog).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hq::HqRunError;
use crate::hq::ops::HqOps;

/// HQ's bound HTTP socket.
pub struct Listener {
    socket: std::net::TcpListener,
    pub addr: SocketAddr,
}

/// The operator-only server of the loading phase.
pub struct Loading {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Listener {
    pub fn bind(addr: SocketAddr) -> Result<Self, HqRunError> {
        let listen = |source| HqRunError::Listen { addr, source };
        let socket = std::net::TcpListener::bind(addr).map_err(listen)?;
        socket.set_nonblocking(true).map_err(listen)?;
        let addr = socket.local_addr().map_err(listen)?;
        Ok(Self { socket, addr })
    }

    fn tokio(&self) -> Result<tokio::net::TcpListener, HqRunError> {
        let listen = |source| HqRunError::Listen {
            addr: self.addr,
            source,
        };
        let copy = self.socket.try_clone().map_err(listen)?;
        tokio::net::TcpListener::from_std(copy).map_err(listen)
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` until [`Loading::stop`].
    pub fn serve_while_loading(&self, ops: Arc<HqOps>) -> Result<Loading, HqRunError> {
        let listener = self.tokio()?;
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, super::ops::loading_router(ops))
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HQ HTTP server (loading) failed");
            }
        });
        Ok(Loading { stop, task })
    }

    /// Serves `app` until `shutdown`.
    pub async fn serve(self, app: Router, shutdown: CancellationToken) {
        let listener = match self.tokio() {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "HQ HTTP server cannot start");
                return;
            }
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HQ HTTP server failed");
        }
    }
}

impl Loading {
    /// Stops the loading-phase server; its in-flight requests finish first (bounded).
    pub async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("HQ's loading-phase HTTP server did not stop within 5 s");
        }
    }
}
