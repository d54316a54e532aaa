//! Online click-and-collect orders at HQ: HQ writes them into the store's orders document
//! (order id `hq:{order id}`), stores fold everyone's status events, HQ shows the result.
//!
//! The pickup code is hashed as the store hashes it ([`store_orders::pickup_code_hash`])
//! before anything is stored: neither the code nor personal data enter CRDT history, which
//! cannot be erased.

use std::collections::BTreeMap;

use rusqlite::OptionalExtension;

use super::{HqError, HqState, Outgoing};
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::epoch_orders::{OrdersCut, open_next_orders_epoch, orders_all_moved_over};
use crate::crdt::escrow::{EscrowField, EscrowTotals};
use crate::crdt::orders::{OrderFacts, OrdersDoc, OrdersError};
use crate::domain::orders::{OrderEvent, OrderStatus, fold_status};
use crate::store::orders::{self as store_orders, Delivery};
use crate::sync::payload::SyncMessage;
use crate::sync::persist;
use crate::sync::service::kind_id;
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::WireError;

const HQ_ORDER_PREFIX: &str = "hq:";
const MAX_LINES: usize = 200;

/// `POST /v1/orders`.
#[derive(Debug, Clone, serde::Deserialize)]
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

#[derive(Debug, Clone, serde::Deserialize)]
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
    #[error("order {0:?} already exists")]
    Exists(String),
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

impl HqState {
    pub(super) fn load_orders_docs(&mut self) -> Result<(), HqError> {
        let stores: Vec<String> = {
            let mut stmt = self.conn.prepare("SELECT store FROM hq_store")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for store in stores {
            let id = DocId::new(&store, DocKind::Orders)?;
            let epoch = self.stored_orders_epoch(&id)?;
            if let Some(doc) = persist::load_doc(&self.conn, &id, epoch, self.writer.clone())? {
                self.docs.insert(id, doc);
            }
        }
        Ok(())
    }

    /// The newest epoch of an orders document HQ has stored (0 if none).
    fn stored_orders_epoch(&self, id: &DocId) -> Result<u32, HqError> {
        let epoch: Option<i64> = self.conn.query_row(
            "SELECT max(epoch) FROM (SELECT epoch FROM sync_doc WHERE doc_key = ?1
             UNION ALL SELECT epoch FROM sync_change WHERE doc_key = ?1)",
            [persist::doc_key(id)],
            |r| r.get(0),
        )?;
        Ok(epoch.and_then(|e| u32::try_from(e).ok()).unwrap_or(0))
    }

    /// The epoch of HQ's orders document of `id`'s store (0 before it has one).
    pub(super) fn orders_epoch(&self, id: &DocId) -> u32 {
        self.docs
            .get(id)
            .map_or(0, crate::crdt::doc::SyncDoc::epoch)
    }

    /// Whether every store writer named in the cut of the store's current orders epoch has
    /// carried over (always true in epoch 0), so the next epoch may open.
    pub(super) fn orders_moved_over(&self, store: &str) -> bool {
        self.store_orders_doc(store)
            .is_none_or(|doc| orders_all_moved_over(&doc))
    }

    /// The next epoch of a store's orders document, built at HQ's current heads (from the
    /// genesis if HQ has none yet), and the closed orders it leaves out.
    pub(super) fn rolled_orders(&self, store: &str) -> Result<RolledOrders, HqError> {
        let id = DocId::new(store, DocKind::Orders)?;
        let old = match self.store_orders_doc(store) {
            Some(doc) => doc,
            None => OrdersDoc::genesis(store, 0, self.writer.clone()).map_err(orders_err)?,
        };
        let (new, cut) = open_next_orders_epoch(&old, self.writer.clone(), crate::clock::now_ms())?;
        let closed = cut
            .dropped
            .iter()
            .filter_map(|doc_order_id| {
                let archived = Archived::of(&old, doc_order_id)?;
                Some((doc_order_id.clone(), serde_json::to_string(&archived).ok()?))
            })
            .collect();
        Ok(RolledOrders {
            id,
            old_epoch: old.core().epoch(),
            new,
            cut,
            closed,
        })
    }

    /// Stores the new orders epoch and the closed orders' final views (inside HQ's epoch
    /// transaction, with the stock switch).
    pub(super) fn save_rolled_orders(
        &self,
        tx: &rusqlite::Connection,
        rolled: &RolledOrders,
        now: &str,
    ) -> Result<(), HqError> {
        persist::save_doc(tx, rolled.new.core(), now)?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO hq_closed_order (doc_order_id, store, epoch, archived)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(doc_order_id) DO UPDATE SET archived = excluded.archived,
                 epoch = excluded.epoch",
        )?;
        for (doc_order_id, archived) in &rolled.closed {
            insert.execute(rusqlite::params![
                doc_order_id,
                rolled.id.store,
                rolled.old_epoch,
                archived
            ])?;
        }
        Ok(())
    }

    /// Switches HQ to the new orders epoch; returns its retained heads (the announcement a
    /// lane finds, also after being offline) and an `EpochAnnounce`.
    pub(super) fn install_rolled_orders(
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
        self.docs.insert(id.clone(), new.core().clone());
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
    pub(super) fn drop_closed_orders_epochs(&mut self, id: &DocId) -> Result<(), HqError> {
        let epoch = self.orders_epoch(id);
        if epoch == 0 || !self.orders_moved_over(&id.store) {
            return Ok(());
        }
        let key = persist::doc_key(id);
        let dropped = self.conn.execute(
            "DELETE FROM sync_doc WHERE doc_key = ?1 AND epoch < ?2",
            rusqlite::params![key, epoch],
        )? + self.conn.execute(
            "DELETE FROM sync_change WHERE doc_key = ?1 AND epoch < ?2",
            rusqlite::params![key, epoch],
        )?;
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

    /// A closed order HQ archived at an epoch cut.
    fn archived_view(&self, doc_order_id: &str) -> Option<HqOrderView> {
        let (store, archived): (String, String) = self
            .conn
            .query_row(
                "SELECT store, archived FROM hq_closed_order WHERE doc_order_id = ?1",
                [doc_order_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()??;
        serde_json::from_str::<Archived>(&archived)
            .ok()
            .map(|a| a.view(&store, doc_order_id))
    }

    /// Every closed order of `store` HQ archived at epoch cuts.
    fn archived_of_store(&self, store: &str) -> Vec<HqOrderView> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT doc_order_id, archived FROM hq_closed_order WHERE store = ?1
                 ORDER BY doc_order_id",
            )
            .and_then(|mut stmt| {
                stmt.query_map([store], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .unwrap_or_default();
        rows.into_iter()
            .filter_map(|(id, archived)| {
                serde_json::from_str::<Archived>(&archived)
                    .ok()
                    .map(|a| a.view(store, &id))
            })
            .collect()
    }

    /// Places an online order for a store: one change in its orders document, published
    /// to the store (which may be offline: it fetches the change when it reconnects).
    pub fn create_order(&mut self, order: &NewHqOrder) -> Result<Vec<Outgoing>, OrderRefused> {
        let facts = self.order_facts(order)?;
        let id = DocId::new(&order.store, DocKind::Orders).map_err(HqError::from)?;
        let core = match self.docs.remove(&id) {
            Some(core) => core,
            None => crate::crdt::doc::SyncDoc::genesis(&id, 0, self.writer.clone())
                .map_err(HqError::from)?,
        };
        let mut doc = OrdersDoc::from_core(core).map_err(orders_err)?;
        if doc.facts(&facts.order_id).is_some() {
            self.docs.insert(id, doc.core().clone());
            return Err(OrderRefused::Exists(order.order_id.clone()));
        }
        let short = facts.lines.iter().find_map(|(sku, qty)| {
            let available = doc.escrow_of(sku).remaining();
            (available < *qty).then(|| OrderRefused::NotGranted {
                sku: sku.clone(),
                available: available.max(0),
            })
        });
        if let Some(refused) = short {
            self.docs.insert(id, doc.core().clone());
            return Err(refused);
        }
        let created = doc.create_order_consuming_escrow(&facts);
        self.docs.insert(id.clone(), doc.core().clone());
        let change = match created {
            Ok(Some(change)) => change,
            Ok(None) => return Ok(Vec::new()),
            Err(OrdersError::Exists(_)) => {
                return Err(OrderRefused::Exists(order.order_id.clone()));
            }
            Err(e) => return Err(orders_err(e).into()),
        };
        let outgoing = self.commit_order_change(&id, change.bytes)?;
        tracing::info!(order = order.order_id, store = order.store, fulfilment = %facts.fulfilment, "online order placed");
        Ok(outgoing)
    }

    /// Stores one change HQ made in an orders document and returns the messages that
    /// publish it (the change, and HQ's retained heads). A change that cannot be stored is
    /// dropped with the in-memory document: not stored means not made.
    fn commit_order_change(
        &mut self,
        id: &DocId,
        bytes: Vec<u8>,
    ) -> Result<Vec<Outgoing>, HqError> {
        if let Err(e) = self.persist_order_change(id, &bytes) {
            let epoch = self.orders_epoch(id);
            let doc = persist::load_or_genesis(&self.conn, id, epoch, self.writer.clone())?;
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

    /// `POST /v1/orders/{id}/cancel`: HQ's cancel event (the web shop's customer cancelled).
    /// The fold decides at every node: a collect or ship anywhere still wins, and the lane
    /// holding the units releases them when the cancel reaches it.
    pub fn cancel_order(&mut self, order_id: &str) -> Result<Vec<Outgoing>, CancelRefused> {
        let (id, doc_order_id) = self
            .find_order(order_id)
            .ok_or_else(|| CancelRefused::Unknown(order_id.to_owned()))?;
        let core = self
            .docs
            .get(&id)
            .cloned()
            .ok_or_else(|| CancelRefused::Unknown(order_id.to_owned()))?;
        let mut doc = OrdersDoc::from_core(core).map_err(orders_err)?;
        if let Some(state) = doc.state(&doc_order_id).filter(|s| s.status.is_closed()) {
            return Err(CancelRefused::Closed(state.status));
        }
        let change = doc
            .record_status(
                &doc_order_id,
                OrderStatus::Cancelled,
                crate::clock::now_ms(),
            )
            .map_err(orders_err)?;
        self.docs.insert(id.clone(), doc.core().clone());
        let Some(change) = change else {
            return Ok(Vec::new()); // HQ had cancelled it already
        };
        let outgoing = self.commit_order_change(&id, change.bytes)?;
        tracing::info!(order = order_id, store = id.store, "order cancelled at HQ");
        Ok(outgoing)
    }

    /// The online escrow of (store, sku) as HQ sees it.
    pub fn escrow_of(&self, store: &str, sku: &str) -> EscrowTotals {
        self.store_orders_doc(store)
            .map(|doc| doc.escrow_of(sku))
            .unwrap_or_default()
    }

    /// Every SKU's escrow at `store`.
    pub fn store_escrow(&self, store: &str) -> BTreeMap<String, EscrowTotals> {
        self.store_orders_doc(store)
            .map(|doc| doc.escrow_totals())
            .unwrap_or_default()
    }

    fn store_orders_doc(&self, store: &str) -> Option<OrdersDoc> {
        let id = DocId::new(store, DocKind::Orders).ok()?;
        OrdersDoc::from_core(self.docs.get(&id)?.clone()).ok()
    }

    /// `POST /v1/escrow/{store}/{sku}/return`: gives unused online units back to the store.
    pub fn return_escrow(
        &mut self,
        store: &str,
        sku: &str,
        quantity: i64,
    ) -> Result<Vec<Outgoing>, OrderRefused> {
        if quantity <= 0 {
            return Err(invalid("quantity", "must be positive"));
        }
        let id = DocId::new(store, DocKind::Orders).map_err(HqError::from)?;
        let Some(core) = self.docs.get(&id).cloned() else {
            return Err(OrderRefused::NotGranted {
                sku: sku.to_owned(),
                available: 0,
            });
        };
        let mut doc = OrdersDoc::from_core(core).map_err(orders_err)?;
        let available = doc.escrow_of(sku).remaining();
        if available < quantity {
            return Err(OrderRefused::NotGranted {
                sku: sku.to_owned(),
                available: available.max(0),
            });
        }
        let entries = [(sku.to_owned(), EscrowField::Returned, quantity)];
        let change = doc
            .add_escrow(&entries, crate::clock::now_ms())
            .map_err(orders_err)?;
        self.docs.insert(id.clone(), doc.core().clone());
        match change {
            Some(change) => Ok(self.commit_order_change(&id, change.bytes)?),
            None => Ok(Vec::new()),
        }
    }

    /// The orders document and document id of `order_id`: an id given to `POST /v1/orders`,
    /// or a store-taken order's `{writer}:{id}`.
    fn find_order(&self, order_id: &str) -> Option<(DocId, String)> {
        let doc_order_id = doc_order_id_of(order_id);
        self.docs
            .iter()
            .filter(|(id, _)| id.kind == DocKind::Orders)
            .find(|(_, core)| {
                OrdersDoc::from_core((*core).clone())
                    .ok()
                    .and_then(|doc| doc.facts(&doc_order_id))
                    .is_some()
            })
            .map(|(id, _)| (id.clone(), doc_order_id))
    }

    fn persist_order_change(&mut self, id: &DocId, bytes: &[u8]) -> Result<(), HqError> {
        let Some(doc) = self.docs.get(id) else {
            return Ok(());
        };
        let now = crate::clock::now_utc();
        let tx = self.conn.unchecked_transaction()?;
        persist::persist_change(&tx, doc, bytes, false, &now)?;
        // The store row makes HQ load this orders document again after a restart.
        tx.execute(
            "INSERT INTO hq_store (store, epoch) VALUES (?1, 0) ON CONFLICT(store) DO NOTHING",
            [&id.store],
        )?;
        tx.commit()?;
        Ok(())
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

    fn fulfilment_lane(&self, order: &NewHqOrder) -> Result<WriterId, OrderRefused> {
        let named = match &order.node {
            Some(node) => Some(format!("{}.{node}", order.store)),
            None => self
                .conn
                .query_row(
                    "SELECT writer FROM hq_writer_status WHERE store = ?1
                     ORDER BY online DESC, writer LIMIT 1",
                    [&order.store],
                    |r| r.get::<_, String>(0),
                )
                .optional()
                .map_err(HqError::from)?,
        };
        let Some(writer) = named else {
            return Err(OrderRefused::NoLane(order.store.clone()));
        };
        WriterId::new(&writer).map_err(|e| invalid("node", e.to_string()))
    }

    /// The order with id `order_id` (as given to `POST /v1/orders`, or a store-taken
    /// order's `{writer}:{id}`), from any store.
    pub fn order_view(&self, order_id: &str) -> Option<HqOrderView> {
        let Some((id, doc_order_id)) = self.find_order(order_id) else {
            return self.archived_view(&doc_order_id_of(order_id));
        };
        let doc = OrdersDoc::from_core(self.docs.get(&id)?.clone()).ok()?;
        view_of(&doc, &id.store, &doc_order_id)
    }

    /// Every order of `store` (HQ's and the store's own), optionally in one status.
    pub fn store_orders(&self, store: &str, status: Option<OrderStatus>) -> Vec<HqOrderView> {
        let Ok(id) = DocId::new(store, DocKind::Orders) else {
            return Vec::new();
        };
        let live = self
            .docs
            .get(&id)
            .and_then(|core| OrdersDoc::from_core(core.clone()).ok())
            .map(|doc| {
                doc.order_ids()
                    .iter()
                    .filter_map(|doc_order_id| view_of(&doc, store, doc_order_id))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        self.archived_of_store(store)
            .into_iter()
            .chain(live)
            .filter(|view| status.is_none() || view.status == status)
            .collect()
    }
}

/// The document id of an order id given to HQ's API (`hq:` added to HQ's own ids).
fn doc_order_id_of(order_id: &str) -> String {
    if order_id.contains(':') {
        order_id.to_owned()
    } else {
        format!("{HQ_ORDER_PREFIX}{order_id}")
    }
}

/// A store's next orders epoch, built but not yet stored or switched to.
pub(super) struct RolledOrders {
    id: DocId,
    old_epoch: u32,
    new: OrdersDoc,
    cut: OrdersCut,
    /// (document order id, [`Archived`] as JSON) of the orders left out.
    closed: Vec<(String, String)>,
}

/// The final facts and history of an order closed at an epoch cut, as HQ keeps it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Archived {
    channel: String,
    delivery: Delivery,
    created_at_ms: i64,
    fulfilment: String,
    lines: BTreeMap<String, i64>,
    /// (status, at_ms, writer) of every writer's events.
    history: Vec<(String, i64, String)>,
}

impl Archived {
    fn of(doc: &OrdersDoc, doc_order_id: &str) -> Option<Self> {
        let facts = doc.facts(doc_order_id)?;
        Some(Self {
            channel: facts.channel,
            delivery: facts.delivery,
            created_at_ms: facts.created_at_ms,
            fulfilment: facts.fulfilment.as_str().to_owned(),
            lines: facts.lines,
            history: doc
                .events(doc_order_id)
                .into_iter()
                .map(|e| (e.status.as_str().to_owned(), e.at_ms, e.writer))
                .collect(),
        })
    }

    fn view(self, store: &str, doc_order_id: &str) -> HqOrderView {
        let mut history: Vec<OrderEvent> = self
            .history
            .into_iter()
            .filter_map(|(status, at_ms, writer)| {
                Some(OrderEvent {
                    status: OrderStatus::parse(&status)?,
                    at_ms,
                    writer,
                })
            })
            .collect();
        history.sort_by(|a, b| (a.at_ms, &a.writer, a.status).cmp(&(b.at_ms, &b.writer, b.status)));
        let state = fold_status(&history);
        HqOrderView {
            order_id: doc_order_id
                .strip_prefix(HQ_ORDER_PREFIX)
                .unwrap_or(doc_order_id)
                .to_owned(),
            store: store.to_owned(),
            channel: self.channel,
            delivery: self.delivery,
            created_at_ms: self.created_at_ms,
            fulfilment: self.fulfilment,
            lines: self.lines,
            status: state.as_ref().map(|s| s.status),
            decided_by: state.map(|s| s.decided_by),
            history,
        }
    }
}

fn view_of(doc: &OrdersDoc, store: &str, doc_order_id: &str) -> Option<HqOrderView> {
    Some(Archived::of(doc, doc_order_id)?.view(store, doc_order_id))
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

/// The pickup-code hash from exactly one of `pickup_code` and `pickup_code_hash`.
fn pickup_hash(order: &NewHqOrder) -> Result<[u8; 32], OrderRefused> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(code: Option<&str>, hash: Option<&str>) -> NewHqOrder {
        NewHqOrder {
            order_id: "web-1".into(),
            store: "s1".into(),
            lines: vec![OrderLine {
                sku: "MILK".into(),
                quantity: 2,
            }],
            pickup_code: code.map(str::to_owned),
            pickup_code_hash: hash.map(str::to_owned),
            hold_hours: None,
            delivery: Delivery::Collect,
            channel: web(),
            node: Some("lane1".into()),
            customer: None,
        }
    }

    #[test]
    fn the_pickup_code_is_hashed_as_the_store_hashes_it() {
        let hashed = pickup_hash(&request(Some(" 4711 "), None)).unwrap();
        assert_eq!(
            hex::encode(hashed),
            store_orders::pickup_code_hash("web-1", "4711")
        );
        let given = store_orders::pickup_code_hash("web-1", "4711");
        assert_eq!(pickup_hash(&request(None, Some(&given))).unwrap(), hashed);
        assert!(pickup_hash(&request(None, None)).is_err());
        assert!(pickup_hash(&request(Some("4711"), Some(&given))).is_err());
        assert!(pickup_hash(&request(None, Some("abc"))).is_err());
    }

    /// Lane 1 of store s1 grants `units` MILK to the online channel; HQ receives it.
    fn grant(hq: &mut HqState, units: i64) {
        let id = DocId::new("s1", DocKind::Orders).unwrap();
        let mut lane = OrdersDoc::genesis("s1", 0, WriterId::new("s1.lane1").unwrap()).unwrap();
        let entries = [("MILK".to_owned(), EscrowField::Granted, units)];
        let change = lane.add_escrow(&entries, 1).unwrap().unwrap();
        let mut doc = OrdersDoc::genesis("s1", 0, WriterId::hq()).unwrap();
        doc.core_mut().apply_changes(&[&change.bytes]).unwrap();
        hq.docs.insert(id.clone(), doc.core().clone());
        hq.persist_order_change(&id, &change.bytes).unwrap();
    }

    #[test]
    fn an_order_is_placed_once_and_shows_placed() {
        let dir = tempfile::tempdir().unwrap();
        let mut hq = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        let order = request(Some("4711"), None);
        assert!(
            matches!(
                hq.create_order(&order),
                Err(OrderRefused::NotGranted { available: 0, .. })
            ),
            "nothing granted to the online channel yet"
        );
        grant(&mut hq, 3);
        let messages = hq.create_order(&order).unwrap();
        assert_eq!(messages.len(), 2, "the change and HQ's retained heads");
        assert!(matches!(
            hq.create_order(&order),
            Err(OrderRefused::Exists(_))
        ));
        let view = hq.order_view("web-1").unwrap();
        assert_eq!(view.status, Some(OrderStatus::Placed));
        assert_eq!(view.fulfilment, "s1.lane1");
        assert_eq!(view.lines, BTreeMap::from([("MILK".to_owned(), 2)]));
        drop(hq);
        let again = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        assert_eq!(again.order_view("web-1"), Some(view), "survives a restart");
        assert_eq!(
            again.escrow_of("s1", "MILK").remaining(),
            1,
            "2 of 3 consumed"
        );
    }

    fn orders_message(epoch: u32, changes: Vec<Vec<u8>>) -> Vec<u8> {
        SyncMessage::Changes {
            doc: DocId::new("s1", DocKind::Orders).unwrap(),
            epoch,
            changes,
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn an_epoch_switch_archives_closed_orders_and_keeps_open_ones_and_the_escrow() {
        const ORDERS_TOPIC: &str = "storenode/v1/t/s1/changes/orders/s1.lane1";
        const STOCK_TOPIC: &str = "storenode/v1/t/s1/changes/stock/s1.lane1";
        let dir = tempfile::tempdir().unwrap();
        let mut hq = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        let lane1 = WriterId::new("s1.lane1").unwrap();
        let orders_id = DocId::new("s1", DocKind::Orders).unwrap();
        grant(&mut hq, 5);
        for id in ["web-1", "web-2"] {
            let mut order = request(Some("4711"), None);
            order.order_id = id.into();
            hq.create_order(&order).unwrap();
        }
        // Lane 1 collects web-1 and HQ learns it; it also has a stock document.
        let mut lane = OrdersDoc::genesis("s1", 0, lane1.clone()).unwrap();
        let hq_changes = hq.docs[&orders_id].changes_since(&[]);
        lane.core_mut().apply_changes(&hq_changes).unwrap();
        let collected = lane
            .record_status("hq:web-1", OrderStatus::Collected, 5)
            .unwrap()
            .unwrap();
        hq.handle(ORDERS_TOPIC, &orders_message(0, vec![collected.bytes]))
            .unwrap();
        let mut stock = crate::crdt::stock::StockDoc::genesis("s1", 0, lane1.clone()).unwrap();
        let moved = stock
            .apply_movements(
                &[crate::domain::stock::Movement {
                    sku: "MILK".into(),
                    delta: 9,
                }],
                1,
            )
            .unwrap()
            .unwrap();
        let stock_message = SyncMessage::Changes {
            doc: DocId::new("s1", DocKind::Stock).unwrap(),
            epoch: 0,
            changes: vec![moved.bytes],
        };
        hq.handle(STOCK_TOPIC, &stock_message.encode().unwrap())
            .unwrap();

        let (epoch, out) = hq.open_epoch("s1").unwrap();
        assert_eq!(epoch, 1);
        assert!(out.iter().any(|o| o.retain && o.topic.contains("/orders/")));
        let live = OrdersDoc::from_core(hq.docs[&orders_id].clone()).unwrap();
        assert_eq!(live.core().epoch(), 1);
        assert_eq!(live.order_ids(), vec!["hq:web-2".to_owned()]);
        let collected_view = hq.order_view("web-1").unwrap();
        assert_eq!(collected_view.status, Some(OrderStatus::Collected));
        assert_eq!(
            hq.order_view("web-2").unwrap().status,
            Some(OrderStatus::Placed)
        );
        assert_eq!(hq.store_orders("s1", None).len(), 2);
        assert_eq!(hq.store_orders("s1", Some(OrderStatus::Collected)).len(), 1);
        assert_eq!(
            hq.escrow_of("s1", "MILK").remaining(),
            1,
            "5 granted, 4 consumed"
        );

        // A late epoch-0 change is ignored; lane 1 carries its post-cut work itself.
        let late = lane
            .record_status("hq:web-2", OrderStatus::Reserved, 7)
            .unwrap()
            .unwrap();
        assert!(
            hq.handle(ORDERS_TOPIC, &orders_message(0, vec![late.bytes]))
                .unwrap()
                .is_empty()
        );
        assert!(matches!(hq.open_epoch("s1"), Err(HqError::EpochPending(_))));
        let mut next = OrdersDoc::genesis("s1", 1, lane1).unwrap();
        next.core_mut()
            .apply_changes(&hq.docs[&orders_id].changes_since(&[]))
            .unwrap();
        let carried = crate::crdt::epoch_orders::carry_over_orders(&lane, &mut next, 9)
            .unwrap()
            .unwrap();
        assert!(
            !hq.handle(ORDERS_TOPIC, &orders_message(1, vec![carried.bytes]))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            hq.order_view("web-2").unwrap().status,
            Some(OrderStatus::Reserved)
        );
        assert!(hq.orders_moved_over("s1"));

        drop(hq);
        let again = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        assert_eq!(
            again.order_view("web-1"),
            Some(collected_view),
            "survives a restart"
        );
        assert_eq!(
            again.order_view("web-2").unwrap().status,
            Some(OrderStatus::Reserved)
        );
        assert_eq!(again.escrow_of("s1", "MILK").remaining(), 1);
        let old_rows: i64 = again
            .conn
            .query_row(
                "SELECT count(*) FROM sync_change WHERE doc_key = 's1/orders' AND epoch = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_rows, 0, "epoch 0 of the orders document is dropped");
    }
}
