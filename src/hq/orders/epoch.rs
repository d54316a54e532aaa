//! The orders document's epochs at HQ: the next one is built at HQ's heads when the store's
//! stock epoch opens (`hq::state`), orders closed by then are archived in
//! `hq_closed_order` and left out, and older epochs are dropped once every writer moved over.

use super::orders_err;
use super::views::Archived;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::epoch_orders::{OrdersCut, open_next_orders_epoch, orders_all_moved_over_but};
use crate::crdt::orders::OrdersDoc;
use crate::hq::db::{Db, docs};
use crate::hq::state::{HqError, HqState, Outgoing};
use crate::sync::payload::SyncMessage;
use crate::sync::persist;
use crate::sync::service::kind_id;
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::WireError;

impl HqState {
    /// The newest epoch of an orders document HQ has stored (0 if none).
    pub(in crate::hq) fn stored_orders_epoch(&self, id: &DocId) -> Result<u32, HqError> {
        let epoch: Option<i64> = self.db.query_one(
            "SELECT max(epoch) FROM (SELECT epoch FROM sync_doc WHERE doc_key = ?1
             UNION ALL SELECT epoch FROM sync_change WHERE doc_key = ?1) AS stored",
            &[&persist::doc_key(id)],
            |r| r.get(0),
        )?;
        Ok(epoch.and_then(|e| u32::try_from(e).ok()).unwrap_or(0))
    }

    /// The epoch of HQ's orders document of `id`'s store (0 before it has one).
    pub(in crate::hq) fn orders_epoch(&self, id: &DocId) -> u32 {
        self.docs
            .get(id)
            .map_or(0, crate::crdt::doc::SyncDoc::epoch)
    }

    /// Whether every store writer named in the cut of the store's current orders epoch has
    /// carried over or was retired for good (always true in epoch 0), so the next epoch may
    /// open.
    pub(in crate::hq) fn orders_moved_over(&mut self, store: &str) -> bool {
        let retired = self.retired_set(store);
        self.read_store_orders(store, |doc| orders_all_moved_over_but(doc, &retired))
            .unwrap_or(true)
    }

    /// The next epoch of a store's orders document, built at HQ's current heads (from the
    /// genesis if HQ has none yet), and the closed orders it leaves out.
    pub(in crate::hq) fn rolled_orders(&mut self, store: &str) -> Result<RolledOrders, HqError> {
        let id = DocId::new(store, DocKind::Orders)?;
        let writer = self.writer.clone();
        match self.read_orders(&id, |old| roll(old, &id, writer.clone())) {
            Some(rolled) => rolled,
            None => {
                let genesis = OrdersDoc::genesis(store, 0, writer.clone()).map_err(orders_err)?;
                roll(&genesis, &id, writer)
            }
        }
    }

    /// Stores the new orders epoch and the closed orders' final views (inside HQ's epoch
    /// transaction, with the stock switch).
    pub(in crate::hq) fn save_rolled_orders(
        &self,
        tx: &Db,
        rolled: &RolledOrders,
        now: &str,
    ) -> Result<(), HqError> {
        docs::save_doc(tx, rolled.new.core(), now)?;
        for (doc_order_id, archived) in &rolled.closed {
            tx.execute(
                "INSERT INTO hq_closed_order (doc_order_id, store, epoch, archived)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(doc_order_id) DO UPDATE SET archived = excluded.archived,
                     epoch = excluded.epoch",
                &[doc_order_id, &rolled.id.store, &rolled.old_epoch, archived],
            )?;
        }
        Ok(())
    }

    /// Switches HQ to the new orders epoch; returns its retained heads (the announcement a
    /// lane finds, also after being offline) and an `EpochAnnounce`.
    pub(in crate::hq) fn install_rolled_orders(
        &mut self,
        rolled: RolledOrders,
    ) -> Result<Vec<Outgoing>, HqError> {
        let RolledOrders { id, new, cut, .. } = rolled;
        tracing::info!(
            store = id.store,
            epoch = cut.epoch,
            writers = cut.writer_cut.len(),
            closed = cut.dropped.len(),
            "opened a new orders epoch"
        );
        self.docs.insert(id.clone(), new.into_core());
        let announce = SyncMessage::EpochAnnounce {
            doc: id.clone(),
            epoch: cut.epoch,
            cut_heads: Vec::new(),
        }
        .encode()
        .map_err(|e| HqError::from(WireError::from(e)))?;
        Ok(vec![
            Outgoing {
                topic: self.orders_changes_topic(&id)?,
                payload: announce,
                retain: false,
            },
            self.heads_outgoing(&id)?,
        ])
    }

    /// Deletes an orders document's older epochs once every writer in the cut moved over.
    pub(in crate::hq) fn drop_closed_orders_epochs(&mut self, id: &DocId) -> Result<(), HqError> {
        let epoch = self.orders_epoch(id);
        if epoch == 0 || !self.orders_moved_over(&id.store) {
            return Ok(());
        }
        let dropped = docs::drop_epochs_before(&self.db, id, epoch)?;
        if dropped > 0 {
            tracing::info!(
                store = id.store,
                epoch,
                "every writer moved over; older orders epochs dropped"
            );
        }
        Ok(())
    }

    fn orders_changes_topic(&self, id: &DocId) -> Result<String, HqError> {
        Ok(self
            .topics
            .changes_about(
                &Scope::Hq,
                &crate::sync::service::scope_of(id)?,
                &kind_id(DocKind::Orders)?,
                &Id::new(self.writer.as_str())?,
            )
            .to_string())
    }
}

/// The next epoch of `old` (orders document `id`) at its heads, and the closed orders it
/// leaves out, as [`Archived`] JSON.
fn roll(old: &OrdersDoc, id: &DocId, writer: WriterId) -> Result<RolledOrders, HqError> {
    let (new, cut) = open_next_orders_epoch(old, writer, crate::clock::now_ms())?;
    let closed = cut
        .dropped
        .iter()
        .filter_map(|doc_order_id| {
            let archived = Archived::of(old, doc_order_id)?;
            Some((doc_order_id.clone(), serde_json::to_string(&archived).ok()?))
        })
        .collect();
    Ok(RolledOrders {
        id: id.clone(),
        old_epoch: old.core().epoch(),
        new,
        cut,
        closed,
    })
}

/// A store's next orders epoch, built but not yet stored or switched to.
pub(in crate::hq) struct RolledOrders {
    id: DocId,
    old_epoch: u32,
    new: OrdersDoc,
    cut: OrdersCut,
    /// (document order id, [`Archived`] as JSON) of the orders left out.
    closed: Vec<(String, String)>,
}
