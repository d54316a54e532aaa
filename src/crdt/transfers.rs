//! Store-to-store transfers in the stores' orders documents (a separate `impl OrdersDoc`).
//!
//! Layout, all inside the writer's own map, so the existing ownership rule of
//! [`super::doc::SyncDoc::check_change`] (only `w` writes under `writers/{w}`) already makes
//! every key single-writer and HQ needs no new rule:
//! ```text
//! writers/{w}/transfers/{transfer id}            facts, made by the dispatching lane in the
//!   from, to, created_at, receiver?                sender's document and copied by HQ
//!   lines/{sku} = qty                              (`w = hq`) into the receiver's document
//! writers/{w}/transfer_events/{transfer id}
//!   {status} = at_ms                             first time w recorded that status
//! writers/{w}/transfer_received/{transfer id}
//!   {sku} = qty                                  what the receiving lane counted in
//! ```
//! In an epoch ≥ 1 each writer's entries at HQ's cut are in HQ's base under the writer's
//! own id (`writers/{hq}/base/writers/{w}/...`, see [`super::epoch_orders`]); the readers
//! merge them with the live ones, so the rules below apply to both.
//! Transfer ids are `{dispatching writer}:{local id}`, chain-unique. Readers only believe
//! facts and `in_transit`/`cancelled` from the id's owner or HQ, and `received` (with its
//! lines) from the receiving lane HQ named or HQ, so a lane cannot forge another's part.
//! Why not a `transfers` root map: a new root map would change the genesis bytes of every
//! existing orders document, and non-HQ writers may not add root keys.

use super::doc::child_map;
use std::collections::BTreeMap;

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::doc::{
    DocError, KEY_WRITERS, LocalChange, WriterId, int_at, int_entries, map_at, map_keys,
    order_id_belongs_to, str_at,
};
use super::orders::OrdersDoc;
use crate::domain::transfers::{TransferEvent, TransferState, TransferStatus, fold_status};

pub(super) const KEY_TRANSFERS: &str = "transfers";
pub(super) const KEY_EVENTS: &str = "transfer_events";
pub(super) const KEY_RECEIVED: &str = "transfer_received";
const KEY_LINES: &str = "lines";
/// Longest transfer id (writer + ':' + local id) accepted.
pub const MAX_TRANSFER_ID_LEN: usize = 140;
/// Most lines in one transfer.
pub const MAX_TRANSFER_LINES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum TransferDocError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("transfer id {0:?} must be '{{writer}}:{{local id}}' with this writer's id")]
    ForeignId(String),
    #[error("transfer {0} is unknown")]
    Unknown(String),
    #[error("transfer {id} is invalid: {reason}")]
    Invalid { id: String, reason: String },
}

super::doc::doc_error!(TransferDocError);

/// The business facts of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TransferFacts {
    /// `{dispatching writer}:{local id}`.
    pub transfer_id: String,
    pub from_store: String,
    pub to_store: String,
    pub created_at_ms: i64,
    /// The lane of the receiving store that books the receipt (set by HQ when it copies
    /// the transfer to that store).
    pub receiver: Option<WriterId>,
    /// sku → dispatched quantity (> 0).
    pub lines: BTreeMap<String, i64>,
}

impl TransferFacts {
    /// The dispatching writer (the id's prefix).
    pub fn dispatcher(&self) -> Option<WriterId> {
        let (writer, _) = self.transfer_id.split_once(':')?;
        WriterId::new(writer).ok()
    }

    fn validate(&self) -> Result<(), TransferDocError> {
        let invalid = |reason: &str| TransferDocError::Invalid {
            id: self.transfer_id.clone(),
            reason: reason.to_owned(),
        };
        if self.transfer_id.len() > MAX_TRANSFER_ID_LEN || self.dispatcher().is_none() {
            return Err(invalid("bad id"));
        }
        if self.lines.is_empty() || self.lines.len() > MAX_TRANSFER_LINES {
            return Err(invalid("needs 1 to 200 lines"));
        }
        for (sku, qty) in &self.lines {
            if sku.is_empty() || sku.len() > super::stock::MAX_SKU_LEN || *qty <= 0 {
                return Err(invalid("bad line"));
            }
        }
        Ok(())
    }
}

impl OrdersDoc {
    /// Writes the facts of a transfer under this writer (one change; none if already there).
    /// A store lane may only write transfers it dispatched; HQ copies any.
    pub fn put_transfer(
        &mut self,
        facts: &TransferFacts,
    ) -> Result<Option<LocalChange>, TransferDocError> {
        let writer = self.core().writer().clone();
        if !writer.is_hq() && !order_id_belongs_to(&facts.transfer_id, &writer) {
            return Err(TransferDocError::ForeignId(facts.transfer_id.clone()));
        }
        facts.validate()?;
        if self.tr_facts_by(&writer, &facts.transfer_id).is_some() {
            return Ok(None);
        }
        let writers = self.tr_writers_map()?;
        self.core_mut()
            .commit(facts.created_at_ms, "transfer", |tx| {
                let own = child_map(tx, &writers, writer.as_str())?;
                let all = child_map(tx, &own, KEY_TRANSFERS)?;
                put_transfer_facts(tx, &all, facts)
            })
    }

    /// Records that this writer saw `status` at `at_ms` (keeps an earlier time; then no change).
    pub fn record_transfer_status(
        &mut self,
        transfer_id: &str,
        status: TransferStatus,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, TransferDocError> {
        self.record_transfer(transfer_id, status, at_ms, None)
    }

    /// Records `received` with the counted lines (one change). Lines already recorded by this
    /// writer are kept: a receipt is booked once.
    pub fn record_transfer_received(
        &mut self,
        transfer_id: &str,
        lines: &BTreeMap<String, i64>,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, TransferDocError> {
        self.record_transfer(transfer_id, TransferStatus::Received, at_ms, Some(lines))
    }

    fn record_transfer(
        &mut self,
        transfer_id: &str,
        status: TransferStatus,
        at_ms: i64,
        received: Option<&BTreeMap<String, i64>>,
    ) -> Result<Option<LocalChange>, TransferDocError> {
        if self.transfer_facts(transfer_id).is_none() {
            return Err(TransferDocError::Unknown(transfer_id.to_owned()));
        }
        let writer = self.core().writer().clone();
        let had_lines = received.is_some() && self.tr_received_by(&writer, transfer_id).is_some();
        let writers = self.tr_writers_map()?;
        self.core_mut().commit(at_ms, "transfer-status", |tx| {
            let own = child_map(tx, &writers, writer.as_str())?;
            let events = child_map(tx, &own, KEY_EVENTS)?;
            let per = child_map(tx, &events, transfer_id)?;
            if int_at(tx, &per, status.as_str()).is_none_or(|t| t > at_ms) {
                tx.put(&per, status.as_str(), at_ms)?;
            }
            if let (Some(lines), false) = (received, had_lines) {
                let all = child_map(tx, &own, KEY_RECEIVED)?;
                let map = tx.put_object(&all, transfer_id, ObjType::Map)?;
                for (sku, qty) in lines {
                    tx.put(&map, sku.as_str(), *qty)?;
                }
            }
            Ok(())
        })
    }

    /// Every transfer id any writer wrote facts for, sorted, without duplicates.
    pub fn transfer_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .tr_writer_ids()
            .iter()
            .flat_map(|w| self.tr_own_maps(w, KEY_TRANSFERS))
            .flat_map(|m| map_keys(self.core().automerge(), &m, None))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The facts of a transfer: the dispatcher's, else HQ's copy (which names the receiver).
    /// HQ's copy wins for `receiver`, which only HQ sets.
    pub fn transfer_facts(&self, transfer_id: &str) -> Option<TransferFacts> {
        let from_hq = self.tr_facts_by(&WriterId::hq(), transfer_id);
        let owner = transfer_id
            .split_once(':')
            .and_then(|(w, _)| WriterId::new(w).ok())
            .filter(|w| !w.is_hq());
        let from_owner = owner.and_then(|w| self.tr_facts_by(&w, transfer_id));
        match (from_owner, from_hq) {
            (Some(mut own), Some(hq)) => {
                own.receiver = hq.receiver;
                Some(own)
            }
            (own, hq) => own.or(hq),
        }
    }

    /// Every believable status event of a transfer (see the module docs).
    pub fn transfer_events(&self, transfer_id: &str) -> Vec<TransferEvent> {
        let Some(facts) = self.transfer_facts(transfer_id) else {
            return Vec::new();
        };
        let dispatcher = facts.dispatcher();
        let mut out = Vec::new();
        for writer in self.tr_writer_ids() {
            for (status, at_ms) in self.tr_events_by(&writer, transfer_id) {
                let Some(status) = TransferStatus::parse(&status) else {
                    continue;
                };
                let allowed = writer.is_hq()
                    || match status {
                        TransferStatus::Received => facts.receiver.as_ref() == Some(&writer),
                        _ => dispatcher.as_ref() == Some(&writer),
                    };
                if allowed {
                    out.push(TransferEvent {
                        status,
                        at_ms,
                        writer: writer.as_str().to_owned(),
                    });
                }
            }
        }
        out.sort();
        out
    }

    /// The counted lines of the receipt: the receiving lane's, else HQ's copy.
    pub fn transfer_received(&self, transfer_id: &str) -> Option<BTreeMap<String, i64>> {
        let facts = self.transfer_facts(transfer_id)?;
        facts
            .receiver
            .and_then(|r| self.tr_received_by(&r, transfer_id))
            .or_else(|| self.tr_received_by(&WriterId::hq(), transfer_id))
    }

    /// The folded state of a transfer.
    pub fn transfer_state(&self, transfer_id: &str) -> Option<TransferState> {
        fold_status(&self.transfer_events(transfer_id))
    }

    /// Statuses this writer itself recorded for the transfer.
    pub fn own_transfer_statuses(&self, transfer_id: &str) -> Vec<TransferStatus> {
        let writer = self.core().writer().clone();
        self.tr_events_by(&writer, transfer_id)
            .keys()
            .filter_map(|s| TransferStatus::parse(s))
            .collect()
    }

    /// `writer`'s status entries for a transfer (this epoch's and the base's, earliest time
    /// kept), unchecked: the readers above decide what to believe.
    pub(super) fn tr_events_by(
        &self,
        writer: &WriterId,
        transfer_id: &str,
    ) -> BTreeMap<String, i64> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        for map in self.tr_own_maps(writer, KEY_EVENTS) {
            let Some(per) = map_at(doc, &map, transfer_id) else {
                continue;
            };
            for (status, at_ms) in int_entries(doc, &per, None) {
                let slot = out.entry(status).or_insert(at_ms);
                *slot = (*slot).min(at_ms);
            }
        }
        out
    }

    pub(super) fn tr_facts_by(
        &self,
        writer: &WriterId,
        transfer_id: &str,
    ) -> Option<TransferFacts> {
        if !writer.is_hq() && !order_id_belongs_to(transfer_id, writer) {
            return None;
        }
        let doc = self.core().automerge();
        let map = self
            .tr_own_maps(writer, KEY_TRANSFERS)
            .into_iter()
            .find_map(|m| map_at(doc, &m, transfer_id))?;
        let lines = map_at(doc, &map, KEY_LINES)
            .map(|l| int_entries(doc, &l, None).into_iter().collect())
            .unwrap_or_default();
        Some(TransferFacts {
            transfer_id: transfer_id.to_owned(),
            from_store: str_at(doc, &map, "from")?,
            to_store: str_at(doc, &map, "to")?,
            created_at_ms: int_at(doc, &map, "created_at")?,
            receiver: str_at(doc, &map, "receiver").and_then(|r| WriterId::new(&r).ok()),
            lines,
        })
    }

    pub(super) fn tr_received_by(
        &self,
        writer: &WriterId,
        transfer_id: &str,
    ) -> Option<BTreeMap<String, i64>> {
        let doc = self.core().automerge();
        let map = self
            .tr_own_maps(writer, KEY_RECEIVED)
            .into_iter()
            .find_map(|m| map_at(doc, &m, transfer_id))?;
        Some(int_entries(doc, &map, None).into_iter().collect())
    }

    /// `writer`'s map `key`: its own, then the copy in HQ's base (see
    /// [`OrdersDoc::writer_maps`]).
    fn tr_own_maps(&self, writer: &WriterId, key: &str) -> Vec<automerge::ObjId> {
        let doc = self.core().automerge();
        self.writer_maps()
            .into_iter()
            .filter(|(w, _)| w == writer)
            .filter_map(|(_, own)| map_at(doc, &own, key))
            .collect()
    }

    /// Every writer with a map, live or in the base, sorted, without duplicates.
    pub(super) fn tr_writer_ids(&self) -> Vec<WriterId> {
        let mut ids: Vec<WriterId> = self.writer_maps().into_iter().map(|(w, _)| w).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn tr_writers_map(&self) -> Result<automerge::ObjId, TransferDocError> {
        self.core()
            .root_map(KEY_WRITERS)
            .ok_or_else(|| DocError::NotOurDocument("no writers map".to_owned()).into())
    }
}

/// Writes `facts` as the map `parent[transfer id]` (a writer's `transfers`, or HQ's base).
pub(super) fn put_transfer_facts(
    tx: &mut automerge::transaction::Transaction<'_>,
    parent: &automerge::ObjId,
    facts: &TransferFacts,
) -> Result<(), TransferDocError> {
    let map = tx.put_object(parent, facts.transfer_id.as_str(), ObjType::Map)?;
    tx.put(&map, "from", facts.from_store.as_str())?;
    tx.put(&map, "to", facts.to_store.as_str())?;
    tx.put(&map, "created_at", facts.created_at_ms)?;
    if let Some(receiver) = &facts.receiver {
        tx.put(&map, "receiver", receiver.as_str())?;
    }
    let lines = tx.put_object(&map, KEY_LINES, ObjType::Map)?;
    for (sku, qty) in &facts.lines {
        tx.put(&lines, sku.as_str(), *qty)?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn w(id: &str) -> WriterId {
        WriterId::new(id).unwrap()
    }

    fn facts(receiver: Option<&str>) -> TransferFacts {
        TransferFacts {
            transfer_id: "s1.lane1:t1".to_owned(),
            from_store: "s1".to_owned(),
            to_store: "s2".to_owned(),
            created_at_ms: 10,
            receiver: receiver.map(w),
            lines: BTreeMap::from([("MILK".to_owned(), 5)]),
        }
    }

    fn sync(from: &OrdersDoc, to: &mut OrdersDoc) {
        let changes = from.core().changes_since(&to.core().heads());
        to.core_mut().apply_changes(&changes).unwrap();
    }

    #[test]
    fn a_transfer_travels_sender_hq_receiver_and_back() {
        let mut a = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
        let mut hq_a = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
        let mut hq_b = OrdersDoc::genesis("s2", 0, w("hq")).unwrap();
        let mut b = OrdersDoc::genesis("s2", 0, w("s2.lane1")).unwrap();
        let allowed: BTreeSet<WriterId> = [w("s1.lane1")].into();
        let created = a.put_transfer(&facts(None)).unwrap().unwrap();
        assert!(hq_a.core().check_change(&created.bytes, &allowed).is_ok());
        let event = a
            .record_transfer_status("s1.lane1:t1", TransferStatus::InTransit, 10)
            .unwrap()
            .unwrap();
        assert!(hq_a.core().check_change(&event.bytes, &allowed).is_ok());
        assert!(a.put_transfer(&facts(None)).unwrap().is_none(), "once");
        sync(&a, &mut hq_a);
        // HQ copies it into the receiver's document naming the receiving lane.
        hq_b.put_transfer(&facts(Some("s2.lane1"))).unwrap();
        hq_b.record_transfer_status("s1.lane1:t1", TransferStatus::InTransit, 10)
            .unwrap();
        sync(&hq_b, &mut b);
        assert_eq!(b.transfer_ids(), vec!["s1.lane1:t1".to_owned()]);
        assert_eq!(
            b.transfer_facts("s1.lane1:t1"),
            Some(facts(Some("s2.lane1")))
        );
        let got = BTreeMap::from([("MILK".to_owned(), 4)]);
        let received = b
            .record_transfer_received("s1.lane1:t1", &got, 50)
            .unwrap()
            .unwrap();
        let b_allowed: BTreeSet<WriterId> = [w("s2.lane1")].into();
        assert!(
            hq_b.core()
                .check_change(&received.bytes, &b_allowed)
                .is_ok()
        );
        sync(&b, &mut hq_b);
        assert_eq!(hq_b.transfer_received("s1.lane1:t1"), Some(got.clone()));
        let state = hq_b.transfer_state("s1.lane1:t1").unwrap();
        assert_eq!(state.status, TransferStatus::Received);
        assert_eq!(state.decided_by.writer, "s2.lane1");
        // HQ relays the receipt into the sender's document.
        hq_a.record_transfer_received("s1.lane1:t1", &got, 50)
            .unwrap();
        sync(&hq_a, &mut a);
        assert_eq!(a.transfer_received("s1.lane1:t1"), Some(got));
        assert_eq!(
            a.transfer_state("s1.lane1:t1").unwrap().status,
            TransferStatus::Received
        );
    }

    #[test]
    fn foreign_ids_and_forged_statuses_are_refused_or_ignored() {
        let mut b = OrdersDoc::genesis("s2", 0, w("s2.lane1")).unwrap();
        assert!(matches!(
            b.put_transfer(&facts(None)),
            Err(TransferDocError::ForeignId(_))
        ));
        let mut hq_b = OrdersDoc::genesis("s2", 0, w("hq")).unwrap();
        hq_b.put_transfer(&facts(Some("s2.lane1"))).unwrap();
        sync(&hq_b, &mut b);
        let mut other = OrdersDoc::genesis("s2", 0, w("s2.lane2")).unwrap();
        sync(&hq_b, &mut other);
        // lane2 is not the receiver: its receipt and cancel do not count.
        other
            .record_transfer_received("s1.lane1:t1", &BTreeMap::new(), 5)
            .unwrap();
        other
            .record_transfer_status("s1.lane1:t1", TransferStatus::Cancelled, 5)
            .unwrap();
        sync(&other, &mut b);
        assert!(b.transfer_events("s1.lane1:t1").is_empty());
        assert_eq!(b.transfer_received("s1.lane1:t1"), None);
        let mut empty = facts(None);
        empty.lines.clear();
        let mut a = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
        assert!(matches!(
            a.put_transfer(&empty),
            Err(TransferDocError::Invalid { .. })
        ));
        assert!(matches!(
            a.record_transfer_status("s1.lane1:nope", TransferStatus::Cancelled, 1),
            Err(TransferDocError::Unknown(_))
        ));
    }
}
