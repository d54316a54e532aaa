//! The store's [`BatchHook`] for sync: runs on the writer thread inside every group commit.
//!
//! `before_commit` turns the batch's own movements into one stock change (logged and put in
//! the outbox) — or, with [`SyncHook::deferring`] (the node's hook) while the sync service
//! is offline, leaves them in SQLite above the high-water mark for the service to record
//! as one change per publish (`service::outbound::record_backlog`): a sale is durable once
//! its ledger rows commit, and a backlog made offline travels as one change per touched
//! key instead of one change per commit. Online, the sale's own commit records them: one
//! SQLite commit per sale, not the sale's and then the publisher's. It records click-and-collect status events in the orders document, and
//! writes `peer` movements for other writers' changes applied since, all in the batch's
//! transaction. Sync must never stop sales: if that fails, the hook's own
//! savepoint is rolled back, the documents are reloaded from what the transaction holds
//! without it, the failure is counted, and the batch commits; the movements stay above the
//! high-water mark and are picked up by the next commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rusqlite::Connection;
use tokio::sync::Notify;

use crate::store::{BatchHook, StoreError};
use crate::sync::local::{self, LocalError, NodeDocs, SharedDocs};

/// Counters the hook keeps for metrics.
#[derive(Debug, Default)]
pub struct HookMetrics {
    pub changes: AtomicU64,
    pub peer_movements: AtomicU64,
    pub failures: AtomicU64,
}

/// Filled once the store is open and the documents are loaded; until then the hook does
/// nothing (the movements stay above the high-water mark and go into the first change).
pub type DocsSlot = Arc<OnceLock<SharedDocs>>;

pub struct SyncHook {
    docs: DocsSlot,
    store_id: String,
    /// Wakes the sync service after a commit that produced a change.
    notify: Arc<Notify>,
    metrics: Arc<HookMetrics>,
    produced: bool,
    /// Own movements wait for the next publish instead of becoming a change per commit.
    defer_own: bool,
}

impl SyncHook {
    pub fn new(
        docs: DocsSlot,
        store_id: &str,
        notify: Arc<Notify>,
        metrics: Arc<HookMetrics>,
    ) -> Self {
        Self {
            docs,
            store_id: store_id.to_owned(),
            notify,
            metrics,
            produced: false,
            defer_own: false,
        }
    }

    /// Leaves own stock movements to the sync service's publisher, which records them
    /// (one change per publish, see the module comment) once it is connected again. They
    /// are still recorded here when other writers' changes must be reconciled first (the
    /// reconciliation moves the high-water mark past them), and while the service is
    /// connected and has recorded the backlog (`NodeDocs::set_recording_in_commit`): then
    /// the publisher would only add a second commit per sale.
    pub fn deferring(self) -> Self {
        Self {
            defer_own: true,
            ..self
        }
    }

    fn sync_batch(&mut self, conn: &Connection) -> Result<(), LocalError> {
        let Some(docs) = self.docs.get() else {
            return Ok(());
        };
        let now = crate::clock::now_utc();
        let at_ms = crate::clock::now_ms();
        let mut docs = local::lock(docs);
        if docs.is_adopting() {
            // Not caught up with HQ yet: no own change, and no peer rows either (they move
            // the high-water mark past the own movements still to be recorded).
            return Ok(());
        }
        // Before the stock change: the transfer movements it books go out in this commit.
        if docs.sync_transfers(conn, &now)? {
            self.produced = true;
        }
        if self.defer_own && !docs.stock_needs_reconcile() && !docs.is_recording_in_commit() {
            // Durable in the ledger; the publisher records them (and is woken for it).
            if docs.has_unrecorded_movements(conn)? {
                self.produced = true;
            }
        } else if docs.record_local_movements(conn, at_ms, &now)?.is_some() {
            self.metrics.changes.fetch_add(1, Ordering::Relaxed);
            self.produced = true;
        }
        if docs.record_order_events(conn, &now)? {
            self.produced = true;
        }
        if docs.record_escrow_grants(conn, &now)? {
            self.produced = true;
        }
        if docs.record_loyalty(conn, &now)? {
            self.produced = true;
        }
        if docs.record_coupon_redemptions(conn, &now)? {
            self.produced = true;
        }
        let peers = docs.reconcile_stock(conn, &now)?;
        self.metrics
            .peer_movements
            .fetch_add(peers as u64, Ordering::Relaxed);
        Ok(())
    }

    fn reload(&self, conn: &Connection) {
        let Some(docs) = self.docs.get() else {
            return;
        };
        let mut docs = local::lock(docs);
        let writer = docs.writer().clone();
        let adopting = docs.is_adopting();
        match NodeDocs::load(conn, &self.store_id, writer) {
            Ok(mut fresh) => {
                if adopting {
                    fresh.require_adoption();
                }
                *docs = fresh;
            }
            Err(e) => tracing::error!(error = %e, "cannot reload sync documents from SQLite"),
        }
    }
}

/// Records the own movements the hook left in SQLite ([`SyncHook::deferring`]) as one
/// stock change (a few for a long backlog), logged and put in the outbox. Run inside a
/// store write: the change, the outbox row and the new high-water mark commit together, so
/// a crash before the commit leaves the movements above the mark for the next call, and
/// one after it leaves them recorded once. Nothing while the incarnation still waits to
/// catch up with HQ (`NodeDocs::require_adoption`).
pub fn record_backlog(
    conn: &Connection,
    docs: &SharedDocs,
) -> Result<Option<automerge::ChangeHash>, LocalError> {
    let mut docs = local::lock(docs);
    if docs.is_adopting() {
        return Ok(None);
    }
    docs.record_local_movements(conn, crate::clock::now_ms(), &crate::clock::now_utc())
}

/// Records one chunk of a backlog pass planned on a reader ([`local::plan_backlog`]): its
/// change, outbox row and the pass's progress commit together, so the publisher can send
/// this chunk while it records the next, and a crash between two chunks loses none and
/// records none twice. Inside a savepoint: if it fails, SQLite is rolled back to before the
/// chunk and the documents are reloaded from it (the change was already applied in
/// memory). [`local::ChunkOutcome::Stale`] while the incarnation waits to catch up with HQ,
/// or when the store moved past the plan.
pub fn record_backlog_chunk(
    conn: &Connection,
    docs: &SharedDocs,
    pass: &local::Pass,
    chunk: &local::Chunk,
    last: bool,
) -> Result<local::ChunkOutcome, LocalError> {
    let mut docs = local::lock(docs);
    if docs.is_adopting() {
        return Ok(local::ChunkOutcome::Stale);
    }
    conn.execute_batch("SAVEPOINT backlog_chunk")?;
    let (at_ms, now) = (crate::clock::now_ms(), crate::clock::now_utc());
    match docs.record_chunk(conn, pass, chunk, last, at_ms, &now) {
        Ok(outcome) => {
            conn.execute_batch("RELEASE backlog_chunk")?;
            Ok(outcome)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO backlog_chunk; RELEASE backlog_chunk")?;
            let writer = docs.writer().clone();
            let store = docs.stock().core().id().store.clone();
            *docs = NodeDocs::load(conn, &store, writer)?;
            Err(e)
        }
    }
}

impl BatchHook for SyncHook {
    fn before_commit(&mut self, conn: &Connection) -> Result<(), StoreError> {
        conn.execute_batch("SAVEPOINT sync_hook")?;
        match self.sync_batch(conn) {
            Ok(()) => conn.execute_batch("RELEASE sync_hook")?,
            Err(e) => {
                self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "sync step of a commit failed; sales continue, retried at the next commit");
                conn.execute_batch("ROLLBACK TO sync_hook; RELEASE sync_hook")?;
                self.reload(conn);
            }
        }
        Ok(())
    }

    fn after_rollback(&mut self, conn: &Connection) {
        self.produced = false;
        self.reload(conn);
    }

    fn after_commit(&mut self) {
        if std::mem::take(&mut self.produced) {
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
#[path = "hook_tests.rs"]
mod tests;
