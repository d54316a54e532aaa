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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::SyncConfig;
use super::local::{LocalError, NodeDocs, SharedDocs};
use super::wire::WireMetrics;
use crate::crdt::doc::WriterId;
use crate::health::{Health, State};
use crate::metrics::{counter, gauge};
use crate::store::{BatchHook, Store, StoreError};
use hook::{DocsSlot, HookMetrics, SyncHook};
use service::{SyncDiag, SyncService};

pub mod epcis_link;
pub mod hook;
pub mod pii;
pub mod service;

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
        let hook = SyncHook::new(slot.clone(), store_id, notify.clone(), hook_metrics.clone());
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

/// The background start of sync: load, install, start the service, then report health.
struct Loader {
    cfg: SyncConfig,
    tenant: String,
    store_id: String,
    site: crate::epcis::Site,
    writer: WriterId,
    store: Store,
    slot: DocsSlot,
    notify: Arc<Notify>,
    health: Arc<Health>,
    handle: Arc<SyncHandle>,
    shutdown: CancellationToken,
}

impl Loader {
    async fn run(self) {
        let began = Instant::now();
        let loaded = tokio::select! {
            () = self.shutdown.cancelled() => return,
            loaded = load_and_install(&self.store, &self.slot, &self.store_id, self.writer.clone(), true) => loaded,
        };
        if let Err(e) = loaded {
            tracing::error!(error = %e, "sync documents cannot be loaded; sales continue unsynced");
            self.health.set(
                COMPONENT,
                State::Down,
                format!("sync documents cannot be loaded: {e}"),
                false,
            );
            return;
        }
        let Some(docs) = self.slot.get().cloned() else {
            return;
        };
        let load_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.handle.load_ms.store(load_ms, Ordering::Relaxed);
        // The first change picks up movements made before the documents were loaded.
        self.notify.notify_one();
        let docs_for_handle = docs.clone();
        let service = SyncService::start(
            &self.cfg,
            &self.tenant,
            &self.store_id,
            &self.site,
            self.writer.clone(),
            self.store.clone(),
            docs,
            self.notify.clone(),
        );
        let service = match service {
            Ok(service) => Arc::new(service),
            Err(e) => {
                tracing::error!(error = %e, "sync service cannot start; sales continue unsynced");
                self.health.set(
                    COMPONENT,
                    State::Down,
                    format!("sync cannot start: {e}"),
                    false,
                );
                return;
            }
        };
        tracing::info!(writer = %self.writer, load_ms, "sync documents loaded; sync started");
        let _ = self.handle.docs.set(docs_for_handle);
        let _ = self.handle.service.set(service.clone());
        self.handle.loaded.store(true, Ordering::Release);
        report_health(service, self.health, self.shutdown).await;
    }
}

/// What the loader compares before installing documents it read outside the writer: every
/// sync table row that a change of the documents would touch.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    state: Vec<(String, i64)>,
    changes: (i64, i64),
    outbox: (i64, i64),
    saved: Vec<(String, i64, String)>,
}

fn fingerprint(conn: &Connection) -> Result<Fingerprint, rusqlite::Error> {
    let state = conn
        .prepare("SELECT key, value FROM sync_state ORDER BY key")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let count_max = |table: &str| {
        conn.query_row(
            &format!("SELECT count(*), COALESCE(max(id), 0) FROM {table}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    };
    let saved = conn
        .prepare("SELECT doc_key, epoch, saved_at FROM sync_doc ORDER BY doc_key, epoch")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Fingerprint {
        state,
        changes: count_max("sync_change")?,
        outbox: count_max("sync_outbox")?,
        saved,
    })
}

/// Reads the documents on a reader connection (one read transaction, so one snapshot),
/// while the writer goes on committing sales.
fn load_snapshot(
    conn: &Connection,
    store_id: &str,
    writer: WriterId,
) -> Result<(NodeDocs, Fingerprint), LocalError> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let loaded = fingerprint(conn)
        .map_err(LocalError::from)
        .and_then(|fp| Ok((NodeDocs::load(conn, store_id, writer)?, fp)));
    conn.execute_batch("COMMIT")?;
    loaded
}

/// Loads the documents outside the writer thread, then installs them in `slot` inside a
/// write, so the first commit with them (this one) records everything above the marks;
/// with `adopt_first`, not before the service saw this incarnation catch up with HQ
/// ([`NodeDocs::require_adoption`]).
/// Nothing but the hook and the service writes the sync tables, and neither does before
/// the install; should the tables have changed anyway, the install reloads under the
/// writer rather than install a stale copy.
pub async fn load_and_install(
    store: &Store,
    slot: &DocsSlot,
    store_id: &str,
    writer: WriterId,
    adopt_first: bool,
) -> Result<(), StoreError> {
    let (id, w) = (store_id.to_owned(), writer.clone());
    let (docs, seen) = store
        .read(move |conn| load_snapshot(conn, &id, w).map_err(inconsistent))
        .await?;
    install(store, slot, store_id, writer, (docs, seen), adopt_first).await
}

/// Puts documents read at `seen` into `slot`, inside a write (see [`load_and_install`]).
async fn install(
    store: &Store,
    slot: &DocsSlot,
    store_id: &str,
    writer: WriterId,
    (docs, seen): (NodeDocs, Fingerprint),
    adopt_first: bool,
) -> Result<(), StoreError> {
    let (id, slot) = (store_id.to_owned(), slot.clone());
    store
        .write(move |conn| {
            let mut docs = if fingerprint(conn)? == seen {
                docs
            } else {
                tracing::warn!("sync tables changed while loading; reloading under the writer");
                NodeDocs::load(conn, &id, writer).map_err(inconsistent)?
            };
            if adopt_first {
                docs.require_adoption();
            }
            let _ = slot.set(Arc::new(Mutex::new(docs)));
            Ok(())
        })
        .await
}

fn inconsistent(e: LocalError) -> StoreError {
    StoreError::Inconsistent(e.to_string())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::doc::{DocId, DocKind};
    use crate::store::StoreOptions;
    use crate::store::ledger::{self, MovementKind};
    use crate::sync::local;
    use crate::sync::persist;

    fn open(dir: &std::path::Path) -> (Store, SyncSetup) {
        let (setup, hook) = SyncSetup::new("s1");
        let store = Store::open(
            StoreOptions {
                path: dir.join("store.db"),
                max_batch: 64,
                writer_id: "s1.lane1".into(),
            },
            hook,
        )
        .unwrap();
        (store, setup)
    }

    async fn sell(store: &Store, units: i64) {
        store
            .write(move |conn| {
                let m = ledger::Movement {
                    sku: "MILK",
                    kind: MovementKind::Sale,
                    on_hand_delta: -units,
                    reserved_delta: 0,
                    ref_type: "t",
                    ref_id: "1",
                    terminal: "pos1",
                };
                ledger::record(conn, &m, "now")?;
                Ok(())
            })
            .await
            .unwrap();
    }

    fn writer() -> WriterId {
        WriterId::new("s1.lane1").unwrap()
    }

    fn own_total(slot: &DocsSlot) -> i64 {
        let docs = local::lock(slot.get().unwrap());
        docs.stock()
            .writer_totals(&writer())
            .get("MILK")
            .copied()
            .unwrap_or(0)
    }

    async fn outbox_len(store: &Store) -> u64 {
        store
            .read(|conn| Ok(persist::outbox_len(conn).unwrap()))
            .await
            .unwrap()
    }

    /// Sales before the load, while it runs (between the read and the install) and after
    /// it each reach the document exactly once.
    #[tokio::test]
    async fn sales_before_and_during_the_background_load_reach_the_document_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A first life with sync: some history in the document.
            let (store, setup) = open(dir.path());
            load_and_install(&store, &setup.slot, "s1", writer(), false)
                .await
                .unwrap();
            sell(&store, 1).await;
            assert_eq!(own_total(&setup.slot), -1);
            store.close().await;
        }
        let (store, setup) = open(dir.path());
        // Before the documents are loaded the hook does nothing.
        sell(&store, 2).await;
        assert!(setup.slot.get().is_none());
        assert_eq!(outbox_len(&store).await, 1, "only the first life's change");
        // The read half of the load, then a sale, then the install.
        let (docs, seen) = store
            .read(|conn| Ok(load_snapshot(conn, "s1", writer()).unwrap()))
            .await
            .unwrap();
        sell(&store, 4).await;
        let slot = setup.slot.clone();
        store
            .write(move |conn| {
                assert_eq!(fingerprint(conn).unwrap(), seen, "the hook wrote nothing");
                let _ = slot.set(Arc::new(Mutex::new(docs)));
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(own_total(&setup.slot), -7, "the install's commit caught up");
        sell(&store, 8).await;
        assert_eq!(own_total(&setup.slot), -15);
        assert_eq!(outbox_len(&store).await, 3);
        store.close().await;

        // What is stored equals what was in memory: nothing recorded twice.
        let (store, setup) = open(dir.path());
        load_and_install(&store, &setup.slot, "s1", writer(), false)
            .await
            .unwrap();
        assert_eq!(own_total(&setup.slot), -15);
        let on_hand: i64 = store
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT on_hand FROM stock_level WHERE sku = 'MILK'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(on_hand, -15);
        store.close().await;
    }

    /// Should the sync tables change between the read and the install, the install reloads
    /// under the writer instead of installing the stale copy.
    #[tokio::test]
    async fn a_change_to_the_sync_tables_during_the_load_makes_the_install_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (store, setup) = open(dir.path());
        let (docs, seen) = store
            .read(|conn| Ok(load_snapshot(conn, "s1", writer()).unwrap()))
            .await
            .unwrap();
        assert_eq!(docs.epoch(), 0);
        store
            .write(|conn| {
                persist::state_set(conn, persist::KEY_EPOCH, 3).unwrap();
                Ok(())
            })
            .await
            .unwrap();
        install(&store, &setup.slot, "s1", writer(), (docs, seen), false)
            .await
            .unwrap();
        let (epoch, id) = {
            let installed = local::lock(setup.slot.get().unwrap());
            (installed.epoch(), installed.stock().core().id().clone())
        };
        assert_eq!(epoch, 3, "reloaded, not the stale copy");
        assert_eq!(id, DocId::new("s1", DocKind::Stock).unwrap());
        store.close().await;
    }

    fn metrics_text(sync: &NodeSync) -> String {
        let mut out = String::new();
        sync.metrics_fn()(&mut out);
        out
    }

    /// While the documents load: the node is ready (sync is not critical), `/readyz` and
    /// `diag sync` say "loading", the metrics say 0 and show no outbox; then the service runs.
    #[tokio::test(flavor = "current_thread")]
    async fn health_metrics_and_diag_say_loading_until_the_documents_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (store, setup) = open(dir.path());
        let health = Arc::new(Health::default());
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = SyncConfig {
            broker: crate::sync::config::BrokerConfig {
                host: "127.0.0.1".into(),
                port: unused.local_addr().unwrap().port(),
                tls: None,
            },
            resend_interval: Duration::from_millis(200),
            reconnect_max: Duration::from_millis(200),
            online_escrow_units: 0,
            lanes: None,
        };
        let sync = setup
            .start(&cfg, "t", "s1", "lane1", store.clone(), health.clone())
            .await
            .unwrap();
        // On this single-threaded runtime the loader has not run yet.
        let component = health.snapshot().remove(COMPONENT).unwrap();
        assert_eq!(component.state, State::Degraded);
        assert!(component.detail.contains("loading"), "{}", component.detail);
        assert!(!component.critical);
        assert!(health.ready());
        let text = metrics_text(&sync);
        assert!(text.contains("storenode_sync_documents_loaded 0"), "{text}");
        assert!(!text.contains("storenode_sync_outbox_length"), "{text}");
        let report = SyncInspector(sync.service().clone()).report().await;
        assert_eq!(report["documents"], "loading");

        let deadline = Instant::now() + Duration::from_secs(30);
        while !sync.service().is_loaded() {
            assert!(Instant::now() < deadline, "documents never loaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = metrics_text(&sync);
        assert!(text.contains("storenode_sync_documents_loaded 1"), "{text}");
        assert!(text.contains("storenode_sync_documents_load_ms"), "{text}");
        let report = SyncInspector(sync.service().clone()).report().await;
        assert_eq!(report["documents"], "loaded");
        assert_eq!(report["epoch"], 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while health.snapshot()[COMPONENT].detail.contains("loading") {
            assert!(Instant::now() < deadline, "health still says loading");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sync.stop().await;
        store.close().await;
    }
}
