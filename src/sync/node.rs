//! Wiring of sync into a store node (`storenode run`): the hook handed to `Store::open`,
//! then the service once the store is open, health and metrics.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::SyncConfig;
use super::doc::WriterId;
use super::hook::{DocsSlot, HookMetrics, SyncHook};
use super::local::NodeDocs;
use super::service::{SyncDiag, SyncService};
use crate::health::{Health, State};
use crate::metrics::{counter, gauge};
use crate::store::{BatchHook, Store};

const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Step 1, before `Store::open`: the hook and what the service needs later.
pub struct SyncSetup {
    slot: DocsSlot,
    notify: Arc<Notify>,
    hook_metrics: Arc<HookMetrics>,
}

impl SyncSetup {
    pub fn new(store_id: &str) -> (Self, Box<dyn BatchHook>) {
        let slot: DocsSlot = Arc::default();
        let notify = Arc::new(Notify::new());
        let hook_metrics = Arc::new(HookMetrics::default());
        let hook = SyncHook::new(slot.clone(), store_id, notify.clone(), hook_metrics.clone());
        (
            Self {
                slot,
                notify,
                hook_metrics,
            },
            Box::new(hook),
        )
    }

    /// Step 2, once the store is open: loads the documents and starts the service.
    pub async fn start(
        self,
        cfg: &SyncConfig,
        tenant: &str,
        store_id: &str,
        node_id: &str,
        store: Store,
        health: Arc<Health>,
    ) -> anyhow::Result<NodeSync> {
        let writer = WriterId::new(&format!("{store_id}.{node_id}"))?;
        let store_name = store_id.to_owned();
        let load_writer = writer.clone();
        // Loaded on the writer thread inside a write, so no commit can slip in between.
        let slot = self.slot.clone();
        store
            .write(move |conn| {
                let docs = NodeDocs::load(conn, &store_name, load_writer)
                    .map_err(|e| crate::store::StoreError::Inconsistent(e.to_string()))?;
                let _ = slot.set(Arc::new(Mutex::new(docs)));
                Ok(())
            })
            .await?;
        let docs = self
            .slot
            .get()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("sync documents were not loaded"))?;
        // The first change picks up movements made before sync started.
        self.notify.notify_one();
        let service = Arc::new(SyncService::start(
            cfg,
            tenant,
            store_id,
            writer,
            store,
            docs,
            self.notify.clone(),
        )?);
        let shutdown = CancellationToken::new();
        let health_task = tokio::spawn(report_health(service.clone(), health, shutdown.clone()));
        Ok(NodeSync {
            service,
            hook_metrics: self.hook_metrics,
            shutdown,
            health_task,
        })
    }
}

/// The running sync of a node.
pub struct NodeSync {
    service: Arc<SyncService>,
    hook_metrics: Arc<HookMetrics>,
    shutdown: CancellationToken,
    health_task: tokio::task::JoinHandle<()>,
}

impl NodeSync {
    pub fn service(&self) -> &Arc<SyncService> {
        &self.service
    }

    /// For `diag sync`: heads, pending outbox, lag behind HQ.
    pub async fn diag(&self) -> SyncDiag {
        self.service.diag().await
    }

    /// Appends sync metrics in Prometheus text format (values from the last health tick).
    pub fn metrics_fn(&self) -> Arc<dyn Fn(&mut String) + Send + Sync> {
        let hook = self.hook_metrics.clone();
        let service = self.service.clone();
        Arc::new(move |out: &mut String| {
            let m = service.wire_metrics();
            counter(
                out,
                "storenode_sync_changes_total",
                "Own stock changes made (one per commit with movements).",
                hook.changes.load(Ordering::Relaxed),
            );
            counter(
                out,
                "storenode_sync_peer_movements_total",
                "Peer movements written from other writers' changes.",
                hook.peer_movements.load(Ordering::Relaxed),
            );
            counter(
                out,
                "storenode_sync_hook_failures_total",
                "Commits whose sync step failed (sales continued).",
                hook.failures.load(Ordering::Relaxed),
            );
            counter(
                out,
                "storenode_sync_bytes_in_total",
                "Sync payload bytes received.",
                m.bytes_in.load(Ordering::Relaxed),
            );
            counter(
                out,
                "storenode_sync_bytes_out_total",
                "Sync payload bytes published.",
                m.bytes_out.load(Ordering::Relaxed),
            );
            counter(
                out,
                "storenode_sync_rejected_total",
                "Sync payloads rejected (malformed, oversized, foreign).",
                m.rejected.load(Ordering::Relaxed),
            );
            counter(
                out,
                "storenode_sync_denied_total",
                "Publishes the broker denied (PUBACK 135).",
                m.denied.load(Ordering::Relaxed),
            );
            let snapshot = service.last_diag();
            gauge(
                out,
                "storenode_sync_outbox_length",
                "Own changes not yet acknowledged by HQ.",
                i64::try_from(snapshot.outbox_pending).unwrap_or(i64::MAX),
            );
            gauge(
                out,
                "storenode_sync_connected",
                "1 when connected to the broker.",
                i64::from(snapshot.connected),
            );
            gauge(
                out,
                "storenode_sync_last_hq_ack_ms",
                "Unix ms of HQ's last acknowledgement of the stock document.",
                snapshot.last_hq_ack_ms.unwrap_or(0),
            );
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.health_task.await;
        self.service.stop().await;
    }
}

async fn report_health(
    service: Arc<SyncService>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let diag = service.refresh_diag().await;
        let (state, detail) = if diag.connected {
            (
                State::Ok,
                format!("connected; {} change(s) awaiting HQ", diag.outbox_pending),
            )
        } else {
            (
                State::Degraded,
                format!(
                    "offline, sales continue; {} change(s) queued",
                    diag.outbox_pending
                ),
            )
        };
        if health.set("sync", state, detail, false) {
            tracing::info!(
                connected = diag.connected,
                outbox = diag.outbox_pending,
                "sync state changed"
            );
        }
    }
}

/// `diag sync` over the control socket: heads, pending outbox, lag behind HQ.
pub struct SyncInspector(pub Arc<SyncService>);

impl crate::control::SyncInspect for SyncInspector {
    fn report(&self) -> futures_util::future::BoxFuture<'_, serde_json::Value> {
        Box::pin(async move { serde_json::to_value(self.0.diag().await).unwrap_or_default() })
    }
}
