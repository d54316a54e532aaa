//! Click-and-collect and ship-from-store orders between a store node's SQLite and its
//! orders document.
//!
//! - **Orders taken here** (`POST /v1/orders` on this node) enter the document as
//!   `{writer}:{local id}` with this node as fulfilment writer, in the commit that created
//!   them, so HQ and the store's other lanes see them.
//! - **Orders HQ placed** (`hq:{order id}`) whose fulfilment writer is this node are created
//!   in SQLite with their reservation ([`orders::create_from_hq`]): one node per order
//!   reserves the units. An order the store cannot take (unknown SKU, bad hold time) is
//!   recorded as `cancelled` by this writer instead, so HQ learns it was refused.
//! - **Orders another lane holds** get a copy here without reservation
//!   ([`orders::insert_mirror`]), so the customer can collect at any lane.
//! - **Status**: every status event committed here (`cc_order_event`) is recorded in the
//!   document by this writer in the same commit (the sync hook). After remote changes, each
//!   order's local status follows the document's fold ([`orders::follow`]): the lane holding
//!   the units settles a collect, ship, cancel or expiry decided elsewhere (HQ's cancel,
//!   another lane's collect), other lanes copy the status. Copied events carry the actor
//!   [`orders::MIRROR_ACTOR`] and are not published again.
//!
//! The document's stock effect is not applied here: the holding lane's reservation and sale
//! movements reach the stock document through the hook like any other movement.

use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::crdt::doc::WriterId;
use crate::crdt::orders::OrderFacts;
use crate::domain::orders::{OrderState, OrderStatus, fold_status};
use crate::store::StoreError;
use crate::store::orders::{self as store_orders, HqOrder, MirrorOrder, OwnOrder};
use crate::store::sales::WriteContext;
use crate::sync::persist;

/// `sync_state` key of the highest `cc_order_event.id` recorded in the orders document.
pub const KEY_ORDER_EVENT_MARK: &str = "order_event_mark";
/// Prefix of the document ids of orders HQ created (`{HQ writer}:`).
pub const HQ_ORDER_PREFIX: &str = "hq:";
/// The terminal named in the ledger and history for what sync does.
const SYNC_TERMINAL: &str = "sync";

impl NodeDocs {
    /// Brings SQLite in line with the orders document after remote changes: adopts orders
    /// this node does not have yet and makes every known one follow the folded status.
    pub(super) fn materialise_orders(
        &mut self,
        conn: &Connection,
        now: &str,
    ) -> Result<(), LocalError> {
        for doc_order_id in self.orders.order_ids() {
            let (Some(facts), Some(state)) = (
                self.orders.facts(&doc_order_id),
                self.orders.state(&doc_order_id),
            ) else {
                continue;
            };
            match self.local_id_of(conn, &doc_order_id)? {
                Some(local_id) => self.follow(conn, &doc_order_id, &local_id, &state, now)?,
                None => self.adopt(conn, &doc_order_id, &facts, &state, now)?,
            }
        }
        Ok(())
    }

    /// After moving to a new orders epoch: orders HQ closed at the cut and left out follow
    /// their decision here too (this lane may have been offline when another lane handed
    /// the order over, and still hold its units).
    pub(super) fn settle_closed_at_cut(
        &mut self,
        conn: &Connection,
        now: &str,
    ) -> Result<(), LocalError> {
        for (doc_order_id, state) in self.orders.closed_at_cut() {
            if let Some(local_id) = self.local_id_of(conn, &doc_order_id)? {
                self.follow(conn, &doc_order_id, &local_id, &state, now)?;
            }
        }
        Ok(())
    }

    /// The local id of a shared order; links an HQ order created before orders carried
    /// their document id.
    fn local_id_of(
        &self,
        conn: &Connection,
        doc_order_id: &str,
    ) -> Result<Option<String>, LocalError> {
        if let Some(local) = store_orders::by_doc_id(conn, doc_order_id)? {
            return Ok(Some(local));
        }
        let Some(local) = doc_order_id.strip_prefix(HQ_ORDER_PREFIX) else {
            return Ok(None);
        };
        let Some(view) = store_orders::get(conn, local)? else {
            return Ok(None);
        };
        if view.doc_id.is_some() || view.fulfilment.is_some() {
            return Ok(None);
        }
        store_orders::set_doc_id(conn, local, doc_order_id)?;
        Ok(Some(local.to_owned()))
    }

    fn adopt(
        &mut self,
        conn: &Connection,
        doc_order_id: &str,
        facts: &OrderFacts,
        state: &OrderState,
        now: &str,
    ) -> Result<(), LocalError> {
        let events = self.orders.events(doc_order_id);
        let mine = || events.iter().filter(|e| e.writer == self.writer.as_str());
        let handled = mine().next().is_some();
        // It held the units (an order refused here has only its `cancelled`).
        let reserved = mine().any(|e| e.status == OrderStatus::Reserved);
        let own = own_local_id(doc_order_id, &self.writer);
        if facts.fulfilment == self.writer && (reserved || own.is_some()) {
            // Held here before, gone from SQLite (a restored backup): put it back, so its
            // id is not taken twice and its units are still handed over or released here.
            let local_id = own
                .or_else(|| doc_order_id.strip_prefix(HQ_ORDER_PREFIX))
                .unwrap_or(doc_order_id);
            return self.restore_held(conn, local_id, doc_order_id, facts, state, now);
        }
        if handled || state.status.is_closed() {
            return Ok(()); // refused before, or nothing left to do at any lane
        }
        if facts.fulfilment != self.writer {
            return mirror(conn, doc_order_id, facts, state, now);
        }
        match doc_order_id.strip_prefix(HQ_ORDER_PREFIX) {
            Some(local_id) => self.create_local(conn, facts, local_id, doc_order_id, now),
            None => Ok(()),
        }
    }

    /// Puts back an order this writer held that SQLite lost (see `adopt`): as it began
    /// here, then brought to what this writer and the fold recorded since.
    fn restore_held(
        &self,
        conn: &Connection,
        local_id: &str,
        doc_order_id: &str,
        facts: &OrderFacts,
        state: &OrderState,
        now: &str,
    ) -> Result<(), LocalError> {
        // Taken again here before the lane caught up: restored under its document id, as
        // other lanes' orders are kept, so its units can still be handed over or released.
        let local_id = if store_orders::get(conn, local_id)?.is_some() {
            doc_order_id
        } else {
            local_id
        };
        if store_orders::get(conn, local_id)?.is_some() {
            return Ok(());
        }
        let tax = no_tax();
        let ctx = sync_context("", &tax, now);
        let copy = copy_of(doc_order_id, local_id, facts);
        store_orders::restore_own(conn, &ctx, &copy, store_orders::OrderStatus::Reserved)?;
        tracing::info!(
            order = local_id,
            "order held by this lane restored from the orders document"
        );
        self.follow(conn, doc_order_id, local_id, state, now)
    }

    /// Makes the local status of a shared order follow the document. First what this
    /// writer itself recorded, which a database restored from an older backup may lack:
    /// its stock effect is already in the writer's totals, so SQLite takes the status
    /// without booking anything. Then the fold's decision, settled as usual.
    fn follow(
        &self,
        conn: &Connection,
        doc_order_id: &str,
        local_id: &str,
        state: &OrderState,
        now: &str,
    ) -> Result<(), LocalError> {
        let events = self.orders.events(doc_order_id);
        let own = fold_status(events.iter().filter(|e| e.writer == self.writer.as_str()))
            .and_then(|own| local_status(own.status));
        let local = store_orders::get(conn, local_id)?.map(|v| v.status);
        if let (Some(own), Some(local)) = (own, local)
            && rank(own) > rank(local)
        {
            let tax = no_tax();
            let ctx = sync_context(self.writer.as_str(), &tax, now);
            store_orders::take_status(conn, &ctx, local_id, own)?;
        }
        follow_fold(conn, &self.writer, local_id, state, now)
    }

    fn create_local(
        &mut self,
        conn: &Connection,
        facts: &OrderFacts,
        local_id: &str,
        doc_order_id: &str,
        now: &str,
    ) -> Result<(), LocalError> {
        let order = HqOrder {
            order_id: local_id.to_owned(),
            doc_id: doc_order_id.to_owned(),
            delivery: facts.delivery,
            channel: facts.channel.clone(),
            hold_hours: facts.hold_hours,
            lines: facts.lines.clone().into_iter().collect(),
        };
        let tax = no_tax();
        let ctx = sync_context(self.writer.as_str(), &tax, now);
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
                    crate::clock::now_ms(),
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
            let Some(status) = OrderStatus::parse(&event.status) else {
                continue;
            };
            if event.actor == store_orders::MIRROR_ACTOR {
                continue; // copied from the document: already there
            }
            let Some(doc_order_id) = self.shared_id(conn, &event.order_id, now)? else {
                continue;
            };
            let at_ms = rfc3339_ms(&event.at).unwrap_or_else(crate::clock::now_ms);
            let before = self.orders.core().heads();
            self.record_own_status(conn, &doc_order_id, status, at_ms, now)?;
            produced |= self.orders.core().heads() != before;
        }
        persist::state_set(conn, KEY_ORDER_EVENT_MARK, last)?;
        self.order_event_mark = last;
        Ok(produced)
    }

    /// The document id of local order `order_id`, sharing it first if it was taken here.
    fn shared_id(
        &mut self,
        conn: &Connection,
        order_id: &str,
        now: &str,
    ) -> Result<Option<String>, LocalError> {
        let Some(view) = store_orders::get(conn, order_id)? else {
            return Ok(None);
        };
        if let Some(doc_id) = view.doc_id {
            return Ok(Some(doc_id));
        }
        let hq_id = format!("{HQ_ORDER_PREFIX}{order_id}");
        if view.fulfilment.is_none() && self.orders.facts(&hq_id).is_some() {
            store_orders::set_doc_id(conn, order_id, &hq_id)?; // an HQ order from before
            return Ok(Some(hq_id));
        }
        let Some(own) = store_orders::unshared_own(conn, order_id)? else {
            return Ok(None);
        };
        let doc_order_id = format!("{}:{order_id}", self.writer.as_str());
        if self.orders.facts(&doc_order_id).is_some() {
            // An earlier incarnation published this id; this database (restored from an
            // older backup) took it again before it caught up with HQ. Sharing it would
            // fail for good; the order stays at this lane, its stock movements sync.
            tracing::error!(
                order = order_id,
                "order id already published by this lane before a restore: the order is kept here only"
            );
            return Ok(None);
        }
        let Some(facts) = own_facts(&own, &doc_order_id, &self.writer) else {
            tracing::warn!(
                order = order_id,
                "order not shared: its stored facts are malformed"
            );
            return Ok(None);
        };
        if let Some(change) = self.orders.create_order(&facts)? {
            let core = self.orders.core();
            persist::persist_change(conn, core, &change.bytes, false, now)?;
            persist::outbox_push(conn, core.id(), core.epoch(), &change.hash, now)?;
        }
        store_orders::set_doc_id(conn, order_id, &doc_order_id)?;
        Ok(Some(doc_order_id))
    }

    fn record_own_status(
        &mut self,
        conn: &Connection,
        doc_order_id: &str,
        status: OrderStatus,
        at_ms: i64,
        now: &str,
    ) -> Result<(), LocalError> {
        let change = match self.orders.record_status(doc_order_id, status, at_ms) {
            Ok(Some(change)) => change,
            Ok(None) => return Ok(()),
            // Closed before the last epoch cut and left out of the document: its outcome is
            // settled and shown at HQ; a late event has nothing left to change.
            Err(crate::crdt::orders::OrdersError::Unknown(_)) => {
                tracing::debug!(
                    order = doc_order_id,
                    "status of an order closed before the cut not shared"
                );
                return Ok(());
            }
            Err(e) => return Err(e.into()),
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
    actor: String,
}

fn events_since(conn: &Connection, mark: i64) -> Result<Vec<EventRow>, LocalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, order_id, status, at, actor FROM cc_order_event WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([mark], |r| {
        Ok(EventRow {
            id: r.get(0)?,
            order_id: r.get(1)?,
            status: r.get(2)?,
            at: r.get(3)?,
            actor: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn rfc3339_ms(at: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

fn sync_context<'a>(
    writer: &'a str,
    tax: &'a crate::store::TaxConfig,
    now: &'a str,
) -> WriteContext<'a> {
    WriteContext {
        terminal: SYNC_TERMINAL,
        writer_id: writer,
        currency: "",
        tax,
        now,
        pricing: None,
    }
}

/// Makes the local status of a shared order follow the document's fold.
fn follow_fold(
    conn: &Connection,
    writer: &WriterId,
    local_id: &str,
    state: &OrderState,
    now: &str,
) -> Result<(), LocalError> {
    let Some(target) = local_status(state.status) else {
        return Ok(());
    };
    let tax = no_tax();
    let ctx = sync_context(writer.as_str(), &tax, now);
    if store_orders::follow(conn, &ctx, local_id, target, &state.decided_by.writer)? {
        tracing::info!(
            order = local_id,
            status = target.as_str(),
            decided_by = state.decided_by.writer,
            "order status decided at another node"
        );
    }
    Ok(())
}

/// The local id of `doc_order_id` if `writer` created it (`{writer}:{local id}`).
fn own_local_id<'a>(doc_order_id: &'a str, writer: &WriterId) -> Option<&'a str> {
    doc_order_id
        .strip_prefix(writer.as_str())?
        .strip_prefix(':')
        .filter(|local| !local.is_empty())
}

fn copy_of(doc_order_id: &str, local_id: &str, facts: &OrderFacts) -> MirrorOrder {
    MirrorOrder {
        order_id: local_id.to_owned(),
        doc_id: doc_order_id.to_owned(),
        channel: facts.channel.clone(),
        delivery: facts.delivery,
        fulfilment: facts.fulfilment.as_str().to_owned(),
        pickup_code_hash: hex::encode(facts.pickup_code_hash),
        created_at: ms_rfc3339(facts.created_at_ms),
        hold_hours: facts.hold_hours,
        lines: facts.lines.clone().into_iter().collect(),
    }
}

/// Copies an order another lane holds, in its folded status.
fn mirror(
    conn: &Connection,
    doc_order_id: &str,
    facts: &OrderFacts,
    state: &OrderState,
    now: &str,
) -> Result<(), LocalError> {
    let Some(status) = local_status(state.status) else {
        return Ok(());
    };
    let local_id = doc_order_id
        .strip_prefix(HQ_ORDER_PREFIX)
        .unwrap_or(doc_order_id);
    if store_orders::get(conn, local_id)?.is_some() {
        tracing::warn!(
            order = doc_order_id,
            "order id already used here; not mirrored"
        );
        return Ok(());
    }
    let tax = no_tax();
    let ctx = sync_context("", &tax, now);
    store_orders::insert_mirror(conn, &ctx, &copy_of(doc_order_id, local_id, facts), status)?;
    Ok(())
}

/// How far an order got at the lane holding it: closing beats progress, a hand-over beats
/// a withdrawal.
fn rank(status: store_orders::OrderStatus) -> u8 {
    use store_orders::OrderStatus as Local;
    match status {
        Local::Reserved => 0,
        Local::Picking => 1,
        Local::Ready => 2,
        Local::Cancelled | Local::Expired => 3,
        Local::Collected | Local::Shipped => 4,
    }
}

/// The store's status for a folded one (`Placed`: the holding lane has not reserved yet,
/// which other lanes show as reserved).
fn local_status(status: OrderStatus) -> Option<store_orders::OrderStatus> {
    use store_orders::OrderStatus as Local;
    Some(match status {
        OrderStatus::Placed | OrderStatus::Reserved => Local::Reserved,
        OrderStatus::Picking => Local::Picking,
        OrderStatus::Ready => Local::Ready,
        OrderStatus::Collected => Local::Collected,
        OrderStatus::Shipped => Local::Shipped,
        OrderStatus::Cancelled => Local::Cancelled,
        OrderStatus::Expired => Local::Expired,
    })
}

fn own_facts(own: &OwnOrder, doc_order_id: &str, writer: &WriterId) -> Option<OrderFacts> {
    Some(OrderFacts {
        order_id: doc_order_id.to_owned(),
        channel: own.channel.clone(),
        created_at_ms: rfc3339_ms(&own.created_at)?,
        pickup_code_hash: hex::decode(&own.pickup_code_hash).ok()?.try_into().ok()?,
        fulfilment: writer.clone(),
        lines: own.lines.iter().cloned().collect(),
        hold_hours: Some(own.hold_hours),
        delivery: own.delivery,
    })
}

fn ms_rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let pattern = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&pattern).unwrap_or_else(|_| ms.to_string())
}

/// Sync's writes (reservations, status changes) price nothing: no tax classes apply.
pub(super) fn no_tax() -> crate::store::TaxConfig {
    crate::store::TaxConfig {
        prices_include_tax: true,
        classes: Vec::new(),
    }
}
