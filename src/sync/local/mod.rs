//! A store node's documents (its store's stock and orders, HQ's catalog) and their mapping
//! to SQLite. Orders: `orders.rs`; HQ's catalog: `catalog.rs`; epoch moves: `epochs.rs`; `peer`
//! movements that make SQLite follow the stock document: `reconcile.rs`.
//!
//! # Stock keys
//! The stock document holds per-writer totals per key (see [`crate::crdt::stock`]). On-hand
//! units use the SKU as key; units reserved for click-and-collect orders use
//! `"{sku}#r"` ([`reserved_key`]). `#` can never occur in a SKU (`store::catalog::check_sku`),
//! so the two never collide, and reservations get the same commutative per-writer totals,
//! epoch base and carry-over as on-hand stock without a second model. HQ computes
//! available-to-sell as on hand − reserved − safety stock from the same document.
//!
//! # SQLite is the query source
//! Own movements (every `stock_movement` row that is not kind `peer`, above a high-water
//! mark) become changes netted per SKU ([`NodeDocs::record_local_movements`], `backlog.rs`).
//! Changes of other writers are applied to the document and the difference between the
//! document's store-wide levels and SQLite's `stock_level` is written as `peer` movements
//! ([`NodeDocs::reconcile_stock`]), so every lane's SQLite shows the whole store's stock and
//! its ledger still sums to its levels.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use automerge::ChangeHash;
use rusqlite::Connection;

use crate::crdt::catalog::CatalogError;
use crate::crdt::doc::{ApplyOutcome, DocError, DocId, DocKind, SyncDoc, WriterId};
use crate::crdt::orders::{OrdersDoc, OrdersError};
use crate::crdt::stock::{StockDoc, StockError};
use crate::sync::persist::{self, KEY_EPOCH, KEY_MOVEMENT_MARK, PersistError};

/// `sync_state` key of the orders document's epoch.
pub const KEY_ORDERS_EPOCH: &str = "orders_epoch";

/// Suffix of the reserved-units key of a SKU in the stock document.
pub const RESERVED_SUFFIX: &str = "#r";

/// The stock-document key of the units of `sku` reserved for orders.
pub fn reserved_key(sku: &str) -> String {
    format!("{sku}{RESERVED_SUFFIX}")
}

/// `(sku, is_reserved)` of a stock-document key.
pub fn split_key(key: &str) -> (&str, bool) {
    match key.strip_suffix(RESERVED_SUFFIX) {
        Some(sku) => (sku, true),
        None => (key, false),
    }
}

/// Per SKU: (on hand, reserved), from a stock document's levels.
pub fn levels_by_sku(levels: &BTreeMap<String, i64>) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (key, qty) in levels {
        let (sku, reserved) = split_key(key);
        let entry = out.entry(sku.to_owned()).or_insert((0, 0));
        if reserved {
            entry.1 = entry.1.saturating_add(*qty);
        } else {
            entry.0 = entry.0.saturating_add(*qty);
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("document {0:?} is not one this node keeps")]
    ForeignDoc(DocId),
    #[error("message is for epoch {got} of {doc}, this node is on epoch {current}")]
    OtherEpoch { doc: String, got: u32, current: u32 },
    #[error("epoch switch: {0}")]
    Epoch(#[from] crate::crdt::epoch::EpochError),
    #[error("orders document: {0}")]
    Orders(#[from] OrdersError),
    #[error("the recorded own movements in memory and in SQLite disagree; reloading")]
    BacklogOutOfStep,
    #[error("orders epoch switch: {0}")]
    OrdersEpoch(#[from] crate::crdt::epoch_orders::OrdersEpochError),
}

/// What to apply from the network.
#[derive(Debug, Clone)]
pub enum RemoteChanges {
    Changes(Vec<Vec<u8>>),
    Bundle(Vec<u8>),
}

/// The documents of one node. Shared between the store's writer thread (the hook) and the
/// sync service, behind one mutex: [`SharedDocs`].
#[derive(Debug)]
pub struct NodeDocs {
    writer: WriterId,
    epoch: u32,
    stock: StockDoc,
    /// HQ's catalog: its heads and change hashes; the document is the sync service's
    /// while HQ's changes come in (`catalog.rs`).
    catalog: catalog::CatalogState,
    /// The store's orders document. It rolls into epochs like the stock document (HQ
    /// switches both together) but moves over on its own, once HQ's orders base arrives.
    orders: OrdersDoc,
    movement_mark: i64,
    /// Highest `cc_order_event.id` already recorded in the orders document.
    order_event_mark: i64,
    /// Other writers' changes were applied: SQLite needs `peer` movements.
    stock_needs_reconcile: bool,
    /// This incarnation has not caught up with HQ yet and must not write (see
    /// [`Self::require_adoption`]).
    adopting: bool,
    /// Own movements become a change in their own commit instead of waiting for the next
    /// publish ([`Self::set_recording_in_commit`]).
    recording_in_commit: bool,
    /// A pass over own movements being recorded in chunks: `(upper, SKUs done)`
    /// (`backlog.rs`).
    backlog: Option<(i64, i64)>,
}

pub type SharedDocs = Arc<Mutex<NodeDocs>>;

/// Locks the documents. A poisoned lock means a panic mid-update; the caller that next
/// fails to persist reloads from SQLite, so carrying on is safe.
pub fn lock(docs: &SharedDocs) -> MutexGuard<'_, NodeDocs> {
    docs.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NodeDocs {
    /// Rebuilds the documents from SQLite (at start, and after a rolled-back commit).
    pub fn load(conn: &Connection, store: &str, writer: WriterId) -> Result<Self, LocalError> {
        let epoch = persist::state_get(conn, KEY_EPOCH)?
            .and_then(|e| u32::try_from(e).ok())
            .unwrap_or(0);
        let stock_id = DocId::new(store, DocKind::Stock)?;
        let stock = StockDoc::from_core(persist::load_or_genesis(
            conn,
            &stock_id,
            epoch,
            writer.clone(),
        )?)?;
        let catalog = catalog::CatalogState::load(conn, writer.clone())?;
        let orders_epoch = persist::state_get(conn, KEY_ORDERS_EPOCH)?
            .and_then(|e| u32::try_from(e).ok())
            .unwrap_or(0);
        let orders_id = DocId::new(store, DocKind::Orders)?;
        let orders = OrdersDoc::from_core(persist::load_or_genesis(
            conn,
            &orders_id,
            orders_epoch,
            writer.clone(),
        )?)?;
        let movement_mark = persist::state_get(conn, KEY_MOVEMENT_MARK)?.unwrap_or(0);
        let backlog = Self::load_backlog(conn, movement_mark)?;
        let order_event_mark = persist::state_get(conn, orders::KEY_ORDER_EVENT_MARK)?.unwrap_or(0);
        Ok(Self {
            writer,
            epoch,
            stock,
            catalog,
            orders,
            movement_mark,
            order_event_mark,
            stock_needs_reconcile: false,
            adopting: false,
            recording_in_commit: false,
            backlog,
        })
    }

    /// While connected, a sale's own commit records its movements as a change (one SQLite
    /// commit per sale; the publisher has nothing left to record); while offline they wait
    /// for the next publish and are netted per SKU then (`sync::node::hook`). The sync
    /// service turns this on once connected with the backlog recorded, and off when the
    /// connection drops. Off after a reload: deferring is always correct, only slower.
    pub fn set_recording_in_commit(&mut self, on: bool) {
        self.recording_in_commit = on;
    }

    /// See [`Self::set_recording_in_commit`].
    pub fn is_recording_in_commit(&self) -> bool {
        self.recording_in_commit
    }

    /// Holds back every own write until [`Self::finish_adoption`]. A lane's database may be
    /// behind what its writer already published (restored from a backup, or copied to a
    /// replacement box); its totals are registers, so a put made before catching up would
    /// be concurrent with the earlier incarnation's later puts and one of them would be
    /// lost. Until then the high-water marks stay where they are, so the first commit after
    /// the adoption records everything sold meanwhile, once, on top of the totals the
    /// document holds for this writer by then (including those only HQ had).
    pub fn require_adoption(&mut self) {
        self.adopting = true;
    }

    /// This incarnation holds everything HQ has: it may write from now on. Call inside a
    /// store write.
    pub fn finish_adoption(&mut self, conn: &Connection, now: &str) -> Result<(), LocalError> {
        self.adopting = false;
        // What the orders document decided meanwhile, settled on the caught-up documents
        // (the earlier incarnation's own settlements included), once.
        self.settle_closed_at_cut(conn, now)?;
        self.materialise_orders(conn, now)
    }

    /// Whether own writes are still held back ([`Self::require_adoption`]).
    pub fn is_adopting(&self) -> bool {
        self.adopting
    }

    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn stock(&self) -> &StockDoc {
        &self.stock
    }

    pub fn orders(&self) -> &OrdersDoc {
        &self.orders
    }

    /// The document with this id, if this node keeps it in memory: the stock and orders
    /// documents. HQ's catalog is not among them (see [`Self::epoch_of`],
    /// [`Self::heads_of`], [`Self::lacks_any`] for what any kept document answers).
    pub fn doc(&self, id: &DocId) -> Option<&SyncDoc> {
        if id == self.stock.core().id() {
            Some(self.stock.core())
        } else if id == self.orders.core().id() {
            Some(self.orders.core())
        } else {
            None
        }
    }

    /// The epoch this node is on for `id`, if it keeps that document (the catalog: 0).
    pub fn epoch_of(&self, id: &DocId) -> Option<u32> {
        match self.doc(id) {
            Some(doc) => Some(doc.epoch()),
            None => (id == self.catalog.id()).then_some(0),
        }
    }

    /// The heads of the document `id`, if this node keeps it.
    pub fn heads_of(&self, id: &DocId) -> Option<Vec<ChangeHash>> {
        match self.doc(id) {
            Some(doc) => Some(doc.heads()),
            None => (id == self.catalog.id()).then(|| self.catalog.heads().to_vec()),
        }
    }

    /// Whether `heads` name a change the document `id` lacks (it is behind the peer that
    /// sent them); `false` for a document this node does not keep.
    pub fn lacks_any(&self, id: &DocId, heads: &[ChangeHash]) -> bool {
        match self.doc(id) {
            Some(doc) => heads.iter().any(|h| !doc.has_change(h)),
            None => id == self.catalog.id() && !self.catalog.knows_all(heads),
        }
    }

    /// Whether own movements were committed that no change records yet (the sync hook
    /// defers them to the next publish, see `sync::node::hook`).
    pub fn has_unrecorded_movements(&self, conn: &Connection) -> Result<bool, LocalError> {
        Ok(persist::movements_above(conn, self.movement_mark)?)
    }

    /// Whether other writers' changes were applied and SQLite needs `peer` movements; own
    /// movements must be recorded first ([`Self::reconcile_stock`] moves the mark).
    pub fn stock_needs_reconcile(&self) -> bool {
        self.stock_needs_reconcile
    }

    /// Applies other writers' changes (validated, all or nothing) and logs them.
    pub fn apply_remote(
        &mut self,
        conn: &Connection,
        id: &DocId,
        epoch: u32,
        changes: &RemoteChanges,
        now: &str,
    ) -> Result<ApplyOutcome, LocalError> {
        let is_stock = id == self.stock.core().id();
        let is_orders = id == self.orders.core().id();
        let Some(current) = self.epoch_of(id) else {
            return Err(LocalError::ForeignDoc(id.clone()));
        };
        if epoch != current {
            return Err(LocalError::OtherEpoch {
                doc: persist::doc_key(id),
                got: epoch,
                current,
            });
        }
        if !is_stock && !is_orders {
            return self.apply_catalog(conn, changes, now);
        }
        let core = if is_stock {
            self.stock.core_mut()
        } else {
            self.orders.core_mut()
        };
        // Apply first (atomic on malformed input), then log; a failed log write makes the
        // caller's store write fail, and the rollback hook reloads the documents.
        let (outcome, bytes, bundle): (ApplyOutcome, Vec<&[u8]>, bool) = match changes {
            RemoteChanges::Changes(list) => (
                core.apply_changes(list)?,
                list.iter().map(Vec::as_slice).collect(),
                false,
            ),
            RemoteChanges::Bundle(b) => (core.apply_bundle(b)?, vec![b.as_slice()], true),
        };
        if outcome.applied + outcome.queued > 0 {
            for b in bytes {
                persist::persist_change(conn, core, b, bundle, now)?;
            }
            if is_stock {
                self.stock_needs_reconcile = true;
            } else {
                // Settled on the documents caught up, like own sales (`require_adoption`).
                if !self.adopting {
                    self.materialise_orders(conn, now)?;
                }
                self.refresh_escrow(conn)?;
                self.refresh_loyalty(conn)?;
            }
        }
        Ok(outcome)
    }

    fn set_mark(&mut self, conn: &Connection, mark: i64) -> Result<(), LocalError> {
        if mark > self.movement_mark {
            persist::state_set(conn, KEY_MOVEMENT_MARK, mark)?;
            self.movement_mark = mark;
        }
        // A pass the mark moved past is over (the reconciliation moves it past every row).
        if self.backlog.is_some_and(|(upper, _)| upper <= mark) {
            self.set_backlog(conn, None)?;
        }
        Ok(())
    }
}

mod orders;

mod backlog;
pub use backlog::{
    BacklogPlan, Chunk, ChunkOutcome, KEY_BACKLOG_DONE, KEY_BACKLOG_UPPER, MAX_KEYS_PER_CHANGE,
    Pass, plan_backlog,
};

mod catalog;
pub use catalog::{
    CATALOG_BATCH, CATALOG_JOB_BUDGET, CatalogDelta, CatalogWork, KEY_CATALOG_PENDING,
    derive_change, projection_pending, read_catalog, unwritten_items, write_items,
};

mod coupons;
mod escrow;
mod loyalty;

mod transfers;

mod epochs;
mod reconcile;
pub use reconcile::peer_movement_count;

#[cfg(test)]
#[path = "restore_tests.rs"]
mod restore_tests;

/// Own changes still in the outbox, and the ids of rows HQ's `hq_heads` acknowledge.
pub fn acknowledged_rows(
    conn: &Connection,
    doc: &SyncDoc,
    hq_heads: &[ChangeHash],
) -> Result<Vec<i64>, LocalError> {
    let pending: std::collections::BTreeSet<ChangeHash> =
        doc.own_changes_not_in(hq_heads).into_iter().collect();
    Ok(persist::outbox(conn, doc.id(), doc.epoch())?
        .into_iter()
        .filter(|entry| !pending.contains(&entry.hash))
        .map(|entry| entry.id)
        .collect())
}

/// Removes acknowledged outbox rows; returns how many.
pub fn acknowledge(
    conn: &Connection,
    doc: &SyncDoc,
    hq_heads: &[ChangeHash],
) -> Result<usize, LocalError> {
    let rows = acknowledged_rows(conn, doc, hq_heads)?;
    persist::outbox_remove(conn, &rows)?;
    Ok(rows.len())
}
