//! Moving a node's stock and orders documents to HQ's next epoch, with this writer's
//! carry-over, in one transaction.

use super::{KEY_ORDERS_EPOCH, LocalError, NodeDocs, RemoteChanges};
use crate::crdt::doc::{DocId, SyncDoc, WriterId};
use crate::crdt::orders::OrdersDoc;
use crate::crdt::stock::StockDoc;
use crate::sync::persist::{self, KEY_EPOCH};
use rusqlite::Connection;

impl NodeDocs {
    /// Moves this writer to the stock epoch `epoch` (= current + 1) given changes of that
    /// epoch from HQ. Returns `false`, changing nothing, while they do not include HQ's base
    /// change (carrying over without the cut would count the pre-cut work twice).
    ///
    /// In one transaction: the new document with this writer's carry-over (its work after
    /// the cut, [`crate::crdt::epoch::carry_over`]) is saved, the old epoch's history and outbox
    /// are deleted (the carry-over replaces them), and the epoch number is stored. Own
    /// movements not yet turned into a change are picked up by the next change, in the new
    /// epoch, since the carry-over only reads the old document.
    pub fn move_to_epoch(
        &mut self,
        conn: &Connection,
        epoch: u32,
        changes: &RemoteChanges,
        at_ms: i64,
        now: &str,
    ) -> Result<bool, LocalError> {
        let id = self.stock.core().id().clone();
        check_next(&id, self.epoch, epoch)?;
        let mut next = StockDoc::genesis(&id.store, epoch, self.writer.clone())?;
        if !apply_whole(next.core_mut(), changes)? || !has_epoch_base(&next) {
            return Ok(false);
        }
        let carried = crate::crdt::epoch::carry_over(&self.stock, &mut next, at_ms)?;
        persist::replace_epoch(conn, next.core(), carried.as_ref().map(|c| &c.hash), now)?;
        persist::state_set(conn, KEY_EPOCH, i64::from(epoch))?;
        self.stock = next;
        self.epoch = epoch;
        self.stock_needs_reconcile = true;
        Ok(true)
    }

    /// Moves the orders document to epoch `epoch` (= its current + 1) given changes of that
    /// epoch from HQ; `false`, changing nothing, while they lack HQ's base. As for stock, in
    /// one transaction: the new document with this writer's carry-over
    /// ([`crate::crdt::epoch_orders::carry_over_orders`]) is saved, the old epoch's history and
    /// outbox are deleted, and the epoch is stored; then SQLite follows the new document.
    pub fn move_orders_to_epoch(
        &mut self,
        conn: &Connection,
        epoch: u32,
        changes: &RemoteChanges,
        at_ms: i64,
        now: &str,
    ) -> Result<bool, LocalError> {
        let id = self.orders.core().id().clone();
        check_next(&id, self.orders.core().epoch(), epoch)?;
        let mut next = OrdersDoc::genesis(&id.store, epoch, self.writer.clone())?;
        if !apply_whole(next.core_mut(), changes)? || !next.has_base() {
            return Ok(false);
        }
        let carried = crate::crdt::epoch_orders::carry_over_orders(&self.orders, &mut next, at_ms)?;
        persist::replace_epoch(conn, next.core(), carried.as_ref().map(|c| &c.hash), now)?;
        persist::state_set(conn, KEY_ORDERS_EPOCH, i64::from(epoch))?;
        self.orders = next;
        if !self.adopting {
            self.settle_closed_at_cut(conn, now)?;
            self.materialise_orders(conn, now)?;
        }
        self.refresh_escrow(conn)?;
        self.refresh_loyalty(conn)?;
        Ok(true)
    }
}

/// An epoch move goes to the next epoch only.
fn check_next(id: &DocId, current: u32, epoch: u32) -> Result<(), LocalError> {
    if current.checked_add(1) == Some(epoch) {
        Ok(())
    } else {
        Err(LocalError::OtherEpoch {
            doc: persist::doc_key(id),
            got: epoch,
            current,
        })
    }
}

/// Applies HQ's changes to a new epoch's document; whether none waits for a missing one.
fn apply_whole(doc: &mut SyncDoc, changes: &RemoteChanges) -> Result<bool, LocalError> {
    match changes {
        RemoteChanges::Changes(list) => doc.apply_changes(list)?,
        RemoteChanges::Bundle(bundle) => doc.apply_bundle(bundle)?,
    };
    Ok(doc.missing_deps().is_empty())
}

/// Whether an epoch document holds HQ's base change (the only change HQ makes in it).
fn has_epoch_base(doc: &StockDoc) -> bool {
    let hq = WriterId::hq().actor();
    doc.core()
        .automerge()
        .get_changes_meta(&[])
        .iter()
        .any(|meta| *meta.actor == hq)
}
