//! Store-to-store transfers at HQ: HQ is the hub between the two stores' orders documents
//! (a store writes only its own), and keeps the chain-wide view.
//!
//! Whenever a store's orders document changes, HQ ([`HqState::relay_transfers`]):
//! 1. copies a new transfer's facts from the sender's document into the receiver's, naming
//!    the receiving lane (an online lane HQ has seen, as for online orders); a store HQ has
//!    never seen a lane of waits (`synced = 0`) until one shows up;
//! 2. mirrors every status event one document has and the other lacks (a receipt with its
//!    counted lines into the sender's, a cancel into the receiver's), as HQ's own event with
//!    the original time, so both documents fold to the same status;
//! 3. refreshes `hq_transfer` (status, dispatched and received per SKU) for the HTTP API.
//!
//! Everything is idempotent: a replayed change finds nothing missing and writes nothing.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{HqError, HqState, Outgoing};
use crate::crdt::doc::{DocError, DocId, DocKind, SyncDoc, WriterId};
use crate::crdt::orders::OrdersDoc;
use crate::crdt::transfers::{TransferDocError, TransferFacts};
use crate::domain::transfers::{TransferEvent, TransferStatus, discrepancy, fold_status};
use crate::sync::payload::SyncMessage;
use crate::sync::persist;
use crate::sync::service::{kind_id, scope_of};
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::WireError;

/// `GET /v1/transfers/{id}` at HQ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqTransferView {
    pub transfer_id: String,
    pub from_store: String,
    pub to_store: String,
    pub receiver: Option<String>,
    pub status: TransferStatus,
    pub decided_by: Option<TransferEvent>,
    pub created_at_ms: i64,
    pub lines: Vec<HqTransferLine>,
    /// Every writer's status events from both stores' documents, oldest first.
    pub history: Vec<TransferEvent>,
    /// Both stores' documents show this status (false: HQ still has something to relay,
    /// e.g. the receiving store has no lane HQ knows yet).
    pub synced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqTransferLine {
    pub sku: String,
    pub dispatched: i64,
    pub received: Option<i64>,
    /// received − dispatched once received (negative: short).
    pub discrepancy: Option<i64>,
}

/// One row of `GET /v1/transfers?store=S`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqTransferSummary {
    pub transfer_id: String,
    pub from_store: String,
    pub to_store: String,
    pub status: TransferStatus,
    pub created_at_ms: i64,
}

/// Units of a SKU in transit from or to a store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InTransit {
    pub sku: String,
    /// Dispatched by this store, not yet received or cancelled.
    pub outbound: i64,
    /// Dispatched to this store, not yet received or cancelled.
    pub inbound: i64,
}

fn doc_err(e: TransferDocError) -> HqError {
    HqError::Doc(DocError::NotOurDocument(e.to_string()))
}

impl HqState {
    /// Relays the transfers of a store's orders document that changed (see the module docs).
    /// Returns the changes and heads to publish. Failures are logged: the store's own change
    /// is already applied and stored, and the next change of either document retries.
    pub(super) fn relay_transfers(&mut self, changed: &DocId) -> Vec<Outgoing> {
        if changed.kind != DocKind::Orders {
            return Vec::new();
        }
        let ids = match self.orders_doc(changed) {
            Ok(doc) => doc
                .transfer_ids()
                .into_iter()
                .filter(|id| {
                    let status = doc.transfer_state(id).map(|s| s.status);
                    !self.is_synced(id, status).unwrap_or(false)
                })
                .collect::<Vec<_>>(),
            Err(_) => return Vec::new(),
        };
        self.relay_ids(&ids)
    }

    /// Retries the transfers to `store` still waiting for a receiving lane (a lane of it
    /// was just seen).
    pub(super) fn relay_pending_to(&mut self, store: &str) -> Vec<Outgoing> {
        let ids: Vec<String> = match self
            .conn
            .prepare_cached("SELECT id FROM hq_transfer WHERE to_store = ?1 AND synced = 0")
            .and_then(|mut stmt| {
                stmt.query_map([store], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            }) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pending transfers");
                return Vec::new();
            }
        };
        self.relay_ids(&ids)
    }

    fn relay_ids(&mut self, ids: &[String]) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let mut touched = Vec::new();
        for id in ids {
            match self.relay_one(id) {
                Ok(changed) => touched.extend(changed),
                Err(e) => {
                    tracing::warn!(transfer = %id, error = %e, "transfer relay failed; retried with the next change");
                }
            }
        }
        for (doc, changes) in touched_changes(touched) {
            match self.publish_doc_changes(&doc, changes) {
                Ok(messages) => out.extend(messages),
                Err(e) => tracing::warn!(error = %e, "cannot publish relayed transfer changes"),
            }
        }
        out
    }

    /// Relays one transfer; returns `(doc, change bytes)` of every change HQ made.
    fn relay_one(&mut self, id: &str) -> Result<Vec<(DocId, Vec<u8>)>, HqError> {
        let Some((from_id, to_id, facts)) = self.transfer_docs(id)? else {
            return Ok(Vec::new());
        };
        let mut made = Vec::new();
        if let Some(change) = self.copy_facts(&to_id, &facts)? {
            made.push((to_id.clone(), change));
        }
        let from = self.orders_doc(&from_id)?;
        let to = self.orders_doc(&to_id)?;
        for (target, source, target_id) in [(&from, &to, &from_id), (&to, &from, &to_id)] {
            for (status, at_ms, lines) in missing_events(target, source, id) {
                let change = self.hq_write(target_id, |doc| match (&status, &lines) {
                    (TransferStatus::Received, Some(lines)) => {
                        doc.record_transfer_received(id, lines, at_ms)
                    }
                    _ => doc.record_transfer_status(id, status, at_ms),
                })?;
                if let Some(change) = change {
                    made.push((target_id.clone(), change));
                }
            }
        }
        self.refresh_row(id, &from_id, &to_id)?;
        Ok(made)
    }

    /// `(sender's doc, receiver's doc, facts)` of a transfer, if it is well formed: the
    /// dispatcher is a lane of the sending store and the stores differ.
    fn transfer_docs(&self, id: &str) -> Result<Option<(DocId, DocId, TransferFacts)>, HqError> {
        // Only the sending store's document can hold the dispatcher's facts: look there
        // (cloning every store's document would not scale).
        let Some((dispatcher, _)) = id.split_once(':') else {
            return Ok(None);
        };
        let facts = self
            .docs
            .iter()
            .filter(|(doc_id, _)| {
                doc_id.kind == DocKind::Orders
                    && dispatcher
                        .strip_prefix(doc_id.store.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .find_map(|(_, core)| {
                let doc = OrdersDoc::from_core(core.clone()).ok()?;
                doc.transfer_facts(id)
            });
        let Some(facts) = facts else {
            return Ok(None);
        };
        let sender_lane = facts
            .dispatcher()
            .is_some_and(|w| w.as_str().starts_with(&format!("{}.", facts.from_store)));
        if !sender_lane || facts.from_store == facts.to_store {
            tracing::warn!(transfer = id, "transfer with a foreign sender ignored");
            return Ok(None);
        }
        let from_id = DocId::new(&facts.from_store, DocKind::Orders)?;
        let to_id = DocId::new(&facts.to_store, DocKind::Orders)?;
        Ok(Some((from_id, to_id, facts)))
    }

    /// Writes HQ's copy of the facts (with the receiving lane) into the receiver's document.
    fn copy_facts(
        &mut self,
        to_id: &DocId,
        facts: &TransferFacts,
    ) -> Result<Option<Vec<u8>>, HqError> {
        let to = self.orders_doc(to_id)?;
        if to
            .transfer_facts(&facts.transfer_id)
            .is_some_and(|f| f.receiver.is_some())
        {
            return Ok(None);
        }
        let Some(receiver) = self.receiving_lane(&to_id.store)? else {
            tracing::info!(
                transfer = facts.transfer_id,
                to_store = to_id.store,
                "no lane of the receiving store known yet; relay waits"
            );
            return Ok(None);
        };
        let copy = TransferFacts {
            receiver: Some(receiver),
            ..facts.clone()
        };
        self.hq_write(to_id, |doc| doc.put_transfer(&copy))
    }

    fn receiving_lane(&self, store: &str) -> Result<Option<WriterId>, HqError> {
        let writer: Option<String> = self
            .conn
            .query_row(
                "SELECT writer FROM hq_writer_status WHERE store = ?1
                 ORDER BY online DESC, writer LIMIT 1",
                [store],
                |r| r.get(0),
            )
            .optional()?;
        Ok(writer.and_then(|w| WriterId::new(&w).ok()))
    }

    /// The orders document of a store (genesis if HQ has none yet).
    fn orders_doc(&self, id: &DocId) -> Result<OrdersDoc, HqError> {
        let core = match self.docs.get(id) {
            Some(core) => core.clone(),
            None => SyncDoc::genesis(id, 0, self.writer.clone())?,
        };
        OrdersDoc::from_core(core)
            .map_err(|e| HqError::Doc(DocError::NotOurDocument(e.to_string())))
    }

    /// Runs one HQ write on a store's orders document and stores the change (with the
    /// store row, so the document is loaded again after a restart). On failure the
    /// in-memory document is left as it was.
    fn hq_write<F>(&mut self, id: &DocId, write: F) -> Result<Option<Vec<u8>>, HqError>
    where
        F: FnOnce(
            &mut OrdersDoc,
        ) -> Result<Option<crate::crdt::doc::LocalChange>, TransferDocError>,
    {
        let mut doc = self.orders_doc(id)?;
        let Some(change) = write(&mut doc).map_err(doc_err)? else {
            return Ok(None);
        };
        let now = crate::clock::now_utc();
        let tx = self.conn.unchecked_transaction()?;
        persist::persist_change(&tx, doc.core(), &change.bytes, false, &now)?;
        tx.execute(
            "INSERT INTO hq_store (store, epoch) VALUES (?1, 0) ON CONFLICT(store) DO NOTHING",
            [&id.store],
        )?;
        tx.commit()?;
        self.docs.insert(id.clone(), doc.core().clone());
        Ok(Some(change.bytes))
    }

    fn publish_doc_changes(
        &self,
        id: &DocId,
        changes: Vec<Vec<u8>>,
    ) -> Result<Vec<Outgoing>, HqError> {
        let topic = self
            .topics
            .changes_about(
                &Scope::Hq,
                &scope_of(id)?,
                &kind_id(DocKind::Orders)?,
                &Id::new(self.writer.as_str())?,
            )
            .to_string();
        let payload = SyncMessage::Changes {
            doc: id.clone(),
            epoch: self.orders_epoch(id),
            changes,
        }
        .encode()
        .map_err(WireError::from)?;
        Ok(vec![
            Outgoing {
                topic,
                payload,
                retain: false,
            },
            self.heads_outgoing(id)?,
        ])
    }

    fn is_synced(&self, id: &str, status: Option<TransferStatus>) -> Result<bool, HqError> {
        let row: Option<(String, i64)> = self
            .conn
            .prepare_cached("SELECT status, synced FROM hq_transfer WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.is_some_and(|(s, synced)| synced == 1 && status.is_some_and(|st| st.as_str() == s)))
    }

    /// Refreshes `hq_transfer` from both documents.
    fn refresh_row(&mut self, id: &str, from_id: &DocId, to_id: &DocId) -> Result<(), HqError> {
        let Some(view) = self.view_from(id, from_id, to_id)? else {
            return Ok(());
        };
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO hq_transfer (id, from_store, to_store, receiver, status, created_at_ms, updated_ms, synced)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET receiver = excluded.receiver, status = excluded.status,
               updated_ms = excluded.updated_ms, synced = excluded.synced",
            params![
                id,
                view.from_store,
                view.to_store,
                view.receiver,
                view.status.as_str(),
                view.created_at_ms,
                crate::clock::now_ms(),
                i64::from(view.synced)
            ],
        )?;
        for line in &view.lines {
            tx.execute(
                "INSERT INTO hq_transfer_line (transfer_id, sku, dispatched, received) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(transfer_id, sku) DO UPDATE SET dispatched = excluded.dispatched, received = excluded.received",
                params![id, line.sku, line.dispatched, line.received],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn view_from(
        &self,
        id: &str,
        from_id: &DocId,
        to_id: &DocId,
    ) -> Result<Option<HqTransferView>, HqError> {
        let from = self.orders_doc(from_id)?;
        let to = self.orders_doc(to_id)?;
        let Some(facts) = from.transfer_facts(id).or_else(|| to.transfer_facts(id)) else {
            return Ok(None);
        };
        let receiver = to.transfer_facts(id).and_then(|f| f.receiver);
        let mut history: Vec<TransferEvent> = from
            .transfer_events(id)
            .into_iter()
            .chain(to.transfer_events(id))
            .collect();
        history.sort_by(|a, b| (a.at_ms, &a.writer, a.status).cmp(&(b.at_ms, &b.writer, b.status)));
        history.dedup();
        let Some(state) = fold_status(&history) else {
            return Ok(None);
        };
        let received = to
            .transfer_received(id)
            .or_else(|| from.transfer_received(id));
        let synced = receiver.is_some()
            && from.transfer_state(id).map(|s| s.status) == Some(state.status)
            && to.transfer_state(id).map(|s| s.status) == Some(state.status);
        Ok(Some(HqTransferView {
            transfer_id: id.to_owned(),
            from_store: facts.from_store.clone(),
            to_store: facts.to_store.clone(),
            receiver: receiver.map(|r| r.as_str().to_owned()),
            status: state.status,
            decided_by: Some(state.decided_by),
            created_at_ms: facts.created_at_ms,
            lines: lines_view(&facts.lines, received.as_ref()),
            history,
            synced,
        }))
    }

    /// One transfer by its chain-wide id (`{dispatching lane}:{local id}`).
    pub fn transfer_view(&self, id: &str) -> Result<Option<HqTransferView>, HqError> {
        match self.transfer_docs(id)? {
            Some((from_id, to_id, _)) => self.view_from(id, &from_id, &to_id),
            None => Ok(None),
        }
    }

    /// Transfers from or to `store`, optionally by status, newest first.
    pub fn transfers_of(
        &self,
        store: &str,
        status: Option<TransferStatus>,
    ) -> Result<Vec<HqTransferSummary>, HqError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, from_store, to_store, status, created_at_ms FROM hq_transfer
             WHERE (from_store = ?1 OR to_store = ?1) AND (?2 IS NULL OR status = ?2)
             ORDER BY created_at_ms DESC, id LIMIT 1000",
        )?;
        let rows = stmt.query_map(params![store, status.map(TransferStatus::as_str)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (transfer_id, from_store, to_store, status, created_at_ms) = row?;
            let Some(status) = TransferStatus::parse(&status) else {
                continue;
            };
            out.push(HqTransferSummary {
                transfer_id,
                from_store,
                to_store,
                status,
                created_at_ms,
            });
        }
        Ok(out)
    }

    /// Per SKU, the units in transit out of and into `store`.
    pub fn in_transit(&self, store: &str) -> Result<Vec<InTransit>, HqError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.sku,
                    COALESCE(SUM(CASE WHEN t.from_store = ?1 THEN l.dispatched END), 0),
                    COALESCE(SUM(CASE WHEN t.to_store = ?1 THEN l.dispatched END), 0)
             FROM hq_transfer t JOIN hq_transfer_line l ON l.transfer_id = t.id
             WHERE t.status = 'in_transit' AND (t.from_store = ?1 OR t.to_store = ?1)
             GROUP BY l.sku ORDER BY l.sku",
        )?;
        let rows = stmt.query_map([store], |r| {
            Ok(InTransit {
                sku: r.get(0)?,
                outbound: r.get(1)?,
                inbound: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Groups the changes per document, in the order they were made.
fn touched_changes(changes: Vec<(DocId, Vec<u8>)>) -> BTreeMap<DocId, Vec<Vec<u8>>> {
    let mut out: BTreeMap<DocId, Vec<Vec<u8>>> = BTreeMap::new();
    for (doc, change) in changes {
        out.entry(doc).or_default().push(change);
    }
    out
}

/// A status one document has and the other lacks: `(status, earliest time, received lines
/// for a receipt)`.
type MissingEvent = (TransferStatus, i64, Option<BTreeMap<String, i64>>);

/// Statuses `source` has for `id` that `target` lacks.
fn missing_events(target: &OrdersDoc, source: &OrdersDoc, id: &str) -> Vec<MissingEvent> {
    if target.transfer_facts(id).is_none() {
        return Vec::new(); // the receiver's copy is not there yet (no lane known)
    }
    let have: Vec<TransferStatus> = target
        .transfer_events(id)
        .iter()
        .map(|e| e.status)
        .collect();
    let mut earliest: BTreeMap<TransferStatus, i64> = BTreeMap::new();
    for event in source.transfer_events(id) {
        let at = earliest.entry(event.status).or_insert(event.at_ms);
        *at = (*at).min(event.at_ms);
    }
    earliest
        .into_iter()
        .filter(|(status, _)| !have.contains(status))
        .map(|(status, at)| {
            let lines = (status == TransferStatus::Received)
                .then(|| source.transfer_received(id))
                .flatten();
            (status, at, lines)
        })
        .collect()
}

fn lines_view(
    dispatched: &BTreeMap<String, i64>,
    received: Option<&BTreeMap<String, i64>>,
) -> Vec<HqTransferLine> {
    let diff = received.map(|r| discrepancy(dispatched, r));
    let mut skus: Vec<&String> = dispatched.keys().collect();
    if let Some(r) = received {
        skus.extend(r.keys());
    }
    skus.sort();
    skus.dedup();
    skus.into_iter()
        .map(|sku| HqTransferLine {
            sku: sku.clone(),
            dispatched: dispatched.get(sku).copied().unwrap_or(0),
            received: received.map(|r| r.get(sku).copied().unwrap_or(0)),
            discrepancy: diff.as_ref().map(|d| d.get(sku).copied().unwrap_or(0)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::service::ONLINE;

    fn w(id: &str) -> WriterId {
        WriterId::new(id).unwrap()
    }

    fn message(store: &str, changes: Vec<Vec<u8>>) -> Vec<u8> {
        SyncMessage::Changes {
            doc: DocId::new(store, DocKind::Orders).unwrap(),
            epoch: 0,
            changes,
        }
        .encode()
        .unwrap()
    }

    /// The changes HQ published for `store`'s orders document.
    fn published_for(out: &[Outgoing], store: &str) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|o| match SyncMessage::decode(&o.payload) {
                Ok(SyncMessage::Changes { doc, changes, .. }) if doc.store == store => {
                    Some(changes)
                }
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn facts() -> TransferFacts {
        TransferFacts {
            transfer_id: "s1.lane1:t1".into(),
            from_store: "s1".into(),
            to_store: "s2".into(),
            created_at_ms: 10,
            receiver: None,
            lines: BTreeMap::from([("MILK".to_owned(), 5)]),
        }
    }

    #[test]
    fn hq_relays_a_transfer_both_ways_and_shows_the_discrepancy() {
        let dir = tempfile::tempdir().unwrap();
        let mut hq = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        let mut a = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
        let mut b = OrdersDoc::genesis("s2", 0, w("s2.lane1")).unwrap();
        let a_topic = "storenode/v1/t/s1/changes/orders/s1.lane1";
        let b_topic = "storenode/v1/t/s2/changes/orders/s2.lane1";
        let sent = vec![
            a.put_transfer(&facts()).unwrap().unwrap().bytes,
            a.record_transfer_status("s1.lane1:t1", TransferStatus::InTransit, 10)
                .unwrap()
                .unwrap()
                .bytes,
        ];
        // No lane of s2 known yet: the relay waits.
        let out = hq.handle(a_topic, &message("s1", sent.clone())).unwrap();
        assert!(published_for(&out, "s2").is_empty());
        let view = hq.transfer_view("s1.lane1:t1").unwrap().unwrap();
        assert_eq!(view.status, TransferStatus::InTransit);
        assert!(!view.synced);
        // s2's lane comes online: the transfer goes to s2, naming it as receiver.
        let out = hq
            .handle("storenode/v1/t/s2/status/s2.lane1", ONLINE)
            .unwrap();
        let to_b = published_for(&out, "s2");
        assert!(!to_b.is_empty());
        b.core_mut().apply_changes(&to_b).unwrap();
        assert_eq!(
            b.transfer_facts("s1.lane1:t1").unwrap().receiver,
            Some(w("s2.lane1"))
        );
        assert_eq!(hq.in_transit("s2").unwrap()[0].inbound, 5);
        assert_eq!(hq.in_transit("s1").unwrap()[0].outbound, 5);
        // A replay changes nothing and relays nothing.
        let out = hq.handle(a_topic, &message("s1", sent)).unwrap();
        assert!(out.is_empty());
        // s2 receives 4: HQ records the receipt in s1's document.
        let got = BTreeMap::from([("MILK".to_owned(), 4)]);
        let receipt = b
            .record_transfer_received("s1.lane1:t1", &got, 50)
            .unwrap()
            .unwrap();
        let out = hq
            .handle(b_topic, &message("s2", vec![receipt.bytes]))
            .unwrap();
        a.core_mut()
            .apply_changes(&published_for(&out, "s1"))
            .unwrap();
        assert_eq!(
            a.transfer_state("s1.lane1:t1").unwrap().status,
            TransferStatus::Received
        );
        assert_eq!(a.transfer_received("s1.lane1:t1"), Some(got));
        let view = hq.transfer_view("s1.lane1:t1").unwrap().unwrap();
        assert_eq!(view.status, TransferStatus::Received);
        assert!(view.synced);
        assert_eq!(view.lines[0].discrepancy, Some(-1));
        assert!(hq.in_transit("s1").unwrap().is_empty());
        assert_eq!(hq.transfers_of("s2", None).unwrap().len(), 1);
        // A cancel at the sender that crossed the receipt does not undo it.
        let cancel = a
            .record_transfer_status("s1.lane1:t1", TransferStatus::Cancelled, 40)
            .unwrap()
            .unwrap();
        hq.handle(a_topic, &message("s1", vec![cancel.bytes]))
            .unwrap();
        let view = hq.transfer_view("s1.lane1:t1").unwrap().unwrap();
        assert_eq!(view.status, TransferStatus::Received);
        assert_eq!(
            view.history.len(),
            3 + 2,
            "in_transit, cancelled, received + HQ copies"
        );
    }

    #[test]
    fn a_transfer_claiming_another_stores_sender_is_not_relayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut hq = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        hq.handle("storenode/v1/t/s2/status/s2.lane1", ONLINE)
            .unwrap();
        let mut a = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
        let forged = TransferFacts {
            from_store: "s3".into(),
            ..facts()
        };
        let change = a.put_transfer(&forged).unwrap().unwrap();
        let out = hq
            .handle(
                "storenode/v1/t/s1/changes/orders/s1.lane1",
                &message("s1", vec![change.bytes]),
            )
            .unwrap();
        assert!(published_for(&out, "s2").is_empty());
        assert_eq!(hq.transfer_view("s1.lane1:t1").unwrap(), None);
    }
}
