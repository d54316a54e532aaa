//! What HQ shows of an order: its facts, folded status and every writer's events, from the
//! live orders document or, for an order closed at an epoch cut, from `hq_closed_order`.

use std::collections::BTreeMap;

use super::{HQ_ORDER_PREFIX, HqOrderView, doc_order_id_of};
use crate::crdt::doc::{DocId, DocKind};
use crate::crdt::orders::OrdersDoc;
use crate::domain::orders::{OrderEvent, OrderStatus, fold_status};
use crate::hq::state::HqState;
use crate::store::orders::Delivery;

impl HqState {
    /// The order with id `order_id` (as given to `POST /v1/orders`, or a store-taken
    /// order's `{writer}:{id}`), from any store.
    /// Loads only the document the order-id index names.
    pub fn order_view(&mut self, order_id: &str) -> Option<HqOrderView> {
        let found = self.find_order(order_id).unwrap_or_else(|e| {
            tracing::warn!(order = order_id, error = %e, "cannot look an order up");
            None
        });
        let Some((id, doc_order_id)) = found else {
            return self.archived_view(&doc_order_id_of(order_id));
        };
        self.read_orders(&id, |doc| view_of(doc, &id.store, &doc_order_id))
            .flatten()
    }

    /// Every order of `store` (HQ's and the store's own), optionally in one status.
    pub fn store_orders(&mut self, store: &str, status: Option<OrderStatus>) -> Vec<HqOrderView> {
        let Ok(id) = DocId::new(store, DocKind::Orders) else {
            return Vec::new();
        };
        if let Err(e) = self.refresh(&id) {
            tracing::warn!(store, error = %e, "cannot read a store's orders document");
        }
        let live = self
            .read_orders(&id, |doc| {
                doc.order_ids()
                    .iter()
                    .filter_map(|doc_order_id| view_of(doc, store, doc_order_id))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        self.archived_of_store(store)
            .into_iter()
            .chain(live)
            .filter(|view| status.is_none() || view.status == status)
            .collect()
    }

    /// A closed order HQ archived at an epoch cut.
    fn archived_view(&self, doc_order_id: &str) -> Option<HqOrderView> {
        let (store, archived): (String, String) = self
            .db
            .query_opt(
                "SELECT store, archived FROM hq_closed_order WHERE doc_order_id = ?1",
                &[&doc_order_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()??;
        serde_json::from_str::<Archived>(&archived)
            .ok()
            .map(|a| a.view(&store, doc_order_id))
    }

    /// Every closed order of `store` HQ archived at epoch cuts.
    fn archived_of_store(&self, store: &str) -> Vec<HqOrderView> {
        let rows: Vec<(String, String)> = self
            .db
            .query(
                "SELECT doc_order_id, archived FROM hq_closed_order WHERE store = ?1
                 ORDER BY doc_order_id",
                &[&store],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_default();
        rows.into_iter()
            .filter_map(|(id, archived)| {
                serde_json::from_str::<Archived>(&archived)
                    .ok()
                    .map(|a| a.view(store, &id))
            })
            .collect()
    }
}

/// The final facts and history of an order closed at an epoch cut, as HQ keeps it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Archived {
    channel: String,
    delivery: Delivery,
    created_at_ms: i64,
    fulfilment: String,
    lines: BTreeMap<String, i64>,
    /// (status, at_ms, writer) of every writer's events.
    history: Vec<(String, i64, String)>,
}

impl Archived {
    pub(super) fn of(doc: &OrdersDoc, doc_order_id: &str) -> Option<Self> {
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
