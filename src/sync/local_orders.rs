//! Click-and-collect orders between a store node's SQLite and its orders document.
//!
//! - **HQ → store**: an order HQ placed (document id `hq:{order id}`) whose fulfilment writer
//!   is this node is created in SQLite with its reservation ([`orders::create_from_hq`]),
//!   so staff see it on the POS API. One node per order (the fulfilment writer) creates it,
//!   so a store with several lanes reserves the units once. An order the store cannot take
//!   (unknown SKU, bad hold time) is recorded as `cancelled` by this writer instead, so HQ
//!   learns it was refused.
//! - **store → HQ**: every status event of such an order (`cc_order_event`) is recorded in
//!   the document by this writer, in the commit that made it (the sync hook), and leaves
//!   through the outbox like a stock change. HQ folds all writers' events with
//!   [`crate::sync::orders::fold_status`].
//!
//! The document's stock effect is not applied here: the store's own reservation and sale
//! movements already reach the stock document through the hook.

use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::store::StoreError;
use crate::store::orders::{self as store_orders, HqOrder};
use crate::store::sales::WriteContext;
use crate::sync::orders::OrderStatus;
use crate::sync::orders_doc::OrderFacts;
use crate::sync::persist;

/// `sync_state` key of the highest `cc_order_event.id` recorded in the orders document.
pub const KEY_ORDER_EVENT_MARK: &str = "order_event_mark";
/// Prefix of the document ids of orders HQ created (`{HQ writer}:`).
pub const HQ_ORDER_PREFIX: &str = "hq:";
/// The terminal named in the ledger and history for what sync does.
const SYNC_TERMINAL: &str = "sync";

impl NodeDocs {
    /// Creates in SQLite the HQ orders this node fulfils and has not handled yet.
    pub(super) fn materialise_hq_orders(
        &mut self,
        conn: &Connection,
        now: &str,
    ) -> Result<(), LocalError> {
        for doc_order_id in self.orders.order_ids() {
            let Some(local_id) = doc_order_id.strip_prefix(HQ_ORDER_PREFIX) else {
                continue;
            };
            let Some(facts) = self.orders.facts(&doc_order_id) else {
                continue;
            };
            let handled = self
                .orders
                .events(&doc_order_id)
                .iter()
                .any(|e| e.writer == self.writer.as_str());
            if facts.fulfilment != self.writer
                || handled
                || store_orders::get(conn, local_id)?.is_some()
            {
                continue;
            }
            self.create_local(conn, &facts, local_id, now)?;
        }
        Ok(())
    }

    fn create_local(
        &mut self,
        conn: &Connection,
        facts: &OrderFacts,
        local_id: &str,
        now: &str,
    ) -> Result<(), LocalError> {
        let order = HqOrder {
            order_id: local_id.to_owned(),
            channel: facts.channel.clone(),
            hold_hours: facts.hold_hours,
            lines: facts.lines.clone().into_iter().collect(),
        };
        let tax = crate::config::TaxConfig {
            prices_include_tax: true,
            classes: Vec::new(),
        };
        let ctx = WriteContext {
            terminal: SYNC_TERMINAL,
            writer_id: self.writer.as_str(),
            currency: "",
            tax: &tax,
            now,
        };
        conn.execute_batch("SAVEPOINT hq_order")?;
        let hash = hex::encode(facts.pickup_code_hash);
        match store_orders::create_from_hq(conn, &ctx, &order, &hash) {
            Ok(_) => {
                conn.execute_batch("RELEASE hq_order")?;
                tracing::info!(order = local_id, "click-and-collect order from HQ reserved");
                Ok(())
            }
            Err(
                e @ (StoreError::Unprocessable { .. }
                | StoreError::NotFound { .. }
                | StoreError::Conflict(_)),
            ) => {
                conn.execute_batch("ROLLBACK TO hq_order; RELEASE hq_order")?;
                tracing::warn!(order = local_id, error = %e, "order from HQ refused; recorded as cancelled");
                self.record_own_status(
                    conn,
                    &facts.order_id,
                    OrderStatus::Cancelled,
                    crate::sync::hook::now_ms(),
                    now,
                )
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO hq_order; RELEASE hq_order")?;
                Err(e.into())
            }
        }
    }

    /// Records the status events committed since the last call for orders that live in the
    /// orders document (one change each, logged and put in the outbox). Runs inside the
    /// group-commit transaction.
    pub fn record_order_events(
        &mut self,
        conn: &Connection,
        now: &str,
    ) -> Result<bool, LocalError> {
        let events = events_since(conn, self.order_event_mark)?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(false);
        };
        let mut produced = false;
        for event in events {
            let doc_order_id = format!("{HQ_ORDER_PREFIX}{}", event.order_id);
            let Some(status) = OrderStatus::parse(&event.status) else {
                continue;
            };
            if self.orders.facts(&doc_order_id).is_none() {
                continue; // a store-only order: not shared with HQ
            }
            let at_ms = rfc3339_ms(&event.at).unwrap_or_else(crate::sync::hook::now_ms);
            let before = self.orders.core().heads();
            self.record_own_status(conn, &doc_order_id, status, at_ms, now)?;
            produced |= self.orders.core().heads() != before;
        }
        persist::state_set(conn, KEY_ORDER_EVENT_MARK, last)?;
        self.order_event_mark = last;
        Ok(produced)
    }

    fn record_own_status(
        &mut self,
        conn: &Connection,
        doc_order_id: &str,
        status: OrderStatus,
        at_ms: i64,
        now: &str,
    ) -> Result<(), LocalError> {
        let Some(change) = self.orders.record_status(doc_order_id, status, at_ms)? else {
            return Ok(());
        };
        let core = self.orders.core();
        persist::persist_change(conn, core, &change.bytes, false, now)?;
        persist::outbox_push(conn, core.id(), core.epoch(), &change.hash, now)?;
        Ok(())
    }
}

struct EventRow {
    id: i64,
    order_id: String,
    status: String,
    at: String,
}

fn events_since(conn: &Connection, mark: i64) -> Result<Vec<EventRow>, LocalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, order_id, status, at FROM cc_order_event WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([mark], |r| {
        Ok(EventRow {
            id: r.get(0)?,
            order_id: r.get(1)?,
            status: r.get(2)?,
            at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn rfc3339_ms(at: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}
