//! `storenode run`: the daemon. Owns every long-running task and shuts them down in order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, Auth};
use crate::config::Config;
use crate::events::EventBus;
use crate::health::{Health, State};
use crate::metrics::Metrics;
use crate::store::orders;
use crate::store::sales::WriteContext;
use crate::store::{NoHook, Store, StoreOptions};

const ORDER_EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// A running node, for `run`, `demo`, `bench` and the tests.
pub struct Node {
    pub state: AppState,
    pub local_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Node {
    /// Opens the store, binds the API and starts the background tasks.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let store = Store::open(
            StoreOptions {
                path: config.database.path.clone(),
                max_batch: config.database.max_batch,
                writer_id: config.node.writer_id(),
            },
            Box::new(NoHook),
        )?;
        let listener = TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.api.listen))?;
        let local_addr = listener.local_addr()?;
        let health = Arc::new(Health::default());
        health.set("store", State::Ok, "open", true);
        let state = AppState {
            store,
            auth: Arc::new(Auth::new(
                &config.api.terminals,
                config.api.rate_per_terminal,
                config.api.burst_per_terminal,
            )),
            config: config.clone(),
            metrics: Arc::new(Metrics::default()),
            health,
            events: EventBus::default(),
            extra_metrics: Arc::new(|_: &mut String| {}),
            started: std::time::Instant::now(),
        };
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let serve_state = state.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) =
                api::serve(listener, serve_state, async move { stop.cancelled().await }).await
            {
                tracing::error!(error = %e, "API server failed");
            }
        });
        tasks.spawn(expire_orders(state.clone(), shutdown.clone()));
        tracing::info!(
            store = %config.node.store_id,
            node = %config.node.node_id,
            listen = %local_addr,
            db = %config.database.path.display(),
            "storenode ready"
        );
        Ok(Self {
            state,
            local_addr,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting requests, finishes those in flight, stops the tasks, closes the store.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("tasks did not stop within 30 s; closing the store anyway");
        }
        self.state.store.close().await;
        tracing::info!("storenode stopped");
    }
}

/// Runs the node until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    wait_for_signal().await?;
    tracing::info!("shutdown requested");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    node.stop().await;
    Ok(())
}

fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Releases the reservations of click-and-collect orders whose hold time has passed.
async fn expire_orders(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ORDER_EXPIRY_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let config = state.config.clone();
        let writer_id = state.store.writer_id().to_string();
        let expired = state
            .store
            .write(move |conn| {
                let now = crate::store::now_utc();
                let ctx = WriteContext {
                    terminal: "expiry",
                    writer_id: &writer_id,
                    currency: &config.node.currency,
                    tax: &config.tax,
                    now: &now,
                };
                orders::expire_due(conn, &ctx)
            })
            .await;
        match expired {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(orders = ids.len(), "expired click-and-collect orders")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "order expiry failed; will retry"),
        }
    }
}
