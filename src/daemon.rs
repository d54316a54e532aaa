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
/// How often the online escrow is topped up to `sync.online_escrow_units` (after receipts,
/// released orders and HQ's returns free units).
const ESCROW_TOP_UP_INTERVAL: Duration = Duration::from_secs(15);

/// A running node, for `run`, `demo`, `bench` and the tests.
pub struct Node {
    pub state: AppState,
    pub local_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Sync with HQ, when `[sync]` is configured.
    pub sync: Option<crate::sync::node::NodeSync>,
    /// Configured scanners and readers: connection state, counters, reader firmware.
    pub devices: crate::devices::status::DeviceRegistry,
}

impl Node {
    /// Opens the store, binds the API and starts the background tasks.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let (sync_setup, hook): (_, Box<dyn crate::store::BatchHook>) = match &config.sync {
            Some(_) => {
                let (setup, hook) = crate::sync::node::SyncSetup::new(&config.node.store_id);
                (Some(setup), hook)
            }
            None => (None, Box::new(NoHook)),
        };
        let store = Store::open(
            StoreOptions {
                path: config.database.path.clone(),
                max_batch: config.database.max_batch,
                writer_id: config.node.writer_id(),
            },
            hook,
        )?;
        let listener = TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.api.listen))?;
        let local_addr = listener.local_addr()?;
        // Bound before anything runs: a second node on the same data dir stops here.
        let control = crate::control::server::bind(&config.node.control_socket)?;
        let health = Arc::new(Health::default());
        health.set("store", State::Ok, "open", true);
        let sync = match (sync_setup, &config.sync) {
            (Some(setup), Some(cfg)) => Some(
                setup
                    .with_gln(config.node.gln.as_deref())
                    .with_time_zone(config.node.time_zone.clone())
                    .start(
                        cfg,
                        &config.node.tenant,
                        &config.node.store_id,
                        &config.node.node_id,
                        store.clone(),
                        health.clone(),
                    )
                    .await?,
            ),
            _ => None,
        };
        let events = EventBus::default();
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let devices = crate::devices::start(
            &config.devices,
            crate::devices::DeviceContext {
                store: store.clone(),
                bus: events.clone(),
                health: health.clone(),
                currency: config.node.currency.clone(),
            },
            &tasks,
            &shutdown,
        );
        let sync_metrics: Arc<dyn Fn(&mut String) + Send + Sync> = match &sync {
            Some(sync) => sync.metrics_fn(),
            None => Arc::new(|_: &mut String| {}),
        };
        let device_metrics = devices.clone();
        let extra_metrics: Arc<dyn Fn(&mut String) + Send + Sync> =
            Arc::new(move |out: &mut String| {
                sync_metrics(out);
                device_metrics.render(out);
            });
        let online: Arc<dyn Fn() -> bool + Send + Sync> = match &sync {
            Some(sync) => {
                let handle = sync.service().clone();
                Arc::new(move || handle.is_connected())
            }
            None => Arc::new(|| false),
        };
        let state = AppState {
            online,
            store,
            auth: Arc::new(Auth::new(
                &config.api.terminals,
                config.api.rate_per_terminal,
                config.api.burst_per_terminal,
            )),
            config: config.clone(),
            metrics: Arc::new(Metrics::default()),
            health,
            events,
            extra_metrics,
            started: std::time::Instant::now(),
            shutdown: shutdown.clone(),
            pickup: Arc::new(api::lockout::PickupLockout::new(
                config.api.limits.pickup_max_failures,
                config.api.limits.pickup_lockout,
            )),
            public_limits: Arc::default(),
            sync: sync.as_ref().map(|s| s.service().clone()),
        };
        let serve_state = state.clone();
        tasks.spawn(async move {
            if let Err(e) = api::serve(listener, serve_state).await {
                tracing::error!(error = %e, "API server failed");
            }
        });
        tasks.spawn(expire_orders(state.clone(), shutdown.clone()));
        tasks.spawn(prune_idempotency(
            state.clone(),
            config.database.idempotency_retention,
            shutdown.clone(),
        ));
        // Write probe, disk, certificate and clock: components, figures, one log per change.
        tasks.spawn(crate::probes::run(
            crate::probes::Watched {
                store: state.store.clone(),
                health: state.health.clone(),
                tls: config.sync.as_ref().and_then(|s| s.broker.tls.clone()),
                store_id: config.node.store_id.clone(),
            },
            shutdown.clone(),
        ));
        let escrow_units = config.sync.as_ref().map_or(0, |s| s.online_escrow_units);
        if escrow_units > 0 {
            tasks.spawn(top_up_escrow(state.clone(), escrow_units, shutdown.clone()));
        }
        tasks.spawn(crate::control::server::serve(
            control,
            crate::control::ControlContext {
                state: state.clone(),
                sync: sync.as_ref().map(|s| {
                    Arc::new(crate::sync::node::SyncInspector(s.service().clone()))
                        as Arc<dyn crate::sync::node::SyncInspect>
                }),
            },
            shutdown.clone(),
            tasks.clone(),
        ));
        tasks.spawn(crate::store::idle::give_back_memory(
            state.store.clone(),
            shutdown.clone(),
        ));
        // Pings systemd only while the store answers; a no-op outside systemd.
        tasks.spawn(crate::control::watchdog::run(
            state.clone(),
            shutdown.clone(),
        ));
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
            sync,
            devices,
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
        if let Some(sync) = self.sync {
            sync.stop().await;
        }
        self.state.store.close().await;
        tracing::info!("storenode stopped");
    }
}

/// The runtime `storenode run` and `storenode hq` run on, with the allocator set up for a
/// long-running process first ([`crate::memory::tune_allocator`]: it must precede the
/// runtime's threads).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    if !crate::memory::tune_allocator() {
        tracing::debug!("malloc parameters not set (not glibc); the allocator's defaults apply");
    }
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the node until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    let status = format!("serving on {}", node.local_addr);
    notify_systemd(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    wait_for_signal().await?;
    tracing::info!("shutdown requested");
    notify_systemd(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: finishing requests, closing the store"),
    ]);
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

/// Keeps `units` of every SKU granted to the online channel, as far as free stock allows.
async fn top_up_escrow(state: AppState, units: i64, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ESCROW_TOP_UP_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let config = state.config.clone();
        let writer_id = state.store.writer_id().to_string();
        let granted = state
            .store
            .write(move |conn| {
                let now = crate::clock::now_utc();
                let ctx = WriteContext {
                    terminal: "escrow",
                    writer_id: &writer_id,
                    currency: &config.node.currency,
                    tax: &config.tax,
                    now: &now,
                    pricing: None,
                };
                crate::store::escrow::top_up(conn, &ctx, units)
            })
            .await;
        match granted {
            Ok(0) => {}
            Ok(skus) => tracing::info!(skus, units, "granted units to the online channel"),
            Err(e) => tracing::warn!(error = %e, "online escrow top-up failed; will retry"),
        }
    }
}

/// Most prune jobs per minute: an old database with months of kept answers is brought down
/// over hours, a few hundred rows per write job, not in one long write.
const PRUNE_BATCHES_PER_TICK: usize = 50;

/// Forgets the idempotency answers older than `retention` (`store::idempotency::prune`),
/// once a minute, in batches that each take their turn in the group commit beside sales.
async fn prune_idempotency(state: AppState, retention: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ORDER_EXPIRY_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut pruned = 0;
        for _ in 0..PRUNE_BATCHES_PER_TICK {
            let before = crate::clock::utc_ago(retention);
            let batch = crate::store::idempotency::PRUNE_BATCH;
            match state
                .store
                .write(move |conn| crate::store::idempotency::prune(conn, &before, batch))
                .await
            {
                Ok(n) => {
                    pruned += n;
                    if n < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning idempotency answers failed; will retry");
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
        if pruned > 0 {
            tracing::info!(
                rows = pruned,
                retention_h = retention.as_secs() / 3600,
                "pruned old idempotency answers"
            );
        }
    }
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
                let now = crate::clock::now_utc();
                let ctx = WriteContext {
                    terminal: "expiry",
                    writer_id: &writer_id,
                    currency: &config.node.currency,
                    tax: &config.tax,
                    now: &now,
                    pricing: None,
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
