//! Online click-and-collect orders at HQ: HQ writes them into the store's orders document
//! (order id `hq:{order id}`), stores fold everyone's status events, HQ shows the result.
//!
//! The pickup code is hashed as the store hashes it ([`crate::store::orders::pickup_code_hash`])
//! before anything is stored: neither the code nor personal data enter CRDT history, which
//! cannot be erased.
//!
//! - `place.rs`: placing and cancelling an order;
//! - `escrow.rs`: the units stores grant to the online channel, and giving them back;
//! - `views.rs`: what HQ shows of an order, live or archived at an epoch cut;
//! - `epoch.rs`: the orders document's epochs (rolled with the store's stock epoch);
//! - `index.rs`: which store's document holds each order id;
//! - `http.rs`: `/v1/orders` and `/v1/escrow`.
//!
//! Store-to-store transfers travel in the same documents: see [`super::transfers`].

mod epoch;
mod escrow;
pub(super) mod http;
pub(super) mod index;
mod place;
#[cfg(test)]
mod tests;
mod views;

use crate::hq::db::docs;
use std::collections::BTreeMap;

use super::state::{HqError, HqState, Outgoing};
use crate::crdt::doc::{DocId, DocKind};
use crate::crdt::orders::{OrdersDoc, OrdersError};
use crate::domain::orders::{OrderEvent, OrderStatus};
use crate::store::orders::Delivery;
use crate::sync::payload::SyncMessage;
use crate::sync::service::kind_id;
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::WireError;

const HQ_ORDER_PREFIX: &str = "hq:";
const MAX_LINES: usize = 200;

/// `POST /v1/orders`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHqOrder {
    pub order_id: String,
    pub store: String,
    pub lines: Vec<OrderLine>,
    /// The code the web shop shows the customer; hashed at once, never stored.
    pub pickup_code: Option<String>,
    /// Or the hash the shop computed itself (64 hex digits, as the store computes it).
    pub pickup_code_hash: Option<String>,
    pub hold_hours: Option<u32>,
    /// `collect` (default) or `ship` (ship-from-store).
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default = "web")]
    pub channel: String,
    /// The lane that reserves and fulfils the order (`None`: a lane HQ has seen, online
    /// ones first).
    pub node: Option<String>,
    /// Name, phone, e-mail (and address for ship-from-store): kept beside the documents,
    /// never in them, so it can be erased (`crate::hq::privacy`).
    #[serde(default)]
    pub customer: Option<crate::domain::customer::Customer>,
}

fn web() -> String {
    "web".to_owned()
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i64,
}

/// Why HQ refused an order (422 or 409 over HTTP).
#[derive(Debug, thiserror::Error)]
pub enum OrderRefused {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("order id {0:?} is taken: an order with this id exists; order ids are never reused")]
    Exists(String),
    /// The id of an order closed and archived at an epoch cut (`hq_closed_order`): it is
    /// no longer in the document, but `GET /v1/orders/{id}` still shows it.
    #[error(
        "order id {0:?} is taken: the order was closed and archived at an epoch cut; order ids are never reused"
    )]
    Archived(String),
    #[error("store {0:?} has no lane HQ knows of; name one in `node`")]
    NoLane(String),
    #[error(
        "only {available} of {sku} are granted to the online channel at this store; the store grants more with POST /v1/escrow/grants"
    )]
    NotGranted { sku: String, available: i64 },
    #[error(transparent)]
    Hq(#[from] HqError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> OrderRefused {
    OrderRefused::Invalid {
        field,
        reason: reason.into(),
    }
}

/// `GET /v1/orders/{id}`: the folded status and the whole history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqOrderView {
    pub order_id: String,
    pub store: String,
    pub channel: String,
    pub delivery: Delivery,
    pub created_at_ms: i64,
    pub fulfilment: String,
    pub lines: BTreeMap<String, i64>,
    pub status: Option<OrderStatus>,
    pub decided_by: Option<OrderEvent>,
    /// Every writer's status events, oldest first.
    pub history: Vec<OrderEvent>,
}

/// Why HQ refused a cancel (404 or 409 over HTTP).
#[derive(Debug, thiserror::Error)]
pub enum CancelRefused {
    #[error("order {0:?} is unknown")]
    Unknown(String),
    #[error("the order is already {}", .0.as_str())]
    Closed(OrderStatus),
    #[error(transparent)]
    Hq(#[from] HqError),
}

fn orders_err(e: OrdersError) -> HqError {
    HqError::Doc(crate::crdt::doc::DocError::NotOurDocument(e.to_string()))
}

/// `read` on the documents `a` and `b` (the same one when `a == b`), each as given or, when
/// not given, its genesis.
fn read_pair<T>(
    first: Option<&OrdersDoc>,
    second: Option<&OrdersDoc>,
    (a, b): (&DocId, &DocId),
    writer: crate::crdt::doc::WriterId,
    read: impl FnOnce(&OrdersDoc, &OrdersDoc) -> T,
) -> Result<T, HqError> {
    let genesis_a;
    let genesis_b;
    let x = match first {
        Some(doc) => doc,
        None => {
            genesis_a = genesis_of(a, writer.clone())?;
            &genesis_a
        }
    };
    let y = match second {
        _ if a == b => x,
        Some(doc) => doc,
        None => {
            genesis_b = genesis_of(b, writer)?;
            &genesis_b
        }
    };
    Ok(read(x, y))
}

/// The empty orders document `id` (epoch 0), as every node builds it.
fn genesis_of(id: &DocId, writer: crate::crdt::doc::WriterId) -> Result<OrdersDoc, HqError> {
    let core = crate::crdt::doc::SyncDoc::genesis(id, 0, writer)?;
    OrdersDoc::from_core(core).map_err(orders_err)
}

/// The document id of an order id given to HQ's API (`hq:` added to HQ's own ids).
fn doc_order_id_of(order_id: &str) -> String {
    if order_id.contains(':') {
        order_id.to_owned()
    } else {
        format!("{HQ_ORDER_PREFIX}{order_id}")
    }
}

impl HqState {
    /// Stores one change HQ made in an orders document and returns the messages that
    /// publish it (the change, and HQ's retained heads). A change that cannot be stored is
    /// dropped with the in-memory document: not stored means not made.
    pub(in crate::hq) fn commit_order_change(
        &mut self,
        id: &DocId,
        bytes: Vec<u8>,
    ) -> Result<Vec<Outgoing>, HqError> {
        if let Err(e) = self.persist_order_change(id, &bytes) {
            let epoch = self.orders_epoch(id);
            let doc = docs::load_or_genesis(&self.db, id, epoch, self.writer.clone())?;
            self.docs.insert(id.clone(), doc);
            return Err(e);
        }
        let topic = self
            .topics
            .changes_about(
                &Scope::Hq,
                &crate::sync::service::scope_of(id)?,
                &kind_id(DocKind::Orders)?,
                &Id::new(self.writer.as_str())?,
            )
            .to_string();
        let payload = SyncMessage::Changes {
            doc: id.clone(),
            epoch: self.orders_epoch(id),
            changes: vec![bytes],
        }
        .encode()
        .map_err(|e| HqError::from(WireError::from(e)))?;
        Ok(vec![
            Outgoing {
                topic,
                payload,
                retain: false,
            },
            self.heads_outgoing(id)?,
        ])
    }

    /// Runs `read` on the orders document `id` in memory, typed without a copy (`None`: not
    /// in memory). A typed copy (`OrdersDoc::from_core(doc.clone())`) cloned the document's
    /// whole history, and HQ made several after every orders change (transfers, points,
    /// coupon asks, the epoch check), so its per-change cost grew with the day's history.
    pub(in crate::hq) fn read_orders<T>(
        &mut self,
        id: &DocId,
        read: impl FnOnce(&OrdersDoc) -> T,
    ) -> Option<T> {
        let doc = self.take_orders(id)?;
        let value = read(&doc);
        self.put_orders(doc);
        Some(value)
    }

    /// [`Self::read_orders`] of `store`'s orders document (refreshed by the caller).
    fn read_store_orders<T>(
        &mut self,
        store: &str,
        read: impl FnOnce(&OrdersDoc) -> T,
    ) -> Option<T> {
        let id = DocId::new(store, DocKind::Orders).ok()?;
        self.read_orders(&id, read)
    }

    /// Runs `write` on the orders document `id` in memory, in place (`None`: not in memory).
    /// What it changes is in memory only: the caller stores the change
    /// ([`Self::commit_order_change`]), or its failure takes the document again as stored.
    pub(in crate::hq) fn write_orders<T>(
        &mut self,
        id: &DocId,
        write: impl FnOnce(&mut OrdersDoc) -> T,
    ) -> Option<T> {
        let mut doc = self.take_orders(id)?;
        let value = write(&mut doc);
        self.put_orders(doc);
        Some(value)
    }

    /// Runs `read` on two orders documents at once (a transfer's sender and receiver), each
    /// as in memory or, when HQ has none in memory, its genesis; typed without a copy.
    pub(in crate::hq) fn read_orders_pair<T>(
        &mut self,
        a: &DocId,
        b: &DocId,
        read: impl FnOnce(&OrdersDoc, &OrdersDoc) -> T,
    ) -> Result<T, HqError> {
        let writer = self.writer.clone();
        let first = self.take_orders(a);
        let second = if a == b { None } else { self.take_orders(b) };
        let value = read_pair(first.as_ref(), second.as_ref(), (a, b), writer, read);
        for doc in [first, second].into_iter().flatten() {
            self.put_orders(doc);
        }
        value
    }

    /// [`Self::read_orders`], reading the genesis when HQ has no copy of `id` in memory.
    pub(in crate::hq) fn read_orders_or_genesis<T>(
        &mut self,
        id: &DocId,
        read: impl FnOnce(&OrdersDoc) -> T,
    ) -> Result<T, HqError> {
        self.read_orders_pair(id, id, |doc, _| read(doc))
    }

    /// The orders document `id`, moved out of memory and typed (`None`: not in memory, or
    /// not an orders document). Only for [`Self::read_orders`] and [`Self::write_orders`],
    /// which give it back before anything else can run: while it is out, HQ's copy of `id`
    /// is missing with its version still recorded, so a use would see no document.
    fn take_orders(&mut self, id: &DocId) -> Option<OrdersDoc> {
        self.docs.get(id)?.expect_kind(DocKind::Orders).ok()?;
        OrdersDoc::from_core(self.docs.remove(id)?).ok()
    }

    fn put_orders(&mut self, doc: OrdersDoc) {
        let id = doc.core().id().clone();
        self.docs.insert(id, doc.into_core());
    }

    /// The orders document id of `order_id` (an id given to `POST /v1/orders`, or a
    /// store-taken order's `{writer}:{id}`) from the index, and its document order id.
    fn order_doc_id(&self, order_id: &str) -> Result<Option<(DocId, String)>, HqError> {
        let doc_order_id = doc_order_id_of(order_id);
        let Some(store) = self.indexed_order_store(&doc_order_id)? else {
            return Ok(None);
        };
        Ok(Some((DocId::new(&store, DocKind::Orders)?, doc_order_id)))
    }

    /// [`Self::order_doc_id`] of an order its document (loaded now) holds.
    fn find_order(&mut self, order_id: &str) -> Result<Option<(DocId, String)>, HqError> {
        let Some((id, doc_order_id)) = self.order_doc_id(order_id)? else {
            return Ok(None);
        };
        self.refresh(&id)?;
        let held = self
            .read_orders(&id, |doc| doc.facts(&doc_order_id).is_some())
            .unwrap_or(false);
        Ok(held.then_some((id, doc_order_id)))
    }

    fn persist_order_change(&mut self, id: &DocId, bytes: &[u8]) -> Result<(), HqError> {
        let Some(doc) = self.docs.get(id) else {
            return Ok(());
        };
        let now = crate::clock::now_utc();
        let tx = self.db.begin()?;
        docs::persist_change(&tx, doc, bytes, false, &now)?;
        // The store row makes HQ load this orders document again after a restart.
        tx.execute(
            "INSERT INTO hq_store (store, epoch) VALUES (?1, 0) ON CONFLICT(store) DO NOTHING",
            &[&id.store],
        )?;
        tx.commit()?;
        Ok(())
    }
}
