//! Loading the documents in the background at start (see the module documentation of
//! `node`, "Start-up"): read them on a reader connection, install them under the writer,
//! then start the service.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::hook::DocsSlot;
use super::service::SyncService;
use super::{COMPONENT, SyncHandle, report_health};
use crate::crdt::doc::WriterId;
use crate::health::{Health, State};
use crate::store::{Store, StoreError};
use crate::sync::config::SyncConfig;
use crate::sync::local::{LocalError, NodeDocs};

/// The background start of sync: load, install, start the service, then report health.
pub(super) struct Loader {
    pub(super) cfg: SyncConfig,
    pub(super) tenant: String,
    pub(super) store_id: String,
    pub(super) site: crate::epcis::Site,
    pub(super) writer: WriterId,
    pub(super) store: Store,
    pub(super) slot: DocsSlot,
    pub(super) notify: Arc<Notify>,
    pub(super) health: Arc<Health>,
    pub(super) handle: Arc<SyncHandle>,
    pub(super) shutdown: CancellationToken,
}

impl Loader {
    pub(super) async fn run(self) {
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
        // Loading left the heap full of freed pages (the catalog document read for its
        // heads, the change logs replayed): give them back.
        let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
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
pub(super) struct Fingerprint {
    state: Vec<(String, i64)>,
    changes: (i64, i64),
    outbox: (i64, i64),
    saved: Vec<(String, i64, String)>,
}

pub(super) fn fingerprint(conn: &Connection) -> Result<Fingerprint, rusqlite::Error> {
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
pub(super) fn load_snapshot(
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
pub(super) async fn install(
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
            docs.store_catalog_hashes(conn).map_err(inconsistent)?;
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
