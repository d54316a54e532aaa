//! HQ's HTTP start-up: the listening socket is bound first and answers the operator's
//! endpoints ([`super::ops`]) while HQ loads its documents; once loaded, the full API is
//! served on the same socket (connections waiting meanwhile stay in its backlog). Both
//! phases run the store's server loop ([`crate::http_shared::server`]: a header timeout, a
//! connection cap) and, with `hq.http_tls`, HTTPS (rustls).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::hq::HqRunError;
use crate::hq::ops::HqOps;
use crate::http_shared::server::{self, ConnectionLimits};
use crate::sync::config::HttpTls;

/// HQ's connections: the store's defaults.
const LIMITS: ConnectionLimits = ConnectionLimits {
    header_read_timeout: Duration::from_secs(10),
    max_connections: 1024,
};

/// HQ's bound HTTP socket.
pub struct Listener {
    socket: std::net::TcpListener,
    pub addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

/// The operator-only server of the loading phase.
pub struct Loading {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Listener {
    /// Binds `addr`; with `tls`, every connection is HTTPS with that certificate.
    pub fn bind(addr: SocketAddr, tls: Option<&HttpTls>) -> Result<Self, HqRunError> {
        let tls = tls
            .map(|files| crate::tls::server_config(&files.cert_file, &files.key_file))
            .transpose()?
            .map(TlsAcceptor::from);
        let listen = |source| HqRunError::Listen { addr, source };
        let socket = std::net::TcpListener::bind(addr).map_err(listen)?;
        socket.set_nonblocking(true).map_err(listen)?;
        let addr = socket.local_addr().map_err(listen)?;
        Ok(Self { socket, addr, tls })
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
        let tls = self.tls.clone();
        let task = tokio::spawn(async move {
            let app = super::ops::loading_router(ops);
            let served = server::serve(listener, app, LIMITS, tls, until).await;
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
        let served = server::serve(listener, app, LIMITS, self.tls.clone(), shutdown).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HQ HTTP server failed");
        }
    }
}

impl Loading {
    /// Stops the loading-phase server; its in-flight requests finish first (bounded).
    pub async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            tracing::warn!("HQ's loading-phase HTTP server did not stop within 10 s");
        }
    }
}
