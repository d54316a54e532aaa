//! Placing an online order (facts checked, escrow consumed, one change published to the
//! store) and HQ's cancel of one.

use std::collections::BTreeMap;

use super::{
    CancelRefused, HQ_ORDER_PREFIX, MAX_LINES, NewHqOrder, OrderLine, OrderRefused, invalid,
    orders_err,
};
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::orders::{OrderFacts, OrdersDoc, OrdersError};
use crate::domain::orders::OrderStatus;
use crate::hq::state::{HqError, HqState, Outgoing};
use crate::store::orders as store_orders;

impl HqState {
    /// Places an online order for a store: one change in its orders document, published
    /// to the store (which may be offline: it fetches the change when it reconnects).
    pub fn create_order(&mut self, order: &NewHqOrder) -> Result<Vec<Outgoing>, OrderRefused> {
        // Checked before any lock: a malformed store id is the caller's error (422), not HQ's.
        let id = DocId::new(&order.store, DocKind::Orders)
            .map_err(|e| super::invalid("store", e.to_string()))?;
        // The order id's lock too: an id is unique chain-wide, and two orders placed with
        // one id for two stores at once would each find it free.
        let names = [crate::hq::db::locks::order_lock(&order.order_id)];
        self.with_locks(&[id], &names, |hq| hq.create_order_locked(order))
    }

    fn create_order_locked(&mut self, order: &NewHqOrder) -> Result<Vec<Outgoing>, OrderRefused> {
        let facts = self.order_facts(order)?;
        // An epoch cut leaves closed orders out of the document: without this, their ids
        // were taken again (two orders listed under one id, escrow consumed for an order
        // no store ever saw).
        if self.archived_order_store(&facts.order_id)?.is_some() {
            return Err(OrderRefused::Archived(order.order_id.clone()));
        }
        // Taken at any store: one id, one order chain-wide (a lookup by id finds one).
        if self.indexed_order_store(&facts.order_id)?.is_some() {
            return Err(OrderRefused::Exists(order.order_id.clone()));
        }
        let id = DocId::new(&order.store, DocKind::Orders).map_err(HqError::from)?;
        if !self.docs.contains_key(&id) {
            let genesis = crate::crdt::doc::SyncDoc::genesis(&id, 0, self.writer.clone())
                .map_err(HqError::from)?;
            self.docs.insert(id.clone(), genesis);
        }
        let created = self
            .write_orders(&id, |doc| place_in(doc, &facts))
            .ok_or_else(|| orders_err(OrdersError::Unknown(facts.order_id.clone())))?;
        let change = match created {
            Ok(Some(change)) => change,
            Ok(None) => return Ok(Vec::new()),
            Err(Placing::Exists) => return Err(OrderRefused::Exists(order.order_id.clone())),
            Err(Placing::Short { sku, available }) => {
                return Err(OrderRefused::NotGranted { sku, available });
            }
            Err(Placing::Doc(e)) => return Err(orders_err(e).into()),
        };
        super::index::index_orders(&self.db, &order.store, [&facts.order_id])?;
        let outgoing = self.commit_order_change(&id, change.bytes)?;
        tracing::info!(order = order.order_id, store = order.store, fulfilment = %facts.fulfilment, "online order placed");
        Ok(outgoing)
    }

    /// `POST /v1/orders/{id}/cancel`: HQ's cancel event (the web shop's customer cancelled).
    /// The fold decides at every node: a collect or ship anywhere still wins, and the lane
    /// holding the units releases them when the cancel reaches it.
    pub fn cancel_order(&mut self, order_id: &str) -> Result<Vec<Outgoing>, CancelRefused> {
        // The index names the one document to lock and load; rows never change.
        let (id, _) = self
            .order_doc_id(order_id)?
            .ok_or_else(|| CancelRefused::Unknown(order_id.to_owned()))?;
        self.with_documents(&[id], |hq| hq.cancel_order_locked(order_id))
    }

    fn cancel_order_locked(&mut self, order_id: &str) -> Result<Vec<Outgoing>, CancelRefused> {
        let (id, doc_order_id) = self
            .find_order(order_id)?
            .ok_or_else(|| CancelRefused::Unknown(order_id.to_owned()))?;
        let cancelled = self
            .write_orders(&id, |doc| {
                if let Some(state) = doc.state(&doc_order_id).filter(|s| s.status.is_closed()) {
                    return Err(CancelRefused::Closed(state.status));
                }
                doc.record_status(
                    &doc_order_id,
                    OrderStatus::Cancelled,
                    crate::clock::now_ms(),
                )
                .map_err(|e| CancelRefused::from(orders_err(e)))
            })
            .ok_or_else(|| CancelRefused::Unknown(order_id.to_owned()))?;
        let change = cancelled?;
        let Some(change) = change else {
            return Ok(Vec::new()); // HQ had cancelled it already
        };
        let outgoing = self.commit_order_change(&id, change.bytes)?;
        tracing::info!(order = order_id, store = id.store, "order cancelled at HQ");
        Ok(outgoing)
    }

    fn order_facts(&self, order: &NewHqOrder) -> Result<OrderFacts, OrderRefused> {
        if !store_orders::is_valid_order_id(&order.order_id) {
            return Err(invalid(
                "order_id",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(OrderFacts {
            order_id: format!("{HQ_ORDER_PREFIX}{}", order.order_id),
            channel: order.channel.clone(),
            created_at_ms: crate::clock::now_ms(),
            pickup_code_hash: pickup_hash(order)?,
            fulfilment: self.fulfilment_lane(order)?,
            lines: order_lines(&order.lines)?,
            hold_hours: order.hold_hours,
            delivery: order.delivery,
        })
    }

    /// The store of an order archived at an epoch cut, by document order id.
    fn archived_order_store(&self, doc_order_id: &str) -> Result<Option<String>, HqError> {
        Ok(self.db.query_opt(
            "SELECT store FROM hq_closed_order WHERE doc_order_id = ?1",
            &[&doc_order_id],
            |r| r.get(0),
        )?)
    }

    fn fulfilment_lane(&self, order: &NewHqOrder) -> Result<WriterId, OrderRefused> {
        let named = match &order.node {
            Some(node) => Some(format!("{}.{node}", order.store)),
            None => self
                .db
                .query_opt(
                    "SELECT writer FROM hq_lane WHERE store = ?1
                     ORDER BY online DESC, writer LIMIT 1",
                    &[&order.store],
                    |r| r.get::<String>(0),
                )
                .map_err(HqError::from)?,
        };
        let Some(writer) = named else {
            return Err(OrderRefused::NoLane(order.store.clone()));
        };
        let lane = WriterId::new(&writer).map_err(|e| invalid("node", e.to_string()))?;
        // A lane retired for good would never hand the order over.
        if self.retired_writers(&order.store)?.contains_key(&lane) {
            return Err(invalid(
                "node",
                format!("{lane} was retired (storenode lane retire)"),
            ));
        }
        Ok(lane)
    }
}

/// The pickup-code hash from exactly one of `pickup_code` and `pickup_code_hash`.
pub(super) fn pickup_hash(order: &NewHqOrder) -> Result<[u8; 32], OrderRefused> {
    let hex_hash = match (&order.pickup_code, &order.pickup_code_hash) {
        (Some(code), None) => {
            let code = code.trim();
            if code.len() < 4 || code.len() > 32 {
                return Err(invalid("pickup_code", "must be 4 to 32 characters"));
            }
            store_orders::pickup_code_hash(&order.order_id, code)
        }
        (None, Some(hash)) => hash.to_ascii_lowercase(),
        _ => {
            return Err(invalid(
                "pickup_code",
                "give exactly one of pickup_code and pickup_code_hash",
            ));
        }
    };
    hex::decode(&hex_hash)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| invalid("pickup_code_hash", "must be 64 hex digits (SHA-256)"))
}

fn order_lines(lines: &[OrderLine]) -> Result<BTreeMap<String, i64>, OrderRefused> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(invalid(
            "lines",
            format!("an order needs 1 to {MAX_LINES} lines"),
        ));
    }
    let mut out = BTreeMap::new();
    for line in lines {
        if line.quantity <= 0 {
            return Err(invalid("lines", "quantity must be positive"));
        }
        let total: &mut i64 = out.entry(line.sku.clone()).or_default();
        *total = total.saturating_add(line.quantity);
    }
    Ok(out)
}

/// Why an order could not be written into its store's document.
enum Placing {
    Exists,
    Short { sku: String, available: i64 },
    Doc(OrdersError),
}

/// Writes HQ's order into the store's orders document, consuming its units from the
/// online escrow, unless the id is taken there or the escrow is short.
fn place_in(
    doc: &mut OrdersDoc,
    facts: &OrderFacts,
) -> Result<Option<crate::crdt::doc::LocalChange>, Placing> {
    if doc.facts(&facts.order_id).is_some() {
        return Err(Placing::Exists);
    }
    let short = facts.lines.iter().find_map(|(sku, qty)| {
        let available = doc.escrow_of(sku).remaining();
        (available < *qty).then(|| Placing::Short {
            sku: sku.clone(),
            available: available.max(0),
        })
    });
    if let Some(short) = short {
        return Err(short);
    }
    match doc.create_order_consuming_escrow(facts) {
        Err(OrdersError::Exists(_)) => Err(Placing::Exists),
        other => other.map_err(Placing::Doc),
    }
}
