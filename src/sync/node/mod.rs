//! Wiring of sync into a store node (`storenode run`): the hook handed to `Store::open`,
//! then the service once the store is open, health and metrics.
//!
//! # Start-up
//! Rebuilding the documents from SQLite costs time proportional to their history (seconds
//! for a million past movements in one epoch), so the node does not wait for it: it is
//! ready to sell as soon as the store is open, and the documents load in the background
//! ([`SyncSetup::start`]). Until they are installed in the hook's [`DocsSlot`] the hook
//! does nothing, so movements and order events stay above their high-water marks and the
//! first commit after the install records them, exactly once. `/readyz`, the metric
//! `storenode_sync_documents_loaded` and `diag sync` show the loading state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::SyncConfig;
use super::local::SharedDocs;
use super::wire::WireMetrics;
use crate::crdt::doc::WriterId;
use crate::health::{Health, State};
use crate::metrics::{counter, gauge};
use crate::store::{BatchHook, Store};
use hook::{DocsSlot, HookMetrics, SyncHook};
use service::{SyncDiag, SyncService};

pub mod epcis_link;
pub mod find;
pub mod hook;
mod load;
mod pace;
pub mod pii;
pub mod service;

use load::Loader;
pub use load::load_and_install;

const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
const COMPONENT: &str = "sync";

/// Step 1, before `Store::open`: the hook and what the service needs later.
pub struct SyncSetup {
    slot: DocsSlot,
    notify: Arc<Notify>,
    hook_metrics: Arc<HookMetrics>,
    /// The store's GLN and time zone, for the EPCIS events published to HQ.
    site: crate::epcis::Site,
}

impl SyncSetup {
    pub fn new(store_id: &str) -> (Self, Box<dyn BatchHook>) {
        let slot: DocsSlot = Arc::default();
        let notify = Arc::new(Notify::new());
        let hook_metrics = Arc::new(HookMetrics::default());
        let hook =
            SyncHook::new(slot.clone(), store_id, notify.clone(), hook_metrics.clone()).deferring();
        (
            Self {
                slot,
                notify,
                hook_metrics,
                site: crate::epcis::Site::default(),
            },
            Box::new(hook),
        )
    }

    /// The store's GLN (`node.gln`), for the EPCIS events published to HQ.
    pub fn with_gln(mut self, gln: Option<&str>) -> Self {
        self.site.gln = gln.map(str::to_owned);
        self
    }

    /// The store's time zone (`node.time_zone`), for the events' `eventTimeZoneOffset`.
    pub fn with_time_zone(mut self, time_zone: jiff::tz::TimeZone) -> Self {
        self.site.time_zone = time_zone;
        self
    }

    /// Step 2, once the store is open: checks the configuration, then loads the documents
    /// and starts the service in the background (see the module documentation). Returns at
    /// once; [`SyncHandle::is_loaded`] tells when the service runs.
    pub async fn start(
        self,
        cfg: &SyncConfig,
        tenant: &str,
        store_id: &str,
        node_id: &str,
        store: Store,
        health: Arc<Health>,
    ) -> anyhow::Result<NodeSync> {
        // A new incarnation per start: a fresh automerge actor, see `crdt::doc`.
        let writer = WriterId::new(&format!("{store_id}.{node_id}"))?.new_incarnation();
        // What would make the service refuse to start is checked now, so a wrong
        // certificate or id still stops the node at start instead of leaving it unsynced.
        if let Some(files) = &cfg.broker.tls {
            crate::tls::client_config(files)?;
        }
        super::mqtt::topics::Scope::store(super::mqtt::topics::Id::new(store_id)?)?;
        super::mqtt::topics::Id::new(tenant)?;
        health.set(
            COMPONENT,
            State::Degraded,
            "loading sync documents; sales continue",
            false,
        );
        let handle = Arc::new(SyncHandle::default());
        let shutdown = CancellationToken::new();
        let loader = Loader {
            cfg: cfg.clone(),
            tenant: tenant.to_owned(),
            store_id: store_id.to_owned(),
            site: self.site,
            writer,
            store,
            slot: self.slot,
            notify: self.notify,
            health,
            handle: handle.clone(),
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(loader.run());
        Ok(NodeSync {
            handle,
            hook_metrics: self.hook_metrics,
            shutdown,
            task,
        })
    }
}

/// The sync service once the documents are loaded; before that, sync is "loading".
#[derive(Default)]
pub struct SyncHandle {
    service: OnceLock<Arc<SyncService>>,
    docs: OnceLock<SharedDocs>,
    loaded: AtomicBool,
    load_ms: AtomicU64,
    /// Zero counters shown while loading.
    idle_metrics: WireMetrics,
}

impl SyncHandle {
    /// The running service; `None` while the documents load (or if they could not be).
    pub fn get(&self) -> Option<&Arc<SyncService>> {
        self.service.get()
    }

    /// The loaded documents (for checks and benchmarks; the service owns their updates).
    pub fn docs(&self) -> Option<&SharedDocs> {
        self.docs.get()
    }

    /// Whether the documents are loaded and the service runs ("sync-ready").
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// How long loading the documents took, once loaded.
    pub fn load_ms(&self) -> Option<u64> {
        self.is_loaded()
            .then(|| self.load_ms.load(Ordering::Relaxed))
    }

    pub fn is_connected(&self) -> bool {
        self.get().is_some_and(|s| s.is_connected())
    }

    /// Looks a loyalty member up at HQ by phone or e-mail (see [`find`]); refused at once
    /// while the documents load.
    pub async fn find_members(
        &self,
        query: crate::domain::member_find::MemberQuery,
    ) -> Result<crate::domain::member_find::MemberMatches, find::FindUnavailable> {
        match self.get() {
            Some(service) => service.find_members(query).await,
            None => Err(find::FindUnavailable::Loading),
        }
    }

    /// See [`SyncService::refresh_diag`]; all zero while loading.
    pub async fn refresh_diag(&self) -> SyncDiag {
        match self.get() {
            Some(service) => service.refresh_diag().await,
            None => SyncDiag::default(),
        }
    }

    pub fn wire_metrics(&self) -> &WireMetrics {
        self.get().map_or(&self.idle_metrics, |s| s.wire_metrics())
    }
}

/// The running sync of a node.
pub struct NodeSync {
    handle: Arc<SyncHandle>,
    hook_metrics: Arc<HookMetrics>,
    shutdown: CancellationToken,
    /// Loads the documents, starts the service, then reports health until shutdown.
    task: tokio::task::JoinHandle<()>,
}

impl NodeSync {
    pub fn service(&self) -> &Arc<SyncHandle> {
        &self.handle
    }

    /// For `diag sync`: heads, pending outbox, lag behind HQ (all zero while loading).
    pub async fn diag(&self) -> SyncDiag {
        match self.handle.get() {
            Some(service) => service.diag().await,
            None => SyncDiag::default(),
        }
    }

    /// Appends sync metrics in Prometheus text format (values from the last health tick).
    pub fn metrics_fn(&self) -> Arc<dyn Fn(&mut String) + Send + Sync> {
        let hook = self.hook_metrics.clone();
        let handle = self.handle.clone();
        Arc::new(move |out: &mut String| {
            gauge(
                out,
                "storenode_sync_documents_loaded",
                "1 once the sync documents are loaded and sync runs; 0 while they load.",
                i64::from(handle.is_loaded()),
            );
            if let Some(ms) = handle.load_ms() {
                gauge(
                    out,
                    "storenode_sync_documents_load_ms",
                    "Time the sync documents took to load at start.",
                    i64::try_from(ms).unwrap_or(i64::MAX),
                );
            }
            let m = handle.wire_metrics();
            counter(
                out,
                "storenode_sync_changes_total",
                "Own stock changes made in a commit (the backlog the publisher records is not counted).",
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
            // Left out while loading: an outbox of 0 would read as "everything acknowledged".
            let Some(snapshot) = handle.get().map(|s| s.last_diag()) else {
                return;
            };
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

    /// Stops the loader (or the health reports) and then the service, if it runs.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        if let Some(service) = self.handle.get() {
            service.stop().await;
        }
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
        let (state, detail) = if let Some(reason) = &diag.clone_refused {
            (State::Down, reason.clone())
        } else if diag.connected && diag.publish_denied {
            (
                State::Down,
                format!(
                    "the broker refuses this node's publishes (PUBACK 135): check its certificate and the broker ACL; {} change(s) queued",
                    diag.outbox_pending
                ),
            )
        } else if diag.connected && diag.adopting {
            (
                State::Degraded,
                format!(
                    "catching up with HQ before this lane writes again (new incarnation); sales continue; {} change(s) queued",
                    diag.outbox_pending
                ),
            )
        } else if diag.connected {
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
        if health.set(COMPONENT, state, detail, false) {
            tracing::info!(
                connected = diag.connected,
                adopting = diag.adopting,
                publish_denied = diag.publish_denied,
                outbox = diag.outbox_pending,
                "sync state changed"
            );
        }
    }
}

/// `diag sync` over the control socket: heads, pending outbox, lag behind HQ, and whether
/// the documents are still loading.
/// What the sync module can tell `diag sync` beyond its health and metrics: heads, pending
/// changes, lag behind HQ. The daemon passes one when sync runs.
pub trait SyncInspect: Send + Sync {
    fn report(&self) -> futures_util::future::BoxFuture<'_, serde_json::Value>;
    /// `storenode lane list`, `retire` and `unretire` (see `service::lanes`).
    fn lanes(
        &self,
        action: LaneAction,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<service::LaneView>, String>>;
}

/// What `storenode lane` asks the running lane.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LaneAction {
    List,
    Retire { node: String },
    Unretire { node: String },
}

/// The sync service as `diag sync` sees it.
pub struct SyncInspector(pub Arc<SyncHandle>);

impl SyncInspect for SyncInspector {
    fn report(&self) -> futures_util::future::BoxFuture<'_, serde_json::Value> {
        Box::pin(async move {
            let Some(service) = self.0.get() else {
                return serde_json::json!({ "documents": "loading" });
            };
            let mut report = serde_json::to_value(service.diag().await).unwrap_or_default();
            if let Some(map) = report.as_object_mut() {
                map.insert("documents".into(), "loaded".into());
                map.insert("documents_load_ms".into(), self.0.load_ms().into());
            }
            report
        })
    }

    fn lanes(
        &self,
        action: LaneAction,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<service::LaneView>, String>> {
        Box::pin(async move {
            let service = self
                .0
                .get()
                .ok_or("sync documents are still loading; try again in a moment")?;
            let change = match action {
                LaneAction::List => None,
                LaneAction::Retire { node } => Some((node, true)),
                LaneAction::Unretire { node } => Some((node, false)),
            };
            if let Some((node, retire)) = change {
                service
                    .retire_lane(&node, retire)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(service.lanes())
        })
    }
}

#[cfg(test)]
mod tests;
