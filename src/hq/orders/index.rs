//! The order-id → store index (`hq_order_store`): `GET /v1/orders/{id}` and a cancel load
//! the one orders document that holds the order, whichever documents are in memory.
//!
//! Rows are added, never changed: an order stays in the document of the store it was
//! placed at. A key of a store's change that is not an order id (a transfer id has the same
//! `{writer}:{id}` shape) may be indexed too; looking it up finds no order in that
//! document, the same answer as no row.

use std::collections::BTreeSet;

use crate::crdt::doc::{DocId, DocKind};
use crate::hq::db::Db;
use crate::hq::state::{HqError, HqState};

/// Records that `store`'s orders document holds `doc_order_ids`.
pub(in crate::hq) fn index_orders<'a>(
    db: &Db,
    store: &str,
    doc_order_ids: impl IntoIterator<Item = &'a String>,
) -> Result<(), HqError> {
    for doc_order_id in doc_order_ids {
        db.execute(
            "INSERT INTO hq_order_store (doc_order_id, store) VALUES (?1, ?2)
             ON CONFLICT(doc_order_id) DO NOTHING",
            &[doc_order_id, &store],
        )?;
    }
    Ok(())
}

/// The order ids a store's orders changes may have added: the map keys they write that
/// have an order id's `{writer}:{id}` shape (`None`: a change does not decode).
pub(in crate::hq) fn touched_order_ids(changes: &[Vec<u8>]) -> Option<BTreeSet<String>> {
    let keys = crate::crdt::doc::touched_keys(changes)?;
    Some(keys.into_iter().filter(|k| k.contains(':')).collect())
}

impl HqState {
    /// Every order id of orders document `id` in memory, read in place (none: not in memory).
    pub(in crate::hq) fn order_ids_in(&mut self, id: &DocId) -> BTreeSet<String> {
        self.read_orders(id, |doc| doc.order_ids().into_iter().collect())
            .unwrap_or_default()
    }

    /// The store whose orders document holds `doc_order_id`, by the index.
    pub(in crate::hq) fn indexed_order_store(
        &self,
        doc_order_id: &str,
    ) -> Result<Option<String>, HqError> {
        Ok(self.db.query_opt(
            "SELECT store FROM hq_order_store WHERE doc_order_id = ?1",
            &[&doc_order_id],
            |r| r.get(0),
        )?)
    }

    /// Fills the index from the orders documents stored before it existed (once, at the
    /// first start after the migration), one document in memory at a time.
    pub(in crate::hq) fn index_stored_orders(&mut self) -> Result<(), HqError> {
        let pending: i64 =
            self.db
                .query_one("SELECT count(*) FROM hq_order_index_pending", &[], |r| {
                    r.get(0)
                })?;
        if pending == 0 {
            return Ok(());
        }
        let stores: Vec<String> = self
            .db
            .query("SELECT store FROM hq_store", &[], |r| r.get(0))?;
        for store in stores {
            let id = DocId::new(&store, DocKind::Orders)?;
            self.refresh(&id)?;
            let ids = self.order_ids_in(&id);
            index_orders(&self.db, &store, &ids)?;
            self.trim();
        }
        self.db.execute("DELETE FROM hq_order_index_pending", &[])?;
        tracing::info!("order index filled from the stored orders documents");
        Ok(())
    }
}
