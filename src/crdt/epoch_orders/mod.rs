//! Bounded history for orders documents: they roll into epochs with the stock document.
//!
//! No writer, HQ included, may write under another writer's `writers/{w}` or create an order
//! id another writer owns ([`super::doc::SyncDoc::check_change`]), so HQ cannot copy the
//! state at the cut where writers keep it. Instead HQ's one change after the genesis of
//! E+1 writes a **base** inside its own map:
//! ```text
//! writers/{hq}/base/cut/{w}            = hex   w's last change in HQ's cut of E
//! writers/{hq}/base/orders/{id}        = the facts of every order still open at the cut
//! writers/{hq}/base/closed/{id}        = status, at_ms, writer: the decision of each order
//!                                        closed at this cut and left out
//! writers/{hq}/base/writers/{w}/...    = what w had at the cut, in w's own layout:
//!   order_events/{id}/{status}  (open orders only), escrow/{sku}/{field} (w's totals),
//!   loyalty/{member}/{field} (w's totals, `crdt::loyalty`),
//!   coupons/{code}/{key} (w's totals, see `crdt::coupons`),
//!   transfers/..., transfer_events/..., transfer_received/... (every transfer)
//! ```
//! Readers ([`OrdersDoc::writer_maps`]) merge `writers/{w}` and `base/writers/{w}` under
//! w's own id, so the trust rules (who may say what about a transfer) stay as they were,
//! and only HQ can write the base (objects are writable by their maker only).
//!
//! Orders closed at the cut are left out, except a withdrawal (cancelled / expired) that
//! was not yet in the previous base: a lane offline during the switch may still hold a
//! collect for it, and a collect wins the fold. Such an order stays one more epoch. The
//! decision of each order left out stays in the base (`closed`), so a lane that missed it
//! (the lane holding the units, offline when another lane handed the order over) still
//! settles its copy when it moves over; a writer is never more than one epoch behind.
//!
//! A writer moves over once ([`carry_over_orders`]): into E+1 it writes what it did after
//! its cut change: orders it created, events it recorded (for orders E+1 knows), its
//! escrow and coupon totals now − at the cut, its transfer facts, events and receipts, and the marker
//! `writers/{w}/carried_from = E`. Escrow per writer is then `base + (now − cut) = now`.

mod carry;
pub use carry::*;

use super::doc::child_map;
use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::{Transactable, Transaction};
use automerge::{ChangeHash, ObjId, ObjType};

use super::coupons::KEY_COUPONS;
use super::doc::{
    KEY_ORDERS, KEY_WRITERS, LocalChange, WriterId, hash_from_hex, hash_to_hex, int_at,
    int_entries, map_at, map_at_heads, map_keys, order_id_belongs_to, str_at,
};
use super::escrow::{EscrowField, KEY_ESCROW};
use super::orders::{
    KEY_BASE, KEY_BASE_CUT, KEY_BASE_ORDERS, KEY_BASE_WRITERS, KEY_EVENTS, OrderFacts, OrdersDoc,
    OrdersError, put_facts,
};
use super::transfers::{
    KEY_EVENTS as KEY_TR_EVENTS, KEY_RECEIVED, KEY_TRANSFERS, TransferDocError, TransferFacts,
    put_transfer_facts,
};
use crate::domain::orders::{OrderState, OrderStatus, fold_status};

const KEY_CARRIED_FROM: &str = "carried_from";
const KEY_BASE_CLOSED: &str = "closed";

/// Errors of an orders epoch switch.
#[derive(Debug, thiserror::Error)]
pub enum OrdersEpochError {
    #[error(transparent)]
    Orders(#[from] OrdersError),
    #[error(transparent)]
    Transfer(#[from] TransferDocError),
    #[error("epoch {new} does not follow epoch {old}")]
    NotNextEpoch { old: u32, new: u32 },
    #[error("documents belong to different stores ({old} vs {new})")]
    OtherStore { old: String, new: String },
    #[error("the cut names writer {writer}'s change {hash}, which it does not have")]
    OwnCutChangeMissing { writer: String, hash: String },
    #[error("epoch number overflow")]
    EpochOverflow,
}

// Through OrdersError, which takes it through DocError (see `doc_error!`).
impl From<automerge::AutomergeError> for OrdersEpochError {
    fn from(e: automerge::AutomergeError) -> Self {
        Self::Orders(e.into())
    }
}

/// What HQ's switch of an orders document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersCut {
    pub epoch: u32,
    /// Per store writer: its last change in the cut.
    pub writer_cut: BTreeMap<WriterId, ChangeHash>,
    /// Orders closed at the cut and left out of the new document.
    pub dropped: Vec<String>,
}

/// HQ: the orders document of E+1, cut at HQ's current heads of `old` (HQ makes no change
/// in E after this, so the cut is all HQ has). Returns the new document (genesis + one HQ
/// change holding the base) and what was cut.
pub fn open_next_orders_epoch(
    old: &OrdersDoc,
    hq: WriterId,
    at_ms: i64,
) -> Result<(OrdersDoc, OrdersCut), OrdersEpochError> {
    let epoch = old
        .core()
        .epoch()
        .checked_add(1)
        .ok_or(OrdersEpochError::EpochOverflow)?;
    let writer_cut = last_change_per_writer(old);
    let (kept, dropped): (Vec<String>, Vec<String>) =
        old.order_ids().into_iter().partition(|id| keeps(old, id));
    let mut new = OrdersDoc::genesis(&old.core().id().store, epoch, hq.clone())?;
    let writers = new
        .core()
        .root_map(KEY_WRITERS)
        .ok_or_else(|| OrdersError::Unknown("writers map".to_owned()))?;
    let per_writer = base_per_writer(old, &kept);
    let facts: Vec<OrderFacts> = kept.iter().filter_map(|id| old.facts(id)).collect();
    let closed: Vec<(String, OrderState)> = dropped
        .iter()
        .filter_map(|id| Some((id.clone(), old.state(id)?)))
        .collect();
    new.core_mut()
        .commit::<OrdersEpochError, _>(at_ms, "epoch-base", |tx| {
            let own = child_map(tx, &writers, hq.as_str())?;
            let base = tx.put_object(&own, KEY_BASE, ObjType::Map)?;
            let cut = tx.put_object(&base, KEY_BASE_CUT, ObjType::Map)?;
            for (writer, hash) in &writer_cut {
                tx.put(&cut, writer.as_str(), hash_to_hex(hash))?;
            }
            let orders = tx.put_object(&base, KEY_BASE_ORDERS, ObjType::Map)?;
            for f in &facts {
                put_facts(tx, &orders, f)?;
            }
            let closed_map = tx.put_object(&base, KEY_BASE_CLOSED, ObjType::Map)?;
            for (id, state) in &closed {
                let entry = tx.put_object(&closed_map, id.as_str(), ObjType::Map)?;
                tx.put(&entry, "status", state.status.as_str())?;
                tx.put(&entry, "at_ms", state.decided_by.at_ms)?;
                tx.put(&entry, "writer", state.decided_by.writer.as_str())?;
            }
            let base_writers = tx.put_object(&base, KEY_BASE_WRITERS, ObjType::Map)?;
            for (writer, part) in &per_writer {
                let map = tx.put_object(&base_writers, writer.as_str(), ObjType::Map)?;
                part.write(tx, &map)?;
            }
            Ok(())
        })?;
    Ok((
        new,
        OrdersCut {
            epoch,
            writer_cut,
            dropped,
        },
    ))
}

/// Whether an order goes into the next epoch's base (see the module docs).
fn keeps(old: &OrdersDoc, id: &str) -> bool {
    let Some(state) = old.state(id) else {
        return true; // no events: nothing decided yet
    };
    if state.status.is_handed_over() {
        return false; // final: nothing can change the fold any more
    }
    if !state.status.is_withdrawal() {
        return true;
    }
    // A withdrawal drops once it was already in the previous base: every writer has since
    // moved over and carried any collect it held.
    let in_base = old.base_events(id);
    !fold_status(&in_base).is_some_and(|s| s.status.is_withdrawal())
}

/// One writer's part of the base, in its own layout.
#[derive(Debug, Default)]
struct WriterPart {
    /// section (`order_events`, `escrow`, `coupons`, `transfer_events`, `transfer_received`) → id →
    /// key → value.
    ints: BTreeMap<&'static str, BTreeMap<String, BTreeMap<String, i64>>>,
    transfers: Vec<TransferFacts>,
}

impl WriterPart {
    fn is_empty(&self) -> bool {
        self.ints.values().all(BTreeMap::is_empty) && self.transfers.is_empty()
    }

    fn section(&mut self, name: &'static str) -> &mut BTreeMap<String, BTreeMap<String, i64>> {
        self.ints.entry(name).or_default()
    }

    fn write(&self, tx: &mut Transaction<'_>, map: &ObjId) -> Result<(), OrdersEpochError> {
        for (section, entries) in &self.ints {
            if entries.is_empty() {
                continue;
            }
            let section = tx.put_object(map, *section, ObjType::Map)?;
            for (id, values) in entries {
                let entry = tx.put_object(&section, id.as_str(), ObjType::Map)?;
                for (key, value) in values {
                    tx.put(&entry, key.as_str(), *value)?;
                }
            }
        }
        if !self.transfers.is_empty() {
            let all = tx.put_object(map, KEY_TRANSFERS, ObjType::Map)?;
            for facts in &self.transfers {
                put_transfer_facts(tx, &all, facts)?;
            }
        }
        Ok(())
    }
}

/// Per writer: its events of the kept orders, escrow totals and transfer records.
fn base_per_writer(old: &OrdersDoc, kept: &[String]) -> BTreeMap<WriterId, WriterPart> {
    let mut parts: BTreeMap<WriterId, WriterPart> = BTreeMap::new();
    for id in kept {
        for event in old.events(id) {
            let Ok(writer) = WriterId::new(&event.writer) else {
                continue;
            };
            let slot = parts
                .entry(writer)
                .or_default()
                .section(KEY_EVENTS)
                .entry(id.clone())
                .or_default()
                .entry(event.status.as_str().to_owned())
                .or_insert(event.at_ms);
            *slot = (*slot).min(event.at_ms);
        }
    }
    for (writer, per_sku) in old.escrow_by_writer() {
        let section = parts.entry(writer).or_default().section(KEY_ESCROW);
        for (sku, totals) in per_sku {
            let values: BTreeMap<String, i64> = [
                (EscrowField::Granted, totals.granted),
                (EscrowField::Consumed, totals.consumed),
                (EscrowField::Returned, totals.returned),
            ]
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(f, v)| (f.as_str().to_owned(), v))
            .collect();
            if !values.is_empty() {
                section.insert(sku, values);
            }
        }
    }
    for (writer, per_member) in old.loyalty_by_writer() {
        let section = parts
            .entry(writer)
            .or_default()
            .section(crate::crdt::loyalty::KEY_LOYALTY);
        section.extend(per_member);
    }
    for (writer, per_code) in old.coupons_by_writer() {
        let section = parts.entry(writer).or_default().section(KEY_COUPONS);
        for (code, mut values) in per_code {
            values.retain(|_, v| *v != 0);
            if !values.is_empty() {
                section.insert(code, values);
            }
        }
    }
    let transfer_ids = old.transfer_ids();
    for writer in old.tr_writer_ids() {
        let part = parts.entry(writer.clone()).or_default();
        for id in &transfer_ids {
            if let Some(facts) = old.tr_facts_by(&writer, id) {
                part.transfers.push(facts);
            }
            let events = old.tr_events_by(&writer, id);
            if !events.is_empty() {
                part.section(KEY_TR_EVENTS).insert(id.clone(), events);
            }
            if let Some(lines) = old.tr_received_by(&writer, id) {
                part.section(KEY_RECEIVED).insert(id.clone(), lines);
            }
        }
    }
    parts.retain(|_, part| !part.is_empty());
    parts
}

/// Each store writer's latest change (any incarnation) in `doc` (HQ's cut is its current heads).
/// HQ itself is left out: it switches at the cut and has no work after it to carry.
fn last_change_per_writer(doc: &OrdersDoc) -> BTreeMap<WriterId, ChangeHash> {
    let mut last: BTreeMap<WriterId, (u64, ChangeHash)> = BTreeMap::new();
    for meta in doc.core().automerge().get_changes_meta(&[]) {
        // The genesis actor is not a writer and is skipped here.
        let Ok(writer) = WriterId::from_actor(meta.actor.as_ref()) else {
            continue;
        };
        if writer.is_hq() {
            continue;
        }
        // By op counter, not sequence number: a writer's incarnations are distinct actors,
        // each with its own sequence, and a later one's changes follow the earlier ones'
        // (it catches up before it writes), so their ops count higher.
        let entry = last.entry(writer).or_insert((meta.max_op, meta.hash));
        if meta.max_op > entry.0 {
            *entry = (meta.max_op, meta.hash);
        }
    }
    last.into_iter().map(|(w, (_, hash))| (w, hash)).collect()
}

impl OrdersDoc {
    /// The cut of this epoch's base: each store writer's last change included in it.
    pub fn base_cut(&self) -> BTreeMap<WriterId, ChangeHash> {
        let doc = self.core().automerge();
        let Some(cut) = self.base_child(KEY_BASE_CUT) else {
            return BTreeMap::new();
        };
        map_keys(doc, &cut, None)
            .into_iter()
            .filter_map(|key| {
                let writer = WriterId::new(&key).ok()?;
                let hash = hash_from_hex(&str_at(doc, &cut, &key)?)?;
                Some((writer, hash))
            })
            .collect()
    }

    /// The orders HQ closed at this epoch's cut and left out, with their decision.
    pub fn closed_at_cut(&self) -> Vec<(String, OrderState)> {
        let doc = self.core().automerge();
        let Some(closed) = self.base_child(KEY_BASE_CLOSED) else {
            return Vec::new();
        };
        map_keys(doc, &closed, None)
            .into_iter()
            .filter_map(|id| {
                let entry = map_at(doc, &closed, &id)?;
                let status = OrderStatus::parse(&str_at(doc, &entry, "status")?)?;
                let decided_by = crate::domain::orders::OrderEvent {
                    status,
                    at_ms: int_at(doc, &entry, "at_ms")?,
                    writer: str_at(doc, &entry, "writer")?,
                };
                Some((id, OrderState { status, decided_by }))
            })
            .collect()
    }

    /// The epoch `writer` carried its post-cut orders work from, if it has.
    pub fn carried_from(&self, writer: &WriterId) -> Option<u32> {
        let own = self.core().writer_map(writer)?;
        int_at(self.core().automerge(), &own, KEY_CARRIED_FROM).and_then(|e| u32::try_from(e).ok())
    }

    /// The events of `order_id` as HQ's base of this epoch holds them.
    fn base_events(&self, order_id: &str) -> Vec<crate::domain::orders::OrderEvent> {
        let doc = self.core().automerge();
        let Some(writers) = self.base_child(KEY_BASE_WRITERS) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for writer in map_keys(doc, &writers, None) {
            let Some(per) = map_at(doc, &writers, &writer)
                .and_then(|w| map_at(doc, &w, KEY_EVENTS))
                .and_then(|e| map_at(doc, &e, order_id))
            else {
                continue;
            };
            for (status, at_ms) in int_entries(doc, &per, None) {
                if let Some(status) = OrderStatus::parse(&status) {
                    out.push(crate::domain::orders::OrderEvent {
                        status,
                        at_ms,
                        writer: writer.clone(),
                    });
                }
            }
        }
        out
    }
}

/// Whether every store writer named in the cut of `new` has carried over, so E may go.
pub fn orders_all_moved_over(new: &OrdersDoc) -> bool {
    orders_all_moved_over_but(new, &BTreeSet::new())
}

/// [`orders_all_moved_over`], not waiting for the writers in `gone` (lanes retired for
/// good).
pub fn orders_all_moved_over_but(new: &OrdersDoc, gone: &BTreeSet<WriterId>) -> bool {
    let Some(old_epoch) = new.core().epoch().checked_sub(1) else {
        return true;
    };
    new.base_cut()
        .keys()
        .filter(|writer| !gone.contains(*writer))
        .all(|writer| new.carried_from(writer) == Some(old_epoch))
}

#[cfg(test)]
mod tests;
