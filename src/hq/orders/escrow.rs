//! The online escrow: units a store grants to the online channel (in its orders document),
//! consumed by HQ's orders, and given back with `POST /v1/escrow/{store}/{sku}/return`.

use std::collections::BTreeMap;

use super::{OrderRefused, invalid, orders_err};
use crate::crdt::doc::{DocId, DocKind};
use crate::crdt::escrow::{EscrowField, EscrowTotals};
use crate::crdt::orders::OrdersDoc;
use crate::hq::state::{HqError, HqState, Outgoing};

impl HqState {
    /// The online escrow of (store, sku) as stored.
    pub fn escrow_of(&mut self, store: &str, sku: &str) -> EscrowTotals {
        self.refresh_orders_of(store);
        self.loaded_escrow_of(store, sku)
    }

    /// [`Self::escrow_of`] from the document in memory (refreshed by the caller).
    pub(in crate::hq) fn loaded_escrow_of(&mut self, store: &str, sku: &str) -> EscrowTotals {
        self.read_store_orders(store, |doc| doc.escrow_of(sku))
            .unwrap_or_default()
    }

    /// Every SKU's escrow at `store` in memory (refreshed by the caller).
    pub(in crate::hq) fn loaded_escrow(&mut self, store: &str) -> BTreeMap<String, EscrowTotals> {
        self.read_store_orders(store, OrdersDoc::escrow_totals)
            .unwrap_or_default()
    }

    /// Every SKU's escrow at `store`.
    pub fn store_escrow(&mut self, store: &str) -> BTreeMap<String, EscrowTotals> {
        self.refresh_orders_of(store);
        self.loaded_escrow(store)
    }

    /// Takes `store`'s orders document as stored (a failure is logged: the copy in memory,
    /// if any, is shown).
    fn refresh_orders_of(&mut self, store: &str) {
        let refreshed = DocId::new(store, DocKind::Orders)
            .map_err(HqError::from)
            .and_then(|id| self.refresh(&id));
        if let Err(e) = refreshed {
            tracing::warn!(store, error = %e, "cannot read a store's orders document");
        }
    }

    /// `POST /v1/escrow/{store}/{sku}/return`: gives unused online units back to the store.
    pub fn return_escrow(
        &mut self,
        store: &str,
        sku: &str,
        quantity: i64,
    ) -> Result<Vec<Outgoing>, OrderRefused> {
        let id = DocId::new(store, DocKind::Orders).map_err(|e| invalid("store", e.to_string()))?;
        self.with_documents(&[id], |hq| hq.return_escrow_locked(store, sku, quantity))
    }

    fn return_escrow_locked(
        &mut self,
        store: &str,
        sku: &str,
        quantity: i64,
    ) -> Result<Vec<Outgoing>, OrderRefused> {
        if quantity <= 0 {
            return Err(invalid("quantity", "must be positive"));
        }
        let id = DocId::new(store, DocKind::Orders).map_err(HqError::from)?;
        let not_granted = |available: i64| OrderRefused::NotGranted {
            sku: sku.to_owned(),
            available: available.max(0),
        };
        let returned = self
            .write_orders(&id, |doc| {
                let available = doc.escrow_of(sku).remaining();
                if available < quantity {
                    return Err(not_granted(available));
                }
                let entries = [(sku.to_owned(), EscrowField::Returned, quantity)];
                doc.add_escrow(&entries, crate::clock::now_ms())
                    .map_err(|e| OrderRefused::from(orders_err(e)))
            })
            .ok_or_else(|| not_granted(0))?;
        let change = returned?;
        match change {
            Some(change) => Ok(self.commit_order_change(&id, change.bytes)?),
            None => Ok(Vec::new()),
        }
    }
}
